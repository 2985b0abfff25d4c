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

/* Records the GPUs of an INV_GPUS message. */
int gmig_image_set_gpus(struct gmig_image *img, const struct gmig_inv_gpus *m);
/*
 * Adds or updates a client and its regions from INV_CLIENT. A region that grew
 * keeps its bytes; a region that is new starts zeroed with epoch 0.
 * -ENOSPC when the image would pass its cap, -EINVAL for overlapping or
 * inconsistent regions.
 */
int gmig_image_set_client(struct gmig_image *img, const struct gmig_inv_client *m);
/* Drops a client that is gone, with its regions. */
void gmig_image_drop_client(struct gmig_image *img, uint32_t pid);

/*
 * Applies REGION_DATA or RESTORE_DATA: the range must lie inside a known region
 * and start on a chunk boundary; older epochs than the chunks hold are ignored
 * (returns 0); LZ4 is decoded only when lz4 is allowed. -ENOENT unknown region,
 * -ERANGE out of bounds, -EPROTO bad encoding or LZ4 block.
 */
int gmig_image_apply(struct gmig_image *img, const struct gmig_region_data *d, bool lz4);
int gmig_image_set_blob(struct gmig_image *img, uint32_t pid, const void *blob, uint32_t len);

struct gmig_image_region *gmig_image_region(struct gmig_image *img, uint32_t pid, uint32_t id);
struct gmig_image_client *gmig_image_client(struct gmig_image *img, uint32_t pid);
/* True when every chunk of every region has been written at least once. */
bool gmig_image_complete(const struct gmig_image *img);

#endif
