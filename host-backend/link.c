/* A framed connection on a bufferevent: connect and handshake, decode, encode, pause, close. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "link.h"

/* The fixed part of every message is far smaller than this; tails travel apart. */
#define HEAD_MAX	(GMIG_HDR_SIZE + 256)

void msg_error(struct gmig_msg *m, int code, uint16_t ref_type, uint64_t ref_seq, const char *text)
{
	size_t len = strlen(text);

	memset(m, 0, sizeof(*m));
	m->type = GMIG_MSG_ERROR;
	m->u.error.code = code < 0 ? code : -EIO;
	m->u.error.ref_type = ref_type;
	m->u.error.ref_seq = ref_seq;
	m->u.error.tail.ptr = (const uint8_t *)text;
	m->u.error.tail.len = (uint32_t)(len > GMIG_TEXT_MAX ? GMIG_TEXT_MAX : len);
}

/* --- lifetime --- */

/* Links closing without an owner, so that an exit can free the ones still draining. */
static struct link *detached_head;

static void really_free(struct link *l)
{
	if (l->detached) {
		*l->prev_detached = l->next_detached;
		if (l->next_detached)
			l->next_detached->prev_detached = l->prev_detached;
	}
	if (l->rd)
		event_free(l->rd);
	if (l->bev)
		bufferevent_free(l->bev);
	while (l->nfds)
		close(l->fds[--l->nfds]);
	if (l->timer)
		event_free(l->timer);
	if (l->kick)
		event_free(l->kick);
	free(l->payload);
	free(l);
}

/* Turns reading on or off, whoever reads. */
static void reading(struct link *l, bool on)
{
	if (l->rd) {
		if (on && l->bev)
			event_add(l->rd, NULL);
		else
			event_del(l->rd);
	} else if (l->bev) {
		if (on)
			bufferevent_enable(l->bev, EV_READ);
		else
			bufferevent_disable(l->bev, EV_READ);
	}
}

/* Enters a libevent callback: the owner may free the link in any callback it gets. */
static void enter(struct link *l)
{
	l->in_cb++;
}

/* Leaves it; false when the link is gone and must not be touched. */
static bool leave(struct link *l)
{
	if (--l->in_cb == 0 && l->free_pending) {
		really_free(l);
		return false;
	}
	return true;
}

/* The link is dead: the socket closes now and the owner hears it once. */
static void die(struct link *l, int err, const char *why)
{
	if (l->state == LS_DEAD || l->free_pending)
		return;
	l->state = LS_DEAD;
	reading(l, false);
	if (l->bev) {
		bufferevent_free(l->bev);
		l->bev = NULL;
	}
	event_del(l->timer);
	event_del(l->kick);
	if (l->ops->down)
		l->ops->down(l->ctx, err, why);
}

void link_free(struct link *l)
{
	if (!l)
		return;
	if (l->in_cb) {
		/* Inside one of our callbacks: close now, free on the way out. */
		reading(l, false);
		if (l->bev) {
			bufferevent_free(l->bev);
			l->bev = NULL;
		}
		event_del(l->timer);
		event_del(l->kick);
		l->state = LS_DEAD;
		l->free_pending = true;
		return;
	}
	really_free(l);
}

/* --- input --- */

static void frames_in(struct link *l)
{
	while (l->state == LS_OPEN && !l->paused && !l->free_pending) {
		struct evbuffer *in = bufferevent_get_input(l->bev);
		struct evbuffer_iovec v;
		struct gmig_frame f;
		size_t used = 0;
		int rc;

		if (!evbuffer_get_length(in) || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		rc = gmig_decoder_feed(&l->dec, v.iov_base, v.iov_len, &used, &f);
		evbuffer_drain(in, used);
		l->rx_bytes += used;
		if (rc < 0) {
			char text[128];

			/* The stream cannot be trusted past a bad frame: say why, then close. */
			snprintf(text, sizeof(text), "bad frame: %s", gmig_proto_strerror(rc));
			link_refuse(l, rc, 0, 0, text);
			l->close_err = rc;
			return;
		}
		if (rc == 0)
			continue;
		l->rx_frames++;
		if (l->ops->frame(l->ctx, &f) == LINK_PAUSE && !l->free_pending)
			link_pause(l);
	}
}

/* The hybrid vsock answer: "OK <host port>\n", or the connection closes. */
static void handshake_in(struct link *l)
{
	struct evbuffer *in = bufferevent_get_input(l->bev);
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);

	if (!line) {
		if (evbuffer_get_length(in) > LINK_HANDSHAKE_MAX)
			die(l, -EPROTO, "hybrid vsock: no 'OK' line");
		return;
	}
	if (n > LINK_HANDSHAKE_MAX || strncmp(line, "OK ", 3)) {
		char why[LINK_HANDSHAKE_MAX + 48];

		snprintf(why, sizeof(why), "hybrid vsock refused CONNECT %u: '%.*s'", l->hv_port,
			 LINK_HANDSHAKE_MAX, line);
		free(line);
		die(l, -ECONNREFUSED, why);
		return;
	}
	free(line);
	event_del(l->timer);
	l->state = LS_OPEN;
	if (l->ops->up)
		l->ops->up(l->ctx);
	if (!l->free_pending)
		frames_in(l);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;

	(void)bev;
	enter(l);
	if (l->state == LS_HANDSHAKE)
		handshake_in(l);
	else if (l->state == LS_OPEN)
		frames_in(l);
	leave(l);
}

/* Keeps the fds of a received message; past LINK_FDS_MAX waiting they are closed. */
static void keep_fds(struct link *l, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t k = 0; k < n; k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (l->nfds < LINK_FDS_MAX)
				l->fds[l->nfds++] = fd;
			else
				close(fd);
		}
	}
}

/* A unix link's input: recvmsg() into the bufferevent's input, keeping fds. */
static void unix_read_cb(evutil_socket_t fd, short what, void *arg)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * LINK_FDS_MAX)];
	} ctl;
	struct link *l = arg;
	struct evbuffer_iovec v;
	struct evbuffer *in;
	struct msghdr mh = { 0 };
	struct iovec iov;
	ssize_t n;

	(void)what;
	if (!l->bev)
		return;
	enter(l);
	in = bufferevent_get_input(l->bev);
	/* The bufferevent keeps its input's end frozen for all but its own reads. */
	evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, LINK_IO_MAX, &v, 1) < 1) {
		evbuffer_freeze(in, 0);
		die(l, -ENOMEM, "out of memory for input");
		leave(l);
		return;
	}
	iov = (struct iovec){ v.iov_base, v.iov_len < LINK_IO_MAX ? v.iov_len : LINK_IO_MAX };
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	v.iov_len = n > 0 ? (size_t)n : 0;
	evbuffer_commit_space(in, &v, 1);
	evbuffer_freeze(in, 0);
	if (n < 0) {
		int err = errno;

		if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
			die(l, -err, strerror(err));
		leave(l);
		return;
	}
	keep_fds(l, &mh);
	if (n == 0) {
		die(l, -ECONNRESET, l->state == LS_HANDSHAKE ? "hybrid vsock: closed during "
		    "the handshake (nothing listens on that port?)" : "closed by the other side");
		leave(l);
		return;
	}
	if (l->state == LS_HANDSHAKE)
		handshake_in(l);
	else if (l->state == LS_OPEN)
		frames_in(l);
	leave(l);
}

int link_take_fd(struct link *l)
{
	int fd;

	if (!l || !l->nfds)
		return -1;
	fd = l->fds[0];
	memmove(l->fds, l->fds + 1, --l->nfds * sizeof(int));
	return fd;
}

bool link_is_unix(const struct link *l)
{
	return l && l->rd;
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;

	(void)fd;
	(void)what;
	enter(l);
	if (l->state == LS_CLOSING && (!l->bev ||
					!evbuffer_get_length(bufferevent_get_output(l->bev))))
		die(l, l->close_err, l->why);
	else if (l->state == LS_OPEN)
		frames_in(l);
	leave(l);
}

/* --- output and events --- */

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;

	enter(l);
	if (l->state == LS_CLOSING) {
		if (!evbuffer_get_length(bufferevent_get_output(bev)))
			die(l, l->close_err, l->why);
	} else if (l->state == LS_OPEN && l->ops->drained) {
		l->ops->drained(l->ctx);
	}
	leave(l);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;
	char why[96];
	int err;

	enter(l);
	if (what & BEV_EVENT_CONNECTED) {
		if (l->hv_port) {
			l->state = LS_HANDSHAKE;
			evbuffer_add_printf(bufferevent_get_output(bev), "CONNECT %u\n", l->hv_port);
		} else {
			event_del(l->timer);
			l->state = LS_OPEN;
			if (l->ops->up)
				l->ops->up(l->ctx);
		}
		leave(l);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		die(l, -ECONNRESET, l->state == LS_HANDSHAKE ? "hybrid vsock: closed during "
		    "the handshake (nothing listens on that port?)" : "closed by the other side");
	} else if (what & BEV_EVENT_ERROR) {
		err = EVUTIL_SOCKET_ERROR();
		if (!err)
			err = ECONNRESET;
		snprintf(why, sizeof(why), "%s", strerror(err));
		die(l, -err, why);
	}
	leave(l);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;

	(void)fd;
	(void)what;
	enter(l);
	if (l->state == LS_CLOSING)
		die(l, l->close_err, l->why);
	else if (l->state == LS_CONNECTING || l->state == LS_HANDSHAKE)
		die(l, -ETIMEDOUT, l->state == LS_HANDSHAKE ? "hybrid vsock handshake timed out" :
		    "connect timed out");
	leave(l);
}

static void arm(struct event *ev, uint32_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

static struct link *link_new(struct event_base *base, int fd, const char *peer,
			     const struct link_ops *ops, void *ctx)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l)
		goto out_close;
	l->base = base;
	l->ops = ops;
	l->ctx = ctx;
	snprintf(l->peer, sizeof(l->peer), "%s", peer);
	l->payload = malloc(GMIG_PAYLOAD_MAX);
	if (!l->payload)
		goto out_free;
	gmig_decoder_init(&l->dec, l->payload, GMIG_PAYLOAD_MAX);
	l->timer = evtimer_new(base, timer_cb, l);
	l->kick = event_new(base, -1, 0, kick_cb, l);
	if (!l->timer || !l->kick)
		goto out_free;
	/* A blocking socket would stall the whole loop on a full peer. */
	if (evutil_make_socket_nonblocking(fd))
		goto out_free;
	l->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!l->bev)
		goto out_free;
	bufferevent_setcb(l->bev, read_cb, write_cb, event_cb, l);
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (!getsockname(fd, (struct sockaddr *)&ss, &len) && ss.ss_family == AF_UNIX) {
			l->rd = event_new(base, fd, EV_READ | EV_PERSIST, unix_read_cb, l);
			if (!l->rd)
				goto out_free;
		}
	}
	bufferevent_setwatermark(l->bev, EV_READ, 0, LINK_READ_HIGH);
	/* libevent moves 16 KiB per system call by default; images move in megabytes. */
	bufferevent_set_max_single_read(l->bev, LINK_IO_MAX);
	bufferevent_set_max_single_write(l->bev, LINK_IO_MAX);
	return l;

out_free:
	really_free(l);
	l = NULL;
out_close:
	close(fd);
	errno = ENOMEM;
	return NULL;
}

/* Starts a non-blocking connect on a new socket; the link, or NULL with errno. */
static struct link *dial(struct event_base *base, const struct sockaddr_storage *ss,
			 socklen_t len, const char *peer, uint32_t timeout_ms,
			 const struct link_ops *ops, void *ctx)
{
	struct link *l;
	int fd, err;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (const struct sockaddr *)ss, len) && errno != EINPROGRESS) {
		err = errno;
		close(fd);
		errno = err;
		return NULL;
	}
	l = link_new(base, fd, peer, ops, ctx);
	if (!l)
		return NULL;
	l->state = LS_CONNECTING;
	/* With no address, libevent waits for the connect already started and reports it. */
	if (bufferevent_socket_connect(l->bev, NULL, 0)) {
		really_free(l);
		errno = ECONNREFUSED;
		return NULL;
	}
	bufferevent_enable(l->bev, l->rd ? EV_WRITE : EV_READ | EV_WRITE);
	reading(l, true);
	arm(l->timer, timeout_ms);
	return l;
}

struct link *link_connect(struct event_base *base, const struct gaddr *a, const char *peer,
			  uint32_t timeout_ms, const struct link_ops *ops, void *ctx)
{
	struct sockaddr_storage ss;
	struct link *l;
	socklen_t len;
	int rc = addr_sockaddr(a, &ss, &len);

	if (rc) {
		errno = -rc;
		return NULL;
	}
	l = dial(base, &ss, len, peer, timeout_ms, ops, ctx);
	if (l && a->kind == ADDR_HVSOCK)
		l->hv_port = a->port;
	return l;
}

struct link *link_connect_tcp(struct event_base *base, const char *host, uint16_t port,
			      const char *peer, uint32_t timeout_ms, const struct link_ops *ops,
			      void *ctx)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc = hostport_sockaddr(host, port, 0, &ss, &len);

	if (rc) {
		errno = -rc;
		return NULL;
	}
	return dial(base, &ss, len, peer, timeout_ms, ops, ctx);
}

struct link *link_accept(struct event_base *base, int fd, const char *peer,
			 const struct link_ops *ops, void *ctx)
{
	struct link *l = link_new(base, fd, peer, ops, ctx);

	if (!l)
		return NULL;
	l->state = LS_OPEN;
	bufferevent_enable(l->bev, l->rd ? EV_WRITE : EV_READ | EV_WRITE);
	reading(l, true);
	return l;
}

void link_close(struct link *l, const char *why)
{
	if (!l || l->state == LS_DEAD || l->state == LS_CLOSING)
		return;
	if (l->state != LS_OPEN) {
		/* Nothing was said yet: there are no last words to wait for. */
		l->state = LS_CLOSING;
		snprintf(l->why, sizeof(l->why), "%s", why);
		reading(l, false);
		if (l->bev) {
			bufferevent_free(l->bev);
			l->bev = NULL;
		}
		event_del(l->timer);
		event_active(l->kick, EV_TIMEOUT, 0);
		return;
	}
	l->state = LS_CLOSING;
	snprintf(l->why, sizeof(l->why), "%s", why);
	reading(l, false);
	event_del(l->timer);
	arm(l->timer, LINK_CLOSE_MS);
	/* Never call the owner back from inside its own call: the loop does it. */
	event_active(l->kick, EV_TIMEOUT, 0);
}

static long encode(struct link *l, const struct gmig_hdr *h, const struct gmig_msg *m,
		   uint8_t *head, size_t *tlen, const struct gmig_tail **tail)
{
	struct gmig_hdr hdr = *h;
	long n;

	if (!l || (l->state != LS_OPEN && l->state != LS_CLOSING) || !l->bev)
		return -ENOTCONN;
	*tail = gmig_msg_tail(m);
	*tlen = *tail ? (*tail)->len : 0;
	n = gmig_msg_encode_head(head, HEAD_MAX, &hdr, m);
	if (n < 0)
		return n == -EMSGSIZE ? -EMSGSIZE : -EINVAL;
	return n;
}

int link_send_copy(struct link *l, const struct gmig_hdr *h, const struct gmig_msg *m,
		   uint8_t *payload, size_t cap, size_t *len)
{
	struct evbuffer *out;
	const struct gmig_tail *tail;
	uint8_t head[HEAD_MAX];
	size_t tlen;
	long n = encode(l, h, m, head, &tlen, &tail);

	if (n < 0)
		return (int)n;
	out = bufferevent_get_output(l->bev);
	/* Room first, so that a frame is added whole or not at all. */
	if (evbuffer_expand(out, (size_t)n + tlen) || evbuffer_add(out, head, (size_t)n) ||
	    (tlen && evbuffer_add(out, tail->ptr, tlen)))
		return -ENOMEM;
	if (payload) {
		size_t fixed = (size_t)n - GMIG_HDR_SIZE;

		if (fixed + tlen > cap)
			return -EMSGSIZE;
		memcpy(payload, head + GMIG_HDR_SIZE, fixed);
		if (tlen)
			memcpy(payload + fixed, tail->ptr, tlen);
		*len = fixed + tlen;
	}
	l->tx_bytes += (size_t)n + tlen;
	l->tx_frames++;
	return 0;
}

int link_send(struct link *l, const struct gmig_hdr *h, const struct gmig_msg *m)
{
	return link_send_copy(l, h, m, NULL, 0, NULL);
}

void link_refuse(struct link *l, int code, uint16_t ref_type, uint64_t ref_seq, const char *text)
{
	struct gmig_hdr h = { .version = GMIG_VERSION_MIN };
	struct gmig_msg m;

	msg_error(&m, code, ref_type, ref_seq, text);
	link_send(l, &h, &m);
	link_close(l, text);
}

static void orphan_down(void *ctx, int err, const char *why)
{
	(void)err;
	(void)why;
	link_free(ctx);
}

static int orphan_frame(void *ctx, const struct gmig_frame *f)
{
	(void)ctx;
	(void)f;
	return LINK_CONTINUE;
}

static const struct link_ops orphan_ops = { .frame = orphan_frame, .down = orphan_down };

void link_close_detached(struct link *l, const char *why)
{
	if (!l)
		return;
	if (l->state == LS_DEAD) {
		link_free(l);
		return;
	}
	l->ops = &orphan_ops;
	l->ctx = l;
	if (!l->detached) {
		l->detached = true;
		l->next_detached = detached_head;
		l->prev_detached = &detached_head;
		if (detached_head)
			detached_head->prev_detached = &l->next_detached;
		detached_head = l;
	}
	link_close(l, why);
}

void link_free_detached(void)
{
	while (detached_head)
		link_free(detached_head);
}

size_t link_out_len(const struct link *l)
{
	if (!l || !l->bev)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(l->bev));
}

void link_set_low_water(struct link *l, size_t bytes)
{
	if (l && l->bev)
		bufferevent_setwatermark(l->bev, EV_WRITE, bytes, 0);
}

void link_pause(struct link *l)
{
	if (!l || l->paused)
		return;
	l->paused = true;
	if (l->bev && l->state == LS_OPEN)
		reading(l, false);
}

void link_resume(struct link *l)
{
	if (!l || !l->paused)
		return;
	l->paused = false;
	if (l->bev && l->state == LS_OPEN) {
		reading(l, true);
		/* Frames already buffered would wait for new bytes otherwise. */
		event_active(l->kick, EV_TIMEOUT, 0);
	}
}

void link_set_versions(struct link *l, uint8_t min, uint8_t max)
{
	gmig_decoder_set_versions(&l->dec, min, max);
}
