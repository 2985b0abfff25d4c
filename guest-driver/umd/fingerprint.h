/*
 * Chunk fingerprints of device memory: per region, one XXH3-64 per chunk for
 * the round the receiver holds whole (the base) and one for the round in
 * progress (current), and the set of chunks sent in the current round.
 */
#ifndef GMIG_UMD_FINGERPRINT_H
#define GMIG_UMD_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct gmig_fp_region {
	uint32_t id;
	uint64_t size;
	uint64_t nchunks;
	uint64_t nbase;		/* chunks the base covers; the region may have grown since */
	uint64_t *base;		/* prints of base_round */
	uint64_t *cur;		/* prints of cur_round, as far as it got */
	uint64_t *sent;		/* bitmap: chunks sent in cur_round */
	uint64_t *stale;	/* bitmap: chunks sent in a round the receiver did not keep */
	uint64_t nsent;
};

/* Used by one thread at a time (the link's); no lock. */
struct gmig_fp {
	uint32_t chunk;
	uint32_t base_round;	/* 0: no base, every chunk goes */
	uint32_t cur_round;
	bool cur_whole;		/* cur_round ran to its end */
	struct gmig_fp_region *regions;	/* in the order of the last round_begin */
	uint32_t nregions;
};

void gmig_fp_init(struct gmig_fp *fp, uint32_t chunk);
void gmig_fp_clear(struct gmig_fp *fp);

/*
 * Starts round `round`, to send what changed since round `base`:
 *  - base 0, or a round this side does not hold whole: every chunk goes;
 *  - base == the last round, which ran to its end: it becomes the base;
 *  - base == the current base: the last round is dropped, and the chunks it
 *    sent go again (the receiver may hold them in a newer epoch than base).
 * regions are the regions now, matched to earlier ones by id; a region that
 * grew sends its new chunks. On -ENOMEM everything is forgotten.
 */
int gmig_fp_round_begin(struct gmig_fp *fp, uint32_t round, uint32_t base,
			const struct gmig_region *regions, uint32_t n);
/* Whether chunk ci of region ri, whose device fingerprint is print, must be sent. */
bool gmig_fp_must_send(const struct gmig_fp *fp, uint32_t ri, uint64_t ci, uint64_t print);
/* Records a chunk's print for the current round; sent marks it changed. */
void gmig_fp_record(struct gmig_fp *fp, uint32_t ri, uint64_t ci, uint64_t print, bool sent);
void gmig_fp_round_end(struct gmig_fp *fp);

bool gmig_fp_was_sent(const struct gmig_fp *fp, uint32_t ri, uint64_t ci);

uint64_t gmig_fp_hash(const void *p, size_t n);
bool gmig_fp_is_zero(const void *p, size_t n);

#endif
