/* Hard limits and fixed constants of the gmig wire protocol, named in one place. */
#ifndef GMIG_LIMITS_H
#define GMIG_LIMITS_H

#define GMIG_MAGIC		0x47494d47u	/* "GMIG" as it appears on the wire */
#define GMIG_VERSION_MIN	1		/* oldest protocol version spoken */
#define GMIG_VERSION_MAX	1		/* newest protocol version spoken */

#define GMIG_HDR_SIZE		40		/* bytes in the fixed frame header */
#define GMIG_DATA_MAX		(4u << 20)	/* device bytes in one region-data frame */
#define GMIG_PAYLOAD_MAX	(GMIG_DATA_MAX + 4096u)	/* hard maximum frame payload */

#define GMIG_TEXT_MAX		1024		/* error and abort text */
#define GMIG_ADDR_MAX		256		/* a channel address such as unix:/path */
#define GMIG_BLOB_MAX		(1u << 20)	/* one client's frozen state blob */
#define GMIG_GPUS_MAX		64		/* GPUs in one inventory */
#define GMIG_REGIONS_MAX	16384		/* regions of one client */
#define GMIG_MANIFEST_MAX	65536		/* regions in one restore manifest */

#define GMIG_QGA_LINE_MAX	(64u << 10)	/* bytes of one JSON request line, ending excluded */
#define GMIG_SLOTS_MAX		64		/* staging slots in each direction */
#define GMIG_PHYS_MAX		65536		/* guest-physical ranges of one client's staging */

#define GMIG_QMP_LINE_MAX	(1u << 20)	/* bytes of one QMP reply or event line from QEMU */
#define GMIG_QMP_EVENTS_MAX	64		/* QMP events kept while a reply is awaited */

#define GMIG_CHUNK_DEFAULT	(64u << 10)	/* fingerprint chunk */
#define GMIG_CHUNK_MIN		(4u << 10)
#define GMIG_CHUNK_MAX		GMIG_DATA_MAX

#define GMIG_TOKEN_SIZE		16		/* resume token */
#define GMIG_UUID_SIZE		16
#define GMIG_MAC_SIZE		32		/* HMAC-SHA256 and nonces on the peer link */

#endif
