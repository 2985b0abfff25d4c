/* The migration table: {phase, event, action, next}, its one driver, and the actions that start, answer and undo steps. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "client.h"
#include "fault.h"
#include "frameio.h"
#include "host.h"
#include "inventory.h"
#include "kmod.h"
#include "log.h"
#include "migration.h"
#include "op.h"
#include "pump.h"

#define P(x)	GMIG_PHASE_##x

const char *const mig_event_names[] = {
	[ME_INV] = "INV_REQUEST",
	[ME_ROUND] = "ROUND_BEGIN",
	[ME_FREEZE] = "FREEZE",
	[ME_RELEASE] = "RELEASE",
	[ME_ATTACH] = "ATTACH",
	[ME_RESTORE_BEGIN] = "RESTORE_BEGIN",
	[ME_RESTORE_END] = "RESTORE_END",
	[ME_THAW] = "THAW",
	[ME_ABORT] = "ABORT",
	[ME_INV_DONE] = "inventory-done",
	[ME_ROUND_DONE] = "round-done",
	[ME_ROUND_FAIL] = "round-failed",
	[ME_FREEZE_DONE] = "freeze-done",
	[ME_FREEZE_FAIL] = "freeze-failed",
	[ME_RELEASE_DONE] = "release-done",
	[ME_RELEASE_FAIL] = "release-failed",
	[ME_ATTACH_DONE] = "attach-done",
	[ME_ATTACH_FAIL] = "attach-failed",
	[ME_RESTORE_DONE] = "restore-done",
	[ME_RESTORE_FAIL] = "restore-failed",
	[ME_THAW_DONE] = "thaw-done",
	[ME_THAW_FAIL] = "thaw-failed",
	[ME_ABORT_DONE] = "abort-done",
	[ME_ABORT_FAIL] = "abort-failed",
	[ME_HOST_LOST] = "host-lost",
	[ME_HOST_BACK] = "host-back",
	[ME_RESUME_TIMEOUT] = "resume-timeout",
	[ME_SESSION_END] = "session-end",
};

const char *const mig_action_names[] = {
	[MA_NONE] = "none",
	[MA_REFUSE] = "refuse",
	[MA_INV] = "inventory",
	[MA_ROUND] = "round",
	[MA_FREEZE] = "freeze",
	[MA_RELEASE] = "release",
	[MA_ATTACH] = "attach",
	[MA_RESTORE_BEGIN] = "restore-begin",
	[MA_RESTORE_END] = "restore-end",
	[MA_THAW] = "thaw",
	[MA_ABORT] = "abort",
	[MA_ANSWER] = "answer",
	[MA_FAIL] = "fail",
	[MA_FREEZE_UNDO] = "freeze-undo",
	[MA_REPLAY] = "replay",
	[MA_HOST_LOST] = "host-lost",
	[MA_HOST_BACK] = "host-back",
	[MA_FORGET] = "forget",
	[MA_LOCAL_THAW] = "local-thaw",
	[MA_STRANDED] = "stranded",
};

static const struct mig_row mig_tbl[] = {
	/* state	event			action			next */
	{ MIG_ANY,	ME_INV,			MA_INV,			MIG_ANY },
	{ MIG_ANY,	ME_INV_DONE,		MA_ANSWER,		MIG_ANY },

	{ P(IDLE),	ME_ROUND,		MA_ROUND,		P(PRECOPY) },
	{ P(PRECOPY),	ME_ROUND,		MA_ROUND,		P(PRECOPY) },
	{ P(FROZEN),	ME_ROUND,		MA_ROUND,		P(FROZEN) },
	{ MIG_ANY,	ME_ROUND_DONE,		MA_ANSWER,		MIG_ANY },
	{ MIG_ANY,	ME_ROUND_FAIL,		MA_FAIL,		MIG_ANY },

	{ P(IDLE),	ME_FREEZE,		MA_FREEZE,		MIG_ANY },
	{ P(PRECOPY),	ME_FREEZE,		MA_FREEZE,		MIG_ANY },
	{ P(IDLE),	ME_FREEZE_DONE,		MA_ANSWER,		P(FROZEN) },
	{ P(PRECOPY),	ME_FREEZE_DONE,		MA_ANSWER,		P(FROZEN) },
	{ P(IDLE),	ME_FREEZE_FAIL,		MA_FREEZE_UNDO,		MIG_ANY },
	{ P(PRECOPY),	ME_FREEZE_FAIL,		MA_FREEZE_UNDO,		MIG_ANY },
	{ P(FROZEN),	ME_FREEZE,		MA_REPLAY,		MIG_ANY },
	{ P(RELEASED),	ME_FREEZE,		MA_REPLAY,		MIG_ANY },
	{ P(ATTACHED),	ME_FREEZE,		MA_REPLAY,		MIG_ANY },
	{ P(RESTORED),	ME_FREEZE,		MA_REPLAY,		MIG_ANY },

	{ P(FROZEN),	ME_RELEASE,		MA_RELEASE,		MIG_ANY },
	{ P(FROZEN),	ME_RELEASE_DONE,	MA_ANSWER,		P(RELEASED) },
	{ P(FROZEN),	ME_RELEASE_FAIL,	MA_FAIL,		MIG_ANY },
	{ P(RELEASED),	ME_RELEASE,		MA_REPLAY,		MIG_ANY },

	{ P(RELEASED),	ME_ATTACH,		MA_ATTACH,		MIG_ANY },
	{ P(RELEASED),	ME_ATTACH_DONE,		MA_ANSWER,		P(ATTACHED) },
	{ P(RELEASED),	ME_ATTACH_FAIL,		MA_FAIL,		MIG_ANY },
	{ P(ATTACHED),	ME_ATTACH,		MA_REPLAY,		MIG_ANY },

	{ P(ATTACHED),	ME_RESTORE_BEGIN,	MA_RESTORE_BEGIN,	MIG_ANY },
	{ P(RESTORED),	ME_RESTORE_BEGIN,	MA_RESTORE_BEGIN,	P(ATTACHED) },
	{ P(ATTACHED),	ME_RESTORE_END,		MA_RESTORE_END,		MIG_ANY },
	{ P(ATTACHED),	ME_RESTORE_DONE,	MA_ANSWER,		P(RESTORED) },
	{ P(ATTACHED),	ME_RESTORE_FAIL,	MA_FAIL,		MIG_ANY },
	{ P(RESTORED),	ME_RESTORE_END,		MA_REPLAY,		MIG_ANY },

	{ P(IDLE),	ME_THAW,		MA_THAW,		MIG_ANY },
	{ P(PRECOPY),	ME_THAW,		MA_THAW,		MIG_ANY },
	{ P(FROZEN),	ME_THAW,		MA_THAW,		MIG_ANY },
	{ P(RESTORED),	ME_THAW,		MA_THAW,		MIG_ANY },
	{ P(RELEASED),	ME_THAW,		MA_REFUSE,		MIG_ANY },
	{ P(ATTACHED),	ME_THAW,		MA_REFUSE,		MIG_ANY },
	{ MIG_ANY,	ME_THAW_DONE,		MA_ANSWER,		P(IDLE) },
	{ MIG_ANY,	ME_THAW_FAIL,		MA_FAIL,		MIG_ANY },

	{ P(IDLE),	ME_ABORT,		MA_ABORT,		MIG_ANY },
	{ P(PRECOPY),	ME_ABORT,		MA_ABORT,		MIG_ANY },
	{ P(FROZEN),	ME_ABORT,		MA_ABORT,		MIG_ANY },
	{ P(RESTORED),	ME_ABORT,		MA_ABORT,		MIG_ANY },
	{ P(RELEASED),	ME_ABORT,		MA_REFUSE,		MIG_ANY },
	{ P(ATTACHED),	ME_ABORT,		MA_REFUSE,		MIG_ANY },
	{ MIG_ANY,	ME_ABORT_DONE,		MA_ANSWER,		P(IDLE) },
	{ MIG_ANY,	ME_ABORT_FAIL,		MA_FAIL,		MIG_ANY },

	{ MIG_ANY,	ME_HOST_LOST,		MA_HOST_LOST,		MIG_ANY },
	{ MIG_ANY,	ME_HOST_BACK,		MA_HOST_BACK,		MIG_ANY },
	{ P(IDLE),	ME_RESUME_TIMEOUT,	MA_NONE,		MIG_ANY },
	{ P(PRECOPY),	ME_RESUME_TIMEOUT,	MA_FORGET,		P(IDLE) },
	{ P(FROZEN),	ME_RESUME_TIMEOUT,	MA_LOCAL_THAW,		MIG_ANY },
	{ P(RESTORED),	ME_RESUME_TIMEOUT,	MA_LOCAL_THAW,		MIG_ANY },
	{ P(RELEASED),	ME_RESUME_TIMEOUT,	MA_STRANDED,		MIG_ANY },
	{ P(ATTACHED),	ME_RESUME_TIMEOUT,	MA_STRANDED,		MIG_ANY },
	{ P(IDLE),	ME_SESSION_END,		MA_NONE,		MIG_ANY },
	{ P(PRECOPY),	ME_SESSION_END,		MA_FORGET,		P(IDLE) },
	{ P(FROZEN),	ME_SESSION_END,		MA_LOCAL_THAW,		MIG_ANY },
	{ P(RESTORED),	ME_SESSION_END,		MA_LOCAL_THAW,		MIG_ANY },
	{ P(RELEASED),	ME_SESSION_END,		MA_STRANDED,		MIG_ANY },
	{ P(ATTACHED),	ME_SESSION_END,		MA_STRANDED,		MIG_ANY },
};

#define NROWS	(sizeof(mig_tbl) / sizeof(mig_tbl[0]))

const struct mig_row *mig_table(unsigned int *count)
{
	*count = NROWS;
	return mig_tbl;
}

const struct mig_row *mig_row(uint8_t state, enum mig_event event)
{
	const struct mig_row *any = NULL;

	for (size_t i = 0; i < NROWS; i++) {
		if (mig_tbl[i].event != event)
			continue;
		if (mig_tbl[i].state == state)
			return &mig_tbl[i];
		if (mig_tbl[i].state == MIG_ANY)
			any = &mig_tbl[i];
	}
	return any;
}

/* Each step: its request event, outcome events, the frame the clients get, and its answer. */
static const struct {
	enum mig_event request, done, fail;
	uint16_t req_type;
} steps[OP_COUNT] = {
	[OP_INV] = { ME_INV, ME_INV_DONE, ME_INV_DONE, GMIG_MSG_INV_REQUEST },
	[OP_ROUND] = { ME_ROUND, ME_ROUND_DONE, ME_ROUND_FAIL, GMIG_MSG_ROUND_BEGIN },
	[OP_FREEZE] = { ME_FREEZE, ME_FREEZE_DONE, ME_FREEZE_FAIL, GMIG_MSG_FREEZE },
	[OP_RELEASE] = { ME_RELEASE, ME_RELEASE_DONE, ME_RELEASE_FAIL, GMIG_MSG_RELEASE },
	[OP_ATTACH] = { ME_ATTACH, ME_ATTACH_DONE, ME_ATTACH_FAIL, GMIG_MSG_ATTACH },
	[OP_RESTORE] = { ME_RESTORE_END, ME_RESTORE_DONE, ME_RESTORE_FAIL, GMIG_MSG_RESTORE_END },
	[OP_THAW] = { ME_THAW, ME_THAW_DONE, ME_THAW_FAIL, GMIG_MSG_THAW },
	[OP_ABORT] = { ME_ABORT, ME_ABORT_DONE, ME_ABORT_FAIL, GMIG_MSG_ABORT },
};

/* The step a request event starts; OP_COUNT for events that start none. */
static enum op_kind step_of(enum mig_event ev)
{
	for (int k = 0; k < OP_COUNT; k++) {
		if (steps[k].request == ev)
			return (enum op_kind)k;
	}
	return OP_COUNT;
}

static bool is_request(enum mig_event ev)
{
	return ev <= ME_ABORT;
}

static bool is_local(enum mig_event ev)
{
	return ev == ME_RESUME_TIMEOUT || ev == ME_SESSION_END;
}

/* --- answers --- */

static void cache_clear(struct step_cache *sc)
{
	for (unsigned int i = 0; i < sc->n; i++) {
		const struct gmig_tail *t = gmig_msg_tail(&sc->msgs[i]);

		if (t)
			free((void *)t->ptr);
	}
	free(sc->msgs);
	memset(sc, 0, sizeof(*sc));
}

void mig_clear(struct agent *a)
{
	for (int k = 0; k < OP_COUNT; k++)
		cache_clear(&a->cache[k]);
}

/* Keeps copies of @n messages as the answer of step @kind. */
static void cache_store(struct agent *a, enum op_kind kind, const struct gmig_msg *msgs,
			unsigned int n, uint32_t clients)
{
	struct step_cache *sc = &a->cache[kind];

	cache_clear(sc);
	sc->msgs = fault_calloc(n, sizeof(*sc->msgs));
	if (!sc->msgs)
		return;		/* a repeat then runs the step again, which is as good */
	for (unsigned int i = 0; i < n; i++) {
		const struct gmig_tail *t = gmig_msg_tail(&msgs[i]);
		struct gmig_tail *ct;

		sc->msgs[i] = msgs[i];
		sc->n = i + 1;
		ct = gmig_msg_tail(&sc->msgs[i]);
		if (!t || !t->len) {
			if (ct)
				*ct = (struct gmig_tail){ NULL, 0 };
			continue;
		}
		ct->ptr = fault_malloc(t->len);
		if (!ct->ptr) {
			ct->len = 0;
			cache_clear(sc);
			return;
		}
		memcpy((void *)ct->ptr, t->ptr, t->len);
	}
	sc->clients = clients;
	sc->valid = true;
}

static bool host_wants(const struct agent *a, const struct requester *who)
{
	return who->host && a->host && a->session.gen == who->host_gen;
}

static void answer_json_clients(struct hconn *c, uint32_t clients)
{
	struct json_object *ret = json_object_new_object();

	if (ret)
		json_object_object_add(ret, "clients", json_object_new_int64(clients));
	host_json_answer(c, ret ? 0 : -ENOMEM, ret, ret ? NULL : "out of memory");
}

static void answer_msgs(struct agent *a, const struct requester *who, const struct gmig_msg *msgs,
			unsigned int n, uint32_t clients)
{
	if (host_wants(a, who)) {
		for (unsigned int i = 0; i < n; i++)
			host_send(a, &msgs[i]);
	}
	if (who->json)
		answer_json_clients(who->json, clients);
}

static void answer_error(struct agent *a, const struct requester *who, int code,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void answer_error(struct agent *a, const struct requester *who, int code,
			 const char *fmt, ...)
{
	char text[GMIG_TEXT_MAX + 1];
	struct gmig_msg m;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	agent_error(a, NULL, "%s", text);
	if (host_wants(a, who)) {
		msg_error(&m, code, who->ref_type, who->ref_seq, text);
		host_send(a, &m);
	}
	if (who->json)
		host_json_answer(who->json, code, NULL, text);
}

/* One client's INV_CLIENT as the host sees it: position i of n, the pid the agent knows. */
static void inv_client_msg(const struct client *c, uint32_t i, uint32_t n, struct gmig_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = GMIG_MSG_INV_CLIENT;
	m->u.inv_client.index = i;
	m->u.inv_client.count = n;
	m->u.inv_client.pid = (uint32_t)c->pid;
	m->u.inv_client.gpu = c->gpu;
	memcpy(m->u.inv_client.name, c->name, sizeof(m->u.inv_client.name));
	m->u.inv_client.tail = (struct gmig_tail){ c->regions, c->regions_len };
}

/* INV_GPUS, then one INV_CLIENT per client that has told its inventory, renumbered. */
static void answer_inventory(struct agent *a, const struct requester *who)
{
	static struct gmig_rec_gpu gpus[GMIG_GPUS_MAX];
	uint8_t recs[GMIG_GPUS_MAX * GMIG_REC_gpu_SIZE];
	struct gmig_msg m = { .type = GMIG_MSG_INV_GPUS };
	unsigned int ngpu = inventory_gpus(&a->cfg, gpus, GMIG_GPUS_MAX), len = 0;
	uint32_t n = 0, i = 0;
	struct client *c;

	if (!host_wants(a, who))
		return;
	for (unsigned int g = 0; g < ngpu; g++) {
		int w = gmig_rec_put_gpu(recs + len, &gpus[g]);

		if (w > 0)
			len += (unsigned int)w;
	}
	TAILQ_FOREACH(c, &a->clients, link)
		n += c->state == CS_READY && c->has_inv;
	m.u.inv_gpus.clients = n;
	m.u.inv_gpus.tail = (struct gmig_tail){ recs, len };
	host_send(a, &m);
	TAILQ_FOREACH(c, &a->clients, link) {
		if (c->state != CS_READY || !c->has_inv)
			continue;
		inv_client_msg(c, i++, n, &m);
		host_send(a, &m);
	}
}

void mig_client_changed(struct agent *a, struct client *changed)
{
	struct gmig_msg m;
	uint32_t n = 0, i = 0;
	struct client *c;

	TAILQ_FOREACH(c, &a->clients, link) {
		if (c->state != CS_READY || !c->has_inv)
			continue;
		if (c == changed)
			i = n;
		n++;
	}
	if (changed->state != CS_READY)
		return;
	inv_client_msg(changed, i, n, &m);
	/* No host now: the next one asks for the inventory before it asks for data. */
	host_send(a, &m);
}

static void answer_frozen(struct agent *a, struct op *op)
{
	struct gmig_msg *msgs;
	struct client *c;
	uint32_t n = 0, i = 0;

	TAILQ_FOREACH(c, &a->clients, link)
		n += c->state == CS_READY && c->op_ok;
	msgs = fault_calloc(n ? n : 1, sizeof(*msgs));
	if (!msgs) {
		answer_error(a, &op->who, -ENOMEM, "freeze: out of memory for the answer");
		return;
	}
	if (!n) {
		/* Nobody to freeze: one FROZEN with count 0 says so. */
		msgs[0].type = GMIG_MSG_FROZEN;
	}
	TAILQ_FOREACH(c, &a->clients, link) {
		if (c->state != CS_READY || !c->op_ok)
			continue;
		msgs[i].type = GMIG_MSG_FROZEN;
		msgs[i].u.frozen.index = i;
		msgs[i].u.frozen.count = n;
		msgs[i].u.frozen.pid = (uint32_t)c->pid;
		msgs[i].u.frozen.tail = (struct gmig_tail){ c->blob, c->blob_len };
		i++;
	}
	cache_store(a, OP_FREEZE, msgs, n ? n : 1, n);
	answer_msgs(a, &op->who, msgs, n ? n : 1, n);
	free(msgs);
}

static void act_answer(struct agent *a)
{
	struct op *op = a->op;
	struct gmig_msg m = { 0 };

	switch (op->kind) {
	case OP_INV:
		answer_inventory(a, &op->who);
		return;
	case OP_ROUND:
		m.type = GMIG_MSG_ROUND_END;
		m.u.round_end = op->sum;
		m.u.round_end.round = op->round;
		m.u.round_end.usecs = (agent_now_ms() - op->started_ms) * 1000;
		log_info(NULL, "round %u done: %llu chunks, %llu dirty, %llu bytes", op->round,
			 (unsigned long long)op->sum.chunks, (unsigned long long)op->sum.dirty,
			 (unsigned long long)op->sum.bytes);
		answer_msgs(a, &op->who, &m, 1, op->ok);
		return;
	case OP_FREEZE:
		log_info(NULL, "frozen: %u clients", op->ok);
		answer_frozen(a, op);
		return;
	case OP_RELEASE:
		m.type = GMIG_MSG_RELEASED;
		m.u.clients.clients = op->ok;
		break;
	case OP_ATTACH:
		m.type = GMIG_MSG_ATTACHED;
		m.u.clients.clients = op->ok;
		break;
	case OP_RESTORE:
		m.type = GMIG_MSG_RESTORED;
		m.u.totals = op->totals;
		break;
	case OP_THAW:
		m.type = GMIG_MSG_THAWED;
		m.u.clients.clients = op->ok;
		break;
	case OP_ABORT:
		m.type = GMIG_MSG_ABORTED;
		m.u.rollback.phase = op->phase_from;
		m.u.rollback.clients = op->ok;
		break;
	case OP_COUNT:
		return;
	}
	log_info(NULL, "%s done: %u clients", op_kind_names[op->kind], op->ok);
	cache_store(a, op->kind, &m, 1, op->ok);
	answer_msgs(a, &op->who, &m, 1, op->ok);
}

static void act_fail(struct agent *a)
{
	struct op *op = a->op;

	answer_error(a, &op->who, op->err, "%s", op->err_text[0] ? op->err_text : "failed");
}

/* --- starting steps --- */

/* Asks every ready client (or those of the restore) @m as step @op's request. */
static void ask_all(struct agent *a, const struct gmig_msg *m, bool restore_only)
{
	struct client *c, *next;

	for (c = TAILQ_FIRST(&a->clients); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (client_usable(c) && (!restore_only || c->in_restore))
			op_ask(a, c, m);
	}
}

static int step_start(struct agent *a, enum op_kind kind, const struct mig_req *rq,
		      const struct gmig_msg *m, uint32_t timeout_ms, bool idle)
{
	struct op *op = op_new(a, kind, rq ? &rq->who : NULL);

	if (!op) {
		if (rq)
			answer_error(a, &rq->who, -ENOMEM, "%s: out of memory", op_kind_names[kind]);
		return -ENOMEM;
	}
	op->phase_from = a->phase;
	if (kind == OP_ROUND) {
		op->round = m->u.round_begin.round;
		op->base = m->u.round_begin.base;
	}
	ask_all(a, m, kind == OP_RESTORE);
	log_info(NULL, "%s: %u clients asked", op_kind_names[kind], op->asked);
	op_arm(a, timeout_ms, idle);
	return 0;
}

static int act_simple(struct agent *a, enum op_kind kind, const struct mig_req *rq)
{
	struct gmig_msg m = { .type = steps[kind].req_type };

	if (rq && rq->msg)
		m = *rq->msg;
	return step_start(a, kind, rq, &m, a->cfg.request_timeout_ms, false);
}

static int act_round(struct agent *a, const struct mig_req *rq)
{
	a->round = rq->msg->u.round_begin.round;
	/* A round has no fixed length: it fails only when nothing moves for the timeout. */
	return step_start(a, OP_ROUND, rq, rq->msg, a->cfg.request_timeout_ms, true);
}

static int act_freeze(struct agent *a, const struct mig_req *rq)
{
	struct gmig_msg m = { .type = GMIG_MSG_FREEZE };
	uint64_t limit = (uint64_t)rq->deadline_ms + a->cfg.freeze_grace_ms;

	m.u.freeze.deadline_ms = rq->deadline_ms;
	/* The kernel's barrier shows the freeze to clients that poll it; the link decides. */
	kmod_freeze(rq->deadline_ms);
	return step_start(a, OP_FREEZE, rq, &m, limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit,
			  false);
}

static int act_restore_begin(struct agent *a, const struct mig_req *rq)
{
	char why[160];
	int rc;

	cache_clear(&a->cache[OP_RESTORE]);
	rc = restore_begin(a, &rq->msg->u.restore_begin, why, sizeof(why));
	if (rc) {
		answer_error(a, &rq->who, rc, "restore: %s", why);
		return rc;
	}
	return 0;
}

static int act_restore_end(struct agent *a, const struct mig_req *rq)
{
	const struct gmig_totals *end = &rq->msg->u.totals;
	struct restore_ctx *r = &a->restore;
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_END };
	struct client *c, *next;
	struct op *op;

	if (!r->active) {
		answer_error(a, &rq->who, -EPROTO, "restore: RESTORE_END without RESTORE_BEGIN");
		return -EPROTO;
	}
	if (r->err) {
		answer_error(a, &rq->who, r->err, "restore: %s", r->err_text);
		return r->err;
	}
	if (end->bytes != r->bytes) {
		answer_error(a, &rq->who, -EIO, "restore: the host sent %llu bytes, %llu arrived",
			     (unsigned long long)end->bytes, (unsigned long long)r->bytes);
		return -EIO;
	}
	op = op_new(a, OP_RESTORE, &rq->who);
	if (!op) {
		answer_error(a, &rq->who, -ENOMEM, "restore: out of memory");
		return -ENOMEM;
	}
	/* Each client hears what was staged for it, and checks it against its manifest. */
	for (c = TAILQ_FIRST(&a->clients); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (!client_usable(c) || !c->in_restore)
			continue;
		m.u.totals.chunks = c->rs_chunks;
		m.u.totals.bytes = c->rs_bytes;
		op_ask(a, c, &m);
	}
	log_info(NULL, "restore: %llu bytes staged; %u clients check them",
		 (unsigned long long)r->bytes, op->asked);
	op_arm(a, a->cfg.request_timeout_ms, false);
	return 0;
}

static void act_freeze_undo(struct agent *a)
{
	struct gmig_msg thaw = { .type = GMIG_MSG_THAW };
	struct client *c, *next;

	/* Clients still freezing thaw after their freeze: they read requests in order. */
	for (c = TAILQ_FIRST(&a->clients); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (client_usable(c) && client_request(c, &thaw, 0))
			client_violation(c, "it cannot take requests");
	}
	log_warn(NULL, "freeze failed; every client thaws");
	act_fail(a);
}

static void act_replay(struct agent *a, enum mig_event ev, const struct mig_req *rq)
{
	enum op_kind kind = step_of(ev);
	struct step_cache *sc = &a->cache[kind];

	if (sc->valid) {
		log_info(NULL, "%s again: the same answer", op_kind_names[kind]);
		answer_msgs(a, &rq->who, sc->msgs, sc->n, sc->clients);
		return;
	}
	/* No answer kept (a new session): the clients answer a repeat alike, so ask again. */
	if (kind == OP_FREEZE)
		act_freeze(a, rq);
	else
		act_simple(a, kind, rq);
}

static void resume_timer_arm(struct agent *a)
{
	struct timeval tv = {
		(time_t)(a->cfg.resume_timeout_ms / 1000),
		(suseconds_t)(a->cfg.resume_timeout_ms % 1000) * 1000,
	};

	evtimer_add(a->resume_timer, &tv);
}

static void act_host_lost(struct agent *a)
{
	struct restore_ctx *r = &a->restore;

	/* A round's bytes went down with the connection: the host runs it again from its base. */
	if (a->op && (a->op->kind == OP_ROUND || a->op->kind == OP_INV)) {
		log_info(NULL, "%s dropped with the host connection", op_kind_names[a->op->kind]);
		op_cancel(a);
	}
	pump_flush_all(a);
	/* The frame being staged went with the connection's buffers. */
	r->busy = false;
	r->blocked_pid = 0;
	resume_timer_arm(a);
}

static void act_local_thaw(struct agent *a)
{
	struct gmig_msg m = { .type = GMIG_MSG_THAW };

	log_warn(NULL, "no host to finish the migration (phase %s): thawing the clients",
		 gmig_phase_name(a->phase));
	/* Frozen programs must not stay frozen for want of memory: try again later. */
	if (step_start(a, OP_THAW, NULL, &m, a->cfg.request_timeout_ms, false))
		resume_timer_arm(a);
}

/* Entering IDLE: the migration is over; its answers go and held clients come in. */
static void on_idle(struct agent *a)
{
	mig_clear(a);
	restore_reset(a);
	kmod_thaw();
	client_unhold_all(a);
}

/* Joins a request to the same step already in flight; false when it cannot. */
static bool adopt(struct agent *a, enum mig_event ev, const struct mig_req *rq)
{
	struct op *op = a->op;

	if (step_of(ev) != op->kind)
		return false;
	if (op->kind == OP_ROUND && (rq->msg->u.round_begin.round != op->round ||
				     rq->msg->u.round_begin.base != op->base))
		return false;
	if (rq->who.json && op->who.json)
		return false;
	if (rq->who.host) {
		op->who.host = true;
		op->who.host_gen = rq->who.host_gen;
		op->who.ref_type = rq->who.ref_type;
		op->who.ref_seq = rq->who.ref_seq;
	}
	if (rq->who.json)
		op->who.json = rq->who.json;
	log_info(NULL, "%s again while in flight: one answer for both", mig_event_names[ev]);
	return true;
}

void mig_fsm(struct agent *a, enum mig_event ev, const struct mig_req *rq)
{
	const struct mig_row *row;
	uint8_t from = a->phase;
	int rc = 0;

	if (is_request(ev) && a->op) {
		if (adopt(a, ev, rq))
			return;
		if (ev == ME_ABORT && (a->op->kind == OP_ROUND || a->op->kind == OP_INV)) {
			log_info(NULL, "ABORT drops the %s in flight", op_kind_names[a->op->kind]);
			op_cancel(a);
			pump_flush_all(a);
		} else {
			answer_error(a, &rq->who, -EBUSY, "%s refused: a %s is in progress",
				     mig_event_names[ev], op_kind_names[a->op->kind]);
			return;
		}
	}
	if (is_local(ev) && a->op) {
		/* After the step in flight, whatever it decides. */
		a->pending_local = ev;
		return;
	}

	row = mig_row(a->phase, ev);
	if (!row) {
		log_rl(LV_WARN, NULL, "%s not expected in phase %s; ignored", mig_event_names[ev],
		       gmig_phase_name(a->phase));
		if (is_request(ev))
			answer_error(a, &rq->who, -EBUSY, "%s not allowed in phase %s",
				     mig_event_names[ev], gmig_phase_name(a->phase));
		return;
	}

	switch (row->action) {
	case MA_NONE:
		break;
	case MA_REFUSE:
		answer_error(a, &rq->who, -EBUSY, "%s not allowed in phase %s%s",
			     mig_event_names[ev], gmig_phase_name(a->phase),
			     a->phase == GMIG_PHASE_RELEASED || a->phase == GMIG_PHASE_ATTACHED ?
			     ": the GPUs are released; attach and restore first" : "");
		rc = -EBUSY;
		break;
	case MA_INV:
		rc = act_simple(a, OP_INV, rq);
		break;
	case MA_ROUND:
		rc = act_round(a, rq);
		break;
	case MA_FREEZE:
		rc = act_freeze(a, rq);
		break;
	case MA_RELEASE:
		rc = act_simple(a, OP_RELEASE, rq);
		break;
	case MA_ATTACH:
		rc = act_simple(a, OP_ATTACH, rq);
		break;
	case MA_RESTORE_BEGIN:
		rc = act_restore_begin(a, rq);
		break;
	case MA_RESTORE_END:
		rc = act_restore_end(a, rq);
		break;
	case MA_THAW:
		rc = act_simple(a, OP_THAW, rq);
		break;
	case MA_ABORT:
		rc = act_simple(a, OP_ABORT, rq);
		break;
	case MA_ANSWER:
		act_answer(a);
		break;
	case MA_FAIL:
		act_fail(a);
		break;
	case MA_FREEZE_UNDO:
		act_freeze_undo(a);
		break;
	case MA_REPLAY:
		act_replay(a, ev, rq);
		break;
	case MA_HOST_LOST:
		act_host_lost(a);
		break;
	case MA_HOST_BACK:
		evtimer_del(a->resume_timer);
		break;
	case MA_FORGET:
		log_info(NULL, "the migration ended before the freeze: back to idle");
		break;
	case MA_LOCAL_THAW:
		act_local_thaw(a);
		break;
	case MA_STRANDED:
		log_warn(NULL, "clients are frozen without restored GPUs (phase %s): "
			 "only a host can attach and restore them", gmig_phase_name(a->phase));
		break;
	case MA_COUNT:
		break;
	}
	if (rc || row->next == MIG_ANY || row->next == a->phase)
		return;
	a->phase = row->next;
	log_info(NULL, "phase %s -> %s (%s)", gmig_phase_name(from), gmig_phase_name(a->phase),
		 mig_event_names[ev]);
	if (a->phase == GMIG_PHASE_IDLE)
		on_idle(a);
}

void mig_step_done(struct agent *a, struct op *op)
{
	enum mig_event ev = op->err ? steps[op->kind].fail : steps[op->kind].done;
	int local;

	mig_fsm(a, ev, NULL);
	if (a->op == op) {
		a->op = NULL;
		op_free(op);
	}
	local = a->pending_local;
	if (local >= 0 && !a->op) {
		a->pending_local = -1;
		mig_fsm(a, (enum mig_event)local, NULL);
	}
}

static const struct {
	uint16_t type;
	enum mig_event ev;
} host_requests[] = {
	{ GMIG_MSG_INV_REQUEST, ME_INV },
	{ GMIG_MSG_ROUND_BEGIN, ME_ROUND },
	{ GMIG_MSG_FREEZE, ME_FREEZE },
	{ GMIG_MSG_RELEASE, ME_RELEASE },
	{ GMIG_MSG_ATTACH, ME_ATTACH },
	{ GMIG_MSG_RESTORE_BEGIN, ME_RESTORE_BEGIN },
	{ GMIG_MSG_RESTORE_END, ME_RESTORE_END },
	{ GMIG_MSG_THAW, ME_THAW },
	{ GMIG_MSG_ABORT, ME_ABORT },
};

void mig_host_request(struct agent *a, const struct gmig_msg *m, uint64_t seq)
{
	struct mig_req rq = {
		.who = { .host = true, .host_gen = a->session.gen, .ref_type = m->type,
			 .ref_seq = seq },
		.msg = m,
	};

	for (size_t i = 0; i < sizeof(host_requests) / sizeof(host_requests[0]); i++) {
		if (host_requests[i].type == m->type) {
			if (m->type == GMIG_MSG_FREEZE)
				rq.deadline_ms = m->u.freeze.deadline_ms;
			mig_fsm(a, host_requests[i].ev, &rq);
			return;
		}
	}
	answer_error(a, &rq.who, -EPROTO, "%s is not a request the agent takes",
		     gmig_msg_name(m->type));
}

void mig_json_request(struct agent *a, struct hconn *c, enum mig_event ev, uint32_t deadline_ms)
{
	struct mig_req rq = { .who = { .json = c }, .deadline_ms = deadline_ms };

	mig_fsm(a, ev, &rq);
}
