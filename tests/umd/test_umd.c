/* Check suite for the client core's verbs: freeze, thaw, release, attach, and the blob they keep. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmig/message.h"
#include "gmig/sim.h"
#include "simapi.h"
#include "umdtest.h"

#define G	GMIG_SIMDEV_GRANULE

static char dir[128], dev1[256], dev2[256];
static uint8_t uuid1[16], uuid2[16];

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
	ut_device(dir, name, 8 * G, dev1, sizeof(dev1), uuid1);
	snprintf(name, sizeof(name), "b%d", (int)getpid());
	ut_device(dir, name, 8 * G, dev2, sizeof(dev2), uuid2);
	setenv("GMIG_SIM_DIR", dir, 1);
	setenv("GMIG_SIM_DEVICE", dev1, 1);
	setenv("GMIG_DISABLE", "1", 1);
}

static void teardown(void)
{
	gmig_sim_shutdown();
	unlink(dev1);
	unlink(dev2);
}

static struct gmig_umd *started(void)
{
	ck_assert_int_eq(gsim_init(), 0);
	ck_assert_ptr_nonnull(gmig_sim_umd());
	ck_assert_ptr_null(gmig_sim_link());
	return gmig_sim_umd();
}

START_TEST(test_preconditions)
{
	struct gmig_umd *u = started();

	/* 1: release and attach need a freeze; thaw without one is nothing */
	ck_assert_int_eq(gmig_umd_release(u), -EBUSY);
	ck_assert_int_eq(gmig_umd_attach(u, uuid2), -EBUSY);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	/* 2: freeze twice is once */
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	/* 3: attach while the device is still held */
	ck_assert_int_eq(gmig_umd_attach(u, uuid2), -EBUSY);
	/* 4: once released, no thaw until attached */
	ck_assert_int_eq(gmig_umd_release(u), 0);
	ck_assert_int_eq(gmig_umd_release(u), 0);
	ck_assert_int_eq(gmig_umd_thaw(u), -EBUSY);
	ck_assert_int_eq(gmig_umd_device(u, &(struct gmig_bdev_info){ 0 }, NULL), -ENODEV);
	/* 5: attach to a device that is not there */
	ck_assert_int_eq(gmig_umd_attach(u, (uint8_t[16]){ 9 }), -ENODEV);
	ck_assert_int_eq(gmig_umd_attach(u, uuid2), 0);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	ck_assert(!gmig_gate_is_closed(&u->gate));
}
END_TEST

START_TEST(test_blob)
{
	struct gmig_umd *u = started();
	struct gmig_state s;
	gsim_stream_t st;
	void *a, *b;

	ck_assert_int_eq(gsim_malloc(&a, 1000), 0);
	ck_assert_int_eq(gsim_malloc(&b, 3 * G), 0);
	ck_assert_int_eq(gsim_stream_create(&st), 0);
	ck_assert_int_eq(gsim_memset(a, 1, 1000), 0);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	/* 1: the blob holds the device, arena, regions, streams and allocations */
	ck_assert_int_eq(gmig_state_decode(u->blob, u->blob_len, &s), 0);
	ck_assert_uint_eq(s.backend, GMIG_BACKEND_SIM);
	ck_assert_mem_eq(s.uuid, uuid1, 16);
	ck_assert_uint_eq(s.arena_va, u->arena.va);
	ck_assert_uint_eq(s.arena_size, 8 * G);
	ck_assert_uint_eq(s.nregions, 1);
	ck_assert_uint_eq(s.regions[0].size, 4 * G);
	ck_assert_uint_eq(s.regions[0].chunk, GMIG_CHUNK_DEFAULT);
	ck_assert_uint_eq(s.nqueues, 2);
	ck_assert_uint_eq(s.queues[0].id, 1);
	ck_assert_uint_eq(s.queues[0].submitted, 1);
	ck_assert_uint_eq(s.nallocs, 2);
	ck_assert_uint_eq(s.allocs[0].off, (uintptr_t)a - u->arena.va);
	ck_assert_uint_eq(s.allocs[0].size, 1024);
	ck_assert_uint_eq(s.allocs[1].off, (uintptr_t)b - u->arena.va);
	gmig_state_clear(&s);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	ck_assert_ptr_null(u->blob);
}
END_TEST

START_TEST(test_stale_blob)
{
	struct gmig_umd *u = started();
	struct gmig_state s;
	uint8_t *good, *bad;
	size_t good_len, bad_len;
	void *a, *b;

	ck_assert_int_eq(gsim_malloc(&a, 4096), 0);
	ck_assert_int_eq(gsim_malloc(&b, 4096), 0);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	ck_assert_int_eq(gmig_umd_release(u), 0);
	/* A blob that remembers one allocation fewer than the program has. */
	ck_assert_int_eq(gmig_state_decode(u->blob, u->blob_len, &s), 0);
	s.nallocs = 1;
	ck_assert_int_eq(gmig_state_encode(&s, &bad, &bad_len), 0);
	gmig_state_clear(&s);
	good = u->blob;
	good_len = u->blob_len;
	u->blob = bad;
	u->blob_len = bad_len;
	/* 1: attach finds the difference and keeps nothing of the target */
	ck_assert_int_eq(gmig_umd_attach(u, uuid2), -ESTALE);
	ck_assert_uint_eq(ut_device_free(dev2), 8);
	ck_assert_ptr_null(u->dev);
	/* 2: with the right blob it attaches */
	u->blob = good;
	u->blob_len = good_len;
	free(bad);
	ck_assert_int_eq(gmig_umd_attach(u, uuid2), 0);
	ck_assert_uint_eq(ut_device_free(dev2), 7);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
}
END_TEST

START_TEST(test_target_too_small)
{
	struct gmig_umd *u = started();
	char small[256], name[32];
	uint8_t uuid[16];
	void *a;

	snprintf(name, sizeof(name), "s%d", (int)getpid());
	ut_device(dir, name, G, small, sizeof(small), uuid);
	ck_assert_int_eq(gsim_malloc(&a, 3 * G), 0);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	ck_assert_int_eq(gmig_umd_release(u), 0);
	/* 1: three granules do not fit a one-granule device */
	ck_assert_int_eq(gmig_umd_attach(u, uuid), -ENOMEM);
	ck_assert_uint_eq(ut_device_free(small), 1);
	/* 2: back to where it came from */
	ck_assert_int_eq(gmig_umd_attach(u, uuid1), 0);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	unlink(small);
}
END_TEST

/* A call made while frozen: it returns only after the thaw. */
static atomic_int copy_rc = 1;
static uint8_t *dev_buf;

static void *frozen_copy(void *arg)
{
	atomic_store(&copy_rc, gsim_memcpy(dev_buf, arg, 64, GSIM_HOST_TO_DEVICE));
	return NULL;
}

START_TEST(test_calls_block)
{
	struct gmig_umd *u = started();
	uint8_t src[64] = { 1, 2, 3 }, back[64];
	pthread_t t;

	ck_assert_int_eq(gsim_malloc((void **)&dev_buf, 64), 0);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, frozen_copy, src), 0);
	usleep(100000);
	/* 1: blocked while frozen; synchronizing does not block */
	ck_assert_int_eq(atomic_load(&copy_rc), 1);
	ck_assert_int_eq(gsim_device_synchronize(), 0);
	ck_assert_int_eq(gsim_stream_synchronize(NULL), 0);
	/* 2: the thaw lets it through */
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&copy_rc), 0);
	ck_assert_int_eq(gsim_memcpy(back, dev_buf, 64, GSIM_DEVICE_TO_HOST), 0);
	ck_assert_mem_eq(back, src, 64);
}
END_TEST

static Suite *umd_suite(void)
{
	Suite *s = suite_create("umd");
	TCase *tc = tcase_create("umd");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_preconditions);
	tcase_add_test(tc, test_blob);
	tcase_add_test(tc, test_stale_blob);
	tcase_add_test(tc, test_target_too_small);
	tcase_add_test(tc, test_calls_block);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(umd_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
