/*
 * The frozen blob: a client's state that is not device memory (the device it
 * ran on, its work queues, its allocation table and regions), in a small
 * versioned little-endian format closed by an XXH3-64 checksum.
 *
 *   off size field
 *     0    4 magic      "GMST"
 *     4    2 version    1
 *     6    1 backend    enum gmig_backend
 *     7    1 reserved   0
 *     8   16 uuid       the device at freeze
 *    24    8 arena_va   the reservation
 *    32    8 arena_size
 *    40    4 nregions   then 24 bytes each: id u32, va u64, size u64, chunk u32
 *    44    4 nqueues    then 12 bytes each: id u32, submitted u64
 *    48    8 nallocs    then 16 bytes each: offset u64, size u64
 *    56      records, in that order
 *   end    8 checksum   XXH3-64 of every byte before it
 */
#ifndef GMIG_UMD_STATE_H
#define GMIG_UMD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "backend.h"

#define GMIG_STATE_VERSION	1
#define GMIG_STATE_HDR_SIZE	56

struct gmig_state {
	uint8_t backend;
	uint8_t uuid[GMIG_UUID_SIZE];
	uint64_t arena_va, arena_size;
	uint32_t nregions, nqueues;
	uint64_t nallocs;
	struct gmig_region *regions;	/* id order, disjoint, inside the arena */
	struct gmig_queue *queues;	/* id order */
	struct gmig_alloc *allocs;	/* offset order, disjoint, inside the arena */
};

/* Encodes s into a malloc'd blob; -E2BIG over GMIG_BLOB_MAX, -EINVAL for an invalid state. */
int gmig_state_encode(const struct gmig_state *s, uint8_t **blob, size_t *len);
/*
 * Decodes and validates a blob; the arrays of s are malloc'd. -EBADMSG for a
 * wrong length, magic or checksum, -EPROTONOSUPPORT for another version,
 * -EPROTO for a field out of range, -ENOMEM.
 */
int gmig_state_decode(const uint8_t *blob, size_t len, struct gmig_state *s);
void gmig_state_clear(struct gmig_state *s);

/*
 * Whether two states hold the same program: same backend, arena, regions,
 * queues and allocations; the device may differ. -ESTALE names a difference.
 */
int gmig_state_same_program(const struct gmig_state *a, const struct gmig_state *b);

#endif
