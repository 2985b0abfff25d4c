/* One pre-copy round: fingerprint every chunk, copy what changed into staging slots, hand them on. */
#ifndef GMIG_UMD_PRECOPY_H
#define GMIG_UMD_PRECOPY_H

#include <stdint.h>

#include "gmig/message.h"
#include "umd.h"

/* Where a round's bytes go: the link's staging slots and STAGED frames, or a test's buffers. */
struct gmig_sink {
	void *ctx;
	uint32_t slot_size;
	/* A free slot to fill, waiting for one if need be; its memory in *mem. */
	int (*take)(void *ctx, uint32_t *slot, uint8_t **mem);
	/* Hands on bytes in a slot (RAW) or a zero run (ZERO, slot 0). */
	int (*staged)(void *ctx, const struct gmig_staged *st);
	/* Gives back a slot taken but not filled. */
	void (*put)(void *ctx, uint32_t slot);
};

/*
 * Runs round `round` against `base` (see gmig_fp_round_begin) over the
 * arena's regions. Each changed chunk is copied into a slot and hashed from
 * the copy, so the print kept is that of the bytes sent; all-zero pieces go
 * as zero runs. Runs of contiguous pieces share a slot (or a zero run) up to
 * its size. Fills *st for ROUND_END.
 */
int gmig_precopy_round(struct gmig_umd *u, uint32_t round, uint32_t base,
		       const struct gmig_sink *sink, struct gmig_round_end *st);

#endif
