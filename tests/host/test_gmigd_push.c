/*
 * Pushing an image into a guest: the manifest names every region, the data frames cover each
 * region exactly once and in order, zero runs go as markers, LZ4 decodes to the same bytes,
 * chunks larger than a frame are split, the output budget holds, and an image that is not
 * whole is refused before a byte goes out.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "gmig/message.h"
#include "hostutil.h"
#include "push.h"

/* A sink that decodes what it gets; "queued" grows until the test drains it. */
struct capture {
	size_t queued, max_queued;
	unsigned int frames, zero_frames, lz4_frames;
	bool begun, ended;
	uint32_t clients;
	uint64_t total;
	struct gmig_totals data, end;
	const struct gmig_image *img;
	uint8_t **bytes;		/* per image region, what the frames rebuilt */
	uint64_t *next;			/* per region, the next offset due */
	int fail_at;			/* frame number that fails with -ENOTCONN; 0: none */
};

static int region_index(const struct gmig_image *img, uint32_t pid, uint32_t id)
{
	for (uint32_t i = 0; i < img->nregions; i++) {
		if (img->regions[i].pid == pid && img->regions[i].id == id)
			return (int)i;
	}
	return -1;
}

static int cap_send(void *ctx, const struct gmig_msg *m)
{
	struct capture *c = ctx;
	static uint8_t out[GMIG_DATA_MAX];
	const struct gmig_region_data *d = &m->u.region_data;
	int i;

	if (c->fail_at && (int)c->frames + 1 == c->fail_at)
		return -ENOTCONN;
	c->frames++;
	switch (m->type) {
	case GMIG_MSG_RESTORE_BEGIN: {
		uint32_t n = gmig_rec_count(&m->u.restore_begin.tail, GMIG_REC_manifest_SIZE);

		ck_assert(!c->begun);
		c->begun = true;
		c->clients = m->u.restore_begin.clients;
		c->total = m->u.restore_begin.bytes;
		ck_assert_uint_eq(n, c->img->nregions);
		for (uint32_t k = 0; k < n; k++) {
			struct gmig_rec_manifest r;
			const struct gmig_image_region *ir = &c->img->regions[k];

			gmig_rec_get_manifest(&m->u.restore_begin.tail, k, &r);
			ck_assert(r.pid == ir->pid && r.region == ir->id && r.va == ir->va &&
				  r.size == ir->size && r.chunk == ir->chunk);
		}
		c->queued += 40 + 12 + n * GMIG_REC_manifest_SIZE;
		break;
	}
	case GMIG_MSG_RESTORE_DATA:
		ck_assert(c->begun && !c->ended);
		i = region_index(c->img, d->pid, d->region);
		ck_assert_int_ge(i, 0);
		/* Each region in order, every byte once. */
		ck_assert_uint_eq(d->offset, c->next[i]);
		ck_assert_uint_le(d->offset + d->length, c->img->regions[i].size);
		ck_assert_uint_ge(d->epoch, 1);
		switch (d->encoding) {
		case GMIG_ENC_ZERO:
			ck_assert_uint_le(d->length, GMIG_DATA_MAX);
			memset(c->bytes[i] + d->offset, 0, d->length);
			c->zero_frames++;
			break;
		case GMIG_ENC_RAW:
			ck_assert_uint_le(d->length, PUSH_FRAME_MAX);
			ck_assert_uint_eq(d->tail.len, d->length);
			memcpy(c->bytes[i] + d->offset, d->tail.ptr, d->length);
			break;
		case GMIG_ENC_LZ4:
			ck_assert_uint_le(d->length, PUSH_FRAME_MAX);
			ck_assert_uint_lt(d->tail.len, d->length);
			ck_assert_int_eq(LZ4_decompress_safe((const char *)d->tail.ptr, (char *)out,
							     (int)d->tail.len, GMIG_DATA_MAX),
					 (int)d->length);
			memcpy(c->bytes[i] + d->offset, out, d->length);
			c->lz4_frames++;
			break;
		default:
			ck_abort_msg("encoding %u", d->encoding);
		}
		c->next[i] += d->length;
		c->data.chunks++;
		c->data.bytes += d->length;
		c->queued += 40 + 25 + d->tail.len;
		break;
	case GMIG_MSG_RESTORE_END:
		ck_assert(c->begun && !c->ended);
		c->ended = true;
		c->end = m->u.totals;
		c->queued += 40 + 16;
		break;
	default:
		ck_abort_msg("unexpected %s", gmig_msg_name(m->type));
	}
	if (c->queued > c->max_queued)
		c->max_queued = c->queued;
	return 0;
}

static size_t cap_queued(void *ctx)
{
	return ((struct capture *)ctx)->queued;
}

static void capture_init(struct capture *c, const struct gmig_image *img)
{
	memset(c, 0, sizeof(*c));
	c->img = img;
	c->bytes = calloc(img->nregions + 1, sizeof(*c->bytes));
	c->next = calloc(img->nregions + 1, sizeof(*c->next));
	for (uint32_t i = 0; i < img->nregions; i++)
		c->bytes[i] = calloc(1, img->regions[i].size);
}

static void capture_free(struct capture *c)
{
	for (uint32_t i = 0; i < c->img->nregions; i++)
		free(c->bytes[i]);
	free(c->bytes);
	free(c->next);
}

/* Runs a push to its end, draining the sink between calls; returns push_run's last answer. */
static int push_all(struct push *p, struct capture *c)
{
	int rc;

	for (int calls = 0; calls < 100000; calls++) {
		rc = push_run(p);
		if (rc)
			return rc;
		ck_assert_uint_ge(c->queued, p->budget);	/* it stopped because it was full */
		c->queued = 0;
	}
	ck_abort_msg("the push never ended");
}

static uint8_t lz4_buf[LZ4_COMPRESSBOUND(PUSH_FRAME_MAX)];

/* Rows: random images, plain and LZ4, with budgets from tiny to ample. */
START_TEST(test_random_images)
{
	uint64_t seed = 0x9e3779b9u + (uint64_t)_i;
	size_t budget = (_i % 3 == 0) ? 1 : (_i % 3 == 1) ? (256u << 10) : (64u << 20);
	struct push_sink sink = { cap_send, cap_queued, NULL };
	struct gmig_image img;
	struct capture c;
	struct push p;
	uint32_t pids = 0;

	gmig_image_init(&img, 0);
	hu_random_image(&img, &seed, 48u << 20);
	capture_init(&c, &img);
	sink.ctx = &c;
	push_init(&p, &sink, &img, budget, _i % 2, lz4_buf);
	ck_assert_int_eq(push_all(&p, &c), 1);
	ck_assert(c.begun && c.ended);
	for (uint32_t i = 0; i < img.nregions; i++) {
		pids += !i || img.regions[i].pid != img.regions[i - 1].pid;
		ck_assert_uint_eq(c.next[i], img.regions[i].size);
		ck_assert_int_eq(memcmp(c.bytes[i], img.regions[i].data, img.regions[i].size), 0);
	}
	ck_assert_uint_eq(c.clients, pids);
	ck_assert_uint_eq(c.total, img.bytes);
	ck_assert_uint_eq(c.end.chunks, c.data.chunks);
	ck_assert_uint_eq(c.end.bytes, img.bytes);
	ck_assert(push_matches(&p, &c.end));
	/* Over the budget by one frame at most. */
	ck_assert_uint_le(c.max_queued, budget + 40 + 25 + PUSH_FRAME_MAX + 40 + 16 +
			  40 + 12 + (size_t)img.nregions * GMIG_REC_manifest_SIZE);
	if (!(_i % 2))
		ck_assert_uint_eq(c.lz4_frames, 0);
	/* Once done it stays done. */
	ck_assert_int_eq(push_run(&p), 1);
	capture_free(&c);
	gmig_image_clear(&img);
}
END_TEST

/* A region of one client with the given chunk and size, filled as told. */
static void one_region(struct gmig_image *img, uint32_t chunk, uint64_t size, int fill)
{
	struct gmig_rec_region r = { .id = 1, .va = 1ull << 32, .size = size, .chunk = chunk };
	uint64_t seed = 7;

	gmig_image_init(img, 0);
	ck_assert_int_eq(hu_set_gpus(img, 1), 0);
	ck_assert_int_eq(hu_set_client(img, 100, 0, "prog", &r, 1), 0);
	hu_fill_region(img, &img->regions[0], 3, &seed);
	if (fill == 0)
		memset(img->regions[0].data, 0, size);
	else if (fill == 1)
		hu_fill(img->regions[0].data, size, &seed);
	else
		hu_fill_text(img->regions[0].data, size, &seed);
}

/* Shapes: chunks larger than a frame, a short last chunk, all zero, all random. */
static const struct {
	uint32_t chunk;
	uint64_t size;
	int fill;		/* 0 zero, 1 random, 2 compressible */
	bool lz4;
	unsigned int frames;	/* RESTORE_DATA frames expected */
} shapes[] = {
	/* 0: 4 MiB chunks, 6 MiB: data goes in 1 MiB pieces */
	{ 4u << 20, 6u << 20, 1, false, 6 },
	/* 1: the same, all zero: one marker per 4 MiB at most */
	{ 4u << 20, 6u << 20, 0, false, 2 },
	/* 2: 64 KiB chunks, 1 MiB + 4 KiB: a short last chunk */
	{ 64u << 10, (1u << 20) + 4096, 1, false, 2 },
	/* 3: 12 MiB of zeros in 64 KiB chunks: three markers */
	{ 64u << 10, 12u << 20, 0, false, 3 },
	/* 4: compressible, with LZ4: every frame compressed */
	{ 64u << 10, 2u << 20, 2, true, 2 },
	/* 5: random, with LZ4: LZ4 does not help, so RAW */
	{ 64u << 10, 2u << 20, 1, true, 2 },
};

START_TEST(test_shapes)
{
	struct push_sink sink = { cap_send, cap_queued, NULL };
	struct gmig_image img;
	struct capture c;
	struct push p;

	one_region(&img, shapes[_i].chunk, shapes[_i].size, shapes[_i].fill);
	capture_init(&c, &img);
	sink.ctx = &c;
	push_init(&p, &sink, &img, 64u << 20, shapes[_i].lz4, lz4_buf);
	ck_assert_int_eq(push_all(&p, &c), 1);
	ck_assert_uint_eq(c.data.chunks, shapes[_i].frames);
	ck_assert_int_eq(memcmp(c.bytes[0], img.regions[0].data, shapes[_i].size), 0);
	if (shapes[_i].fill == 0)
		ck_assert_uint_eq(c.zero_frames, c.data.chunks);
	if (shapes[_i].lz4 && shapes[_i].fill == 2)
		ck_assert_uint_eq(c.lz4_frames, c.data.chunks);
	if (shapes[_i].lz4 && shapes[_i].fill == 1)
		ck_assert_uint_eq(c.lz4_frames, 0);
	capture_free(&c);
	gmig_image_clear(&img);
}
END_TEST

/* An image with a chunk never written cannot be restored: nothing goes out. */
START_TEST(test_incomplete)
{
	struct push_sink sink = { cap_send, cap_queued, NULL };
	struct gmig_image img;
	struct capture c;
	struct push p;

	one_region(&img, 64u << 10, 1u << 20, 1);
	img.regions[0].epochs[5] = 0;
	capture_init(&c, &img);
	sink.ctx = &c;
	push_init(&p, &sink, &img, 64u << 20, false, lz4_buf);
	ck_assert_int_eq(push_run(&p), -EINVAL);
	ck_assert_uint_eq(c.frames, 0);
	capture_free(&c);
	gmig_image_clear(&img);
}
END_TEST

/* A sink that fails mid-way: the error comes back, and the totals count only what went. */
START_TEST(test_sink_fails)
{
	struct push_sink sink = { cap_send, cap_queued, NULL };
	struct gmig_image img;
	struct capture c;
	struct push p;

	one_region(&img, 64u << 10, 4u << 20, 1);
	capture_init(&c, &img);
	c.fail_at = 3;
	sink.ctx = &c;
	push_init(&p, &sink, &img, 64u << 20, false, lz4_buf);
	ck_assert_int_eq(push_run(&p), -ENOTCONN);
	ck_assert_uint_eq(p.sent.chunks, 1);
	ck_assert_uint_eq(p.sent.bytes, c.data.bytes);
	capture_free(&c);
	gmig_image_clear(&img);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-push");
	TCase *tc = tcase_create("push");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_random_images, 0, 12);
	tcase_add_loop_test(tc, test_shapes, 0, (int)(sizeof(shapes) / sizeof(shapes[0])));
	tcase_add_test(tc, test_incomplete);
	tcase_add_test(tc, test_sink_fails);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
