/* Check suite for protocol version negotiation. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "gmig/version.h"

static const struct version_row {
	uint16_t a_min, a_max, b_min, b_max;
	int expect;
	uint16_t agreed;
} rows[] = {
	/* 1 */ { 1, 1, 1, 1, 0, 1 },
	/* 2 */ { 1, 3, 2, 5, 0, 3 },
	/* 3 */ { 2, 5, 1, 3, 0, 3 },
	/* 4 */ { 1, 9, 4, 4, 0, 4 },
	/* 5 */ { 3, 3, 1, 9, 0, 3 },
	/* 6 */ { 1, 2, 3, 4, -EPROTONOSUPPORT, 0 },
	/* 7 */ { 5, 6, 1, 4, -EPROTONOSUPPORT, 0 },
	/* 8 */ { 0, 1, 1, 1, -EINVAL, 0 },
	/* 9 */ { 1, 1, 0, 0, -EINVAL, 0 },
	/* 10 */ { 2, 1, 1, 2, -EINVAL, 0 },
	/* 11 */ { 1, 2, 3, 2, -EINVAL, 0 },
	/* 12 */ { 1, 65535, 65535, 65535, 0, 65535 },
};

START_TEST(test_rows)
{
	const struct version_row *r = &rows[_i];
	uint16_t out = 0xdead;
	int rc = gmig_version_agree(r->a_min, r->a_max, r->b_min, r->b_max, &out);

	ck_assert_msg(rc == r->expect, "row %d: %d", _i + 1, rc);
	if (!rc)
		ck_assert_uint_eq(out, r->agreed);
	else
		ck_assert_uint_eq(out, 0xdead);
	/* Negotiation is symmetric. */
	out = 0xdead;
	ck_assert_int_eq(gmig_version_agree(r->b_min, r->b_max, r->a_min, r->a_max, &out), r->expect);
	if (!rc)
		ck_assert_uint_eq(out, r->agreed);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("version");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_rows, 0, sizeof(rows) / sizeof(rows[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
