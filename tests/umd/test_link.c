/*
 * Check suite for the client link against a fake agent: a whole migration to
 * a second device with results equal to an unmigrated run, and hostile or
 * malformed frames that must end in a clean error with the program unharmed.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "fakeagent.h"
#include "gmig/sim.h"
#include "link.h"
#include "simapi.h"
#include "umdtest.h"

#define G	GMIG_SIMDEV_GRANULE

static char dir[128], dev1[256], dev2[256], sock[160];
static uint8_t uuid1[16], uuid2[16];
static struct fake fa;

static void suite_setup(void)
{
	ut_dir_create(dir, sizeof(dir));
}

static void suite_teardown(void)
{
	ut_dir_remove(dir);
}

static void setup(void)
{
	char name[32];

	snprintf(name, sizeof(name), "a%d", (int)getpid());
	ut_device(dir, name, 16 * G, dev1, sizeof(dev1), uuid1);
	snprintf(name, sizeof(name), "b%d", (int)getpid());
	ut_device(dir, name, 16 * G, dev2, sizeof(dev2), uuid2);
	snprintf(sock, sizeof(sock), "%s/agent%d.sock", dir, (int)getpid());
	setenv("GMIG_SIM_DIR", dir, 1);
	setenv("GMIG_SIM_DEVICE", dev1, 1);
	setenv("GMIG_AGENT_SOCKET", sock, 1);
	setenv("GMIG_CHUNK", "64", 1);
	unsetenv("GMIG_DISABLE");
	fa_listen(&fa, sock);
}

static void teardown(void)
{
	gmig_sim_shutdown();
	fa_close(&fa);
	unlink(dev1);
	unlink(dev2);
}

/* The program is unharmed: it allocates, copies there and back, frees. */
static void program_works(void)
{
	uint8_t in[4096], out[4096];
	uint64_t seed = 99;
	void *p;

	ut_fill(in, sizeof(in), &seed);
	ck_assert_int_eq(gsim_malloc(&p, sizeof(in)), 0);
	ck_assert_int_eq(gsim_memcpy(p, in, sizeof(in), GSIM_HOST_TO_DEVICE), 0);
	ck_assert_int_eq(gsim_memcpy(out, p, sizeof(out), GSIM_DEVICE_TO_HOST), 0);
	ck_assert_mem_eq(in, out, sizeof(in));
	ck_assert_int_eq(gsim_free(p), 0);
}

/* Some device memory with known bytes, and the session opened on it. */
static uint8_t *open_with_memory(size_t n, uint64_t seed, uint8_t *copy)
{
	uint8_t *p;

	ck_assert_int_eq(gsim_malloc((void **)&p, n), 0);
	ut_fill(copy, n, &seed);
	memset(copy + n / 2, 0, n / 4);
	ck_assert_int_eq(gsim_memcpy(p, copy, n, GSIM_HOST_TO_DEVICE), 0);
	fa_open(&fa);
	return p;
}

/* ========== the whole migration ========== */

#define NA	(256u * 1024)	/* floats */
#define NB	(128u * 1024)	/* u64 */
#define NX	(8u * 1024)	/* u64 */
#define STEPS	120
#define HALF	60

struct step_args {
	float *a;
	uint64_t *b;
	uint32_t step;
};

static void step_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	struct step_args *s = args;

	for (uint32_t i = block; i < NA; i += nblocks)
		s->a[i] = s->a[i] * 0.999f + (float)(s->b[i % NB] % 7) * 0.01f;
	for (uint32_t i = block; i < NB; i += nblocks)
		s->b[i] = s->b[i] * 6364136223846793005ull + 1442695040888963407ull + s->step;
}

static void count_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	uint64_t *x = *(uint64_t **)args;

	for (uint32_t i = block; i < NX; i += nblocks)
		x[i]++;
}

/* The program: P1 computes in steps on its stream, P2 hammers another stream. */
struct prog {
	bool wait_go;			/* P1 waits at HALF until go */
	atomic_bool halfway, go, stop;
	float *a;
	uint64_t *b;
	void *zero;
	float *res_a;
	uint64_t *res_b;
	int err;
	uint64_t count, x_bad;
};

#define TRY(p, call) do { int e_ = (call); if (e_ && !(p)->err) (p)->err = e_; } while (0)

static void *p1_main(void *arg)
{
	struct prog *p = arg;
	gsim_stream_t s;

	TRY(p, gsim_stream_create(&s));
	TRY(p, gsim_malloc((void **)&p->a, NA * sizeof(float)));
	TRY(p, gsim_malloc((void **)&p->b, NB * sizeof(uint64_t)));
	TRY(p, gsim_malloc(&p->zero, 1 << 20));
	for (uint32_t i = 0; i < NA; i++)
		p->res_a[i] = (float)(i % 1000) * 0.5f;
	for (uint32_t i = 0; i < NB; i++)
		p->res_b[i] = i * 0x9e3779b97f4a7c15ull;
	TRY(p, gsim_memcpy(p->a, p->res_a, NA * sizeof(float), GSIM_HOST_TO_DEVICE));
	TRY(p, gsim_memcpy(p->b, p->res_b, NB * sizeof(uint64_t), GSIM_HOST_TO_DEVICE));
	TRY(p, gsim_memset(p->zero, 0, 1 << 20));
	for (uint32_t k = 0; k < STEPS; k++) {
		struct step_args sa = { p->a, p->b, k };

		TRY(p, gsim_launch(step_kernel, 4, &sa, sizeof(sa), s));
		if (k % 8 == 7)
			TRY(p, gsim_stream_synchronize(s));
		if (k == HALF) {
			TRY(p, gsim_stream_synchronize(s));
			atomic_store(&p->halfway, true);
			while (p->wait_go && !atomic_load(&p->go))
				usleep(1000);
		}
	}
	TRY(p, gsim_stream_synchronize(s));
	TRY(p, gsim_memcpy(p->res_a, p->a, NA * sizeof(float), GSIM_DEVICE_TO_HOST));
	TRY(p, gsim_memcpy(p->res_b, p->b, NB * sizeof(uint64_t), GSIM_DEVICE_TO_HOST));
	TRY(p, gsim_stream_destroy(s));
	return NULL;
}

static void *p2_main(void *arg)
{
	struct prog *p = arg;
	uint64_t *x, *host = calloc(NX, sizeof(uint64_t));
	gsim_stream_t s;

	TRY(p, gsim_stream_create(&s));
	TRY(p, gsim_malloc((void **)&x, NX * sizeof(uint64_t)));
	TRY(p, gsim_memset(x, 0, NX * sizeof(uint64_t)));
	while (!atomic_load(&p->stop) && !p->err) {
		TRY(p, gsim_launch(count_kernel, 2, &x, sizeof(x), s));
		TRY(p, gsim_stream_synchronize(s));
		p->count++;
	}
	TRY(p, gsim_memcpy(host, x, NX * sizeof(uint64_t), GSIM_DEVICE_TO_HOST));
	for (uint32_t i = 0; i < NX; i++)
		p->x_bad += host[i] != p->count;
	TRY(p, gsim_stream_destroy(s));
	free(host);
	return NULL;
}

static void prog_init(struct prog *p, bool wait_go)
{
	memset(p, 0, sizeof(*p));
	p->wait_go = wait_go;
	p->res_a = malloc(NA * sizeof(float));
	p->res_b = malloc(NB * sizeof(uint64_t));
}

static void prog_free(struct prog *p)
{
	free(p->res_a);
	free(p->res_b);
}

static void wait_flag(atomic_bool *flag)
{
	for (int i = 0; i < FA_TIMEOUT_MS && !atomic_load(flag); i++)
		usleep(1000);
	ck_assert(atomic_load(flag));
}

START_TEST(test_migration)
{
	struct prog ref, mig;
	struct gmig_round_end end[4];
	struct gsim_device_info info;
	struct gmig_totals restored;
	struct gmig_msg m;
	pthread_t t1, t2;
	void *later;

	/* The unmigrated run, on the first device, with no agent. */
	setenv("GMIG_DISABLE", "1", 1);
	prog_init(&ref, false);
	ck_assert_int_eq(pthread_create(&t1, NULL, p1_main, &ref), 0);
	pthread_join(t1, NULL);
	ck_assert_int_eq(ref.err, 0);
	gmig_sim_shutdown();
	unsetenv("GMIG_DISABLE");

	/* The migrated run: P1 waits at its half-way point until the program is frozen. */
	prog_init(&mig, true);
	ck_assert_int_eq(pthread_create(&t1, NULL, p1_main, &mig), 0);
	ck_assert_int_eq(pthread_create(&t2, NULL, p2_main, &mig), 0);
	fa_open(&fa);
	wait_flag(&mig.halfway);
	ck_assert_str_eq(fa.name, "test-umd-link");
	ck_assert_uint_eq(fa.pid, (uint32_t)getpid());
	ck_assert_uint_eq(fa.gpu, 0);

	/* 1: pre-copy: everything, then what changed */
	fa_round(&fa, 1, 0, &end[0]);
	ck_assert_uint_eq(end[0].dirty, end[0].chunks);
	ck_assert_uint_gt(end[0].zero, 0);
	fa_round(&fa, 2, 1, &end[1]);
	ck_assert_uint_le(end[1].dirty, end[1].chunks);

	/* 2: freeze: P1 is let go, and blocks at its next call */
	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &m);
	ck_assert_uint_eq(m.u.frozen.pid, (uint32_t)getpid());
	ck_assert_uint_gt(m.u.frozen.tail.len, 0);
	ck_assert_int_eq(gmig_link_phase(gmig_sim_link()), GMIG_PHASE_FROZEN);
	atomic_store(&mig.go, true);

	/* 3: the final delta, while frozen */
	fa_round(&fa, 3, 2, &end[2]);
	ck_assert_uint_gt(end[2].dirty, 0);

	/* 4: release: the first device has every granule back */
	fa_simple(&fa, GMIG_MSG_RELEASE);
	fa_expect(&fa, GMIG_MSG_RELEASED, &m);
	ck_assert_uint_eq(m.u.clients.clients, 1);
	ck_assert_uint_eq(ut_device_free(dev1), 16);

	/* 5: attach to the second device: its granules are taken at the same addresses */
	fa_attach(&fa, 0, uuid2);
	fa_expect(&fa, GMIG_MSG_ATTACHED, &m);
	ck_assert_uint_eq(ut_device_free(dev2), 16 - fa.region.size / G);

	/* 6: restore the image, then thaw */
	fa_restore(&fa, &restored);
	ck_assert_uint_eq(restored.bytes, fa.region.size);
	fa_simple(&fa, GMIG_MSG_THAW);
	fa_expect(&fa, GMIG_MSG_THAWED, &m);

	/* 7: the program finishes on the second device with the unmigrated run's results */
	pthread_join(t1, NULL);
	atomic_store(&mig.stop, true);
	pthread_join(t2, NULL);
	ck_assert_int_eq(mig.err, 0);
	ck_assert_mem_eq(mig.res_a, ref.res_a, NA * sizeof(float));
	ck_assert_mem_eq(mig.res_b, ref.res_b, NB * sizeof(uint64_t));
	ck_assert_uint_eq(mig.x_bad, 0);
	ck_assert_uint_gt(mig.count, 0);
	ck_assert_int_eq(gsim_device_info(&info), 0);
	ck_assert_mem_eq(info.uuid, uuid2, 16);
	ck_assert_str_eq(info.path, dev2);
	/* The same pointers, reaching the same allocations: a new block goes elsewhere. */
	ck_assert_int_eq(gsim_malloc(&later, 4096), 0);
	ck_assert((uint8_t *)later >= (uint8_t *)mig.zero + (1 << 20) || (uint8_t *)later + 4096 <= (uint8_t *)mig.a);
	ck_assert_int_eq(gsim_free(mig.zero), 0);
	ck_assert_int_eq(gsim_free(mig.b), 0);
	ck_assert_int_eq(gsim_free(mig.a), 0);
	program_works();
	prog_free(&ref);
	prog_free(&mig);
}
END_TEST

/* ========== frames that end the session ========== */

enum fatal { F_CHECKSUM, F_MAGIC, F_TYPE, F_LENGTH, F_FIELD, F_SEQ_GAP, F_SESSION, F_STAGING_NO_FD,
	     F_FD_ELSEWHERE, F_VERSION };

static const struct {
	enum fatal kind;
	int32_t code;
	uint16_t ref_type;
} fatals[] = {
	/* 1 */ { F_CHECKSUM, -EBADMSG, 0 },
	/* 2 */ { F_MAGIC, -EILSEQ, 0 },
	/* 3 */ { F_TYPE, -ENOMSG, 0 },
	/* 4 */ { F_LENGTH, -ERANGE, 0 },
	/* 5 */ { F_FIELD, -EPROTO, GMIG_MSG_FREEZE },
	/* 6 */ { F_SEQ_GAP, -EPROTO, 0 },
	/* 7 */ { F_SESSION, -EPROTO, 0 },
	/* 8 */ { F_STAGING_NO_FD, -EPROTO, 0 },
	/* 9 */ { F_FD_ELSEWHERE, -EPROTO, 0 },
	/* 10 */ { F_VERSION, -EPROTONOSUPPORT, 0 },
};

/* A header for any type and payload, sealed with a correct checksum. */
static size_t raw_frame(uint8_t *buf, uint8_t version, uint16_t type, uint64_t session, uint64_t seq,
			const void *payload, uint32_t len)
{
	struct gmig_hdr h = { .version = version, .type = type, .len = len, .session = session, .seq = seq };

	gmig_hdr_write(buf, &h, payload, len, NULL, 0);
	if (len)
		memcpy(buf + GMIG_HDR_SIZE, payload, len);
	return GMIG_HDR_SIZE + len;
}

START_TEST(test_fatal_frames)
{
	struct gmig_msg ping = { .type = GMIG_MSG_PING }, staging = { .type = GMIG_MSG_STAGING };
	uint8_t buf[256], zeros[8] = { 0 };
	size_t n = 0;
	int fd;

	ck_assert_int_eq(gsim_init(), 0);
	fa_open(&fa);
	ping.u.nonce.nonce = 7;
	switch (fatals[_i].kind) {
	case F_CHECKSUM:
		n = fa_encode(&fa, &ping, buf, sizeof(buf));
		buf[GMIG_HDR_SIZE + 3] ^= 1;
		break;
	case F_MAGIC:
		n = fa_encode(&fa, &ping, buf, sizeof(buf));
		buf[0] = 'X';
		break;
	case F_TYPE:
		n = raw_frame(buf, 1, 0x0999, FA_SESSION, ++fa.tx_seq, NULL, 0);
		break;
	case F_LENGTH:
		n = raw_frame(buf, 1, GMIG_MSG_PING, FA_SESSION, ++fa.tx_seq, zeros, 4);
		break;
	case F_FIELD:
		n = raw_frame(buf, 1, GMIG_MSG_FREEZE, FA_SESSION, ++fa.tx_seq, zeros, 4);
		break;
	case F_SEQ_GAP:
		fa.tx_seq++;
		n = fa_encode(&fa, &ping, buf, sizeof(buf));
		break;
	case F_SESSION:
		n = raw_frame(buf, 1, GMIG_MSG_PING, FA_SESSION + 1, ++fa.tx_seq, zeros, 8);
		break;
	case F_STAGING_NO_FD:
		staging.u.staging = (struct gmig_staging){ 4, 1 << 16 };
		n = fa_encode(&fa, &staging, buf, sizeof(buf));
		break;
	case F_FD_ELSEWHERE:
		/* The fd comes with a PING: that one is answered, the frame after it gives it away. */
		fd = memfd_create("stray", MFD_CLOEXEC);
		fa_send_fd(&fa, &ping, fd);
		close(fd);
		fa_expect(&fa, GMIG_MSG_PONG, &ping);
		ping.type = GMIG_MSG_PING;
		n = fa_encode(&fa, &ping, buf, sizeof(buf));
		break;
	case F_VERSION:
		n = raw_frame(buf, 2, GMIG_MSG_PING, FA_SESSION, ++fa.tx_seq, zeros, 8);
		break;
	}
	fa_send_bytes(&fa, buf, n);
	fa_expect_error(&fa, fatals[_i].code, fatals[_i].ref_type);
	fa_expect_closed(&fa);
	program_works();
	/* The link comes back a second later with a new session. */
	if (fatals[_i].kind == F_CHECKSUM) {
		ck_assert(fa_accept(&fa, 3000));
		fa_welcome(&fa);
		fa_ping(&fa, 42);
	}
}
END_TEST

START_TEST(test_bye)
{
	struct gmig_msg m = { .type = GMIG_MSG_BYE };

	ck_assert_int_eq(gsim_init(), 0);
	fa_open(&fa);
	fa_send(&fa, &m);
	/* 1: BYE ends the session without an ERROR */
	fa_expect_closed(&fa);
	program_works();
}
END_TEST

/* ========== requests refused in a phase; the session goes on ========== */

enum soft { S_RELEASE, S_ATTACH, S_RESTORE_BEGIN, S_RESTORE_END, S_STAGED, S_SLOT_FREE, S_SLOT_FREE_FAR,
	    S_WELCOME, S_INV_GPUS, S_HELLO, S_UNSEALED, S_SHORT_MEMFD };

static const struct {
	enum soft kind;
	int32_t code;
	uint16_t ref_type;
} softs[] = {
	/* 1 */ { S_RELEASE, -EBUSY, GMIG_MSG_RELEASE },
	/* 2 */ { S_ATTACH, -EBUSY, GMIG_MSG_ATTACH },
	/* 3 */ { S_RESTORE_BEGIN, -EBUSY, GMIG_MSG_RESTORE_BEGIN },
	/* 4 */ { S_RESTORE_END, -EPROTO, GMIG_MSG_RESTORE_END },
	/* 5 */ { S_STAGED, -EPROTO, GMIG_MSG_STAGED },
	/* 6 */ { S_SLOT_FREE, -EPROTO, GMIG_MSG_SLOT_FREE },
	/* 7 */ { S_SLOT_FREE_FAR, -EPROTO, GMIG_MSG_SLOT_FREE },
	/* 8 */ { S_WELCOME, -EPROTO, GMIG_MSG_WELCOME },
	/* 9 */ { S_INV_GPUS, -EPROTO, GMIG_MSG_INV_GPUS },
	/* 10 */ { S_HELLO, -EPROTO, GMIG_MSG_HELLO },
	/* 11 */ { S_UNSEALED, -EINVAL, GMIG_MSG_STAGING },
	/* 12 */ { S_SHORT_MEMFD, -EINVAL, GMIG_MSG_STAGING },
};

START_TEST(test_refused)
{
	struct gmig_msg m = { 0 };
	int fd;

	ck_assert_int_eq(gsim_init(), 0);
	fa_open(&fa);
	switch (softs[_i].kind) {
	case S_RELEASE:
		fa_simple(&fa, GMIG_MSG_RELEASE);
		break;
	case S_ATTACH:
		fa_attach(&fa, 0, uuid2);
		break;
	case S_RESTORE_BEGIN:
		m.type = GMIG_MSG_RESTORE_BEGIN;
		fa_send(&fa, &m);
		break;
	case S_RESTORE_END:
		fa_simple(&fa, GMIG_MSG_RESTORE_END);
		break;
	case S_STAGED:
		m.type = GMIG_MSG_STAGED;
		m.u.staged = (struct gmig_staged){ 1, 0, 4096, GMIG_ENC_RAW, 1, 4 };
		fa_send(&fa, &m);
		break;
	case S_SLOT_FREE:
		m.type = GMIG_MSG_SLOT_FREE;
		fa_send(&fa, &m);
		break;
	case S_SLOT_FREE_FAR:
		m.type = GMIG_MSG_SLOT_FREE;
		m.u.slot.slot = 999999;
		fa_send(&fa, &m);
		break;
	case S_WELCOME:
		fa_welcome(&fa);
		break;
	case S_INV_GPUS:
		fa_simple(&fa, GMIG_MSG_INV_GPUS);
		break;
	case S_HELLO:
		m.type = GMIG_MSG_HELLO;
		m.u.hello = (struct gmig_hello){ .min_version = 1, .max_version = 1, .role = GMIG_ROLE_AGENT };
		fa_send(&fa, &m);
		break;
	case S_UNSEALED:
		fa_staging(&fa, 4, 1 << 16, 0);
		break;
	case S_SHORT_MEMFD:
		fd = memfd_create("short", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		ck_assert_int_eq(ftruncate(fd, 4096), 0);
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
		m.type = GMIG_MSG_STAGING;
		m.u.staging = (struct gmig_staging){ 4, 1 << 16 };
		fa_send_fd(&fa, &m, fd);
		close(fd);
		break;
	}
	fa_expect_error(&fa, softs[_i].code, softs[_i].ref_type);
	/* The session goes on, and so does the program. */
	fa_ping(&fa, 1000 + (uint64_t)_i);
	program_works();
	fa_simple(&fa, GMIG_MSG_INV_REQUEST);
	fa_expect(&fa, GMIG_MSG_INV_CLIENT, &m);
}
END_TEST

START_TEST(test_round_without_staging)
{
	struct gmig_msg m = { .type = GMIG_MSG_ROUND_BEGIN };

	ck_assert_int_eq(gsim_init(), 0);
	ck_assert(fa_accept(&fa, FA_TIMEOUT_MS));
	fa_welcome(&fa);
	/* 1: a round before STAGING has nowhere to put its bytes */
	m.u.round_begin = (struct gmig_round_begin){ 1, 0 };
	fa_send(&fa, &m);
	fa_expect_error(&fa, -ENOBUFS, GMIG_MSG_ROUND_BEGIN);
	/* 2: the inventory works without it */
	fa_simple(&fa, GMIG_MSG_INV_REQUEST);
	fa_expect(&fa, GMIG_MSG_INV_CLIENT, &m);
	/* 3: and once STAGING came, the round runs */
	fa_staging(&fa, 2, 1 << 16, F_SEAL_SHRINK);
	fa_expect(&fa, GMIG_MSG_INV_CLIENT, &m);
	program_works();
	fa_round(&fa, 1, 0, NULL);
}
END_TEST

/* ========== a hostile restore ========== */

static void manifest(struct gmig_msg *m, uint8_t *rec, uint32_t pid, uint32_t region, uint64_t va,
		     uint64_t size)
{
	struct gmig_rec_manifest r = { pid, region, va, size, 65536 };

	ck_assert_int_eq(gmig_rec_put_manifest(rec, &r), GMIG_REC_manifest_SIZE);
	*m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_BEGIN };
	m->u.restore_begin = (struct gmig_restore_begin){ 1, size, { rec, GMIG_REC_manifest_SIZE } };
}

static void staged(uint32_t region, uint64_t offset, uint32_t length, uint8_t enc, uint32_t slot)
{
	struct gmig_msg m = { .type = GMIG_MSG_STAGED };

	m.u.staged = (struct gmig_staged){ region, offset, length, enc, 1, slot };
	fa_send(&fa, &m);
}

/* A program thread blocked in a call while frozen: it must come out only after THAW. */
static atomic_int blocked_rc = 1;

static void *blocked_call(void *arg)
{
	void *p;

	(void)arg;
	atomic_store(&blocked_rc, gsim_malloc(&p, 256));
	return NULL;
}

START_TEST(test_hostile_restore)
{
	static uint8_t copy[3 << 20], back[3 << 20];
	uint8_t rec[GMIG_REC_manifest_SIZE];
	uint8_t *p = open_with_memory(sizeof(copy), 5, copy);
	uint64_t size, va;
	uint32_t pid, id, S;
	struct gmig_msg m;
	pthread_t t;

	fa_round(&fa, 1, 0, NULL);
	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &m);
	ck_assert_int_eq(pthread_create(&t, NULL, blocked_call, NULL), 0);
	fa_simple(&fa, GMIG_MSG_RELEASE);
	fa_expect(&fa, GMIG_MSG_RELEASED, &m);
	/* 1: thaw or abort after release: no device to run on */
	fa_simple(&fa, GMIG_MSG_THAW);
	fa_expect_error(&fa, -EBUSY, GMIG_MSG_THAW);
	m = (struct gmig_msg){ .type = GMIG_MSG_ABORT };
	fa_send(&fa, &m);
	fa_expect_error(&fa, -EBUSY, GMIG_MSG_ABORT);
	/* 2: a restore before attach */
	manifest(&m, rec, fa.pid, fa.region.id, fa.region.va, fa.region.size);
	fa_send(&fa, &m);
	fa_expect_error(&fa, -EBUSY, GMIG_MSG_RESTORE_BEGIN);
	/* 3: attach to a GPU that does not exist */
	fa_attach(&fa, 0, (uint8_t[16]){ 1, 2, 3 });
	fa_expect_error(&fa, -ENODEV, GMIG_MSG_ATTACH);
	fa_attach(&fa, 0, uuid2);
	fa_expect(&fa, GMIG_MSG_ATTACHED, &m);

	pid = fa.pid;
	id = fa.region.id;
	va = fa.region.va;
	size = fa.region.size;
	S = fa.slots;
	/* 4..8: manifests that do not match the arena */
	manifest(&m, rec, pid + 1, id, va, size);
	fa_send(&fa, &m);
	fa_expect_error(&fa, -EINVAL, GMIG_MSG_RESTORE_BEGIN);
	manifest(&m, rec, pid, id + 1, va, size);
	fa_send(&fa, &m);
	fa_expect_error(&fa, -EINVAL, GMIG_MSG_RESTORE_BEGIN);
	manifest(&m, rec, pid, id, va + 4096, size);
	fa_send(&fa, &m);
	fa_expect_error(&fa, -EINVAL, GMIG_MSG_RESTORE_BEGIN);
	manifest(&m, rec, pid, id, va, size + G);
	fa_send(&fa, &m);
	fa_expect_error(&fa, -EINVAL, GMIG_MSG_RESTORE_BEGIN);
	manifest(&m, rec, pid, id, va, size - G);
	fa_send(&fa, &m);
	fa_expect_error(&fa, -EINVAL, GMIG_MSG_RESTORE_BEGIN);
	/* 9: STAGED before a valid RESTORE_BEGIN */
	staged(id, 0, 4096, GMIG_ENC_ZERO, 0);
	fa_expect_error(&fa, -EPROTO, GMIG_MSG_STAGED);

	manifest(&m, rec, pid, id, va, size);
	fa_send(&fa, &m);
	/* 10..15: STAGED out of bounds: the client's own slot, past the agent's, too long, bad region, offsets */
	staged(id, 0, 4096, GMIG_ENC_RAW, 0);
	fa_expect_error(&fa, -ERANGE, GMIG_MSG_STAGED);
	staged(id, 0, 4096, GMIG_ENC_RAW, 2 * S);
	fa_expect_error(&fa, -ERANGE, GMIG_MSG_STAGED);
	staged(id, 0, fa.slot_size + 1, GMIG_ENC_RAW, S);
	fa_expect_error(&fa, -ERANGE, GMIG_MSG_STAGED);
	staged(id + 1, 0, 4096, GMIG_ENC_RAW, S);
	fa_expect(&fa, GMIG_MSG_SLOT_FREE, &m);
	fa_expect_error(&fa, -ERANGE, GMIG_MSG_STAGED);
	staged(id, size, 1, GMIG_ENC_ZERO, 0);
	fa_expect_error(&fa, -ERANGE, GMIG_MSG_STAGED);
	staged(id, size - 4096, 8192, GMIG_ENC_ZERO, 0);
	fa_expect_error(&fa, -ERANGE, GMIG_MSG_STAGED);
	/* 16: an end with bytes missing */
	staged(id, 0, 4096, GMIG_ENC_ZERO, 0);
	fa_simple(&fa, GMIG_MSG_RESTORE_END);
	fa_expect_error(&fa, -ENODATA, GMIG_MSG_RESTORE_END);
	/* 17: thaw before a restore completed */
	fa_simple(&fa, GMIG_MSG_THAW);
	fa_expect_error(&fa, -EBUSY, GMIG_MSG_THAW);
	ck_assert_int_eq(atomic_load(&blocked_rc), 1);

	/* 18: the real restore, twice asked to end, then thaw */
	fa_restore(&fa, NULL);
	fa_simple(&fa, GMIG_MSG_RESTORE_END);
	fa_expect(&fa, GMIG_MSG_RESTORED, &m);
	ck_assert_int_eq(atomic_load(&blocked_rc), 1);
	fa_simple(&fa, GMIG_MSG_THAW);
	fa_expect(&fa, GMIG_MSG_THAWED, &m);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&blocked_rc), 0);
	ck_assert_int_eq(gsim_memcpy(back, p, sizeof(back), GSIM_DEVICE_TO_HOST), 0);
	ck_assert_mem_eq(back, copy, sizeof(copy));
	program_works();
}
END_TEST

/* ========== deadlines, repeats, aborts ========== */

static void sleepy_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	(void)block;
	(void)nblocks;
	usleep(*(uint32_t *)args * 1000);
}

START_TEST(test_freeze_deadline)
{
	static uint8_t copy[1 << 20];
	struct gmig_msg m, again;
	uint32_t ms = 600, len;
	uint8_t *blob;
	uint64_t t0;
	void *p;

	open_with_memory(sizeof(copy), 6, copy);
	ck_assert_int_eq(gsim_launch(sleepy_kernel, 1, &ms, sizeof(ms), NULL), 0);
	/* 1: the kernel outlives the deadline: ERROR, and the program was never stopped */
	fa_freeze(&fa, 50);
	fa_expect_error(&fa, -ETIMEDOUT, GMIG_MSG_FREEZE);
	t0 = gmig_now_us();
	ck_assert_int_eq(gsim_malloc(&p, 4096), 0);
	ck_assert_uint_lt(gmig_now_us() - t0, 300000);
	ck_assert_int_eq(gmig_link_phase(gmig_sim_link()), GMIG_PHASE_IDLE);
	/* 2: once the kernel is done, the freeze succeeds; asked twice, the same blob */
	ck_assert_int_eq(gsim_device_synchronize(), 0);
	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &m);
	len = m.u.frozen.tail.len;
	blob = malloc(len);
	memcpy(blob, m.u.frozen.tail.ptr, len);
	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &again);
	ck_assert_uint_eq(again.u.frozen.tail.len, len);
	ck_assert_mem_eq(again.u.frozen.tail.ptr, blob, len);
	free(blob);
	/* 3: thaw, and thaw again */
	fa_simple(&fa, GMIG_MSG_THAW);
	fa_expect(&fa, GMIG_MSG_THAWED, &m);
	fa_simple(&fa, GMIG_MSG_THAW);
	fa_expect(&fa, GMIG_MSG_THAWED, &m);
	program_works();
}
END_TEST

START_TEST(test_repeats)
{
	static uint8_t copy[2 << 20];
	struct gmig_totals first;
	struct gmig_msg m;

	open_with_memory(sizeof(copy), 7, copy);
	fa_round(&fa, 1, 0, NULL);
	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &m);
	/* 1: RELEASE twice */
	for (int i = 0; i < 2; i++) {
		fa_simple(&fa, GMIG_MSG_RELEASE);
		fa_expect(&fa, GMIG_MSG_RELEASED, &m);
	}
	/* 2: FREEZE while released still answers FROZEN */
	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &m);
	/* 3: ATTACH twice to the same target, then another one is refused */
	for (int i = 0; i < 2; i++) {
		fa_attach(&fa, 0, uuid2);
		fa_expect(&fa, GMIG_MSG_ATTACHED, &m);
	}
	fa_attach(&fa, 0, uuid1);
	fa_expect_error(&fa, -EBUSY, GMIG_MSG_ATTACH);
	/* 4: the restore, its end asked twice: the same totals */
	fa_restore(&fa, &first);
	fa_simple(&fa, GMIG_MSG_RESTORE_END);
	fa_expect(&fa, GMIG_MSG_RESTORED, &m);
	ck_assert_uint_eq(m.u.totals.chunks, first.chunks);
	ck_assert_uint_eq(m.u.totals.bytes, first.bytes);
	/* 5: a restore started again after it ended also completes */
	fa_restore(&fa, NULL);
	/* 6: ABORT once restored: it thaws on the target */
	m = (struct gmig_msg){ .type = GMIG_MSG_ABORT };
	fa_send(&fa, &m);
	fa_expect(&fa, GMIG_MSG_ABORTED, &m);
	ck_assert_uint_eq(m.u.rollback.phase, GMIG_PHASE_RESTORED);
	ck_assert_uint_eq(m.u.rollback.clients, 1);
	/* 7: ABORT when idle */
	m = (struct gmig_msg){ .type = GMIG_MSG_ABORT };
	fa_send(&fa, &m);
	fa_expect(&fa, GMIG_MSG_ABORTED, &m);
	ck_assert_uint_eq(m.u.rollback.phase, GMIG_PHASE_IDLE);
	program_works();
}
END_TEST

START_TEST(test_abort_frozen)
{
	static uint8_t copy[1 << 20], back[1 << 20];
	uint8_t *p = open_with_memory(sizeof(copy), 8, copy);
	struct gmig_msg m = { .type = GMIG_MSG_ABORT };
	pthread_t t;

	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &m);
	ck_assert_int_eq(pthread_create(&t, NULL, blocked_call, NULL), 0);
	usleep(50000);
	ck_assert_int_eq(atomic_load(&blocked_rc), 1);
	/* 1: ABORT while frozen thaws on the source, with nothing lost */
	m = (struct gmig_msg){ .type = GMIG_MSG_ABORT };
	fa_send(&fa, &m);
	fa_expect(&fa, GMIG_MSG_ABORTED, &m);
	ck_assert_uint_eq(m.u.rollback.phase, GMIG_PHASE_FROZEN);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&blocked_rc), 0);
	ck_assert_int_eq(gsim_memcpy(back, p, sizeof(back), GSIM_DEVICE_TO_HOST), 0);
	ck_assert_mem_eq(back, copy, sizeof(copy));
}
END_TEST

/* A round with one slot, whose frees the agent holds back: requests meanwhile wait their turn. */
static void start_slow_round(uint32_t round, uint32_t base, struct gmig_msg *first)
{
	struct gmig_msg m = { .type = GMIG_MSG_ROUND_BEGIN };

	fa_staging(&fa, 1, 1 << 16, F_SEAL_SHRINK);
	fa_expect(&fa, GMIG_MSG_INV_CLIENT, &m);
	m = (struct gmig_msg){ .type = GMIG_MSG_ROUND_BEGIN };
	m.u.round_begin = (struct gmig_round_begin){ round, base };
	fa_send(&fa, &m);
	for (;;) {
		fa_expect(&fa, GMIG_MSG_STAGED, first);
		if (first->u.staged.encoding == GMIG_ENC_RAW)
			break;
		fa_apply_staged(&fa, &first->u.staged, false);
	}
}

START_TEST(test_abort_during_round)
{
	static uint8_t copy[2 << 20];
	struct gmig_msg first, m;

	open_with_memory(sizeof(copy), 9, copy);
	start_slow_round(1, 0, &first);
	/* 1: while the round waits for its slot, PING is answered at once */
	fa_ping(&fa, 5);
	/* 2: an ABORT cuts it short: the round answers first (cancelled), then the ABORT */
	m = (struct gmig_msg){ .type = GMIG_MSG_ABORT };
	fa_send(&fa, &m);
	fa_expect_error(&fa, -ECANCELED, GMIG_MSG_ROUND_BEGIN);
	fa_expect(&fa, GMIG_MSG_ABORTED, &m);
	ck_assert_uint_eq(m.u.rollback.phase, GMIG_PHASE_PRECOPY);
	/* 3: the slot comes back late, and a new round runs whole */
	m = (struct gmig_msg){ .type = GMIG_MSG_SLOT_FREE };
	m.u.slot.slot = first.u.staged.slot;
	fa_send(&fa, &m);
	fa_round(&fa, 2, 1, NULL);
	program_works();
}
END_TEST

START_TEST(test_requests_during_round)
{
	static uint8_t copy[2 << 20];
	struct gmig_msg first, m;
	int type, inv_after = 0;
	bool ended = false;

	open_with_memory(sizeof(copy), 10, copy);
	start_slow_round(1, 0, &first);
	/* 1: an inventory request and a freeze during the round */
	fa_simple(&fa, GMIG_MSG_INV_REQUEST);
	fa_freeze(&fa, 5000);
	fa_apply_staged(&fa, &first.u.staged, true);
	/* 2: they are answered after ROUND_END, in the order they came */
	for (;;) {
		type = fa_recv(&fa, &m, FA_TIMEOUT_MS);
		ck_assert_int_gt(type, 0);
		if (type == GMIG_MSG_STAGED) {
			ck_assert(!ended);
			fa_apply_staged(&fa, &m.u.staged, true);
		} else if (type == GMIG_MSG_ROUND_END) {
			ended = true;
		} else if (type == GMIG_MSG_INV_CLIENT) {
			ck_assert(ended);
			inv_after = 1;
		} else {
			ck_assert_int_eq(type, GMIG_MSG_FROZEN);
			ck_assert_int_eq(inv_after, 1);
			break;
		}
	}
	fa_simple(&fa, GMIG_MSG_THAW);
	fa_expect(&fa, GMIG_MSG_THAWED, &m);
}
END_TEST

START_TEST(test_growth_inventory)
{
	static uint8_t copy[1 << 20];
	struct gmig_msg m = { .type = GMIG_MSG_ROUND_BEGIN };
	uint64_t before;
	void *more;

	open_with_memory(sizeof(copy), 11, copy);
	fa_round(&fa, 1, 0, NULL);
	before = fa.region.size;
	/* First fit puts it right after the first block, in the granule already there. */
	ck_assert_int_eq(gsim_malloc(&more, 3 * G), 0);
	ck_assert_int_eq(gsim_memset(more, 0x11, 3 * G), 0);
	/* 1: the grown region is told before any of its bytes */
	m.u.round_begin = (struct gmig_round_begin){ 2, 1 };
	fa_send(&fa, &m);
	fa_expect(&fa, GMIG_MSG_INV_CLIENT, &m);
	ck_assert_uint_gt(fa.region.size, before);
	before = (uintptr_t)more - fa.region.va;
	for (;;) {
		int type = fa_recv(&fa, &m, FA_TIMEOUT_MS);

		if (type != GMIG_MSG_STAGED) {
			ck_assert_int_eq(type, GMIG_MSG_ROUND_END);
			break;
		}
		/* Only the new block and the new granules changed. */
		ck_assert_uint_ge(m.u.staged.offset, before);
		fa_apply_staged(&fa, &m.u.staged, true);
	}
	ck_assert_uint_eq(m.u.round_end.dirty, (fa.region.size - before) / (64 << 10));
}
END_TEST

/* ========== the agent goes away ========== */

START_TEST(test_drop_while_frozen)
{
	static uint8_t copy[1 << 20];
	struct gmig_msg m;
	pthread_t t;

	open_with_memory(sizeof(copy), 12, copy);
	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &m);
	ck_assert_int_eq(pthread_create(&t, NULL, blocked_call, NULL), 0);
	usleep(50000);
	ck_assert_int_eq(atomic_load(&blocked_rc), 1);
	/* 1: the agent dies: the program thaws itself and goes on */
	close(fa.fd);
	fa.fd = -1;
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&blocked_rc), 0);
	program_works();
	/* 2: the next session hears why, right after WELCOME */
	ck_assert(fa_accept(&fa, 3000));
	fa_welcome(&fa);
	fa_expect_error(&fa, -ECONNRESET, 0);
	fa_ping(&fa, 9);
}
END_TEST

START_TEST(test_drop_while_released)
{
	static uint8_t copy[1 << 20], back[1 << 20];
	uint8_t *p = open_with_memory(sizeof(copy), 13, copy);
	struct gmig_msg m;
	pthread_t t;

	fa_round(&fa, 1, 0, NULL);
	fa_freeze(&fa, 5000);
	fa_expect(&fa, GMIG_MSG_FROZEN, &m);
	fa_simple(&fa, GMIG_MSG_RELEASE);
	fa_expect(&fa, GMIG_MSG_RELEASED, &m);
	ck_assert_int_eq(pthread_create(&t, NULL, blocked_call, NULL), 0);
	/* 1: the agent dies after release: the program stays frozen, it has no device */
	close(fa.fd);
	fa.fd = -1;
	ck_assert(fa_accept(&fa, 3000));
	fa_welcome(&fa);
	fa_expect_error(&fa, -ECONNRESET, 0);
	ck_assert_int_eq(atomic_load(&blocked_rc), 1);
	/* 2: a new agent attaches and restores it (the image survived in the fake) */
	fa_staging(&fa, 4, 256 << 10, F_SEAL_SHRINK);
	fa_expect(&fa, GMIG_MSG_INV_CLIENT, &m);
	fa_attach(&fa, 0, uuid1);
	fa_expect(&fa, GMIG_MSG_ATTACHED, &m);
	fa_restore(&fa, NULL);
	fa_simple(&fa, GMIG_MSG_THAW);
	fa_expect(&fa, GMIG_MSG_THAWED, &m);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&blocked_rc), 0);
	ck_assert_int_eq(gsim_memcpy(back, p, sizeof(back), GSIM_DEVICE_TO_HOST), 0);
	ck_assert_mem_eq(back, copy, sizeof(copy));
}
END_TEST

static Suite *link_suite(void)
{
	Suite *s = suite_create("link");
	TCase *tc = tcase_create("link");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_migration);
	tcase_add_loop_test(tc, test_fatal_frames, 0, sizeof(fatals) / sizeof(fatals[0]));
	tcase_add_test(tc, test_bye);
	tcase_add_loop_test(tc, test_refused, 0, sizeof(softs) / sizeof(softs[0]));
	tcase_add_test(tc, test_round_without_staging);
	tcase_add_test(tc, test_hostile_restore);
	tcase_add_test(tc, test_freeze_deadline);
	tcase_add_test(tc, test_repeats);
	tcase_add_test(tc, test_abort_frozen);
	tcase_add_test(tc, test_abort_during_round);
	tcase_add_test(tc, test_requests_during_round);
	tcase_add_test(tc, test_growth_inventory);
	tcase_add_test(tc, test_drop_while_frozen);
	tcase_add_test(tc, test_drop_while_released);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(link_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
