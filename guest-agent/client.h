/*
 * The agent's clients: GPU programs (libgmig) on the client socket. Each is welcomed with its
 * staging memory, answers the agent's requests in order and streams bytes through its slots.
 */
#ifndef GMIG_AGENT_CLIENT_H
#define GMIG_AGENT_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "gmig/message.h"

#include "staging.h"

struct agent;
struct bufferevent;
struct event;

#define CLIENT_FIFO_MAX		16	/* requests a client may leave unanswered */
#define CLIENT_QUEUE_EXTRA	32	/* queue entries beyond one per slot (zero runs, ends) */
#define CLIENT_OUT_MAX		(8u << 20)	/* output a client leaves unread before it is dropped */

enum client_state {
	CS_NEW,		/* connected; HELLO not yet taken */
	CS_HELD,	/* HELLO taken during a migration; welcomed after the thaw */
	CS_READY,	/* welcomed, staging sent; takes part in steps */
	CS_DEAD,	/* gone; freed on the way out of the callback */
	CS_COUNT
};

enum client_event {
	CE_HELLO,	/* a valid HELLO while no migration runs */
	CE_HELLO_HOLD,	/* a valid HELLO during a migration */
	CE_HELLO_BAD,	/* a HELLO that cannot be accepted */
	CE_UNHOLD,	/* the migration ended */
	CE_TIMEOUT,	/* no HELLO in time */
	CE_CLOSED,	/* the socket closed or failed */
	CE_VIOLATION,	/* a frame broke the protocol */
	CE_COUNT
};

enum client_action {
	CA_WELCOME,	/* WELCOME and STAGING with the memfd */
	CA_HOLD,	/* keep it waiting */
	CA_REFUSE,	/* ERROR, then close */
	CA_DROP,	/* close */
	CA_COUNT
};

extern const char *const client_state_names[CS_COUNT];
extern const char *const client_event_names[CE_COUNT];
extern const char *const client_action_names[CA_COUNT];

struct client_row {
	enum client_state state;
	enum client_event event;
	enum client_action action;
	enum client_state next;
};

const struct client_row *client_row(enum client_state state, enum client_event event);
const struct client_row *client_table(unsigned int *count);

/* One entry of the queue of bytes waiting for room towards the host. */
struct stage_ent {
	bool end;			/* the client's ROUND_END, after all its bytes */
	uint32_t op;			/* the round it belongs to */
	struct gmig_staged staged;	/* !end */
	struct gmig_round_end round_end;	/* end */
};

struct client {
	TAILQ_ENTRY(client) link;
	struct agent *a;
	struct bufferevent *bev;
	enum client_state state;
	pid_t pid;			/* from SO_PEERCRED: the kernel's word, not the client's */
	char name[33];
	char peer[80];			/* "client 1234 (name)" for logs */
	uint8_t *dec_buf;
	struct gmig_decoder dec;
	uint64_t session;		/* the id in its WELCOME */
	uint64_t tx_seq;
	uint16_t version;
	struct staging st;
	struct event *hello_timer;
	struct event *resume_ev;	/* reading again after a full queue */
	struct event *doom_ev;		/* ends it from the loop after a breach */
	const char *doom_why;		/* set: it broke the protocol and is about to go */

	/* Requests sent and not answered, oldest first; answers come in order. */
	struct {
		uint32_t op;		/* the step it belongs to; 0: none waits */
		uint16_t type;
	} fifo[CLIENT_FIFO_MAX];
	unsigned int fifo_head, fifo_len;

	bool op_pending;		/* the step in flight waits for this client */
	bool op_ok;			/* it answered the step in flight well */

	/* The client's last INV_CLIENT. */
	bool has_inv;
	uint32_t self_pid;		/* its pid as it sees it (in its own pid namespace) */
	uint32_t gpu;
	uint8_t *regions;		/* the raw region records */
	uint32_t regions_len;

	/* Bytes towards the host waiting for room (pump.c). */
	struct stage_ent *q;
	unsigned int q_head, q_len, q_cap;
	bool paused;			/* reading stopped: the queue is full */
	/* Zero-copy (pump.c): slots lent to the host by REGION_REF until its REF_DONE. */
	uint64_t ref_busy;
	uint32_t phys_gen;		/* STAGING_PHYS went out on this session generation; 0: not */
	/*
	 * Restore by reference: agent-to-client slots lent to the host (bit = slot - slots),
	 * marked busy in the staging too, until its RESTORE_REF hands one to the client.
	 */
	uint64_t lent;

	uint8_t *blob;			/* its FROZEN state blob */
	uint32_t blob_len;

	bool in_restore;		/* named in the current restore's manifest */
	uint64_t rs_chunks, rs_bytes;	/* staged to it in this restore */
	int rs_err;			/* it reported an error during the restore */
};

/* Opens the client socket; 0 or a negative errno (logged). */
int client_listen(struct agent *a);
void client_unlisten(struct agent *a);

/* Runs the client table; the client may be freed when the event ends it. */
void client_fsm(struct client *c, enum client_event ev);
/* Welcomes every held client (the migration ended). */
void client_unhold_all(struct agent *a);
/* Drops every client; for shutdown. */
void client_free_all(struct agent *a);

struct client *client_by_pid(struct agent *a, pid_t pid);

/* Sends a message to a ready client. 0 or a negative errno. */
int client_send(struct client *c, const struct gmig_msg *m);
/*
 * Sends a request whose answer belongs to step @op (0: nobody waits for it). -EOVERFLOW when
 * the client left too many requests unanswered; the caller drops it.
 */
int client_request(struct client *c, const struct gmig_msg *m, uint32_t op);
/*
 * A protocol breach: the client sends nothing more and takes part in nothing, and is ended
 * from the loop (never under a caller that is walking its queue).
 */
void client_violation(struct client *c, const char *why);
/* Ready, and not on its way out. */
bool client_usable(const struct client *c);

/* Reading stops while its queue towards the host is full, and goes on here. */
void client_pause(struct client *c);
void client_unpause(struct client *c);

#endif
