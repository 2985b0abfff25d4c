/*
 * The staging area shared with the agent: a memfd of 2 x slots slots, the
 * first `slots` written by this client (pre-copy), the rest by the agent
 * (restore). Device bytes travel here, never through the socket.
 */
#ifndef GMIG_UMD_STAGING_H
#define GMIG_UMD_STAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/limits.h"

enum gmig_slot_state { GMIG_SLOT_FREE, GMIG_SLOT_HELD, GMIG_SLOT_SENT };

/* Used by the link thread only. */
struct gmig_staging_area {
	uint8_t *mem;			/* NULL until mapped */
	size_t size;
	uint32_t slots, slot_size;
	uint8_t state[GMIG_SLOTS_MAX];	/* of our slots: enum gmig_slot_state */
};

/*
 * Maps the agent's memfd, which must be sealed against shrinking (else the
 * agent could truncate it and crash this program with SIGBUS) and hold
 * 2 x slots x slot_size bytes. Takes fd and closes it, mapped or not.
 * -EINVAL for an fd that is not a sealed memfd or is too small.
 */
int gmig_staging_map(struct gmig_staging_area *st, int fd, uint32_t slots, uint32_t slot_size);
/* The same for an fd known to hold avail bytes that cannot shrink (gmig.ko's staging). */
int gmig_staging_map_fd(struct gmig_staging_area *st, int fd, uint32_t slots, uint32_t slot_size,
			uint64_t avail);
void gmig_staging_unmap(struct gmig_staging_area *st);

/* A free slot of ours, now held; -EAGAIN when every one is out. */
int gmig_staging_take(struct gmig_staging_area *st, uint32_t *slot);
/* A held slot goes to the agent (STAGED sent), or back unused. */
void gmig_staging_sent(struct gmig_staging_area *st, uint32_t slot);
void gmig_staging_put(struct gmig_staging_area *st, uint32_t slot);
/* The agent handed a slot back (SLOT_FREE): -EPROTO unless it is ours and out. */
int gmig_staging_freed(struct gmig_staging_area *st, uint32_t slot);
/* Whether slot is one the agent writes (restore). */
bool gmig_staging_is_agent_slot(const struct gmig_staging_area *st, uint32_t slot);

/* Slot memory, for any slot in [0, 2 x slots). */
uint8_t *gmig_staging_slot(const struct gmig_staging_area *st, uint32_t slot);

#endif
