/*
 * A guest's GPU memory image as a host holds it: the client regions with their
 * bytes, the epoch (round) each chunk was last written in, the guest's GPUs,
 * its clients and their frozen state blobs. The source host's pre-copy rounds
 * and the destination's peer stream fill it; a restore or a checkpoint file
 * reads it. Nothing in it is trusted from the wire: every apply is checked.
 */
#ifndef GMIG_IMAGE_H
#define GMIG_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/message.h"

/*
 * A region is cut into chunks of chunk bytes from its start; the last chunk is
 * shorter when size is not a multiple of chunk (a 2 MiB granule with 4 MiB
 * chunks, say).
 */
struct gmig_image_region {
	uint32_t pid, id, chunk;
	uint64_t va, size;
	uint8_t *data;		/* size bytes */
	uint32_t *epochs;	/* per chunk: epoch of the bytes held; 0 = never written */
};

struct gmig_image_client {
	uint32_t pid, gpu;
	char name[33];
	uint8_t *blob;		/* frozen state, NULL until FROZEN */
	uint32_t blob_len;
};

/*
 * Regions are sorted by (pid, id) and clients by pid. Pointers into either
 * array are valid until the next call that changes clients or regions.
 */
struct gmig_image {
	struct gmig_image_region *regions;
	uint32_t nregions;
	struct gmig_image_client *clients;
	uint32_t nclients;
	struct gmig_rec_gpu *gpus;
	uint32_t ngpus;
	uint64_t bytes;		/* sum of region sizes */
	uint64_t cap;		/* refuse regions past this many bytes; 0 = no cap */
};

void gmig_image_init(struct gmig_image *img, uint64_t cap);
/* Frees everything the image holds; the image is empty and usable after. */
void gmig_image_clear(struct gmig_image *img);

/*
 * Records the GPUs of an INV_GPUS message, replacing any earlier list.
 * -EINVAL for an invalid record, a GPU index listed twice, or a list that
 * lacks the GPU of a client the image holds.
 */
int gmig_image_set_gpus(struct gmig_image *img, const struct gmig_inv_gpus *m);
/*
 * Adds or updates a client and its regions from INV_CLIENT; all or nothing.
 * The client's GPU must be one of the image's GPUs. A region that grew keeps
 * its bytes (a last chunk that was short is marked unwritten again); a region
 * that is new starts zeroed with epoch 0; a region no longer listed is
 * dropped. -ENOSPC when the image would pass its cap or hold more than
 * GMIG_MANIFEST_MAX regions or clients, -EINVAL for overlapping or
 * inconsistent regions (an id twice; a known region that moved, changed its
 * chunk or shrank), -ENOMEM.
 */
int gmig_image_set_client(struct gmig_image *img, const struct gmig_inv_client *m);
/* Drops a client that is gone, with its regions. */
void gmig_image_drop_client(struct gmig_image *img, uint32_t pid);

/*
 * Applies REGION_DATA or RESTORE_DATA: the range must lie inside a known region
 * and cover whole chunks (start on a chunk boundary, end on one or at the
 * region's end). Each chunk takes the data unless it holds a newer epoch than
 * d->epoch; a frame no chunk takes is ignored and not decoded (returns 0).
 * LZ4 is decoded only when lz4 is allowed, into a scratch buffer, so a bad
 * block changes nothing. -ENOENT unknown region, -ERANGE out of bounds or off
 * a chunk boundary, -EPROTO bad length, encoding, epoch 0 (it means never
 * written) or LZ4 block, -ENOMEM.
 */
int gmig_image_apply(struct gmig_image *img, const struct gmig_region_data *d, bool lz4);
/*
 * Keeps a copy of a client's frozen state; an empty one is a non-NULL blob of
 * length 0. -ENOENT unknown pid, -EMSGSIZE over GMIG_BLOB_MAX, -ENOMEM.
 */
int gmig_image_set_blob(struct gmig_image *img, uint32_t pid, const void *blob, uint32_t len);

struct gmig_image_region *gmig_image_region(struct gmig_image *img, uint32_t pid, uint32_t id);
struct gmig_image_client *gmig_image_client(struct gmig_image *img, uint32_t pid);
/* True when every chunk of every region has been written at least once. */
bool gmig_image_complete(const struct gmig_image *img);
/* Chunks in a region, the short last one included. */
uint64_t gmig_image_nchunks(const struct gmig_image_region *r);

#endif
