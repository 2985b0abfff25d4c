/*
 * Zero-copy reads of guest RAM: slots come out of the right file offsets across pieces and
 * across the 4 GiB hole; every range a guest names outside the RAM, wrapping, too short for
 * its slots, or a slot or length outside the staging is refused.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guestmem.h"
#include "hostutil.h"

#define RAM	(8u << 20)
#define SLOT	(64u << 10)

static char *dir;
static char path[512];
static uint8_t *ram;

static void setup(void)
{
	uint64_t seed = 7;
	int fd;

	dir = hu_tmpdir();
	snprintf(path, sizeof(path), "%s/ram", dir);
	ram = malloc(RAM);
	hu_fill(ram, RAM, &seed);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, ram, RAM), RAM);
	close(fd);
}

static void teardown(void)
{
	hu_rmtree(dir);
	free(dir);
	free(ram);
}

/* A STAGING_PHYS of @n pieces in @buf. */
static void phys_msg(struct gmig_staging_phys *m, uint8_t *buf, const struct gmig_rec_phys *r,
		     uint32_t n, uint32_t slots)
{
	for (uint32_t i = 0; i < n; i++)
		gmig_rec_put_phys(buf + i * GMIG_REC_phys_SIZE, &r[i]);
	*m = (struct gmig_staging_phys){ .pid = 42, .slots = slots, .slot_size = SLOT,
					 .tail = { buf, n * GMIG_REC_phys_SIZE } };
}

/* 0: two slots in two pieces, the second slot split across them. */
START_TEST(test_read_pieces)
{
	const struct gmig_rec_phys r[] = { { 1u << 20, SLOT + 4096 }, { 3u << 20, SLOT } };
	uint8_t buf[4 * GMIG_REC_phys_SIZE], out[SLOT];
	struct gmig_staging_phys m;
	struct gm_staging st = { 0 };
	struct guestmem *gm;

	ck_assert_int_eq(guestmem_open(path, GUESTMEM_LOWMEM_DEFAULT, &gm), 0);
	ck_assert_uint_eq(guestmem_size(gm), RAM);
	phys_msg(&m, buf, r, 2, 2);
	ck_assert_int_eq(gm_staging_set(gm, &st, &m), 0);
	ck_assert_int_eq(guestmem_read_slot(gm, &st, 0, SLOT, out), 0);
	ck_assert_int_eq(memcmp(out, ram + (1u << 20), SLOT), 0);
	ck_assert_int_eq(guestmem_read_slot(gm, &st, 1, SLOT, out), 0);
	ck_assert_int_eq(memcmp(out, ram + (1u << 20) + SLOT, 4096), 0);
	ck_assert_int_eq(memcmp(out + 4096, ram + (3u << 20), SLOT - 4096), 0);
	ck_assert_int_eq(guestmem_read_slot(gm, &st, 1, 100, out), 0);
	ck_assert_int_eq(memcmp(out, ram + (1u << 20) + SLOT, 100), 0);
	gm_staging_clear(&st);
	guestmem_close(gm);
}
END_TEST

/* 1: RAM above 4 GiB sits in the file after lowmem. */
START_TEST(test_read_high)
{
	const struct gmig_rec_phys r[] = { { (4ull << 30) + (1u << 20), SLOT } };
	uint8_t buf[GMIG_REC_phys_SIZE], out[SLOT];
	struct gmig_staging_phys m;
	struct gm_staging st = { 0 };
	struct guestmem *gm;

	ck_assert_int_eq(guestmem_open(path, 4u << 20, &gm), 0);
	phys_msg(&m, buf, r, 1, 1);
	ck_assert_int_eq(gm_staging_set(gm, &st, &m), 0);
	ck_assert_int_eq(guestmem_read_slot(gm, &st, 0, SLOT, out), 0);
	ck_assert_int_eq(memcmp(out, ram + (5u << 20), SLOT), 0);
	gm_staging_clear(&st);
	guestmem_close(gm);
}
END_TEST

/* Ranges a guest may name that must be refused. */
static const struct {
	struct gmig_rec_phys r[2];
	uint32_t n, slots;
	int rc;
} bad_rows[] = {
	/* 2 */ { { { RAM, SLOT } }, 1, 1, -EFAULT },			/* past the end */
	/* 3 */ { { { RAM - 4096, SLOT } }, 1, 1, -EFAULT },		/* straddles the end */
	/* 4 */ { { { UINT64_MAX - 4095, SLOT } }, 1, 1, -EFAULT },	/* wraps */
	/* 5 */ { { { 6u << 20, SLOT } }, 1, 1, -EFAULT },		/* in the hole (lowmem 4M) */
	/* 6 */ { { { 3u << 30, SLOT } }, 1, 1, -EFAULT },		/* below 4G, past lowmem */
	/* 7 */ { { { (4ull << 30) + (4u << 20), SLOT } }, 1, 1, -EFAULT },	/* high, past the file */
	/* 8 */ { { { 0, SLOT }, { SLOT, SLOT - 1 } }, 2, 2, -EINVAL },	/* short of 2 slots */
	/* 9 */ { { { 0, SLOT } }, 0, 1, -EINVAL },			/* no pieces */
};

START_TEST(test_bad_ranges)
{
	uint8_t buf[2 * GMIG_REC_phys_SIZE];
	struct gmig_staging_phys m;
	struct gm_staging st = { 0 };
	struct guestmem *gm;

	ck_assert_int_eq(guestmem_open(path, 4u << 20, &gm), 0);
	phys_msg(&m, buf, bad_rows[_i].r, bad_rows[_i].n, bad_rows[_i].slots);
	ck_assert_msg(gm_staging_set(gm, &st, &m) == bad_rows[_i].rc, "row %d", _i + 2);
	ck_assert_ptr_null(st.ranges);
	guestmem_close(gm);
}
END_TEST

/* 10: slots and lengths outside the staging; a file that is not there or not a file. */
START_TEST(test_bad_reads)
{
	const struct gmig_rec_phys r[] = { { 0, 2 * SLOT } };
	uint8_t buf[GMIG_REC_phys_SIZE], out[SLOT + 1];
	struct gmig_staging_phys m;
	struct gm_staging st = { 0 };
	struct guestmem *gm;

	ck_assert_int_eq(guestmem_open(path, GUESTMEM_LOWMEM_DEFAULT, &gm), 0);
	phys_msg(&m, buf, r, 1, 2);
	ck_assert_int_eq(gm_staging_set(gm, &st, &m), 0);
	ck_assert_int_eq(guestmem_read_slot(gm, &st, 2, 1, out), -ERANGE);
	ck_assert_int_eq(guestmem_read_slot(gm, &st, 0, SLOT + 1, out), -ERANGE);
	ck_assert_int_eq(guestmem_read_slot(gm, &st, 0, 0, out), -ERANGE);
	ck_assert_int_eq(guestmem_read_slot(gm, &st, UINT32_MAX, 1, out), -ERANGE);
	gm_staging_clear(&st);
	gm_staging_clear(&st);
	guestmem_close(gm);
	guestmem_close(NULL);
	ck_assert_int_eq(guestmem_open("/nonexistent/ram", 0, &gm), -ENOENT);
	ck_assert_int_eq(guestmem_open(dir, 0, &gm), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-guestmem");
	TCase *tc = tcase_create("guestmem");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_read_pieces);
	tcase_add_test(tc, test_read_high);
	tcase_add_loop_test(tc, test_bad_ranges, 0, (int)(sizeof(bad_rows) / sizeof(bad_rows[0])));
	tcase_add_test(tc, test_bad_reads);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
