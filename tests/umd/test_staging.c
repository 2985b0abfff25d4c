/* Check suite for the staging area: which memfds are taken, and the slot hand-over rules. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "staging.h"

#define SLOT	4096u

/* A memfd of size bytes with the given seals (0: none, -1: sealing not allowed). */
static int memfd(off_t size, int seals)
{
	int fd = memfd_create("test-staging", MFD_CLOEXEC | (seals >= 0 ? MFD_ALLOW_SEALING : 0));

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, size), 0);
	if (seals > 0)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static const struct {
	off_t size;
	int seals;
	uint32_t slots, slot_size;
	int want;
} maps[] = {
	/* 1: sealed against shrinking, the right size */
	{ 8 * SLOT, F_SEAL_SHRINK, 4, SLOT, 0 },
	/* 2: every seal the agent adds */
	{ 8 * SLOT, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, 4, SLOT, 0 },
	/* 3: larger than needed is fine */
	{ 9 * SLOT, F_SEAL_SHRINK, 4, SLOT, 0 },
	/* 4: not sealed: the agent could truncate it under us */
	{ 8 * SLOT, 0, 4, SLOT, -EINVAL },
	/* 5: sealing not even allowed */
	{ 8 * SLOT, -1, 4, SLOT, -EINVAL },
	/* 6: sealed against growing only */
	{ 8 * SLOT, F_SEAL_GROW, 4, SLOT, -EINVAL },
	/* 7: one byte short */
	{ 8 * SLOT - 1, F_SEAL_SHRINK, 4, SLOT, -EINVAL },
	/* 8: no slots */
	{ 8 * SLOT, F_SEAL_SHRINK, 0, SLOT, -EINVAL },
	/* 9: too many slots */
	{ 8 * SLOT, F_SEAL_SHRINK, GMIG_SLOTS_MAX + 1, SLOT, -EINVAL },
	/* 10: a slot size that is not a power of two */
	{ 8 * SLOT, F_SEAL_SHRINK, 4, SLOT - 1, -EINVAL },
};

START_TEST(test_map)
{
	struct gmig_staging_area st;
	int fd = memfd(maps[_i].size, maps[_i].seals);

	ck_assert_int_eq(gmig_staging_map(&st, fd, maps[_i].slots, maps[_i].slot_size), maps[_i].want);
	/* The fd is taken either way. */
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	if (!maps[_i].want) {
		gmig_staging_slot(&st, 2 * maps[_i].slots - 1)[SLOT - 1] = 1;
		ck_assert(!gmig_staging_is_agent_slot(&st, maps[_i].slots - 1));
		ck_assert(gmig_staging_is_agent_slot(&st, maps[_i].slots));
		ck_assert(gmig_staging_is_agent_slot(&st, 2 * maps[_i].slots - 1));
		ck_assert(!gmig_staging_is_agent_slot(&st, 2 * maps[_i].slots));
		ck_assert(!gmig_staging_is_agent_slot(&st, UINT32_MAX));
	}
	gmig_staging_unmap(&st);
}
END_TEST

START_TEST(test_not_a_memfd)
{
	struct gmig_staging_area st;
	int p[2];

	/* 1: a pipe is not memory */
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(gmig_staging_map(&st, p[0], 4, SLOT), -EINVAL);
	close(p[1]);
	/* 2: nor is a bad fd */
	ck_assert_int_eq(gmig_staging_map(&st, -1, 4, SLOT), -EINVAL);
}
END_TEST

START_TEST(test_slots)
{
	struct gmig_staging_area st;
	uint32_t s, got[3];

	ck_assert_int_eq(gmig_staging_map(&st, memfd(6 * SLOT, F_SEAL_SHRINK), 3, SLOT), 0);
	/* 1: the three slots of ours come in order, then none */
	for (uint32_t i = 0; i < 3; i++) {
		ck_assert_int_eq(gmig_staging_take(&st, &got[i]), 0);
		ck_assert_uint_eq(got[i], i);
	}
	ck_assert_int_eq(gmig_staging_take(&st, &s), -EAGAIN);
	/* 2: a held slot put back unused is free again */
	gmig_staging_put(&st, got[1]);
	ck_assert_int_eq(gmig_staging_take(&st, &s), 0);
	ck_assert_uint_eq(s, 1);
	/* 3: SLOT_FREE only for a slot that was sent */
	ck_assert_int_eq(gmig_staging_freed(&st, 0), -EPROTO);
	gmig_staging_sent(&st, 0);
	ck_assert_int_eq(gmig_staging_freed(&st, 0), 0);
	/* 4: not twice */
	ck_assert_int_eq(gmig_staging_freed(&st, 0), -EPROTO);
	/* 5: not for the agent's slots or past them */
	ck_assert_int_eq(gmig_staging_freed(&st, 3), -EPROTO);
	ck_assert_int_eq(gmig_staging_freed(&st, UINT32_MAX), -EPROTO);
	ck_assert_int_eq(gmig_staging_take(&st, &s), 0);
	ck_assert_uint_eq(s, 0);
	gmig_staging_unmap(&st);
	ck_assert_ptr_null(st.mem);
}
END_TEST

static Suite *staging_suite(void)
{
	Suite *s = suite_create("staging");
	TCase *tc = tcase_create("staging");

	tcase_add_loop_test(tc, test_map, 0, sizeof(maps) / sizeof(maps[0]));
	tcase_add_test(tc, test_not_a_memfd);
	tcase_add_test(tc, test_slots);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(staging_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
