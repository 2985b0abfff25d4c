/* Check suite: restore by reference against a real gmig-agent: SLOT_LEND, RESTORE_REF checked and handed on as STAGED, lent slots after a lost channel. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gmig/frame.h"
#include "gmig/message.h"

#include "testlib.h"

#define SLOTS		4u
#define SLOT_SIZE	(16u << 10)
#define REGION		1u
#define REGION_SIZE	(4u * SLOT_SIZE)	/* one piece per slot */
#define EPOCH		3u
#define AGENT_CONF	"slots = 4\nslot_size = 16K"

/* One agent, the host on its unix channel with SHM, and one client of one region. */
struct fx {
	struct harness h;
	struct fhost fh;
	struct iclient ic;
	uint32_t pid;		/* the client, as the agent knows it */
	int got_fd;		/* a descriptor the host read and has not taken yet */
	int host_fd;		/* the client's staging, as the host got it with STAGING_PHYS */
	uint8_t *host_map;
	uint64_t lent;		/* agent-to-client slots the host holds (bit = slot) */
	uint64_t sent_chunks, sent_bytes;	/* what the host named, for RESTORE_END */
};

static void fx_up(struct fx *x)
{
	struct gmig_welcome w;
	struct gmig_msg m;

	memset(x, 0, sizeof(*x));
	x->host_fd = -1;
	x->got_fd = -1;
	harness_start(&x->h, AGENT_CONF);
	iclient_open(&x->ic, &x->h);
	ck_assert_uint_eq(x->ic.slots, SLOTS);
	ck_assert_uint_eq(x->ic.slot_size, SLOT_SIZE);
	x->pid = (uint32_t)getpid();
	fhost_open(&x->fh, &x->h);
	fhost_hello_caps(&x->fh, GMIG_CAP_SHM, &w);
	ck_assert(w.caps & GMIG_CAP_SHM);
	/* A restore goes to released and attached clients. */
	host_freeze(&x->fh, 2000);
	iclient_answer(&x->ic, GMIG_MSG_FREEZE);
	fhost_expect(&x->fh, &m, GMIG_MSG_FROZEN);
	host_simple(&x->fh, GMIG_MSG_RELEASE);
	iclient_answer(&x->ic, GMIG_MSG_RELEASE);
	fhost_expect(&x->fh, &m, GMIG_MSG_RELEASED);
	host_attach(&x->fh);
	iclient_answer(&x->ic, GMIG_MSG_ATTACH);
	fhost_expect(&x->fh, &m, GMIG_MSG_ATTACHED);
}

static void unmap_host(struct fx *x)
{
	if (x->host_map)
		munmap(x->host_map, 2ull * SLOTS * SLOT_SIZE);
	x->host_map = NULL;
	if (x->host_fd >= 0)
		close(x->host_fd);
	x->host_fd = -1;
}

static void fx_down(struct fx *x)
{
	unmap_host(x);
	if (x->got_fd >= 0)
		close(x->got_fd);
	iclient_close(&x->ic);
	fhost_close(&x->fh);
	ck_assert_int_eq(harness_stop(&x->h), 0);
}

/* The host's next frame, read as gmigd reads (recvmsg: an fd may ride along); asserts its type. */
static void hrecv(struct fx *x, struct gmig_msg *m, uint16_t type)
{
	int rc = fhost_recv_fd(&x->fh, m, TL_TIMEOUT_MS, &x->got_fd);

	ck_assert_msg(rc == 0, "waiting for %s: %s", gmig_msg_name(type), strerror(-rc));
	if (m->type == GMIG_MSG_ERROR && type != GMIG_MSG_ERROR)
		ck_abort_msg("waiting for %s: ERROR %d about %s: %.*s", gmig_msg_name(type),
			     m->u.error.code, gmig_msg_name(m->u.error.ref_type),
			     (int)m->u.error.tail.len, (const char *)m->u.error.tail.ptr);
	ck_assert_msg(m->type == type, "waiting for %s, got %s", gmig_msg_name(type),
		      gmig_msg_name(m->type));
}

/* STAGING_PHYS with the client's memfd: the host maps it as gmigd does. */
static void take_staging(struct fx *x)
{
	struct gmig_rec_phys r;
	struct gmig_msg m;

	unmap_host(x);
	hrecv(x, &m, GMIG_MSG_STAGING_PHYS);
	ck_assert_msg(x->got_fd >= 0, "STAGING_PHYS came without the staging fd");
	x->host_fd = x->got_fd;
	x->got_fd = -1;
	ck_assert_uint_eq(m.u.staging_phys.pid, x->pid);
	ck_assert_uint_eq(m.u.staging_phys.slots, SLOTS);
	ck_assert_uint_eq(m.u.staging_phys.slot_size, SLOT_SIZE);
	ck_assert_uint_eq(gmig_rec_count(&m.u.staging_phys.tail, GMIG_REC_phys_SIZE), 1);
	gmig_rec_get_phys(&m.u.staging_phys.tail, 0, &r);
	ck_assert_uint_eq(r.gpa, 0);
	ck_assert_uint_eq(r.len, 2ull * SLOTS * SLOT_SIZE);
	x->host_map = mmap(NULL, r.len, PROT_READ | PROT_WRITE, MAP_SHARED, x->host_fd, 0);
	ck_assert_ptr_ne(x->host_map, MAP_FAILED);
}

/* One SLOT_LEND: an agent-to-client slot of our client not lent already; returns it. */
static uint32_t take_lend(struct fx *x)
{
	struct gmig_msg m;
	uint32_t s;

	hrecv(x, &m, GMIG_MSG_SLOT_LEND);
	s = m.u.slot_lend.slot;
	ck_assert_uint_eq(m.u.slot_lend.pid, x->pid);
	ck_assert_msg(s >= SLOTS && s < 2 * SLOTS, "slot %u lent", s);
	ck_assert_msg(!(x->lent & (1ull << s)), "slot %u lent twice", s);
	x->lent |= 1ull << s;
	return s;
}

/* The one agent-to-client slot the host does not hold. */
static uint32_t kept_slot(const struct fx *x)
{
	for (uint32_t s = SLOTS; s < 2 * SLOTS; s++) {
		if (!(x->lent & (1ull << s)))
			return s;
	}
	ck_abort_msg("every slot is lent");
	return 0;
}

static uint32_t lowest_lent(const struct fx *x)
{
	ck_assert_uint_ne(x->lent, 0);
	return (uint32_t)__builtin_ctzll(x->lent);
}

/*
 * RESTORE_BEGIN of the one region; the client takes it, the host gets all free slots but one,
 * after the staging itself when the connection has not had it (@staging).
 */
static void begin(struct fx *x, bool staging)
{
	uint8_t man[GMIG_REC_manifest_SIZE];
	struct gmig_rec_manifest r = { .pid = x->pid, .region = REGION, .va = 0x7f1000000000ull,
				       .size = REGION_SIZE, .chunk = TL_CHUNK };
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_BEGIN };

	ck_assert_int_gt(gmig_rec_put_manifest(man, &r), 0);
	m.u.restore_begin.clients = 1;
	m.u.restore_begin.bytes = REGION_SIZE;
	m.u.restore_begin.tail = (struct gmig_tail){ man, sizeof(man) };
	fhost_send(&x->fh, &m);
	iclient_expect(&x->ic, &m, GMIG_MSG_RESTORE_BEGIN);
	x->lent = 0;
	if (staging)
		take_staging(x);
	for (uint32_t i = 0; i + 1 < SLOTS; i++)
		take_lend(x);
	ck_assert_uint_eq(__builtin_popcountll(x->lent), SLOTS - 1);
}

static void send_ref(struct fx *x, uint32_t pid, uint32_t region, uint64_t off, uint32_t len,
		     uint8_t enc, uint32_t slot)
{
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_REF };

	m.u.restore_ref = (struct gmig_restore_ref){ .pid = pid, .region = region, .offset = off,
		.length = len, .encoding = enc, .epoch = EPOCH, .slot = slot };
	fhost_send(&x->fh, &m);
	x->sent_chunks++;
	x->sent_bytes += len;
}

/* A RESTORE_REF whose encoding is ZERO: the encoder refuses it, so the frame is made by hand. */
static void send_zero_ref(struct fx *x, uint32_t slot)
{
	static uint8_t out[GMIG_HDR_SIZE + 64];
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_REF };
	struct gmig_hdr h = { .version = 1, .type = GMIG_MSG_RESTORE_REF,
			      .session = x->fh.session, .seq = ++x->fh.seq };
	long n;

	m.u.restore_ref = (struct gmig_restore_ref){ .pid = x->pid, .region = REGION,
		.length = SLOT_SIZE, .encoding = GMIG_ENC_RAW, .epoch = EPOCH, .slot = slot };
	n = gmig_msg_encode(out, sizeof(out), &h, &m);
	ck_assert_int_gt(n, GMIG_HDR_SIZE + 20);
	/* pid, region, offset, length: the encoding is payload byte 20. */
	ck_assert_uint_eq(out[GMIG_HDR_SIZE + 20], GMIG_ENC_RAW);
	out[GMIG_HDR_SIZE + 20] = GMIG_ENC_ZERO;
	h.len = (uint32_t)(n - GMIG_HDR_SIZE);
	gmig_hdr_write(out, &h, out + GMIG_HDR_SIZE, h.len, NULL, 0);
	fhost_send_raw(&x->fh, out, (size_t)n);
	x->sent_chunks++;
	x->sent_bytes += SLOT_SIZE;
}

/*
 * The good path for one piece: the host writes it into lent slot @slot through its mapping
 * and names it; the client gets STAGED for that slot and finds the host's bytes in its own.
 */
static void ref_piece(struct fx *x, uint32_t slot, uint64_t off)
{
	const uint8_t *p = x->ic.stage + (size_t)slot * SLOT_SIZE;
	struct gmig_msg m;

	for (uint32_t i = 0; i < SLOT_SIZE; i++)
		x->host_map[(size_t)slot * SLOT_SIZE + i] = pat_byte(REGION, off + i, EPOCH);
	send_ref(x, x->pid, REGION, off, SLOT_SIZE, GMIG_ENC_RAW, slot);
	x->lent &= ~(1ull << slot);
	iclient_expect(&x->ic, &m, GMIG_MSG_STAGED);
	ck_assert_uint_eq(m.u.staged.region, REGION);
	ck_assert_uint_eq(m.u.staged.offset, off);
	ck_assert_uint_eq(m.u.staged.length, SLOT_SIZE);
	ck_assert_uint_eq(m.u.staged.encoding, GMIG_ENC_RAW);
	ck_assert_uint_eq(m.u.staged.epoch, EPOCH);
	ck_assert_uint_eq(m.u.staged.slot, slot);
	for (uint32_t i = 0; i < SLOT_SIZE; i++) {
		if (p[i] != pat_byte(REGION, off + i, EPOCH))
			ck_abort_msg("slot %u byte %u is not the host's", slot, i);
	}
}

static void slot_free(struct fx *x, uint32_t slot)
{
	struct gmig_msg m = { .type = GMIG_MSG_SLOT_FREE };

	m.u.slot.slot = slot;
	iclient_send(&x->ic, &m);
}

/* RESTORE_END with what the host named; the client checks and answers, or the ERROR @code. */
static void finish(struct fx *x, int code)
{
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_END };
	uint64_t seq;

	m.u.totals.chunks = x->sent_chunks;
	m.u.totals.bytes = x->sent_bytes;
	fhost_send(&x->fh, &m);
	seq = x->fh.seq;
	if (code) {
		hrecv(x, &m, GMIG_MSG_ERROR);
		ck_assert_msg(m.u.error.code == code, "RESTORE_END: ERROR %d, expected %d: %.*s",
			      m.u.error.code, code, (int)m.u.error.tail.len,
			      (const char *)m.u.error.tail.ptr);
		ck_assert_uint_eq(m.u.error.ref_type, GMIG_MSG_RESTORE_END);
		ck_assert_uint_eq(m.u.error.ref_seq, seq);
		return;
	}
	/* A client that died is not asked. */
	if (x->ic.fd >= 0) {
		iclient_expect(&x->ic, &m, GMIG_MSG_RESTORE_END);
		ck_assert_uint_eq(m.u.totals.bytes, x->sent_bytes);
		m.type = GMIG_MSG_RESTORED;
		iclient_send(&x->ic, &m);
	}
	hrecv(x, &m, GMIG_MSG_RESTORED);
	/* What the clients applied: nothing, when the only one died. */
	ck_assert_uint_eq(m.u.totals.bytes, x->ic.fd >= 0 ? x->sent_bytes : 0);
}

/*
 * The whole region from @from by reference, piece by piece, each slot freed and a slot lent
 * again. With @same, the slot lent again is the one freed (the one kept back stays kept).
 */
static void restore_all(struct fx *x, uint64_t from, bool same)
{
	for (uint64_t off = from; off < REGION_SIZE; off += SLOT_SIZE) {
		uint32_t slot = lowest_lent(x), kept = kept_slot(x), again;

		ref_piece(x, slot, off);
		slot_free(x, slot);
		again = take_lend(x);
		if (same) {
			ck_assert_uint_eq(again, slot);
			ck_assert_uint_eq(kept_slot(x), kept);
		}
		ck_assert_uint_eq(__builtin_popcountll(x->lent), SLOTS - 1);
	}
}

/* The good path: every byte of the image by reference, none through the socket. */
START_TEST(test_good)
{
	struct fx x;

	fx_up(&x);
	begin(&x, true);
	restore_all(&x, 0, true);
	finish(&x, 0);
	ck_assert_uint_eq(harness_restored_by_ref(&x.h), REGION_SIZE);
	/* The client heard nothing it was not meant to. */
	iclient_quiet(&x.ic);
	fx_down(&x);
}
END_TEST

enum ref_bad {
	RB_OUTSIDE,	/* before RESTORE_BEGIN */
	RB_REGION,	/* a region not in the manifest */
	RB_PAST,	/* offset + length past the region */
	RB_OFFSET,	/* offset itself past the region */
	RB_SLOT_HIGH,	/* 2 x slots: no such slot */
	RB_SLOT_OWN,	/* a client-to-agent slot */
	RB_KEPT,	/* the agent-to-client slot kept back */
	RB_TWICE,	/* a lent slot named twice before the client frees it */
	RB_LONG,	/* longer than a slot */
	RB_ENCODING,	/* ZERO: the decoder refuses it before the agent looks */
	RB_OTHER_PID,	/* a pid the manifest does not name */
	RB_DEAD,	/* the client died: dropped, no error */
};

static const struct bad_row {
	enum ref_bad bad;
	int code;	/* ERROR for the RESTORE_REF; 0: none */
	int end;	/* ERROR for RESTORE_END; 0: RESTORED */
} bad_rows[] = {
	/* 1 */ { RB_OUTSIDE, -EPROTO, 0 },
	/* 2 */ { RB_REGION, -ENOENT, -ENOENT },
	/* 3 */ { RB_PAST, -ERANGE, -ERANGE },
	/* 4 */ { RB_OFFSET, -ERANGE, -ERANGE },
	/* 5 */ { RB_SLOT_HIGH, -EPROTO, -EPROTO },
	/* 6 */ { RB_SLOT_OWN, -EPROTO, -EPROTO },
	/* 7 */ { RB_KEPT, -EPROTO, -EPROTO },
	/* 8 */ { RB_TWICE, -EPROTO, -EPROTO },
	/* 9 */ { RB_LONG, -ERANGE, -ERANGE },
	/* 10 */ { RB_ENCODING, -EPROTO, -EIO },
	/* 11 */ { RB_OTHER_PID, -ENOENT, -ENOENT },
	/* 12 */ { RB_DEAD, 0, 0 },
};

START_TEST(test_bad)
{
	const struct bad_row *row = &bad_rows[_i];
	struct gmig_msg m;
	struct fx x;
	uint32_t slot;
	uint64_t seq;

	fx_up(&x);
	if (row->bad != RB_OUTSIDE)
		begin(&x, true);
	slot = x.lent ? lowest_lent(&x) : SLOTS;
	switch (row->bad) {
	case RB_OUTSIDE:
		send_ref(&x, x.pid, REGION, 0, SLOT_SIZE, GMIG_ENC_RAW, SLOTS);
		break;
	case RB_REGION:
		send_ref(&x, x.pid, REGION + 1, 0, SLOT_SIZE, GMIG_ENC_RAW, slot);
		break;
	case RB_PAST:
		send_ref(&x, x.pid, REGION, REGION_SIZE - 4096, 8192, GMIG_ENC_RAW, slot);
		break;
	case RB_OFFSET:
		send_ref(&x, x.pid, REGION, REGION_SIZE + 4096, 4096, GMIG_ENC_RAW, slot);
		break;
	case RB_SLOT_HIGH:
		send_ref(&x, x.pid, REGION, 0, SLOT_SIZE, GMIG_ENC_RAW, 2 * SLOTS);
		break;
	case RB_SLOT_OWN:
		send_ref(&x, x.pid, REGION, 0, SLOT_SIZE, GMIG_ENC_RAW, 0);
		break;
	case RB_KEPT:
		send_ref(&x, x.pid, REGION, 0, SLOT_SIZE, GMIG_ENC_RAW, kept_slot(&x));
		break;
	case RB_TWICE:
		ref_piece(&x, slot, 0);
		send_ref(&x, x.pid, REGION, SLOT_SIZE, SLOT_SIZE, GMIG_ENC_RAW, slot);
		break;
	case RB_LONG:
		send_ref(&x, x.pid, REGION, 0, 2 * SLOT_SIZE, GMIG_ENC_RAW, slot);
		break;
	case RB_ENCODING:
		send_zero_ref(&x, slot);
		break;
	case RB_OTHER_PID:
		send_ref(&x, x.pid + 1, REGION, 0, SLOT_SIZE, GMIG_ENC_RAW, slot);
		break;
	case RB_DEAD:
		iclient_close(&x.ic);
		/* Until the agent has seen it go, the reference would still reach it. */
		usleep(100 * 1000);
		send_ref(&x, x.pid, REGION, 0, SLOT_SIZE, GMIG_ENC_RAW, slot);
		break;
	}
	seq = x.fh.seq;
	if (row->code) {
		hrecv(&x, &m, GMIG_MSG_ERROR);
		ck_assert_msg(m.u.error.code == row->code, "row %d: ERROR %d, expected %d: %.*s",
			      _i + 1, m.u.error.code, row->code, (int)m.u.error.tail.len,
			      (const char *)m.u.error.tail.ptr);
		ck_assert_uint_eq(m.u.error.ref_type, GMIG_MSG_RESTORE_REF);
		ck_assert_uint_eq(m.u.error.ref_seq, seq);
	}
	/* Nothing else came for it: the next frame answers this PING. */
	m = (struct gmig_msg){ .type = GMIG_MSG_PING };
	m.u.nonce.nonce = 77;
	fhost_send(&x.fh, &m);
	hrecv(&x, &m, GMIG_MSG_PONG);
	ck_assert_uint_eq(m.u.nonce.nonce, 77);
	/* The client got no STAGED for a refused reference. */
	if (row->bad != RB_DEAD)
		iclient_quiet(&x.ic);

	if (row->bad == RB_OUTSIDE) {
		/* A stray reference spoils no restore that begins later. */
		x.sent_chunks = x.sent_bytes = 0;
		begin(&x, true);
		restore_all(&x, 0, true);
	}
	finish(&x, row->end);
	if (row->bad == RB_OUTSIDE)
		ck_assert_uint_eq(harness_restored_by_ref(&x.h), REGION_SIZE);
	if (row->bad == RB_DEAD)
		ck_assert_uint_eq(harness_restored_by_ref(&x.h), 0);
	if (row->end && row->bad != RB_DEAD) {
		/* The failed restore can run again, whole, with the same client. */
		x.sent_chunks = x.sent_bytes = 0;
		if (row->bad == RB_TWICE) {
			/* The failed restore is still the current one: the freed slot is lent. */
			slot_free(&x, slot);
			ck_assert_uint_eq(take_lend(&x), slot);
		}
		/* The connection has the staging already: slots only. */
		begin(&x, false);
		restore_all(&x, 0, true);
		finish(&x, 0);
	}
	fx_down(&x);
}
END_TEST

enum drop_how {
	DH_DROP,	/* the channel closes; the agent sees it; the host resumes */
	DH_TAKEOVER,	/* the host resumes on a new connection while the old one is open */
};

static const struct drop_row {
	enum drop_how how;
} drop_rows[] = {
	/* 1 */ { DH_DROP },
	/* 2: the old connection is still open when the session moves: its slots come back too */
	/* 2 */ { DH_TAKEOVER },
};

/* HELLO resuming the session; the WELCOME read as gmigd reads (the staging fd may follow at once). */
static void resume(struct fx *x, struct gmig_welcome *w)
{
	struct gmig_msg m = { .type = GMIG_MSG_HELLO };
	uint64_t session = x->fh.session;

	m.u.hello.min_version = 1;
	m.u.hello.max_version = 1;
	m.u.hello.role = GMIG_ROLE_HOST;
	m.u.hello.caps = GMIG_CAP_SHM;
	m.u.hello.session = session;
	memcpy(m.u.hello.token, x->fh.token, GMIG_TOKEN_SIZE);
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "fakehost");
	/* HELLO travels outside the session's numbering. */
	x->fh.session = 0;
	fhost_send(&x->fh, &m);
	x->fh.session = session;
	hrecv(x, &m, GMIG_MSG_WELCOME);
	ck_assert_uint_eq(m.u.welcome.session, session);
	*w = m.u.welcome;
}

/* The channel goes mid-restore: the slots lent on it come back and are lent again after the resume. */
START_TEST(test_drop)
{
	const struct drop_row *row = &drop_rows[_i];
	struct gmig_welcome w;
	struct fhost old;
	struct fx x;
	uint32_t held;

	fx_up(&x);
	begin(&x, true);
	/* One piece is with the client (not freed yet); two slots stay lent, unused. */
	held = lowest_lent(&x);
	ref_piece(&x, held, 0);
	if (row->how == DH_DROP) {
		fhost_drop(&x.fh);
		ck_assert(harness_wait_session(&x.h, "detached", TL_TIMEOUT_MS));
		fhost_reconnect(&x.fh, &x.h);
	} else {
		old = x.fh;
		fhost_open(&x.fh, &x.h);
		x.fh.seq = old.seq;
		x.fh.session = old.session;
		memcpy(x.fh.token, old.token, sizeof(x.fh.token));
	}
	resume(&x, &w);
	ck_assert_uint_eq(w.resumed, 1);
	ck_assert_uint_eq(w.phase, GMIG_PHASE_ATTACHED);
	if (row->how == DH_TAKEOVER) {
		ck_assert(fhost_closed(&old, TL_TIMEOUT_MS));
		fhost_close(&old);
	}
	/* The new connection learns the staging again and gets every free slot but none kept. */
	x.lent = 0;
	take_staging(&x);
	for (uint32_t i = 0; i + 1 < SLOTS; i++)
		ck_assert_uint_ne(take_lend(&x), held);
	/* The client frees its piece: every slot but one is lent already, none more comes. */
	slot_free(&x, held);
	iclient_quiet(&x.ic);
	restore_all(&x, SLOT_SIZE, false);
	finish(&x, 0);
	ck_assert_uint_eq(harness_restored_by_ref(&x.h), REGION_SIZE);
	fx_down(&x);
}
END_TEST

static Suite *restore_ref_suite(void)
{
	Suite *s = suite_create("agent-restore-ref");
	TCase *tc = tcase_create("restore-ref");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_good);
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bad_rows) / sizeof(bad_rows[0]));
	tcase_add_loop_test(tc, test_drop, 0, sizeof(drop_rows) / sizeof(drop_rows[0]));
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(restore_ref_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
