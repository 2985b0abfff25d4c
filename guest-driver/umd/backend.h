/* The interface every device backend of libgmig implements (sim and cuda); the core sees only this. */
#ifndef GMIG_UMD_BACKEND_H
#define GMIG_UMD_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "gmig/limits.h"

/* An attached device, owned by its backend. */
struct gmig_bdev;

/* What a backend tells about a device it can attach to. */
struct gmig_bdev_info {
	uint8_t uuid[GMIG_UUID_SIZE];
	char name[64];
	char model[64];
	char pci[17];		/* dddd:bb:dd.f, empty if none */
	uint16_t vendor, device;	/* PCI ids; 0 for a simulated device */
	uint64_t mem_bytes;
};

/* One work queue of the program (a stream), as the frozen blob records it. */
struct gmig_queue {
	uint32_t id;		/* stable for the queue's life */
	uint64_t submitted;	/* operations ever queued; all completed once drained */
};

struct gmig_be;

/*
 * The operations. The core serialises the device-level ones (attach, release,
 * map, unmap, drain, read, write, fingerprint) against each other; map may
 * run while the link thread reads or fingerprints other granules of the same
 * device, so backends keep no per-call state in the device.
 *
 * Device memory is reached only through these: on a real GPU, device virtual
 * addresses are not host addresses. Addresses are device virtual addresses,
 * granule-aligned for map and unmap.
 */
struct gmig_backend_ops {
	const char *name;
	uint8_t kind;		/* enum gmig_backend, as the inventory reports it */
	uint64_t granule;	/* bytes of device memory mapped at once, a power of two */

	/* Devices this program could run on, in a stable order; returns how many (<= max). */
	int (*enumerate)(struct gmig_be *be, struct gmig_bdev_info *out, int max);
	/* Binds to the device with this UUID, or the default device when uuid is NULL. -ENODEV if none. */
	int (*attach)(struct gmig_be *be, const uint8_t *uuid, struct gmig_bdev **dev);
	/* Drops every reference to the device; nothing may be mapped from it any more. */
	void (*release)(struct gmig_bdev *dev);
	void (*info)(const struct gmig_bdev *dev, struct gmig_bdev_info *info);

	/*
	 * Reserves size bytes of device virtual addresses, granule-aligned and
	 * backed by nothing; the reservation outlives every device.
	 */
	int (*reserve)(struct gmig_be *be, uint64_t size, uint64_t *va);
	void (*unreserve)(struct gmig_be *be, uint64_t va, uint64_t size);
	/* Takes one granule of the device's memory and maps it at va; *handle names it. -ENOSPC when full. */
	int (*map)(struct gmig_bdev *dev, uint64_t va, uint64_t *handle);
	/* Unmaps the granule at va (va stays reserved) and gives it back to the device. */
	int (*unmap)(struct gmig_bdev *dev, uint64_t va, uint64_t handle);

	/*
	 * Waits until the program has no work in flight on the device (a safe
	 * point), or until deadline (CLOCK_MONOTONIC): then -ETIMEDOUT. The core
	 * has already stopped new submissions.
	 */
	int (*drain)(struct gmig_bdev *dev, const struct timespec *deadline);
	/* The program's work queues, in id order, for the frozen blob; returns how many (<= max). */
	int (*queues)(struct gmig_bdev *dev, struct gmig_queue *out, uint32_t max);

	/*
	 * One fingerprint per chunk of [va, va + len): out[i] is XXH3-64 of chunk
	 * i, the last one possibly short. It must equal XXH3_64bits() of the same
	 * bytes on the CPU: the core compares it with hashes of staged copies.
	 */
	int (*fingerprint)(struct gmig_bdev *dev, uint64_t va, uint64_t len, uint32_t chunk,
			   uint64_t *out);
	/* Copies device memory to host memory, and back; write with src NULL writes zeros. */
	int (*read)(struct gmig_bdev *dev, uint64_t va, void *dst, size_t len);
	int (*write)(struct gmig_bdev *dev, uint64_t va, const void *src, size_t len);

	/*
	 * Optional: host memory that read and write will often use (the staging
	 * area) is pinned for the device, and unpinned before it is unmapped.
	 */
	int (*host_register)(struct gmig_be *be, void *p, size_t n);
	void (*host_unregister)(struct gmig_be *be, void *p, size_t n);
};

/* A backend instance: its operations and its process-wide state. */
struct gmig_be {
	const struct gmig_backend_ops *ops;
	void *priv;
};

#endif
