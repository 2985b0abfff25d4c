/*
 * The guest's QEMU, driven through QMP from gmigd's worker thread: hot-unplug the GPU device
 * (and remember its memory backend so that it can come back), migrate the VM and follow it to
 * the end, wait for an incoming VM to run, and hot-plug a GPU. Every call blocks, bounded by
 * its timeouts; each fills @why with what QEMU or the socket said when it fails.
 */
#ifndef GMIG_HOST_VM_H
#define GMIG_HOST_VM_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define VM_POLL_MS	100	/* query-migrate and query-status are asked this often */

/* A GPU as QEMU holds it: an ivshmem-plain device over a file-backed memory object. */
struct vm_gpu {
	char id[CONFIG_VM_ID_MAX];	/* the device */
	char mem_id[CONFIG_VM_ID_MAX];	/* its memory backend object */
	char mem_path[PATH_MAX];
	uint64_t size;
	bool share;
};

/* What query-migrate said at the end. */
struct vm_migrate_stats {
	char status[32];
	uint64_t total_ms, downtime_ms, setup_ms;
	uint64_t ram_transferred, ram_total;
	uint64_t usecs;			/* wall time at this host */
};

struct vm_timeouts {
	uint32_t qmp_ms;		/* one command */
	uint32_t unplug_ms;		/* DEVICE_DELETED after device_del */
	uint32_t migrate_ms;		/* the whole migration; an incoming VM to run */
};

/*
 * Reads the device @gpu->id's memory backend into @gpu, then device_del, waits for
 * DEVICE_DELETED and object-del's the backend. -ENODEV: no such device; -ETIMEDOUT: the guest
 * did not let go in time (the device may still go later).
 */
int vm_unplug(const char *qmp, const struct vm_timeouts *t, struct vm_gpu *gpu, char *why,
	      size_t whylen);

/*
 * object-add of @gpu's memory-backend-file and device_add of ivshmem-plain over it; parts that
 * are there already are kept (a re-plug after a half-done unplug).
 */
int vm_plug(const char *qmp, const struct vm_timeouts *t, const struct vm_gpu *gpu, char *why,
	    size_t whylen);

/*
 * migrate to @uri and polls query-migrate until it completes (0), fails (-EREMOTEIO with
 * QEMU's error-desc), is cancelled (-ECANCELED) or runs past the timeout or *@cancel
 * (migrate_cancel, then -ETIMEDOUT or -ECANCELED). @st gets the figures either way.
 */
int vm_migrate(const char *qmp, const char *uri, const struct vm_timeouts *t,
	       atomic_bool *cancel, struct vm_migrate_stats *st, char *why, size_t whylen);

/* Waits until the VM at @qmp runs (an incoming migration finished). */
int vm_wait_running(const char *qmp, const struct vm_timeouts *t, char *why, size_t whylen);

/* Fills @gpu for plugging the device file at @path as device @id ("<id>-mem" backs it). */
int vm_gpu_from_file(const char *id, const char *path, struct vm_gpu *gpu, char *why,
		     size_t whylen);

#endif
