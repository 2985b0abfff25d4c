// SPDX-License-Identifier: GPL-2.0
/*
 * The freeze barrier: the agent closes it with a deadline, every registered client acks at its
 * safe point, and the agent learns when all live ones did or the deadline passed.
 *
 * OPEN --FREEZE--> FREEZING --last ack or last pending client gone--> FROZEN
 * FREEZING --deadline--> OPEN (result -ETIMEDOUT)
 * FREEZING, FROZEN --THAW or agent gone--> OPEN
 */
#include <linux/jiffies.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>

#include "gmig_dev.h"

static void gmig_barrier_open(int result)
{
	lockdep_assert_held(&gmig.lock);
	gmig.state = GMIG_KMD_BARRIER_OPEN;
	timer_delete(&gmig.deadline);
	if (result) {
		gmig.result = result;
		gmig.result_ready = true;
		wake_up_interruptible(&gmig.agent_wq);
	}
	wake_up_interruptible(&gmig.barrier_wq);
}

/* FREEZING -> FROZEN once no counted client is left to ack. */
static void gmig_barrier_check(void)
{
	lockdep_assert_held(&gmig.lock);
	if (gmig.state != GMIG_KMD_BARRIER_FREEZING)
		return;
	if (gmig.frz_acked + gmig.frz_gone < gmig.frz_clients)
		return;
	gmig.state = GMIG_KMD_BARRIER_FROZEN;
	gmig.result = 0;
	gmig.result_ready = true;
	timer_delete(&gmig.deadline);
	wake_up_interruptible(&gmig.agent_wq);
}

/*
 * Timers are only deleted without waiting (under the lock), so a callback may run late, even
 * after the next FREEZE re-armed the timer: it acts only once that freeze's deadline passed.
 */
static void gmig_deadline_fn(struct timer_list *t)
{
	spin_lock(&gmig.lock);
	if (gmig.state == GMIG_KMD_BARRIER_FREEZING && time_after_eq(jiffies, gmig.deadline_at)) {
		atomic64_inc(&gmig.freeze_timeouts);
		gmig_barrier_open(-ETIMEDOUT);
	}
	spin_unlock(&gmig.lock);
}

void gmig_barrier_init(void)
{
	gmig.state = GMIG_KMD_BARRIER_OPEN;
	timer_setup(&gmig.deadline, gmig_deadline_fn, 0);
}

void gmig_barrier_exit(void)
{
	timer_delete_sync(&gmig.deadline);
}

void gmig_barrier_client_joined(struct gmig_file *f)
{
	lockdep_assert_held(&gmig.lock);
	/*
	 * A client that registers while the barrier is closing must ack too; one that
	 * registers while it is closed starts acked and waits for the thaw before GPU work.
	 */
	f->acked = gmig.state == GMIG_KMD_BARRIER_FROZEN;
	if (gmig.state == GMIG_KMD_BARRIER_FREEZING)
		gmig.frz_clients++;
}

void gmig_barrier_client_gone(struct gmig_file *f)
{
	lockdep_assert_held(&gmig.lock);
	if (gmig.state != GMIG_KMD_BARRIER_FREEZING || f->acked)
		return;
	gmig.frz_gone++;
	gmig_barrier_check();
}

void gmig_barrier_agent_gone(void)
{
	lockdep_assert_held(&gmig.lock);
	/* Nobody is left to thaw the clients; let them run. */
	if (gmig.state != GMIG_KMD_BARRIER_OPEN)
		gmig_barrier_open(0);
	gmig.result_ready = false;
}

bool gmig_barrier_result_ready(void)
{
	bool ready;

	spin_lock_bh(&gmig.lock);
	ready = gmig.result_ready;
	spin_unlock_bh(&gmig.lock);
	return ready;
}

__poll_t gmig_barrier_client_poll(struct gmig_file *f)
{
	__poll_t mask = 0;

	spin_lock_bh(&gmig.lock);
	if (gmig.state == GMIG_KMD_BARRIER_FREEZING && !f->acked)
		mask = EPOLLPRI;
	spin_unlock_bh(&gmig.lock);
	return mask;
}

/* Reads a struct gmig_kmd_op and checks it carries no flags. */
static int gmig_client_op_arg(void __user *uarg)
{
	struct gmig_kmd_op op;
	int rc;

	rc = gmig_copy_arg(&op, sizeof(op), uarg);
	if (rc)
		return rc;
	return op.flags ? -EINVAL : 0;
}

long gmig_ioctl_freeze(struct gmig_file *f, void __user *uarg)
{
	struct gmig_kmd_freeze req;
	struct gmig_file *c;
	int rc;

	rc = gmig_copy_arg(&req, sizeof(req), uarg);
	if (rc)
		return rc;
	if (req.flags || req.reserved || !req.deadline_ms ||
	    req.deadline_ms > GMIG_KMD_DEADLINE_MAX_MS)
		return -EINVAL;
	if (READ_ONCE(f->role) != GMIG_FILE_AGENT)
		return -EPERM;

	spin_lock_bh(&gmig.lock);
	if (gmig.state != GMIG_KMD_BARRIER_OPEN) {
		rc = -EBUSY;
		goto out_unlock;
	}
	gmig.state = GMIG_KMD_BARRIER_FREEZING;
	gmig.frz_clients = gmig.nclients;
	gmig.frz_acked = 0;
	gmig.frz_gone = 0;
	gmig.result = -EINPROGRESS;
	gmig.result_ready = false;
	list_for_each_entry(c, &gmig.clients, node)
		c->acked = false;
	atomic64_inc(&gmig.freezes);
	gmig.deadline_at = jiffies + msecs_to_jiffies(req.deadline_ms);
	mod_timer(&gmig.deadline, gmig.deadline_at);
	wake_up_interruptible(&gmig.barrier_wq);
	/* With no client at all the barrier is closed at once. */
	gmig_barrier_check();
out_unlock:
	spin_unlock_bh(&gmig.lock);
	return rc;
}

long gmig_ioctl_freeze_status(struct gmig_file *f, void __user *uarg)
{
	struct gmig_kmd_freeze_status st;
	int rc;

	rc = gmig_copy_arg(&st, sizeof(st), uarg);
	if (rc)
		return rc;
	if (st.flags || st.reserved)
		return -EINVAL;
	if (READ_ONCE(f->role) != GMIG_FILE_AGENT)
		return -EPERM;

	spin_lock_bh(&gmig.lock);
	st.state = gmig.state;
	st.result = gmig.state == GMIG_KMD_BARRIER_FREEZING ? -EINPROGRESS : gmig.result;
	st.clients = gmig.frz_clients;
	st.acked = gmig.frz_acked;
	st.gone = gmig.frz_gone;
	gmig.result_ready = false;
	spin_unlock_bh(&gmig.lock);

	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

long gmig_ioctl_thaw(struct gmig_file *f, void __user *uarg)
{
	int rc;

	rc = gmig_client_op_arg(uarg);
	if (rc)
		return rc;
	if (READ_ONCE(f->role) != GMIG_FILE_AGENT)
		return -EPERM;

	spin_lock_bh(&gmig.lock);
	if (gmig.state == GMIG_KMD_BARRIER_OPEN) {
		rc = -EALREADY;
	} else {
		gmig_barrier_open(0);
		gmig.result_ready = false;
	}
	spin_unlock_bh(&gmig.lock);
	return rc;
}

long gmig_ioctl_frozen(struct gmig_file *f, void __user *uarg)
{
	int rc;

	rc = gmig_client_op_arg(uarg);
	if (rc)
		return rc;
	if (READ_ONCE(f->role) != GMIG_FILE_CLIENT)
		return -EPERM;

	spin_lock_bh(&gmig.lock);
	if (gmig.state != GMIG_KMD_BARRIER_FREEZING) {
		/* Nothing to ack: no freeze, or it already ended (deadline or thaw). */
		rc = gmig.state == GMIG_KMD_BARRIER_FROZEN ? -EALREADY : -ESRCH;
	} else if (f->acked) {
		rc = -EALREADY;
	} else {
		f->acked = true;
		gmig.frz_acked++;
		gmig_barrier_check();
	}
	spin_unlock_bh(&gmig.lock);
	return rc;
}

static bool gmig_barrier_is_open(void)
{
	bool open;

	spin_lock_bh(&gmig.lock);
	open = gmig.state == GMIG_KMD_BARRIER_OPEN;
	spin_unlock_bh(&gmig.lock);
	return open;
}

long gmig_ioctl_wait_thaw(struct gmig_file *f, void __user *uarg)
{
	int rc;

	rc = gmig_client_op_arg(uarg);
	if (rc)
		return rc;
	if (READ_ONCE(f->role) != GMIG_FILE_CLIENT)
		return -EPERM;
	return wait_event_interruptible(gmig.barrier_wq, gmig_barrier_is_open());
}
