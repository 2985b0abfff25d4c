/*
 * The client core of libgmig, shared by every backend: the device a program
 * runs on, its arena, its gate and fingerprints, and the migration verbs the
 * link drives (freeze, thaw, release, attach).
 */
#ifndef GMIG_UMD_UMD_H
#define GMIG_UMD_UMD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "backend.h"
#include "fingerprint.h"
#include "gate.h"
#include "state.h"

struct gmig_umd {
	struct gmig_be *be;
	uint32_t pid;
	pthread_mutex_t lock;		/* protects dev and gpu: the link changes them, programs read them */
	struct gmig_bdev *dev;		/* NULL while released */
	uint32_t gpu;			/* dev's position in the backend's enumeration */
	struct gmig_arena arena;
	struct gmig_gate gate;

	/* The link thread's alone: */
	struct gmig_fp fp;
	bool frozen;
	uint8_t *blob;			/* captured at freeze, kept until thaw */
	size_t blob_len;
};

/* Attaches the backend's default device and reserves an arena of its size; chunk as in GMIG_CHUNK_*. */
int gmig_umd_init(struct gmig_umd *u, struct gmig_be *be, uint32_t chunk);
void gmig_umd_fini(struct gmig_umd *u);

/*
 * Closes the gate, drains the device and captures the blob, all before
 * deadline_ms; else -ETIMEDOUT and the program runs on as before. 0 if
 * already frozen.
 */
int gmig_umd_freeze(struct gmig_umd *u, uint32_t deadline_ms);
/* Opens the gate; -EBUSY while released. 0 if not frozen. */
int gmig_umd_thaw(struct gmig_umd *u);
/*
 * Gives every granule back and drops the device; -EBUSY unless frozen, 0 if
 * already released. It always completes; an error says a granule could not
 * be unmapped cleanly.
 */
int gmig_umd_release(struct gmig_umd *u);
/*
 * Binds to the device with this UUID and maps the arena back at the same
 * addresses; checks the program against the blob (-ESTALE). -EBUSY unless
 * released, -ENODEV for a device it cannot find, -ENOMEM if it has no room.
 */
int gmig_umd_attach(struct gmig_umd *u, const uint8_t *uuid);

/*
 * Host memory mapped for transfers (the staging area): the backend may pin
 * it for faster copies. Unregister before unmapping it. 0 when the backend
 * has nothing to do.
 */
int gmig_umd_host_register(struct gmig_umd *u, void *p, size_t n);
void gmig_umd_host_unregister(struct gmig_umd *u, void *p, size_t n);

/* The device now, and its index; -ENODEV while released. */
int gmig_umd_device(struct gmig_umd *u, struct gmig_bdev_info *info, uint32_t *gpu);
/* The program's state now (arrays malloc'd); dev supplies the device and queues. */
int gmig_umd_capture(struct gmig_umd *u, struct gmig_bdev *dev, struct gmig_state *s);

#endif
