/* The step in flight: one request fanned out to the clients, answers gathered, a deadline, an outcome. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "client.h"
#include "fault.h"
#include "host.h"
#include "log.h"
#include "migration.h"
#include "op.h"

const char *const op_kind_names[] = {
	[OP_INV] = "inventory",
	[OP_ROUND] = "round",
	[OP_FREEZE] = "freeze",
	[OP_RELEASE] = "release",
	[OP_ATTACH] = "attach",
	[OP_RESTORE] = "restore",
	[OP_THAW] = "thaw",
	[OP_ABORT] = "abort",
};

static void op_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	struct op *op = a->op;

	(void)fd;
	(void)what;
	if (!op)
		return;
	mig_step_done(a, op);
}

/* The outcome is decided; the table hears of it from the loop, never from inside a caller. */
static void op_finish(struct agent *a)
{
	struct op *op = a->op;

	if (op->finished)
		return;
	op->finished = true;
	evtimer_del(op->timer);
	event_active(op->done_ev, EV_TIMEOUT, 0);
}

static void op_check(struct agent *a)
{
	struct op *op = a->op;

	/* A failed freeze need not wait for the others: all of them thaw anyway. */
	if (op->pending == 0 || (op->err && op->kind == OP_FREEZE))
		op_finish(a);
}

void op_fail(struct agent *a, int err, const char *fmt, ...)
{
	struct op *op = a->op;
	va_list ap;

	if (!op || op->finished || op->err)
		return;
	op->err = err < 0 ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(op->err_text, sizeof(op->err_text), fmt, ap);
	va_end(ap);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	struct op *op = a->op;
	struct client *c;
	uint64_t now = agent_now_ms();

	(void)fd;
	(void)what;
	if (!op || op->finished)
		return;
	/* Waiting on a slow host is not the clients' fault: only their silence counts. */
	if (op->idle_timeout && host_out_len(a) >= a->cfg.host_buffer / 2)
		op->progress_ms = now;
	if (op->idle_timeout && now - op->progress_ms < op->timeout_ms) {
		uint64_t left = op->timeout_ms - (now - op->progress_ms);
		struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };

		evtimer_add(op->timer, &tv);
		return;
	}
	TAILQ_FOREACH(c, &a->clients, link) {
		if (c->state == CS_READY && c->op_pending) {
			log_warn(c->peer, "no answer to %s within %u ms", op_kind_names[op->kind],
				 op->timeout_ms);
			if (!op->err)
				op_fail(a, -ETIMEDOUT, "%s: pid %d did not answer within %u ms",
					op_kind_names[op->kind], (int)c->pid, op->timeout_ms);
		}
	}
	op_finish(a);
}

struct op *op_new(struct agent *a, enum op_kind kind, const struct requester *who)
{
	struct op *op = fault_calloc(1, sizeof(*op));
	struct client *c;

	if (!op)
		return NULL;
	op->timer = evtimer_new(a->base, timer_cb, a);
	op->done_ev = event_new(a->base, -1, 0, op_done_cb, a);
	if (!op->timer || !op->done_ev) {
		op_free(op);
		return NULL;
	}
	op->kind = kind;
	if (!++a->op_ids)
		++a->op_ids;
	op->id = a->op_ids;
	if (who)
		op->who = *who;
	op->started_ms = op->progress_ms = agent_now_ms();
	TAILQ_FOREACH(c, &a->clients, link) {
		c->op_pending = false;
		c->op_ok = false;
	}
	a->op = op;
	return op;
}

int op_ask(struct agent *a, struct client *c, const struct gmig_msg *m)
{
	struct op *op = a->op;
	int rc = client_request(c, m, op->id);

	if (rc) {
		client_violation(c, "it cannot take requests");
		return rc;
	}
	c->op_pending = true;
	op->pending++;
	op->asked++;
	return 0;
}

void op_arm(struct agent *a, uint32_t timeout_ms, bool idle)
{
	struct op *op = a->op;
	struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000 };

	op->timeout_ms = timeout_ms;
	op->idle_timeout = idle;
	if (!op->pending) {
		op_finish(a);
		return;
	}
	evtimer_add(op->timer, &tv);
}

static void answer_ok(struct op *op, const struct gmig_msg *m)
{
	switch (m->type) {
	case GMIG_MSG_ROUND_END:
		op->sum.chunks += m->u.round_end.chunks;
		op->sum.dirty += m->u.round_end.dirty;
		op->sum.zero += m->u.round_end.zero;
		op->sum.bytes += m->u.round_end.bytes;
		break;
	case GMIG_MSG_THAWED:
	case GMIG_MSG_RELEASED:
	case GMIG_MSG_ATTACHED:
		op->clients += m->u.clients.clients;
		break;
	case GMIG_MSG_ABORTED:
		op->clients += m->u.rollback.clients;
		break;
	default:
		break;
	}
}

void op_answer(struct agent *a, struct client *c, const struct gmig_msg *m)
{
	struct op *op = a->op;

	if (!op || op->finished || !c->op_pending)
		return;
	c->op_pending = false;
	op->pending--;
	if (m->type == GMIG_MSG_ERROR) {
		char text[GMIG_TEXT_MAX + 1];

		/* The client's words go to logs, the host and JSON: printable ASCII only. */
		text_safe(text, sizeof(text), m->u.error.tail.ptr, m->u.error.tail.len);
		log_warn(c->peer, "%s failed: %s (%s)", op_kind_names[op->kind],
			 strerror(-m->u.error.code), text);
		op_fail(a, m->u.error.code, "%s: pid %d: %s", op_kind_names[op->kind], (int)c->pid,
			text);
	} else if (m->type == GMIG_MSG_RESTORED && (c->rs_err || m->u.totals.bytes != c->rs_bytes)) {
		log_warn(c->peer, "restored %llu of the %llu bytes staged for it",
			 (unsigned long long)m->u.totals.bytes, (unsigned long long)c->rs_bytes);
		op_fail(a, c->rs_err ? c->rs_err : -EIO, "restore: pid %d applied %llu of %llu bytes",
			(int)c->pid, (unsigned long long)m->u.totals.bytes,
			(unsigned long long)c->rs_bytes);
	} else if (m->type == GMIG_MSG_ROUND_END && m->u.round_end.round != op->round) {
		log_warn(c->peer, "ended round %u, asked for %u", m->u.round_end.round, op->round);
		op_fail(a, -EPROTO, "round: pid %d ended round %u instead of %u", (int)c->pid,
			m->u.round_end.round, op->round);
	} else {
		c->op_ok = true;
		op->ok++;
		answer_ok(op, m);
		/*
		 * RESTORED counts in the host's units, RESTORE_DATA frames and their bytes: the
		 * client counts the slot-sized pieces it was handed, which only it knows.
		 */
		if (m->type == GMIG_MSG_RESTORED) {
			op->totals.chunks += c->rs_chunks;
			op->totals.bytes += c->rs_bytes;
		}
	}
	op_check(a);
}

void op_client_gone(struct agent *a, struct client *c)
{
	struct op *op = a->op;

	if (!op || op->finished || !c->op_pending)
		return;
	c->op_pending = false;
	op->pending--;
	op->gone++;
	log_info(c->peer, "died during %s; the step goes on without it", op_kind_names[op->kind]);
	op_check(a);
}

void op_progress(struct agent *a)
{
	if (a->op && !a->op->finished)
		a->op->progress_ms = agent_now_ms();
}

void op_cancel(struct agent *a)
{
	struct op *op = a->op;
	struct client *c;

	if (!op)
		return;
	TAILQ_FOREACH(c, &a->clients, link)
		c->op_pending = false;
	a->op = NULL;
	op_free(op);
}

void op_free(struct op *op)
{
	if (!op)
		return;
	if (op->timer)
		event_free(op->timer);
	if (op->done_ev)
		event_free(op->done_ev);
	free(op);
}
