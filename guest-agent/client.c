/* The agent's clients: the client socket, each client's table of states, its frames and its requests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "gmig/version.h"

#include "agent.h"
#include "channel.h"
#include "client.h"
#include "fault.h"
#include "frameio.h"
#include "host.h"
#include "log.h"
#include "migration.h"
#include "op.h"
#include "pump.h"
#include "session.h"

/* The largest frame a client sends: a FROZEN blob, or an INV_CLIENT with every region. */
#define CLIENT_FRAME_MAX	(GMIG_BLOB_MAX + 4096u > 48u + 24u * GMIG_REGIONS_MAX ?	\
				 GMIG_BLOB_MAX + 4096u : 48u + 24u * GMIG_REGIONS_MAX)
/* Input read ahead of the decoder; reading pauses above it. */
#define CLIENT_READ_HIGH	(4u << 20)

const char *const client_state_names[] = {
	[CS_NEW] = "new",
	[CS_HELD] = "held",
	[CS_READY] = "ready",
	[CS_DEAD] = "dead",
};

const char *const client_event_names[] = {
	[CE_HELLO] = "hello",
	[CE_HELLO_HOLD] = "hello-hold",
	[CE_HELLO_BAD] = "hello-bad",
	[CE_UNHOLD] = "unhold",
	[CE_TIMEOUT] = "timeout",
	[CE_CLOSED] = "closed",
	[CE_VIOLATION] = "violation",
};

const char *const client_action_names[] = {
	[CA_WELCOME] = "welcome",
	[CA_HOLD] = "hold",
	[CA_REFUSE] = "refuse",
	[CA_DROP] = "drop",
};

static const struct client_row client_tbl[] = {
	/* state	event		action		next */
	{ CS_NEW,	CE_HELLO,	CA_WELCOME,	CS_READY },
	{ CS_NEW,	CE_HELLO_HOLD,	CA_HOLD,	CS_HELD },
	{ CS_NEW,	CE_HELLO_BAD,	CA_REFUSE,	CS_DEAD },
	{ CS_NEW,	CE_TIMEOUT,	CA_DROP,	CS_DEAD },
	{ CS_NEW,	CE_CLOSED,	CA_DROP,	CS_DEAD },
	{ CS_NEW,	CE_VIOLATION,	CA_REFUSE,	CS_DEAD },
	{ CS_HELD,	CE_UNHOLD,	CA_WELCOME,	CS_READY },
	{ CS_HELD,	CE_CLOSED,	CA_DROP,	CS_DEAD },
	{ CS_HELD,	CE_VIOLATION,	CA_REFUSE,	CS_DEAD },
	{ CS_READY,	CE_CLOSED,	CA_DROP,	CS_DEAD },
	{ CS_READY,	CE_VIOLATION,	CA_REFUSE,	CS_DEAD },
};

#define NROWS	(sizeof(client_tbl) / sizeof(client_tbl[0]))

const struct client_row *client_table(unsigned int *count)
{
	*count = NROWS;
	return client_tbl;
}

const struct client_row *client_row(enum client_state state, enum client_event event)
{
	for (size_t i = 0; i < NROWS; i++) {
		if (client_tbl[i].state == state && client_tbl[i].event == event)
			return &client_tbl[i];
	}
	return NULL;
}

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);

struct client *client_by_pid(struct agent *a, pid_t pid)
{
	struct client *c;

	TAILQ_FOREACH(c, &a->clients, link) {
		if (c->pid == pid && client_usable(c))
			return c;
	}
	return NULL;
}

static void client_free(struct client *c)
{
	if (c->hello_timer)
		event_free(c->hello_timer);
	if (c->resume_ev)
		event_free(c->resume_ev);
	if (c->doom_ev)
		event_free(c->doom_ev);
	if (c->bev)
		bufferevent_free(c->bev);
	staging_clear(&c->st);
	free(c->dec_buf);
	free(c->regions);
	free(c->blob);
	free(c->q);
	free(c);
}

/* Frees the dead clients; run from the loop, never inside a client's own callback. */
static void client_reap(struct agent *a)
{
	struct client *c, *next;

	for (c = TAILQ_FIRST(&a->clients); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == CS_DEAD) {
			TAILQ_REMOVE(&a->clients, c, link);
			client_free(c);
		}
	}
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	client_reap(arg);
}

static void client_schedule_reap(struct agent *a)
{
	event_base_once(a->base, -1, EV_TIMEOUT, reap_cb, a, NULL);
}

/*
 * Makes the client dead: its socket closes now, the step in flight and the data path forget
 * it; the memory goes at the next reap.
 */
static void client_kill(struct client *c)
{
	struct agent *a = c->a;
	bool was_ready = c->state == CS_READY;

	c->state = CS_DEAD;
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->hello_timer)
		event_del(c->hello_timer);
	if (c->resume_ev)
		event_del(c->resume_ev);
	if (c->doom_ev)
		event_del(c->doom_ev);
	a->nclients--;
	if (was_ready) {
		pump_flush_client(a, c);
		op_client_gone(a, c);
		if (a->restore.blocked_pid == (uint32_t)c->pid)
			host_unblock(a);
	}
	client_schedule_reap(a);
}

/*
 * Writes a small frame straight to the socket, with @fd attached when >= 0: the bufferevent's
 * output is still empty.
 */
static int client_send_direct(struct client *c, const struct gmig_msg *m, uint8_t version, int fd)
{
	struct gmig_hdr h = {
		.version = version,
		.session = c->session,
		.seq = ++c->tx_seq,
	};
	uint8_t buf[GMIG_HDR_SIZE + 256];
	int sock = bufferevent_getfd(c->bev);
	long n;
	ssize_t w;

	if (fd >= 0)
		return frame_send_fd(sock, &h, m, fd);
	n = gmig_msg_encode(buf, sizeof(buf), &h, m);
	if (n < 0)
		return (int)n;
	do {
		w = send(sock, buf, (size_t)n, MSG_NOSIGNAL);
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	return w == n ? 0 : -EAGAIN;
}

static int act_welcome(struct client *c)
{
	struct agent *a = c->a;
	struct gmig_msg m = { .type = GMIG_MSG_WELCOME };
	int rc;

	rc = fault_hit() ? -ENOMEM : staging_init(&c->st, a->cfg.slots, a->cfg.slot_size);
	if (rc)
		return rc;
	c->q_cap = a->cfg.slots + CLIENT_QUEUE_EXTRA;
	c->q = fault_calloc(c->q_cap, sizeof(*c->q));
	if (!c->q)
		return -ENOMEM;
	while (!c->session) {
		rc = session_random(&c->session, sizeof(c->session));
		if (rc)
			return rc;
	}
	m.u.welcome.version = c->version;
	m.u.welcome.role = GMIG_ROLE_AGENT;
	m.u.welcome.caps = GMIG_CAP_SHM;
	m.u.welcome.session = c->session;
	rc = session_random(m.u.welcome.token, sizeof(m.u.welcome.token));
	if (rc)
		return rc;
	m.u.welcome.phase = a->phase;
	/* WELCOME carries the sender's lowest version in its header, as HELLO does. */
	rc = client_send_direct(c, &m, GMIG_VERSION_MIN, -1);
	if (rc)
		return rc;

	/* The memfd rides alone with STAGING, so no read of WELCOME can swallow it. */
	memset(&m, 0, sizeof(m));
	m.type = GMIG_MSG_STAGING;
	m.u.staging.slots = a->cfg.slots;
	m.u.staging.slot_size = a->cfg.slot_size;
	rc = client_send_direct(c, &m, (uint8_t)c->version, c->st.fd);
	if (rc)
		return rc;
	gmig_decoder_set_versions(&c->dec, (uint8_t)c->version, (uint8_t)c->version);
	log_info(c->peer, "welcomed: %u slots of %u bytes each way%s", a->cfg.slots,
		 a->cfg.slot_size, c->st.phys ? ", pinned by gmig.ko" : "");
	return 0;
}

static void act_refuse(struct client *c, int code, uint16_t ref, const char *why)
{
	struct gmig_msg m;

	msg_error(&m, code, ref, 0, why);
	/*
	 * Best effort, as the client is closed right after: straight to the socket, and only
	 * when nothing else waits in front of it.
	 */
	if (c->bev && !evbuffer_get_length(bufferevent_get_output(c->bev)))
		client_send_direct(c, &m, c->state == CS_READY ? (uint8_t)c->version :
				   GMIG_VERSION_MIN, -1);
}

/* The reason for CA_REFUSE, set by whoever raised the event. */
struct refusal {
	int code;
	uint16_t ref;
	const char *why;
};

static void client_fsm_why(struct client *c, enum client_event ev, const struct refusal *r)
{
	const struct client_row *row;
	enum client_state from = c->state;
	int rc;

	if (c->state == CS_DEAD)
		return;
	row = client_row(c->state, ev);
	if (!row) {
		log_rl(LV_WARN, c->peer, "event %s not expected in state %s; ignored",
		       client_event_names[ev], client_state_names[c->state]);
		return;
	}
	switch (row->action) {
	case CA_WELCOME:
		if (c->hello_timer)
			event_del(c->hello_timer);
		rc = act_welcome(c);
		if (rc) {
			log_warn(c->peer, "cannot welcome: %s", strerror(-rc));
			client_kill(c);
			return;
		}
		break;
	case CA_HOLD:
		if (c->hello_timer)
			event_del(c->hello_timer);
		log_info(c->peer, "a migration is in progress (%s): held until it ends",
			 gmig_phase_name(c->a->phase));
		break;
	case CA_REFUSE:
		if (r)
			log_warn(c->peer, "refused: %s", r->why);
		act_refuse(c, r ? r->code : -EPROTO, r ? r->ref : 0, r ? r->why : "refused");
		client_kill(c);
		return;
	case CA_DROP:
		log_info(c->peer, "gone (%s)", client_event_names[ev]);
		client_kill(c);
		return;
	case CA_COUNT:
		return;
	}
	c->state = row->next;
	log_debug(c->peer, "%s -> %s on %s", client_state_names[from],
		  client_state_names[row->next], client_event_names[ev]);
}

void client_fsm(struct client *c, enum client_event ev)
{
	client_fsm_why(c, ev, NULL);
}

bool client_usable(const struct client *c)
{
	return c->state == CS_READY && !c->doom_why;
}

void client_violation(struct client *c, const char *why)
{
	if (c->state == CS_DEAD || c->doom_why)
		return;
	c->doom_why = why;
	event_active(c->doom_ev, EV_TIMEOUT, 0);
}

static void doom_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	struct refusal r = { -EPROTO, 0, c->doom_why };

	(void)fd;
	(void)what;
	client_fsm_why(c, CE_VIOLATION, &r);
}

void client_unhold_all(struct agent *a)
{
	struct client *c;

	TAILQ_FOREACH(c, &a->clients, link) {
		if (c->state == CS_HELD) {
			client_fsm(c, CE_UNHOLD);
			/* Bytes that came while it was held wait in its input. */
			if (c->state == CS_READY)
				event_active(c->resume_ev, EV_TIMEOUT, 0);
		}
	}
}

void client_free_all(struct agent *a)
{
	struct client *c;

	while ((c = TAILQ_FIRST(&a->clients))) {
		TAILQ_REMOVE(&a->clients, c, link);
		client_free(c);
	}
	a->nclients = 0;
}

int client_send(struct client *c, const struct gmig_msg *m)
{
	struct gmig_hdr h = { .version = (uint8_t)c->version, .session = c->session };
	int rc;

	if (!client_usable(c) || !c->bev)
		return -ENOTCONN;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > CLIENT_OUT_MAX) {
		client_violation(c, "it does not read what it is sent");
		return -ENOBUFS;
	}
	h.seq = ++c->tx_seq;
	rc = frame_put(bufferevent_get_output(c->bev), &h, m);
	if (rc)
		log_rl(LV_WARN, c->peer, "cannot send %s: %s", gmig_msg_name(m->type),
		       strerror(-rc));
	return rc;
}

int client_request(struct client *c, const struct gmig_msg *m, uint32_t op)
{
	unsigned int tail;
	int rc;

	if (c->fifo_len == CLIENT_FIFO_MAX) {
		log_warn(c->peer, "%u requests unanswered: the client is stuck", CLIENT_FIFO_MAX);
		return -EOVERFLOW;
	}
	rc = client_send(c, m);
	if (rc)
		return rc;
	tail = (c->fifo_head + c->fifo_len) % CLIENT_FIFO_MAX;
	c->fifo[tail].op = op;
	c->fifo[tail].type = m->type;
	c->fifo_len++;
	return 0;
}

void client_pause(struct client *c)
{
	if (c->paused || !c->bev)
		return;
	c->paused = true;
	bufferevent_disable(c->bev, EV_READ);
}

void client_unpause(struct client *c)
{
	if (!c->paused || c->state != CS_READY)
		return;
	c->paused = false;
	bufferevent_enable(c->bev, EV_READ);
	/* Frames already read wait in the input buffer. */
	event_active(c->resume_ev, EV_TIMEOUT, 0);
}

/* --- frames from a client --- */

static int hello_check(struct client *c, const struct gmig_frame *f, const struct gmig_msg *m,
		       const char **why)
{
	const struct gmig_hello *h = &m->u.hello;
	uint16_t v;

	if (m->type != GMIG_MSG_HELLO) {
		*why = "the first frame must be HELLO";
		return -EPROTO;
	}
	if (h->role != GMIG_ROLE_CLIENT || h->session || f->hdr.session) {
		*why = "HELLO must come from a client, for a new session";
		return -EPROTO;
	}
	if (gmig_version_agree(GMIG_VERSION_MIN, GMIG_VERSION_MAX, h->min_version,
			       h->max_version, &v)) {
		*why = "no protocol version in common";
		return -EPROTONOSUPPORT;
	}
	if (!(h->caps & GMIG_CAP_SHM)) {
		*why = "the client does not take shared staging memory (SHM)";
		return -EPROTONOSUPPORT;
	}
	c->version = v;
	return 0;
}

/* Bytes for a pid go to one connection: a second one from the same process is refused. */
static bool pid_taken(const struct client *c)
{
	const struct client *o;

	TAILQ_FOREACH(o, &c->a->clients, link) {
		if (o != c && o->pid == c->pid && (o->state == CS_READY || o->state == CS_HELD))
			return true;
	}
	return false;
}

static void on_hello(struct client *c, const struct gmig_frame *f, const struct gmig_msg *m)
{
	struct refusal r = { 0, GMIG_MSG_HELLO, NULL };

	r.code = hello_check(c, f, m, &r.why);
	if (!r.code && pid_taken(c)) {
		r.code = -EEXIST;
		r.why = "its process has a connection already";
	}
	if (r.code) {
		client_fsm_why(c, CE_HELLO_BAD, &r);
		return;
	}
	text_safe(c->name, sizeof(c->name), m->u.hello.name, strlen(m->u.hello.name));
	snprintf(c->peer, sizeof(c->peer), "client %d (%s)", (int)c->pid, c->name);
	client_fsm(c, c->a->phase == GMIG_PHASE_IDLE ? CE_HELLO : CE_HELLO_HOLD);
}

static void on_inv_client(struct client *c, const struct gmig_inv_client *ic)
{
	bool changed = c->has_inv && (ic->tail.len != c->regions_len ||
				      memcmp(ic->tail.ptr, c->regions, ic->tail.len));
	uint8_t *copy = NULL;

	if (ic->tail.len) {
		copy = fault_malloc(ic->tail.len);
		if (!copy) {
			log_rl(LV_WARN, c->peer, "out of memory for its inventory");
			return;
		}
		memcpy(copy, ic->tail.ptr, ic->tail.len);
	}
	/*
	 * The pid it reports is in its own pid namespace; the socket's is the agent's, and is
	 * the one the host sees. Its own is what its restore manifest must name.
	 */
	if (ic->pid != (uint32_t)c->pid)
		log_debug(c->peer, "reports pid %u; the host knows it as %d", ic->pid, (int)c->pid);
	c->self_pid = ic->pid;
	free(c->regions);
	c->regions = copy;
	c->regions_len = ic->tail.len;
	c->gpu = ic->gpu;
	c->has_inv = true;
	if (changed)
		mig_client_changed(c->a, c);
}

/* Keeps the client's state blob for the host; false when it cannot. */
static bool on_frozen(struct client *c, const struct gmig_frozen *fz)
{
	uint8_t *copy = NULL;

	if (fz->tail.len) {
		copy = fault_malloc(fz->tail.len);
		if (!copy) {
			log_rl(LV_WARN, c->peer, "out of memory for its state blob");
			return false;
		}
		memcpy(copy, fz->tail.ptr, fz->tail.len);
	}
	free(c->blob);
	c->blob = copy;
	c->blob_len = fz->tail.len;
	return true;
}

/* The request type an answer answers; 0 for frames that answer nothing. */
static uint16_t answers(const struct gmig_msg *m)
{
	switch (m->type) {
	case GMIG_MSG_INV_CLIENT:	return GMIG_MSG_INV_REQUEST;
	case GMIG_MSG_ROUND_END:	return GMIG_MSG_ROUND_BEGIN;
	case GMIG_MSG_FROZEN:		return GMIG_MSG_FREEZE;
	case GMIG_MSG_THAWED:		return GMIG_MSG_THAW;
	case GMIG_MSG_RELEASED:		return GMIG_MSG_RELEASE;
	case GMIG_MSG_ATTACHED:		return GMIG_MSG_ATTACH;
	case GMIG_MSG_RESTORED:		return GMIG_MSG_RESTORE_END;
	case GMIG_MSG_ABORTED:		return GMIG_MSG_ABORT;
	case GMIG_MSG_ERROR:		return m->u.error.ref_type;
	default:			return 0;
	}
}

/* An answer: matched with the oldest unanswered request, then given to its step. */
static void on_answer(struct client *c, const struct gmig_msg *m)
{
	struct agent *a = c->a;
	uint16_t want = answers(m);
	uint32_t op;

	if (!c->fifo_len || c->fifo[c->fifo_head].type != want) {
		if (m->type == GMIG_MSG_INV_CLIENT)
			return;		/* unasked: an update of its inventory */
		if (m->type == GMIG_MSG_ERROR) {
			/* An error about a frame that wants no answer, e.g. restore data. */
			char text[GMIG_TEXT_MAX + 1];

			text_safe(text, sizeof(text), m->u.error.tail.ptr, m->u.error.tail.len);
			log_rl(LV_WARN, c->peer, "error about %s: %s (%s)",
			       gmig_msg_name(m->u.error.ref_type), strerror(-m->u.error.code), text);
			if (c->in_restore && !c->rs_err)
				c->rs_err = m->u.error.code;
			return;
		}
		client_violation(c, "an answer to nothing it was asked");
		return;
	}
	op = c->fifo[c->fifo_head].op;
	c->fifo_head = (c->fifo_head + 1) % CLIENT_FIFO_MAX;
	c->fifo_len--;
	if (!op || !a->op || a->op->id != op || a->op->finished) {
		log_debug(c->peer, "late %s ignored", gmig_msg_name(m->type));
		return;
	}
	if (m->type == GMIG_MSG_ROUND_END) {
		pump_round_end(a, c, op, &m->u.round_end);
		return;
	}
	/* A frozen client whose state cannot be kept fails the freeze: all or none. */
	if (m->type == GMIG_MSG_FROZEN && !on_frozen(c, &m->u.frozen))
		op_fail(a, -ENOMEM, "freeze: out of memory for the state of pid %d", (int)c->pid);
	op_answer(a, c, m);
}

static void on_frame(struct client *c, const struct gmig_frame *f)
{
	struct gmig_msg m;
	int rc = gmig_msg_decode(f, &m);

	if (rc) {
		log_rl(LV_WARN, c->peer, "bad %s: %s", gmig_msg_name(f->hdr.type),
		       gmig_proto_strerror(rc));
		client_violation(c, "a frame with invalid fields");
		return;
	}
	if (c->state == CS_NEW) {
		on_hello(c, f, &m);
		return;
	}
	if (c->state == CS_HELD) {
		/* It waits for its WELCOME; it has nothing to say yet. */
		client_violation(c, "a frame before WELCOME");
		return;
	}
	if (f->hdr.session != c->session) {
		client_violation(c, "a frame of another session");
		return;
	}

	switch (m.type) {
	case GMIG_MSG_PING: {
		struct gmig_msg pong = { .type = GMIG_MSG_PONG };

		pong.u.nonce.nonce = m.u.nonce.nonce;
		client_send(c, &pong);
		break;
	}
	case GMIG_MSG_PONG:
		break;
	case GMIG_MSG_BYE:
		log_info(c->peer, "said BYE");
		client_fsm(c, CE_CLOSED);
		break;
	case GMIG_MSG_STAGED:
		pump_staged(c->a, c, &m.u.staged);
		break;
	case GMIG_MSG_SLOT_FREE:
		pump_slot_free(c->a, c, m.u.slot.slot);
		break;
	case GMIG_MSG_INV_CLIENT:
		on_inv_client(c, &m.u.inv_client);
		on_answer(c, &m);
		break;
	case GMIG_MSG_ROUND_END:
	case GMIG_MSG_FROZEN:
	case GMIG_MSG_THAWED:
	case GMIG_MSG_RELEASED:
	case GMIG_MSG_ATTACHED:
	case GMIG_MSG_RESTORED:
	case GMIG_MSG_ABORTED:
	case GMIG_MSG_ERROR:
		on_answer(c, &m);
		break;
	default:
		log_rl(LV_WARN, c->peer, "unexpected %s from a client", gmig_msg_name(m.type));
		client_violation(c, "a message clients do not send");
		break;
	}
}

static void client_process(struct client *c)
{
	struct evbuffer *in;

	while (c->state != CS_DEAD && !c->doom_why && !c->paused && c->bev) {
		struct evbuffer_iovec v;
		struct gmig_frame f;
		size_t used;
		int rc;

		in = bufferevent_get_input(c->bev);
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || !v.iov_len)
			break;
		rc = gmig_decoder_feed(&c->dec, v.iov_base, v.iov_len, &used, &f);
		evbuffer_drain(in, used);
		if (rc < 0) {
			struct refusal r = { rc, 0, gmig_proto_strerror(rc) };

			log_rl(LV_WARN, c->peer, "bad frame: %s", gmig_proto_strerror(rc));
			client_fsm_why(c, CE_VIOLATION, &r);
			break;
		}
		if (rc == 1)
			on_frame(c, &f);
	}
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	client_process(arg);
}

static void client_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	if (c->state != CS_DEAD)
		client_process(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (what & BEV_EVENT_ERROR)
		log_debug(c->peer, "socket error: %s",
			  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_fsm(c, CE_CLOSED);
}

static void hello_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	log_warn(c->peer, "no HELLO within %u ms", c->a->cfg.hello_timeout_ms);
	client_fsm(c, CE_TIMEOUT);
}

static void client_accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
			     struct sockaddr *sa, int salen, void *arg)
{
	struct agent *a = arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval tv;
	struct client *c;

	(void)lis;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || !cred.pid) {
		log_rl(LV_WARN, NULL, "client socket: no peer credentials; closed");
		evutil_closesocket(fd);
		return;
	}
	if (a->nclients >= a->cfg.max_clients) {
		log_rl(LV_WARN, NULL, "client %d refused: %u clients already", (int)cred.pid,
		       a->nclients);
		evutil_closesocket(fd);
		return;
	}
	c = fault_calloc(1, sizeof(*c));
	if (!c)
		goto out_close;
	c->a = a;
	c->pid = cred.pid;
	c->st.fd = -1;
	snprintf(c->peer, sizeof(c->peer), "client %d", (int)c->pid);
	c->dec_buf = fault_malloc(CLIENT_FRAME_MAX);
	if (!c->dec_buf)
		goto out_free;
	gmig_decoder_init(&c->dec, c->dec_buf, CLIENT_FRAME_MAX);
	c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto out_free;
	fd = -1;
	c->hello_timer = evtimer_new(a->base, hello_timeout_cb, c);
	c->resume_ev = event_new(a->base, -1, 0, client_resume_cb, c);
	c->doom_ev = event_new(a->base, -1, 0, doom_cb, c);
	if (!c->hello_timer || !c->resume_ev || !c->doom_ev)
		goto out_free;
	bufferevent_setcb(c->bev, client_read_cb, NULL, client_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CLIENT_READ_HIGH);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE))
		goto out_free;
	tv.tv_sec = a->cfg.hello_timeout_ms / 1000;
	tv.tv_usec = (a->cfg.hello_timeout_ms % 1000) * 1000;
	evtimer_add(c->hello_timer, &tv);
	TAILQ_INSERT_TAIL(&a->clients, c, link);
	a->nclients++;
	log_debug(c->peer, "connected (uid %u)", (unsigned)cred.uid);
	return;

out_free:
	client_free(c);
out_close:
	if (fd >= 0)
		evutil_closesocket(fd);
	log_rl(LV_WARN, NULL, "client %d: out of memory; closed", (int)cred.pid);
}

static void client_listen_error_cb(struct evconnlistener *lis, void *arg)
{
	(void)lis;
	(void)arg;
	log_rl(LV_ERROR, NULL, "client socket: accept failed: %s",
	       evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

int client_listen(struct agent *a)
{
	int fd = unix_listen_fd(a->cfg.client_socket, (mode_t)a->cfg.client_socket_mode);

	if (fd < 0) {
		log_error(NULL, "client socket %s: %s", a->cfg.client_socket, strerror(-fd));
		return fd;
	}
	a->client_lis = evconnlistener_new(a->base, client_accept_cb, a,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
					   -1, fd);
	if (!a->client_lis) {
		close(fd);
		return -ENOMEM;
	}
	evconnlistener_set_error_cb(a->client_lis, client_listen_error_cb);
	log_info(NULL, "clients connect to %s", a->cfg.client_socket);
	return 0;
}

void client_unlisten(struct agent *a)
{
	if (a->client_lis) {
		evconnlistener_free(a->client_lis);
		a->client_lis = NULL;
		unlink(a->cfg.client_socket);
	}
}
