/* Check suite for extent sets: merging, full coverage, byte counts. */
#include <check.h>

#include "cover.h"

struct row {
	uint64_t add[6][2];	/* {start, len}; len 0 ends */
	uint64_t want[4][2];	/* extents {start, end} afterwards; end 0 ends */
	uint64_t full;		/* a size that is fully covered, 0 if none */
};

static const struct row rows[] = {
	/* 1: one extent */
	{ { { 0, 100 } }, { { 0, 100 } }, 100 },
	/* 2: touching extents merge */
	{ { { 0, 100 }, { 100, 50 } }, { { 0, 150 } }, 150 },
	/* 3: a gap keeps them apart, then filling it joins all three */
	{ { { 0, 10 }, { 20, 10 }, { 10, 10 } }, { { 0, 30 } }, 30 },
	/* 4: out of order, no overlap */
	{ { { 50, 10 }, { 10, 10 }, { 30, 10 } }, { { 10, 20 }, { 30, 40 }, { 50, 60 } }, 0 },
	/* 5: overlapping many at once */
	{ { { 10, 10 }, { 30, 10 }, { 50, 10 }, { 5, 60 } }, { { 5, 65 } }, 0 },
	/* 6: contained in an existing extent: no change */
	{ { { 0, 100 }, { 20, 10 } }, { { 0, 100 } }, 100 },
	/* 7: extends one at the front and one at the back */
	{ { { 10, 10 }, { 5, 10 }, { 15, 20 } }, { { 5, 35 } }, 0 },
	/* 8: the same bytes twice */
	{ { { 7, 3 }, { 7, 3 } }, { { 7, 10 } }, 0 },
	/* 9: a hole in the middle is not full */
	{ { { 0, 40 }, { 41, 59 } }, { { 0, 40 }, { 41, 100 } }, 0 },
};

START_TEST(test_rows)
{
	const struct row *r = &rows[_i];
	struct gmig_cover c;
	uint64_t n = 0, bytes = 0;

	gmig_cover_init(&c);
	for (int k = 0; k < 6 && r->add[k][1]; k++)
		ck_assert_int_eq(gmig_cover_add(&c, r->add[k][0], r->add[k][1]), 0);
	for (; n < 4 && r->want[n][1]; n++) {
		ck_assert_msg(n < c.n && c.v[n].start == r->want[n][0] && c.v[n].end == r->want[n][1],
			      "row %d extent %llu", _i + 1, (unsigned long long)n);
		bytes += r->want[n][1] - r->want[n][0];
	}
	ck_assert_uint_eq(c.n, n);
	ck_assert_uint_eq(gmig_cover_bytes(&c), bytes);
	if (r->full)
		ck_assert(gmig_cover_full(&c, r->full));
	ck_assert(!gmig_cover_full(&c, c.n ? c.v[c.n - 1].end + 1 : 1));
	gmig_cover_clear(&c);
	ck_assert_uint_eq(c.n, 0);
}
END_TEST

START_TEST(test_many)
{
	struct gmig_cover c;

	/* Every other 4 KiB piece, then the rest, backwards: one extent in the end. */
	gmig_cover_init(&c);
	for (uint64_t i = 0; i < 2000; i += 2)
		ck_assert_int_eq(gmig_cover_add(&c, i * 4096, 4096), 0);
	ck_assert_uint_eq(c.n, 1000);
	for (uint64_t i = 1999; i < 2000; i -= 2)
		ck_assert_int_eq(gmig_cover_add(&c, i * 4096, 4096), 0);
	ck_assert_uint_eq(c.n, 1);
	ck_assert(gmig_cover_full(&c, 2000 * 4096));
	gmig_cover_clear(&c);
}
END_TEST

static Suite *cover_suite(void)
{
	Suite *s = suite_create("cover");
	TCase *tc = tcase_create("cover");

	tcase_add_loop_test(tc, test_rows, 0, sizeof(rows) / sizeof(rows[0]));
	tcase_add_test(tc, test_many);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cover_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
