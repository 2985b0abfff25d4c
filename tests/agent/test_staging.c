/* Check suite: a client's staging memory: the sealed memfd and the bookkeeping of its slots. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "staging.h"

static const struct init_row {
	uint32_t slots, slot_size;
	int rc;
} init_rows[] = {
	/* 1 */ { 8, 4096, 0 },
	/* 2 */ { 1, 1u << 20, 0 },
	/* 3 */ { 64, 4096, 0 },
	/* 4 */ { 0, 4096, -EINVAL },
	/* 5 */ { 65, 4096, -EINVAL },
	/* 6 */ { 4, 3000, -EINVAL },
	/* 7 */ { 4, 0, -EINVAL },
};

START_TEST(test_init)
{
	const struct init_row *row = &init_rows[_i];
	struct staging st;
	struct stat sb;

	ck_assert_int_eq(staging_init(&st, row->slots, row->slot_size), row->rc);
	if (!row->rc) {
		ck_assert_int_eq(fstat(st.fd, &sb), 0);
		ck_assert_int_eq(sb.st_size, 2ll * row->slots * row->slot_size);
	}
	staging_clear(&st);
	staging_clear(&st);	/* twice is fine */
}
END_TEST

/* The client can neither shrink nor grow the memory under the agent, nor seal it further. */
START_TEST(test_sealed)
{
	struct staging st;
	char buf[4];

	ck_assert_int_eq(staging_init(&st, 2, 4096), 0);
	ck_assert_int_eq(ftruncate(st.fd, 4096), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(ftruncate(st.fd, 1 << 20), -1);
	ck_assert_int_eq(fcntl(st.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	/* The agent's mapping and the file are the same memory. */
	memcpy(st.map + 3 * 4096, "abc", 4);
	ck_assert_int_eq(pread(st.fd, buf, 4, 3 * 4096), 4);
	ck_assert_str_eq(buf, "abc");
	ck_assert_ptr_eq(staging_out_ptr(&st, 3), st.map + 3 * 4096);
	staging_clear(&st);
}
END_TEST

/* Client-to-agent slots: 0 .. slots-1, each held once until handed back. */
START_TEST(test_in_slots)
{
	static const struct { uint32_t slot; bool release; int rc; } steps[] = {
		/* 1 */ { 0, false, 0 },
		/* 2 */ { 0, false, -EBUSY },
		/* 3 */ { 3, false, 0 },
		/* 4 */ { 4, false, -ERANGE },	/* an agent-to-client slot */
		/* 5 */ { 7, false, -ERANGE },
		/* 6 */ { 0xffffffff, false, -ERANGE },
		/* 7 */ { 0, true, 0 },
		/* 8 */ { 0, false, 0 },
	};
	struct staging st;

	ck_assert_int_eq(staging_init(&st, 4, 4096), 0);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (steps[i].release) {
			staging_in_release(&st, steps[i].slot);
			continue;
		}
		ck_assert_msg(staging_in_take(&st, steps[i].slot) == steps[i].rc, "step %zu", i + 1);
	}
	ck_assert_ptr_eq(staging_in_ptr(&st, 2), st.map + 2 * 4096);
	staging_clear(&st);
}
END_TEST

/* Agent-to-client slots: slots .. 2*slots-1, handed out until none is left. */
START_TEST(test_out_slots)
{
	struct staging st;

	ck_assert_int_eq(staging_init(&st, 3, 4096), 0);
	ck_assert_uint_eq(staging_out_free(&st), 3);
	ck_assert_int_eq(staging_out_get(&st), 3);
	ck_assert_int_eq(staging_out_get(&st), 4);
	ck_assert_int_eq(staging_out_get(&st), 5);
	ck_assert_int_eq(staging_out_get(&st), -ENOSPC);
	ck_assert_uint_eq(staging_out_free(&st), 0);
	ck_assert_int_eq(staging_out_put(&st, 2), -ERANGE);
	ck_assert_int_eq(staging_out_put(&st, 6), -ERANGE);
	ck_assert_int_eq(staging_out_put(&st, 4), 0);
	ck_assert_int_eq(staging_out_put(&st, 4), -EINVAL);
	ck_assert_uint_eq(staging_out_free(&st), 1);
	ck_assert_int_eq(staging_out_get(&st), 4);
	staging_clear(&st);
}
END_TEST

static Suite *staging_suite(void)
{
	Suite *s = suite_create("agent-staging");
	TCase *tc = tcase_create("staging");

	tcase_add_loop_test(tc, test_init, 0, sizeof(init_rows) / sizeof(init_rows[0]));
	tcase_add_test(tc, test_sealed);
	tcase_add_test(tc, test_in_slots);
	tcase_add_test(tc, test_out_slots);
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
