/* Check suite for chunk fingerprints: the base and current rules, changed sets, growth, zero chunks. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fingerprint.h"

#define CHUNK		GMIG_CHUNK_MIN
#define MAXCH		8

/*
 * A simulated memory of chunks, each stood for by its print, and rounds
 * over it: step k sets some prints, runs round `round` against `base` (to
 * the end or not), and names the chunks that must be sent as a bit mask.
 */
struct step {
	uint32_t round, base;
	bool cut;		/* the round stops after its first sent chunk */
	uint32_t nchunks;	/* region size in chunks, 0: keep */
	int set[4][2];		/* {chunk, print} changes before the round; print 0 ends */
	uint32_t want;		/* chunks sent */
	uint32_t want_base;	/* fp.base_round once the round began */
};

struct row {
	struct step steps[6];
};

static const struct row rows[] = {
	/* 1: the first round sends everything */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 } } },
	/* 2: no change since the base: nothing */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 1, false, 0, { { 0 } }, 0x0, 1 } } },
	/* 3: one chunk changed: that one */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 1, false, 0, { { 3, 99 } }, 0x8, 1 } } },
	/* 4: base 0 again: the receiver lost everything */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 0, false, 0, { { 0 } }, 0xf, 0 } } },
	/*
	 * 5: round 2 is cut after sending chunk 1 (changed), the chunk changes
	 * back to its round-1 print, round 3 names base 1: chunk 1 goes again,
	 * because the receiver may keep round 2's bytes as the newer epoch.
	 */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 1, true, 0, { { 1, 50 } }, 0x2, 1 },
	    { 3, 1, false, 0, { { 1, 11 } }, 0x2, 1 }, { 4, 3, false, 0, { { 0 } }, 0x0, 3 } } },
	/* 6: a base that was cut short is not whole: everything goes */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 1, true, 0, { { 2, 7 } }, 0x4, 1 },
	    { 3, 2, false, 0, { { 0 } }, 0xf, 0 } } },
	/* 7: a base this side never had: everything goes */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 7, false, 0, { { 0 } }, 0xf, 0 } } },
	/* 8: the region grew: its new chunks go, the old unchanged ones do not */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 1, false, 6, { { 0 } }, 0x30, 1 },
	    { 3, 2, false, 0, { { 0 } }, 0x0, 2 } } },
	/* 9: a chain of rounds, each against the one before */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 1, false, 0, { { 0, 5 } }, 0x1, 1 },
	    { 3, 2, false, 0, { { 1, 6 }, { 2, 6 } }, 0x6, 2 }, { 4, 3, false, 0, { { 0, 13 } }, 0x1, 3 },
	    { 5, 4, false, 0, { { 0 } }, 0x0, 4 } } },
	/* 10: the round that completed is named again only after a later one: it is still the base */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 1, false, 0, { { 3, 8 } }, 0x8, 1 },
	    { 3, 1, false, 0, { { 0 } }, 0x8, 1 } } },
	/* 11: the region shrank and grew back: the chunks beyond the shrink go again */
	{ { { 1, 0, false, 4, { { 0 } }, 0xf, 0 }, { 2, 1, false, 2, { { 0 } }, 0x0, 1 },
	    { 3, 2, false, 4, { { 0 } }, 0xc, 2 } } },
};

START_TEST(test_rounds)
{
	const struct row *row = &rows[_i];
	uint64_t mem[MAXCH];
	uint32_t nchunks = 4;
	struct gmig_fp fp;

	for (int c = 0; c < MAXCH; c++)
		mem[c] = 10 + (uint64_t)c;
	gmig_fp_init(&fp, CHUNK);
	for (int k = 0; k < 6 && row->steps[k].round; k++) {
		const struct step *st = &row->steps[k];
		struct gmig_region r = { 1, 0x1000000, 0, CHUNK };
		uint32_t sent = 0;

		if (st->nchunks)
			nchunks = st->nchunks;
		for (int j = 0; j < 4 && st->set[j][1]; j++)
			mem[st->set[j][0]] = (uint64_t)st->set[j][1];
		r.size = (uint64_t)nchunks * CHUNK;
		ck_assert_int_eq(gmig_fp_round_begin(&fp, st->round, st->base, &r, 1), 0);
		ck_assert_msg(fp.base_round == st->want_base, "row %d step %d: base %u", _i + 1, k + 1,
			      fp.base_round);
		for (uint32_t c = 0; c < nchunks; c++) {
			bool send = gmig_fp_must_send(&fp, 0, c, mem[c]);

			gmig_fp_record(&fp, 0, c, mem[c], send);
			sent |= (uint32_t)send << c;
			ck_assert(gmig_fp_was_sent(&fp, 0, c) == send);
			if (send && st->cut)
				break;
		}
		if (!st->cut)
			gmig_fp_round_end(&fp);
		ck_assert_msg(sent == st->want, "row %d step %d: sent %#x, want %#x", _i + 1, k + 1, sent,
			      st->want);
		ck_assert_uint_eq(fp.regions[0].nsent, (uint64_t)__builtin_popcount(sent));
	}
	gmig_fp_clear(&fp);
}
END_TEST

START_TEST(test_regions_by_id)
{
	struct gmig_region r[2] = { { 1, 0x100000, 2 * CHUNK, CHUNK }, { 2, 0x200000, 3 * CHUNK, CHUNK } };
	struct gmig_fp fp;

	gmig_fp_init(&fp, CHUNK);
	ck_assert_int_eq(gmig_fp_round_begin(&fp, 1, 0, r, 2), 0);
	for (uint32_t i = 0; i < 2; i++)
		for (uint64_t c = 0; c < fp.regions[i].nchunks; c++)
			gmig_fp_record(&fp, i, c, 100 + c, true);
	gmig_fp_round_end(&fp);
	/* 1: region 2 comes first now, region 1 is gone, region 3 is new */
	r[0] = (struct gmig_region){ 3, 0x300000, CHUNK, CHUNK };
	ck_assert_int_eq(gmig_fp_round_begin(&fp, 2, 1, (struct gmig_region[]){ r[1], r[0] }, 2), 0);
	ck_assert_uint_eq(fp.nregions, 2);
	ck_assert_uint_eq(fp.regions[0].id, 2);
	ck_assert_uint_eq(fp.regions[1].id, 3);
	/* 2: region 2 kept its prints */
	ck_assert(!gmig_fp_must_send(&fp, 0, 1, 101));
	ck_assert(gmig_fp_must_send(&fp, 0, 1, 102));
	/* 3: region 3 has no base */
	ck_assert(gmig_fp_must_send(&fp, 1, 0, 100));
	gmig_fp_clear(&fp);
	ck_assert_uint_eq(fp.nregions, 0);
	ck_assert_uint_eq(fp.chunk, CHUNK);
}
END_TEST

START_TEST(test_zero)
{
	static uint8_t buf[GMIG_CHUNK_DEFAULT + 1];
	static const struct {
		size_t n;
		size_t poke;	/* index set to 1, or SIZE_MAX */
		bool zero;
	} cases[] = {
		/* 1 */ { 0, SIZE_MAX, true },
		/* 2 */ { 1, SIZE_MAX, true },
		/* 3 */ { 1, 0, false },
		/* 4 */ { GMIG_CHUNK_DEFAULT, SIZE_MAX, true },
		/* 5 */ { GMIG_CHUNK_DEFAULT, 0, false },
		/* 6 */ { GMIG_CHUNK_DEFAULT, GMIG_CHUNK_DEFAULT - 1, false },
		/* 7 */ { GMIG_CHUNK_DEFAULT, 31337, false },
		/* 8: a byte past the end does not count */
		{ GMIG_CHUNK_DEFAULT, GMIG_CHUNK_DEFAULT, true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 0, sizeof(buf));
		if (cases[i].poke != SIZE_MAX)
			buf[cases[i].poke] = 1;
		ck_assert_msg(gmig_fp_is_zero(buf, cases[i].n) == cases[i].zero, "case %zu", i + 1);
	}
	/* 9: the print is XXH3-64 */
	ck_assert_uint_eq(gmig_fp_hash(buf, 100), XXH3_64bits(buf, 100));
}
END_TEST

static Suite *fingerprint_suite(void)
{
	Suite *s = suite_create("fingerprint");
	TCase *tc = tcase_create("fingerprint");

	tcase_add_loop_test(tc, test_rounds, 0, sizeof(rows) / sizeof(rows[0]));
	tcase_add_test(tc, test_regions_by_id);
	tcase_add_test(tc, test_zero);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fingerprint_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
