/*
 * The device-memory arena: one reservation of device virtual addresses that
 * outlives every device, backed from the front in granules of the attached
 * device, and sub-allocated first-fit in 256-byte units.
 */
#ifndef GMIG_UMD_ARENA_H
#define GMIG_UMD_ARENA_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

#define GMIG_ARENA_ALIGN	256u	/* alignment and size unit of an allocation */
#define GMIG_ARENA_REGIONS_MAX	1	/* the backed extent is one region, see arena.c */
#define GMIG_ARENA_REGION_ID	1

/* A range of device memory reported to the agent, fingerprinted in chunks. */
struct gmig_region {
	uint32_t id;
	uint64_t va;
	uint64_t size;
	uint32_t chunk;
};

/* One live allocation, as an offset from the start of the reservation. */
struct gmig_alloc {
	uint64_t off;
	uint64_t size;
};

struct gmig_arena {
	pthread_mutex_t lock;		/* protects everything below except be, va, size */
	struct gmig_be *be;
	uint64_t va, size;		/* the reservation; fixed for the arena's life */
	uint64_t granule;
	uint32_t chunk;
	struct gmig_bdev *dev;		/* where the granules come from; NULL while released */
	uint64_t *handles;		/* backend handle of each backed granule */
	uint64_t nbacked;		/* granules [0, nbacked) are backed; it only grows */
	struct gmig_alloc *allocs;	/* sorted by offset, never overlapping */
	uint64_t nallocs, cap;
};

/* Reserves size bytes (rounded up to granules) of addresses; dev backs them from now on. */
int gmig_arena_init(struct gmig_arena *a, struct gmig_be *be, struct gmig_bdev *dev,
		    uint64_t size, uint32_t chunk);
/* Unmaps every granule (giving them back), drops the reservation. */
void gmig_arena_fini(struct gmig_arena *a);

/* -EINVAL for size 0, -ENOMEM when neither the reservation nor the device has room. */
int gmig_arena_alloc(struct gmig_arena *a, uint64_t size, uint64_t *va);
/* -EINVAL unless va is the start of a live allocation. */
int gmig_arena_free(struct gmig_arena *a, uint64_t va);
/* The live allocation holding va: its address and size; -ENOENT if none does. */
int gmig_arena_find(struct gmig_arena *a, uint64_t va, uint64_t *base, uint64_t *size);
/* Whether [va, va + n) lies inside one live allocation (n > 0). */
bool gmig_arena_contains(struct gmig_arena *a, uint64_t va, uint64_t n);

/* The backed extent as regions; returns how many (<= max, at most GMIG_ARENA_REGIONS_MAX). */
uint32_t gmig_arena_regions(struct gmig_arena *a, struct gmig_region *out, uint32_t max);
/* A copy of the allocation table (malloc'd; free it); -ENOMEM. */
int gmig_arena_allocs(struct gmig_arena *a, struct gmig_alloc **out, uint64_t *n);

/* Unmaps every granule and gives it back to the device; the addresses stay reserved. */
int gmig_arena_release(struct gmig_arena *a);
/* Backs the same addresses with granules of dev; all or nothing. */
int gmig_arena_attach(struct gmig_arena *a, struct gmig_bdev *dev);

#endif
