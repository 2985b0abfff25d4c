/*
 * The step in flight: a request fanned out to every client, their answers gathered until all
 * have answered, one fails (freeze) or the deadline passes, then handed to the migration table.
 */
#ifndef GMIG_AGENT_OP_H
#define GMIG_AGENT_OP_H

#include <stdbool.h>
#include <stdint.h>

#include "gmig/message.h"

#include "agent.h"

struct client;
struct event;

struct op {
	enum op_kind kind;
	uint32_t id;			/* never 0; client FIFOs name it */
	struct requester who;
	uint32_t pending;		/* clients yet to answer */
	uint32_t asked;			/* clients asked */
	uint32_t ok;			/* clients that answered well */
	uint32_t gone;			/* clients that died meanwhile */
	int err;			/* the first failure, 0 if none */
	char err_text[200];
	bool finished;			/* the outcome is decided; answers now are stale */
	uint32_t timeout_ms;
	bool idle_timeout;		/* the deadline counts from the last progress */
	uint64_t started_ms, progress_ms;
	struct event *timer;
	struct event *done_ev;

	/* What the step gathered. */
	uint32_t round, base;		/* OP_ROUND */
	struct gmig_round_end sum;	/* OP_ROUND: the clients' statistics added up */
	struct gmig_totals totals;	/* OP_RESTORE */
	uint32_t clients;		/* THAWED, RELEASED, ATTACHED, ABORTED counts added up */
	uint8_t phase_from;		/* OP_ABORT: the phase rolled back from */
};

/* Starts a step: @a->op must be NULL. Clients are then asked with op_ask(), then op_arm(). */
struct op *op_new(struct agent *a, enum op_kind kind, const struct requester *who);
/*
 * Asks client @c as part of the step in flight. 0, or the client's send error (the client is
 * dropped, which the step counts as gone).
 */
int op_ask(struct agent *a, struct client *c, const struct gmig_msg *m);
/*
 * Starts the deadline: @timeout_ms from now, or from the last progress when @idle. A step with
 * nobody to ask finishes at once (from the loop, never inside this call).
 */
void op_arm(struct agent *a, uint32_t timeout_ms, bool idle);

/* Client @c answered the step in flight (its FIFO said so). */
void op_answer(struct agent *a, struct client *c, const struct gmig_msg *m);
/* Client @c died; the step stops waiting for it. */
void op_client_gone(struct agent *a, struct client *c);
/* Something moved (bytes of a round); an idle deadline starts again. */
void op_progress(struct agent *a);
/* Records a failure of the step not tied to one answer (e.g. bad data from a client). */
void op_fail(struct agent *a, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Drops the step without an answer (its host went away); the clients' late answers are stale. */
void op_cancel(struct agent *a);
/* Ends the step after the table handled its outcome. */
void op_free(struct op *op);

#endif
