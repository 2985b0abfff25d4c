/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR MIT) */
/*
 * The ioctl ABI of /dev/gmig: client registry, freeze barrier and pinned staging buffers.
 *
 * Every argument starts with __u32 size, which must equal the size the ioctl number encodes;
 * a later ABI adds ioctls with new numbers instead of growing these. Fields named reserved
 * must be zero and flags may hold only the bits defined here, or the call fails with EINVAL.
 */
#ifndef _UAPI_GMIG_H
#define _UAPI_GMIG_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define GMIG_KMD_ABI_VERSION	1
#define GMIG_KMD_DEVICE	"/dev/gmig"

/* Hard limits the module enforces. */
#define GMIG_KMD_DEADLINE_MAX_MS	600000u	/* longest freeze deadline */
#define GMIG_KMD_PHYS_MAX		65536u	/* ranges one STAGING_PHYS call may return */
#define GMIG_KMD_EVENTS_MAX		256u	/* client events queued for the agent */
#define GMIG_KMD_COMM_LEN		16

/* GMIG_IOC_VERSION: what the module speaks. */
struct gmig_kmd_version {
	__u32 size;
	__u32 abi;		/* out: GMIG_KMD_ABI_VERSION */
	__u32 features;		/* out: 0 for now */
	__u32 reserved;
};

enum gmig_kmd_role {
	GMIG_KMD_ROLE_AGENT = 1,	/* one at a time, needs CAP_SYS_ADMIN */
	GMIG_KMD_ROLE_CLIENT = 2,	/* a GPU program (libgmig) */
};

/* GMIG_IOC_REGISTER: once per open file. */
struct gmig_kmd_register {
	__u32 size;
	__u32 role;		/* enum gmig_kmd_role */
	__u32 flags;		/* none defined */
	__u32 reserved;
	__u64 id;		/* out: the kernel's id of this registration */
};

#define GMIG_KMD_STAGING_CLOEXEC	1u	/* the new fd is close-on-exec */

/* GMIG_IOC_STAGING_CREATE (agent): pinned pages, returned as a new mmap-able fd. */
struct gmig_kmd_staging_create {
	__u32 size;
	__u32 flags;		/* GMIG_STAGING_* */
	__u64 bytes;		/* a multiple of the page size, bounded by the module's limits */
	__s32 fd;		/* out */
	__u32 reserved;
};

/* One guest-physically contiguous piece of a staging buffer. */
struct gmig_kmd_phys_range {
	__u64 gpa;
	__u64 len;
};

/*
 * GMIG_IOC_STAGING_PHYS (on a staging fd): its guest-physical ranges in buffer order.
 * With too small an array the call fails with ENOSPC and count says how many are needed.
 */
struct gmig_kmd_staging_phys {
	__u32 size;
	__u32 flags;		/* none defined */
	__u32 count;		/* in: entries at ranges; out: entries the buffer has */
	__u32 reserved;
	__u64 ranges;		/* user pointer to struct gmig_kmd_phys_range[count] */
	__u64 bytes;		/* out: the buffer's size */
};

enum gmig_kmd_event_kind {
	GMIG_KMD_EVENT_REGISTERED = 1,
	GMIG_KMD_EVENT_GONE = 2,
};

struct gmig_kmd_client_event {
	__u32 kind;		/* enum gmig_kmd_event_kind */
	__u32 pid;		/* in the agent's pid namespace; 0 if not visible there */
	__u64 id;		/* the client's registration id */
	char comm[GMIG_KMD_COMM_LEN];
};

#define GMIG_KMD_EVENTS_LOST	1u	/* out flag: the queue overflowed, oldest events dropped */

/* GMIG_IOC_CLIENT_EVENTS (agent): takes up to count pending events. */
struct gmig_kmd_client_events {
	__u32 size;
	__u32 flags;		/* in: 0; out: GMIG_KMD_EVENTS_LOST */
	__u32 count;		/* in: entries at events; out: entries filled */
	__u32 reserved;
	__u64 events;		/* user pointer to struct gmig_kmd_client_event[count] */
};

/* GMIG_IOC_FREEZE (agent): closes the barrier until every client acks or the deadline. */
struct gmig_kmd_freeze {
	__u32 size;
	__u32 flags;		/* none defined */
	__u32 deadline_ms;	/* 1 .. GMIG_KMD_DEADLINE_MAX_MS */
	__u32 reserved;
};

enum gmig_kmd_barrier_state {
	GMIG_KMD_BARRIER_OPEN = 0,
	GMIG_KMD_BARRIER_FREEZING = 1,	/* closed, waiting for acks */
	GMIG_KMD_BARRIER_FROZEN = 2,	/* closed, every live client acked */
};

/*
 * GMIG_IOC_FREEZE_STATUS (agent): the barrier now and the outcome of the last freeze, which
 * the call consumes (the agent's fd stops polling readable for it).
 */
struct gmig_kmd_freeze_status {
	__u32 size;
	__u32 flags;		/* none defined */
	__u32 state;		/* out: enum gmig_kmd_barrier_state */
	__s32 result;		/* out: 0 all acked, -ETIMEDOUT, -EINPROGRESS while freezing */
	__u32 clients;		/* out: clients in the last freeze */
	__u32 acked;		/* out: of those, acked */
	__u32 gone;		/* out: of those, released before acking */
	__u32 reserved;
};

/* A client's arguments-free calls take this header only. */
struct gmig_kmd_op {
	__u32 size;
	__u32 flags;		/* none defined */
};

#define GMIG_KMD_IOC_MAGIC	0xE7

#define GMIG_IOC_VERSION	_IOWR(GMIG_KMD_IOC_MAGIC, 0x00, struct gmig_kmd_version)
#define GMIG_IOC_REGISTER	_IOWR(GMIG_KMD_IOC_MAGIC, 0x01, struct gmig_kmd_register)
#define GMIG_IOC_STAGING_CREATE	_IOWR(GMIG_KMD_IOC_MAGIC, 0x02, struct gmig_kmd_staging_create)
#define GMIG_IOC_STAGING_PHYS	_IOWR(GMIG_KMD_IOC_MAGIC, 0x03, struct gmig_kmd_staging_phys)
#define GMIG_IOC_CLIENT_EVENTS	_IOWR(GMIG_KMD_IOC_MAGIC, 0x04, struct gmig_kmd_client_events)
#define GMIG_IOC_FREEZE		_IOW(GMIG_KMD_IOC_MAGIC, 0x05, struct gmig_kmd_freeze)
#define GMIG_IOC_FREEZE_STATUS	_IOWR(GMIG_KMD_IOC_MAGIC, 0x06, struct gmig_kmd_freeze_status)
#define GMIG_IOC_THAW		_IOW(GMIG_KMD_IOC_MAGIC, 0x07, struct gmig_kmd_op)
#define GMIG_IOC_FROZEN		_IOW(GMIG_KMD_IOC_MAGIC, 0x08, struct gmig_kmd_op)
#define GMIG_IOC_WAIT_THAW	_IOW(GMIG_KMD_IOC_MAGIC, 0x09, struct gmig_kmd_op)

#endif
