/* Check suite for the fingerprint kernel's math: the warp's split of XXH3, run on the CPU, equals XXH3_64bits. */
#include <check.h>
#include <stdlib.h>
#include <xxhash.h>

#include "umdtest.h"
#include "xxh3dev.h"

#define BUF	(300u << 10)

static uint8_t *buf;

static void setup(void)
{
	uint64_t seed = 42;

	buf = malloc(BUF + 64);
	ck_assert_ptr_nonnull(buf);
	ut_fill(buf, BUF + 64, &seed);
}

static void teardown(void)
{
	free(buf);
}

/* One length at one misalignment. */
static void check_len(uint64_t len, unsigned skew)
{
	uint64_t want = XXH3_64bits(buf + skew, len), got = gmig_xxh_warp_emulated(buf + skew, len);

	ck_assert_msg(got == want, "len %llu skew %u: %016llx != %016llx", (unsigned long long)len, skew,
		      (unsigned long long)got, (unsigned long long)want);
}

START_TEST(test_lengths)
{
	/* 1: every length around the midsize limit, a stripe, a block and a few blocks */
	for (uint64_t len = 241; len <= 4 * 1024 + 130; len++)
		check_len(len, 0);
	/* 2: the chunk sizes libgmig uses, and one byte either side */
	for (uint64_t c = 4096; c <= 256u << 10; c *= 2) {
		check_len(c - 1, 0);
		check_len(c, 0);
		check_len(c + 1, 0);
	}
	/* 3: unaligned starts (the kernel's byte-wise path) */
	for (unsigned skew = 1; skew < 8; skew++)
		for (uint64_t len = 241; len < 3000; len += 37)
			check_len(len, skew);
}
END_TEST

START_TEST(test_patterns)
{
	/* 1: all zero; 2: all ones; 3: one bit set at the very end of a 64 KiB chunk */
	uint8_t *z = calloc(1, 65536);

	ck_assert_uint_eq(gmig_xxh_warp_emulated(z, 65536), XXH3_64bits(z, 65536));
	memset(z, 0xff, 65536);
	ck_assert_uint_eq(gmig_xxh_warp_emulated(z, 65536), XXH3_64bits(z, 65536));
	memset(z, 0, 65536);
	z[65535] = 1;
	ck_assert_uint_eq(gmig_xxh_warp_emulated(z, 65536), XXH3_64bits(z, 65536));
	ck_assert_uint_ne(gmig_xxh_warp_emulated(z, 65536), XXH3_64bits(z, 65535));
	free(z);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cuda-xxh3");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_patterns);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
