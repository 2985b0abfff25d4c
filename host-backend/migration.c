/* The source side's jobs: the tables, their one driver, the guest steps, the peer link and rollback. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <lz4.h>

#include "gmig/version.h"

#include "auth.h"
#include "checkpoint.h"
#include "daemon.h"
#include "guest.h"
#include "guestmem.h"
#include "link.h"
#include "log.h"
#include "migration.h"
#include "policy.h"
#include "push.h"
#include "vm.h"
#include "worker.h"

#define BUSY_RETRY_MS		25	/* an agent still winding down a step answers -EBUSY */
#define BUSY_TRIES		200
#define RB_ABORT_BUSY_TRIES	40	/* then ABORT's -EBUSY means the GPUs are released */
#define MIG_QUEUE		16	/* events posted while one is handled */
#define REGROW_MAX		8	/* inventories again in one job because regions grew */
#define VM_PLUG_POLL_MS		100	/* ATTACH is asked again until a re-plugged GPU shows */

const char *const mig_state_names[] = {
	[MS_START] = "START",
	[MS_LOAD] = "LOAD",
	[MS_CONNECT] = "CONNECT",
	[MS_INVENTORY] = "INVENTORY",
	[MS_PEER] = "PEER",
	[MS_PRECOPY] = "PRECOPY",
	[MS_FREEZE] = "FREEZE",
	[MS_FINAL] = "FINAL",
	[MS_RELEASE] = "RELEASE",
	[MS_UNPLUG] = "UNPLUG",
	[MS_VM_MIGRATE] = "VM_MIGRATE",
	[MS_HANDOVER] = "HANDOVER",
	[MS_WRITE] = "WRITE",
	[MS_ATTACH] = "ATTACH",
	[MS_RESTORE] = "RESTORE",
	[MS_THAW] = "THAW",
	[MS_ROLLBACK] = "ROLLBACK",
	[MS_RB_ABORT] = "RB_ABORT",
	[MS_RB_REPLUG] = "RB_REPLUG",
	[MS_RB_ATTACH] = "RB_ATTACH",
	[MS_RB_RESTORE] = "RB_RESTORE",
	[MS_RB_THAW] = "RB_THAW",
	[MS_DONE] = "DONE",
	[MS_FAILED] = "FAILED",
	[MS_ROLLED_BACK] = "ROLLED_BACK",
	[MS_LOST] = "LOST",
};

const char *const mig_event_names[] = {
	[ME_START] = "start",
	[ME_OK] = "ok",
	[ME_MORE] = "more",
	[ME_ENOUGH] = "enough",
	[ME_FAIL] = "fail",
	[ME_BUSY] = "busy",
	[ME_GUEST_LOST] = "guest-lost",
	[ME_PEER_LOST] = "peer-lost",
	[ME_ABORT] = "abort",
	[ME_TIMEOUT] = "timeout",
	[ME_DEST_STEP] = "dest-step",
	[ME_MIGRATED] = "migrated",
	[ME_REFUSED] = "refused",
	[ME_PH_RUNNING] = "phase-running",
	[ME_PH_RELEASED] = "phase-released",
	[ME_PH_ATTACHED] = "phase-attached",
};

const char *const mig_action_names[] = {
	[A_NONE] = "none",
	[A_LOAD] = "load",
	[A_CONNECT] = "connect",
	[A_INVENTORY] = "inventory",
	[A_CHECK] = "check",
	[A_PEER] = "peer",
	[A_DECIDE] = "decide",
	[A_ROUND] = "round",
	[A_FREEZE] = "freeze",
	[A_FINAL] = "final",
	[A_RELEASE] = "release",
	[A_HANDOVER] = "handover",
	[A_UNPLUG] = "unplug",
	[A_VM_MIGRATE] = "vm-migrate",
	[A_VM_CANCEL] = "vm-cancel",
	[A_WRITE] = "write",
	[A_ATTACH] = "attach",
	[A_RESTORE] = "restore",
	[A_THAW] = "thaw",
	[A_NOTE] = "note",
	[A_ROLLBACK] = "rollback",
	[A_RB_ABORT] = "rb-abort",
	[A_RB_REPLUG] = "rb-replug",
	[A_RB_ATTACH] = "rb-attach",
	[A_RB_RESTORE] = "rb-restore",
	[A_RB_THAW] = "rb-thaw",
	[A_DONE] = "done",
	[A_FAIL] = "fail",
	[A_ROLLED_BACK] = "rolled-back",
	[A_LOST] = "lost",
};

/* --- the tables --- */

/* Nothing was done to the guest yet: a failure just ends the job. */
#define UNTOUCHED(s)								\
	{ s, ME_FAIL, A_FAIL, MS_FAILED },					\
	{ s, ME_GUEST_LOST, A_FAIL, MS_FAILED },				\
	{ s, ME_PEER_LOST, A_FAIL, MS_FAILED },					\
	{ s, ME_ABORT, A_FAIL, MS_FAILED }

/* The guest is in a migration: a failure rolls it back. */
#define ROLLS_BACK(s)								\
	{ s, ME_FAIL, A_ROLLBACK, MS_ROLLBACK },				\
	{ s, ME_GUEST_LOST, A_ROLLBACK, MS_ROLLBACK },				\
	{ s, ME_PEER_LOST, A_ROLLBACK, MS_ROLLBACK },				\
	{ s, ME_ABORT, A_ROLLBACK, MS_ROLLBACK }

/* Undoing, by the phase the guest is in. */
#define ROLLBACK_TO(released, rb_next)						\
	{ MS_ROLLBACK, ME_PH_RUNNING, A_RB_ABORT, MS_RB_ABORT },		\
	{ MS_ROLLBACK, ME_PH_RELEASED, released, rb_next },		\
	{ MS_ROLLBACK, ME_PH_ATTACHED, A_RB_RESTORE, MS_RB_RESTORE },		\
	{ MS_ROLLBACK, ME_MIGRATED, A_DONE, MS_DONE },				\
	{ MS_ROLLBACK, ME_GUEST_LOST, A_LOST, MS_LOST },			\
	{ MS_RB_ABORT, ME_OK, A_ROLLED_BACK, MS_ROLLED_BACK },			\
	{ MS_RB_ABORT, ME_BUSY, released, rb_next },			\
	{ MS_RB_ABORT, ME_FAIL, A_LOST, MS_LOST },				\
	{ MS_RB_ABORT, ME_GUEST_LOST, A_LOST, MS_LOST },			\
	{ MS_RB_ATTACH, ME_OK, A_RB_RESTORE, MS_RB_RESTORE },			\
	{ MS_RB_ATTACH, ME_FAIL, A_LOST, MS_LOST },				\
	{ MS_RB_ATTACH, ME_GUEST_LOST, A_LOST, MS_LOST },			\
	{ MS_RB_RESTORE, ME_OK, A_RB_THAW, MS_RB_THAW },			\
	{ MS_RB_RESTORE, ME_FAIL, A_LOST, MS_LOST },				\
	{ MS_RB_RESTORE, ME_GUEST_LOST, A_LOST, MS_LOST },			\
	{ MS_RB_THAW, ME_OK, A_ROLLED_BACK, MS_ROLLED_BACK },			\
	{ MS_RB_THAW, ME_FAIL, A_LOST, MS_LOST },				\
	{ MS_RB_THAW, ME_GUEST_LOST, A_LOST, MS_LOST }

/* Released guests attach back to their GPUs. */
#define ROLLBACK_ROWS	ROLLBACK_TO(A_RB_ATTACH, MS_RB_ATTACH)

/* Pre-copy rounds under the convergence policy, then the freeze and the final delta. */
#define PRECOPY_ROWS								\
	{ MS_PRECOPY, ME_MORE, A_ROUND, MS_PRECOPY },				\
	{ MS_PRECOPY, ME_OK, A_DECIDE, MS_PRECOPY },				\
	{ MS_PRECOPY, ME_ENOUGH, A_FREEZE, MS_FREEZE },				\
	ROLLS_BACK(MS_PRECOPY),							\
	{ MS_FREEZE, ME_OK, A_FINAL, MS_FINAL },				\
	ROLLS_BACK(MS_FREEZE),							\
	ROLLS_BACK(MS_FINAL)

static const struct mig_row migrate_tbl[] = {
	/* state	event		action		next */
	{ MS_START,	ME_START,	A_CONNECT,	MS_CONNECT },
	{ MS_CONNECT,	ME_OK,		A_INVENTORY,	MS_INVENTORY },
	UNTOUCHED(MS_CONNECT),
	{ MS_INVENTORY,	ME_OK,		A_PEER,		MS_PEER },
	UNTOUCHED(MS_INVENTORY),
	{ MS_PEER,	ME_OK,		A_DECIDE,	MS_PRECOPY },
	UNTOUCHED(MS_PEER),
	PRECOPY_ROWS,
	{ MS_FINAL,	ME_OK,		A_RELEASE,	MS_RELEASE },
	{ MS_RELEASE,	ME_OK,		A_HANDOVER,	MS_HANDOVER },
	ROLLS_BACK(MS_RELEASE),
	{ MS_HANDOVER,	ME_DEST_STEP,	A_NOTE,		MS_HANDOVER },
	{ MS_HANDOVER,	ME_MIGRATED,	A_DONE,		MS_DONE },
	/* The destination let go of the guest, or died: take it back. */
	{ MS_HANDOVER,	ME_REFUSED,	A_ROLLBACK,	MS_ROLLBACK },
	{ MS_HANDOVER,	ME_PEER_LOST,	A_ROLLBACK,	MS_ROLLBACK },
	/* Silent but maybe alive: touching the guest could fight it. */
	{ MS_HANDOVER,	ME_TIMEOUT,	A_LOST,		MS_LOST },
	ROLLBACK_ROWS,
};

/*
 * A guest under QEMU: after the release its GPU device leaves the VM and QEMU migrates the VM;
 * only then does the destination take over. Until QEMU's migration completes, a failure plugs
 * the same GPU back in and rolls back; once it completed, the guest lives at the destination
 * whatever happens, so a destination that fails or goes quiet leaves it in doubt.
 */
static const struct mig_row migrate_vm_tbl[] = {
	/* state	event		action		next */
	{ MS_START,	ME_START,	A_CONNECT,	MS_CONNECT },
	{ MS_CONNECT,	ME_OK,		A_INVENTORY,	MS_INVENTORY },
	UNTOUCHED(MS_CONNECT),
	{ MS_INVENTORY,	ME_OK,		A_PEER,		MS_PEER },
	UNTOUCHED(MS_INVENTORY),
	{ MS_PEER,	ME_OK,		A_DECIDE,	MS_PRECOPY },
	UNTOUCHED(MS_PEER),
	PRECOPY_ROWS,
	{ MS_FINAL,	ME_OK,		A_RELEASE,	MS_RELEASE },
	{ MS_RELEASE,	ME_OK,		A_UNPLUG,	MS_UNPLUG },
	ROLLS_BACK(MS_RELEASE),
	{ MS_UNPLUG,	ME_OK,		A_VM_MIGRATE,	MS_VM_MIGRATE },
	{ MS_UNPLUG,	ME_FAIL,	A_ROLLBACK,	MS_ROLLBACK },
	/* A QMP step is in flight on the worker: stop it; its end rolls back. */
	{ MS_UNPLUG,	ME_GUEST_LOST,	A_VM_CANCEL,	MS_UNPLUG },
	{ MS_UNPLUG,	ME_PEER_LOST,	A_VM_CANCEL,	MS_UNPLUG },
	{ MS_UNPLUG,	ME_ABORT,	A_VM_CANCEL,	MS_UNPLUG },
	{ MS_VM_MIGRATE, ME_OK,		A_HANDOVER,	MS_HANDOVER },
	{ MS_VM_MIGRATE, ME_FAIL,	A_ROLLBACK,	MS_ROLLBACK },
	/* The VM's channel may drop while QEMU moves it; the destination resumes it. */
	{ MS_VM_MIGRATE, ME_GUEST_LOST,	A_NONE,		MS_VM_MIGRATE },
	{ MS_VM_MIGRATE, ME_PEER_LOST,	A_VM_CANCEL,	MS_VM_MIGRATE },
	{ MS_VM_MIGRATE, ME_ABORT,	A_VM_CANCEL,	MS_VM_MIGRATE },
	{ MS_HANDOVER,	ME_DEST_STEP,	A_NOTE,		MS_HANDOVER },
	{ MS_HANDOVER,	ME_MIGRATED,	A_DONE,		MS_DONE },
	{ MS_HANDOVER,	ME_REFUSED,	A_LOST,		MS_LOST },
	{ MS_HANDOVER,	ME_PEER_LOST,	A_LOST,		MS_LOST },
	{ MS_HANDOVER,	ME_TIMEOUT,	A_LOST,		MS_LOST },
	ROLLBACK_TO(A_RB_REPLUG, MS_RB_REPLUG),
	{ MS_RB_REPLUG,	ME_OK,		A_RB_ATTACH,	MS_RB_ATTACH },
	{ MS_RB_REPLUG,	ME_FAIL,	A_LOST,		MS_LOST },
	{ MS_RB_REPLUG,	ME_GUEST_LOST,	A_NONE,		MS_RB_REPLUG },
};

static const struct mig_row checkpoint_tbl[] = {
	/* state	event		action		next */
	{ MS_START,	ME_START,	A_CONNECT,	MS_CONNECT },
	{ MS_CONNECT,	ME_OK,		A_INVENTORY,	MS_INVENTORY },
	UNTOUCHED(MS_CONNECT),
	{ MS_INVENTORY,	ME_OK,		A_DECIDE,	MS_PRECOPY },
	UNTOUCHED(MS_INVENTORY),
	PRECOPY_ROWS,
	/* The image is whole in memory: the programs go on while the file is written. */
	{ MS_FINAL,	ME_OK,		A_THAW,		MS_THAW },
	{ MS_THAW,	ME_OK,		A_WRITE,	MS_WRITE },
	ROLLS_BACK(MS_THAW),
	{ MS_WRITE,	ME_OK,		A_DONE,		MS_DONE },
	{ MS_WRITE,	ME_FAIL,	A_FAIL,		MS_FAILED },
	ROLLBACK_ROWS,
};

static const struct mig_row checkpoint_stop_tbl[] = {
	/* state	event		action		next */
	{ MS_START,	ME_START,	A_CONNECT,	MS_CONNECT },
	{ MS_CONNECT,	ME_OK,		A_INVENTORY,	MS_INVENTORY },
	UNTOUCHED(MS_CONNECT),
	{ MS_INVENTORY,	ME_OK,		A_DECIDE,	MS_PRECOPY },
	UNTOUCHED(MS_INVENTORY),
	PRECOPY_ROWS,
	/* The file first: the programs let go of their GPUs only once it is safe on disk. */
	{ MS_FINAL,	ME_OK,		A_WRITE,	MS_WRITE },
	{ MS_WRITE,	ME_OK,		A_RELEASE,	MS_RELEASE },
	{ MS_WRITE,	ME_FAIL,	A_ROLLBACK,	MS_ROLLBACK },
	{ MS_RELEASE,	ME_OK,		A_DONE,		MS_DONE },
	ROLLS_BACK(MS_RELEASE),
	ROLLBACK_ROWS,
};

static const struct mig_row restore_tbl[] = {
	/* state	event		action		next */
	{ MS_START,	ME_START,	A_LOAD,		MS_LOAD },
	{ MS_LOAD,	ME_OK,		A_CONNECT,	MS_CONNECT },
	{ MS_LOAD,	ME_FAIL,	A_FAIL,		MS_FAILED },
	{ MS_CONNECT,	ME_OK,		A_INVENTORY,	MS_INVENTORY },
	UNTOUCHED(MS_CONNECT),
	{ MS_INVENTORY,	ME_OK,		A_CHECK,	MS_INVENTORY },
	{ MS_INVENTORY,	ME_PH_RELEASED,	A_ATTACH,	MS_ATTACH },
	/* An earlier restore stopped halfway: the GPUs are bound, the bytes go in again. */
	{ MS_INVENTORY,	ME_PH_ATTACHED,	A_RESTORE,	MS_RESTORE },
	{ MS_INVENTORY,	ME_PH_RUNNING,	A_FAIL,		MS_FAILED },
	UNTOUCHED(MS_INVENTORY),
	{ MS_ATTACH,	ME_OK,		A_RESTORE,	MS_RESTORE },
	{ MS_ATTACH,	ME_FAIL,	A_FAIL,		MS_FAILED },
	{ MS_ATTACH,	ME_GUEST_LOST,	A_LOST,		MS_LOST },
	{ MS_RESTORE,	ME_OK,		A_THAW,		MS_THAW },
	{ MS_RESTORE,	ME_FAIL,	A_FAIL,		MS_FAILED },
	{ MS_RESTORE,	ME_GUEST_LOST,	A_LOST,		MS_LOST },
	{ MS_THAW,	ME_OK,		A_DONE,		MS_DONE },
	{ MS_THAW,	ME_FAIL,	A_LOST,		MS_LOST },
	{ MS_THAW,	ME_GUEST_LOST,	A_LOST,		MS_LOST },
};

static const struct mig_row inventory_tbl[] = {
	/* state	event		action		next */
	{ MS_START,	ME_START,	A_CONNECT,	MS_CONNECT },
	{ MS_CONNECT,	ME_OK,		A_INVENTORY,	MS_INVENTORY },
	UNTOUCHED(MS_CONNECT),
	{ MS_INVENTORY,	ME_OK,		A_DONE,		MS_DONE },
	UNTOUCHED(MS_INVENTORY),
};

#define ROWS(t)	(sizeof(t) / sizeof((t)[0]))

const struct mig_row *mig_table(enum job_kind kind, bool stop, unsigned int *count)
{
	switch (kind) {
	case JOB_MIGRATE:
		*count = ROWS(migrate_tbl);
		return migrate_tbl;
	case JOB_CHECKPOINT:
		*count = stop ? ROWS(checkpoint_stop_tbl) : ROWS(checkpoint_tbl);
		return stop ? checkpoint_stop_tbl : checkpoint_tbl;
	case JOB_RESTORE:
		*count = ROWS(restore_tbl);
		return restore_tbl;
	case JOB_INVENTORY:
		*count = ROWS(inventory_tbl);
		return inventory_tbl;
	default:
		*count = 0;
		return NULL;
	}
}

const struct mig_row *mig_table_vm(unsigned int *count)
{
	*count = sizeof(migrate_vm_tbl) / sizeof(migrate_vm_tbl[0]);
	return migrate_vm_tbl;
}

const struct mig_row *mig_row(const struct mig_row *table, unsigned int count,
			      enum mig_state state, enum mig_event event)
{
	for (unsigned int i = 0; i < count; i++) {
		if (table[i].state == state && table[i].event == event)
			return &table[i];
	}
	return NULL;
}

bool mig_state_terminal(enum mig_state s)
{
	return s == MS_DONE || s == MS_FAILED || s == MS_ROLLED_BACK || s == MS_LOST;
}

/* --- the machine --- */

struct inv_client {
	uint32_t pid, gpu;
	char name[33];
	uint8_t *regions;		/* the INV_CLIENT tail: region records */
	uint32_t regions_len;
};

/* The guest's inventory as its agent told it, checked. */
struct inventory {
	uint8_t gpus[GMIG_GPUS_MAX * GMIG_REC_gpu_SIZE];
	uint32_t gpus_len;
	struct gmig_rec_gpu gpu[GMIG_GPUS_MAX];
	uint32_t ngpus;
	struct inv_client *clients;
	uint32_t nclients, expect;
};

enum peer_state { PS_NONE, PS_CONNECTING, PS_CHALLENGE, PS_PROOF, PS_WELCOME, PS_SYNC, PS_OPEN,
		  PS_GONE };

struct mig {
	struct gmigd *d;
	struct job *job;
	struct mig_opts o;
	const struct mig_row *tbl;
	unsigned int ntbl;
	enum mig_state state;
	uint64_t entered_us;
	uint64_t state_us[MS_COUNT];
	enum mig_event queue[MIG_QUEUE];
	unsigned int qhead, qtail;
	bool running;			/* the driver is on the stack */
	bool dead;			/* ended: waiting to be freed from the loop */
	struct event *defer;		/* starts the job from the loop */
	int err;			/* the failure that ended or undid the job */
	char why[JOB_ERROR_MAX];
	char rb_why[JOB_ERROR_MAX];	/* what went wrong while undoing */
	enum mig_state failed_in;

	/* The guest and the request in flight on it. */
	struct guest *g;
	bool claimed;
	uint8_t phase;			/* the agent's, as its answers and WELCOMEs tell */
	uint16_t want;			/* the answer awaited; 0: none */
	struct gmig_msg req;
	uint8_t req_tail[GMIG_GPUS_MAX * GMIG_REC_gpu_map_SIZE + GMIG_TEXT_MAX];
	uint64_t req_seq;
	uint32_t step_ms;
	struct event *step_timer;
	struct event *busy_timer;
	unsigned int busy_tries;
	bool guest_paused;		/* waiting for the peer's output to drain */
	bool rb_waiting;		/* rollback waits for the guest or the step in flight */
	bool handover_sent;

	struct inventory inv;
	struct gmig_image img;
	bool img_ready;
	uint64_t img_accounted;
	uint32_t frozen_got, frozen_count;
	uint32_t *frozen_pids;		/* as many as the image has clients */
	bool inv_stale;			/* a region grew past what the image knows */
	bool refreshing;		/* an inventory in the middle of a round */
	unsigned int refreshes;

	uint32_t round, base;		/* the round in flight (or the last); the last whole one */
	uint64_t round_started_us;
	uint64_t round_wire;
	enum policy_verdict verdict;
	uint64_t est_ms;

	struct gmig_rec_gpu_map map[GMIG_GPUS_MAX], own[GMIG_GPUS_MAX];
	uint32_t nmap, nown;

	/* The destination. */
	struct link *peer;
	enum peer_state ps;
	char to_host[ADDR_HOST_MAX];
	uint16_t to_port;
	char channel[GMIG_ADDR_MAX + 1];
	uint64_t peer_session, peer_tx;
	uint16_t peer_version;
	bool peer_lz4;
	uint8_t nonce_s[GMIG_MAC_SIZE], nonce_d[GMIG_MAC_SIZE];
	uint8_t hello[128];
	size_t hello_len;
	uint64_t ping;
	struct event *peer_timer;	/* handshake, sync and hand-over deadlines */

	struct push push;
	bool pushing;
	struct worker worker;

	/* The guest's QEMU, when it runs under one (vm.NAME.qmp); the worker drives it. */
	const struct config_vm *vm;
	struct vm_timeouts vmt;
	struct vm_gpu gpu;		/* the GPU device as it was before the unplug */
	struct vm_migrate_stats vmst;
	bool vm_cancelled;		/* the step in flight was told to stop */
	bool unplugged, replugged;
	uint32_t plug_waits;
	uint64_t t_unplug_us;
	struct event *keepalive;	/* PING to the destination while QEMU works */

	/* Zero-copy: the guest's RAM and its clients' pinned staging (vm.NAME.ram). */
	struct guestmem *ram;
	struct gm_table stagings;	/* in the RAM (PHYS) or their own fds (SHM) */
	uint8_t *ref_buf;		/* one slot's bytes on their way to the destination */
	uint64_t zero_copy, refs;

	/* Times (monotonic us, 0: not yet) and bytes, for the report. */
	uint64_t t_freeze, t_frozen, t_handover, t_attached, t_restored, t_thawed, t_stream;
	uint64_t from_guest, to_peer, restored, file_bytes;
};

static void post(struct mig *m, enum mig_event ev);
static void choose(struct mig *m);
static uint32_t step_timeout(const struct mig *m);

static const char *peer_of(const struct mig *m)
{
	return m->g ? m->g->peer : "guest";
}

/* Records the first failure; later ones (while undoing) go to rb_why. */
static void fail_note(struct mig *m, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_note(struct mig *m, int err, const char *fmt, ...)
{
	char text[JOB_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (!m->why[0]) {
		m->err = err < 0 ? err : -EIO;
		m->failed_in = m->state;
		snprintf(m->why, sizeof(m->why), "%s", text);
		log_warn(peer_of(m), "%s", text);
	} else if (!m->rb_why[0] && m->state >= MS_ROLLBACK) {
		snprintf(m->rb_why, sizeof(m->rb_why), "%s", text);
		log_warn(peer_of(m), "while rolling back: %s", text);
	} else {
		log_info(peer_of(m), "%s", text);
	}
}

static void arm(struct event *ev, uint32_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

/* --- the peer link (source side) --- */

/* Copies @s as wire text (no control characters), at most @cap bytes; its length. */
static size_t text_clean(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (; s[n] && n < cap; n++)
		out[n] = (uint8_t)s[n] < 0x20 || s[n] == 0x7f ? '?' : (uint8_t)s[n];
	return n;
}

static int peer_send(struct mig *m, const struct gmig_msg *msg)
{
	struct gmig_hdr h = { .version = (uint8_t)(m->peer_version ? m->peer_version :
						   GMIG_VERSION_MIN),
			      .session = m->peer_session, .seq = ++m->peer_tx };
	size_t before;
	int rc;

	if (!m->peer || m->ps == PS_GONE)
		return -ENOTCONN;
	before = m->peer->tx_bytes;
	rc = link_send(m->peer, &h, msg);
	if (!rc) {
		m->to_peer += m->peer->tx_bytes - before;
		m->round_wire += m->peer->tx_bytes - before;
	}
	return rc;
}

/* Forwards a message of the stream; a link that cannot take it ends the migration. */
static void peer_forward(struct mig *m, const struct gmig_msg *msg)
{
	int rc;

	if (m->o.kind != JOB_MIGRATE || m->ps != PS_OPEN)
		return;
	rc = peer_send(m, msg);
	if (rc) {
		fail_note(m, rc, "cannot send %s to the destination: %s", gmig_msg_name(msg->type),
			  strerror(-rc));
		post(m, ME_PEER_LOST);
		return;
	}
	if (link_out_len(m->peer) > m->d->cfg.peer_buffer && !m->guest_paused) {
		/*
		 * The destination is slower than the guest: stop reading until it drains. The
		 * guest is not late meanwhile; the destination must drain within peer_timeout_ms.
		 */
		m->guest_paused = true;
		guest_pause(m->g);
		evtimer_del(m->step_timer);
		arm(m->peer_timer, m->d->cfg.peer_timeout_ms);
	}
}

static void forward_region(struct mig *m, const struct gmig_region_data *rd)
{
	struct gmig_msg out = { .type = GMIG_MSG_REGION_DATA, .u.region_data = *rd };

	if (m->o.kind != JOB_MIGRATE || m->ps != PS_OPEN)
		return;
	if (m->peer_lz4 && rd->encoding == GMIG_ENC_RAW) {
		int n = LZ4_compress_default((const char *)rd->tail.ptr, (char *)m->d->lz4_buf,
					     (int)rd->length, LZ4_compressBound(GMIG_DATA_MAX));

		if (n > 0 && (uint32_t)n < rd->length) {
			out.u.region_data.encoding = GMIG_ENC_LZ4;
			out.u.region_data.tail = (struct gmig_tail){ m->d->lz4_buf, (uint32_t)n };
		}
	}
	peer_forward(m, &out);
}

/* The inventory again, for the destination to size its image. */
static int send_inventory(struct mig *m)
{
	struct gmig_msg msg = { .type = GMIG_MSG_INV_GPUS };
	int rc;

	msg.u.inv_gpus.clients = m->inv.nclients;
	msg.u.inv_gpus.tail = (struct gmig_tail){ m->inv.gpus, m->inv.gpus_len };
	rc = peer_send(m, &msg);
	for (uint32_t i = 0; !rc && i < m->inv.nclients; i++) {
		const struct inv_client *c = &m->inv.clients[i];

		memset(&msg, 0, sizeof(msg));
		msg.type = GMIG_MSG_INV_CLIENT;
		msg.u.inv_client.index = i;
		msg.u.inv_client.count = m->inv.nclients;
		msg.u.inv_client.pid = c->pid;
		msg.u.inv_client.gpu = c->gpu;
		memcpy(msg.u.inv_client.name, c->name, sizeof(msg.u.inv_client.name));
		msg.u.inv_client.tail = (struct gmig_tail){ c->regions, c->regions_len };
		rc = peer_send(m, &msg);
	}
	return rc;
}

static void peer_gone(struct mig *m, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void peer_gone(struct mig *m, int err, const char *fmt, ...)
{
	char text[JOB_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	m->ps = PS_GONE;
	evtimer_del(m->peer_timer);
	link_free(m->peer);
	m->peer = NULL;
	fail_note(m, err, "destination %s: %s", m->job->target, text);
	post(m, ME_PEER_LOST);
}

static void peer_on_up(void *ctx)
{
	struct mig *m = ctx;
	struct gmig_hdr h = { .version = GMIG_VERSION_MIN, .seq = ++m->peer_tx };
	struct gmig_msg msg = { .type = GMIG_MSG_HELLO, .u.hello = {
		.min_version = GMIG_VERSION_MIN, .max_version = GMIG_VERSION_MAX,
		.role = GMIG_ROLE_PEER, .caps = m->d->cfg.peer_lz4 ? GMIG_CAP_LZ4 : 0 } };
	int rc;

	snprintf(msg.u.hello.name, sizeof(msg.u.hello.name), "%s", m->d->name);
	/* The MAC covers the HELLO exactly as it went out. */
	rc = link_send_copy(m->peer, &h, &msg, m->hello, sizeof(m->hello), &m->hello_len);
	if (rc) {
		peer_gone(m, rc, "HELLO not sent: %s", strerror(-rc));
		return;
	}
	m->ps = PS_CHALLENGE;
}

static void peer_on_down(void *ctx, int err, const char *why)
{
	struct mig *m = ctx;

	link_free(m->peer);	/* inside its callback: freed on the way out */
	m->peer = NULL;
	m->ps = PS_GONE;
	evtimer_del(m->peer_timer);
	if (m->dead)
		return;
	fail_note(m, err ? err : -ECONNRESET, "destination %s: %s", m->job->target, why);
	post(m, ME_PEER_LOST);
}

static void peer_on_drained(void *ctx)
{
	struct mig *m = ctx;

	if (m->guest_paused) {
		m->guest_paused = false;
		guest_resume(m->g);
		evtimer_del(m->peer_timer);
		if (m->want)
			arm(m->step_timer, step_timeout(m));
	}
}

/* Frames from the destination: the handshake, then the relays of its steps. */
static int peer_on_frame(void *ctx, const struct gmig_frame *f)
{
	struct mig *m = ctx;
	uint8_t mac[GMIG_MAC_SIZE];
	struct gmig_msg msg;
	int rc = gmig_msg_decode(f, &msg);

	if (m->dead)
		return LINK_CONTINUE;
	if (rc) {
		link_refuse(m->peer, rc, f->hdr.type, f->hdr.seq, "bad message");
		peer_gone(m, rc, "bad %s: %s", gmig_msg_name(f->hdr.type), gmig_proto_strerror(rc));
		return LINK_PAUSE;
	}
	if (msg.type == GMIG_MSG_ERROR) {
		peer_gone(m, msg.u.error.code, "refused: %.*s (%s)", (int)msg.u.error.tail.len,
			  (const char *)msg.u.error.tail.ptr, strerror(-msg.u.error.code));
		return LINK_PAUSE;
	}
	if (m->ps >= PS_SYNC && f->hdr.session != m->peer_session) {
		peer_gone(m, -EPROTO, "%s of another session", gmig_msg_name(msg.type));
		return LINK_PAUSE;
	}
	switch (m->ps) {
	case PS_CHALLENGE:
		if (msg.type != GMIG_MSG_CHALLENGE)
			break;
		/* Kept for the PROOF: the destination signs both nonces. */
		memcpy(m->nonce_d, msg.u.challenge.nonce, sizeof(m->nonce_d));
		auth_nonce(m->nonce_s);
		auth_mac_source(&m->d->secret, m->nonce_d, m->hello, m->hello_len, mac);
		memset(&msg, 0, sizeof(msg));
		msg.type = GMIG_MSG_AUTH;
		memcpy(msg.u.auth.mac, mac, sizeof(mac));
		memcpy(msg.u.auth.nonce, m->nonce_s, sizeof(m->nonce_s));
		rc = peer_send(m, &msg);
		if (rc) {
			peer_gone(m, rc, "AUTH not sent");
			return LINK_PAUSE;
		}
		m->ps = PS_PROOF;
		return LINK_CONTINUE;
	case PS_PROOF:
		if (msg.type != GMIG_MSG_PROOF)
			break;
		auth_mac_dest(&m->d->secret, m->nonce_s, m->nonce_d, mac);
		if (!auth_mac_equal(mac, msg.u.proof.mac)) {
			link_refuse(m->peer, -EACCES, GMIG_MSG_PROOF, f->hdr.seq, "wrong proof");
			peer_gone(m, -EACCES, "it could not prove the shared secret");
			return LINK_PAUSE;
		}
		m->ps = PS_WELCOME;
		return LINK_CONTINUE;
	case PS_WELCOME:
		if (msg.type != GMIG_MSG_WELCOME)
			break;
		if (msg.u.welcome.role != GMIG_ROLE_PEER || msg.u.welcome.version < GMIG_VERSION_MIN ||
		    msg.u.welcome.version > GMIG_VERSION_MAX) {
			peer_gone(m, -EPROTO, "WELCOME from a %s, version %u",
				  gmig_role_name(msg.u.welcome.role), msg.u.welcome.version);
			return LINK_PAUSE;
		}
		m->peer_session = msg.u.welcome.session;
		m->peer_version = msg.u.welcome.version;
		m->peer_lz4 = (msg.u.welcome.caps & GMIG_CAP_LZ4) && m->d->cfg.peer_lz4;
		link_set_versions(m->peer, (uint8_t)m->peer_version, (uint8_t)m->peer_version);
		memset(&msg, 0, sizeof(msg));
		msg.type = GMIG_MSG_IMAGE_BEGIN;
		snprintf(msg.u.image_begin.guest, sizeof(msg.u.image_begin.guest), "%s", m->g->name);
		msg.u.image_begin.bytes = m->img.bytes;
		msg.u.image_begin.tail = (struct gmig_tail){ (const uint8_t *)m->channel,
							     (uint32_t)strlen(m->channel) };
		rc = peer_send(m, &msg);
		if (!rc)
			rc = send_inventory(m);
		if (!rc) {
			/* A PONG comes back only after the destination took all of the above. */
			auth_nonce(mac);
			memcpy(&m->ping, mac, sizeof(m->ping));
			memset(&msg, 0, sizeof(msg));
			msg.type = GMIG_MSG_PING;
			msg.u.nonce.nonce = m->ping;
			rc = peer_send(m, &msg);
		}
		if (rc) {
			peer_gone(m, rc, "cannot announce the image: %s", strerror(-rc));
			return LINK_PAUSE;
		}
		m->ps = PS_SYNC;
		evtimer_del(m->peer_timer);
		arm(m->peer_timer, m->d->cfg.peer_timeout_ms);
		return LINK_CONTINUE;
	case PS_SYNC:
		if (msg.type != GMIG_MSG_PONG || msg.u.nonce.nonce != m->ping)
			break;
		m->ps = PS_OPEN;
		evtimer_del(m->peer_timer);
		m->t_stream = now_us();
		log_info(peer_of(m), "destination %s took the image announcement (%llu bytes%s)",
			 m->job->target, (unsigned long long)m->img.bytes,
			 m->peer_lz4 ? ", LZ4" : "");
		post(m, ME_OK);
		return LINK_CONTINUE;
	case PS_OPEN:
		switch (msg.type) {
		case GMIG_MSG_PING:
			msg.type = GMIG_MSG_PONG;
			peer_send(m, &msg);
			return LINK_CONTINUE;
		case GMIG_MSG_PONG:
			return LINK_CONTINUE;
		case GMIG_MSG_ATTACHED:
			if (!m->t_attached)
				m->t_attached = now_us();
			post(m, ME_DEST_STEP);
			return LINK_CONTINUE;
		case GMIG_MSG_RESTORED:
			if (!m->t_restored)
				m->t_restored = now_us();
			m->restored = msg.u.totals.bytes;
			post(m, ME_DEST_STEP);
			return LINK_CONTINUE;
		case GMIG_MSG_THAWED:
			if (!m->t_thawed)
				m->t_thawed = now_us();
			post(m, ME_DEST_STEP);
			return LINK_CONTINUE;
		case GMIG_MSG_MIGRATED:
			evtimer_del(m->peer_timer);
			if (msg.u.code.code == 0) {
				post(m, ME_MIGRATED);
			} else {
				fail_note(m, msg.u.code.code, "the destination could not take the guest "
					  "over: %s", strerror(-msg.u.code.code));
				post(m, ME_REFUSED);
			}
			return LINK_CONTINUE;
		default:
			break;
		}
		break;
	default:
		break;
	}
	log_rl(LV_WARN, peer_of(m), "destination sent %s while the link is %d; ignored",
	       gmig_msg_name(msg.type), m->ps);
	return LINK_CONTINUE;
}

static const struct link_ops peer_ops = {
	.up = peer_on_up,
	.frame = peer_on_frame,
	.down = peer_on_down,
	.drained = peer_on_drained,
};

static void peer_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;

	(void)fd;
	(void)what;
	if (m->dead)
		return;
	if (m->state == MS_HANDOVER) {
		fail_note(m, -ETIMEDOUT, "the destination did not confirm the hand-over within %u ms",
			  m->d->cfg.handover_timeout_ms);
		post(m, ME_TIMEOUT);
		return;
	}
	if (m->ps == PS_OPEN && m->guest_paused)
		peer_gone(m, -ETIMEDOUT, "took no data for %u ms", m->d->cfg.peer_timeout_ms);
	else if (m->ps != PS_OPEN && m->ps != PS_GONE)
		peer_gone(m, -ETIMEDOUT, "no answer within the timeout");
}

/* Tells the destination to forget the image, and lets the link close after it. */
static void peer_abort(struct mig *m, const char *text)
{
	struct gmig_msg msg = { .type = GMIG_MSG_ABORT };
	uint8_t buf[GMIG_TEXT_MAX];
	size_t n = text_clean(text, buf, sizeof(buf));

	if (!m->peer || m->ps == PS_GONE)
		return;
	if (m->ps >= PS_SYNC) {
		msg.u.abort.code = m->err < 0 ? m->err : -ECANCELED;
		msg.u.abort.tail = (struct gmig_tail){ buf, (uint32_t)n };
		peer_send(m, &msg);
	}
	m->ps = PS_GONE;
	evtimer_del(m->peer_timer);
	link_close_detached(m->peer, "migration abandoned");
	m->peer = NULL;
}

/* --- steps on the guest --- */

static uint32_t step_timeout(const struct mig *m)
{
	if (m->want == GMIG_MSG_FROZEN)
		return m->o.freeze_deadline_ms + m->d->cfg.step_timeout_ms;
	return m->d->cfg.step_timeout_ms;
}

/* Sends the request in flight on the current connection (again, after a resume). */
static void step_issue(struct mig *m)
{
	struct push_sink sink;
	int rc;

	if (!m->want || !guest_is_ready(m->g))
		return;		/* sent when the session is back */
	if (m->want == GMIG_MSG_RESTORED) {
		/* A restore cut short starts over: RESTORE_BEGIN resets the agent's side. */
		/* Refilled at half the budget, so the guest's socket never runs dry. */
		guest_set_low_water(m->g, m->d->cfg.guest_buffer / 2);
		push_sink_guest(&sink, m->g);
		push_init(&m->push, &sink, &m->img, m->d->cfg.guest_buffer,
			  m->d->cfg.guest_lz4 && (m->g->caps & GMIG_CAP_LZ4), m->d->lz4_buf);
		push_use_refs(&m->push, &m->stagings, m->ram,
			      (m->g->caps & GMIG_CAP_SHM) || ((m->g->caps & GMIG_CAP_PHYS) &&
							      guestmem_writable(m->ram)));
		m->pushing = true;
		rc = push_run(&m->push);
		if (rc < 0 && rc != -ENOTCONN) {
			m->want = 0;
			m->pushing = false;
			fail_note(m, rc, "restore: the image cannot be sent (%s)", strerror(-rc));
			post(m, m->state == MS_ROLLBACK ? ME_GUEST_LOST : ME_FAIL);
			return;
		}
	} else {
		rc = guest_send(m->g, &m->req);
		m->req_seq = m->g->tx_seq;
		if (rc && rc != -ENOTCONN) {
			log_warn(peer_of(m), "%s not sent: %s", gmig_msg_name(m->req.type), strerror(-rc));
			guest_redial(m->g, m->state >= MS_ROLLBACK ? m->d->cfg.rollback_timeout_ms :
				     m->d->cfg.guest_resume_ms);
			return;
		}
	}
	evtimer_del(m->step_timer);
	arm(m->step_timer, step_timeout(m));
}

/* Starts a step: @req goes to the guest, @want is its answer. */
static void step_start(struct mig *m, const struct gmig_msg *req, uint16_t want)
{
	const struct gmig_tail *t = gmig_msg_tail(req);

	m->req = *req;
	if (t && t->len) {
		struct gmig_tail *ct = gmig_msg_tail(&m->req);

		memcpy(m->req_tail, t->ptr, t->len);
		ct->ptr = m->req_tail;
	}
	m->want = want;
	m->busy_tries = 0;
	step_issue(m);
}

static void step_clear(struct mig *m)
{
	m->want = 0;
	m->pushing = false;
	evtimer_del(m->step_timer);
	evtimer_del(m->busy_timer);
}

static void step_done(struct mig *m)
{
	step_clear(m);
	if (m->state == MS_ROLLBACK) {
		if (m->rb_waiting)
			choose(m);
		return;
	}
	post(m, ME_OK);
}

static void step_fail(struct mig *m, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void step_fail(struct mig *m, int code, const char *fmt, ...)
{
	char text[JOB_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	step_clear(m);
	fail_note(m, code, "%s", text);
	if (m->state == MS_ROLLBACK) {
		if (m->rb_waiting)
			choose(m);
		return;
	}
	post(m, m->state == MS_RB_ABORT && code == -EBUSY ? ME_BUSY : ME_FAIL);
}

static void step_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;

	(void)fd;
	(void)what;
	if (m->dead || !m->want)
		return;
	log_warn(peer_of(m), "no %s within %u ms: resuming the session", gmig_msg_name(m->want),
		 step_timeout(m));
	guest_redial(m->g, m->state >= MS_ROLLBACK ? m->d->cfg.rollback_timeout_ms :
		     m->d->cfg.guest_resume_ms);
}

static void busy_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;

	(void)fd;
	(void)what;
	if (!m->dead && m->want)
		step_issue(m);
}

/* --- inventory --- */

static void inv_clear(struct inventory *inv)
{
	for (uint32_t i = 0; i < inv->nclients; i++)
		free(inv->clients[i].regions);
	free(inv->clients);
	memset(inv, 0, sizeof(*inv));
}

static const struct gmig_rec_gpu *inv_gpu(const struct inventory *inv, uint32_t index)
{
	for (uint32_t i = 0; i < inv->ngpus; i++) {
		if (inv->gpu[i].index == index)
			return &inv->gpu[i];
	}
	return NULL;
}

static int inv_gpus(struct mig *m, const struct gmig_inv_gpus *g)
{
	struct inventory *inv = &m->inv;

	inv_clear(inv);
	inv->ngpus = gmig_rec_count(&g->tail, GMIG_REC_gpu_SIZE);
	memcpy(inv->gpus, g->tail.ptr, g->tail.len);
	inv->gpus_len = g->tail.len;
	for (uint32_t i = 0; i < inv->ngpus; i++) {
		gmig_rec_get_gpu(&g->tail, i, &inv->gpu[i]);
		for (uint32_t j = 0; j < i; j++) {
			if (inv->gpu[j].index == inv->gpu[i].index) {
				step_fail(m, -EPROTO, "inventory: GPU %u listed twice", inv->gpu[i].index);
				return -EPROTO;
			}
		}
	}
	if (g->clients > GMIG_MANIFEST_MAX) {
		step_fail(m, -EPROTO, "inventory: %u clients", g->clients);
		return -EPROTO;
	}
	inv->expect = g->clients;
	if (g->clients) {
		inv->clients = calloc(g->clients, sizeof(*inv->clients));
		if (!inv->clients) {
			step_fail(m, -ENOMEM, "inventory: out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

static int inv_client(struct mig *m, const struct gmig_inv_client *c)
{
	struct inventory *inv = &m->inv;
	struct inv_client *ic;

	if (c->index != inv->nclients || c->count != inv->expect) {
		step_fail(m, -EPROTO, "inventory: client %u of %u where %u of %u was due", c->index,
			  c->count, inv->nclients, inv->expect);
		return -EPROTO;
	}
	if (!inv_gpu(inv, c->gpu)) {
		step_fail(m, -EPROTO, "inventory: pid %u runs on GPU %u, which is not listed",
			  c->pid, c->gpu);
		return -EPROTO;
	}
	for (uint32_t i = 0; i < inv->nclients; i++) {
		if (inv->clients[i].pid == c->pid) {
			step_fail(m, -EPROTO, "inventory: pid %u listed twice", c->pid);
			return -EPROTO;
		}
	}
	ic = &inv->clients[inv->nclients];
	ic->pid = c->pid;
	ic->gpu = c->gpu;
	memcpy(ic->name, c->name, sizeof(ic->name));
	if (c->tail.len) {
		ic->regions = malloc(c->tail.len);
		if (!ic->regions) {
			step_fail(m, -ENOMEM, "inventory: out of memory");
			return -ENOMEM;
		}
		memcpy(ic->regions, c->tail.ptr, c->tail.len);
		ic->regions_len = c->tail.len;
	}
	inv->nclients++;
	return 0;
}

static void image_account(struct mig *m)
{
	m->d->image_bytes -= m->img_accounted;
	m->img_accounted = m->img.bytes;
	m->d->image_bytes += m->img_accounted;
}

/*
 * The image to fill: the inventory's clients and regions under the daemon's cap; zeroed when
 * @fresh, else updated in place (a region that grew keeps its bytes).
 */
static int build_image(struct mig *m, bool fresh)
{
	struct gmig_inv_gpus gm = { .clients = m->inv.nclients,
				    .tail = { m->inv.gpus, m->inv.gpus_len } };
	uint64_t room;
	int rc;

	if (fresh)
		gmig_image_clear(&m->img);
	/* The cap counts every image the daemon holds but this one, and this one whole. */
	m->d->image_bytes -= m->img_accounted;
	m->img_accounted = 0;
	room = gmigd_image_room(m->d);
	m->img.cap = room ? room : 1;
	rc = gmig_image_set_gpus(&m->img, &gm);
	if (rc) {
		image_account(m);
		step_fail(m, rc, "inventory: the GPU list is not valid");
		return rc;
	}
	for (uint32_t i = 0; i < m->inv.nclients; i++) {
		const struct inv_client *c = &m->inv.clients[i];
		struct gmig_inv_client cm = { .index = i, .count = m->inv.nclients, .pid = c->pid,
					      .gpu = c->gpu, .tail = { c->regions, c->regions_len } };

		memcpy(cm.name, c->name, sizeof(cm.name));
		rc = gmig_image_set_client(&m->img, &cm);
		if (rc == -ENOSPC) {
			image_account(m);
			step_fail(m, rc, "the image passes image_cap (%llu bytes, %llu free)",
				  (unsigned long long)m->d->cfg.image_cap, (unsigned long long)room);
			return rc;
		}
		if (rc) {
			image_account(m);
			step_fail(m, rc, "inventory: pid %u has invalid regions (%s)", c->pid,
				  strerror(-rc));
			return rc;
		}
	}
	image_account(m);
	m->img_ready = true;
	m->job->total_bytes = m->img.bytes;
	return 0;
}

/* GPU maps: where each GPU the programs use goes, and back to itself for a rollback. */
static int build_maps(struct mig *m, const struct inventory *inv, const struct gmig_image *img)
{
	m->nmap = m->nown = 0;
	for (uint32_t i = 0; i < img->nclients; i++) {
		uint32_t from = img->clients[i].gpu, to = from;
		const struct gmig_rec_gpu *g;
		bool seen = false;

		for (uint32_t k = 0; k < m->nmap; k++)
			seen |= m->map[k].from == from;
		if (seen)
			continue;
		for (unsigned int k = 0; k < m->o.nmap; k++) {
			if (m->o.map[k].from == from)
				to = m->o.map[k].to;
		}
		m->map[m->nmap] = (struct gmig_rec_gpu_map){ .from = from, .to = to };
		/* A VM meets new GPUs at the destination: their UUIDs come from its inventory there. */
		g = m->vm ? NULL : inv_gpu(inv, to);
		if (g)
			memcpy(m->map[m->nmap].uuid, g->uuid, GMIG_UUID_SIZE);
		else if (m->o.kind != JOB_MIGRATE)
			return -(int)(to + 1);
		m->nmap++;
		g = inv_gpu(inv, from);
		m->own[m->nown] = (struct gmig_rec_gpu_map){ .from = from, .to = from };
		if (g)
			memcpy(m->own[m->nown].uuid, g->uuid, GMIG_UUID_SIZE);
		m->nown++;
	}
	return 0;
}

static void map_tail(const struct gmig_rec_gpu_map *map, uint32_t n, uint8_t *buf,
		     struct gmig_tail *t)
{
	for (uint32_t i = 0; i < n; i++)
		gmig_rec_put_gpu_map(buf + i * GMIG_REC_gpu_map_SIZE, &map[i]);
	*t = (struct gmig_tail){ buf, n * GMIG_REC_gpu_map_SIZE };
}

static struct json_object *uuid_json(const uint8_t *u)
{
	char s[37];

	snprintf(s, sizeof(s), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
	return json_object_new_string(s);
}

/* The inventory command's answer. */
static struct json_object *inventory_json(const struct mig *m)
{
	struct json_object *o = json_object_new_object(), *gpus, *clients;

	if (!o)
		return NULL;
	jadd_str(o, "guest", m->g->name);
	jadd_str(o, "address", m->g->addr_text);
	jadd_str(o, "phase", gmig_phase_name(m->phase));
	gpus = json_object_new_array();
	for (uint32_t i = 0; gpus && i < m->inv.ngpus; i++) {
		const struct gmig_rec_gpu *g = &m->inv.gpu[i];
		struct json_object *j = json_object_new_object();

		if (!j)
			continue;
		jadd_int(j, "index", g->index);
		jadd_str(j, "model", g->model);
		jadd_str(j, "backend", gmig_backend_name(g->backend));
		jadd_int(j, "mem_bytes", (int64_t)g->mem_bytes);
		json_object_object_add(j, "uuid", uuid_json(g->uuid));
		if (g->pci[0])
			jadd_str(j, "pci", g->pci);
		json_object_array_add(gpus, j);
	}
	json_object_object_add(o, "gpus", gpus);
	clients = json_object_new_array();
	for (uint32_t i = 0; clients && i < m->inv.nclients; i++) {
		const struct inv_client *c = &m->inv.clients[i];
		struct gmig_tail t = { c->regions, c->regions_len };
		uint32_t n = gmig_rec_count(&t, GMIG_REC_region_SIZE);
		struct json_object *j = json_object_new_object();
		uint64_t bytes = 0;

		if (!j)
			continue;
		for (uint32_t k = 0; k < n; k++) {
			struct gmig_rec_region r;

			gmig_rec_get_region(&t, k, &r);
			bytes += r.size;
		}
		jadd_int(j, "pid", c->pid);
		jadd_str(j, "name", c->name);
		jadd_int(j, "gpu", c->gpu);
		jadd_int(j, "regions", n);
		jadd_int(j, "bytes", (int64_t)bytes);
		json_object_array_add(clients, j);
	}
	json_object_object_add(o, "clients", clients);
	return o;
}

static void send_round(struct mig *m);

/* A round met regions the image did not know: with a fresh inventory, the round again. */
static void round_again(struct mig *m)
{
	int rc;

	m->refreshing = false;
	if (build_image(m, false))
		return;
	if (m->o.kind == JOB_MIGRATE && m->ps == PS_OPEN) {
		rc = send_inventory(m);
		if (rc) {
			fail_note(m, rc, "cannot send the new inventory to the destination");
			step_clear(m);
			post(m, ME_PEER_LOST);
			return;
		}
	}
	log_info(peer_of(m), "regions grew during round %u: %llu bytes now; round again against "
		 "base %u", m->round, (unsigned long long)m->img.bytes, m->base);
	send_round(m);
}

/* A map to a GPU the program cannot move to is refused before pre-copy and the freeze. */
static bool chips_differ(struct mig *m)
{
	for (uint32_t i = 0; i < m->nmap; i++) {
		const struct gmig_rec_gpu *a = inv_gpu(&m->inv, m->map[i].from);
		const struct gmig_rec_gpu *b = inv_gpu(&m->inv, m->map[i].to);

		if (m->vm || !a || !b || a == b)
			continue;
		if (!policy_gpus_compatible(a, b)) {
			step_fail(m, -EXDEV, "GPU %u (%s) and GPU %u (%s) are not of one chip: "
				  "CUDA programs move only between GPUs of one chip",
				  a->index, a->model, b->index, b->model);
			return true;
		}
	}
	return false;
}

static void inventory_done(struct mig *m)
{
	if (m->refreshing) {
		round_again(m);
		return;
	}
	if (m->o.kind == JOB_MIGRATE || m->o.kind == JOB_CHECKPOINT) {
		if (build_image(m, true))
			return;
		if (build_maps(m, &m->inv, &m->img)) {
			step_fail(m, -ENODEV, "a target GPU is not in the guest's inventory");
			return;
		}
		if (chips_differ(m))
			return;
	}
	if (m->o.kind == JOB_INVENTORY) {
		json_object_put(m->job->answer);
		m->job->answer = inventory_json(m);
	}
	log_info(peer_of(m), "inventory: %u GPUs, %u clients", m->inv.ngpus, m->inv.nclients);
	step_done(m);
}

/* --- frames from the guest --- */

static bool region_state(const struct mig *m)
{
	return m->want == GMIG_MSG_ROUND_END;
}

/* Whether data outside the image is that of a known program's new or grown region. */
static bool grew(struct mig *m, const struct gmig_region_data *rd)
{
	const struct gmig_image_region *r = gmig_image_region(&m->img, rd->pid, rd->region);

	if (!gmig_image_client(&m->img, rd->pid))
		return false;
	return !r || (rd->offset % r->chunk == 0 && rd->offset + rd->length > r->size);
}

static void on_region_data(struct mig *m, const struct gmig_region_data *rd)
{
	int rc;

	if (!region_state(m) || rd->epoch != m->round) {
		log_rl(LV_DEBUG, peer_of(m), "region data of epoch %u outside round %u; dropped",
		       rd->epoch, m->round);
		return;
	}
	rc = gmig_image_apply(&m->img, rd, true);
	if ((rc == -ENOENT || rc == -ERANGE) && grew(m, rd)) {
		/* The program allocated since the inventory: the round is run again after one. */
		if (!m->inv_stale)
			log_info(peer_of(m), "pid %u region %u is larger than the inventory said",
				 rd->pid, rd->region);
		m->inv_stale = true;
		return;
	}
	if (rc) {
		step_fail(m, rc, "pid %u region %u: bytes [%llu, +%u) refused: %s", rd->pid,
			  rd->region, (unsigned long long)rd->offset, rd->length,
			  rc == -ENOENT ? "no such region" : rc == -ERANGE ?
			  "outside the region or off a chunk boundary" : "bad encoding");
		return;
	}
	m->from_guest += rd->length;
	m->job->done_bytes += rd->length;
	evtimer_del(m->step_timer);
	arm(m->step_timer, step_timeout(m));
	forward_region(m, rd);
}

static void on_round_end(struct mig *m, const struct gmig_round_end *e)
{
	uint64_t usecs = now_us() - m->round_started_us;
	struct job_round *r;
	struct gmig_msg fwd = { .type = GMIG_MSG_ROUND_END, .u.round_end = *e };

	if (m->want != GMIG_MSG_ROUND_END || e->round != m->round) {
		log_rl(LV_DEBUG, peer_of(m), "ROUND_END of round %u; not waited for", e->round);
		return;
	}
	peer_forward(m, &fwd);
	r = job_add_round(m->job);
	if (r) {
		*r = (struct job_round){ .round = e->round, .base = m->base,
			.final = m->state == MS_FINAL, .chunks = e->chunks, .dirty = e->dirty,
			.zero = e->zero, .bytes = e->bytes, .wire_bytes = m->round_wire,
			.usecs = usecs };
	}
	log_info(peer_of(m), "round %u (base %u): %llu of %llu chunks changed, %llu zero, "
		 "%llu bytes in %llu ms", e->round, m->base, (unsigned long long)e->dirty,
		 (unsigned long long)e->chunks, (unsigned long long)e->zero,
		 (unsigned long long)e->bytes, (unsigned long long)(usecs / 1000));
	if (m->phase == GMIG_PHASE_IDLE)
		m->phase = GMIG_PHASE_PRECOPY;
	if (m->inv_stale) {
		struct gmig_msg req = { .type = GMIG_MSG_INV_REQUEST };

		/* Not whole: the base stays, and what was dropped comes again in the next round. */
		m->inv_stale = false;
		if (++m->refreshes > REGROW_MAX) {
			step_fail(m, -EPROTO, "the regions grew during %u rounds; giving up",
				  REGROW_MAX);
			return;
		}
		m->refreshing = true;
		step_start(m, &req, GMIG_MSG_INV_GPUS);
		return;
	}
	m->base = m->round;
	step_done(m);
}

static void on_frozen(struct mig *m, const struct gmig_frozen *fz)
{
	struct gmig_msg fwd = { .type = GMIG_MSG_FROZEN, .u.frozen = *fz };
	int rc;

	if (m->want != GMIG_MSG_FROZEN)
		return;
	if (fz->index != m->frozen_got || (m->frozen_got && fz->count != m->frozen_count)) {
		step_fail(m, -EPROTO, "FROZEN %u of %u where %u was due", fz->index, fz->count,
			  m->frozen_got);
		return;
	}
	if (fz->count > m->img.nclients) {
		step_fail(m, -EPROTO, "%u clients frozen, %u in the inventory", fz->count,
			  m->img.nclients);
		return;
	}
	m->frozen_count = fz->count;
	if (fz->count) {
		for (uint32_t i = 0; i < m->frozen_got; i++) {
			if (m->frozen_pids[i] == fz->pid) {
				step_fail(m, -EPROTO, "FROZEN for pid %u twice", fz->pid);
				return;
			}
		}
		rc = gmig_image_set_blob(&m->img, fz->pid, fz->tail.ptr, fz->tail.len);
		if (rc) {
			step_fail(m, rc, "FROZEN for pid %u: %s", fz->pid,
				  rc == -ENOENT ? "not in the inventory" : strerror(-rc));
			return;
		}
		/* The pid is a client of the image, so there are at most nclients of them. */
		m->frozen_pids[m->frozen_got] = fz->pid;
	}
	peer_forward(m, &fwd);
	if (fz->count && ++m->frozen_got < fz->count)
		return;
	/* Programs that ended since the inventory are not in the freeze: they are gone. */
	for (uint32_t i = 0; i < m->img.nclients;) {
		uint32_t pid = m->img.clients[i].pid;
		bool frozen = false;

		for (uint32_t k = 0; k < m->frozen_got; k++)
			frozen |= m->frozen_pids[k] == pid;
		if (frozen) {
			i++;
			continue;
		}
		log_info(peer_of(m), "pid %u ended before the freeze; dropped", pid);
		gmig_image_drop_client(&m->img, pid);
	}
	image_account(m);
	m->t_frozen = now_us();
	m->phase = GMIG_PHASE_FROZEN;
	log_info(peer_of(m), "frozen: %u clients in %llu ms", fz->count,
		 (unsigned long long)((m->t_frozen - m->t_freeze) / 1000));
	step_done(m);
}

/* Answers that end a step: the message type, and the phase the guest is in after it. */
static void on_answer(struct mig *m, const struct gmig_msg *msg)
{
	switch (msg->type) {
	case GMIG_MSG_RELEASED:
		m->phase = GMIG_PHASE_RELEASED;
		break;
	case GMIG_MSG_ATTACHED:
		m->phase = GMIG_PHASE_ATTACHED;
		break;
	case GMIG_MSG_RESTORED:
		if (!push_matches(&m->push, &msg->u.totals)) {
			step_fail(m, -EIO, "restore: the agent applied %llu of %llu bytes",
				  (unsigned long long)msg->u.totals.bytes,
				  (unsigned long long)m->push.sent.bytes);
			return;
		}
		m->phase = GMIG_PHASE_RESTORED;
		m->restored = msg->u.totals.bytes;
		break;
	case GMIG_MSG_THAWED:
	case GMIG_MSG_ABORTED:
		m->phase = GMIG_PHASE_IDLE;
		m->t_thawed = now_us();
		break;
	default:
		break;
	}
	log_info(peer_of(m), "%s", gmig_msg_name(msg->type));
	step_done(m);
}

static void on_guest_error(struct mig *m, const struct gmig_error *e)
{
	bool ours = m->want && (e->ref_seq == m->req_seq ||
				(m->pushing && (e->ref_type == GMIG_MSG_RESTORE_DATA ||
						e->ref_type == GMIG_MSG_RESTORE_REF ||
						e->ref_type == GMIG_MSG_RESTORE_BEGIN ||
						e->ref_type == GMIG_MSG_RESTORE_END)));
	unsigned int tries = m->state == MS_RB_ABORT ? RB_ABORT_BUSY_TRIES : BUSY_TRIES;

	if (!ours) {
		log_rl(LV_WARN, peer_of(m), "agent error about %s seq %llu: %.*s",
		       gmig_msg_name(e->ref_type), (unsigned long long)e->ref_seq,
		       (int)e->tail.len, (const char *)e->tail.ptr);
		return;
	}
	if (e->code == -EBUSY && !m->pushing && ++m->busy_tries < tries) {
		/* The agent is still finishing an earlier step: ask again shortly. */
		evtimer_del(m->step_timer);
		arm(m->busy_timer, BUSY_RETRY_MS);
		return;
	}
	if (m->replugged && m->state == MS_RB_ATTACH && !m->pushing &&
	    ++m->plug_waits < m->d->cfg.vm_unplug_timeout_ms / VM_PLUG_POLL_MS) {
		/* The guest has not taken in the GPU plugged back a moment ago yet. */
		evtimer_del(m->step_timer);
		arm(m->busy_timer, VM_PLUG_POLL_MS);
		return;
	}
	if (m->want == GMIG_MSG_FROZEN)
		m->t_thawed = now_us();		/* a failed freeze thaws at once */
	step_fail(m, e->code, "%s refused: %.*s", gmig_msg_name(m->req.type), (int)e->tail.len,
		  (const char *)e->tail.ptr);
}

static void guest_on_drained(void *ctx);

/* --- zero-copy --- */

/*
 * STAGING_PHYS: where a client's staging lies, in guest RAM (PHYS) or in the fd that came
 * with the frame (SHM, a unix channel), checked against what is mapped.
 */
static void on_staging_phys(struct mig *m, const struct gmig_staging_phys *sp)
{
	int fd = (m->g->caps & GMIG_CAP_SHM) ? guest_take_fd(m->g) : -1;
	int rc = gm_table_set(&m->stagings, m->ram, sp, fd);

	if (fd >= 0)
		close(fd);
	if (rc) {
		step_fail(m, rc, "STAGING_PHYS of pid %u: %s", sp->pid, rc == -EPROTO ?
			  "gmigd reaches neither the guest's RAM nor an fd of it" : rc == -EFAULT ?
			  "a range outside the guest's RAM" : rc == -EINVAL ?
			  "the ranges do not cover its slots" : rc == -ENOSPC ?
			  "too many clients with staging" : strerror(-rc));
		return;
	}
	if (!m->ref_buf)
		m->ref_buf = malloc(GMIG_DATA_MAX);
	if (!m->ref_buf)
		step_fail(m, -ENOMEM, "out of memory");
}

/* REGION_REF: the bytes are read from guest RAM in place, then the slot goes back. */
static void on_region_ref(struct mig *m, const struct gmig_region_ref *ref)
{
	struct gm_staging *st = gm_table_find(&m->stagings, ref->pid);
	struct gmig_msg done = { .type = GMIG_MSG_REF_DONE };
	struct gmig_region_data rd;
	int rc;

	if (!st || !m->ref_buf) {
		step_fail(m, -EPROTO, "REGION_REF of pid %u before its STAGING_PHYS", ref->pid);
		return;
	}
	rc = guestmem_read_slot(gm_staging_mem(st, m->ram), st, ref->slot, ref->length,
				m->ref_buf);
	if (rc) {
		step_fail(m, rc, "REGION_REF of pid %u: slot %u, %u bytes: %s", ref->pid, ref->slot,
			  ref->length, rc == -ERANGE ? "outside its staging" : "outside the RAM");
		return;
	}
	rd = (struct gmig_region_data){ .pid = ref->pid, .region = ref->region,
		.offset = ref->offset, .length = ref->length, .encoding = GMIG_ENC_RAW,
		.epoch = ref->epoch, .tail = { m->ref_buf, ref->length } };
	m->zero_copy += ref->length;
	m->refs++;
	on_region_data(m, &rd);
	/* The bytes are copied on: the slot is the client's again. */
	done.u.ref_done.pid = ref->pid;
	done.u.ref_done.slot = ref->slot;
	guest_send(m->g, &done);
}

static int guest_on_frame(void *ctx, const struct gmig_msg *msg, const struct gmig_hdr *h)
{
	struct mig *m = ctx;

	(void)h;
	if (m->dead)
		return LINK_CONTINUE;
	switch (msg->type) {
	case GMIG_MSG_ERROR:
		on_guest_error(m, &msg->u.error);
		break;
	case GMIG_MSG_INV_GPUS:
		if (m->want == GMIG_MSG_INV_GPUS && !inv_gpus(m, &msg->u.inv_gpus)) {
			if (!m->inv.expect)
				inventory_done(m);
			else
				m->want = GMIG_MSG_INV_CLIENT;
		}
		break;
	case GMIG_MSG_INV_CLIENT:
		if (m->want == GMIG_MSG_INV_CLIENT && !inv_client(m, &msg->u.inv_client) &&
		    m->inv.nclients == m->inv.expect)
			inventory_done(m);
		break;
	case GMIG_MSG_REGION_DATA:
		on_region_data(m, &msg->u.region_data);
		break;
	case GMIG_MSG_STAGING_PHYS:
		on_staging_phys(m, &msg->u.staging_phys);
		break;
	case GMIG_MSG_REGION_REF:
		on_region_ref(m, &msg->u.region_ref);
		break;
	case GMIG_MSG_SLOT_LEND:
		/* A restore here (rollback, checkpoint file): one more slot it may fill. */
		if (m->pushing && !gm_table_lend(&m->stagings, msg->u.slot_lend.pid,
						 msg->u.slot_lend.slot))
			guest_on_drained(m);
		break;
	case GMIG_MSG_ROUND_END:
		on_round_end(m, &msg->u.round_end);
		break;
	case GMIG_MSG_FROZEN:
		on_frozen(m, &msg->u.frozen);
		break;
	case GMIG_MSG_RELEASED:
	case GMIG_MSG_ATTACHED:
	case GMIG_MSG_RESTORED:
	case GMIG_MSG_THAWED:
	case GMIG_MSG_ABORTED:
		if (m->want == msg->type)
			on_answer(m, msg);
		else
			log_rl(LV_DEBUG, peer_of(m), "%s not waited for; ignored",
			       gmig_msg_name(msg->type));
		break;
	case GMIG_MSG_BYE:
		log_warn(peer_of(m), "the agent ended the session (%d)", msg->u.code.code);
		guest_forget_session(m->g);
		guest_redial(m->g, m->state >= MS_ROLLBACK ? m->d->cfg.rollback_timeout_ms :
			     m->d->cfg.guest_resume_ms);
		break;
	default:
		log_rl(LV_WARN, peer_of(m), "unexpected %s from the agent; ignored",
		       gmig_msg_name(msg->type));
		break;
	}
	return LINK_CONTINUE;
}

static void guest_on_ready(void *ctx, bool resumed, uint8_t phase)
{
	struct mig *m = ctx;

	if (m->dead)
		return;
	m->phase = phase;
	if (m->state == MS_CONNECT) {
		if ((m->o.kind == JOB_MIGRATE || m->o.kind == JOB_CHECKPOINT) &&
		    phase >= GMIG_PHASE_FROZEN) {
			fail_note(m, -EBUSY, "the guest is in phase %s, not running: finish or "
				  "restore it first", gmig_phase_name(phase));
			post(m, ME_FAIL);
			return;
		}
		guest_set_window(m->g, m->d->cfg.guest_resume_ms);
		post(m, ME_OK);
		return;
	}
	if (m->state == MS_ROLLBACK) {
		if (m->rb_waiting && !m->want)
			choose(m);
		else
			step_issue(m);
		return;
	}
	if (!resumed && m->state != MS_LOAD && m->state < MS_ROLLBACK) {
		/* The agent forgot us (it restarted, or another host replaced the session). */
		step_clear(m);
		fail_note(m, -ESTALE, "the guest's session was lost (now phase %s)",
			  gmig_phase_name(phase));
		post(m, ME_GUEST_LOST);
		return;
	}
	log_info(peer_of(m), "session resumed in phase %s; %s again", gmig_phase_name(phase),
		 m->want ? gmig_msg_name(m->req.type) : "nothing to send");
	if (m->want == GMIG_MSG_INV_CLIENT)
		m->want = GMIG_MSG_INV_GPUS;
	if (m->want == GMIG_MSG_FROZEN)
		m->frozen_got = 0;
	if (m->want == GMIG_MSG_ROUND_END) {
		/* The round went down with the connection: again, against the same base. */
		struct gmig_msg fwd = { .type = GMIG_MSG_ROUND_BEGIN,
					.u.round_begin = { m->round, m->base } };

		peer_forward(m, &fwd);
	}
	step_issue(m);
}

static void guest_on_down(void *ctx, int err, const char *why)
{
	struct mig *m = ctx;

	(void)err;
	if (m->dead)
		return;
	evtimer_del(m->step_timer);
	evtimer_del(m->busy_timer);
	gm_table_unlend(&m->stagings);	/* the agent takes its lent slots back */
	log_info(peer_of(m), "channel down in %s (%s); waiting for the resume",
		 mig_state_names[m->state], why);
}

static void guest_on_lost(void *ctx, int err, const char *why)
{
	struct mig *m = ctx;

	if (m->dead)
		return;
	step_clear(m);
	fail_note(m, err, "guest channel %s: %s", m->g->addr_text, why[0] ? why : strerror(-err));
	post(m, ME_GUEST_LOST);
}

static void guest_on_drained(void *ctx)
{
	struct mig *m = ctx;
	int rc;

	if (m->dead || !m->pushing || !m->want)
		return;
	rc = push_run(&m->push);
	if (rc < 0 && rc != -ENOTCONN) {
		step_fail(m, rc, "restore: %s", strerror(-rc));
		return;
	}
	m->job->done_bytes = m->push.sent.bytes;
}

static const struct guest_owner_ops guest_ops = {
	.ready = guest_on_ready,
	.frame = guest_on_frame,
	.down = guest_on_down,
	.lost = guest_on_lost,
	.drained = guest_on_drained,
};

/* --- actions --- */

static void send_round(struct mig *m)
{
	struct gmig_msg req = { .type = GMIG_MSG_ROUND_BEGIN };

	m->round++;
	req.u.round_begin.round = m->round;
	req.u.round_begin.base = m->base;
	m->round_started_us = now_us();
	m->round_wire = 0;
	m->job->round = m->round;
	m->job->done_bytes = 0;
	peer_forward(m, &req);
	step_start(m, &req, GMIG_MSG_ROUND_END);
}

static void act_decide(struct mig *m)
{
	struct policy p = { .max_rounds = m->o.max_rounds, .pause_target_ms = m->o.pause_target_ms };
	struct policy_round pr[64];
	uint32_t n = 0;

	for (uint32_t i = 0; i < m->job->nrounds; i++) {
		const struct job_round *r = &m->job->rounds[i];

		if (r->final)
			continue;
		/* Only the latest rounds matter to the verdict; keep the last 64. */
		if (n == 64) {
			memmove(pr, pr + 1, sizeof(pr) - sizeof(pr[0]));
			n--;
		}
		pr[n++] = (struct policy_round){ r->dirty, r->bytes, r->usecs };
	}
	m->verdict = policy_decide(&p, pr, n, &m->est_ms);
	if (m->verdict == PV_MORE) {
		post(m, ME_MORE);
		return;
	}
	log_info(peer_of(m), "pre-copy ends after %u rounds: %s (final delta ~%llu ms)", m->round,
		 policy_verdict_names[m->verdict], (unsigned long long)m->est_ms);
	post(m, ME_ENOUGH);
}

static void act_freeze(struct mig *m)
{
	struct gmig_msg req = { .type = GMIG_MSG_FREEZE,
				.u.freeze.deadline_ms = m->o.freeze_deadline_ms };

	free(m->frozen_pids);
	m->frozen_pids = calloc(m->img.nclients ? m->img.nclients : 1, sizeof(uint32_t));
	if (!m->frozen_pids) {
		fail_note(m, -ENOMEM, "freeze: out of memory");
		post(m, ME_FAIL);
		return;
	}
	m->frozen_got = m->frozen_count = 0;
	m->t_freeze = now_us();
	step_start(m, &req, GMIG_MSG_FROZEN);
}

static void act_simple(struct mig *m, uint16_t type, uint16_t want)
{
	struct gmig_msg req = { .type = type };

	step_start(m, &req, want);
}

static void act_attach(struct mig *m, const struct gmig_rec_gpu_map *map, uint32_t n)
{
	uint8_t buf[GMIG_GPUS_MAX * GMIG_REC_gpu_map_SIZE];
	struct gmig_msg req = { .type = GMIG_MSG_ATTACH };

	map_tail(map, n, buf, &req.u.attach.tail);
	step_start(m, &req, GMIG_MSG_ATTACHED);
}

static void act_restore(struct mig *m)
{
	struct gmig_msg none = { .type = GMIG_MSG_RESTORE_END };

	m->job->done_bytes = 0;
	m->job->total_bytes = m->img.bytes;
	/* step_issue() runs the push for a RESTORED step; the request itself is not used. */
	step_start(m, &none, GMIG_MSG_RESTORED);
}

static void act_peer(struct mig *m)
{
	m->peer = link_connect_tcp(m->d->base, m->to_host, m->to_port, m->job->target,
				   m->d->cfg.connect_timeout_ms, &peer_ops, m);
	if (!m->peer) {
		fail_note(m, -errno, "destination %s: %s", m->job->target, strerror(errno));
		post(m, ME_PEER_LOST);
		return;
	}
	m->ps = PS_CONNECTING;
	link_set_low_water(m->peer, m->d->cfg.peer_buffer / 2);
	arm(m->peer_timer, m->d->cfg.connect_timeout_ms + m->d->cfg.peer_timeout_ms);
}

static void act_handover(struct mig *m)
{
	uint8_t buf[GMIG_GPUS_MAX * GMIG_REC_gpu_map_SIZE];
	struct gmig_msg msg = { .type = GMIG_MSG_HANDOVER };
	int rc;

	msg.u.handover.session = m->g->session;
	memcpy(msg.u.handover.token, m->g->token, GMIG_TOKEN_SIZE);
	msg.u.handover.rounds = m->round;
	msg.u.handover.freeze_us = now_us() - m->t_freeze;
	map_tail(m->map, m->nmap, buf, &msg.u.handover.tail);
	rc = peer_send(m, &msg);
	if (rc) {
		fail_note(m, rc, "HANDOVER not sent: %s", strerror(-rc));
		post(m, ME_PEER_LOST);
		return;
	}
	m->handover_sent = true;
	m->t_handover = now_us();
	/*
	 * From here the destination drives the guest; our connection must not fight it for the
	 * session, so it closes (no BYE: the session lives on, and the token can take it back).
	 */
	guest_unclaim(m->g);
	m->claimed = false;
	arm(m->peer_timer, m->d->cfg.handover_timeout_ms);
}

/* checkpoint: the file is written on a thread, from the image no one else touches meanwhile. */
static int write_file(void *arg, char *detail, size_t len)
{
	struct mig *m = arg;
	int rc = gmig_checkpoint_write(&m->img, m->o.file, NULL, NULL);

	if (rc)
		snprintf(detail, len, "%s", strerror(-rc));
	return rc;
}

static int load_file(void *arg, char *detail, size_t len)
{
	struct mig *m = arg;

	return gmig_checkpoint_read(m->o.file, &m->img, detail, len);
}

/* --- the guest's QEMU (on the worker thread, one step at a time) --- */

static void worker_done(void *ctx, int rc, const char *detail);

static int unplug_fn(void *arg, char *detail, size_t len)
{
	struct mig *m = arg;

	return vm_unplug(m->vm->qmp, &m->vmt, &m->gpu, detail, len);
}

static int vm_migrate_fn(void *arg, char *detail, size_t len)
{
	struct mig *m = arg;

	return vm_migrate(m->vm->qmp, m->o.qemu_uri, &m->vmt, &m->worker.cancel, &m->vmst, detail,
			  len);
}

static int replug_fn(void *arg, char *detail, size_t len)
{
	struct mig *m = arg;

	return vm_plug(m->vm->qmp, &m->vmt, &m->gpu, detail, len);
}

/* While QEMU works the peer link is quiet; the destination must not take that for death. */
static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;
	struct gmig_msg msg = { .type = GMIG_MSG_PING };

	(void)fd;
	(void)what;
	if (m->dead || (m->state != MS_UNPLUG && m->state != MS_VM_MIGRATE) || m->ps != PS_OPEN)
		return;
	msg.u.nonce.nonce = ++m->ping;
	peer_send(m, &msg);
	arm(m->keepalive, m->d->cfg.peer_timeout_ms / 3);
}

static void vm_step(struct mig *m, worker_fn *fn, const char *what)
{
	int rc;

	m->vm_cancelled = false;
	rc = worker_start(&m->worker, m->d->base, fn, m, worker_done, m);
	if (rc) {
		fail_note(m, rc, "cannot start the QMP thread for %s: %s", what, strerror(-rc));
		post(m, ME_FAIL);
		return;
	}
	if (fn != replug_fn)
		arm(m->keepalive, m->d->cfg.peer_timeout_ms / 3);
}

static void act_unplug(struct mig *m)
{
	memset(&m->gpu, 0, sizeof(m->gpu));
	snprintf(m->gpu.id, sizeof(m->gpu.id), "%s", m->vm->gpu);
	log_info(peer_of(m), "unplugging GPU device %s from the VM (QMP %s)", m->gpu.id, m->vm->qmp);
	m->t_unplug_us = now_us();
	vm_step(m, unplug_fn, "the unplug");
}

static void act_vm_migrate(struct mig *m)
{
	log_info(peer_of(m), "QEMU migrates the VM to %s", m->o.qemu_uri);
	vm_step(m, vm_migrate_fn, "the VM's migration");
}

static void act_vm_cancel(struct mig *m)
{
	if (!m->why[0])
		fail_note(m, -ECANCELED, "stopped while QEMU worked");
	m->vm_cancelled = true;
	atomic_store(&m->worker.cancel, true);
}

static void act_rb_replug(struct mig *m)
{
	if (!m->gpu.mem_id[0]) {
		/* The unplug never learned the device: it was not touched. */
		post(m, ME_OK);
		return;
	}
	log_info(peer_of(m), "plugging GPU device %s (%s) back into the VM", m->gpu.id,
		 m->gpu.mem_path);
	vm_step(m, replug_fn, "the re-plug");
}

static void vm_step_done(struct mig *m, int rc, const char *detail)
{
	evtimer_del(m->keepalive);
	switch (m->state) {
	case MS_UNPLUG:
		if (rc) {
			fail_note(m, rc, "GPU unplug: %s", detail);
			post(m, ME_FAIL);
			return;
		}
		m->unplugged = true;
		log_info(peer_of(m), "GPU device %s left the VM in %llu ms", m->gpu.id,
			 (unsigned long long)((now_us() - m->t_unplug_us) / 1000));
		post(m, m->vm_cancelled ? ME_FAIL : ME_OK);
		return;
	case MS_VM_MIGRATE:
		if (rc) {
			fail_note(m, rc, "VM migration: %s", detail);
			post(m, ME_FAIL);
			return;
		}
		log_info(peer_of(m), "QEMU migrated the VM: %llu ms, downtime %llu ms, %llu bytes of RAM",
			 (unsigned long long)m->vmst.total_ms, (unsigned long long)m->vmst.downtime_ms,
			 (unsigned long long)m->vmst.ram_transferred);
		/* Cancelled too late: the VM runs at the destination now; carry on. */
		post(m, ME_OK);
		return;
	case MS_RB_REPLUG:
		if (rc) {
			fail_note(m, rc, "GPU re-plug: %s", detail);
			post(m, ME_FAIL);
			return;
		}
		m->replugged = true;
		post(m, ME_OK);
		return;
	default:
		return;
	}
}

static void worker_done(void *ctx, int rc, const char *detail)
{
	struct mig *m = ctx;

	if (m->dead)
		return;
	if (m->state == MS_UNPLUG || m->state == MS_VM_MIGRATE || m->state == MS_RB_REPLUG) {
		vm_step_done(m, rc, detail);
		return;
	}
	if (m->state == MS_WRITE) {
		if (rc) {
			fail_note(m, rc, "checkpoint %s not written: %s", m->o.file, detail);
			post(m, ME_FAIL);
			return;
		}
		m->file_bytes = m->img.bytes;
		log_info(peer_of(m), "checkpoint %s written (%llu bytes of image)", m->o.file,
			 (unsigned long long)m->img.bytes);
		post(m, ME_OK);
		return;
	}
	if (rc) {
		fail_note(m, rc, "checkpoint %s refused: %s", m->o.file,
			  detail[0] ? detail : strerror(-rc));
		post(m, ME_FAIL);
		return;
	}
	image_account(m);
	m->img_ready = true;
	m->file_bytes = m->img.bytes;
	m->job->total_bytes = m->img.bytes;
	log_info(peer_of(m), "checkpoint %s verified: %u clients, %u regions, %llu bytes",
		 m->o.file, m->img.nclients, m->img.nregions, (unsigned long long)m->img.bytes);
	post(m, ME_OK);
}

static void act_worker(struct mig *m, worker_fn *fn)
{
	int rc;

	if (fn == load_file) {
		uint64_t room = gmigd_image_room(m->d);

		gmig_image_clear(&m->img);
		m->img.cap = room ? room : 1;
	}
	rc = worker_start(&m->worker, m->d->base, fn, m, worker_done, m);
	if (rc) {
		fail_note(m, rc, "cannot start the file thread: %s", strerror(-rc));
		post(m, ME_FAIL);
	}
}

/* restore: the file's programs must be exactly the guest's, with the same regions. */
static void act_check(struct mig *m)
{
	const struct gmig_image *img = &m->img;
	int rc;

	if (img->nclients != m->inv.nclients) {
		fail_note(m, -ESRCH, "the checkpoint holds %u programs, the guest runs %u",
			  img->nclients, m->inv.nclients);
		post(m, ME_FAIL);
		return;
	}
	for (uint32_t i = 0; i < m->inv.nclients; i++) {
		const struct inv_client *c = &m->inv.clients[i];
		struct gmig_tail t = { c->regions, c->regions_len };
		uint32_t n = gmig_rec_count(&t, GMIG_REC_region_SIZE), have = 0;

		if (!gmig_image_client((struct gmig_image *)img, c->pid)) {
			fail_note(m, -ESRCH, "pid %u (%s) runs in the guest but is not in the "
				  "checkpoint", c->pid, c->name);
			post(m, ME_FAIL);
			return;
		}
		for (uint32_t k = 0; k < n; k++) {
			struct gmig_rec_region r;
			const struct gmig_image_region *ir;

			gmig_rec_get_region(&t, k, &r);
			ir = gmig_image_region((struct gmig_image *)img, c->pid, r.id);
			if (!ir || ir->va != r.va || ir->size != r.size || ir->chunk != r.chunk) {
				fail_note(m, -ESRCH, "pid %u region %u differs from the checkpoint's",
					  c->pid, r.id);
				post(m, ME_FAIL);
				return;
			}
		}
		for (uint32_t k = 0; k < img->nregions; k++)
			have += img->regions[k].pid == c->pid;
		if (have != n) {
			fail_note(m, -ESRCH, "pid %u has %u regions, the checkpoint %u", c->pid, n,
				  have);
			post(m, ME_FAIL);
			return;
		}
	}
	rc = build_maps(m, &m->inv, img);
	if (rc) {
		fail_note(m, -ENODEV, "GPU %d is not in the guest's inventory", -rc - 1);
		post(m, ME_FAIL);
		return;
	}
	switch (m->phase) {
	case GMIG_PHASE_RELEASED:
		post(m, ME_PH_RELEASED);
		return;
	case GMIG_PHASE_ATTACHED:
	case GMIG_PHASE_RESTORED:
		post(m, ME_PH_ATTACHED);
		return;
	default:
		fail_note(m, -EBUSY, "the guest is in phase %s: a restore needs a guest stopped by "
			  "'checkpoint --stop'", gmig_phase_name(m->phase));
		post(m, ME_PH_RUNNING);
		return;
	}
}

/* Rollback: choose the way back by the phase the guest is in. */
static void choose(struct mig *m)
{
	m->rb_waiting = false;
	switch (m->phase) {
	case GMIG_PHASE_IDLE:
		if (m->handover_sent) {
			/* The destination thawed it before it went quiet: the migration is done. */
			log_warn(peer_of(m), "the guest runs again after the hand-over: the destination "
				 "finished it");
			post(m, ME_MIGRATED);
			return;
		}
		post(m, ME_PH_RUNNING);
		return;
	case GMIG_PHASE_PRECOPY:
	case GMIG_PHASE_FROZEN:
		post(m, ME_PH_RUNNING);
		return;
	case GMIG_PHASE_RELEASED:
		post(m, ME_PH_RELEASED);
		return;
	default:
		post(m, ME_PH_ATTACHED);
		return;
	}
}

static void act_rollback(struct mig *m)
{
	uint32_t window = m->d->cfg.rollback_timeout_ms;

	log_warn(peer_of(m), "rolling back from %s: %s", mig_state_names[m->failed_in], m->why);
	peer_abort(m, m->why);
	if (m->guest_paused) {
		m->guest_paused = false;
		guest_resume(m->g);
	}
	m->rb_waiting = true;
	if (!m->claimed) {
		/* After a hand-over: take the session back with its token. */
		if (guest_claim(m->g, &guest_ops, m)) {
			fail_note(m, -EBUSY, "the guest is held by another job");
			post(m, ME_GUEST_LOST);
			return;
		}
		m->claimed = true;
		guest_connect(m->g, window);
		return;
	}
	guest_set_window(m->g, window);
	if (m->want == GMIG_MSG_ROUND_END || m->want == GMIG_MSG_INV_GPUS ||
	    m->want == GMIG_MSG_INV_CLIENT) {
		/* ABORT drops a round or an inventory in flight; the rest of it is ignored. */
		step_clear(m);
	}
	if (m->want)
		return;		/* its answer tells the phase */
	if (!guest_is_ready(m->g)) {
		/* Resuming, or lost: ask for it again within the rollback's window. */
		guest_connect(m->g, window);
		return;
	}
	choose(m);
}

static void act_rb_abort(struct mig *m)
{
	uint8_t text[GMIG_TEXT_MAX];
	size_t n = text_clean(m->why, text, sizeof(text));
	struct gmig_msg req = { .type = GMIG_MSG_ABORT };

	req.u.abort.code = m->err < 0 ? m->err : -ECANCELED;
	req.u.abort.tail = (struct gmig_tail){ text, (uint32_t)n };
	step_start(m, &req, GMIG_MSG_ABORTED);
}

/* --- the report --- */

static const struct {
	enum mig_state state;
	const char *key;
} time_keys[] = {
	{ MS_LOAD, "load" }, { MS_CONNECT, "connect" }, { MS_INVENTORY, "inventory" },
	{ MS_PEER, "peer" }, { MS_PRECOPY, "precopy" }, { MS_FREEZE, "freeze" },
	{ MS_FINAL, "final" }, { MS_RELEASE, "release" }, { MS_UNPLUG, "unplug" },
	{ MS_VM_MIGRATE, "vm_migrate" }, { MS_HANDOVER, "handover" },
	{ MS_WRITE, "write" }, { MS_ATTACH, "attach" }, { MS_RESTORE, "restore" },
	{ MS_THAW, "thaw" },
};

static struct json_object *rounds_json(const struct job *j)
{
	struct json_object *a = json_object_new_array();

	for (uint32_t i = 0; a && i < j->nrounds; i++) {
		const struct job_round *r = &j->rounds[i];
		struct json_object *o = json_object_new_object();

		if (!o)
			continue;
		jadd_int(o, "round", r->round);
		jadd_int(o, "base", r->base);
		json_object_object_add(o, "final", json_object_new_boolean(r->final));
		jadd_int(o, "chunks", (int64_t)r->chunks);
		jadd_int(o, "changed", (int64_t)r->dirty);
		jadd_int(o, "zero", (int64_t)r->zero);
		jadd_int(o, "bytes", (int64_t)r->bytes);
		if (j->kind == JOB_MIGRATE)
			jadd_int(o, "wire_bytes", (int64_t)r->wire_bytes);
		jadd_ms(o, "ms", r->usecs);
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *map_json(const struct gmig_rec_gpu_map *map, uint32_t n)
{
	struct json_object *a = json_object_new_array();

	for (uint32_t i = 0; a && i < n; i++) {
		struct json_object *o = json_object_new_object();

		if (!o)
			continue;
		jadd_int(o, "from", map[i].from);
		jadd_int(o, "to", map[i].to);
		json_object_object_add(o, "uuid", uuid_json(map[i].uuid));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *report_json(const struct mig *m, enum job_result result)
{
	const struct job *j = m->job;
	struct json_object *o = json_object_new_object(), *t, *b, *rate, *pc;
	uint64_t rb_us = 0, stream_us = 0, copy_us;
	uint32_t live_rounds = 0;

	if (!o)
		return NULL;
	jadd_int(o, "job", j->id);
	jadd_str(o, "kind", job_kind_names[j->kind]);
	jadd_str(o, "guest", m->g->name);
	jadd_str(o, "address", m->g->addr_text);
	jadd_str(o, "host", m->d->name);
	jadd_str(o, "result", job_result_names[result]);
	if (m->why[0] && result != JR_DONE) {
		jadd_str(o, "error", m->why);
		jadd_str(o, "failed_in", mig_state_names[m->failed_in]);
	}
	if (m->rb_why[0])
		jadd_str(o, "rollback_error", m->rb_why);
	if (j->kind == JOB_MIGRATE) {
		jadd_str(o, "destination", j->target);
		jadd_str(o, "channel", m->channel);
		json_object_object_add(o, "lz4", json_object_new_boolean(m->peer_lz4));
	}
	if (j->kind == JOB_MIGRATE && m->vm) {
		struct json_object *vm = json_object_new_object();

		if (vm) {
			jadd_str(vm, "qmp", m->vm->qmp);
			jadd_str(vm, "gpu", m->vm->gpu);
			jadd_str(vm, "gpu_file", m->gpu.mem_path);
			jadd_str(vm, "qemu_uri", m->o.qemu_uri);
			json_object_object_add(vm, "unplugged", json_object_new_boolean(m->unplugged));
			json_object_object_add(vm, "replugged", json_object_new_boolean(m->replugged));
			jadd_str(vm, "status", m->vmst.status);
			jadd_int(vm, "total_ms", (int64_t)m->vmst.total_ms);
			jadd_int(vm, "downtime_ms", (int64_t)m->vmst.downtime_ms);
			jadd_int(vm, "setup_ms", (int64_t)m->vmst.setup_ms);
			jadd_int(vm, "ram_transferred", (int64_t)m->vmst.ram_transferred);
			json_object_object_add(o, "vm", vm);
		}
	}
	if (j->kind == JOB_CHECKPOINT || j->kind == JOB_RESTORE)
		jadd_str(o, "file", m->o.file);
	jadd_int(o, "image_bytes", (int64_t)m->img.bytes);
	jadd_int(o, "clients", m->img.nclients);
	jadd_int(o, "regions", m->img.nregions);
	if (m->nmap)
		json_object_object_add(o, "map", map_json(m->map, m->nmap));

	if (j->kind == JOB_MIGRATE || j->kind == JOB_CHECKPOINT) {
		for (uint32_t i = 0; i < j->nrounds; i++)
			live_rounds += !j->rounds[i].final;
		pc = json_object_new_object();
		if (pc) {
			jadd_int(pc, "rounds", live_rounds);
			jadd_str(pc, "stop", m->round ? policy_verdict_names[m->verdict] : "");
			jadd_int(pc, "estimated_final_ms", (int64_t)m->est_ms);
			jadd_int(pc, "pause_target_ms", m->o.pause_target_ms);
			jadd_int(pc, "max_rounds", m->o.max_rounds);
			jadd_int(pc, "freeze_deadline_ms", m->o.freeze_deadline_ms);
			json_object_object_add(o, "precopy", pc);
		}
		json_object_object_add(o, "rounds", rounds_json(j));
	}

	t = json_object_new_object();
	if (t) {
		for (size_t i = 0; i < sizeof(time_keys) / sizeof(time_keys[0]); i++) {
			if (m->state_us[time_keys[i].state])
				jadd_ms(t, time_keys[i].key, m->state_us[time_keys[i].state]);
		}
		if (m->t_handover && m->t_attached)
			jadd_ms(t, "attach", m->t_attached - m->t_handover);
		if (m->t_attached && m->t_restored)
			jadd_ms(t, "restore", m->t_restored - m->t_attached);
		if (m->t_restored && m->t_thawed && m->handover_sent)
			jadd_ms(t, "thaw", m->t_thawed - m->t_restored);
		for (int s = MS_ROLLBACK; s <= MS_RB_THAW; s++)
			rb_us += m->state_us[s];
		if (rb_us)
			jadd_ms(t, "rollback", rb_us);
		jadd_ms(t, "total", now_us() - j->started_us);
		json_object_object_add(o, "times_ms", t);
	}
	/* What the programs saw: from the freeze to the thaw, wherever it happened. */
	if (m->t_freeze && m->t_thawed && m->t_thawed > m->t_freeze)
		jadd_ms(o, "pause_ms", m->t_thawed - m->t_freeze);

	b = json_object_new_object();
	if (b) {
		jadd_int(b, "from_guest", (int64_t)m->from_guest);
		if (j->kind == JOB_MIGRATE)
			jadd_int(b, "to_destination", (int64_t)m->to_peer);
		if (m->restored)
			jadd_int(b, "restored", (int64_t)m->restored);
		if (m->file_bytes)
			jadd_int(b, "file_image", (int64_t)m->file_bytes);
		if (m->ram)
			jadd_int(b, "zero_copy", (int64_t)m->zero_copy);
		json_object_object_add(o, "bytes", b);
	}
	rate = json_object_new_object();
	if (rate) {
		copy_us = m->state_us[MS_PRECOPY] + m->state_us[MS_FREEZE] + m->state_us[MS_FINAL];
		if (m->from_guest)
			jadd_rate(rate, "guest_to_source", m->from_guest, copy_us);
		if (m->t_stream) {
			stream_us = (m->t_handover ? m->t_handover : now_us()) - m->t_stream;
			jadd_rate(rate, "source_to_destination", m->to_peer, stream_us);
		}
		if (m->restored && m->t_restored && m->t_attached)
			jadd_rate(rate, "destination_to_guest", m->restored,
				  m->t_restored - m->t_attached);
		else if (m->restored && m->state_us[MS_RESTORE])
			jadd_rate(rate, "host_to_guest", m->restored, m->state_us[MS_RESTORE]);
		if (m->file_bytes && m->state_us[MS_WRITE])
			jadd_rate(rate, "file_write", m->file_bytes, m->state_us[MS_WRITE]);
		if (m->file_bytes && m->state_us[MS_LOAD])
			jadd_rate(rate, "file_read", m->file_bytes, m->state_us[MS_LOAD]);
		json_object_object_add(o, "throughput_mbps", rate);
	}
	json_object_object_add(o, "transitions", json_object_get(j->transitions));
	return o;
}

/* --- life and death --- */

static void mig_free(struct mig *m)
{
	/* A QMP step still in flight (daemon exit) stops at its next poll. */
	atomic_store(&m->worker.cancel, true);
	worker_join(&m->worker);
	if (m->claimed)
		guest_unclaim(m->g);
	link_free(m->peer);
	gmig_image_clear(&m->img);
	m->d->image_bytes -= m->img_accounted;
	inv_clear(&m->inv);
	free(m->frozen_pids);
	if (m->defer)
		event_free(m->defer);
	if (m->step_timer)
		event_free(m->step_timer);
	if (m->busy_timer)
		event_free(m->busy_timer);
	if (m->peer_timer)
		event_free(m->peer_timer);
	if (m->keepalive)
		event_free(m->keepalive);
	gm_table_clear(&m->stagings);
	guestmem_close(m->ram);
	free(m->ref_buf);
	free(m);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mig_free(arg);
}

static void finish(struct mig *m, enum job_result result)
{
	struct json_object *report;
	char error[JOB_ERROR_MAX];

	step_clear(m);
	evtimer_del(m->peer_timer);
	if (result != JR_DONE)
		peer_abort(m, m->why[0] ? m->why : "failed");
	link_close_detached(m->peer, "job over");
	m->peer = NULL;
	m->ps = PS_GONE;
	if (m->claimed) {
		guest_unclaim(m->g);
		m->claimed = false;
	}
	if (result == JR_DONE && m->o.kind == JOB_MIGRATE) {
		/* The session is the destination's now; ours would only fight it. */
		guest_forget_session(m->g);
	}
	report = report_json(m, result);
	if (result == JR_DONE)
		error[0] = '\0';
	else if (m->rb_why[0])
		snprintf(error, sizeof(error), "%.110s; while undoing: %.110s", m->why, m->rb_why);
	else if (m->o.kind == JOB_RESTORE && m->phase >= GMIG_PHASE_ATTACHED)
		snprintf(error, sizeof(error), "%.180s; the guest is attached and waits: run the "
			 "restore again", m->why[0] ? m->why : "failed");
	else
		snprintf(error, sizeof(error), "%s", m->why[0] ? m->why : "failed");
	m->dead = true;
	job_end(m->job, result, result == JR_DONE ? 0 : (m->err ? m->err : -EIO), error, report);
	event_base_once(m->d->base, -1, EV_TIMEOUT, reap_cb, m, NULL);
}

static void act(struct mig *m, enum mig_action a)
{
	switch (a) {
	case A_NONE:
	case A_NOTE:
		break;
	case A_LOAD:
		act_worker(m, load_file);
		break;
	case A_CONNECT:
		guest_connect(m->g, m->d->cfg.connect_timeout_ms);
		break;
	case A_INVENTORY:
		act_simple(m, GMIG_MSG_INV_REQUEST, GMIG_MSG_INV_GPUS);
		break;
	case A_CHECK:
		act_check(m);
		break;
	case A_PEER:
		act_peer(m);
		break;
	case A_DECIDE:
		act_decide(m);
		break;
	case A_ROUND:
	case A_FINAL:
		send_round(m);
		break;
	case A_FREEZE:
		act_freeze(m);
		break;
	case A_RELEASE:
		act_simple(m, GMIG_MSG_RELEASE, GMIG_MSG_RELEASED);
		break;
	case A_HANDOVER:
		act_handover(m);
		break;
	case A_UNPLUG:
		act_unplug(m);
		break;
	case A_VM_MIGRATE:
		act_vm_migrate(m);
		break;
	case A_VM_CANCEL:
		act_vm_cancel(m);
		break;
	case A_RB_REPLUG:
		act_rb_replug(m);
		break;
	case A_WRITE:
		act_worker(m, write_file);
		break;
	case A_ATTACH:
		act_attach(m, m->map, m->nmap);
		break;
	case A_RESTORE:
	case A_RB_RESTORE:
		act_restore(m);
		break;
	case A_THAW:
	case A_RB_THAW:
		act_simple(m, GMIG_MSG_THAW, GMIG_MSG_THAWED);
		break;
	case A_ROLLBACK:
		act_rollback(m);
		break;
	case A_RB_ABORT:
		act_rb_abort(m);
		break;
	case A_RB_ATTACH:
		act_attach(m, m->own, m->nown);
		break;
	case A_DONE:
		finish(m, JR_DONE);
		break;
	case A_FAIL:
		finish(m, JR_FAILED);
		break;
	case A_ROLLED_BACK:
		finish(m, JR_ROLLED_BACK);
		break;
	case A_LOST:
		finish(m, JR_IN_DOUBT);
		break;
	case A_COUNT:
		break;
	}
}

/* The one driver: events posted while one is handled wait their turn. */
static void post(struct mig *m, enum mig_event ev)
{
	char peer[48];

	if (m->dead)
		return;
	snprintf(peer, sizeof(peer), "job %u", m->job->id);
	if (m->qtail - m->qhead == MIG_QUEUE) {
		log_error(peer, "event queue full; %s dropped", mig_event_names[ev]);
		return;
	}
	m->queue[m->qtail++ % MIG_QUEUE] = ev;
	if (m->running)
		return;
	m->running = true;
	while (m->qhead != m->qtail && !m->dead) {
		const struct mig_row *row;
		enum mig_state from = m->state;
		uint64_t now;

		ev = m->queue[m->qhead++ % MIG_QUEUE];
		row = mig_row(m->tbl, m->ntbl, from, ev);
		if (!row) {
			log_rl(LV_INFO, peer, "%s not expected in %s; ignored", mig_event_names[ev],
			       mig_state_names[from]);
			continue;
		}
		now = now_us();
		m->state_us[from] += now - m->entered_us;
		m->entered_us = now;
		m->state = row->next;
		job_transition(m->job, mig_state_names[from], mig_event_names[ev],
			       mig_action_names[row->action], mig_state_names[row->next]);
		act(m, row->action);
	}
	m->running = false;
}

static void defer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	post(arg, ME_START);
}

static int abort_cb(void *machine)
{
	struct mig *m = machine;

	if (m->dead)
		return -EALREADY;
	if (!mig_row(m->tbl, m->ntbl, m->state, ME_ABORT))
		return -EBUSY;
	fail_note(m, -ECANCELED, "aborted by the operator");
	post(m, ME_ABORT);
	return 0;
}

static void destroy_cb(void *machine)
{
	struct mig *m = machine;

	m->dead = true;
	mig_free(m);
}

void mig_opts_defaults(const struct gmigd *d, struct mig_opts *o, enum job_kind kind)
{
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->max_rounds = d->cfg.max_rounds;
	o->pause_target_ms = d->cfg.pause_target_ms;
	o->freeze_deadline_ms = d->cfg.freeze_deadline_ms;
}

int mig_parse_map(const char *text, struct mig_opts *o, char *why, size_t whylen)
{
	const char *p = text;

	o->nmap = 0;
	while (*p) {
		unsigned long from, to;
		char *end;

		if (*p < '0' || *p > '9')
			goto bad;
		from = strtoul(p, &end, 10);
		if (*end != ':' || end[1] < '0' || end[1] > '9')
			goto bad;
		to = strtoul(end + 1, &end, 10);
		if (from > UINT32_MAX || to > UINT32_MAX || (*end && *end != ','))
			goto bad;
		for (unsigned int i = 0; i < o->nmap; i++) {
			if (o->map[i].from == from) {
				snprintf(why, whylen, "map: GPU %lu is mapped twice", from);
				return -EINVAL;
			}
		}
		if (o->nmap == GMIG_GPUS_MAX) {
			snprintf(why, whylen, "map: more than %d pairs", GMIG_GPUS_MAX);
			return -EINVAL;
		}
		o->map[o->nmap++] = (struct gpu_pair){ (uint32_t)from, (uint32_t)to };
		p = *end ? end + 1 : end;
		if (*end == ',' && !*p)
			goto bad;
	}
	return 0;
bad:
	snprintf(why, whylen, "map: '%s' is not FROM:TO[,FROM:TO...] with GPU indices", text);
	return -EINVAL;
}

struct job *mig_start(struct gmigd *d, const struct mig_opts *o, int *err, char *why,
		      size_t whylen)
{
	struct guest *g;
	struct mig *m;
	struct gaddr a;
	char target[JOB_TARGET_MAX] = "";

	g = guest_lookup(d, o->guest, err, why, whylen);
	if (!g)
		return NULL;
	if (g->ops || job_running_on(d, g->name)) {
		*err = -EBUSY;
		snprintf(why, whylen, "guest %s is busy with another job", g->name);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		goto out_nomem;
	m->d = d;
	m->o = *o;
	m->g = g;
	m->tbl = mig_table(o->kind, o->stop, &m->ntbl);
	m->vm = config_vm(&d->cfg, g->name);
	if (o->kind == JOB_MIGRATE && (m->vm || o->qemu_uri[0])) {
		if (!m->vm || !o->qemu_uri[0]) {
			*err = -EINVAL;
			snprintf(why, whylen, m->vm ? "guest %s runs under QEMU (vm.%s.qmp): give the "
				 "destination QEMU's address (--qemu-uri tcp:HOST:PORT)" :
				 "guest %s has no QEMU to drive: set vm.%s.qmp in gmigd.conf", g->name,
				 g->name);
			goto out_free;
		}
		m->tbl = mig_table_vm(&m->ntbl);
		m->vmt = (struct vm_timeouts){ d->cfg.qmp_timeout_ms, d->cfg.vm_unplug_timeout_ms,
					       d->cfg.vm_migrate_timeout_ms };
	}
	if (m->vm && m->vm->ram[0] && (o->kind == JOB_MIGRATE || o->kind == JOB_CHECKPOINT)) {
		int rc = guestmem_open(m->vm->ram, GUESTMEM_LOWMEM_DEFAULT, &m->ram);

		if (rc)
			log_warn(g->peer, "guest RAM %s: %s; no zero-copy", m->vm->ram, strerror(-rc));
	}
	if (!m->tbl) {
		*err = -EINVAL;
		snprintf(why, whylen, "not a job gmigd runs as the source");
		goto out_free;
	}
	if (o->kind == JOB_MIGRATE) {
		if (!d->have_secret) {
			*err = -ENOKEY;
			snprintf(why, whylen, "no peer secret: set peer_secret_file");
			goto out_free;
		}
		if (hostport_parse(o->to, m->to_host, sizeof(m->to_host), &m->to_port,
				   PEER_PORT_DEFAULT, why, whylen)) {
			*err = -EINVAL;
			goto out_free;
		}
		if (o->channel[0]) {
			if (addr_parse(o->channel, &a, why, whylen)) {
				*err = -EINVAL;
				goto out_free;
			}
			addr_format(&a, m->channel, sizeof(m->channel));
		} else {
			snprintf(m->channel, sizeof(m->channel), "%s", g->addr_text);
		}
		snprintf(target, sizeof(target), strchr(m->to_host, ':') ? "[%s]:%u" : "%s:%u",
			 m->to_host, m->to_port);
	} else if (o->kind == JOB_CHECKPOINT || o->kind == JOB_RESTORE) {
		if (o->file[0] != '/') {
			*err = -EINVAL;
			snprintf(why, whylen, "the file must be an absolute path");
			goto out_free;
		}
		snprintf(target, sizeof(target), "%.*s", (int)sizeof(target) - 1, o->file);
	}
	gmig_image_init(&m->img, gmigd_image_room(d));
	m->defer = event_new(d->base, -1, 0, defer_cb, m);
	m->step_timer = evtimer_new(d->base, step_timer_cb, m);
	m->busy_timer = evtimer_new(d->base, busy_timer_cb, m);
	m->peer_timer = evtimer_new(d->base, peer_timer_cb, m);
	m->keepalive = evtimer_new(d->base, keepalive_cb, m);
	if (!m->defer || !m->step_timer || !m->busy_timer || !m->peer_timer || !m->keepalive)
		goto out_events;
	m->job = job_new(d, o->kind, g->name, target);
	if (!m->job)
		goto out_events;
	if (guest_claim(g, &guest_ops, m)) {
		/* Checked above; nothing runs between. */
		*err = -EBUSY;
		snprintf(why, whylen, "guest %s is busy", g->name);
		job_end(m->job, JR_FAILED, -EBUSY, why, NULL);
		goto out_events_noerr;
	}
	m->claimed = true;
	m->state = MS_START;
	m->entered_us = now_us();
	m->job->machine = m;
	m->job->abort = abort_cb;
	m->job->destroy = destroy_cb;
	event_active(m->defer, EV_TIMEOUT, 0);
	return m->job;

out_events:
	*err = -ENOMEM;
	snprintf(why, whylen, "out of memory");
out_events_noerr:
	if (m->defer)
		event_free(m->defer);
	if (m->step_timer)
		event_free(m->step_timer);
	if (m->busy_timer)
		event_free(m->busy_timer);
	if (m->peer_timer)
		event_free(m->peer_timer);
	if (m->keepalive)
		event_free(m->keepalive);
out_free:
	guestmem_close(m->ram);
	free(m);
	return NULL;
out_nomem:
	*err = -ENOMEM;
	snprintf(why, whylen, "out of memory");
	return NULL;
}
