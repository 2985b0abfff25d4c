/*
 * The migration as the agent sees it: a table of {phase, event, action, next phase} driven by
 * host requests, JSON commands, the outcome of each step and the comings and goings of the host.
 */
#ifndef GMIG_AGENT_MIGRATION_H
#define GMIG_AGENT_MIGRATION_H

#include <stdint.h>

#include "gmig/message.h"

#include "agent.h"

struct op;
struct hconn;

#define MIG_ANY		0xff	/* as a state: every phase; as next: the phase stays */

enum mig_event {
	/* Requests, from the host or (freeze, thaw) a JSON command. */
	ME_INV,
	ME_ROUND,
	ME_FREEZE,
	ME_RELEASE,
	ME_ATTACH,
	ME_RESTORE_BEGIN,
	ME_RESTORE_END,
	ME_THAW,
	ME_ABORT,
	/* Outcomes of the step in flight. */
	ME_INV_DONE,
	ME_ROUND_DONE,
	ME_ROUND_FAIL,
	ME_FREEZE_DONE,
	ME_FREEZE_FAIL,
	ME_RELEASE_DONE,
	ME_RELEASE_FAIL,
	ME_ATTACH_DONE,
	ME_ATTACH_FAIL,
	ME_RESTORE_DONE,
	ME_RESTORE_FAIL,
	ME_THAW_DONE,
	ME_THAW_FAIL,
	ME_ABORT_DONE,
	ME_ABORT_FAIL,
	/* The host. */
	ME_HOST_LOST,		/* the session's connection dropped */
	ME_HOST_BACK,		/* the session resumed */
	ME_RESUME_TIMEOUT,	/* no host came back in time */
	ME_SESSION_END,		/* the session ended (BYE, or a new session replaced it) */
	ME_COUNT
};

enum mig_action {
	MA_NONE,		/* nothing to do */
	MA_REFUSE,		/* not in this phase: ERROR -EBUSY */
	MA_INV,			/* ask every client for its inventory */
	MA_ROUND,		/* start a pre-copy round */
	MA_FREEZE,		/* every client to a safe point */
	MA_RELEASE,
	MA_ATTACH,
	MA_RESTORE_BEGIN,	/* take the manifest, hand each client its part */
	MA_RESTORE_END,		/* ask each restored client to check its bytes */
	MA_THAW,
	MA_ABORT,
	MA_ANSWER,		/* the step succeeded: answer, and keep the answer for a repeat */
	MA_FAIL,		/* the step failed: ERROR */
	MA_FREEZE_UNDO,		/* the freeze failed: every client thaws, then ERROR */
	MA_REPLAY,		/* a repeat of a completed step: the same answer again */
	MA_HOST_LOST,		/* forget the round in flight; wait for a resume */
	MA_HOST_BACK,
	MA_FORGET,		/* no migration after all: back to idle */
	MA_LOCAL_THAW,		/* nobody will finish the migration: thaw the clients */
	MA_STRANDED,		/* clients without restored GPUs and no host: say so */
	MA_COUNT
};

extern const char *const mig_event_names[ME_COUNT];
extern const char *const mig_action_names[MA_COUNT];

struct mig_row {
	uint8_t state;		/* enum gmig_phase, or MIG_ANY */
	enum mig_event event;
	enum mig_action action;
	uint8_t next;		/* enum gmig_phase, or MIG_ANY: unchanged */
};

/* The row for @state and @event: an exact row first, then a MIG_ANY one; NULL if none. */
const struct mig_row *mig_row(uint8_t state, enum mig_event event);
const struct mig_row *mig_table(unsigned int *count);

/* A request and who asked. */
struct mig_req {
	struct requester who;
	const struct gmig_msg *msg;	/* the host's request frame; NULL otherwise */
	uint32_t deadline_ms;		/* ME_FREEZE */
};

/* Runs the table for @ev; @rq is NULL for events that are not requests. */
void mig_fsm(struct agent *a, enum mig_event ev, const struct mig_req *rq);

/* A request frame from the host (type @m->type, sequence @seq). */
void mig_host_request(struct agent *a, const struct gmig_msg *m, uint64_t seq);
/* gmig-freeze / gmig-thaw from a JSON connection; the answer comes via host_json_answer(). */
void mig_json_request(struct agent *a, struct hconn *c, enum mig_event ev, uint32_t deadline_ms);
/* The step in flight has its outcome (from op.c). */
void mig_step_done(struct agent *a, struct op *op);

/* Frees the kept answers. */
void mig_clear(struct agent *a);
/*
 * A client's regions changed (its arena grew): the host hears the new
 * INV_CLIENT, unasked, before any data for the new part, which follows it on
 * the same connection.
 */
void mig_client_changed(struct agent *a, struct client *c);

#endif
