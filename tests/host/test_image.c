/* Check suite for the image a host holds: clients, regions, growth, caps and every apply check. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "fault.h"
#include "hostutil.h"
#include "image.h"

#define PID	100
#define VA	0x7f0000000000ull
#define K4	4096u

/* Region 1: 16 whole chunks. Region 2: 10 KiB, so its third chunk is 2 KiB. */
static const struct gmig_rec_region std_regions[] = {
	{ .id = 1, .va = VA, .size = 16 * K4, .chunk = K4 },
	{ .id = 2, .va = VA + 0x100000, .size = 10 * 1024, .chunk = K4 },
};

/* The standard image: two GPUs, one client, chunks 0-3 of region 1 hold 0xaa at epoch 5. */
static void std_image(struct gmig_image *img, uint64_t cap)
{
	uint8_t *a = malloc(4 * K4);
	struct gmig_region_data d = { .pid = PID, .region = 1, .offset = 0, .length = 4 * K4,
				      .encoding = GMIG_ENC_RAW, .epoch = 5, .tail = { a, 4 * K4 } };

	ck_assert_ptr_nonnull(a);
	memset(a, 0xaa, 4 * K4);
	gmig_image_init(img, cap);
	ck_assert_int_eq(hu_set_gpus(img, 2), 0);
	ck_assert_int_eq(hu_set_client(img, PID, 0, "prog", std_regions, 2), 0);
	ck_assert_int_eq(gmig_image_apply(img, &d, false), 0);
	free(a);
}

/* A copy of a region's bytes and epochs, to compare with after a change. */
struct snap {
	uint64_t size, nchunks;
	uint8_t *data;
	uint32_t *epochs;
};

static void snap_take(struct snap *s, const struct gmig_image_region *r)
{
	s->size = r->size;
	s->nchunks = gmig_image_nchunks(r);
	s->data = malloc(r->size);
	s->epochs = malloc(s->nchunks * sizeof(uint32_t));
	ck_assert(s->data && s->epochs);
	memcpy(s->data, r->data, r->size);
	memcpy(s->epochs, r->epochs, s->nchunks * sizeof(uint32_t));
}

static bool snap_same(const struct snap *s, const struct gmig_image_region *r)
{
	return r->size == s->size && !memcmp(r->data, s->data, s->size) &&
	       !memcmp(r->epochs, s->epochs, s->nchunks * sizeof(uint32_t));
}

static void snap_free(struct snap *s)
{
	free(s->data);
	free(s->epochs);
}

enum body {
	B_NONE,		/* no tail */
	B_RAND,		/* length random bytes */
	B_SHORT,	/* length - 1 random bytes */
	B_LONG,		/* length + 1 random bytes */
	B_LZ4,		/* an LZ4 block of length compressible bytes */
	B_LZ4_BAD,	/* that block with its end cut off */
	B_LZ4_FEWER,	/* an LZ4 block of length - 4096 bytes */
};

static const struct apply_row {
	uint32_t pid, region;
	uint64_t offset;
	uint32_t length;
	uint8_t encoding;
	enum body body;
	uint32_t epoch;
	bool lz4;
	int expect;
	uint32_t take;		/* chunks of the region that take the bytes */
} apply_rows[] = {
	/* 1 */ { 999, 1, 0, K4, GMIG_ENC_RAW, B_RAND, 6, false, -ENOENT, 0 },
	/* 2 */ { PID, 9, 0, K4, GMIG_ENC_RAW, B_RAND, 6, false, -ENOENT, 0 },
	/* 3 */ { PID, 1, 16 * K4, K4, GMIG_ENC_RAW, B_RAND, 6, false, -ERANGE, 0 },
	/* 4 */ { PID, 1, 15 * K4, 2 * K4, GMIG_ENC_RAW, B_RAND, 6, false, -ERANGE, 0 },
	/* 5 */ { PID, 1, 100, K4, GMIG_ENC_RAW, B_RAND, 6, false, -ERANGE, 0 },
	/* 6 */ { PID, 1, K4, 5000, GMIG_ENC_RAW, B_RAND, 6, false, -ERANGE, 0 },
	/* 7 */ { PID, 1, 0, 2 * K4, GMIG_ENC_ZERO, B_NONE, 6, false, 0, 0x3 },
	/* 8 */ { PID, 1, 4 * K4, K4, GMIG_ENC_RAW, B_RAND, 1, false, 0, 0x10 },
	/* 9 */ { PID, 1, K4, 6 * K4, GMIG_ENC_RAW, B_RAND, 5, false, 0, 0x7e },
	/* 10 */ { PID, 1, 0, K4, GMIG_ENC_RAW, B_SHORT, 6, false, -EPROTO, 0 },
	/* 11 */ { PID, 1, 0, K4, GMIG_ENC_ZERO, B_RAND, 6, false, -EPROTO, 0 },
	/* 12 */ { PID, 1, 2 * K4, 8 * K4, GMIG_ENC_LZ4, B_LZ4, 6, true, 0, 0x3fc },
	/* 13 */ { PID, 1, 2 * K4, 8 * K4, GMIG_ENC_LZ4, B_LZ4, 6, false, -EPROTO, 0 },
	/* 14 */ { PID, 1, 2 * K4, 8 * K4, GMIG_ENC_LZ4, B_LZ4_BAD, 6, true, -EPROTO, 0 },
	/* 15 */ { PID, 1, 2 * K4, 8 * K4, GMIG_ENC_LZ4, B_LZ4_FEWER, 6, true, -EPROTO, 0 },
	/* 16 */ { PID, 1, 0, K4, GMIG_ENC_LZ4, B_LONG, 6, true, -EPROTO, 0 },
	/* 17 */ { PID, 1, 0, 4 * K4, GMIG_ENC_RAW, B_RAND, 4, false, 0, 0 },
	/* 18 */ { PID, 1, 0, 4 * K4, GMIG_ENC_RAW, B_RAND, 6, false, 0, 0xf },
	/* 19 */ { PID, 1, 0, 8 * K4, GMIG_ENC_RAW, B_RAND, 3, false, 0, 0xf0 },
	/* 20 */ { PID, 1, 0, K4, GMIG_ENC_RAW, B_RAND, 0, false, -EPROTO, 0 },
	/* 21 */ { PID, 1, 0, 0, GMIG_ENC_ZERO, B_NONE, 6, false, -EPROTO, 0 },
	/* 22 */ { PID, 1, 0, GMIG_DATA_MAX + 1, GMIG_ENC_ZERO, B_NONE, 6, false, -EPROTO, 0 },
	/* 23 */ { PID, 1, 0, K4, 3, B_RAND, 6, false, -EPROTO, 0 },
	/* 24 */ { PID, 2, 2 * K4, 2048, GMIG_ENC_RAW, B_RAND, 6, false, 0, 0x4 },
	/* 25 */ { PID, 2, 2 * K4, K4, GMIG_ENC_RAW, B_RAND, 6, false, -ERANGE, 0 },
	/* 26 */ { PID, 2, 0, 10 * 1024, GMIG_ENC_RAW, B_RAND, 6, false, 0, 0x7 },
	/* 27 */ { PID, 1, UINT64_MAX - (K4 - 1), K4, GMIG_ENC_RAW, B_RAND, 6, false, -ERANGE, 0 },
	/* 28 */ { PID, 1, 0, 4 * K4, GMIG_ENC_LZ4, B_LZ4_BAD, 4, true, 0, 0 },
	/* 29 */ { PID, 1, 0, 4 * K4, GMIG_ENC_ZERO, B_NONE, 4, false, 0, 0 },
	/* 30 */ { PID, 1, 0, 16 * K4, GMIG_ENC_ZERO, B_NONE, 5, false, 0, 0xffff },
};

/* Builds the tail of a row into buf; *plain gets the decoded bytes the chunks should take. */
static struct gmig_tail make_body(const struct apply_row *row, uint8_t *buf, uint8_t *plain,
				  uint64_t *seed)
{
	uint32_t n = row->length;
	int z;

	memset(plain, 0, n + 1u);
	switch (row->body) {
	case B_NONE:
		return (struct gmig_tail){ NULL, 0 };
	case B_RAND:
	case B_SHORT:
	case B_LONG:
		hu_fill(plain, n + 1u, seed);
		memcpy(buf, plain, n + 1u);
		return (struct gmig_tail){ buf, row->body == B_RAND ? n : row->body == B_SHORT ? n - 1 : n + 1 };
	case B_LZ4:
	case B_LZ4_BAD:
	case B_LZ4_FEWER:
		hu_fill_text(plain, n, seed);
		z = LZ4_compress_default((const char *)plain, (char *)buf,
					 (int)(row->body == B_LZ4_FEWER ? n - K4 : n), LZ4_compressBound((int)n));
		ck_assert_int_gt(z, 16);
		ck_assert_int_lt(z, (int)n);
		return (struct gmig_tail){ buf, (uint32_t)(row->body == B_LZ4_BAD ? z - 7 : z) };
	}
	ck_abort();
	return (struct gmig_tail){ NULL, 0 };
}

START_TEST(test_apply_rows)
{
	const struct apply_row *row = &apply_rows[_i];
	uint64_t seed = 0x5eed + (uint64_t)_i;
	size_t cap = row->length > 16 * K4 ? 16 * K4 : row->length;
	uint8_t *buf = malloc(LZ4_compressBound((int)cap) + 2), *plain = malloc(cap + 2);
	struct gmig_region_data d = { .pid = row->pid, .region = row->region, .offset = row->offset,
				      .length = row->length, .encoding = row->encoding, .epoch = row->epoch };
	struct gmig_image img;
	struct snap s[2];
	struct gmig_image_region *target;
	int rc;

	ck_assert(buf && plain);
	std_image(&img, 0);
	snap_take(&s[0], gmig_image_region(&img, PID, 1));
	snap_take(&s[1], gmig_image_region(&img, PID, 2));
	if (row->length <= cap)
		d.tail = make_body(row, buf, plain, &seed);

	rc = gmig_image_apply(&img, &d, row->lz4);
	ck_assert_msg(rc == row->expect, "row %d: rc %d, expected %d", _i + 1, rc, row->expect);

	/* Chunks in take hold the new bytes at the new epoch; every other byte is as it was. */
	target = row->pid == PID ? gmig_image_region(&img, PID, row->region) : NULL;
	for (uint32_t ri = 1; ri <= 2; ri++) {
		struct gmig_image_region *r = gmig_image_region(&img, PID, ri);
		const struct snap *sn = &s[ri - 1];

		for (uint64_t ci = 0; ci < sn->nchunks; ci++) {
			uint64_t off = ci * r->chunk;
			size_t n = r->size - off < r->chunk ? r->size - off : r->chunk;
			bool took = r == target && (row->take >> ci & 1);

			if (took) {
				ck_assert_msg(!memcmp(r->data + off, plain + (off - row->offset), n),
					      "row %d: chunk %llu bytes", _i + 1, (unsigned long long)ci);
				ck_assert_uint_eq(r->epochs[ci], row->epoch);
			} else {
				ck_assert_msg(!memcmp(r->data + off, sn->data + off, n),
					      "row %d: chunk %llu of region %u changed", _i + 1,
					      (unsigned long long)ci, ri);
				ck_assert_uint_eq(r->epochs[ci], sn->epochs[ci]);
			}
		}
	}
	snap_free(&s[0]);
	snap_free(&s[1]);
	gmig_image_clear(&img);
	free(buf);
	free(plain);
}
END_TEST

/* INV_CLIENT rows against the standard image; a refused one changes nothing. */
static const struct client_row {
	uint32_t pid, gpu;
	const char *name;
	struct gmig_rec_region regions[3];
	unsigned n;
	uint64_t cap;
	int expect;
} client_rows[] = {
	/* 1 */ { 200, 1, "ok", { { 1, VA, 8 * K4, K4 } }, 1, 0, 0 },
	/* 2 */ { 0, 1, "pid0", { { 1, VA, 8 * K4, K4 } }, 1, 0, -EINVAL },
	/* 3 */ { 200, 7, "nogpu", { { 1, VA, 8 * K4, K4 } }, 1, 0, -EINVAL },
	/* 4 */ { 200, 1, "overlap", { { 1, VA, 8 * K4, K4 }, { 2, VA + 7 * K4, K4, K4 } }, 2, 0, -EINVAL },
	/* 5 */ { 200, 1, "dupid", { { 1, VA, K4, K4 }, { 1, VA + K4, K4, K4 } }, 2, 0, -EINVAL },
	/* 6 */ { 200, 1, "chunk3k", { { 1, VA, 8 * K4, 3072 } }, 1, 0, -EINVAL },
	/* 7 */ { 200, 1, "chunk2k", { { 1, VA, 8 * K4, 2048 } }, 1, 0, -EINVAL },
	/* 8 */ { 200, 1, "chunk8m", { { 1, VA, 8 * K4, 8u << 20 } }, 1, 0, -EINVAL },
	/* 9 */ { 200, 1, "size0", { { 1, VA, 0, K4 } }, 1, 0, -EINVAL },
	/* 10 */ { 200, 1, "wrap", { { 1, UINT64_MAX - K4, 2 * K4, K4 } }, 1, 0, -EINVAL },
	/* 11 */ { 200, 1, "bad\tname", { { 1, VA, K4, K4 } }, 1, 0, -EINVAL },
	/* 12 */ { 200, 1, "cap", { { 1, VA, 8 * K4, K4 } }, 1, 16 * K4 + 10 * 1024 + 8 * K4 - 1, -ENOSPC },
	/* 13 */ { 200, 1, "capexact", { { 1, VA, 8 * K4, K4 } }, 1, 16 * K4 + 10 * 1024 + 8 * K4, 0 },
	/* 14 */ { 200, 1, "noregions", { { 0 } }, 0, 0, 0 },
	/* 15 */ { 200, 1, "adjacent", { { 1, VA, 8 * K4, K4 }, { 2, VA + 8 * K4, K4, K4 } }, 2, 0, 0 },
	/* 16 */ { PID, 0, "moved", { { 1, VA + K4, 16 * K4, K4 } }, 1, 0, -EINVAL },
	/* 17 */ { PID, 0, "rechunk", { { 1, VA, 16 * K4, 2 * K4 } }, 1, 0, -EINVAL },
	/* 18 */ { PID, 0, "shrunk", { { 1, VA, 15 * K4, K4 } }, 1, 0, -EINVAL },
	/* 19 */ { 200, 1, "huge", { { 1, VA, 1ull << 62, 4u << 20 } }, 1, 1ull << 40, -ENOSPC },
	/* 20 */ { 200, 1, "sum-wraps", { { 1, 0, UINT64_MAX - 1, 4u << 20 } }, 1, 0, -ENOSPC },
};

START_TEST(test_client_rows)
{
	const struct client_row *row = &client_rows[_i];
	struct gmig_image img;
	struct snap s;
	uint32_t nregions, nclients;
	uint64_t bytes;
	int rc;

	std_image(&img, row->cap);
	snap_take(&s, gmig_image_region(&img, PID, 1));
	nregions = img.nregions;
	nclients = img.nclients;
	bytes = img.bytes;
	rc = hu_set_client(&img, row->pid, row->gpu, row->name, row->regions, row->n);
	ck_assert_msg(rc == row->expect, "row %d: rc %d, expected %d", _i + 1, rc, row->expect);
	if (rc) {
		ck_assert_uint_eq(img.nregions, nregions);
		ck_assert_uint_eq(img.nclients, nclients);
		ck_assert_uint_eq(img.bytes, bytes);
		ck_assert(snap_same(&s, gmig_image_region(&img, PID, 1)));
	} else {
		struct gmig_image_client *c = gmig_image_client(&img, row->pid);

		ck_assert_ptr_nonnull(c);
		ck_assert_str_eq(c->name, row->name);
		ck_assert_uint_eq(c->gpu, row->gpu);
		ck_assert_uint_eq(img.nregions, nregions + row->n);
		for (unsigned i = 0; i < row->n; i++) {
			struct gmig_image_region *r = gmig_image_region(&img, row->pid, row->regions[i].id);

			ck_assert_ptr_nonnull(r);
			ck_assert_uint_eq(r->size, row->regions[i].size);
			ck_assert_uint_eq(r->epochs[0], 0);
			ck_assert_uint_eq(r->data[r->size - 1], 0);
		}
	}
	snap_free(&s);
	gmig_image_clear(&img);
}
END_TEST

/* Malformed INV_CLIENT tails and INV_GPUS lists. */
START_TEST(test_malformed_lists)
{
	struct gmig_image img;
	uint8_t recs[2 * GMIG_REC_gpu_SIZE] = { 0 };
	struct gmig_inv_client c = { .pid = 300, .gpu = 0, .name = "x", .tail = { recs, 23 } };
	struct gmig_inv_gpus g = { .tail = { recs, GMIG_REC_gpu_SIZE + 1 } };
	struct gmig_rec_gpu gpu = { .index = 0, .backend = GMIG_BACKEND_SIM };

	std_image(&img, 0);
	/* 1: a region tail that is not whole records */
	ck_assert_int_eq(gmig_image_set_client(&img, &c), -EINVAL);
	/* 2: a length with no bytes */
	c.tail = (struct gmig_tail){ NULL, GMIG_REC_region_SIZE };
	ck_assert_int_eq(gmig_image_set_client(&img, &c), -EINVAL);
	/* 3: GPU records that are not whole */
	ck_assert_int_eq(gmig_image_set_gpus(&img, &g), -EINVAL);
	/* 4: a GPU record with backend 0 */
	g.tail.len = GMIG_REC_gpu_SIZE;
	ck_assert_int_eq(gmig_image_set_gpus(&img, &g), -EINVAL);
	/* 5: the same GPU index twice */
	ck_assert_int_eq(gmig_rec_put_gpu(recs, &gpu), GMIG_REC_gpu_SIZE);
	ck_assert_int_eq(gmig_rec_put_gpu(recs + GMIG_REC_gpu_SIZE, &gpu), GMIG_REC_gpu_SIZE);
	g.tail.len = 2 * GMIG_REC_gpu_SIZE;
	ck_assert_int_eq(gmig_image_set_gpus(&img, &g), -EINVAL);
	/* 6: a name field not NUL-padded after its end */
	g.tail.len = GMIG_REC_gpu_SIZE;
	recs[GMIG_REC_gpu_SIZE - 2] = 'x';
	ck_assert_int_eq(gmig_image_set_gpus(&img, &g), -EINVAL);
	/* 7: a list without GPU 0, which client PID runs on */
	gpu.index = 1;
	ck_assert_int_eq(gmig_rec_put_gpu(recs, &gpu), GMIG_REC_gpu_SIZE);
	ck_assert_int_eq(gmig_image_set_gpus(&img, &g), -EINVAL);
	ck_assert_uint_eq(img.ngpus, 2);
	/* 8: more than GMIG_GPUS_MAX */
	ck_assert_int_eq(hu_set_gpus(&img, GMIG_GPUS_MAX), 0);
	g.tail = (struct gmig_tail){ recs, (GMIG_GPUS_MAX + 1) * GMIG_REC_gpu_SIZE };
	ck_assert_int_eq(gmig_image_set_gpus(&img, &g), -EINVAL);
	ck_assert_uint_eq(img.ngpus, GMIG_GPUS_MAX);
	/* 9: the list with GPU 0 replaces the old one */
	ck_assert_int_eq(hu_set_gpus(&img, 1), 0);
	ck_assert_uint_eq(img.ngpus, 1);
	gmig_image_clear(&img);
}
END_TEST

START_TEST(test_growth)
{
	struct gmig_rec_region grown[] = {
		{ .id = 1, .va = VA, .size = 20 * K4, .chunk = K4 },
		{ .id = 2, .va = VA + 0x100000, .size = 12 * K4, .chunk = K4 },
		{ .id = 3, .va = VA + 0x200000, .size = K4, .chunk = K4 },
	};
	struct gmig_image img;
	struct gmig_image_region *r;
	uint64_t seed = 7;

	std_image(&img, 0);
	r = gmig_image_region(&img, PID, 2);
	hu_fill_region(&img, r, 2, &seed);
	ck_assert_uint_eq(r->epochs[2], 2);
	ck_assert_int_eq(hu_set_client(&img, PID, 1, "prog2", grown, 3), 0);
	ck_assert_uint_eq(img.bytes, 20 * K4 + 12 * K4 + K4);
	ck_assert_uint_eq(img.nregions, 3);
	ck_assert_uint_eq(gmig_image_client(&img, PID)->gpu, 1);

	/* Region 1 keeps its bytes and epochs; what it gained is zero and unwritten. */
	r = gmig_image_region(&img, PID, 1);
	for (uint64_t i = 0; i < 4 * K4; i++)
		ck_assert_uint_eq(r->data[i], 0xaa);
	for (uint64_t i = 16 * K4; i < 20 * K4; i++)
		ck_assert_uint_eq(r->data[i], 0);
	ck_assert_uint_eq(r->epochs[3], 5);
	ck_assert_uint_eq(r->epochs[16], 0);
	ck_assert_uint_eq(r->epochs[19], 0);
	/* Region 2's short last chunk grew: unwritten again; its bytes past 10 KiB are zero. */
	r = gmig_image_region(&img, PID, 2);
	ck_assert_uint_eq(r->epochs[1], 2);
	ck_assert_uint_eq(r->epochs[2], 0);
	for (uint64_t i = 10 * 1024; i < 12 * K4; i++)
		ck_assert_uint_eq(r->data[i], 0);
	ck_assert(!gmig_image_complete(&img));

	/* Listing only region 3 drops regions 1 and 2. */
	ck_assert_int_eq(hu_set_client(&img, PID, 1, "prog2", grown + 2, 1), 0);
	ck_assert_uint_eq(img.nregions, 1);
	ck_assert_uint_eq(img.bytes, K4);
	ck_assert_ptr_null(gmig_image_region(&img, PID, 1));
	gmig_image_clear(&img);
	ck_assert(hu_image_empty(&img));
}
END_TEST

START_TEST(test_drop_client)
{
	struct gmig_rec_region one = { .id = 1, .va = VA, .size = 2 * K4, .chunk = K4 };
	struct gmig_region_data d = { .pid = 50, .region = 1, .length = 2 * K4,
				      .encoding = GMIG_ENC_ZERO, .epoch = 1 };
	struct gmig_image img;

	std_image(&img, 0);
	ck_assert_int_eq(hu_set_client(&img, 50, 0, "a", &one, 1), 0);
	ck_assert_int_eq(hu_set_client(&img, 700, 1, "b", &one, 1), 0);
	ck_assert_int_eq(hu_set_client(&img, UINT32_MAX, 1, "c", &one, 1), 0);
	ck_assert_int_eq(gmig_image_set_blob(&img, PID, "state", 5), 0);
	ck_assert_uint_eq(img.nclients, 4);
	ck_assert_uint_eq(img.nregions, 5);
	ck_assert_uint_eq(img.clients[0].pid, 50);
	ck_assert_uint_eq(img.clients[3].pid, UINT32_MAX);

	gmig_image_drop_client(&img, PID);
	ck_assert_uint_eq(img.nclients, 3);
	ck_assert_uint_eq(img.nregions, 3);
	ck_assert_uint_eq(img.bytes, 6 * K4);
	ck_assert_ptr_null(gmig_image_client(&img, PID));
	ck_assert_ptr_null(gmig_image_region(&img, PID, 1));
	d.pid = PID;
	ck_assert_int_eq(gmig_image_apply(&img, &d, false), -ENOENT);
	d.pid = 50;
	ck_assert_int_eq(gmig_image_apply(&img, &d, false), 0);
	ck_assert_ptr_nonnull(gmig_image_region(&img, 700, 1));

	/* Unknown pids are no-ops; the largest pid drops cleanly. */
	gmig_image_drop_client(&img, 12345);
	gmig_image_drop_client(&img, UINT32_MAX);
	ck_assert_uint_eq(img.nclients, 2);
	ck_assert_uint_eq(img.nregions, 2);
	gmig_image_drop_client(&img, 50);
	gmig_image_drop_client(&img, 700);
	ck_assert_uint_eq(img.bytes, 0);
	ck_assert_uint_eq(img.nregions, 0);
	ck_assert_ptr_null(img.regions);
	gmig_image_clear(&img);
}
END_TEST

START_TEST(test_complete)
{
	struct gmig_image img;
	struct gmig_region_data d = { .pid = PID, .region = 1, .offset = 4 * K4, .length = 12 * K4,
				      .encoding = GMIG_ENC_ZERO, .epoch = 1 };

	std_image(&img, 0);
	ck_assert(!gmig_image_complete(&img));
	ck_assert_int_eq(gmig_image_apply(&img, &d, false), 0);
	ck_assert(!gmig_image_complete(&img));
	d = (struct gmig_region_data){ .pid = PID, .region = 2, .offset = 0, .length = 2 * K4,
				       .encoding = GMIG_ENC_ZERO, .epoch = 1 };
	ck_assert_int_eq(gmig_image_apply(&img, &d, false), 0);
	ck_assert(!gmig_image_complete(&img));
	d.offset = 2 * K4;
	d.length = 2048;
	ck_assert_int_eq(gmig_image_apply(&img, &d, false), 0);
	ck_assert(gmig_image_complete(&img));
	/* An image without regions is complete. */
	gmig_image_clear(&img);
	ck_assert(gmig_image_complete(&img));
}
END_TEST

START_TEST(test_blobs)
{
	struct gmig_image img;
	static uint8_t big[GMIG_BLOB_MAX + 1];
	struct gmig_image_client *c;

	std_image(&img, 0);
	c = gmig_image_client(&img, PID);
	ck_assert_ptr_null(c->blob);
	/* 1 */ ck_assert_int_eq(gmig_image_set_blob(&img, 1, "x", 1), -ENOENT);
	/* 2 */ ck_assert_int_eq(gmig_image_set_blob(&img, PID, big, GMIG_BLOB_MAX + 1), -EMSGSIZE);
	/* 3 */ ck_assert_int_eq(gmig_image_set_blob(&img, PID, NULL, 4), -EINVAL);
	/* 4 */ ck_assert_int_eq(gmig_image_set_blob(&img, PID, NULL, 0), 0);
	ck_assert_ptr_nonnull(c->blob);
	ck_assert_uint_eq(c->blob_len, 0);
	/* 5 */ ck_assert_int_eq(gmig_image_set_blob(&img, PID, big, GMIG_BLOB_MAX), 0);
	ck_assert_uint_eq(c->blob_len, GMIG_BLOB_MAX);
	/* 6 */ ck_assert_int_eq(gmig_image_set_blob(&img, PID, "abc", 3), 0);
	ck_assert_mem_eq(c->blob, "abc", 3);
	gmig_image_clear(&img);
}
END_TEST

/* Every allocation that can fail fails once: the call reports -ENOMEM and changes nothing. */
START_TEST(test_alloc_faults)
{
	struct gmig_rec_region regs[] = {
		{ .id = 1, .va = VA, .size = 40 * K4, .chunk = K4 },
		{ .id = 2, .va = VA + 0x100000, .size = 10 * 1024, .chunk = K4 },
		{ .id = 5, .va = VA + 0x300000, .size = 3 * K4, .chunk = K4 },
	};
	unsigned points = 0;

	for (unsigned n = 1;; n++) {
		struct gmig_image img;
		struct snap s;
		int rc;

		std_image(&img, 0);
		snap_take(&s, gmig_image_region(&img, PID, 1));
		gmig_fault_arm(n);
		rc = hu_set_client(&img, PID, 0, "prog", regs, 3);
		if (!gmig_fault_fired()) {
			gmig_fault_arm(0);
			ck_assert_int_eq(rc, 0);
			ck_assert_uint_eq(img.nregions, 3);
			snap_free(&s);
			gmig_image_clear(&img);
			break;
		}
		gmig_fault_arm(0);
		points++;
		ck_assert_int_eq(rc, -ENOMEM);
		ck_assert_uint_eq(img.nregions, 2);
		ck_assert_uint_eq(img.bytes, 16 * K4 + 10 * 1024);
		ck_assert(snap_same(&s, gmig_image_region(&img, PID, 1)));
		ck_assert_ptr_null(gmig_image_region(&img, PID, 5));
		snap_free(&s);
		gmig_image_clear(&img);
	}
	/* The pending list, region 1's two arrays, region 5's two arrays, the region array. */
	ck_assert_uint_eq(points, 6);
}
END_TEST

START_TEST(test_apply_lz4_fault)
{
	struct gmig_image img;
	uint8_t plain[2 * K4], block[LZ4_COMPRESSBOUND(2 * K4)];
	int z;
	struct gmig_region_data d = { .pid = PID, .region = 1, .offset = 0, .length = sizeof(plain),
				      .encoding = GMIG_ENC_LZ4, .epoch = 9 };
	uint64_t seed = 3;

	hu_fill_text(plain, sizeof(plain), &seed);
	z = LZ4_compress_default((const char *)plain, (char *)block, sizeof(plain), sizeof(block));
	d.tail = (struct gmig_tail){ block, (uint32_t)z };
	std_image(&img, 0);
	gmig_fault_arm(1);
	ck_assert_int_eq(gmig_image_apply(&img, &d, true), -ENOMEM);
	gmig_fault_arm(0);
	ck_assert_uint_eq(gmig_image_region(&img, PID, 1)->epochs[0], 5);
	ck_assert_int_eq(gmig_image_apply(&img, &d, true), 0);
	ck_assert_mem_eq(gmig_image_region(&img, PID, 1)->data, plain, sizeof(plain));
	gmig_image_clear(&img);
}
END_TEST

/* Clients arrive in random pid order and leave in another; lookups stay right. */
START_TEST(test_many_clients)
{
	enum { N = 300 };
	struct gmig_rec_region one = { .id = 9, .va = VA, .size = K4, .chunk = K4 };
	uint32_t pids[N];
	struct gmig_image img;
	uint64_t seed = 11;

	gmig_image_init(&img, 0);
	ck_assert_int_eq(hu_set_gpus(&img, 1), 0);
	for (unsigned i = 0; i < N; i++)
		pids[i] = 1 + i * 7;
	for (unsigned i = N - 1; i > 0; i--) {
		unsigned j = (unsigned)hu_below(&seed, i + 1);
		uint32_t t = pids[i];

		pids[i] = pids[j];
		pids[j] = t;
	}
	for (unsigned i = 0; i < N; i++)
		ck_assert_int_eq(hu_set_client(&img, pids[i], 0, "p", &one, 1), 0);
	for (unsigned i = 1; i < N; i++) {
		ck_assert_uint_lt(img.clients[i - 1].pid, img.clients[i].pid);
		ck_assert_uint_lt(img.regions[i - 1].pid, img.regions[i].pid);
	}
	for (unsigned i = 0; i < N; i += 2)
		gmig_image_drop_client(&img, pids[i]);
	ck_assert_uint_eq(img.nclients, N / 2);
	for (unsigned i = 0; i < N; i++) {
		ck_assert((gmig_image_client(&img, pids[i]) != NULL) == (i % 2 == 1));
		ck_assert((gmig_image_region(&img, pids[i], 9) != NULL) == (i % 2 == 1));
	}
	gmig_image_clear(&img);
}
END_TEST

/* An image holds at most GMIG_MANIFEST_MAX clients: a restore could not list more. */
START_TEST(test_client_limit)
{
	struct gmig_inv_client m = { .count = 1, .gpu = 0, .name = "p" };
	struct gmig_image img;
	uint32_t refused = 0;

	gmig_image_init(&img, 0);
	ck_assert_int_eq(hu_set_gpus(&img, 1), 0);
	/* Straight to the image: a Check assertion per call would cost a pipe write each. */
	for (m.pid = 1; m.pid <= GMIG_MANIFEST_MAX; m.pid++)
		refused += gmig_image_set_client(&img, &m) != 0;
	ck_assert_uint_eq(refused, 0);
	ck_assert_int_eq(hu_set_client(&img, GMIG_MANIFEST_MAX + 1, 0, "p", NULL, 0), -ENOSPC);
	/* An update of a client held is no new client. */
	ck_assert_int_eq(hu_set_client(&img, 5, 0, "again", NULL, 0), 0);
	ck_assert_uint_eq(img.nclients, GMIG_MANIFEST_MAX);
	gmig_image_clear(&img);
}
END_TEST

static Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_apply_rows, 0, sizeof(apply_rows) / sizeof(apply_rows[0]));
	tcase_add_loop_test(tc, test_client_rows, 0, sizeof(client_rows) / sizeof(client_rows[0]));
	tcase_add_test(tc, test_malformed_lists);
	tcase_add_test(tc, test_growth);
	tcase_add_test(tc, test_drop_client);
	tcase_add_test(tc, test_complete);
	tcase_add_test(tc, test_blobs);
	tcase_add_test(tc, test_alloc_faults);
	tcase_add_test(tc, test_apply_lz4_fault);
	tcase_add_test(tc, test_many_clients);
	tcase_add_test(tc, test_client_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(image_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
