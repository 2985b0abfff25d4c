/*
 * The gmig frame: a fixed 40-byte little-endian header and a payload, and an
 * incremental decoder for byte streams cut at arbitrary points.
 *
 *   off size field
 *     0    4 magic     "GMIG"
 *     4    1 version   protocol version of this frame
 *     5    1 flags     no flag is defined; must be 0
 *     6    2 type      message type, 0 is invalid
 *     8    4 length    payload bytes, at most GMIG_PAYLOAD_MAX
 *    12    4 reserved  must be 0
 *    16    8 session   session id, 0 before WELCOME
 *    24    8 seq       sender's sequence number
 *    32    8 checksum  XXH3-64 of header bytes 0..31, then the payload
 */
#ifndef GMIG_FRAME_H
#define GMIG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "gmig/limits.h"

struct gmig_hdr {
	uint8_t version;
	uint8_t flags;
	uint16_t type;
	uint32_t len;
	uint64_t session;
	uint64_t seq;
	uint64_t checksum;
};

struct gmig_frame {
	struct gmig_hdr hdr;
	const uint8_t *payload;	/* hdr.len bytes, owned by the decoder */
};

/* Writes hdr to out, checksum included, over the payload given in two pieces. */
void gmig_hdr_write(uint8_t out[GMIG_HDR_SIZE], struct gmig_hdr *hdr,
		    const void *p1, size_t n1, const void *p2, size_t n2);

/*
 * Decoder state; caller-owned. It copies at most one frame into the buffer
 * it was given and validates the header before reading the payload.
 */
struct gmig_decoder {
	uint8_t *buf;
	uint32_t cap;		/* largest payload accepted */
	uint32_t have;		/* bytes of the current frame so far */
	uint8_t min_version, max_version;
	int error;		/* sticky once set */
	int ready;		/* a frame was handed out; start afresh */
	struct gmig_hdr hdr;
	uint8_t raw[GMIG_HDR_SIZE];
};

/* buf holds cap bytes; payloads longer than min(cap, GMIG_PAYLOAD_MAX) are refused. */
void gmig_decoder_init(struct gmig_decoder *dec, void *buf, uint32_t cap);
/* Accept only frames of versions [min, max], e.g. the agreed one. */
void gmig_decoder_set_versions(struct gmig_decoder *dec, uint8_t min, uint8_t max);

/*
 * Feeds n bytes. Returns 1 when a whole, valid frame is in *frame (valid until
 * the next call), 0 when all input was taken and more is needed, or a negative
 * error, after which the decoder stays failed. *used is set to the bytes taken
 * in every case; on 1 the caller feeds the rest again.
 *
 * Errors: -EILSEQ bad magic, -EPROTONOSUPPORT unsupported version, -EPROTO
 * flags or reserved bits set, -ENOMSG unknown type, -EMSGSIZE length over
 * the maximum, -ERANGE length wrong for the type, -EBADMSG checksum mismatch.
 */
int gmig_decoder_feed(struct gmig_decoder *dec, const void *data, size_t n,
		      size_t *used, struct gmig_frame *frame);

/* Discards any partial frame and a sticky error. */
void gmig_decoder_reset(struct gmig_decoder *dec);

/* A sentence for a protocol error code, for logs and ERROR frames. */
const char *gmig_proto_strerror(int err);

#endif
