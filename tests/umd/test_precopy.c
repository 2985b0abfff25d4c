/* Check suite for pre-copy rounds: what is staged, zero runs, slot sizes, copy-then-hash, faults. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "cover.h"
#include "precopy.h"
#include "engine.h"
#include "simbe.h"
#include "umdtest.h"

#define G	GMIG_SIMDEV_GRANULE
#define NSLOTS	4

static char dir[128], devpath[256];
/* A sim backend over the suite's directory, with an engine of its own. */
static struct {
	struct gmig_engine engine;
	struct gmig_simbe sb;
} sim;

/* A sink standing in for the agent: it takes every STAGED at once and rebuilds the region. */
struct tsink {
	uint8_t *slots;
	uint32_t slot_size;
	bool held[NSLOTS];
	uint8_t *image;
	uint64_t size;
	struct gmig_cover cover;	/* bytes staged this round */
	uint32_t nraw, nzero, takes, puts;
	uint32_t fail_take_at;		/* take number k fails, 0: none */
};

static int t_take(void *ctx, uint32_t *slot, uint8_t **mem)
{
	struct tsink *t = ctx;

	if (++t->takes == t->fail_take_at)
		return -EIO;
	for (uint32_t i = 0; i < NSLOTS; i++) {
		if (!t->held[i]) {
			t->held[i] = true;
			*slot = i;
			*mem = t->slots + (size_t)i * t->slot_size;
			return 0;
		}
	}
	ck_abort_msg("no free slot: one was never handed on or put back");
	return -EAGAIN;
}

static int t_staged(void *ctx, const struct gmig_staged *s)
{
	struct tsink *t = ctx;
	uint64_t before;

	ck_assert_uint_eq(s->region, GMIG_ARENA_REGION_ID);
	ck_assert_uint_gt(s->length, 0);
	ck_assert_uint_le(s->offset + s->length, t->size);
	/* Within a round, no byte is staged twice. */
	before = gmig_cover_bytes(&t->cover);
	ck_assert_int_eq(gmig_cover_add(&t->cover, s->offset, s->length), 0);
	ck_assert_uint_eq(gmig_cover_bytes(&t->cover), before + s->length);
	if (s->encoding == GMIG_ENC_ZERO) {
		ck_assert_uint_eq(s->slot, 0);
		ck_assert_uint_le(s->length, GMIG_DATA_MAX);
		memset(t->image + s->offset, 0, s->length);
		t->nzero++;
		return 0;
	}
	ck_assert_uint_eq(s->encoding, GMIG_ENC_RAW);
	ck_assert_uint_lt(s->slot, NSLOTS);
	ck_assert(t->held[s->slot]);
	ck_assert_uint_le(s->length, t->slot_size);
	memcpy(t->image + s->offset, t->slots + (size_t)s->slot * t->slot_size, s->length);
	t->held[s->slot] = false;	/* the agent copies it out and frees it at once */
	t->nraw++;
	return 0;
}

static void t_put(void *ctx, uint32_t slot)
{
	struct tsink *t = ctx;

	ck_assert(t->held[slot]);
	t->held[slot] = false;
	t->puts++;
}

static void tsink_init(struct tsink *t, uint32_t slot_size, uint64_t size)
{
	memset(t, 0, sizeof(*t));
	t->slot_size = slot_size;
	t->slots = malloc((size_t)NSLOTS * slot_size);
	t->size = size;
	t->image = malloc(size);
	memset(t->image, 0xee, size);	/* zero runs must really be written */
	gmig_cover_init(&t->cover);
}

static void tsink_round(struct tsink *t)
{
	gmig_cover_clear(&t->cover);
	t->nraw = t->nzero = t->takes = t->puts = 0;
}

static void tsink_free(struct tsink *t)
{
	free(t->slots);
	free(t->image);
	gmig_cover_clear(&t->cover);
}

static struct gmig_sink sink_of(struct tsink *t)
{
	return (struct gmig_sink){ t, t->slot_size, t_take, t_staged, t_put };
}

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

	snprintf(name, sizeof(name), "p%d", (int)getpid());
	ut_device(dir, name, 16 * G, devpath, sizeof(devpath), NULL);
	ck_assert_int_eq(gmig_engine_init(&sim.engine), 0);
	gmig_simbe_init(&sim.sb, &sim.engine, dir, devpath);
}

static void teardown(void)
{
	gmig_engine_fini(&sim.engine);
	unlink(devpath);
}

/* Device memory of 5 MiB allocated (6 MiB region): random bytes with zero stretches. */
static uint8_t *program_memory(struct gmig_umd *u, uint64_t seed)
{
	uint64_t va;
	uint8_t *p;

	ck_assert_int_eq(gmig_arena_alloc(&u->arena, 5 * UT_MIB, &va), 0);
	p = (uint8_t *)(uintptr_t)va;
	ut_fill(p, 5 * UT_MIB, &seed);
	memset(p + 100000, 0, 700000);		/* zero chunks in the middle */
	memset(p + 3 * UT_MIB, 0, 64 << 10);	/* one zero chunk-sized stretch */
	p[4 * UT_MIB + 5] = 0;
	return p;
}

/* --- a full round for every chunk and slot size combination --- */

static const struct {
	uint32_t chunk, slot_size;
} sizes[] = {
	/* 1 */ { 64 << 10, 64 << 10 },
	/* 2: four chunks share a slot */
	{ 64 << 10, 256 << 10 },
	/* 3: the largest slot */
	{ 64 << 10, GMIG_DATA_MAX },
	/* 4: a chunk in four slots */
	{ 256 << 10, 64 << 10 },
	/* 5: the smallest chunks and slots */
	{ GMIG_CHUNK_MIN, GMIG_CHUNK_MIN },
	/* 6: the largest chunk, larger than a granule */
	{ GMIG_CHUNK_MAX, 1 << 20 },
};

START_TEST(test_full_round)
{
	struct gmig_round_end st;
	struct gmig_umd u;
	struct tsink t;
	struct gmig_sink sink;
	uint8_t *mem;
	uint64_t size, nchunks, zero = 0;

	ck_assert_int_eq(gmig_umd_init(&u, &sim.sb.be, sizes[_i].chunk), 0);
	mem = program_memory(&u, 42);
	size = u.arena.nbacked * G;
	nchunks = (size + sizes[_i].chunk - 1) / sizes[_i].chunk;
	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t n = size - c * sizes[_i].chunk < sizes[_i].chunk ? size - c * sizes[_i].chunk
									     : sizes[_i].chunk;

		zero += gmig_fp_is_zero(mem + c * sizes[_i].chunk, n);
	}
	tsink_init(&t, sizes[_i].slot_size, size);
	sink = sink_of(&t);

	/* 1: round 1 sends every chunk; the image is the memory */
	ck_assert_int_eq(gmig_precopy_round(&u, 1, 0, &sink, &st), 0);
	ck_assert_mem_eq(t.image, mem, size);
	ck_assert(gmig_cover_full(&t.cover, size));
	ck_assert_uint_eq(st.round, 1);
	ck_assert_uint_eq(st.chunks, nchunks);
	ck_assert_uint_eq(st.dirty, nchunks);
	ck_assert_uint_eq(st.zero, zero);
	ck_assert_uint_lt(st.bytes, size);
	ck_assert_uint_gt(t.nzero, 0);
	/* Contiguous pieces share slots: never more RAW frames than pieces. */
	ck_assert_uint_le(t.nraw, (size + sizes[_i].slot_size - 1) / sizes[_i].slot_size + t.nzero + 1);
	/* The print kept is that of the bytes sent. */
	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t off = c * sizes[_i].chunk;
		uint64_t n = size - off < sizes[_i].chunk ? size - off : sizes[_i].chunk;

		ck_assert_uint_eq(u.fp.regions[0].cur[c], XXH3_64bits(t.image + off, n));
	}

	/* 2: nothing changed: nothing goes */
	tsink_round(&t);
	ck_assert_int_eq(gmig_precopy_round(&u, 2, 1, &sink, &st), 0);
	ck_assert_uint_eq(st.dirty, 0);
	ck_assert_uint_eq(t.nraw + t.nzero, 0);
	ck_assert_uint_eq(t.takes, t.puts);

	/* 3: one byte changed: its chunk goes, alone */
	mem[3 * UT_MIB + 77777] ^= 0xff;
	tsink_round(&t);
	ck_assert_int_eq(gmig_precopy_round(&u, 3, 2, &sink, &st), 0);
	ck_assert_uint_eq(st.dirty, 1);
	ck_assert_uint_eq(gmig_cover_bytes(&t.cover), sizes[_i].chunk);
	ck_assert_uint_eq(t.cover.v[0].start, (3 * UT_MIB + 77777) / sizes[_i].chunk * sizes[_i].chunk);
	ck_assert_mem_eq(t.image, mem, size);

	/* 4: a chunk made zero goes as a zero run */
	memset(mem, 0, sizes[_i].chunk);
	tsink_round(&t);
	ck_assert_int_eq(gmig_precopy_round(&u, 4, 3, &sink, &st), 0);
	ck_assert_uint_eq(st.dirty, 1);
	ck_assert_uint_eq(st.zero, 1);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_uint_eq(t.nraw, 0);
	ck_assert_mem_eq(t.image, mem, size);

	tsink_free(&t);
	gmig_umd_fini(&u);
}
END_TEST

/* --- the region grows between rounds --- */

START_TEST(test_growth)
{
	struct gmig_round_end st;
	struct gmig_umd u;
	struct tsink t;
	struct gmig_sink sink;
	uint64_t va, seed = 7;

	ck_assert_int_eq(gmig_umd_init(&u, &sim.sb.be, 64 << 10), 0);
	ck_assert_int_eq(gmig_arena_alloc(&u.arena, G, &va), 0);
	ut_fill((void *)(uintptr_t)va, G, &seed);
	tsink_init(&t, 1 << 20, 4 * G);
	sink = sink_of(&t);
	ck_assert_int_eq(gmig_precopy_round(&u, 1, 0, &sink, &st), 0);
	ck_assert_uint_eq(st.chunks, G / (64 << 10));
	/* 1: two more granules: only they go */
	ck_assert_int_eq(gmig_arena_alloc(&u.arena, 2 * G, &va), 0);
	ut_fill((void *)(uintptr_t)va, 2 * G, &seed);
	tsink_round(&t);
	ck_assert_int_eq(gmig_precopy_round(&u, 2, 1, &sink, &st), 0);
	ck_assert_uint_eq(st.chunks, 3 * G / (64 << 10));
	ck_assert_uint_eq(st.dirty, 2 * G / (64 << 10));
	ck_assert_uint_eq(t.cover.v[0].start, G);
	ck_assert_mem_eq(t.image, (void *)(uintptr_t)u.arena.va, 3 * G);
	tsink_free(&t);
	gmig_umd_fini(&u);
}
END_TEST

/* --- copy-then-hash: a kernel writes between the device fingerprint and the copy, or after it --- */

static struct gmig_backend_ops racy_ops;
static uint64_t race_va;	/* flipped once, by the first call of the racing op that covers it */

static void race(uint64_t va, uint64_t len)
{
	if (race_va >= va && race_va < va + len) {
		((uint8_t *)(uintptr_t)race_va)[0] ^= 0x5a;
		race_va = 0;
	}
}

static int racy_fingerprint(struct gmig_bdev *d, uint64_t va, uint64_t len, uint32_t chunk, uint64_t *out)
{
	int err = sim.sb.be.ops->fingerprint(d, va, len, chunk, out);

	race(va, len);
	return err;
}

static int racy_read(struct gmig_bdev *d, uint64_t va, void *dst, size_t len)
{
	int err = sim.sb.be.ops->read(d, va, dst, len);

	race(va, len);
	return err;
}

START_TEST(test_copy_then_hash)
{
	struct gmig_be rbe = { &racy_ops, sim.sb.be.priv };
	const uint64_t chunk = 64 << 10, c = 20;
	bool after_copy = _i == 1;
	struct gmig_round_end st;
	struct gmig_umd u;
	struct tsink t;
	struct gmig_sink sink;
	uint8_t *mem;
	uint64_t size;

	racy_ops = *sim.sb.be.ops;
	if (after_copy)
		racy_ops.read = racy_read;
	else
		racy_ops.fingerprint = racy_fingerprint;
	ck_assert_int_eq(gmig_umd_init(&u, &rbe, chunk), 0);
	mem = program_memory(&u, 9);
	size = u.arena.nbacked * G;
	tsink_init(&t, chunk, size);
	sink = sink_of(&t);
	race_va = (uintptr_t)mem + c * chunk + 3;
	ck_assert_int_eq(gmig_precopy_round(&u, 1, 0, &sink, &st), 0);
	/* 1: the print kept is that of the bytes sent, not of what the device fingerprint saw */
	ck_assert_uint_eq(u.fp.regions[0].cur[c], XXH3_64bits(t.image + c * chunk, chunk));
	tsink_round(&t);
	ck_assert_int_eq(gmig_precopy_round(&u, 2, 1, &sink, &st), 0);
	if (after_copy) {
		/* 2: written after the copy: the next round sends the chunk again */
		ck_assert_uint_eq(st.dirty, 1);
		ck_assert_uint_eq(t.cover.v[0].start, c * chunk);
	} else {
		/* 3: written before the copy: the bytes sent were already new, nothing goes again */
		ck_assert_uint_eq(st.dirty, 0);
	}
	ck_assert_mem_eq(t.image, mem, size);
	tsink_free(&t);
	gmig_umd_fini(&u);
}
END_TEST

/* --- fault injection: the k-th slot cannot be had --- */

START_TEST(test_take_faults)
{
	struct gmig_round_end st;
	struct gmig_umd u;
	struct tsink t;
	struct gmig_sink sink;
	uint8_t *mem;
	uint64_t size;

	ck_assert_int_eq(gmig_umd_init(&u, &sim.sb.be, 64 << 10), 0);
	mem = program_memory(&u, 3);
	size = u.arena.nbacked * G;
	tsink_init(&t, 256 << 10, size);
	sink = sink_of(&t);
	/* Rows 1..5: take number k fails; the round fails and holds no slot. */
	for (uint32_t k = 1; k <= 5; k++) {
		tsink_round(&t);
		t.fail_take_at = k;
		ck_assert_int_eq(gmig_precopy_round(&u, k, 0, &sink, &st), -EIO);
		for (int i = 0; i < NSLOTS; i++)
			ck_assert(!t.held[i]);
		ck_assert(!u.fp.cur_whole);
	}
	/* 6: the round against a base that was cut short sends everything again */
	tsink_round(&t);
	t.fail_take_at = 0;
	ck_assert_int_eq(gmig_precopy_round(&u, 6, 5, &sink, &st), 0);
	ck_assert_uint_eq(st.dirty, st.chunks);
	ck_assert_mem_eq(t.image, mem, size);
	tsink_free(&t);
	gmig_umd_fini(&u);
}
END_TEST

static Suite *precopy_suite(void)
{
	Suite *s = suite_create("precopy");
	TCase *tc = tcase_create("precopy");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_full_round, 0, sizeof(sizes) / sizeof(sizes[0]));
	tcase_add_test(tc, test_growth);
	tcase_add_loop_test(tc, test_copy_then_hash, 0, 2);
	tcase_add_test(tc, test_take_faults);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(precopy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
