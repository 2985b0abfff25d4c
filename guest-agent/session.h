/*
 * The agent's one session with the host: its id, resume token and sequence numbers, and the
 * table of how HELLOs and dropped connections move it between states.
 */
#ifndef GMIG_AGENT_SESSION_H
#define GMIG_AGENT_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "gmig/message.h"

/* Capabilities the agent offers the host: it decodes LZ4 restore data. */
/* PHYS: REGION_REF from pinned staging; SHM: staging fds to a host on a unix socket. */
#define SESSION_CAPS	(GMIG_CAP_LZ4 | GMIG_CAP_PHYS | GMIG_CAP_SHM)

enum sess_state {
	SS_NONE,	/* no session */
	SS_ATTACHED,	/* a host connection carries the session */
	SS_DETACHED,	/* the connection dropped; the host may resume with the token */
	SS_COUNT
};

enum sess_event {
	SE_HELLO_NEW,		/* HELLO for a new session */
	SE_HELLO_RESUME,	/* HELLO with this session's id and token */
	SE_LOST,		/* the session's connection dropped */
	SE_BYE,			/* the host ended the session */
	SE_COUNT
};

enum sess_action {
	SA_OPEN,	/* start a session */
	SA_REPLACE,	/* end the old session, start a new one */
	SA_TAKEOVER,	/* resume on a new connection while the old one still looks alive */
	SA_RESUME,	/* resume on a new connection */
	SA_DETACH,	/* keep the session for a resume */
	SA_CLOSE,	/* end the session */
	SA_COUNT
};

extern const char *const sess_state_names[SS_COUNT];
extern const char *const sess_event_names[SE_COUNT];
extern const char *const sess_action_names[SA_COUNT];

struct sess_row {
	enum sess_state state;
	enum sess_event event;
	enum sess_action action;
	enum sess_state next;
};

struct session {
	enum sess_state state;
	uint64_t id;				/* random, never 0 */
	uint8_t token[GMIG_TOKEN_SIZE];		/* random */
	uint16_t version;			/* agreed */
	uint64_t caps;				/* agreed */
	uint64_t rx_last;			/* last sequence number taken from the host */
	bool rx_resync;				/* the first frame after a HELLO may skip ahead */
	uint64_t tx_seq;			/* last sequence number sent */
	uint32_t gen;				/* bumps each time a connection attaches */
	char host[33];				/* the host's name from its HELLO */
};

/* The table row for @state and @event, or NULL when the event is not expected there. */
const struct sess_row *session_row(enum sess_state state, enum sess_event event);
/* The whole table, for tests. */
const struct sess_row *session_table(unsigned int *count);

/*
 * Tells what a HELLO asks for: 0 with *@ev SE_HELLO_NEW or SE_HELLO_RESUME and the agreed
 * version in *@version; -EPROTO when the sender is not a host, -EPROTONOSUPPORT when the
 * versions do not meet, -ESTALE for an unknown session or a wrong token.
 */
int session_classify(const struct session *s, const struct gmig_hello *h, uint16_t *version,
		     enum sess_event *ev);

/*
 * Runs the table for @ev. For a HELLO, @h and @version are the classified HELLO's. Returns
 * 0 with the row taken in *@row, -EINVAL when the event is not expected in this state (the
 * session is unchanged), or the error of getrandom().
 */
int session_fsm(struct session *s, enum sess_event ev, const struct gmig_hello *h,
		uint16_t version, const struct sess_row **row);

/* The WELCOME answering the HELLO just taken; @phase is the agent's. */
void session_welcome(const struct session *s, bool resumed, uint64_t last_seq, uint8_t phase,
		     struct gmig_welcome *w);

/*
 * Checks the sequence number of a frame from the host: 0 to take it (recorded), 1 for a frame
 * already seen (drop it), -EPROTO for a gap.
 */
int session_rx_seq(struct session *s, uint64_t seq);

/* Fills @buf with random bytes from getrandom(); 0 or a negative errno. */
int session_random(void *buf, size_t len);

#endif
