/* SPDX-License-Identifier: GPL-2.0 */
/* The state of /dev/gmig shared by the module's files: registry, barrier, staging, counters. */
#ifndef GMIG_DEV_H
#define GMIG_DEV_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/pid.h>
#include <linux/spinlock.h>
#include <linux/timer.h>
#include <linux/types.h>
#include <linux/wait.h>

#include <uapi/gmig.h>

struct miscdevice;
struct pid_namespace;

/* What an open /dev/gmig file is. Set once by REGISTER. */
enum gmig_file_role {
	GMIG_FILE_NONE,
	GMIG_FILE_AGENT,
	GMIG_FILE_CLIENT,
};

struct gmig_file {
	enum gmig_file_role role;	/* written under gmig_dev.lock, once */
	u64 id;
	struct pid *pid;		/* the registering process (a tgid reference) */
	char comm[GMIG_KMD_COMM_LEN];
	struct list_head node;		/* gmig_dev.clients; under gmig_dev.lock */
	bool acked;			/* acked the freeze in progress; under gmig_dev.lock */
};

struct gmig_dev {
	/*
	 * Protects every field below up to the counters. A spinlock taken with _bh because
	 * the deadline timer's callback changes the barrier from softirq context.
	 */
	spinlock_t lock;
	struct gmig_file *agent;		/* NULL when no agent is registered */
	struct pid_namespace *agent_ns;		/* the agent's, for event pids */
	struct list_head clients;
	unsigned int nclients;
	u64 next_id;

	/* Events for the agent, a ring of GMIG_KMD_EVENTS_MAX. */
	struct gmig_kmd_client_event events[GMIG_KMD_EVENTS_MAX];
	unsigned int ev_head, ev_count;
	bool ev_lost;

	/* The barrier. state changes only in barrier.c, each transition checking its source. */
	enum gmig_kmd_barrier_state state;
	unsigned int frz_clients;	/* clients counted in by the freeze in progress/last */
	unsigned int frz_acked;
	unsigned int frz_gone;
	int result;			/* the last freeze's outcome */
	bool result_ready;		/* not yet read by FREEZE_STATUS */
	unsigned long deadline_at;	/* jiffies when the freeze in progress times out */
	struct timer_list deadline;

	wait_queue_head_t agent_wq;	/* the agent's poll: events, barrier outcome */
	wait_queue_head_t barrier_wq;	/* clients: freeze requested, thawed */

	/* Counters for sysfs, updated without the lock. */
	atomic64_t staging_bytes;
	atomic64_t freezes;
	atomic64_t freeze_timeouts;
	atomic64_t bad_ioctls;
};

extern struct gmig_dev gmig;
extern struct miscdevice gmig_misc;

/* registry.c: who is registered, and the agent's event queue. */
int gmig_register(struct gmig_file *f, u32 role);
void gmig_unregister(struct gmig_file *f);
long gmig_ioctl_events(struct gmig_file *f, void __user *uarg);
bool gmig_events_pending(void);

/* barrier.c: the freeze barrier with its deadline. */
void gmig_barrier_init(void);
void gmig_barrier_exit(void);
long gmig_ioctl_freeze(struct gmig_file *f, void __user *uarg);
long gmig_ioctl_freeze_status(struct gmig_file *f, void __user *uarg);
long gmig_ioctl_thaw(struct gmig_file *f, void __user *uarg);
long gmig_ioctl_frozen(struct gmig_file *f, void __user *uarg);
long gmig_ioctl_wait_thaw(struct gmig_file *f, void __user *uarg);
/* Called with gmig.lock held when a client leaves or an agent goes away. */
void gmig_barrier_client_gone(struct gmig_file *f);
void gmig_barrier_client_joined(struct gmig_file *f);
void gmig_barrier_agent_gone(void);
/* Poll bits for a client's file. */
__poll_t gmig_barrier_client_poll(struct gmig_file *f);
bool gmig_barrier_result_ready(void);

/* staging.c: pinned buffers behind their own fds. */
long gmig_ioctl_staging_create(struct gmig_file *f, void __user *uarg);

/* main.c: argument copy shared by the ioctls. */
int gmig_copy_arg(void *karg, size_t ksize, const void __user *uarg);

/* sysfs.c */
extern const struct attribute_group *gmig_groups[];

#endif
