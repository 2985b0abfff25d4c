/* Host channel connections: demultiplexed frames and JSON lines, the session's HELLO and resume, requests and replies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "agent.h"
#include "channel.h"
#include "fault.h"
#include "frameio.h"
#include "host.h"
#include "log.h"
#include "migration.h"
#include "op.h"
#include "pump.h"
#include "session.h"

#define HOST_READ_HIGH		(GMIG_PAYLOAD_MAX + GMIG_HDR_SIZE)	/* input read ahead */
#define HOST_CLOSE_MS		2000	/* a closing connection's last words may take this long */
#define HOST_OUT_SLACK		(16u << 20)	/* output beyond host_buffer a peer may leave unread */

static void hconn_kill(struct hconn *c, const char *why);

static void hconn_close(struct hconn *c, const char *why);
static void hconn_close_later(struct hconn *c, const char *why);

/* --- sending --- */

/* A peer that does not read what it asked for (a flood of PINGs or JSON) is let go. */
static bool hconn_full(struct hconn *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) <=
	    (size_t)c->a->cfg.host_buffer + HOST_OUT_SLACK)
		return false;
	hconn_close_later(c, "it does not read what it is sent");
	return true;
}

/* Sends on @c: with the session's numbering when @c carries it, else the connection's own. */
static int hconn_send(struct hconn *c, const struct gmig_msg *m)
{
	struct agent *a = c->a;
	struct gmig_hdr h = { .version = GMIG_VERSION_MIN };

	if (c->dead || c->closing || !c->bev)
		return -ENOTCONN;
	if (c == a->host)
		return host_send(a, m);
	if (hconn_full(c))
		return -ENOBUFS;
	h.seq = ++c->tx_seq;
	return frame_put(bufferevent_get_output(c->bev), &h, m);
}

static void hconn_error(struct hconn *c, int code, uint16_t ref_type, uint64_t ref_seq,
			const char *text)
{
	struct gmig_msg m;

	msg_error(&m, code, ref_type, ref_seq, text);
	hconn_send(c, &m);
}

int host_send(struct agent *a, const struct gmig_msg *m)
{
	struct gmig_hdr h;
	int rc;

	if (!a->host || a->host->dead || a->host->closing)
		return -ENOTCONN;
	if (hconn_full(a->host))
		return -ENOBUFS;
	h = (struct gmig_hdr){
		.version = (uint8_t)a->session.version,
		.session = a->session.id,
		.seq = ++a->session.tx_seq,
	};
	/* HELLO and WELCOME carry the sender's lowest version, whatever was agreed. */
	if (m->type == GMIG_MSG_WELCOME)
		h.version = GMIG_VERSION_MIN;
	rc = frame_put(bufferevent_get_output(a->host->bev), &h, m);
	if (rc) {
		/*
		 * The host would wait for a frame that never comes: drop the connection instead
		 * (from the loop; callers may be walking queues), so that it resumes and asks again.
		 */
		log_rl(LV_WARN, a->host->peer, "cannot queue %s: %s", gmig_msg_name(m->type),
		       strerror(-rc));
		hconn_close_later(a->host, "a frame could not be queued");
	}
	return rc;
}

bool host_passes_fds(const struct agent *a)
{
	return a->host && !a->host->dead && !a->host->closing && a->host->kind == HC_UNIX &&
	       (a->session.caps & GMIG_CAP_SHM);
}

int host_send_fd(struct agent *a, const struct gmig_msg *m, int fd)
{
	struct evbuffer *out;
	struct gmig_hdr h;
	int rc;

	if (!host_passes_fds(a))
		return -EOPNOTSUPP;
	out = bufferevent_get_output(a->host->bev);
	/* The fd rides with the frame's first byte: nothing may be queued before it. */
	if (evbuffer_get_length(out))
		return -EAGAIN;
	h = (struct gmig_hdr){
		.version = (uint8_t)a->session.version,
		.session = a->session.id,
		.seq = a->session.tx_seq + 1,
	};
	rc = frame_send_fd_rest(bufferevent_getfd(a->host->bev), &h, m, fd, out);
	if (rc == -EAGAIN)
		return rc;
	a->session.tx_seq++;
	if (rc) {
		log_rl(LV_WARN, a->host->peer, "cannot send %s: %s", gmig_msg_name(m->type),
		       strerror(-rc));
		hconn_close_later(a->host, "a frame could not be sent");
	}
	return rc;
}

size_t host_out_len(struct agent *a)
{
	if (!a->host || a->host->dead)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(a->host->bev));
}

void host_unblock(struct agent *a)
{
	if (a->host && !a->host->dead)
		event_active(a->host->resume_ev, EV_TIMEOUT, 0);
}

/* --- closing --- */

static void hconn_free(struct hconn *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->resume_ev)
		event_free(c->resume_ev);
	if (c->close_timer)
		event_free(c->close_timer);
	demux_clear(&c->dm);
	free(c->json_line);
	free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	struct hconn *c, *next;

	(void)fd;
	(void)what;
	for (c = TAILQ_FIRST(&a->hconns); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->dead) {
			TAILQ_REMOVE(&a->hconns, c, link);
			hconn_free(c);
		}
	}
}

/* Ends the session's hold on its connection: the session waits for a resume. */
static void session_detach(struct agent *a)
{
	const struct sess_row *row;

	a->host = NULL;
	if (session_fsm(&a->session, SE_LOST, NULL, 0, &row))
		return;
	log_info(NULL, "session %016llx detached; waiting %u ms for the host to resume",
		 (unsigned long long)a->session.id, a->cfg.resume_timeout_ms);
	mig_fsm(a, ME_HOST_LOST, NULL);
}

/* Makes the connection dead now: the socket closes, the session detaches, the memory goes later. */
static void hconn_kill(struct hconn *c, const char *why)
{
	struct agent *a = c->a;
	struct serial_port *port = c->serial;

	if (c->dead)
		return;
	c->dead = true;
	demux_stop(&c->dm);
	/* A serial port with no host behind it hangs up every second: only say so at debug. */
	log_msg(c->heard || c->kind != HC_SERIAL ? LV_INFO : LV_DEBUG, c->peer, "closed (%s)", why);
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	event_del(c->resume_ev);
	event_del(c->close_timer);
	a->nhconns--;
	if (c == a->host) {
		session_detach(a);
		pump_refs_back(a);	/* their REF_DONEs would have come on this connection */
	}
	host_json_forget(a, c);
	event_base_once(a->base, -1, EV_TIMEOUT, reap_cb, a, NULL);
	if (port)
		serial_conn_closed(port, c->fail_err);
}

/* Stops reading, lets the output drain (bounded), then kills the connection. */
static void hconn_close(struct hconn *c, const char *why)
{
	struct timeval tv = { HOST_CLOSE_MS / 1000, (HOST_CLOSE_MS % 1000) * 1000 };

	if (c->dead || c->closing)
		return;
	c->closing = true;
	demux_stop(&c->dm);
	log_msg(c->heard || c->kind != HC_SERIAL ? LV_INFO : LV_DEBUG, c->peer, "closing: %s", why);
	bufferevent_disable(c->bev, EV_READ);
	if (!evbuffer_get_length(bufferevent_get_output(c->bev))) {
		hconn_kill(c, why);
		return;
	}
	evtimer_add(c->close_timer, &tv);
}

/* As hconn_close(), but the connection dies from the loop, never under the caller. */
static void hconn_close_later(struct hconn *c, const char *why)
{
	struct timeval now = { 0, 0 };

	if (c->dead || c->closing)
		return;
	c->closing = true;
	demux_stop(&c->dm);
	log_msg(c->heard || c->kind != HC_SERIAL ? LV_INFO : LV_DEBUG, c->peer, "closing: %s", why);
	bufferevent_disable(c->bev, EV_READ);
	evtimer_add(c->close_timer, &now);
}

static void close_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hconn_kill(arg, "closed");
}

void hconn_free_all(struct agent *a)
{
	struct hconn *c;

	while ((c = TAILQ_FIRST(&a->hconns))) {
		TAILQ_REMOVE(&a->hconns, c, link);
		hconn_free(c);
	}
	a->nhconns = 0;
	a->host = NULL;
}

/* --- JSON commands --- */

void host_json_defer(struct hconn *c)
{
	c->json_deferred = true;
	c->json_wait = true;
}

void host_json_forget(struct agent *a, struct hconn *c)
{
	if (a->op && a->op->who.json == c)
		a->op->who.json = NULL;
}

static void hconn_write(struct hconn *c, const char *buf, size_t len)
{
	if (c->dead || c->closing || !c->bev || hconn_full(c))
		return;
	if (evbuffer_add(bufferevent_get_output(c->bev), buf, len))
		log_rl(LV_WARN, c->peer, "JSON reply lost: out of memory");
}

void host_json_answer(struct hconn *c, int rc, struct json_object *ret, const char *desc)
{
	const char *line = c->json_line ? c->json_line : c->json_cur;
	size_t len = c->json_line ? c->json_len : c->json_cur_len;
	struct gmig_qga_request req;
	struct gmig_qga_error err;
	bool later = c->json_line != NULL;
	char *reply = NULL;
	size_t n;

	if (!c->json_wait || !line) {
		json_object_put(ret);
		return;
	}
	/* The line parsed once already; this finds its id again for the reply. */
	gmig_qga_request_parse(&req, line, len, &err);
	if (rc) {
		gmig_qga_error_set(&err, GMIG_QGA_GENERIC_ERROR, "%s", desc ? desc : strerror(-rc));
		reply = gmig_qga_reply_error(&req, &err, &n);
	} else {
		reply = gmig_qga_reply_return(&req, ret, &n);
	}
	gmig_qga_request_clear(&req);
	json_object_put(ret);
	if (reply)
		hconn_write(c, reply, n);
	else
		log_rl(LV_WARN, c->peer, "JSON reply lost: out of memory");
	free(reply);
	free(c->json_line);
	c->json_line = NULL;
	c->json_wait = false;
	/* Input waited for this answer. */
	if (later && !c->dead)
		event_active(c->resume_ev, EV_TIMEOUT, 0);
}

static int on_line(void *ctx, const char *line, size_t len)
{
	struct hconn *c = ctx;
	struct agent *a = c->a;
	char *reply;
	size_t n;

	c->json_cur = line;
	c->json_cur_len = len;
	c->json_deferred = false;
	a->json_conn = c;
	a->qga.frozen = a->phase >= GMIG_PHASE_FROZEN;
	reply = gmig_qga_dispatch(&a->qga, line, len, &n);
	a->json_conn = NULL;
	c->json_cur = NULL;

	if (!c->json_deferred) {
		if (reply)
			hconn_write(c, reply, n);
		else
			log_rl(LV_WARN, c->peer, "JSON reply lost: out of memory");
		free(reply);
		return 0;
	}
	/* The command answers later (or has answered already through host_json_answer). */
	free(reply);
	if (!c->json_wait)
		return 0;
	c->json_line = fault_malloc(len + 1);
	if (!c->json_line) {
		c->json_wait = false;
		hconn_close(c, "out of memory");
		return DEMUX_BLOCK;
	}
	memcpy(c->json_line, line, len);
	c->json_line[len] = '\0';
	c->json_len = len;
	return DEMUX_BLOCK;
}

static void on_oversize(void *ctx)
{
	struct hconn *c = ctx;
	size_t n;
	char *reply = gmig_qga_reply_oversize(&n);

	log_rl(LV_WARN, c->peer, "JSON line over %u bytes dropped", GMIG_QGA_LINE_MAX);
	if (reply)
		hconn_write(c, reply, n);
	free(reply);
}

/* --- frames --- */

static void on_hello(struct hconn *c, const struct gmig_frame *f, const struct gmig_hello *h)
{
	struct agent *a = c->a;
	struct hconn *old = a->host;
	const struct sess_row *row;
	struct gmig_msg m = { .type = GMIG_MSG_WELCOME };
	uint64_t last = a->session.rx_last;
	enum sess_event ev;
	uint16_t version;
	char text[160];
	int rc;

	rc = session_classify(&a->session, h, &version, &ev);
	if (rc) {
		if (rc == -EPROTONOSUPPORT)
			snprintf(text, sizeof(text), "no common version: agent speaks %u..%u, "
				 "host %u..%u", GMIG_VERSION_MIN, GMIG_VERSION_MAX,
				 h->min_version, h->max_version);
		else if (rc == -ESTALE)
			snprintf(text, sizeof(text), "unknown session or wrong token: open a new "
				 "session");
		else
			snprintf(text, sizeof(text), "HELLO refused: the agent takes hosts only");
		log_warn(c->peer, "%s", text);
		hconn_error(c, rc, GMIG_MSG_HELLO, f->hdr.seq, text);
		if (rc == -EPROTONOSUPPORT)
			hconn_close(c, "no common protocol version");
		return;
	}
	rc = session_fsm(&a->session, ev, h, version, &row);
	if (rc) {
		hconn_error(c, rc, GMIG_MSG_HELLO, f->hdr.seq, "cannot open a session");
		return;
	}
	/*
	 * A round in flight belongs to the connection that asked for it: when the session moves
	 * or is replaced, it goes as it would with a dropped connection.
	 */
	if (old && (row->action == SA_REPLACE || (row->action == SA_TAKEOVER && old != c)))
		mig_fsm(a, ME_HOST_LOST, NULL);
	/* From here on the session is on @c; the old connection leaves without detaching it. */
	a->host = c;
	/* What the old connection held (lent slots, slots named by refs) comes back with it. */
	if (old && old != c)
		pump_refs_back(a);
	switch (row->action) {
	case SA_OPEN:
		break;
	case SA_REPLACE:
		if (old && old != c)
			hconn_close(old, "a new session replaced its session");
		log_info(c->peer, "a new session replaces the old one");
		mig_fsm(a, ME_SESSION_END, NULL);
		break;
	case SA_TAKEOVER:
		if (old && old != c)
			hconn_close(old, "its session resumed on another connection");
		mig_fsm(a, ME_HOST_BACK, NULL);
		break;
	case SA_RESUME:
		mig_fsm(a, ME_HOST_BACK, NULL);
		break;
	default:
		break;
	}
	demux_set_versions(&c->dm, (uint8_t)version, (uint8_t)version);
	session_welcome(&a->session, ev == SE_HELLO_RESUME, last, a->phase, &m.u.welcome);
	host_send(a, &m);
	/* A restore in flight: the slots the old connection held came back; lend them again. */
	pump_lend_all(a);
	log_info(c->peer, "session %016llx %s with host '%s', version %u, phase %s",
		 (unsigned long long)a->session.id, ev == SE_HELLO_RESUME ? "resumed" : "opened",
		 a->session.host, version, gmig_phase_name(a->phase));
}

static void on_bye(struct hconn *c, const struct gmig_code *bye)
{
	struct agent *a = c->a;
	const struct sess_row *row;

	log_info(c->peer, "the host ended session %016llx (%d)",
		 (unsigned long long)a->session.id, bye->code);
	a->host = NULL;
	if (!session_fsm(&a->session, SE_BYE, NULL, 0, &row))
		mig_fsm(a, ME_SESSION_END, NULL);
}

static int on_frame(void *ctx, const struct gmig_frame *f)
{
	struct hconn *c = ctx;
	struct agent *a = c->a;
	struct gmig_msg m;
	char text[160];
	int rc;

	rc = gmig_msg_decode(f, &m);
	/* HELLO opens or resumes a session on any connection, outside the numbering. */
	if (f->hdr.type == GMIG_MSG_HELLO || (c != a->host && rc)) {
		if (!rc) {
			on_hello(c, f, &m.u.hello);
			return 0;
		}
		snprintf(text, sizeof(text), "bad %s: %s", gmig_msg_name(f->hdr.type),
			 gmig_proto_strerror(rc));
		log_rl(LV_WARN, c->peer, "%s", text);
		hconn_error(c, rc, f->hdr.type, f->hdr.seq, text);
		return 0;
	}
	if (c != a->host) {
		if (m.type == GMIG_MSG_PING) {
			m.type = GMIG_MSG_PONG;
			hconn_send(c, &m);
			return 0;
		}
		hconn_error(c, -ENOTCONN, f->hdr.type, f->hdr.seq,
			    "no session on this connection: send HELLO first");
		return 0;
	}

	/* A frame held for want of a slot comes again: it was counted the first time. */
	if (!(a->restore.busy && f->hdr.type == GMIG_MSG_RESTORE_DATA &&
	      f->hdr.seq == a->restore.busy_seq)) {
		if (f->hdr.session != a->session.id) {
			hconn_error(c, -EPROTO, f->hdr.type, f->hdr.seq, "frame of another session");
			hconn_close(c, "a frame of another session");
			return 0;
		}
		switch (session_rx_seq(&a->session, f->hdr.seq)) {
		case 1:
			log_rl(LV_DEBUG, c->peer, "%s seq %llu seen already; dropped",
			       gmig_msg_name(f->hdr.type), (unsigned long long)f->hdr.seq);
			return 0;
		case 0:
			break;
		default:
			snprintf(text, sizeof(text), "sequence gap: %llu after %llu",
				 (unsigned long long)f->hdr.seq,
				 (unsigned long long)a->session.rx_last);
			hconn_error(c, -EPROTO, f->hdr.type, f->hdr.seq, text);
			hconn_close(c, text);
			return 0;
		}
	}
	if (rc) {
		snprintf(text, sizeof(text), "bad %s: %s", gmig_msg_name(f->hdr.type),
			 gmig_proto_strerror(rc));
		log_rl(LV_WARN, c->peer, "%s", text);
		hconn_error(c, rc, f->hdr.type, f->hdr.seq, text);
		return 0;
	}

	switch (m.type) {
	case GMIG_MSG_PING:
		m.type = GMIG_MSG_PONG;
		host_send(a, &m);
		return 0;
	case GMIG_MSG_PONG:
		return 0;
	case GMIG_MSG_ERROR:
		text_safe(text, sizeof(text), m.u.error.tail.ptr, m.u.error.tail.len);
		log_rl(LV_WARN, c->peer, "host error about %s seq %llu: %s (%s)",
		       gmig_msg_name(m.u.error.ref_type), (unsigned long long)m.u.error.ref_seq,
		       strerror(-m.u.error.code), text);
		return 0;
	case GMIG_MSG_BYE:
		on_bye(c, &m.u.code);
		return 0;
	case GMIG_MSG_RESTORE_DATA:
		return pump_restore_data(a, &m.u.region_data, f->hdr.seq);
	case GMIG_MSG_REF_DONE:
		pump_ref_done(a, &m.u.ref_done);
		return 0;
	case GMIG_MSG_RESTORE_REF:
		pump_restore_ref(a, &m.u.restore_ref, f->hdr.seq);
		return 0;
	case GMIG_MSG_INV_REQUEST:
	case GMIG_MSG_ROUND_BEGIN:
	case GMIG_MSG_FREEZE:
	case GMIG_MSG_RELEASE:
	case GMIG_MSG_ATTACH:
	case GMIG_MSG_RESTORE_BEGIN:
	case GMIG_MSG_RESTORE_END:
	case GMIG_MSG_THAW:
	case GMIG_MSG_ABORT:
		log_debug(c->peer, "%s seq %llu", gmig_msg_name(m.type),
			  (unsigned long long)f->hdr.seq);
		mig_host_request(a, &m, f->hdr.seq);
		return 0;
	default:
		snprintf(text, sizeof(text), "%s is not a message a host sends",
			 gmig_msg_name(m.type));
		log_rl(LV_WARN, c->peer, "%s", text);
		hconn_error(c, -EPROTO, m.type, f->hdr.seq, text);
		return 0;
	}
}

static void on_stream_error(void *ctx, int err)
{
	struct hconn *c = ctx;
	char text[160];

	/* The stream cannot be trusted past a bad frame: say why, then close. */
	snprintf(text, sizeof(text), "bad frame: %s", gmig_proto_strerror(err));
	log_rl(LV_WARN, c->peer, "%s", text);
	hconn_error(c, err, 0, 0, text);
	hconn_close(c, text);
}

static const struct demux_ops host_demux_ops = {
	.frame = on_frame,
	.line = on_line,
	.oversize = on_oversize,
	.error = on_stream_error,
};

/* --- input --- */

static void hconn_process(struct hconn *c)
{
	while (!c->dead && !c->closing && !c->json_wait) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		struct evbuffer_iovec v;
		long n;

		if (demux_held(&c->dm)) {
			demux_feed(&c->dm, NULL, 0);
			if (c->dead || demux_held(&c->dm))
				break;
			continue;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || !v.iov_len)
			break;
		n = demux_feed(&c->dm, v.iov_base, v.iov_len);
		if (c->dead)
			return;
		if (n < 0) {
			hconn_close(c, "out of memory");
			return;
		}
		evbuffer_drain(in, (size_t)n);
		if ((size_t)n < v.iov_len)
			break;
	}
	if (c->dead || c->closing)
		return;
	if (c->eof) {
		/* The peer has said all it will: close once its last request is answered. */
		if (!c->json_wait && !demux_held(&c->dm))
			hconn_close(c, "the host closed it");
		return;
	}
	/* Blocked: the kernel holds the rest, and the sender slows down. */
	if (c->json_wait || demux_held(&c->dm))
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct hconn *c = arg;

	if (!c->heard && c->kind == HC_SERIAL)
		log_info(c->peer, "the host speaks");
	c->heard = true;
	(void)bev;
	hconn_process(c);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hconn_process(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct hconn *c = arg;

	if (c->closing) {
		if (!evbuffer_get_length(bufferevent_get_output(bev)))
			hconn_kill(c, "closed after its last words");
		return;
	}
	/* The host took bytes: queued round data may go now. */
	if (c == c->a->host)
		pump_run(c->a);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hconn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		/*
		 * A half-close ("send, then shut down writing", as socat does) still wants its
		 * answers: what was read is served first; hconn_process() then closes.
		 */
		c->eof = true;
		hconn_process(c);
	} else if (what & BEV_EVENT_ERROR) {
		c->fail_err = EVUTIL_SOCKET_ERROR();
		hconn_kill(c, evutil_socket_error_to_string(c->fail_err));
	}
}

struct hconn *hconn_new(struct agent *a, int fd, enum hconn_kind kind, const char *peer,
			struct serial_port *port)
{
	struct hconn *c;

	if (a->nhconns >= a->cfg.max_host_conns) {
		log_rl(LV_WARN, NULL, "%s refused: %u host connections already", peer, a->nhconns);
		goto out_close;
	}
	c = fault_calloc(1, sizeof(*c));
	if (!c)
		goto out_close;
	c->a = a;
	c->kind = kind;
	c->serial = port;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	demux_init(&c->dm, GMIG_PAYLOAD_MAX, &host_demux_ops, c);
	c->resume_ev = event_new(a->base, -1, 0, resume_cb, c);
	c->close_timer = evtimer_new(a->base, close_timer_cb, c);
	c->bev = bufferevent_socket_new(a->base, fd, kind == HC_SERIAL ? 0 : BEV_OPT_CLOSE_ON_FREE);
	if (!c->resume_ev || !c->close_timer || !c->bev)
		goto out_free;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* Round data is refilled when the host has taken half of what was queued. */
	bufferevent_setwatermark(c->bev, EV_WRITE, a->cfg.host_buffer / 2, 0);
	bufferevent_setwatermark(c->bev, EV_READ, 0, HOST_READ_HIGH);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE))
		goto out_free;
	TAILQ_INSERT_TAIL(&a->hconns, c, link);
	a->nhconns++;
	log_msg(kind == HC_SERIAL ? LV_DEBUG : LV_INFO, c->peer, "connected");
	return c;

out_free:
	if (!c->bev && kind != HC_SERIAL)
		close(fd);
	hconn_free(c);
	return NULL;
out_close:
	if (kind != HC_SERIAL)
		close(fd);
	return NULL;
}
