/* Check suite for the frozen blob: round trips, malformed blobs, the same-program check. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "gmig/message.h"
#include "state.h"

#define VA	0x7f0000000000ull
#define SIZE	(64ull << 20)

static struct gmig_region regions[] = { { 1, VA, 4ull << 20, 65536 }, { 5, VA + (8ull << 20), 2ull << 20, 4096 } };
static struct gmig_queue queues[] = { { 1, 17 }, { 2, 0 }, { 9, 123456789012ull } };
static struct gmig_alloc allocs[] = { { 0, 256 }, { 256, 1024 }, { 4096, 2ull << 20 } };

static struct gmig_state sample(void)
{
	struct gmig_state s = { .backend = GMIG_BACKEND_SIM, .arena_va = VA, .arena_size = SIZE,
				.nregions = 2, .nqueues = 3, .nallocs = 3,
				.regions = regions, .queues = queues, .allocs = allocs };

	for (int i = 0; i < GMIG_UUID_SIZE; i++)
		s.uuid[i] = (uint8_t)(0xa0 + i);
	return s;
}

static void check_same(const struct gmig_state *a, const struct gmig_state *b)
{
	ck_assert_uint_eq(a->backend, b->backend);
	ck_assert_mem_eq(a->uuid, b->uuid, GMIG_UUID_SIZE);
	ck_assert_int_eq(gmig_state_same_program(a, b), 0);
}

START_TEST(test_round_trip)
{
	struct gmig_state s = sample(), d;
	uint8_t *blob, *again;
	size_t len, len2;

	/* 1: everything comes back */
	ck_assert_int_eq(gmig_state_encode(&s, &blob, &len), 0);
	ck_assert_uint_eq(len, GMIG_STATE_HDR_SIZE + 2 * 24 + 3 * 12 + 3 * 16 + 8);
	ck_assert_int_eq(gmig_state_decode(blob, len, &d), 0);
	check_same(&s, &d);
	/* 2: canonical: it encodes to the same bytes */
	ck_assert_int_eq(gmig_state_encode(&d, &again, &len2), 0);
	ck_assert_uint_eq(len, len2);
	ck_assert_mem_eq(blob, again, len);
	free(again);
	gmig_state_clear(&d);
	free(blob);

	/* 3: an empty program: no regions, queues or allocations */
	s.nregions = s.nqueues = 0;
	s.nallocs = 0;
	ck_assert_int_eq(gmig_state_encode(&s, &blob, &len), 0);
	ck_assert_uint_eq(len, GMIG_STATE_HDR_SIZE + 8);
	ck_assert_int_eq(gmig_state_decode(blob, len, &d), 0);
	check_same(&s, &d);
	gmig_state_clear(&d);
	free(blob);
}
END_TEST

/* Rewrites the checksum after a change, so the rule behind it is what fails. */
static void reseal(uint8_t *blob, size_t len)
{
	uint64_t sum = XXH3_64bits(blob, len - 8);

	for (int i = 0; i < 8; i++)
		blob[len - 8 + i] = (uint8_t)(sum >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

#define R0	GMIG_STATE_HDR_SIZE			/* first region record */
#define Q0	(R0 + 2 * 24)				/* first queue record */
#define A0	(Q0 + 3 * 12)				/* first allocation record */

enum edit { NONE, TRUNC, EXTEND, BYTE, U32, U64 };

struct bad {
	enum edit edit;
	size_t off;		/* where, or the new length for TRUNC / EXTEND */
	uint64_t val;
	bool seal;		/* fix the checksum after the edit */
	int want;
};

static const struct bad bads[] = {
	/* 1: empty */
	{ TRUNC, 0, 0, false, -EBADMSG },
	/* 2: short of the header */
	{ TRUNC, GMIG_STATE_HDR_SIZE + 7, 0, false, -EBADMSG },
	/* 3: one byte short */
	{ TRUNC, 1, 0, true, -EBADMSG },
	/* 4: one byte long */
	{ EXTEND, 1, 0, true, -EBADMSG },
	/* 5: bad magic */
	{ BYTE, 0, 'X', true, -EBADMSG },
	/* 6: another version */
	{ BYTE, 4, 2, true, -EPROTONOSUPPORT },
	/* 7: backend 0 */
	{ BYTE, 6, 0, true, -EPROTO },
	/* 8: backend past the last */
	{ BYTE, 6, GMIG_BACKEND_MAX + 1, true, -EPROTO },
	/* 9: reserved byte set */
	{ BYTE, 7, 1, true, -EPROTO },
	/* 10: checksum mismatch */
	{ BYTE, 30, 0x55, false, -EBADMSG },
	/* 11: a region count the length does not back */
	{ U32, 40, 3, true, -EBADMSG },
	/* 12: a huge region count */
	{ U32, 40, UINT32_MAX, true, -EBADMSG },
	/* 13: a huge allocation count (would overflow a multiplication) */
	{ U64, 48, UINT64_MAX / 8, true, -EBADMSG },
	/* 14: arena size 0 */
	{ U64, 32, 0, true, -EPROTO },
	/* 15: arena wraps around */
	{ U64, 24, UINT64_MAX - 100, true, -EPROTO },
	/* 16: regions out of id order */
	{ U32, R0 + 24, 1, true, -EPROTO },
	/* 17: a region below the arena */
	{ U64, R0 + 4, VA - 4096, true, -EPROTO },
	/* 18: a region past its end */
	{ U64, R0 + 24 + 12, SIZE, true, -EPROTO },
	/* 19: overlapping regions */
	{ U64, R0 + 24 + 4, VA + 4096, true, -EPROTO },
	/* 20: a region of size 0 */
	{ U64, R0 + 12, 0, true, -EPROTO },
	/* 21: a chunk that is not a power of two */
	{ U32, R0 + 20, 65535, true, -EPROTO },
	/* 22: a chunk too large */
	{ U32, R0 + 20, GMIG_CHUNK_MAX * 2, true, -EPROTO },
	/* 23: queues out of id order */
	{ U32, Q0 + 12, 1, true, -EPROTO },
	/* 24: overlapping allocations */
	{ U64, A0 + 16, 128 + 0, true, -EPROTO },
	/* 25: a misaligned allocation */
	{ U64, A0 + 32, 4097, true, -EPROTO },
	/* 26: an allocation of size 0 */
	{ U64, A0 + 8, 0, true, -EPROTO },
	/* 27: an allocation past the arena */
	{ U64, A0 + 32, SIZE - 256, true, -EPROTO },
};

START_TEST(test_malformed)
{
	const struct bad *b = &bads[_i];
	struct gmig_state s = sample(), d;
	uint8_t *blob, *buf;
	size_t len, n;

	ck_assert_int_eq(gmig_state_encode(&s, &blob, &len), 0);
	buf = calloc(1, len + 16);
	memcpy(buf, blob, len);
	n = len;
	switch (b->edit) {
	case NONE:
		break;
	case TRUNC:
		n = b->off <= 1 ? (b->off ? len - 1 : 0) : b->off;
		break;
	case EXTEND:
		n = len + b->off;
		break;
	case BYTE:
		buf[b->off] = (uint8_t)b->val;
		break;
	case U32:
		put32(buf + b->off, (uint32_t)b->val);
		break;
	case U64:
		put64(buf + b->off, b->val);
		break;
	}
	if (b->seal && n >= 8)
		reseal(buf, n);
	ck_assert_msg(gmig_state_decode(buf, n, &d) == b->want, "row %d: %d", _i + 1,
		      gmig_state_decode(buf, n, &d));
	/* A failed decode leaves nothing to free. */
	ck_assert_ptr_null(d.regions);
	ck_assert_ptr_null(d.allocs);
	free(buf);
	free(blob);
}
END_TEST

START_TEST(test_encode_refuses)
{
	struct gmig_state s = sample();
	struct gmig_alloc *many;
	uint8_t *blob;
	size_t len;

	/* 1: an invalid state is never encoded */
	s.backend = 0;
	ck_assert_int_eq(gmig_state_encode(&s, &blob, &len), -EINVAL);
	/* 2: more allocations than a blob holds */
	s = sample();
	s.nallocs = GMIG_BLOB_MAX / 16 + 1;
	many = calloc(s.nallocs, sizeof(*many));
	for (uint64_t i = 0; i < s.nallocs; i++)
		many[i] = (struct gmig_alloc){ i * 256, 256 };
	s.allocs = many;
	ck_assert_int_eq(gmig_state_encode(&s, &blob, &len), -E2BIG);
	free(many);
}
END_TEST

START_TEST(test_same_program)
{
	struct gmig_state a = sample(), b = sample();
	struct gmig_alloc al[3];
	struct gmig_queue q[3];
	struct gmig_region r[2];

	memcpy(al, allocs, sizeof(al));
	memcpy(q, queues, sizeof(q));
	memcpy(r, regions, sizeof(r));
	b.allocs = al;
	b.queues = q;
	b.regions = r;
	/* 1: another device is the same program */
	b.uuid[0] ^= 1;
	ck_assert_int_eq(gmig_state_same_program(&a, &b), 0);
	/* 2: an allocation that changed size */
	al[1].size += 256;
	ck_assert_int_eq(gmig_state_same_program(&a, &b), -ESTALE);
	al[1].size -= 256;
	/* 3: a queue with more work submitted */
	q[2].submitted++;
	ck_assert_int_eq(gmig_state_same_program(&a, &b), -ESTALE);
	q[2].submitted--;
	/* 4: a region that grew */
	r[0].size += 4096;
	ck_assert_int_eq(gmig_state_same_program(&a, &b), -ESTALE);
	r[0].size -= 4096;
	/* 5: one allocation fewer */
	b.nallocs--;
	ck_assert_int_eq(gmig_state_same_program(&a, &b), -ESTALE);
	b.nallocs++;
	/* 6: another arena */
	b.arena_va += 4096;
	ck_assert_int_eq(gmig_state_same_program(&a, &b), -ESTALE);
	b.arena_va -= 4096;
	ck_assert_int_eq(gmig_state_same_program(&a, &b), 0);
}
END_TEST

static Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("state");

	tcase_add_test(tc, test_round_trip);
	tcase_add_loop_test(tc, test_malformed, 0, sizeof(bads) / sizeof(bads[0]));
	tcase_add_test(tc, test_encode_refuses);
	tcase_add_test(tc, test_same_program);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(state_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
