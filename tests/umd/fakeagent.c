/* A fake gmig-agent for libgmig's link tests, speaking the client link with the real codecs. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fakeagent.h"

void fa_listen(struct fake *f, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->fd = f->memfd = -1;
	snprintf(f->path, sizeof(f->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->lfd, 0);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->lfd, 4), 0);
	f->payload = malloc(GMIG_PAYLOAD_MAX);
}

static void drop_conn(struct fake *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->stage)
		munmap(f->stage, 2ull * f->slots * f->slot_size);
	f->stage = NULL;
	if (f->memfd >= 0)
		close(f->memfd);
	f->memfd = -1;
	memset(f->agent_slot_out, 0, sizeof(f->agent_slot_out));
}

void fa_close(struct fake *f)
{
	drop_conn(f);
	if (f->lfd >= 0)
		close(f->lfd);
	f->lfd = -1;
	unlink(f->path);
	free(f->payload);
	free(f->image);
	f->payload = NULL;
	f->image = NULL;
}

bool fa_accept(struct fake *f, int timeout_ms)
{
	struct pollfd p = { .fd = f->lfd, .events = POLLIN };
	struct gmig_msg m;

	drop_conn(f);
	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	f->fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(f->fd, 0);
	gmig_decoder_init(&f->dec, f->payload, GMIG_PAYLOAD_MAX);
	f->in_off = f->in_len = 0;
	f->tx_seq = 0;
	fa_expect(f, GMIG_MSG_HELLO, &m);
	ck_assert_uint_eq(m.u.hello.role, GMIG_ROLE_CLIENT);
	ck_assert_uint_eq(m.u.hello.session, 0);
	ck_assert(m.u.hello.caps & GMIG_CAP_SHM);
	ck_assert_uint_eq(f->last.session, 0);
	ck_assert_uint_eq(f->last.seq, 1);
	snprintf(f->name, sizeof(f->name), "%s", m.u.hello.name);
	return true;
}

size_t fa_encode(struct fake *f, const struct gmig_msg *m, uint8_t *buf, size_t cap)
{
	struct gmig_hdr h = { .version = 1, .session = FA_SESSION, .seq = ++f->tx_seq };
	long n = gmig_msg_encode(buf, cap, &h, m);

	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

void fa_send_bytes(struct fake *f, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = send(f->fd, b, n, MSG_NOSIGNAL);

		ck_assert_int_gt(w, 0);
		b += w;
		n -= (size_t)w;
	}
}

void fa_send(struct fake *f, const struct gmig_msg *m)
{
	static uint8_t buf[GMIG_HDR_SIZE + (1 << 16)];

	fa_send_bytes(f, buf, fa_encode(f, m, buf, sizeof(buf)));
}

void fa_send_fd(struct fake *f, const struct gmig_msg *m, int fd)
{
	uint8_t buf[GMIG_HDR_SIZE + 256];
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { buf, fa_encode(f, m, buf, sizeof(buf)) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ck_assert_int_eq(sendmsg(f->fd, &mh, MSG_NOSIGNAL), (ssize_t)iov.iov_len);
}

void fa_welcome(struct fake *f)
{
	struct gmig_msg m = { .type = GMIG_MSG_WELCOME };

	m.u.welcome = (struct gmig_welcome){ .version = 1, .role = GMIG_ROLE_AGENT,
					     .caps = GMIG_CAP_SHM, .session = FA_SESSION };
	memset(m.u.welcome.token, 0x77, sizeof(m.u.welcome.token));
	fa_send(f, &m);
}

void fa_staging(struct fake *f, uint32_t slots, uint32_t slot_size, int seals)
{
	struct gmig_msg m = { .type = GMIG_MSG_STAGING };
	uint64_t size = 2ull * slots * slot_size;
	int fd = memfd_create("fake-staging", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	if (f->stage)
		munmap(f->stage, 2ull * f->slots * f->slot_size);
	if (f->memfd >= 0)
		close(f->memfd);
	f->stage = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(f->stage != MAP_FAILED);
	f->memfd = fd;
	f->slots = slots;
	f->slot_size = slot_size;
	m.u.staging = (struct gmig_staging){ slots, slot_size };
	fa_send_fd(f, &m, fd);
}

/* Takes an INV_CLIENT: the client's pid, GPU and region, the image grown to fit. */
static void take_inventory(struct fake *f, const struct gmig_msg *m)
{
	const struct gmig_inv_client *ic = &m->u.inv_client;

	ck_assert_uint_eq(ic->index, 0);
	ck_assert_uint_eq(ic->count, 1);
	f->pid = ic->pid;
	f->gpu = ic->gpu;
	f->nregions = gmig_rec_count(&ic->tail, GMIG_REC_region_SIZE);
	ck_assert_uint_le(f->nregions, 1);
	if (f->nregions) {
		gmig_rec_get_region(&ic->tail, 0, &f->region);
		if (f->region.size > f->image_cap) {
			f->image = realloc(f->image, f->region.size);
			memset(f->image + f->image_cap, 0xee, f->region.size - f->image_cap);
			f->image_cap = f->region.size;
		}
	}
	f->inventories++;
}

void fa_open(struct fake *f)
{
	struct gmig_msg m;

	ck_assert(fa_accept(f, FA_TIMEOUT_MS));
	fa_welcome(f);
	fa_staging(f, 4, 256 << 10, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	fa_expect(f, GMIG_MSG_INV_CLIENT, &m);
}

int fa_recv(struct fake *f, struct gmig_msg *m, int timeout_ms)
{
	struct pollfd p = { .fd = f->fd, .events = POLLIN };
	struct gmig_frame fr;
	size_t used;
	ssize_t n;
	int rc;

	for (;;) {
		while (f->in_off < f->in_len) {
			rc = gmig_decoder_feed(&f->dec, f->in + f->in_off, f->in_len - f->in_off, &used, &fr);
			f->in_off += used;
			ck_assert_msg(rc >= 0, "the client sent a bad frame: %s", gmig_proto_strerror(rc));
			if (rc == 1) {
				ck_assert_int_eq(gmig_msg_decode(&fr, m), 0);
				f->last = fr.hdr;
				if (m->type == GMIG_MSG_INV_CLIENT)
					take_inventory(f, m);
				return m->type;
			}
		}
		if (poll(&p, 1, timeout_ms) != 1)
			return -ETIMEDOUT;
		n = recv(f->fd, f->in, sizeof(f->in), 0);
		if (n <= 0)
			return 0;
		f->in_off = 0;
		f->in_len = (size_t)n;
	}
}

void fa_expect(struct fake *f, uint16_t want, struct gmig_msg *m)
{
	int type = fa_recv(f, m, FA_TIMEOUT_MS);

	if (type == GMIG_MSG_ERROR && want != GMIG_MSG_ERROR)
		ck_abort_msg("expected %s, got ERROR %d about %s: %.*s", gmig_msg_name(want),
			     m->u.error.code, gmig_msg_name(m->u.error.ref_type),
			     (int)m->u.error.tail.len, m->u.error.tail.len ? (const char *)m->u.error.tail.ptr : "");
	ck_assert_msg(type == want, "expected %s, got %s (%d)", gmig_msg_name(want),
		      type > 0 ? gmig_msg_name((uint16_t)type) : "nothing", type);
}

void fa_expect_error(struct fake *f, int32_t code, uint16_t ref_type)
{
	struct gmig_msg m;

	fa_expect(f, GMIG_MSG_ERROR, &m);
	ck_assert_msg(m.u.error.code == code, "ERROR %d, want %d: %.*s", m.u.error.code, code,
		      (int)m.u.error.tail.len, m.u.error.tail.len ? (const char *)m.u.error.tail.ptr : "");
	ck_assert_msg(m.u.error.ref_type == ref_type, "ERROR about %s, want %s",
		      gmig_msg_name(m.u.error.ref_type), gmig_msg_name(ref_type));
	ck_assert_uint_gt(m.u.error.tail.len, 0);
}

void fa_expect_closed(struct fake *f)
{
	struct gmig_msg m;

	ck_assert_int_eq(fa_recv(f, &m, FA_TIMEOUT_MS), 0);
}

void fa_apply_staged(struct fake *f, const struct gmig_staged *s, bool free_slot)
{
	struct gmig_msg r = { .type = GMIG_MSG_SLOT_FREE };

	ck_assert_uint_eq(s->region, f->region.id);
	ck_assert_uint_le(s->offset + s->length, f->region.size);
	if (s->encoding == GMIG_ENC_ZERO) {
		memset(f->image + s->offset, 0, s->length);
		f->staged_zero++;
		return;
	}
	ck_assert_uint_lt(s->slot, f->slots);
	ck_assert_uint_le(s->length, f->slot_size);
	memcpy(f->image + s->offset, f->stage + (size_t)s->slot * f->slot_size, s->length);
	f->staged_raw++;
	if (free_slot) {
		r.u.slot.slot = s->slot;
		fa_send(f, &r);
	}
}

void fa_round(struct fake *f, uint32_t round, uint32_t base, struct gmig_round_end *end)
{
	struct gmig_msg m = { .type = GMIG_MSG_ROUND_BEGIN };
	int type;

	m.u.round_begin = (struct gmig_round_begin){ round, base };
	fa_send(f, &m);
	for (;;) {
		type = fa_recv(f, &m, FA_TIMEOUT_MS);
		if (type == GMIG_MSG_STAGED) {
			fa_apply_staged(f, &m.u.staged, true);
			continue;
		}
		if (type == GMIG_MSG_INV_CLIENT)
			continue;
		break;
	}
	ck_assert_msg(type == GMIG_MSG_ROUND_END, "round %u ended with %s", round,
		      type > 0 ? gmig_msg_name((uint16_t)type) : "nothing");
	ck_assert_uint_eq(m.u.round_end.round, round);
	if (end)
		*end = m.u.round_end;
}

/* Waits for SLOT_FREE frames until agent slot `want` is back (any slot if want is UINT32_MAX). */
static void wait_slot_free(struct fake *f, uint32_t want)
{
	struct gmig_msg m;

	for (;;) {
		fa_expect(f, GMIG_MSG_SLOT_FREE, &m);
		ck_assert_uint_ge(m.u.slot.slot, f->slots);
		ck_assert_uint_lt(m.u.slot.slot, 2 * f->slots);
		ck_assert(f->agent_slot_out[m.u.slot.slot]);
		f->agent_slot_out[m.u.slot.slot] = false;
		if (want == UINT32_MAX || m.u.slot.slot == want)
			return;
	}
}

void fa_restore(struct fake *f, struct gmig_totals *done)
{
	uint8_t rec[GMIG_REC_manifest_SIZE];
	struct gmig_rec_manifest man = { f->pid, f->region.id, f->region.va, f->region.size,
					 f->region.chunk };
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_BEGIN };
	uint64_t pieces = 0, bytes = 0;
	uint32_t k = 0;

	ck_assert_int_eq(gmig_rec_put_manifest(rec, &man), GMIG_REC_manifest_SIZE);
	m.u.restore_begin = (struct gmig_restore_begin){ 1, f->region.size, { rec, sizeof(rec) } };
	fa_send(f, &m);
	for (uint64_t off = 0; off < f->region.size; off += f->slot_size, k++) {
		uint32_t n = f->region.size - off < f->slot_size ? (uint32_t)(f->region.size - off) : f->slot_size;
		uint32_t slot = f->slots + k % f->slots;
		bool zero = true;

		for (uint32_t i = 0; i < n && zero; i++)
			zero = !f->image[off + i];
		m.type = GMIG_MSG_STAGED;
		m.u.staged = (struct gmig_staged){ f->region.id, off, n, GMIG_ENC_ZERO, 1, 0 };
		if (!zero) {
			if (f->agent_slot_out[slot])
				wait_slot_free(f, slot);
			memcpy(f->stage + (size_t)slot * f->slot_size, f->image + off, n);
			f->agent_slot_out[slot] = true;
			m.u.staged.encoding = GMIG_ENC_RAW;
			m.u.staged.slot = slot;
		}
		fa_send(f, &m);
		pieces++;
		bytes += n;
	}
	for (uint32_t s = f->slots; s < 2 * f->slots; s++)
		if (f->agent_slot_out[s])
			wait_slot_free(f, s);
	m.type = GMIG_MSG_RESTORE_END;
	m.u.totals = (struct gmig_totals){ pieces, bytes };
	fa_send(f, &m);
	fa_expect(f, GMIG_MSG_RESTORED, &m);
	ck_assert_uint_eq(m.u.totals.chunks, pieces);
	ck_assert_uint_eq(m.u.totals.bytes, bytes);
	if (done)
		*done = m.u.totals;
}

void fa_simple(struct fake *f, uint16_t type)
{
	struct gmig_msg m = { .type = type };

	fa_send(f, &m);
}

void fa_attach(struct fake *f, uint32_t from, const uint8_t *uuid)
{
	uint8_t rec[GMIG_REC_gpu_map_SIZE];
	struct gmig_rec_gpu_map map = { from, 1 };
	struct gmig_msg m = { .type = GMIG_MSG_ATTACH };

	memcpy(map.uuid, uuid, GMIG_UUID_SIZE);
	ck_assert_int_eq(gmig_rec_put_gpu_map(rec, &map), GMIG_REC_gpu_map_SIZE);
	m.u.attach.tail = (struct gmig_tail){ rec, sizeof(rec) };
	fa_send(f, &m);
}

void fa_freeze(struct fake *f, uint32_t deadline_ms)
{
	struct gmig_msg m = { .type = GMIG_MSG_FREEZE };

	m.u.freeze.deadline_ms = deadline_ms;
	fa_send(f, &m);
}

void fa_ping(struct fake *f, uint64_t nonce)
{
	struct gmig_msg m = { .type = GMIG_MSG_PING };

	m.u.nonce.nonce = nonce;
	fa_send(f, &m);
	fa_expect(f, GMIG_MSG_PONG, &m);
	ck_assert_uint_eq(m.u.nonce.nonce, nonce);
}
