/*
 * The client link. One thread owns the socket and everything below `fd` in
 * struct gmig_link; it reads a frame, checks it, and runs its handler, which
 * answers or fails with an ERROR frame. A frame that breaks the protocol
 * (bad checksum, length, sequence, session, or a memfd without STAGING) ends
 * the session: ERROR, close, reconnect a second later. The program is never
 * touched by any of it beyond what the verbs do.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "gmig/message.h"
#include "kmod.h"
#include "link.h"
#include "log.h"
#include "precopy.h"
#include "restore.h"
#include "staging.h"

#define IN_SIZE		(64u << 10)	/* socket bytes read at once */
#define FDS_MAX		4		/* room for fds in one read; more than one is an error */
#define TEXT_HELD	160		/* bytes of text kept with a held ERROR */
#define DEFER_MAX	16		/* requests kept while a round runs, to answer in order */

/* A request that came while a round waited for slots; handled once the round is answered. */
struct deferred {
	struct gmig_hdr hdr;
	uint8_t *payload;
	int fd;				/* a STAGING frame's memfd, else -1 */
};

/* An error that happened while no session was up, told to the next one. */
struct held_error {
	int32_t code;
	char text[TEXT_HELD];
};

struct gmig_link {
	struct gmig_umd *u;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char name[33];
	pthread_t thread;
	int stop_fd;			/* an eventfd: readable once stop is asked */
	pthread_mutex_t lock;		/* protects fd and phase, which other threads look at */
	int fd;				/* the socket, -1 while down; gmig_link_stop shuts it down */
	int phase;			/* enum gmig_phase; only the link thread changes it */
	int kmod_fd;			/* registered with gmig.ko as a client; -1 without it */

	/* The link thread's alone from here on. */
	struct gmig_decoder dec;
	uint8_t *payload;
	uint8_t in[IN_SIZE];
	size_t in_off, in_len;
	uint64_t rx_pos;		/* stream offset of in[in_off] */
	int pending_fd;			/* a memfd waiting for its STAGING frame */
	uint64_t fd_lo, fd_hi;		/* the stream bytes that brought it */
	int frame_fd;			/* the memfd of the STAGING frame being handled */
	bool welcomed;
	uint8_t version;
	uint64_t session, tx_seq, rx_seq;
	int end;			/* why the session must end; 0 while it goes on */
	const char *why;		/* text for the ERROR a handler returns */

	struct gmig_staging_area staging;
	bool in_round, cancel_round;	/* cancel: an ABORT came during the round */
	struct deferred deferred[DEFER_MAX];
	uint32_t ndeferred;
	struct gmig_restore restore;
	struct gmig_totals restored;	/* RESTORED's answer, for a repeated RESTORE_END */
	uint32_t source_gpu;		/* the GPU released, matched against ATTACH's map */
	uint8_t target[GMIG_UUID_SIZE];	/* the GPU attached, for a repeated ATTACH */
	struct gmig_region told[GMIG_ARENA_REGIONS_MAX];	/* regions in the last INV_CLIENT */
	uint32_t ntold;
	bool told_valid;

	struct held_error held[GMIG_LINK_ERRORS_HELD];
	uint32_t nheld, dropped;
};

static void set_phase(struct gmig_link *l, int phase)
{
	pthread_mutex_lock(&l->lock);
	l->phase = phase;
	pthread_mutex_unlock(&l->lock);
}

int gmig_link_phase(struct gmig_link *l)
{
	int phase;

	pthread_mutex_lock(&l->lock);
	phase = l->phase;
	pthread_mutex_unlock(&l->lock);
	return phase;
}

/* --- sending --- */

static int send_all(int fd, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	while (mh.msg_iovlen) {
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		while (mh.msg_iovlen && (size_t)w >= mh.msg_iov->iov_len) {
			w -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + w;
			mh.msg_iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Sends one message; a failure ends the session. */
static int send_msg(struct gmig_link *l, const struct gmig_msg *m)
{
	uint8_t head[GMIG_HDR_SIZE + 128];
	struct gmig_hdr h = { .version = l->version, .session = l->session, .seq = l->tx_seq + 1 };
	const struct gmig_tail *tail = gmig_msg_tail(m);
	struct iovec iov[2];
	long n;
	int err;

	if (l->end)
		return l->end;
	n = gmig_msg_encode_head(head, sizeof(head), &h, m);
	if (n < 0)
		return (int)n;
	l->tx_seq++;
	iov[0] = (struct iovec){ head, (size_t)n };
	iov[1] = (struct iovec){ tail ? (void *)tail->ptr : NULL, tail ? tail->len : 0 };
	err = send_all(l->fd, iov, iov[1].iov_len ? 2 : 1);
	if (err)
		l->end = err;
	return err;
}

/* Text for an ERROR frame: printable, at most GMIG_TEXT_MAX bytes. */
static size_t clean_text(char *out, size_t cap, const char *text)
{
	size_t n = 0;

	for (; text && text[n] && n < cap; n++)
		out[n] = (uint8_t)text[n] < 0x20 || text[n] == 0x7f ? '?' : text[n];
	return n;
}

static int send_error(struct gmig_link *l, int32_t code, uint16_t ref_type, uint64_t ref_seq,
		      const char *text)
{
	char buf[GMIG_TEXT_MAX];
	struct gmig_msg m = { .type = GMIG_MSG_ERROR };
	size_t n = clean_text(buf, sizeof(buf), text);

	m.u.error = (struct gmig_error){ code < 0 ? code : -EIO, ref_type, ref_seq,
					 { n ? (uint8_t *)buf : NULL, (uint32_t)n } };
	return send_msg(l, &m);
}

/* Keeps an error for the next session's WELCOME; past the cap they are only counted. */
static void hold_error(struct gmig_link *l, int32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void hold_error(struct gmig_link *l, int32_t code, const char *fmt, ...)
{
	struct held_error *h;
	va_list ap;

	if (l->nheld == GMIG_LINK_ERRORS_HELD) {
		l->dropped++;
		return;
	}
	h = &l->held[l->nheld++];
	h->code = code;
	va_start(ap, fmt);
	vsnprintf(h->text, sizeof(h->text), fmt, ap);
	va_end(ap);
	gmig_log_debug("%s", h->text);
}

static void flush_held(struct gmig_link *l)
{
	char text[64];

	for (uint32_t i = 0; i < l->nheld; i++)
		send_error(l, l->held[i].code, 0, 0, l->held[i].text);
	if (l->dropped) {
		snprintf(text, sizeof(text), "%u more errors were dropped", l->dropped);
		send_error(l, -ENOBUFS, 0, 0, text);
	}
	l->nheld = 0;
	l->dropped = 0;
}

static int send_clients(struct gmig_link *l, uint16_t type)
{
	struct gmig_msg m = { .type = type };

	m.u.clients.clients = 1;
	return send_msg(l, &m);
}

/* INV_CLIENT with the regions now; they are remembered to tell growth later. */
static int send_inventory(struct gmig_link *l)
{
	uint8_t recs[GMIG_ARENA_REGIONS_MAX * GMIG_REC_region_SIZE];
	struct gmig_msg m = { .type = GMIG_MSG_INV_CLIENT };
	struct gmig_inv_client *ic = &m.u.inv_client;
	uint32_t gpu = l->source_gpu;
	struct gmig_bdev_info info;

	l->ntold = gmig_arena_regions(&l->u->arena, l->told, GMIG_ARENA_REGIONS_MAX);
	l->told_valid = true;
	for (uint32_t i = 0; i < l->ntold; i++) {
		struct gmig_rec_region r = { l->told[i].id, l->told[i].va, l->told[i].size,
					     l->told[i].chunk };

		gmig_rec_put_region(recs + i * GMIG_REC_region_SIZE, &r);
	}
	gmig_umd_device(l->u, &info, &gpu);
	*ic = (struct gmig_inv_client){ .index = 0, .count = 1, .pid = l->u->pid, .gpu = gpu };
	snprintf(ic->name, sizeof(ic->name), "%s", l->name);
	ic->tail = (struct gmig_tail){ l->ntold ? recs : NULL, l->ntold * GMIG_REC_region_SIZE };
	return send_msg(l, &m);
}

/* Whether the regions differ from the last INV_CLIENT: the agent must hear of growth before data. */
static bool regions_changed(struct gmig_link *l)
{
	struct gmig_region now[GMIG_ARENA_REGIONS_MAX];
	uint32_t n = gmig_arena_regions(&l->u->arena, now, GMIG_ARENA_REGIONS_MAX);

	if (!l->told_valid || n != l->ntold)
		return true;
	for (uint32_t i = 0; i < n; i++)
		if (now[i].id != l->told[i].id || now[i].va != l->told[i].va ||
		    now[i].size != l->told[i].size || now[i].chunk != l->told[i].chunk)
			return true;
	return false;
}

/* --- receiving --- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Takes the fds of a read; a memfd must be alone and none may be waiting. */
static int take_fds(struct gmig_link *l, struct msghdr *mh, size_t n)
{
	int fds[FDS_MAX], nfds = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && nfds < FDS_MAX; k++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
	}
	if (!nfds && !(mh->msg_flags & MSG_CTRUNC))
		return 0;
	if (nfds == 1 && l->pending_fd < 0 && !(mh->msg_flags & MSG_CTRUNC)) {
		l->pending_fd = fds[0];
		l->fd_lo = l->rx_pos;
		l->fd_hi = l->rx_pos + n;
		return 0;
	}
	while (nfds)
		close(fds[--nfds]);
	l->why = "more than one memfd at once";
	return -EPROTO;
}

/* Reads what the socket has, waiting until deadline (NULL: forever). */
static int recv_some(struct gmig_link *l, const struct timespec *deadline)
{
	struct pollfd p[2] = { { .fd = l->fd, .events = POLLIN }, { .fd = l->stop_fd, .events = POLLIN } };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * FDS_MAX)];
	} ctl;
	struct iovec iov = { l->in, sizeof(l->in) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;
	int rc;

	rc = poll(p, 2, deadline ? gmig_ms_until(deadline) : -1);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	if (p[1].revents)
		return -ECANCELED;
	if (!rc)
		return -ETIMEDOUT;
	n = recvmsg(l->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	rc = take_fds(l, &mh, (size_t)n);
	if (rc)
		return rc;
	if (!n) {
		l->why = "the agent closed the connection";
		return -ECONNRESET;
	}
	l->in_off = 0;
	l->in_len = (size_t)n;
	return 0;
}

/*
 * The rules every frame meets before its handler runs: the session, the next
 * sequence number (an old one is dropped: returns 1), and the memfd, which
 * must come with the first bytes of a STAGING frame and only with those. A
 * read that brings an fd may also bring the frames sent before it (the kernel
 * glues them in front and stops after the fd's bytes), so only a frame that
 * starts after that read, with the fd still unclaimed, gives it away.
 */
static int check_frame(struct gmig_link *l, const struct gmig_frame *f)
{
	uint64_t start = l->rx_pos - GMIG_HDR_SIZE - f->hdr.len;
	bool staging = f->hdr.type == GMIG_MSG_STAGING;

	if (l->welcomed && f->hdr.session != l->session) {
		l->why = "wrong session id";
		return -EPROTO;
	}
	if (f->hdr.seq <= l->rx_seq)
		return 1;
	if (f->hdr.seq != l->rx_seq + 1) {
		l->why = "sequence gap";
		return -EPROTO;
	}
	l->rx_seq = f->hdr.seq;
	if (l->pending_fd >= 0 && staging && start >= l->fd_lo && start < l->fd_hi) {
		l->frame_fd = l->pending_fd;
		l->pending_fd = -1;
		return 0;
	}
	if (staging) {
		l->why = "STAGING without its memfd";
		return -EPROTO;
	}
	if (l->pending_fd >= 0 && start >= l->fd_hi) {
		l->why = "a memfd came with a frame that is not STAGING";
		return -EPROTO;
	}
	return 0;
}

/* The next frame that passes check_frame; an error ends the session. */
static int next_frame(struct gmig_link *l, struct gmig_frame *f, const struct timespec *deadline)
{
	size_t used;
	int rc;

	for (;;) {
		while (l->in_off < l->in_len) {
			rc = gmig_decoder_feed(&l->dec, l->in + l->in_off, l->in_len - l->in_off, &used, f);
			l->in_off += used;
			l->rx_pos += used;
			if (rc < 0) {
				l->why = gmig_proto_strerror(rc);
				return rc;
			}
			if (rc == 1) {
				rc = check_frame(l, f);
				if (rc <= 0)
					return rc;
			}
		}
		rc = recv_some(l, deadline);
		if (rc)
			return rc;
	}
}

/* --- handlers: 0, or a negative errno answered with ERROR (text in l->why) --- */

static int fail(struct gmig_link *l, int err, const char *why)
{
	l->why = why;
	return err;
}

static int on_ping(struct gmig_link *l, const struct gmig_msg *m)
{
	struct gmig_msg r = { .type = GMIG_MSG_PONG };

	r.u.nonce.nonce = m->u.nonce.nonce;
	return send_msg(l, &r);
}

static int on_ignore(struct gmig_link *l, const struct gmig_msg *m)
{
	(void)l;
	(void)m;
	return 0;
}

static int on_error(struct gmig_link *l, const struct gmig_msg *m)
{
	(void)l;
	gmig_log_debug("agent reports %s: %d %.*s", gmig_msg_name(m->u.error.ref_type), m->u.error.code,
		       (int)m->u.error.tail.len, m->u.error.tail.len ? (const char *)m->u.error.tail.ptr : "");
	return 0;
}

static int on_bye(struct gmig_link *l, const struct gmig_msg *m)
{
	l->end = m->u.code.code ? m->u.code.code : -ECONNRESET;
	l->why = "the agent ended the session";
	return 0;
}

static int on_inv_request(struct gmig_link *l, const struct gmig_msg *m)
{
	(void)m;
	return send_inventory(l);
}

/* Drops the staging area, first unpinning it where the backend had pinned it. */
static void staging_drop(struct gmig_link *l)
{
	if (l->staging.mem)
		gmig_umd_host_unregister(l->u, l->staging.mem, l->staging.size);
	gmig_staging_unmap(&l->staging);
}

static int on_staging(struct gmig_link *l, const struct gmig_msg *m)
{
	int fd = l->frame_fd, err;

	l->frame_fd = -1;
	if (l->restore.active || memchr(l->staging.state, GMIG_SLOT_SENT, sizeof(l->staging.state))) {
		close(fd);
		return fail(l, -EBUSY, "staging slots are in use");
	}
	staging_drop(l);
	/* Pinned staging from gmig.ko, else the agent's sealed memfd. */
	err = gmig_kmod_staging_map(&l->staging, fd, m->u.staging.slots, m->u.staging.slot_size);
	if (err == -ENOTTY)
		err = gmig_staging_map(&l->staging, fd, m->u.staging.slots,
				       m->u.staging.slot_size);
	if (err)
		return fail(l, err, "the staging memfd must be sealed against shrinking (F_SEAL_SHRINK) "
			    "and hold 2 x slots x slot_size bytes");
	/* Transfers run at the bus's rate only from pinned memory; unpinned they still work. */
	err = gmig_umd_host_register(l->u, l->staging.mem, l->staging.size);
	if (err)
		gmig_log_debug("staging not pinned for transfers: %s", strerror(-err));
	return send_inventory(l);
}

static int on_slot_free(struct gmig_link *l, const struct gmig_msg *m)
{
	if (gmig_staging_freed(&l->staging, m->u.slot.slot))
		return fail(l, -EPROTO, "SLOT_FREE for a slot that is not out");
	return 0;
}

static int pump(struct gmig_link *l, const struct timespec *deadline);

static int sink_take(void *ctx, uint32_t *slot, uint8_t **mem)
{
	struct gmig_link *l = ctx;
	struct timespec deadline = gmig_deadline_ms(GMIG_LINK_SLOT_WAIT_MS);
	int err;

	for (;;) {
		if (l->end)
			return l->end;
		if (l->cancel_round)
			return -ECANCELED;
		if (!gmig_staging_take(&l->staging, slot)) {
			*mem = gmig_staging_slot(&l->staging, *slot);
			return 0;
		}
		err = pump(l, &deadline);
		if (err == -ETIMEDOUT) {
			l->end = err;
			l->why = "no staging slot came back in time";
		}
		if (err)
			return err;
	}
}

static int sink_staged(void *ctx, const struct gmig_staged *st)
{
	struct gmig_link *l = ctx;
	struct gmig_msg m = { .type = GMIG_MSG_STAGED };
	int err;

	m.u.staged = *st;
	err = send_msg(l, &m);
	if (!err && st->encoding == GMIG_ENC_RAW)
		gmig_staging_sent(&l->staging, st->slot);
	return err;
}

static void sink_put(void *ctx, uint32_t slot)
{
	struct gmig_link *l = ctx;

	gmig_staging_put(&l->staging, slot);
}

static int on_round_begin(struct gmig_link *l, const struct gmig_msg *m)
{
	struct gmig_sink sink = { l, l->staging.slot_size, sink_take, sink_staged, sink_put };
	struct gmig_msg r = { .type = GMIG_MSG_ROUND_END };
	int err;

	if (!l->staging.mem)
		return fail(l, -ENOBUFS, "no staging area yet");
	switch (l->phase) {
	case GMIG_PHASE_IDLE:
	case GMIG_PHASE_PRECOPY:
		set_phase(l, GMIG_PHASE_PRECOPY);
		break;
	case GMIG_PHASE_FROZEN:
		break;
	default:
		return fail(l, -EBUSY, "no device memory to send after release");
	}
	if (regions_changed(l)) {
		err = send_inventory(l);
		if (err)
			return err;
	}
	l->in_round = true;
	l->cancel_round = false;
	err = gmig_precopy_round(l->u, m->u.round_begin.round, m->u.round_begin.base, &sink,
				 &r.u.round_end);
	l->in_round = false;
	/* The ABORT that cancelled it waits among the deferred requests, answered after this. */
	if (l->cancel_round)
		return fail(l, -ECANCELED, "the round was aborted");
	if (err)
		return fail(l, err, "the round failed");
	return send_msg(l, &r);
}

static int on_freeze(struct gmig_link *l, const struct gmig_msg *m)
{
	struct gmig_msg r = { .type = GMIG_MSG_FROZEN };
	int err;

	switch (l->phase) {
	case GMIG_PHASE_IDLE:
	case GMIG_PHASE_PRECOPY:
		err = gmig_umd_freeze(l->u, m->u.freeze.deadline_ms);
		if (err == -ETIMEDOUT)
			return fail(l, err, "no safe point before the deadline; the program runs on");
		if (err)
			return fail(l, err, "the freeze failed; the program runs on");
		set_phase(l, GMIG_PHASE_FROZEN);
		/* Gate closed, work drained: ack the kernel's barrier too (no-op without it). */
		gmig_kmod_frozen(l->kmod_fd);
		break;
	default:
		break;
	}
	r.u.frozen = (struct gmig_frozen){ 0, 1, l->u->pid,
					   { l->u->blob, (uint32_t)l->u->blob_len } };
	return send_msg(l, &r);
}

static int on_thaw(struct gmig_link *l, const struct gmig_msg *m)
{
	(void)m;
	switch (l->phase) {
	case GMIG_PHASE_RELEASED:
	case GMIG_PHASE_ATTACHED:
		return fail(l, -EBUSY, "no restored device to run on: attach and restore first");
	default:
		gmig_umd_thaw(l->u);
		set_phase(l, GMIG_PHASE_IDLE);
		return send_clients(l, GMIG_MSG_THAWED);
	}
}

static int on_release(struct gmig_link *l, const struct gmig_msg *m)
{
	(void)m;
	switch (l->phase) {
	case GMIG_PHASE_IDLE:
	case GMIG_PHASE_PRECOPY:
		return fail(l, -EBUSY, "release needs a freeze first");
	case GMIG_PHASE_RELEASED:
		break;
	default:
		if (l->phase == GMIG_PHASE_FROZEN)
			gmig_umd_device(l->u, &(struct gmig_bdev_info){ 0 }, &l->source_gpu);
		gmig_umd_release(l->u);
		gmig_restore_clear(&l->restore);
		set_phase(l, GMIG_PHASE_RELEASED);
		break;
	}
	return send_clients(l, GMIG_MSG_RELEASED);
}

/* The target for this client: the map entry from its GPU, or the only entry there is. */
static const uint8_t *pick_target(struct gmig_link *l, const struct gmig_attach *a,
				  struct gmig_rec_gpu_map *rec)
{
	uint32_t n = gmig_rec_count(&a->tail, GMIG_REC_gpu_map_SIZE);

	for (uint32_t i = 0; i < n; i++) {
		gmig_rec_get_gpu_map(&a->tail, i, rec);
		if (rec->from == l->source_gpu)
			return rec->uuid;
	}
	if (n == 1)
		return rec->uuid;
	return NULL;
}

static int on_attach(struct gmig_link *l, const struct gmig_msg *m)
{
	struct gmig_rec_gpu_map rec;
	const uint8_t *uuid = pick_target(l, &m->u.attach, &rec);
	int err;

	if (!uuid)
		return fail(l, -ENODEV, "the map names no target for this client's GPU");
	switch (l->phase) {
	case GMIG_PHASE_RELEASED:
		err = gmig_umd_attach(l->u, uuid);
		if (err == -ENODEV)
			return fail(l, err, "cannot open the target GPU");
		if (err == -ESTALE)
			return fail(l, err, "the program changed while frozen");
		if (err)
			return fail(l, err, "cannot map the arena on the target GPU");
		memcpy(l->target, uuid, sizeof(l->target));
		set_phase(l, GMIG_PHASE_ATTACHED);
		break;
	case GMIG_PHASE_ATTACHED:
	case GMIG_PHASE_RESTORED:
		if (memcmp(l->target, uuid, sizeof(l->target)))
			return fail(l, -EBUSY, "attached to another GPU; release first");
		break;
	default:
		return fail(l, -EBUSY, "attach needs a release first");
	}
	return send_clients(l, GMIG_MSG_ATTACHED);
}

static int on_restore_begin(struct gmig_link *l, const struct gmig_msg *m)
{
	int err;

	if (l->phase != GMIG_PHASE_ATTACHED && l->phase != GMIG_PHASE_RESTORED)
		return fail(l, -EBUSY, "restore needs an attached GPU");
	err = gmig_restore_begin(&l->restore, l->u, &m->u.restore_begin);
	if (err)
		return fail(l, err, "the manifest does not match this client's regions");
	set_phase(l, GMIG_PHASE_ATTACHED);
	return 0;
}

static int on_staged(struct gmig_link *l, const struct gmig_msg *m)
{
	const struct gmig_staged *s = &m->u.staged;
	bool raw = s->encoding == GMIG_ENC_RAW;
	struct gmig_msg r = { .type = GMIG_MSG_SLOT_FREE };
	int err;

	if (!l->restore.active)
		return fail(l, -EPROTO, "STAGED outside a restore");
	if (raw && (!gmig_staging_is_agent_slot(&l->staging, s->slot) || s->length > l->staging.slot_size))
		return fail(l, -ERANGE, "STAGED names a slot out of range");
	err = gmig_restore_apply(&l->restore, l->u, s->region, s->offset, s->length,
				 raw ? gmig_staging_slot(&l->staging, s->slot) : NULL);
	if (raw) {
		/* Done with the slot either way: the bytes are written or refused. */
		r.u.slot.slot = s->slot;
		send_msg(l, &r);
	}
	if (err)
		return fail(l, err, "STAGED outside the region's bounds");
	return 0;
}

static int on_restore_end(struct gmig_link *l, const struct gmig_msg *m)
{
	struct gmig_msg r = { .type = GMIG_MSG_RESTORED };
	int err;

	(void)m;
	if (l->phase == GMIG_PHASE_ATTACHED) {
		err = gmig_restore_end(&l->restore, &l->restored);
		if (err == -ENODATA)
			return fail(l, err, "the restore left bytes of the arena unwritten");
		if (err)
			return fail(l, err, "no restore in progress");
		set_phase(l, GMIG_PHASE_RESTORED);
	} else if (l->phase != GMIG_PHASE_RESTORED) {
		return fail(l, -EPROTO, "no restore in progress");
	}
	r.u.totals = l->restored;
	return send_msg(l, &r);
}

static int on_abort(struct gmig_link *l, const struct gmig_msg *m)
{
	struct gmig_msg r = { .type = GMIG_MSG_ABORTED };
	int from = l->phase;

	(void)m;
	if (from == GMIG_PHASE_RELEASED || from == GMIG_PHASE_ATTACHED)
		return fail(l, -EBUSY, "released: the host must attach and restore first");
	gmig_umd_thaw(l->u);
	gmig_restore_clear(&l->restore);
	set_phase(l, GMIG_PHASE_IDLE);
	r.u.rollback = (struct gmig_rollback){ (uint8_t)from, 1 };
	return send_msg(l, &r);
}

typedef int (*handler_fn)(struct gmig_link *l, const struct gmig_msg *m);

/* What the agent may send, and what it may send while a round waits for slots. */
static const struct handler {
	uint16_t type;
	bool in_round;
	handler_fn fn;
} handlers[] = {
	{ GMIG_MSG_PING, true, on_ping },
	{ GMIG_MSG_PONG, true, on_ignore },
	{ GMIG_MSG_ERROR, true, on_error },
	{ GMIG_MSG_BYE, true, on_bye },
	{ GMIG_MSG_INV_REQUEST, false, on_inv_request },
	{ GMIG_MSG_STAGING, false, on_staging },
	{ GMIG_MSG_SLOT_FREE, true, on_slot_free },
	{ GMIG_MSG_ROUND_BEGIN, false, on_round_begin },
	{ GMIG_MSG_FREEZE, false, on_freeze },
	{ GMIG_MSG_THAW, false, on_thaw },
	{ GMIG_MSG_RELEASE, false, on_release },
	{ GMIG_MSG_ATTACH, false, on_attach },
	{ GMIG_MSG_RESTORE_BEGIN, false, on_restore_begin },
	{ GMIG_MSG_STAGED, false, on_staged },
	{ GMIG_MSG_RESTORE_END, false, on_restore_end },
	{ GMIG_MSG_ABORT, false, on_abort },
};

static int on_welcome(struct gmig_link *l, const struct gmig_frame *f, const struct gmig_msg *m)
{
	const struct gmig_welcome *w = &m->u.welcome;

	if (m->type == GMIG_MSG_ERROR) {
		on_error(l, m);
		l->why = "the agent refused the session";
		return l->end = -ECONNREFUSED;
	}
	if (m->type != GMIG_MSG_WELCOME || w->role != GMIG_ROLE_AGENT || w->version < GMIG_VERSION_MIN ||
	    w->version > GMIG_VERSION_MAX || (f->hdr.session && f->hdr.session != w->session)) {
		l->why = "expected WELCOME from an agent";
		return l->end = -EPROTO;
	}
	l->welcomed = true;
	l->session = w->session;
	l->version = (uint8_t)w->version;
	gmig_decoder_set_versions(&l->dec, l->version, l->version);
	gmig_log_debug("session %016llx with the agent", (unsigned long long)l->session);
	flush_held(l);
	return 0;
}

/*
 * Keeps a request that came during a round, to handle after the round is
 * answered: every request is answered in the order it came. An ABORT among
 * them cuts the round short.
 */
static int defer(struct gmig_link *l, const struct gmig_frame *f)
{
	struct deferred *d;

	if (l->ndeferred == DEFER_MAX) {
		close_fd(&l->frame_fd);
		l->why = "too many requests during a round";
		send_error(l, -EOVERFLOW, f->hdr.type, f->hdr.seq, l->why);
		return l->end = -EOVERFLOW;
	}
	d = &l->deferred[l->ndeferred];
	d->payload = malloc(f->hdr.len ? f->hdr.len : 1);
	if (!d->payload) {
		close_fd(&l->frame_fd);
		l->why = "out of memory";
		return l->end = -ENOMEM;
	}
	memcpy(d->payload, f->payload, f->hdr.len);
	d->hdr = f->hdr;
	d->fd = l->frame_fd;
	l->frame_fd = -1;
	l->ndeferred++;
	if (f->hdr.type == GMIG_MSG_ABORT)
		l->cancel_round = true;
	return 0;
}

static void drop_deferred(struct gmig_link *l)
{
	for (uint32_t i = 0; i < l->ndeferred; i++) {
		free(l->deferred[i].payload);
		close_fd(&l->deferred[i].fd);
	}
	l->ndeferred = 0;
}

static int handle(struct gmig_link *l, const struct gmig_frame *f);

/* Handles the oldest deferred request. */
static int run_deferred(struct gmig_link *l)
{
	struct deferred d = l->deferred[0];
	struct gmig_frame f = { d.hdr, d.payload };
	int err;

	memmove(&l->deferred[0], &l->deferred[1], --l->ndeferred * sizeof(d));
	l->frame_fd = d.fd;
	err = handle(l, &f);
	free(d.payload);
	return err;
}

/* Decodes and handles one frame; a bad payload ends the session like a bad frame. */
static int handle(struct gmig_link *l, const struct gmig_frame *f)
{
	const struct handler *h = NULL;
	struct gmig_msg m;
	int err;

	l->why = NULL;
	err = gmig_msg_decode(f, &m);
	if (err) {
		close_fd(&l->frame_fd);
		l->why = gmig_proto_strerror(err);
		send_error(l, err, f->hdr.type, f->hdr.seq, l->why);
		return l->end = err;
	}
	if (!l->welcomed)
		return on_welcome(l, f, &m);
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (handlers[i].type == m.type)
			h = &handlers[i];
	if (h && l->in_round && !h->in_round)
		return defer(l, f);
	if (!h)
		err = fail(l, -EPROTO, "a client does not take this message");
	else
		err = h->fn(l, &m);
	close_fd(&l->frame_fd);
	if (err && !l->end) {
		gmig_log_debug("%s: %s", gmig_msg_name(m.type), l->why ? l->why : strerror(-err));
		send_error(l, err, f->hdr.type, f->hdr.seq, l->why);
	}
	return l->end;
}

/* Reads and handles one frame; an error that ends the session is answered first when it can be. */
static int pump(struct gmig_link *l, const struct timespec *deadline)
{
	struct gmig_frame f;
	int err = next_frame(l, &f, deadline);

	if (err == -ETIMEDOUT)
		return err;
	if (err) {
		if (err != -ECANCELED && err != -ECONNRESET)
			send_error(l, err, 0, 0, l->why);
		return l->end = err;
	}
	return handle(l, &f);
}

/* --- the connection --- */

static int connect_agent(struct gmig_link *l)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { GMIG_LINK_SEND_TIMEOUT_MS / 1000, 0 };
	int fd;

	memcpy(sa.sun_path, l->path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;

		close(fd);
		return err;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	pthread_mutex_lock(&l->lock);
	l->fd = fd;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static int session(struct gmig_link *l)
{
	struct gmig_msg hello = { .type = GMIG_MSG_HELLO };

	gmig_decoder_init(&l->dec, l->payload, GMIG_PAYLOAD_MAX);
	/* HELLO and WELCOME carry the sender's lowest version, whatever it is. */
	gmig_decoder_set_versions(&l->dec, 1, UINT8_MAX);
	l->in_off = l->in_len = 0;
	l->rx_pos = 0;
	l->welcomed = false;
	l->version = GMIG_VERSION_MIN;
	l->session = l->tx_seq = l->rx_seq = 0;
	l->end = 0;
	l->why = NULL;
	l->told_valid = false;

	hello.u.hello = (struct gmig_hello){ .min_version = GMIG_VERSION_MIN,
					     .max_version = GMIG_VERSION_MAX,
					     .role = GMIG_ROLE_CLIENT, .caps = GMIG_CAP_SHM };
	snprintf(hello.u.hello.name, sizeof(hello.u.hello.name), "%s", l->name);
	send_msg(l, &hello);
	while (!l->end) {
		if (l->ndeferred)
			run_deferred(l);
		else
			pump(l, NULL);
	}
	return l->end;
}

/* After a session: drop its resources, and thaw a program that still holds its device. */
static void session_down(struct gmig_link *l, int why)
{
	pthread_mutex_lock(&l->lock);
	close_fd(&l->fd);
	pthread_mutex_unlock(&l->lock);
	close_fd(&l->pending_fd);
	close_fd(&l->frame_fd);
	staging_drop(l);
	gmig_restore_clear(&l->restore);
	drop_deferred(l);
	l->in_round = l->cancel_round = false;
	gmig_log_debug("link down: %s", l->why ? l->why : strerror(-why));

	switch (l->phase) {
	case GMIG_PHASE_FROZEN:
	case GMIG_PHASE_RESTORED:
		gmig_umd_thaw(l->u);
		hold_error(l, -ECONNRESET, "the agent link dropped while frozen; the program thawed itself");
		set_phase(l, GMIG_PHASE_IDLE);
		break;
	case GMIG_PHASE_RELEASED:
	case GMIG_PHASE_ATTACHED:
		hold_error(l, -ECONNRESET, "the agent link dropped after release; waiting to be attached and restored");
		break;
	default:
		set_phase(l, GMIG_PHASE_IDLE);
		break;
	}
}

/* Waits ms or until stop; true on stop. */
static bool wait_stop(struct gmig_link *l, int ms)
{
	struct pollfd p = { .fd = l->stop_fd, .events = POLLIN };

	while (poll(&p, 1, ms) < 0 && errno == EINTR)
		;
	return p.revents;
}

static void *link_main(void *arg)
{
	struct gmig_link *l = arg;
	bool told = false;
	int err;

	do {
		err = connect_agent(l);
		if (err) {
			if (!told)
				gmig_log_debug("no agent at %s (%s); retrying every second", l->path,
					       strerror(-err));
			told = true;
			continue;
		}
		told = false;
		session_down(l, session(l));
	} while (!wait_stop(l, GMIG_LINK_RETRY_MS));
	return NULL;
}

int gmig_link_start(struct gmig_link **lp, struct gmig_umd *u, const char *path, const char *name)
{
	struct gmig_link *l;
	sigset_t all, old;
	int err = -ENOMEM;

	if (strlen(path) >= sizeof(l->path))
		return -ENAMETOOLONG;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->u = u;
	memcpy(l->path, path, strlen(path) + 1);
	clean_text(l->name, sizeof(l->name) - 1, name);
	l->fd = l->pending_fd = l->frame_fd = -1;
	l->phase = GMIG_PHASE_IDLE;
	/* Optional: the kernel then tells the agent when this process is gone. */
	l->kmod_fd = gmig_kmod_open();
	if (l->kmod_fd < 0)
		l->kmod_fd = -1;
	gmig_restore_init(&l->restore);
	pthread_mutex_init(&l->lock, NULL);
	l->payload = malloc(GMIG_PAYLOAD_MAX);
	if (!l->payload)
		goto out_free;
	l->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (l->stop_fd < 0) {
		err = -errno;
		goto out_payload;
	}
	/* The link thread takes no signals: the program's handlers run on its own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&l->thread, NULL, link_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto out_stop_fd;
	*lp = l;
	return 0;

out_stop_fd:
	close(l->stop_fd);
out_payload:
	free(l->payload);
out_free:
	gmig_kmod_close(l->kmod_fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return err;
}

void gmig_link_stop(struct gmig_link *l)
{
	uint64_t one = 1;

	if (!l)
		return;
	if (write(l->stop_fd, &one, sizeof(one)) != sizeof(one))
		gmig_log_debug("link stop: %s", strerror(errno));
	/* Unblocks a send the agent is not reading. */
	pthread_mutex_lock(&l->lock);
	if (l->fd >= 0)
		shutdown(l->fd, SHUT_RDWR);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	close(l->stop_fd);
	free(l->payload);
	gmig_kmod_close(l->kmod_fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
