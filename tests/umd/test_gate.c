/* Check suite for safe points: calls block while frozen, deadlines thaw, concurrent callers. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "clock.h"
#include "gate.h"

static struct gmig_gate gate;

static void setup(void)
{
	ck_assert_int_eq(gmig_gate_init(&gate), 0);
}

static void teardown(void)
{
	gmig_gate_destroy(&gate);
}

/* A caller that enters, stays until told, and leaves. */
struct caller {
	pthread_t t;
	atomic_int stage;	/* 1 entered, 2 leaving, 3 left */
	atomic_bool release;
	uint32_t stay_ms;	/* stays this long, or until release when 0 */
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;

	gmig_gate_enter(&gate);
	atomic_store(&c->stage, 1);
	if (c->stay_ms)
		usleep(c->stay_ms * 1000);
	else
		while (!atomic_load(&c->release))
			usleep(1000);
	atomic_store(&c->stage, 2);
	gmig_gate_leave(&gate);
	atomic_store(&c->stage, 3);
	return NULL;
}

static void caller_start(struct caller *c, uint32_t stay_ms)
{
	atomic_store(&c->stage, 0);
	atomic_store(&c->release, false);
	c->stay_ms = stay_ms;
	ck_assert_int_eq(pthread_create(&c->t, NULL, caller_main, c), 0);
}

static void wait_stage(struct caller *c, int stage)
{
	for (int i = 0; i < 5000 && atomic_load(&c->stage) < stage; i++)
		usleep(1000);
	ck_assert_int_ge(atomic_load(&c->stage), stage);
}

START_TEST(test_close_empty)
{
	struct timespec d = gmig_deadline_ms(1000);
	uint64_t t0 = gmig_now_us();

	/* 1: nobody inside: closes at once */
	ck_assert_int_eq(gmig_gate_close(&gate, &d), 0);
	ck_assert_uint_lt(gmig_now_us() - t0, 100000);
	ck_assert(gmig_gate_is_closed(&gate));
	/* 2: closing again is the same */
	ck_assert_int_eq(gmig_gate_close(&gate, &d), 0);
	gmig_gate_open(&gate);
	ck_assert(!gmig_gate_is_closed(&gate));
	/* 3: a deadline already passed still closes an empty gate */
	d = gmig_deadline_ms(0);
	ck_assert_int_eq(gmig_gate_close(&gate, &d), 0);
	gmig_gate_open(&gate);
}
END_TEST

START_TEST(test_blocks_while_closed)
{
	struct timespec d = gmig_deadline_ms(1000);
	struct caller c;

	ck_assert_int_eq(gmig_gate_close(&gate, &d), 0);
	caller_start(&c, 1);
	/* 1: the call does not get in while the gate is closed */
	usleep(100000);
	ck_assert_int_eq(atomic_load(&c.stage), 0);
	/* 2: it goes through once the gate opens */
	gmig_gate_open(&gate);
	wait_stage(&c, 3);
	pthread_join(c.t, NULL);
}
END_TEST

START_TEST(test_close_waits_for_callers)
{
	struct timespec d = gmig_deadline_ms(5000);
	struct caller c, late;
	uint64_t t0;

	caller_start(&c, 150);
	wait_stage(&c, 1);
	t0 = gmig_now_us();
	/* 1: close returns once the caller inside has left, not before */
	ck_assert_int_eq(gmig_gate_close(&gate, &d), 0);
	ck_assert_int_eq(atomic_load(&c.stage) >= 2, 1);
	ck_assert_uint_ge(gmig_now_us() - t0, 50000);
	/* 2: a new caller waits */
	caller_start(&late, 1);
	usleep(50000);
	ck_assert_int_eq(atomic_load(&late.stage), 0);
	gmig_gate_open(&gate);
	wait_stage(&late, 3);
	pthread_join(c.t, NULL);
	pthread_join(late.t, NULL);
}
END_TEST

START_TEST(test_deadline_passes)
{
	struct caller inside, blocked;
	struct timespec d;
	uint64_t t0;

	caller_start(&inside, 0);
	wait_stage(&inside, 1);
	caller_start(&blocked, 1);
	t0 = gmig_now_us();
	d = gmig_deadline_ms(80);
	/* 1: the caller inside does not leave in time: -ETIMEDOUT after the deadline */
	ck_assert_int_eq(gmig_gate_close(&gate, &d), -ETIMEDOUT);
	ck_assert_uint_ge(gmig_now_us() - t0, 70000);
	/* 2: the gate is open again: the program goes on */
	ck_assert(!gmig_gate_is_closed(&gate));
	wait_stage(&blocked, 3);
	/* 3: the caller inside was never disturbed and leaves when it likes */
	ck_assert_int_eq(atomic_load(&inside.stage), 1);
	atomic_store(&inside.release, true);
	wait_stage(&inside, 3);
	/* 4: and now a freeze succeeds */
	d = gmig_deadline_ms(1000);
	ck_assert_int_eq(gmig_gate_close(&gate, &d), 0);
	gmig_gate_open(&gate);
	pthread_join(inside.t, NULL);
	pthread_join(blocked.t, NULL);
}
END_TEST

/* Many callers in and out while another thread freezes and thaws: nobody is ever inside a frozen gate. */
#define HAMMERS	4

static atomic_int inside_now;
static atomic_bool stop_hammer;
static atomic_long passes;

static void *hammer(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_hammer)) {
		gmig_gate_enter(&gate);
		atomic_fetch_add(&inside_now, 1);
		atomic_fetch_add(&passes, 1);
		atomic_fetch_sub(&inside_now, 1);
		gmig_gate_leave(&gate);
	}
	return NULL;
}

START_TEST(test_concurrent)
{
	pthread_t t[HAMMERS];
	long before;

	for (int i = 0; i < HAMMERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
	for (int round = 0; round < 50; round++) {
		struct timespec d = gmig_deadline_ms(2000);

		ck_assert_int_eq(gmig_gate_close(&gate, &d), 0);
		before = atomic_load(&passes);
		/* Frozen: nobody inside, nobody passes. */
		for (int k = 0; k < 20; k++) {
			ck_assert_int_eq(atomic_load(&inside_now), 0);
			sched_yield();
		}
		ck_assert_int_eq(atomic_load(&passes), before);
		gmig_gate_open(&gate);
		usleep(200);
	}
	atomic_store(&stop_hammer, true);
	for (int i = 0; i < HAMMERS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_gt(atomic_load(&passes), 50);
	ck_assert_uint_eq(gate.inside, 0);
}
END_TEST

static Suite *gate_suite(void)
{
	Suite *s = suite_create("gate");
	TCase *tc = tcase_create("gate");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_close_empty);
	tcase_add_test(tc, test_blocks_while_closed);
	tcase_add_test(tc, test_close_waits_for_callers);
	tcase_add_test(tc, test_deadline_passes);
	tcase_add_test(tc, test_concurrent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(gate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
