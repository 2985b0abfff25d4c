/* Check suite for the device-memory arena: first-fit sub-allocation, granule backing, release and attach. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "engine.h"
#include "simbe.h"
#include "umdtest.h"

#define G		GMIG_SIMDEV_GRANULE
#define DEV_BYTES	(8 * G)

static char dir[128];
static char dev1[256], dev2[256];
static uint8_t uuid2[16];
/* A sim backend over the suite's directory, with an engine of its own. */
static struct {
	struct gmig_engine engine;
	struct gmig_simbe sb;
} sim;
static struct gmig_bdev *dev;

static void suite_setup(void)
{
	ut_dir_create(dir, sizeof(dir));
}

static void suite_teardown(void)
{
	ut_dir_remove(dir);
}

/* Each test runs in its own process: its devices carry its pid in their names. */
static void setup(void)
{
	char name[32];

	snprintf(name, sizeof(name), "a%d", (int)getpid());
	ut_device(dir, name, DEV_BYTES, dev1, sizeof(dev1), NULL);
	snprintf(name, sizeof(name), "b%d", (int)getpid());
	ut_device(dir, name, DEV_BYTES, dev2, sizeof(dev2), uuid2);
	ck_assert_int_eq(gmig_engine_init(&sim.engine), 0);
	gmig_simbe_init(&sim.sb, &sim.engine, dir, dev1);
	ck_assert_int_eq(sim.sb.be.ops->attach(&sim.sb.be, NULL, &dev), 0);
}

static void teardown(void)
{
	sim.sb.be.ops->release(dev);
	gmig_engine_fini(&sim.engine);
	unlink(dev1);
	unlink(dev2);
}

/* The invariants every arena keeps: sorted, disjoint, aligned, inside, backed. */
static void check_invariants(struct gmig_arena *a)
{
	uint64_t end = 0;

	for (uint64_t i = 0; i < a->nallocs; i++) {
		ck_assert_uint_eq(a->allocs[i].off % GMIG_ARENA_ALIGN, 0);
		ck_assert_uint_eq(a->allocs[i].size % GMIG_ARENA_ALIGN, 0);
		ck_assert_uint_ge(a->allocs[i].off, end);
		end = a->allocs[i].off + a->allocs[i].size;
		ck_assert_uint_le(end, a->nbacked * a->granule);
	}
	ck_assert_uint_le(a->nbacked * a->granule, a->size);
}

/* --- table-driven allocation scripts --- */

enum { END, ALLOC, FREE, FREE_AT };

struct step {
	int op;
	uint64_t arg;		/* ALLOC: size; FREE: index of an earlier step; FREE_AT: an offset */
	int want;		/* result */
	uint64_t want_off;	/* ALLOC: offset from the arena's start */
};

struct script {
	uint64_t arena;		/* arena size */
	struct step steps[12];
};

static const struct script scripts[] = {
	/* 1: sizes round up to 256 and allocations follow each other */
	{ DEV_BYTES, { { ALLOC, 1, 0, 0 }, { ALLOC, 1, 0, 256 }, { ALLOC, 257, 0, 512 },
		       { ALLOC, 256, 0, 1024 } } },
	/* 2: a freed block is reused at the same address */
	{ DEV_BYTES, { { ALLOC, 4096, 0, 0 }, { ALLOC, 4096, 0, 4096 }, { FREE, 0, 0, 0 },
		       { ALLOC, 4096, 0, 0 } } },
	/* 3: fragmentation: a hole too small is skipped, then filled by what fits */
	{ DEV_BYTES, { { ALLOC, 1000, 0, 0 }, { ALLOC, 1000, 0, 1024 }, { ALLOC, 1000, 0, 2048 },
		       { FREE, 1, 0, 0 }, { ALLOC, 2000, 0, 3072 }, { ALLOC, 512, 0, 1024 },
		       { ALLOC, 512, 0, 1536 }, { ALLOC, 1, 0, 5120 } } },
	/* 4: first fit, not best fit */
	{ DEV_BYTES, { { ALLOC, 2048, 0, 0 }, { ALLOC, 2048, 0, 2048 }, { ALLOC, 512, 0, 4096 },
		       { ALLOC, 512, 0, 4608 }, { FREE, 0, 0, 0 }, { FREE, 2, 0, 0 },
		       { ALLOC, 512, 0, 0 }, { ALLOC, 512, 0, 512 } } },
	/* 5: exhaustion of the reservation, then room again after a free */
	{ 2 * G, { { ALLOC, 2 * G, 0, 0 }, { ALLOC, 1, -ENOMEM, 0 }, { FREE, 0, 0, 0 },
		   { ALLOC, 1, 0, 0 }, { ALLOC, 2 * G - 256, 0, 256 }, { ALLOC, 256, -ENOMEM, 0 } } },
	/* 6: size 0 is invalid, more than the reservation is out of memory */
	{ 2 * G, { { ALLOC, 0, -EINVAL, 0 }, { ALLOC, 2 * G + 1, -ENOMEM, 0 },
		   { ALLOC, UINT64_MAX, -ENOMEM, 0 } } },
	/* 7: frees of what is not an allocation's start fail, a double free fails */
	{ DEV_BYTES, { { ALLOC, 1024, 0, 0 }, { FREE_AT, 256, -EINVAL, 0 }, { FREE_AT, 4096, -EINVAL, 0 },
		       { FREE, 0, 0, 0 }, { FREE, 0, -EINVAL, 0 }, { FREE_AT, DEV_BYTES, -EINVAL, 0 } } },
	/* 8: the gap at the end of a granule is used before a new granule */
	{ DEV_BYTES, { { ALLOC, G - 512, 0, 0 }, { ALLOC, 1024, 0, G - 512 }, { ALLOC, 256, 0, G + 512 } } },
};

START_TEST(test_scripts)
{
	const struct script *sc = &scripts[_i];
	uint64_t vas[12] = { 0 }, va;
	struct gmig_arena a;

	ck_assert_int_eq(gmig_arena_init(&a, &sim.sb.be, dev, sc->arena, GMIG_CHUNK_DEFAULT), 0);
	for (int k = 0; k < 12 && sc->steps[k].op != END; k++) {
		const struct step *st = &sc->steps[k];
		int rc = 0;

		switch (st->op) {
		case ALLOC:
			rc = gmig_arena_alloc(&a, st->arg, &va);
			if (!rc) {
				vas[k] = va;
				ck_assert_msg(va - a.va == st->want_off, "script %d step %d: offset %llu",
					      _i + 1, k + 1, (unsigned long long)(va - a.va));
			}
			break;
		case FREE:
			rc = gmig_arena_free(&a, vas[st->arg]);
			break;
		case FREE_AT:
			rc = gmig_arena_free(&a, a.va + st->arg);
			break;
		}
		ck_assert_msg(rc == st->want, "script %d step %d: %d, want %d", _i + 1, k + 1, rc, st->want);
		check_invariants(&a);
	}
	gmig_arena_fini(&a);
}
END_TEST

/* --- contains --- */

START_TEST(test_contains)
{
	struct gmig_arena a;
	uint64_t x, y;

	ck_assert_int_eq(gmig_arena_init(&a, &sim.sb.be, dev, DEV_BYTES, GMIG_CHUNK_DEFAULT), 0);
	ck_assert_int_eq(gmig_arena_alloc(&a, 1000, &x), 0);
	ck_assert_int_eq(gmig_arena_alloc(&a, 4096, &y), 0);
	/* 1: all of an allocation, rounded size included */
	ck_assert(gmig_arena_contains(&a, x, 1024));
	/* 2: inside the second one */
	ck_assert(gmig_arena_contains(&a, y + 100, 3996));
	/* 3: straddling two allocations */
	ck_assert(!gmig_arena_contains(&a, x + 1000, 100));
	/* 4: past the end of the last */
	ck_assert(!gmig_arena_contains(&a, y, 4097));
	/* 5: empty, below, far above */
	ck_assert(!gmig_arena_contains(&a, x, 0));
	ck_assert(!gmig_arena_contains(&a, a.va - 1, 1));
	ck_assert(!gmig_arena_contains(&a, a.va + a.size, 1));
	ck_assert(!gmig_arena_contains(&a, x, UINT64_MAX));
	/* 6: not after a free */
	ck_assert_int_eq(gmig_arena_free(&a, x), 0);
	ck_assert(!gmig_arena_contains(&a, x, 1));
	gmig_arena_fini(&a);
}
END_TEST

/* --- backing, regions, device exhaustion --- */

START_TEST(test_backing_and_regions)
{
	struct gmig_region r[2];
	struct gmig_arena a;
	uint64_t x, y;

	ck_assert_int_eq(gmig_arena_init(&a, &sim.sb.be, dev, DEV_BYTES, 128 << 10), 0);
	/* 1: nothing backed, no region */
	ck_assert_uint_eq(gmig_arena_regions(&a, r, 2), 0);
	ck_assert_uint_eq(ut_device_free(dev1), 8);
	/* 2: an allocation backs whole granules from the front */
	ck_assert_int_eq(gmig_arena_alloc(&a, G + 1, &x), 0);
	ck_assert_uint_eq(a.nbacked, 2);
	ck_assert_uint_eq(ut_device_free(dev1), 6);
	ck_assert_uint_eq(gmig_arena_regions(&a, r, 2), 1);
	ck_assert_uint_eq(r[0].id, GMIG_ARENA_REGION_ID);
	ck_assert_uint_eq(r[0].va, a.va);
	ck_assert_uint_eq(r[0].size, 2 * G);
	ck_assert_uint_eq(r[0].chunk, 128 << 10);
	ck_assert_uint_eq(a.va % G, 0);
	/* 3: the memory is there and shared with the device file */
	memset((void *)(uintptr_t)x, 0x5a, G + 1);
	/* 4: a free keeps the granules: the region never shrinks */
	ck_assert_int_eq(gmig_arena_free(&a, x), 0);
	ck_assert_uint_eq(gmig_arena_regions(&a, r, 2), 1);
	ck_assert_uint_eq(r[0].size, 2 * G);
	/* 5: growing again adds granules at the end, same region id and address */
	ck_assert_int_eq(gmig_arena_alloc(&a, 3 * G, &y), 0);
	ck_assert_uint_eq(y, a.va);
	ck_assert_uint_eq(gmig_arena_regions(&a, r, 2), 1);
	ck_assert_uint_eq(r[0].size, 3 * G);
	gmig_arena_fini(&a);
	/* 6: fini gives every granule back */
	ck_assert_uint_eq(ut_device_free(dev1), 8);
}
END_TEST

START_TEST(test_device_full)
{
	struct gmig_simdev *sd;
	struct gmig_arena a;
	uint64_t off, x;

	/* Another live owner (init, pid 1) holds 5 of the 8 granules. */
	ck_assert_int_eq(gmig_simdev_open(dev1, &sd), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(gmig_simdev_alloc(sd, 1, &off), 0);
	ck_assert_int_eq(gmig_arena_init(&a, &sim.sb.be, dev, DEV_BYTES, GMIG_CHUNK_DEFAULT), 0);
	/* 1: two granules fit */
	ck_assert_int_eq(gmig_arena_alloc(&a, 2 * G, &x), 0);
	/* 2: two more do not, and the one that could be taken is given back */
	ck_assert_int_eq(gmig_arena_alloc(&a, 2 * G, &x), -ENOMEM);
	ck_assert_uint_eq(a.nbacked, 2);
	ck_assert_uint_eq(ut_device_free(dev1), 1);
	/* 3: one more does */
	ck_assert_int_eq(gmig_arena_alloc(&a, G, &x), 0);
	ck_assert_uint_eq(ut_device_free(dev1), 0);
	check_invariants(&a);
	gmig_arena_fini(&a);
	gmig_simdev_close(sd);
}
END_TEST

/* --- fault injection: the n-th map fails --- */

static struct gmig_backend_ops faulty_ops;
static int map_calls, map_fail_at;

static int faulty_map(struct gmig_bdev *d, uint64_t va, uint64_t *handle)
{
	if (++map_calls == map_fail_at)
		return -EIO;
	return sim.sb.be.ops->map(d, va, handle);
}

START_TEST(test_map_faults)
{
	struct gmig_be fbe = { &faulty_ops, sim.sb.be.priv };
	struct gmig_arena a;
	uint64_t x;

	faulty_ops = *sim.sb.be.ops;
	faulty_ops.map = faulty_map;
	/* Rows 1..3: the first, second, third granule of a 3-granule allocation fails. */
	for (int k = 1; k <= 3; k++) {
		ck_assert_int_eq(gmig_arena_init(&a, &fbe, dev, DEV_BYTES, GMIG_CHUNK_DEFAULT), 0);
		map_calls = 0;
		map_fail_at = k;
		ck_assert_int_eq(gmig_arena_alloc(&a, 3 * G, &x), -EIO);
		ck_assert_uint_eq(a.nbacked, 0);
		ck_assert_uint_eq(a.nallocs, 0);
		ck_assert_uint_eq(ut_device_free(dev1), 8);
		map_fail_at = 0;
		ck_assert_int_eq(gmig_arena_alloc(&a, 3 * G, &x), 0);
		ck_assert_uint_eq(ut_device_free(dev1), 5);
		gmig_arena_fini(&a);
	}
}
END_TEST

/* --- release and attach --- */

START_TEST(test_release_attach)
{
	struct gmig_be fbe = { &faulty_ops, sim.sb.be.priv };
	struct gmig_bdev *dev_b;
	struct gmig_arena a;
	uint64_t x, y;

	faulty_ops = *sim.sb.be.ops;
	faulty_ops.map = faulty_map;
	map_fail_at = 0;
	ck_assert_int_eq(gmig_arena_init(&a, &fbe, dev, DEV_BYTES, GMIG_CHUNK_DEFAULT), 0);
	ck_assert_int_eq(gmig_arena_alloc(&a, 3 * G, &x), 0);
	ck_assert_int_eq(gmig_arena_alloc(&a, 1000, &y), 0);
	memset((void *)(uintptr_t)x, 0xab, 3 * G);

	/* 1: release gives the granules back and keeps the table */
	ck_assert_int_eq(gmig_arena_release(&a), 0);
	ck_assert_ptr_null(a.dev);
	ck_assert_uint_eq(ut_device_free(dev1), 8);
	ck_assert_uint_eq(a.nallocs, 2);
	/* 2: no allocation that needs a new granule while released */
	ck_assert_int_eq(gmig_arena_alloc(&a, 2 * G, &y), -ENODEV);
	/* 3: a second release is harmless */
	ck_assert_int_eq(gmig_arena_release(&a), 0);

	ck_assert_int_eq(sim.sb.be.ops->attach(&sim.sb.be, uuid2, &dev_b), 0);
	/* 4..7: attach fails at each of the four granules: all or nothing */
	for (int k = 1; k <= 4; k++) {
		map_calls = 0;
		map_fail_at = k;
		ck_assert_int_eq(gmig_arena_attach(&a, dev_b), -EIO);
		ck_assert_ptr_null(a.dev);
		ck_assert_uint_eq(ut_device_free(dev2), 8);
	}
	/* 8: attach maps the same addresses from the other device */
	map_fail_at = 0;
	ck_assert_int_eq(gmig_arena_attach(&a, dev_b), 0);
	ck_assert_ptr_eq(a.dev, dev_b);
	ck_assert_uint_eq(ut_device_free(dev2), 4);
	/* The new device's memory, not the old bytes: it is writable and fresh (sparse zeros). */
	ck_assert_uint_eq(((uint8_t *)(uintptr_t)x)[12345], 0);
	memset((void *)(uintptr_t)x, 0xcd, 4 * G);
	/* 9: attaching twice is refused */
	ck_assert_int_eq(gmig_arena_attach(&a, dev_b), -EBUSY);
	/* 10: the first device's granules stay free; the second's go back at fini */
	ck_assert_uint_eq(ut_device_free(dev1), 8);
	gmig_arena_fini(&a);
	ck_assert_uint_eq(ut_device_free(dev2), 8);
	sim.sb.be.ops->release(dev_b);
}
END_TEST

START_TEST(test_attach_too_small)
{
	char small[256], name[32];
	uint8_t uuid[16];
	struct gmig_bdev *dev_s;
	struct gmig_arena a;
	uint64_t x;

	snprintf(name, sizeof(name), "s%d", (int)getpid());
	ut_device(dir, name, 2 * G, small, sizeof(small), uuid);
	ck_assert_int_eq(gmig_arena_init(&a, &sim.sb.be, dev, DEV_BYTES, GMIG_CHUNK_DEFAULT), 0);
	ck_assert_int_eq(gmig_arena_alloc(&a, 3 * G, &x), 0);
	ck_assert_int_eq(gmig_arena_release(&a), 0);
	ck_assert_int_eq(sim.sb.be.ops->attach(&sim.sb.be, uuid, &dev_s), 0);
	/* 1: three granules do not fit a device of two; nothing is kept */
	ck_assert_int_eq(gmig_arena_attach(&a, dev_s), -ENOMEM);
	ck_assert_uint_eq(ut_device_free(small), 2);
	sim.sb.be.ops->release(dev_s);
	gmig_arena_fini(&a);
	unlink(small);
}
END_TEST

static Suite *arena_suite(void)
{
	Suite *s = suite_create("arena");
	TCase *tc = tcase_create("arena");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_scripts, 0, sizeof(scripts) / sizeof(scripts[0]));
	tcase_add_test(tc, test_contains);
	tcase_add_test(tc, test_backing_and_regions);
	tcase_add_test(tc, test_device_full);
	tcase_add_test(tc, test_map_faults);
	tcase_add_test(tc, test_release_attach);
	tcase_add_test(tc, test_attach_too_small);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(arena_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
