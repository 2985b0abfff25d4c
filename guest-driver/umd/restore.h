/* A restore into the attached device: the manifest checked against the arena, bytes written, coverage kept. */
#ifndef GMIG_UMD_RESTORE_H
#define GMIG_UMD_RESTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "cover.h"
#include "gmig/message.h"
#include "umd.h"

struct gmig_restore_region {
	struct gmig_region r;
	bool named;		/* the manifest lists it */
	struct gmig_cover cover;	/* bytes written so far */
};

/* The link thread's alone. */
struct gmig_restore {
	bool active;		/* between RESTORE_BEGIN and a successful RESTORE_END */
	uint32_t nregions;
	struct gmig_restore_region regions[GMIG_ARENA_REGIONS_MAX];
	uint64_t pieces, bytes;	/* applied */
};

void gmig_restore_init(struct gmig_restore *rs);
void gmig_restore_clear(struct gmig_restore *rs);

/*
 * Starts a restore of this client's regions. Every manifest record must name
 * this pid and one of the arena's regions with its address and size
 * (-EINVAL); a region the manifest leaves out fails the end (-ENODATA).
 */
int gmig_restore_begin(struct gmig_restore *rs, struct gmig_umd *u, const struct gmig_restore_begin *m);
/* Writes len bytes (src NULL: zeros) at offset of region; -ERANGE outside it, -EPROTO when not restoring. */
int gmig_restore_apply(struct gmig_restore *rs, struct gmig_umd *u, uint32_t region, uint64_t offset,
		       uint32_t len, const void *src);
/* Ends it: -ENODATA unless every byte of every region was written; totals of what was applied. */
int gmig_restore_end(struct gmig_restore *rs, struct gmig_totals *out);

#endif
