// SPDX-License-Identifier: GPL-2.0
/* The client registry: who holds /dev/gmig open as agent or client, and the agent's events. */
#include <linux/capability.h>
#include <linux/pid_namespace.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "gmig_dev.h"

/* Queues an event for the agent; drops the oldest when full. */
static void gmig_event_push(struct gmig_file *c, u32 kind)
{
	struct gmig_kmd_client_event *ev;

	lockdep_assert_held(&gmig.lock);
	if (!gmig.agent)
		return;
	if (gmig.ev_count == GMIG_KMD_EVENTS_MAX) {
		gmig.ev_head = (gmig.ev_head + 1) % GMIG_KMD_EVENTS_MAX;
		gmig.ev_count--;
		gmig.ev_lost = true;
	}
	ev = &gmig.events[(gmig.ev_head + gmig.ev_count) % GMIG_KMD_EVENTS_MAX];
	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->pid = pid_nr_ns(c->pid, gmig.agent_ns);
	ev->id = c->id;
	memcpy(ev->comm, c->comm, sizeof(ev->comm));
	gmig.ev_count++;
	wake_up_interruptible(&gmig.agent_wq);
}

bool gmig_events_pending(void)
{
	bool pending;

	spin_lock_bh(&gmig.lock);
	pending = gmig.ev_count || gmig.ev_lost;
	spin_unlock_bh(&gmig.lock);
	return pending;
}

int gmig_register(struct gmig_file *f, u32 role)
{
	struct pid_namespace *ns = NULL;
	struct gmig_file *c;
	int rc = 0;

	if (role != GMIG_KMD_ROLE_AGENT && role != GMIG_KMD_ROLE_CLIENT)
		return -EINVAL;
	if (role == GMIG_KMD_ROLE_AGENT) {
		if (!capable(CAP_SYS_ADMIN))
			return -EPERM;
		ns = get_pid_ns(task_active_pid_ns(current));
	}

	spin_lock_bh(&gmig.lock);
	if (f->role != GMIG_FILE_NONE) {
		rc = -EALREADY;
		goto out_unlock;
	}
	if (role == GMIG_KMD_ROLE_AGENT && gmig.agent) {
		rc = -EBUSY;
		goto out_unlock;
	}
	f->id = ++gmig.next_id;
	f->pid = get_task_pid(current, PIDTYPE_TGID);
	get_task_comm(f->comm, current);
	if (role == GMIG_KMD_ROLE_AGENT) {
		WRITE_ONCE(f->role, GMIG_FILE_AGENT);
		gmig.agent = f;
		gmig.agent_ns = ns;
		ns = NULL;
		/* The agent learns of the clients that were there before it. */
		list_for_each_entry(c, &gmig.clients, node)
			gmig_event_push(c, GMIG_KMD_EVENT_REGISTERED);
	} else {
		WRITE_ONCE(f->role, GMIG_FILE_CLIENT);
		list_add_tail(&f->node, &gmig.clients);
		gmig.nclients++;
		gmig_barrier_client_joined(f);
		gmig_event_push(f, GMIG_KMD_EVENT_REGISTERED);
	}
out_unlock:
	spin_unlock_bh(&gmig.lock);
	if (ns)
		put_pid_ns(ns);
	return rc;
}

void gmig_unregister(struct gmig_file *f)
{
	struct pid_namespace *ns = NULL;

	spin_lock_bh(&gmig.lock);
	switch (f->role) {
	case GMIG_FILE_CLIENT:
		list_del_init(&f->node);
		gmig.nclients--;
		gmig_barrier_client_gone(f);
		gmig_event_push(f, GMIG_KMD_EVENT_GONE);
		break;
	case GMIG_FILE_AGENT:
		gmig_barrier_agent_gone();
		gmig.agent = NULL;
		ns = gmig.agent_ns;
		gmig.agent_ns = NULL;
		gmig.ev_head = 0;
		gmig.ev_count = 0;
		gmig.ev_lost = false;
		break;
	case GMIG_FILE_NONE:
		break;
	}
	f->role = GMIG_FILE_NONE;
	spin_unlock_bh(&gmig.lock);

	if (ns)
		put_pid_ns(ns);
}

long gmig_ioctl_events(struct gmig_file *f, void __user *uarg)
{
	struct gmig_kmd_client_events req;
	struct gmig_kmd_client_event *buf;
	unsigned int n, i;
	int rc;

	rc = gmig_copy_arg(&req, sizeof(req), uarg);
	if (rc)
		return rc;
	if (req.flags || req.reserved || !req.count)
		return -EINVAL;
	if (READ_ONCE(f->role) != GMIG_FILE_AGENT)
		return -EPERM;
	n = min_t(u32, req.count, GMIG_KMD_EVENTS_MAX);
	if (!access_ok(u64_to_user_ptr(req.events), (size_t)n * sizeof(*buf)))
		return -EFAULT;
	buf = kcalloc(n, sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	/* Events taken here are lost if the copy below faults; the agent's memory is its own. */
	spin_lock_bh(&gmig.lock);
	n = min(n, gmig.ev_count);
	for (i = 0; i < n; i++)
		buf[i] = gmig.events[(gmig.ev_head + i) % GMIG_KMD_EVENTS_MAX];
	gmig.ev_head = (gmig.ev_head + n) % GMIG_KMD_EVENTS_MAX;
	gmig.ev_count -= n;
	req.flags = gmig.ev_lost ? GMIG_KMD_EVENTS_LOST : 0;
	gmig.ev_lost = false;
	spin_unlock_bh(&gmig.lock);

	req.count = n;
	rc = 0;
	if (copy_to_user(u64_to_user_ptr(req.events), buf, (size_t)n * sizeof(*buf)) ||
	    copy_to_user(uarg, &req, sizeof(req)))
		rc = -EFAULT;
	kfree(buf);
	return rc;
}
