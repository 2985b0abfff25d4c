/* The destination side: peer authentication, the image stream, and the hand-over into the guest. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <sodium.h>

#include "gmig/version.h"

#include "auth.h"
#include "daemon.h"
#include "guest.h"
#include "incoming.h"
#include "job.h"
#include "link.h"
#include "log.h"
#include "push.h"
#include "vm.h"
#include "worker.h"

#define IN_QUEUE		16
#define IN_BUSY_RETRY_MS	25
#define IN_BUSY_TRIES		200
#define IN_PLUG_POLL_MS		100	/* a VM's inventory is asked again until its new GPU shows */

const char *const in_state_names[] = {
	[IS_HELLO] = "HELLO",
	[IS_AUTH] = "AUTH",
	[IS_IMAGE] = "IMAGE",
	[IS_STREAM] = "STREAM",
	[IS_PLUG] = "PLUG",
	[IS_CONNECT] = "CONNECT",
	[IS_INVENTORY] = "INVENTORY",
	[IS_ATTACH] = "ATTACH",
	[IS_RESTORE] = "RESTORE",
	[IS_THAW] = "THAW",
	[IS_DONE] = "DONE",
	[IS_FAILED] = "FAILED",
};

const char *const in_event_names[] = {
	[IE_HELLO] = "hello",
	[IE_AUTH] = "auth",
	[IE_BAD_AUTH] = "bad-auth",
	[IE_IMAGE] = "image-begin",
	[IE_DATA] = "data",
	[IE_PING] = "ping",
	[IE_HANDOVER] = "handover",
	[IE_ABORT] = "abort",
	[IE_JUNK] = "junk",
	[IE_PEER_LOST] = "peer-lost",
	[IE_OK] = "ok",
	[IE_FAIL] = "fail",
	[IE_GUEST_LOST] = "guest-lost",
	[IE_TIMEOUT] = "timeout",
};

const char *const in_action_names[] = {
	[IA_NONE] = "none",
	[IA_CHALLENGE] = "challenge",
	[IA_WELCOME] = "welcome",
	[IA_REFUSE] = "refuse",
	[IA_BEGIN] = "begin",
	[IA_APPLY] = "apply",
	[IA_PONG] = "pong",
	[IA_TAKE_OVER] = "take-over",
	[IA_CONNECT] = "connect",
	[IA_PREPARE] = "prepare",
	[IA_ATTACH] = "attach",
	[IA_RESTORE] = "restore",
	[IA_THAW] = "thaw",
	[IA_DONE] = "done",
	[IA_DISCARD] = "discard",
	[IA_GIVE_BACK] = "give-back",
};

/* Before the hand-over: the image is all there is to lose. */
#define STREAMING(s)								\
	{ s, IE_PEER_LOST, IA_DISCARD, IS_FAILED },				\
	{ s, IE_TIMEOUT, IA_REFUSE, IS_FAILED },				\
	{ s, IE_FAIL, IA_REFUSE, IS_FAILED }

/* After it, until the guest is attached here: give it back so that the source can roll back. */
#define HANDED(s)								\
	{ s, IE_FAIL, IA_GIVE_BACK, IS_FAILED },				\
	{ s, IE_GUEST_LOST, IA_GIVE_BACK, IS_FAILED }

static const struct in_row in_tbl[] = {
	/* state	event		action		next */
	{ IS_HELLO,	IE_HELLO,	IA_CHALLENGE,	IS_AUTH },
	STREAMING(IS_HELLO),
	{ IS_AUTH,	IE_AUTH,	IA_WELCOME,	IS_IMAGE },
	{ IS_AUTH,	IE_BAD_AUTH,	IA_REFUSE,	IS_FAILED },
	STREAMING(IS_AUTH),
	{ IS_IMAGE,	IE_IMAGE,	IA_BEGIN,	IS_STREAM },
	{ IS_IMAGE,	IE_PING,	IA_PONG,	IS_IMAGE },
	{ IS_IMAGE,	IE_ABORT,	IA_DISCARD,	IS_FAILED },
	/* Data or a hand-over before the announcement: a broken or hostile source. */
	{ IS_IMAGE,	IE_DATA,	IA_REFUSE,	IS_FAILED },
	{ IS_IMAGE,	IE_HANDOVER,	IA_REFUSE,	IS_FAILED },
	STREAMING(IS_IMAGE),
	{ IS_STREAM,	IE_DATA,	IA_APPLY,	IS_STREAM },
	{ IS_STREAM,	IE_PING,	IA_PONG,	IS_STREAM },
	{ IS_STREAM,	IE_HANDOVER,	IA_TAKE_OVER,	IS_PLUG },
	{ IS_STREAM,	IE_ABORT,	IA_DISCARD,	IS_FAILED },
	STREAMING(IS_STREAM),
	{ IS_PLUG,	IE_OK,		IA_CONNECT,	IS_CONNECT },
	HANDED(IS_PLUG),
	/* QEMU moved the VM here already: it is ours to finish whether the source listens or not. */
	{ IS_PLUG,	IE_PEER_LOST,	IA_NONE,	IS_PLUG },
	{ IS_CONNECT,	IE_OK,		IA_PREPARE,	IS_INVENTORY },
	HANDED(IS_CONNECT),
	/* Nothing was sent to the guest yet: the source may take it back. */
	{ IS_CONNECT,	IE_PEER_LOST,	IA_GIVE_BACK,	IS_FAILED },
	{ IS_INVENTORY,	IE_OK,		IA_ATTACH,	IS_ATTACH },
	HANDED(IS_INVENTORY),
	{ IS_INVENTORY,	IE_PEER_LOST,	IA_GIVE_BACK,	IS_FAILED },
	{ IS_ATTACH,	IE_OK,		IA_RESTORE,	IS_RESTORE },
	HANDED(IS_ATTACH),
	{ IS_RESTORE,	IE_OK,		IA_THAW,	IS_THAW },
	HANDED(IS_RESTORE),
	{ IS_THAW,	IE_OK,		IA_DONE,	IS_DONE },
	HANDED(IS_THAW),
	/* Attached here: the guest is ours to finish, with or without the source listening. */
	{ IS_ATTACH,	IE_PEER_LOST,	IA_NONE,	IS_ATTACH },
	{ IS_RESTORE,	IE_PEER_LOST,	IA_NONE,	IS_RESTORE },
	{ IS_THAW,	IE_PEER_LOST,	IA_NONE,	IS_THAW },
	{ IN_ANY,	IE_JUNK,	IA_REFUSE,	IS_FAILED },
};

#define NROWS	(sizeof(in_tbl) / sizeof(in_tbl[0]))

const struct in_row *in_table(unsigned int *count)
{
	*count = NROWS;
	return in_tbl;
}

const struct in_row *in_row(enum in_state state, enum in_event event)
{
	const struct in_row *any = NULL;

	for (size_t i = 0; i < NROWS; i++) {
		if (in_tbl[i].event != event)
			continue;
		if (in_tbl[i].state == state)
			return &in_tbl[i];
		if (in_tbl[i].state == IN_ANY)
			any = &in_tbl[i];
	}
	return any;
}

struct incoming {
	TAILQ_ENTRY(incoming) entry;
	struct gmigd *d;
	/* Restore by reference: clients' staging the agent told (SHM fds, or the VM's RAM). */
	struct gm_table stagings;
	struct guestmem *ram;
	struct link *peer;
	char addr[64];			/* the source's address, for logs */
	char tag[96];			/* "peer 10.0.0.1:5000" */
	enum in_state state;
	uint64_t entered_us;
	uint64_t state_us[IS_COUNT];
	enum in_event queue[IN_QUEUE];
	unsigned int qhead, qtail;
	bool running, dead;
	struct event *timer;		/* handshake and silence deadlines */
	struct event *step_timer;
	struct event *busy_timer;
	struct job *job;		/* from IMAGE_BEGIN on */
	int err;
	char why[JOB_ERROR_MAX];

	/* The frame being handled, for the actions. */
	const struct gmig_frame *f;
	const struct gmig_msg *msg;

	/* The peer session. */
	uint64_t session, tx_seq, rx_last;
	uint16_t version;
	uint64_t caps;
	uint8_t hello[128];
	size_t hello_len;
	uint8_t nonce_d[GMIG_MAC_SIZE];

	/* The image. */
	struct gmig_image img;
	uint64_t img_accounted;
	bool lz4;
	uint32_t expect_clients, got_clients;
	uint32_t *frozen_pids;
	uint32_t nfrozen, frozen_count;
	bool frozen_all;
	uint32_t round, round_base;
	uint64_t round_wire_start;

	/* The hand-over and the guest. */
	struct guest *g;
	bool claimed;
	char channel[GMIG_ADDR_MAX + 1];
	uint64_t g_session;
	uint8_t g_token[GMIG_TOKEN_SIZE];
	struct gmig_rec_gpu_map map[GMIG_GPUS_MAX];
	uint32_t nmap;
	uint64_t freeze_us;		/* how long the guest was frozen when HANDOVER left */
	uint16_t want;
	struct gmig_msg req;
	uint8_t req_tail[GMIG_GPUS_MAX * GMIG_REC_gpu_map_SIZE];
	uint64_t req_seq;
	unsigned int busy_tries;
	struct push push;
	bool pushing;
	struct gmig_rec_gpu gpus[GMIG_GPUS_MAX];
	uint32_t ngpus, inv_expect, inv_got;

	/* A guest under QEMU here: its GPU is plugged on the worker thread. */
	const struct config_vm *vm;
	struct worker worker;
	struct vm_gpu gpu;
	uint64_t t_plugged;
	uint32_t plug_waits;

	uint64_t t_stream, t_handover, t_attached, t_restored, t_thawed;
	uint64_t rx_data;		/* decoded region bytes taken */
	uint64_t restored;
};

static void post(struct incoming *in, enum in_event ev);

static void fail_note(struct incoming *in, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_note(struct incoming *in, int err, const char *fmt, ...)
{
	va_list ap;

	if (in->why[0])
		return;
	in->err = err < 0 ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(in->why, sizeof(in->why), fmt, ap);
	va_end(ap);
	log_warn(in->tag, "%s", in->why);
}

static void arm(struct event *ev, uint32_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

static int peer_send(struct incoming *in, const struct gmig_msg *m)
{
	struct gmig_hdr h = { .version = (uint8_t)(in->version ? in->version : GMIG_VERSION_MIN),
			      .session = in->session, .seq = ++in->tx_seq };

	if (!in->peer)
		return -ENOTCONN;
	if (m->type == GMIG_MSG_WELCOME)
		h.version = GMIG_VERSION_MIN;
	return link_send(in->peer, &h, m);
}

static void relay(struct incoming *in, const struct gmig_msg *m)
{
	int rc = peer_send(in, m);

	if (rc && rc != -ENOTCONN)
		log_rl(LV_INFO, in->tag, "%s not relayed to the source: %s", gmig_msg_name(m->type),
		       strerror(-rc));
}

static void image_account(struct incoming *in)
{
	in->d->image_bytes -= in->img_accounted;
	in->img_accounted = in->img.bytes;
	in->d->image_bytes += in->img_accounted;
}

/* --- the guest steps --- */

static void step_issue(struct incoming *in)
{
	struct push_sink sink;
	int rc;

	if (!in->want || !guest_is_ready(in->g))
		return;
	if (in->want == GMIG_MSG_RESTORED) {
		/* Refilled at half the budget, so the guest's socket never runs dry. */
		guest_set_low_water(in->g, in->d->cfg.guest_buffer / 2);
		push_sink_guest(&sink, in->g);
		push_init(&in->push, &sink, &in->img, in->d->cfg.guest_buffer,
			  in->d->cfg.guest_lz4 && (in->g->caps & GMIG_CAP_LZ4), in->d->lz4_buf);
		push_use_refs(&in->push, &in->stagings, in->ram,
			      (in->g->caps & GMIG_CAP_SHM) || ((in->g->caps & GMIG_CAP_PHYS) &&
							       guestmem_writable(in->ram)));
		in->pushing = true;
		rc = push_run(&in->push);
		if (rc < 0 && rc != -ENOTCONN) {
			in->want = 0;
			fail_note(in, rc, "restore: the image cannot be sent (%s)", strerror(-rc));
			post(in, IE_FAIL);
			return;
		}
	} else {
		rc = guest_send(in->g, &in->req);
		in->req_seq = in->g->tx_seq;
		if (rc && rc != -ENOTCONN) {
			guest_redial(in->g, in->d->cfg.guest_resume_ms);
			return;
		}
	}
	evtimer_del(in->step_timer);
	arm(in->step_timer, in->d->cfg.step_timeout_ms);
}

static void step_start(struct incoming *in, const struct gmig_msg *req, uint16_t want)
{
	const struct gmig_tail *t = gmig_msg_tail(req);

	in->req = *req;
	if (t && t->len) {
		memcpy(in->req_tail, t->ptr, t->len);
		(gmig_msg_tail(&in->req))->ptr = in->req_tail;
	}
	in->want = want;
	in->busy_tries = 0;
	step_issue(in);
}

static void step_end(struct incoming *in, bool ok)
{
	in->want = 0;
	in->pushing = false;
	evtimer_del(in->step_timer);
	evtimer_del(in->busy_timer);
	post(in, ok ? IE_OK : IE_FAIL);
}

static void step_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct incoming *in = arg;

	(void)fd;
	(void)what;
	if (in->dead || !in->want)
		return;
	log_warn(in->tag, "no %s within %u ms: resuming the session", gmig_msg_name(in->want),
		 in->d->cfg.step_timeout_ms);
	guest_redial(in->g, in->d->cfg.guest_resume_ms);
}

static void busy_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct incoming *in = arg;

	(void)fd;
	(void)what;
	if (!in->dead && in->want)
		step_issue(in);
}

/* Whether a GPU the map names by index alone is missing from the guest's inventory. */
static bool gpu_missing(const struct incoming *in)
{
	static const uint8_t zero[GMIG_UUID_SIZE];

	for (uint32_t i = 0; i < in->nmap; i++) {
		bool found = false;

		if (memcmp(in->map[i].uuid, zero, sizeof(zero)))
			continue;
		/* A GPU without a UUID (a display seen by inventory only) cannot be attached. */
		for (uint32_t k = 0; k < in->ngpus; k++)
			found |= in->gpus[k].index == in->map[i].to &&
				 memcmp(in->gpus[k].uuid, zero, sizeof(zero));
		if (!found)
			return true;
	}
	return false;
}

static void guest_drained(void *ctx);

/* STAGING_PHYS: a client's staging, in the fd that came with it (SHM) or in the VM's RAM. */
static void on_staging_phys(struct incoming *in, const struct gmig_staging_phys *sp)
{
	int fd = (in->g->caps & GMIG_CAP_SHM) ? guest_take_fd(in->g) : -1;
	int rc = gm_table_set(&in->stagings, in->ram, sp, fd);

	if (fd >= 0)
		close(fd);
	/* Without it the agent's lends for this client are refused: the restore copies. */
	if (rc)
		log_rl(LV_WARN, in->tag, "STAGING_PHYS of pid %u refused: %s", sp->pid,
		       strerror(-rc));
}

/* SLOT_LEND: one more slot the restore may fill; the push goes on if it waited for one. */
static void on_slot_lend(struct incoming *in, const struct gmig_slot_lend *sl)
{
	int rc;

	if (!in->pushing || !in->want) {
		log_rl(LV_DEBUG, in->tag, "SLOT_LEND outside a restore; ignored");
		return;
	}
	rc = gm_table_lend(&in->stagings, sl->pid, sl->slot);
	if (rc) {
		/*
		 * A staging gmigd cannot reach (no RAM file here, a refused STAGING_PHYS): the
		 * slot stays unused and the bytes travel as frames through the slot never lent.
		 */
		log_rl(LV_INFO, in->tag, "slot %u of pid %u lent, %s; restoring by copy",
		       sl->slot, sl->pid, rc == -ENOENT ? "but its staging is out of reach" :
		       "but it is not an agent-to-client slot");
		return;
	}
	guest_drained(in);
}

static int guest_frame(void *ctx, const struct gmig_msg *m, const struct gmig_hdr *h)
{
	struct incoming *in = ctx;
	const struct gmig_error *e = &m->u.error;

	(void)h;
	if (in->dead)
		return LINK_CONTINUE;
	switch (m->type) {
	case GMIG_MSG_ERROR:
		if (!in->want || (e->ref_seq != in->req_seq &&
				  !(in->pushing && e->ref_type >= GMIG_MSG_RESTORE_BEGIN &&
				    e->ref_type <= GMIG_MSG_RESTORE_REF))) {
			log_rl(LV_WARN, in->tag, "agent error: %.*s", (int)e->tail.len,
			       (const char *)e->tail.ptr);
			return LINK_CONTINUE;
		}
		if (e->code == -EBUSY && !in->pushing && ++in->busy_tries < IN_BUSY_TRIES) {
			evtimer_del(in->step_timer);
			arm(in->busy_timer, IN_BUSY_RETRY_MS);
			return LINK_CONTINUE;
		}
		fail_note(in, e->code, "%s refused by the guest: %.*s", gmig_msg_name(in->req.type),
			  (int)e->tail.len, (const char *)e->tail.ptr);
		step_end(in, false);
		return LINK_CONTINUE;
	case GMIG_MSG_STAGING_PHYS:
		on_staging_phys(in, &m->u.staging_phys);
		return LINK_CONTINUE;
	case GMIG_MSG_SLOT_LEND:
		on_slot_lend(in, &m->u.slot_lend);
		return LINK_CONTINUE;
	case GMIG_MSG_INV_GPUS:
		if (in->want != GMIG_MSG_INV_GPUS)
			break;
		in->ngpus = gmig_rec_count(&m->u.inv_gpus.tail, GMIG_REC_gpu_SIZE);
		for (uint32_t i = 0; i < in->ngpus; i++)
			gmig_rec_get_gpu(&m->u.inv_gpus.tail, i, &in->gpus[i]);
		in->inv_expect = m->u.inv_gpus.clients;
		in->inv_got = 0;
		if (in->vm && gpu_missing(in) &&
		    ++in->plug_waits < in->d->cfg.vm_unplug_timeout_ms / IN_PLUG_POLL_MS) {
			/* The guest has not taken in the GPU plugged a moment ago yet: ask again. */
			evtimer_del(in->step_timer);
			arm(in->busy_timer, IN_PLUG_POLL_MS);
			return LINK_CONTINUE;
		}
		if (!in->inv_expect)
			step_end(in, true);
		else
			in->want = GMIG_MSG_INV_CLIENT;
		return LINK_CONTINUE;
	case GMIG_MSG_INV_CLIENT:
		if (in->want == GMIG_MSG_INV_CLIENT && ++in->inv_got >= in->inv_expect)
			step_end(in, true);
		return LINK_CONTINUE;
	case GMIG_MSG_RESTORED:
		if (in->want != m->type)
			break;
		if (!push_matches(&in->push, &m->u.totals)) {
			fail_note(in, -EIO, "restore: the agent applied %llu of %llu bytes",
				  (unsigned long long)m->u.totals.bytes,
				  (unsigned long long)in->push.sent.bytes);
			step_end(in, false);
			return LINK_CONTINUE;
		}
		in->restored = m->u.totals.bytes;
		in->t_restored = now_us();
		relay(in, m);
		step_end(in, true);
		return LINK_CONTINUE;
	case GMIG_MSG_ATTACHED:
	case GMIG_MSG_THAWED:
		if (in->want != m->type)
			break;
		if (m->type == GMIG_MSG_ATTACHED)
			in->t_attached = now_us();
		else
			in->t_thawed = now_us();
		relay(in, m);
		step_end(in, true);
		return LINK_CONTINUE;
	default:
		break;
	}
	log_rl(LV_DEBUG, in->tag, "%s from the guest not waited for; ignored", gmig_msg_name(m->type));
	return LINK_CONTINUE;
}

static void guest_ready(void *ctx, bool resumed, uint8_t phase)
{
	struct incoming *in = ctx;

	if (in->dead)
		return;
	if (in->state == IS_CONNECT) {
		if (!resumed) {
			fail_note(in, -ESTALE, "the guest did not resume the handed-over session");
			post(in, IE_FAIL);
			return;
		}
		if (phase != GMIG_PHASE_RELEASED && phase != GMIG_PHASE_ATTACHED &&
		    phase != GMIG_PHASE_RESTORED) {
			fail_note(in, -EPROTO, "the guest is in phase %s, not released",
				  gmig_phase_name(phase));
			post(in, IE_FAIL);
			return;
		}
		post(in, IE_OK);
		return;
	}
	if (in->want == GMIG_MSG_INV_CLIENT)
		in->want = GMIG_MSG_INV_GPUS;
	step_issue(in);
}

static void guest_down(void *ctx, int err, const char *why)
{
	struct incoming *in = ctx;

	(void)err;
	evtimer_del(in->step_timer);
	evtimer_del(in->busy_timer);
	/* The agent takes back every slot it lent on that connection. */
	gm_table_unlend(&in->stagings);
	log_info(in->tag, "guest channel down in %s (%s); resuming", in_state_names[in->state], why);
}

static void guest_lost(void *ctx, int err, const char *why)
{
	struct incoming *in = ctx;

	if (in->dead)
		return;
	in->want = 0;
	in->pushing = false;
	fail_note(in, err, "guest channel %s: %s", in->channel, why);
	post(in, IE_GUEST_LOST);
}

static void guest_drained(void *ctx)
{
	struct incoming *in = ctx;
	int rc;

	if (in->dead || !in->pushing || !in->want)
		return;
	rc = push_run(&in->push);
	if (rc < 0 && rc != -ENOTCONN) {
		fail_note(in, rc, "restore: %s", strerror(-rc));
		step_end(in, false);
		return;
	}
	if (in->job)
		in->job->done_bytes = in->push.sent.bytes;
}

static const struct guest_owner_ops guest_ops = {
	.ready = guest_ready,
	.frame = guest_frame,
	.down = guest_down,
	.lost = guest_lost,
	.drained = guest_drained,
};

/* --- the stream --- */

static void apply_data(struct incoming *in)
{
	const struct gmig_msg *m = in->msg;
	struct job_round *r;
	int rc;

	switch (m->type) {
	case GMIG_MSG_INV_GPUS:
		/* Again when the programs' regions grew; never inside another inventory. */
		if (in->got_clients != in->expect_clients) {
			fail_note(in, -EPROTO, "an inventory out of place");
			break;
		}
		rc = gmig_image_set_gpus(&in->img, &m->u.inv_gpus);
		if (rc || m->u.inv_gpus.clients > GMIG_MANIFEST_MAX) {
			fail_note(in, rc ? rc : -EPROTO, "the GPU list is not valid");
			break;
		}
		in->expect_clients = m->u.inv_gpus.clients;
		in->got_clients = 0;
		return;
	case GMIG_MSG_INV_CLIENT:
		if (!in->img.ngpus || m->u.inv_client.index != in->got_clients ||
		    m->u.inv_client.count != in->expect_clients) {
			fail_note(in, -EPROTO, "INV_CLIENT %u of %u out of order", m->u.inv_client.index,
				  m->u.inv_client.count);
			break;
		}
		rc = gmig_image_set_client(&in->img, &m->u.inv_client);
		if (rc == -ENOSPC) {
			fail_note(in, rc, "the image passes image_cap (%llu bytes)",
				  (unsigned long long)in->d->cfg.image_cap);
			break;
		}
		if (rc) {
			fail_note(in, rc, "pid %u: invalid regions", m->u.inv_client.pid);
			break;
		}
		in->got_clients++;
		image_account(in);
		if (in->job)
			in->job->total_bytes = in->img.bytes;
		return;
	case GMIG_MSG_ROUND_BEGIN:
		in->round = m->u.round_begin.round;
		in->round_base = m->u.round_begin.base;
		in->round_wire_start = in->peer ? in->peer->rx_bytes : 0;
		if (in->job)
			in->job->round = in->round;
		return;
	case GMIG_MSG_ROUND_END:
		r = job_add_round(in->job);
		if (r) {
			*r = (struct job_round){ .round = m->u.round_end.round, .base = in->round_base,
				.final = in->frozen_all, .chunks = m->u.round_end.chunks,
				.dirty = m->u.round_end.dirty, .zero = m->u.round_end.zero,
				.bytes = m->u.round_end.bytes, .usecs = m->u.round_end.usecs,
				.wire_bytes = (in->peer ? in->peer->rx_bytes : 0) - in->round_wire_start };
		}
		return;
	case GMIG_MSG_REGION_DATA:
		if (in->got_clients != in->expect_clients || !in->img.ngpus) {
			fail_note(in, -EPROTO, "region data before the inventory");
			break;
		}
		rc = gmig_image_apply(&in->img, &m->u.region_data, in->lz4);
		if (rc) {
			fail_note(in, rc, "pid %u region %u: bytes [%llu, +%u) refused (%s)",
				  m->u.region_data.pid, m->u.region_data.region,
				  (unsigned long long)m->u.region_data.offset, m->u.region_data.length,
				  strerror(-rc));
			break;
		}
		in->rx_data += m->u.region_data.length;
		if (in->job)
			in->job->done_bytes += m->u.region_data.length;
		return;
	case GMIG_MSG_FROZEN: {
		const struct gmig_frozen *fz = &m->u.frozen;

		if (in->frozen_all || fz->index != in->nfrozen || fz->count > in->img.nclients ||
		    (in->nfrozen && fz->count != in->frozen_count)) {
			fail_note(in, -EPROTO, "FROZEN %u of %u out of order", fz->index, fz->count);
			break;
		}
		in->frozen_count = fz->count;
		if (!fz->count) {
			in->frozen_all = true;
			return;
		}
		if (!in->frozen_pids) {
			in->frozen_pids = calloc(fz->count, sizeof(uint32_t));
			if (!in->frozen_pids) {
				fail_note(in, -ENOMEM, "out of memory");
				break;
			}
		}
		for (uint32_t i = 0; i < in->nfrozen; i++) {
			if (in->frozen_pids[i] == fz->pid) {
				fail_note(in, -EPROTO, "FROZEN for pid %u twice", fz->pid);
				goto out_fail;
			}
		}
		rc = gmig_image_set_blob(&in->img, fz->pid, fz->tail.ptr, fz->tail.len);
		if (rc) {
			fail_note(in, rc, "FROZEN for pid %u: %s", fz->pid, strerror(-rc));
			break;
		}
		in->frozen_pids[in->nfrozen++] = fz->pid;
		in->frozen_all = in->nfrozen == fz->count;
		return;
	}
	default:
		fail_note(in, -EPROTO, "%s in the stream", gmig_msg_name(m->type));
		break;
	}
out_fail:
	post(in, IE_FAIL);
}

/* IMAGE_BEGIN: the guest, where to reach it, and room for its image. */
static void begin_image(struct incoming *in)
{
	const struct gmig_image_begin *b = &in->msg->u.image_begin;
	char name[GUEST_NAME_MAX + 1], why[ADDR_ERR_MAX];
	uint64_t room = gmigd_image_room(in->d);
	struct gaddr a;
	struct guest *g;

	snprintf(name, sizeof(name), "%s", b->guest);
	if (!guest_name_ok(name)) {
		fail_note(in, -EINVAL, "guest name '%s' is not valid", name);
		goto out_fail;
	}
	memcpy(in->channel, b->tail.ptr, b->tail.len);
	in->channel[b->tail.len] = '\0';
	if (addr_parse(in->channel, &a, why, sizeof(why))) {
		fail_note(in, -EINVAL, "guest %s: channel: %s", name, why);
		goto out_fail;
	}
	in->job = job_new(in->d, JOB_INCOMING, name, in->addr);
	if (!in->job) {
		fail_note(in, -ENOMEM, "out of memory");
		goto out_fail;
	}
	in->job->machine = in;
	in->job->total_bytes = b->bytes;
	if (b->bytes > room) {
		fail_note(in, -ENOSPC, "the image of %llu bytes passes image_cap (%llu bytes, %llu free)",
			  (unsigned long long)b->bytes, (unsigned long long)in->d->cfg.image_cap,
			  (unsigned long long)room);
		goto out_fail;
	}
	TAILQ_FOREACH(g, &in->d->guests, entry) {
		if (!strcmp(g->name, name))
			break;
	}
	if (g && (g->ops || job_running_on(in->d, name) != in->job)) {
		fail_note(in, -EBUSY, "guest %s is busy here", name);
		goto out_fail;
	}
	if (!g && guests_count(in->d) >= GUESTS_MAX) {
		fail_note(in, -ENOSPC, "this gmigd knows %d guests already", GUESTS_MAX);
		goto out_fail;
	}
	if (!g) {
		g = guest_new(in->d, name, &a, false);
		if (!g) {
			fail_note(in, -ENOMEM, "out of memory");
			goto out_fail;
		}
		TAILQ_INSERT_TAIL(&in->d->guests, g, entry);
	} else {
		/* The source knows where the guest is reachable from here. */
		g->addr = a;
		addr_format(&a, g->addr_text, sizeof(g->addr_text));
	}
	in->g = g;
	gmig_image_init(&in->img, room ? room : 1);
	in->t_stream = now_us();
	log_info(in->tag, "image of guest %s (%llu bytes) coming; the guest is at %s", name,
		 (unsigned long long)b->bytes, in->channel);
	return;
out_fail:
	post(in, IE_FAIL);
}

/* On the worker: the VM runs here (QEMU's migration ended), then its new GPU goes in. */
static int plug_fn(void *arg, char *detail, size_t len)
{
	struct incoming *in = arg;
	struct vm_timeouts t = { in->d->cfg.qmp_timeout_ms, in->d->cfg.vm_unplug_timeout_ms,
				 in->d->cfg.vm_migrate_timeout_ms };
	int rc;

	rc = vm_wait_running(in->vm->qmp, &t, detail, len);
	if (!rc)
		rc = vm_plug(in->vm->qmp, &t, &in->gpu, detail, len);
	return rc;
}

static void plug_done(void *ctx, int rc, const char *detail)
{
	struct incoming *in = ctx;

	if (in->dead)
		return;
	if (rc) {
		fail_note(in, rc, "GPU hot-plug: %s", detail);
		post(in, IE_FAIL);
		return;
	}
	in->t_plugged = now_us();
	log_info(in->tag, "GPU %s (%s) plugged into guest %s after %llu ms", in->gpu.id,
		 in->gpu.mem_path, in->g->name,
		 (unsigned long long)((in->t_plugged - in->t_handover) / 1000));
	post(in, IE_OK);
}

static void plug(struct incoming *in)
{
	char why[JOB_ERROR_MAX];
	int rc;

	if (!in->vm->gpu_file[0]) {
		fail_note(in, -EINVAL, "guest %s runs under QEMU here but vm.%s.gpu_file is not set",
			  in->g->name, in->g->name);
		post(in, IE_FAIL);
		return;
	}
	rc = vm_gpu_from_file(in->vm->gpu, in->vm->gpu_file, &in->gpu, why, sizeof(why));
	if (!rc)
		rc = worker_start(&in->worker, in->d->base, plug_fn, in, plug_done, in);
	if (rc) {
		fail_note(in, rc, "GPU hot-plug: %s", rc == -EINVAL || rc == -ENOENT ? why :
			  strerror(-rc));
		post(in, IE_FAIL);
	}
}

/* HANDOVER: the image must be whole; then (a VM's GPU plugged) the guest's session resumes. */
static void take_over(struct incoming *in)
{
	const struct gmig_handover *h = &in->msg->u.handover;
	uint32_t n = gmig_rec_count(&h->tail, GMIG_REC_gpu_map_SIZE);

	in->t_handover = now_us();
	in->freeze_us = h->freeze_us;
	in->g_session = h->session;
	memcpy(in->g_token, h->token, GMIG_TOKEN_SIZE);
	in->nmap = n;
	for (uint32_t i = 0; i < n; i++)
		gmig_rec_get_gpu_map(&h->tail, i, &in->map[i]);
	if (in->got_clients != in->expect_clients || !in->img.ngpus || !in->frozen_all) {
		fail_note(in, -ENODATA, "HANDOVER before the inventory and the freeze were complete");
		goto out_fail;
	}
	for (uint32_t i = 0; i < in->img.nclients;) {
		uint32_t pid = in->img.clients[i].pid;
		bool frozen = false;

		for (uint32_t k = 0; k < in->nfrozen; k++)
			frozen |= in->frozen_pids[k] == pid;
		if (frozen) {
			i++;
			continue;
		}
		gmig_image_drop_client(&in->img, pid);
	}
	image_account(in);
	if (!gmig_image_complete(&in->img)) {
		fail_note(in, -ENODATA, "the image is not complete: some chunks never arrived");
		goto out_fail;
	}
	log_info(in->tag, "HANDOVER: %u rounds, frozen for %llu ms so far", h->rounds,
		 (unsigned long long)(h->freeze_us / 1000));
	in->vm = config_vm(&in->d->cfg, in->g->name);
	if (in->vm && in->vm->ram[0] && !in->ram) {
		int rc = guestmem_open(in->vm->ram, GUESTMEM_LOWMEM_DEFAULT, &in->ram);

		if (rc)
			log_warn(in->tag, "guest RAM %s: %s; restore by copy", in->vm->ram,
				 strerror(-rc));
	}
	if (in->vm) {
		plug(in);
		return;
	}
	post(in, IE_OK);
	return;
out_fail:
	post(in, IE_FAIL);
}

/* The guest's session, handed over, is resumed here. */
static void connect_guest(struct incoming *in)
{
	if (guest_claim(in->g, &guest_ops, in)) {
		fail_note(in, -EBUSY, "guest %s is busy here", in->g->name);
		goto out_fail;
	}
	in->claimed = true;
	guest_adopt_session(in->g, in->g_session, in->g_token);
	guest_connect(in->g, in->d->cfg.guest_resume_ms);
	log_info(in->tag, "resuming session %016llx at %s", (unsigned long long)in->g_session,
		 in->channel);
	return;
out_fail:
	post(in, IE_FAIL);
}

static void prepare(struct incoming *in)
{
	struct gmig_msg req = { .type = GMIG_MSG_INV_REQUEST };
	static const uint8_t zero[GMIG_UUID_SIZE];

	for (uint32_t i = 0; i < in->nmap; i++) {
		if (!memcmp(in->map[i].uuid, zero, sizeof(zero))) {
			/* The source did not see the target GPU: the guest knows it by now. */
			step_start(in, &req, GMIG_MSG_INV_GPUS);
			return;
		}
	}
	post(in, IE_OK);
}

static void attach(struct incoming *in)
{
	static const uint8_t zero[GMIG_UUID_SIZE];
	uint8_t buf[GMIG_GPUS_MAX * GMIG_REC_gpu_map_SIZE];
	struct gmig_msg req = { .type = GMIG_MSG_ATTACH };

	for (uint32_t i = 0; i < in->nmap; i++) {
		if (memcmp(in->map[i].uuid, zero, sizeof(zero)))
			continue;
		for (uint32_t k = 0; k < in->ngpus; k++) {
			if (in->gpus[k].index == in->map[i].to)
				memcpy(in->map[i].uuid, in->gpus[k].uuid, GMIG_UUID_SIZE);
		}
		if (!memcmp(in->map[i].uuid, zero, sizeof(zero))) {
			fail_note(in, -ENODEV, "GPU %u is not in the guest's inventory", in->map[i].to);
			post(in, IE_FAIL);
			return;
		}
	}
	for (uint32_t i = 0; i < in->nmap; i++)
		gmig_rec_put_gpu_map(buf + i * GMIG_REC_gpu_map_SIZE, &in->map[i]);
	req.u.attach.tail = (struct gmig_tail){ buf, in->nmap * GMIG_REC_gpu_map_SIZE };
	step_start(in, &req, GMIG_MSG_ATTACHED);
}

/* --- the end --- */

static struct json_object *report_json(const struct incoming *in, enum job_result result)
{
	const struct job *j = in->job;
	struct json_object *o = json_object_new_object(), *t, *rate, *rounds;
	uint64_t stream_us = (in->t_handover ? in->t_handover : now_us()) - in->t_stream;

	if (!o)
		return NULL;
	jadd_int(o, "job", j->id);
	jadd_str(o, "kind", job_kind_names[j->kind]);
	jadd_str(o, "guest", j->guest);
	jadd_str(o, "source", in->addr);
	jadd_str(o, "channel", in->channel);
	jadd_str(o, "host", in->d->name);
	jadd_str(o, "result", job_result_names[result]);
	if (result != JR_DONE && in->why[0])
		jadd_str(o, "error", in->why);
	json_object_object_add(o, "lz4", json_object_new_boolean(in->lz4));
	jadd_int(o, "image_bytes", (int64_t)in->img.bytes);
	jadd_int(o, "clients", in->img.nclients);
	jadd_int(o, "regions", in->img.nregions);
	if (in->restored)
		jadd_int(o, "restored", (int64_t)in->restored);
	/* Of them, written straight into the clients' lent slots (PHYS or SHM). */
	jadd_int(o, "restored_by_reference", (int64_t)in->push.by_ref);
	rounds = json_object_new_array();
	for (uint32_t i = 0; rounds && i < j->nrounds; i++) {
		struct json_object *r = json_object_new_object();

		if (!r)
			continue;
		jadd_int(r, "round", j->rounds[i].round);
		jadd_int(r, "base", j->rounds[i].base);
		json_object_object_add(r, "final", json_object_new_boolean(j->rounds[i].final));
		jadd_int(r, "changed", (int64_t)j->rounds[i].dirty);
		jadd_int(r, "bytes", (int64_t)j->rounds[i].bytes);
		jadd_int(r, "wire_bytes", (int64_t)j->rounds[i].wire_bytes);
		json_object_array_add(rounds, r);
	}
	json_object_object_add(o, "rounds", rounds);
	t = json_object_new_object();
	if (t) {
		jadd_ms(t, "stream", stream_us);
		if (in->state_us[IS_PLUG] && in->vm)
			jadd_ms(t, "vm_plug", in->state_us[IS_PLUG]);
		if (in->state_us[IS_CONNECT])
			jadd_ms(t, "connect", in->state_us[IS_CONNECT]);
		if (in->t_attached)
			jadd_ms(t, "attach", in->state_us[IS_ATTACH]);
		if (in->t_restored)
			jadd_ms(t, "restore", in->state_us[IS_RESTORE]);
		if (in->t_thawed)
			jadd_ms(t, "thaw", in->state_us[IS_THAW]);
		jadd_ms(t, "total", now_us() - j->started_us);
		json_object_object_add(o, "times_ms", t);
	}
	/* The pause the programs saw: frozen when HANDOVER left, plus everything here. */
	if (in->t_thawed)
		jadd_ms(o, "pause_ms", in->freeze_us + (in->t_thawed - in->t_handover));
	rate = json_object_new_object();
	if (rate) {
		jadd_rate(rate, "source_to_destination", in->peer ? in->peer->rx_bytes : 0, stream_us);
		if (in->restored)
			jadd_rate(rate, "destination_to_guest", in->restored, in->state_us[IS_RESTORE]);
		json_object_object_add(o, "throughput_mbps", rate);
	}
	json_object_object_add(o, "transitions", json_object_get(j->transitions));
	return o;
}

static void incoming_free(struct incoming *in)
{
	worker_join(&in->worker);
	if (in->claimed)
		guest_unclaim(in->g);
	link_free(in->peer);
	gmig_image_clear(&in->img);
	gm_table_clear(&in->stagings);
	guestmem_close(in->ram);
	in->d->image_bytes -= in->img_accounted;
	free(in->frozen_pids);
	if (in->timer)
		event_free(in->timer);
	if (in->step_timer)
		event_free(in->step_timer);
	if (in->busy_timer)
		event_free(in->busy_timer);
	free(in);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	incoming_free(arg);
}

/* Ends the incoming migration; @keep_session: the guest is ours now. */
static void finish(struct incoming *in, enum job_result result, bool keep_session)
{
	evtimer_del(in->timer);
	evtimer_del(in->step_timer);
	evtimer_del(in->busy_timer);
	if (in->claimed) {
		guest_unclaim(in->g);
		in->claimed = false;
		if (!keep_session)
			guest_forget_session(in->g);
	}
	if (in->job) {
		struct json_object *report = report_json(in, result);

		job_end(in->job, result, result == JR_DONE ? 0 : in->err,
			result == JR_DONE ? "" : in->why, report);
	}
	link_close_detached(in->peer, "migration over");
	in->peer = NULL;
	in->dead = true;
	TAILQ_REMOVE(&in->d->incomings, in, entry);
	event_base_once(in->d->base, -1, EV_TIMEOUT, reap_cb, in, NULL);
}

static void act(struct incoming *in, enum in_action a)
{
	struct gmig_msg m;
	uint8_t mac[GMIG_MAC_SIZE];
	uint16_t version;

	switch (a) {
	case IA_NONE:
		break;
	case IA_CHALLENGE: {
		const struct gmig_hello *h = &in->msg->u.hello;

		if (h->role != GMIG_ROLE_PEER) {
			fail_note(in, -EPROTO, "HELLO from a %s, not a peer", gmig_role_name(h->role));
			post(in, IE_FAIL);
			break;
		}
		if (gmig_version_agree(GMIG_VERSION_MIN, GMIG_VERSION_MAX, h->min_version,
				       h->max_version, &version)) {
			fail_note(in, -EPROTONOSUPPORT, "no common version: we speak %u..%u, the peer "
				  "%u..%u", GMIG_VERSION_MIN, GMIG_VERSION_MAX, h->min_version,
				  h->max_version);
			post(in, IE_FAIL);
			break;
		}
		in->version = version;
		in->caps = h->caps & GMIG_CAP_LZ4;
		in->hello_len = in->f->hdr.len;
		memcpy(in->hello, in->f->payload, in->hello_len);
		auth_nonce(in->nonce_d);
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_CHALLENGE;
		memcpy(m.u.challenge.nonce, in->nonce_d, GMIG_MAC_SIZE);
		peer_send(in, &m);
		break;
	}
	case IA_WELCOME:
		while (!in->session)
			randombytes_buf(&in->session, sizeof(in->session));
		auth_mac_dest(&in->d->secret, in->msg->u.auth.nonce, in->nonce_d, mac);
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_PROOF;
		memcpy(m.u.proof.mac, mac, GMIG_MAC_SIZE);
		peer_send(in, &m);
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_WELCOME;
		m.u.welcome.version = in->version;
		m.u.welcome.role = GMIG_ROLE_PEER;
		m.u.welcome.caps = in->caps;
		m.u.welcome.session = in->session;
		randombytes_buf(m.u.welcome.token, GMIG_TOKEN_SIZE);
		peer_send(in, &m);
		in->lz4 = in->caps & GMIG_CAP_LZ4;
		link_set_versions(in->peer, (uint8_t)in->version, (uint8_t)in->version);
		log_info(in->tag, "authenticated; session %016llx", (unsigned long long)in->session);
		break;
	case IA_REFUSE:
		if (!in->why[0])
			fail_note(in, -EPROTO, "%s out of order", in->msg ?
				  gmig_msg_name(in->msg->type) : "a message");
		if (in->peer) {
			char text[GMIG_TEXT_MAX + 1];

			snprintf(text, sizeof(text), "%s", in->why);
			for (char *p = text; *p; p++) {
				if ((unsigned char)*p < 0x20)
					*p = '?';
			}
			memset(&m, 0, sizeof(m));
			msg_error(&m, in->err, in->f ? in->f->hdr.type : 0,
				  in->f ? in->f->hdr.seq : 0, text);
			peer_send(in, &m);
		}
		finish(in, JR_FAILED, false);
		break;
	case IA_BEGIN:
		begin_image(in);
		break;
	case IA_APPLY:
		apply_data(in);
		break;
	case IA_PONG:
		m = *in->msg;
		m.type = GMIG_MSG_PONG;
		peer_send(in, &m);
		break;
	case IA_TAKE_OVER:
		evtimer_del(in->timer);
		take_over(in);
		break;
	case IA_CONNECT:
		connect_guest(in);
		break;
	case IA_PREPARE:
		prepare(in);
		break;
	case IA_ATTACH:
		attach(in);
		break;
	case IA_RESTORE:
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_RESTORE_END;
		if (in->job) {
			in->job->done_bytes = 0;
			in->job->total_bytes = in->img.bytes;
		}
		step_start(in, &m, GMIG_MSG_RESTORED);
		break;
	case IA_THAW:
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_THAW;
		step_start(in, &m, GMIG_MSG_THAWED);
		break;
	case IA_DONE:
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_MIGRATED;
		relay(in, &m);
		log_info(in->tag, "guest %s runs here; pause %llu ms", in->g->name,
			 (unsigned long long)((in->freeze_us + in->t_thawed - in->t_handover) / 1000));
		finish(in, JR_DONE, true);
		break;
	case IA_DISCARD:
		if (!in->why[0])
			fail_note(in, -ECANCELED, "the source abandoned the migration");
		finish(in, JR_FAILED, false);
		break;
	case IA_GIVE_BACK:
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_MIGRATED;
		m.u.code.code = in->err < 0 ? in->err : -EIO;
		relay(in, &m);
		log_warn(in->tag, "giving guest %s back to the source: %s", in->g ? in->g->name : "?",
			 in->why);
		finish(in, JR_FAILED, false);
		break;
	case IA_COUNT:
		break;
	}
}

static void post(struct incoming *in, enum in_event ev)
{
	if (in->dead)
		return;
	if (in->qtail - in->qhead == IN_QUEUE) {
		log_error(in->tag, "event queue full; %s dropped", in_event_names[ev]);
		return;
	}
	in->queue[in->qtail++ % IN_QUEUE] = ev;
	if (in->running)
		return;
	in->running = true;
	while (in->qhead != in->qtail && !in->dead) {
		const struct in_row *row;
		enum in_state from = in->state;
		uint64_t now;

		ev = in->queue[in->qhead++ % IN_QUEUE];
		row = in_row(from, ev);
		if (!row) {
			log_rl(LV_INFO, in->tag, "%s not expected in %s; ignored", in_event_names[ev],
			       in_state_names[from]);
			continue;
		}
		now = now_us();
		in->state_us[from] += now - in->entered_us;
		in->entered_us = now;
		in->state = row->next;
		/* Every frame of the stream is an event; only the steps are worth a record. */
		if (in->job && (from != row->next || (ev != IE_DATA && ev != IE_PING)))
			job_transition(in->job, in_state_names[from], in_event_names[ev],
				       in_action_names[row->action], in_state_names[row->next]);
		else
			log_debug(in->tag, "%s --%s/%s--> %s", in_state_names[from],
				  in_event_names[ev], in_action_names[row->action],
				  in_state_names[row->next]);
		act(in, row->action);
	}
	in->running = false;
}

/* --- the peer link --- */

static enum in_event classify(struct incoming *in, const struct gmig_frame *f,
			      const struct gmig_msg *m)
{
	uint8_t mac[GMIG_MAC_SIZE];

	if (in->state == IS_HELLO)
		return m->type == GMIG_MSG_HELLO ? IE_HELLO : IE_JUNK;
	if (in->state == IS_AUTH) {
		if (m->type != GMIG_MSG_AUTH)
			return IE_JUNK;
		auth_mac_source(&in->d->secret, in->nonce_d, in->hello, in->hello_len, mac);
		if (auth_mac_equal(mac, m->u.auth.mac))
			return IE_AUTH;
		log_rl(LV_WARN, in->tag, "wrong peer secret: refused");
		fail_note(in, -EACCES, "authentication failed: wrong peer secret");
		return IE_BAD_AUTH;
	}
	if (f->hdr.session != in->session || f->hdr.seq <= in->rx_last) {
		fail_note(in, -EPROTO, "%s with session %016llx seq %llu out of line",
			  gmig_msg_name(m->type), (unsigned long long)f->hdr.session,
			  (unsigned long long)f->hdr.seq);
		return IE_JUNK;
	}
	in->rx_last = f->hdr.seq;
	switch (m->type) {
	case GMIG_MSG_IMAGE_BEGIN:
		return IE_IMAGE;
	case GMIG_MSG_INV_GPUS:
	case GMIG_MSG_INV_CLIENT:
	case GMIG_MSG_ROUND_BEGIN:
	case GMIG_MSG_ROUND_END:
	case GMIG_MSG_REGION_DATA:
	case GMIG_MSG_FROZEN:
		return IE_DATA;
	case GMIG_MSG_PING:
		return IE_PING;
	case GMIG_MSG_HANDOVER:
		return IE_HANDOVER;
	case GMIG_MSG_ABORT:
		fail_note(in, m->u.abort.code ? m->u.abort.code : -ECANCELED,
			  "the source abandoned the migration: %.*s", (int)m->u.abort.tail.len,
			  (const char *)m->u.abort.tail.ptr);
		return IE_ABORT;
	case GMIG_MSG_ERROR:
		fail_note(in, m->u.error.code, "the source reported: %.*s", (int)m->u.error.tail.len,
			  (const char *)m->u.error.tail.ptr);
		return IE_ABORT;
	default:
		fail_note(in, -EPROTO, "unexpected %s", gmig_msg_name(m->type));
		return IE_JUNK;
	}
}

static int peer_frame(void *ctx, const struct gmig_frame *f)
{
	struct incoming *in = ctx;
	struct gmig_msg m;
	enum in_event ev;
	int rc;

	if (in->dead)
		return LINK_PAUSE;
	rc = gmig_msg_decode(f, &m);
	if (rc) {
		fail_note(in, rc, "bad %s: %s", gmig_msg_name(f->hdr.type), gmig_proto_strerror(rc));
		ev = IE_JUNK;
	} else {
		ev = classify(in, f, &m);
	}
	if (in->state <= IS_STREAM) {
		/* The source must keep talking until the hand-over. */
		evtimer_del(in->timer);
		arm(in->timer, in->state < IS_IMAGE ? in->d->cfg.connect_timeout_ms :
		    in->d->cfg.peer_timeout_ms);
	}
	in->f = f;
	in->msg = rc ? NULL : &m;
	post(in, ev);
	in->f = NULL;
	in->msg = NULL;
	return in->dead ? LINK_PAUSE : LINK_CONTINUE;
}

static void peer_down(void *ctx, int err, const char *why)
{
	struct incoming *in = ctx;

	link_free(in->peer);	/* inside its callback: freed on the way out */
	in->peer = NULL;
	if (in->dead)
		return;
	if (in->state <= IS_STREAM || in->state == IS_CONNECT || in->state == IS_INVENTORY)
		fail_note(in, err ? err : -ECONNRESET, "the source went away: %s", why);
	else
		log_info(in->tag, "the source went away (%s); finishing the guest anyway", why);
	post(in, IE_PEER_LOST);
}

static const struct link_ops peer_ops = {
	.frame = peer_frame,
	.down = peer_down,
};

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct incoming *in = arg;

	(void)fd;
	(void)what;
	fail_note(in, -ETIMEDOUT, "the source fell silent in %s", in_state_names[in->state]);
	post(in, IE_TIMEOUT);
}

void incoming_accept(struct gmigd *d, int fd, const char *peer)
{
	struct incoming *in, *it;
	unsigned int n = 0;

	TAILQ_FOREACH(it, &d->incomings, entry)
		n++;
	if (d->stopping) {
		log_info("peer", "%s: stopping; refused", peer);
		close(fd);
		return;
	}
	if (n >= INCOMING_MAX) {
		log_rl(LV_WARN, "peer", "%s: %u peer connections already; refused", peer, n);
		close(fd);
		return;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		close(fd);
		return;
	}
	in->d = d;
	snprintf(in->addr, sizeof(in->addr), "%s", peer);
	snprintf(in->tag, sizeof(in->tag), "peer %s", peer);
	in->state = IS_HELLO;
	in->entered_us = now_us();
	in->timer = evtimer_new(d->base, timer_cb, in);
	in->step_timer = evtimer_new(d->base, step_timer_cb, in);
	in->busy_timer = evtimer_new(d->base, busy_timer_cb, in);
	gmig_image_init(&in->img, 1);
	if (!in->timer || !in->step_timer || !in->busy_timer) {
		close(fd);
		goto out_free;
	}
	in->peer = link_accept(d->base, fd, in->tag, &peer_ops, in);
	if (!in->peer)
		goto out_free;
	TAILQ_INSERT_TAIL(&d->incomings, in, entry);
	arm(in->timer, d->cfg.connect_timeout_ms);
	log_info(in->tag, "connected");
	return;

out_free:
	incoming_free(in);
}

void incoming_free_all(struct gmigd *d)
{
	struct incoming *in;

	while ((in = TAILQ_FIRST(&d->incomings))) {
		TAILQ_REMOVE(&d->incomings, in, entry);
		in->dead = true;
		if (in->job) {
			in->job->machine = NULL;
			in->job->destroy = NULL;
		}
		incoming_free(in);
	}
}
