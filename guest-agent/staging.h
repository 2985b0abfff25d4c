/*
 * A client's staging memory: a sealed memfd of 2 x slots slots, the first half written by the
 * client (pre-copy), the second by the agent (restore), and which slots are in use.
 */
#ifndef GMIG_AGENT_STAGING_H
#define GMIG_AGENT_STAGING_H

#include <stdint.h>

#include "gmig/limits.h"

_Static_assert(GMIG_SLOTS_MAX <= 64, "slot bitmaps are 64 bits");

/* A guest-physically contiguous piece of pinned staging, for the host to read in place. */
struct staging_phys {
	uint64_t gpa, len;
};

struct staging {
	int fd;			/* the memfd or gmig.ko buffer, sent to the client with STAGING */
	uint8_t *map;		/* the agent's shared mapping of all of it */
	uint64_t size;
	uint32_t slots;		/* per direction */
	uint32_t slot_size;
	uint64_t in_busy;	/* client-to-agent slots holding staged bytes (bit = slot) */
	uint64_t out_busy;	/* agent-to-client slots handed to the client (bit = slot - slots) */
	uint32_t nphys;		/* pinned by gmig.ko: its ranges in buffer order; */
	struct staging_phys *phys;	/* NULL and 0 for memfd staging */
};

/*
 * Creates and maps the staging: pinned pages from gmig.ko when the agent is registered with it
 * (phys filled), else a memfd; the size cannot change afterwards (sealed). 0 or -errno.
 */
int staging_init(struct staging *st, uint32_t slots, uint32_t slot_size);
/* Unmaps and closes; safe on a zeroed or cleared staging. */
void staging_clear(struct staging *st);

/*
 * The client staged bytes in slot @slot: 0, -ERANGE when it is not one of the client's slots,
 * -EBUSY when the slot still holds bytes not handed back.
 */
int staging_in_take(struct staging *st, uint32_t slot);
/* The agent is done with client slot @slot. */
void staging_in_release(struct staging *st, uint32_t slot);
const uint8_t *staging_in_ptr(const struct staging *st, uint32_t slot);

/* A free agent-to-client slot, now busy: its number, or -ENOSPC. */
int staging_out_get(struct staging *st);
/* The client handed agent slot @slot back: 0, -ERANGE for no such slot, -EINVAL if not busy. */
int staging_out_put(struct staging *st, uint32_t slot);
uint8_t *staging_out_ptr(const struct staging *st, uint32_t slot);
/* Agent-to-client slots free now. */
unsigned int staging_out_free(const struct staging *st);

#endif
