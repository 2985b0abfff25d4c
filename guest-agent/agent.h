/*
 * gmig-agent as one object: the event loop, the host channels, the clients (GPU programs), the
 * session with the host and the migration step in progress. Private to guest-agent/.
 */
#ifndef GMIG_AGENT_AGENT_H
#define GMIG_AGENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "gmig/message.h"
#include "gmig/qga.h"

#include "config.h"
#include "session.h"

struct event_base;
struct event;
struct evconnlistener;
struct client;
struct hconn;
struct op;
struct serial_port;

/* The steps the agent fans out to its clients; one is in flight at a time. */
enum op_kind {
	OP_INV,
	OP_ROUND,
	OP_FREEZE,
	OP_RELEASE,
	OP_ATTACH,
	OP_RESTORE,
	OP_THAW,
	OP_ABORT,
	OP_COUNT
};

extern const char *const op_kind_names[OP_COUNT];

/* Who waits for a step's answer. */
struct requester {
	bool host;		/* the host session asked ... */
	uint32_t host_gen;	/* ... on the connection of this generation */
	uint16_t ref_type;	/* the request frame, for ERROR */
	uint64_t ref_seq;
	struct hconn *json;	/* a JSON command on this connection waits */
};

/* The answer of the last completed step of a kind, sent again when the step is repeated. */
struct step_cache {
	bool valid;
	uint32_t clients;	/* clients the step applied to */
	unsigned int n;
	struct gmig_msg *msgs;	/* tails are owned (malloc'd) */
};

/* A restore in progress: the host's manifest and the RESTORE_DATA frame being staged. */
struct restore_ctx {
	bool active;
	int err;			/* the first bad frame of this restore, 0 if none */
	char err_text[160];
	struct gmig_rec_manifest *man;	/* sorted by pid, then region */
	uint32_t nman;
	uint64_t bytes;			/* decoded bytes received from the host */
	uint64_t chunks;		/* RESTORE_DATA frames received */
	bool unknown_reported;		/* one ERROR for data of a pid with no client */
	/* The frame being staged in pieces, waiting for a free slot. */
	bool busy;
	uint64_t busy_seq;
	uint32_t done;			/* bytes of it staged so far */
	uint32_t blocked_pid;		/* the client whose slots are all in use; 0: none */
};

struct agent {
	struct event_base *base;
	struct agent_config cfg;
	struct event *sig_term, *sig_int, *sig_hup;

	struct evconnlistener *client_lis;
	TAILQ_HEAD(, client) clients;
	unsigned int nclients;		/* held ones included */

	struct evconnlistener *unix_lis, *vsock_lis;
	struct serial_port *serial;
	TAILQ_HEAD(, hconn) hconns;
	unsigned int nhconns;

	struct session session;
	struct hconn *host;		/* the connection carrying the session, or NULL */

	uint8_t phase;			/* enum gmig_phase; changed only by mig_fsm() */
	struct op *op;			/* the step in flight, or NULL */
	uint32_t op_ids;
	int pending_local;		/* a local event waiting for the step in flight (-1: none) */
	struct step_cache cache[OP_COUNT];
	struct restore_ctx restore;
	struct event *resume_timer;
	struct event *pump_ev;

	struct gmig_qga_dispatcher qga;
	struct gmig_qga_cmd *qga_cmds;
	struct hconn *json_conn;	/* the connection whose JSON line is being dispatched */

	uint8_t *scratch;		/* GMIG_DATA_MAX bytes for LZ4 restore data */

	/* For gmig-status. */
	uint32_t round;			/* last round started */
	uint64_t bytes_sent;		/* device bytes sent to the host */
	uint64_t bytes_restored;	/* device bytes staged to clients */
	uint64_t bytes_restored_ref;	/* of them, written into lent slots by the host */
	char last_error[256];
};

/*
 * Sets up the loop, the listeners and the signals from @cfg (copied). Returns NULL with a
 * message logged when a required channel cannot be opened.
 */
struct agent *agent_new(const struct agent_config *cfg);
/* Runs until SIGTERM or SIGINT; returns 0, or 1 when the loop failed. */
int agent_run(struct agent *a);
/* Closes every connection and frees everything; NULL is fine. */
void agent_free(struct agent *a);

/* Records a failure for gmig-status and logs it at warn. */
void agent_error(struct agent *a, const char *peer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

uint64_t agent_now_ms(void);

#endif
