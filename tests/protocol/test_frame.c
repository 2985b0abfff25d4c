/* Check suite for the frame header and the incremental stream decoder. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gmig/frame.h"
#include "gmig/message.h"
#include "testutil.h"

static uint8_t payload_buf[GMIG_PAYLOAD_MAX];

/* A valid PING frame with the given nonce and sequence number. */
static size_t make_ping(uint8_t *out, uint64_t nonce, uint64_t seq)
{
	struct gmig_hdr h = { .version = GMIG_VERSION_MAX, .session = 0x1122334455667788ull, .seq = seq };
	struct gmig_msg m = { .type = GMIG_MSG_PING, .u.nonce.nonce = nonce };
	long n = gmig_msg_encode(out, 128, &h, &m);

	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

static void poke_le(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int feed_all(struct gmig_decoder *d, const uint8_t *p, size_t n, struct gmig_frame *f,
		    size_t *used)
{
	return gmig_decoder_feed(d, p, n, used, f);
}

START_TEST(test_valid_ping)
{
	uint8_t buf[128];
	size_t n = make_ping(buf, 42, 7), used;
	struct gmig_decoder d;
	struct gmig_frame f;
	struct gmig_msg m;

	gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
	ck_assert_int_eq(feed_all(&d, buf, n, &f, &used), 1);
	ck_assert_uint_eq(used, n);
	ck_assert_uint_eq(n, GMIG_HDR_SIZE + 8);
	ck_assert_uint_eq(f.hdr.type, GMIG_MSG_PING);
	ck_assert_uint_eq(f.hdr.len, 8);
	ck_assert_uint_eq(f.hdr.seq, 7);
	ck_assert_uint_eq(f.hdr.session, 0x1122334455667788ull);
	ck_assert_int_eq(gmig_msg_decode(&f, &m), 0);
	ck_assert_uint_eq(m.u.nonce.nonce, 42);
	/* The wire starts with the magic "GMIG". */
	ck_assert_mem_eq(buf, "GMIG", 4);
}
END_TEST

/* Header fields poked into a valid PING frame, and the error each must give. */
static const struct header_row {
	unsigned off, width;
	uint64_t value;
	int expect;
} header_rows[] = {
	/* 1 */ { 0, 1, 'g', -EILSEQ },
	/* 2 */ { 0, 4, 0, -EILSEQ },
	/* 3 */ { 4, 1, 0, -EPROTONOSUPPORT },
	/* 4 */ { 4, 1, GMIG_VERSION_MAX + 1, -EPROTONOSUPPORT },
	/* 5 */ { 5, 1, 1, -EPROTO },
	/* 6 */ { 5, 1, 0x80, -EPROTO },
	/* 7 */ { 12, 4, 1, -EPROTO },
	/* 8 */ { 6, 2, 0, -ENOMSG },
	/* 9 */ { 6, 2, 0xffff, -ENOMSG },
	/* 10 */ { 6, 2, 0x0107, -ENOMSG },
	/* 11 */ { 8, 4, GMIG_PAYLOAD_MAX + 1, -EMSGSIZE },
	/* 12 */ { 8, 4, 0xffffffff, -EMSGSIZE },
	/* 13 */ { 8, 4, 7, -ERANGE },
	/* 14 */ { 8, 4, 9, -ERANGE },
	/* 15 */ { 8, 4, 0, -ERANGE },
	/* 16 */ { 6, 2, GMIG_MSG_THAW, -ERANGE },
	/* 17 */ { 32, 1, 0x5a, -EBADMSG },
	/* 18 */ { 16, 1, 0x01, -EBADMSG },
	/* 19 */ { 24, 8, 8, -EBADMSG },
	/* 20 */ { GMIG_HDR_SIZE, 1, 43, -EBADMSG },
};

START_TEST(test_header_rows)
{
	const struct header_row *r = &header_rows[_i];
	uint8_t buf[128];
	size_t n = make_ping(buf, 42, 7), used;
	struct gmig_decoder d;
	struct gmig_frame f;

	poke_le(buf + r->off, r->width, r->value);
	gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
	ck_assert_msg(feed_all(&d, buf, n, &f, &used) == r->expect, "row %d", _i + 1);
	/* The error is sticky until reset. */
	ck_assert_int_eq(gmig_decoder_feed(&d, buf, n, &used, &f), r->expect);
	gmig_decoder_reset(&d);
	n = make_ping(buf, 1, 1);
	ck_assert_int_eq(gmig_decoder_feed(&d, buf, n, &used, &f), 1);
}
END_TEST

/* Every single-bit flip of a valid frame is caught, whichever check catches it. */
START_TEST(test_every_bit_flip)
{
	uint8_t buf[128];
	size_t n = make_ping(buf, 0xfeedface, 3), used;
	struct gmig_decoder d;
	struct gmig_frame f;

	for (size_t bit = 0; bit < n * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
		int rc = gmig_decoder_feed(&d, buf, n, &used, &f);
		ck_assert_msg(rc < 0, "bit %zu accepted (rc %d)", bit, rc);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}
END_TEST

START_TEST(test_short_header_waits)
{
	uint8_t buf[128];
	size_t n = make_ping(buf, 1, 1), used;
	struct gmig_decoder d;
	struct gmig_frame f;

	gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
	ck_assert_int_eq(gmig_decoder_feed(&d, buf, GMIG_HDR_SIZE - 1, &used, &f), 0);
	ck_assert_uint_eq(used, GMIG_HDR_SIZE - 1);
	ck_assert_int_eq(gmig_decoder_feed(&d, buf + used, n - 1 - used, &used, &f), 0);
	ck_assert_int_eq(gmig_decoder_feed(&d, buf + n - 1, 1, &used, &f), 1);
	ck_assert_int_eq(gmig_decoder_feed(&d, buf, 0, &used, &f), 0);
	ck_assert_uint_eq(used, 0);
}
END_TEST

/* A decoder with a small buffer refuses what would not fit in it. */
START_TEST(test_receiver_cap)
{
	static uint8_t big[GMIG_HDR_SIZE + 4096];
	uint8_t small[64], text[200];
	struct gmig_hdr h = { .version = 1 };
	struct gmig_msg m = { .type = GMIG_MSG_ERROR };
	struct gmig_decoder d;
	struct gmig_frame f;
	size_t used;
	long n;

	memset(text, 'x', sizeof(text));
	m.u.error.code = -EIO;
	m.u.error.tail = (struct gmig_tail){ text, sizeof(text) };
	n = gmig_msg_encode(big, sizeof(big), &h, &m);
	ck_assert_int_gt(n, 0);
	gmig_decoder_init(&d, small, sizeof(small));
	ck_assert_int_eq(gmig_decoder_feed(&d, big, (size_t)n, &used, &f), -EMSGSIZE);
	ck_assert_uint_eq(used, GMIG_HDR_SIZE);
}
END_TEST

/* Several frames back to back, as a session would send them. */
static size_t make_stream(uint8_t *out, size_t cap, size_t *ends, size_t *count)
{
	static uint8_t data[5000];
	struct gmig_hdr h = { .version = 1, .session = 9 };
	struct gmig_msg m;
	size_t off = 0, k = 0;
	long n;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	for (int i = 0; i < 6; i++) {
		memset(&m, 0, sizeof(m));
		switch (i % 3) {
		case 0:
			m.type = GMIG_MSG_PING;
			m.u.nonce.nonce = (uint64_t)i;
			break;
		case 1:
			m.type = GMIG_MSG_REGION_DATA;
			m.u.region_data = (struct gmig_region_data){
				.pid = 10, .region = (uint32_t)i, .offset = 65536u * (unsigned)i,
				.length = sizeof(data), .encoding = GMIG_ENC_RAW, .epoch = 1,
				.tail = { data, sizeof(data) } };
			break;
		default:
			m.type = GMIG_MSG_THAW;
			break;
		}
		h.seq = (uint64_t)i + 1;
		n = gmig_msg_encode(out + off, cap - off, &h, &m);
		ck_assert_int_gt(n, 0);
		off += (size_t)n;
		ends[k++] = off;
	}
	*count = k;
	return off;
}

/* Feeds [p, p+n) and appends the sequence numbers of decoded frames. */
static void drain(struct gmig_decoder *d, const uint8_t *p, size_t n, uint64_t *seqs, size_t *k)
{
	struct gmig_frame f;
	struct gmig_msg m;
	size_t used;
	int rc;

	while (n) {
		rc = gmig_decoder_feed(d, p, n, &used, &f);
		ck_assert_int_ge(rc, 0);
		if (rc == 1) {
			ck_assert_int_eq(gmig_msg_decode(&f, &m), 0);
			seqs[(*k)++] = f.hdr.seq;
		}
		p += used;
		n -= used;
	}
}

START_TEST(test_split_at_every_byte)
{
	static uint8_t stream[32768];
	size_t ends[16], count, total = make_stream(stream, sizeof(stream), ends, &count);
	struct gmig_decoder d;

	for (size_t split = 0; split <= total; split++) {
		uint64_t seqs[16];
		size_t k = 0;

		gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
		drain(&d, stream, split, seqs, &k);
		drain(&d, stream + split, total - split, seqs, &k);
		ck_assert_uint_eq(k, count);
		for (size_t i = 0; i < k; i++)
			ck_assert_uint_eq(seqs[i], i + 1);
	}
}
END_TEST

START_TEST(test_byte_by_byte_and_random_cuts)
{
	static uint8_t stream[32768];
	size_t ends[16], count, total = make_stream(stream, sizeof(stream), ends, &count);
	struct gmig_decoder d;
	uint64_t seed = 1, seqs[16];
	size_t k = 0;

	gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
	for (size_t i = 0; i < total; i++)
		drain(&d, stream + i, 1, seqs, &k);
	ck_assert_uint_eq(k, count);

	for (int round = 0; round < 200; round++) {
		size_t off = 0;

		k = 0;
		gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
		while (off < total) {
			size_t cut = 1 + tu_below(&seed, 3000);

			if (cut > total - off)
				cut = total - off;
			drain(&d, stream + off, cut, seqs, &k);
			off += cut;
		}
		ck_assert_uint_eq(k, count);
	}
}
END_TEST

/* A stream cut short in the middle of a frame yields nothing more. */
START_TEST(test_truncated_stream)
{
	static uint8_t stream[32768];
	size_t ends[16], count, total = make_stream(stream, sizeof(stream), ends, &count);
	struct gmig_decoder d;
	uint64_t seqs[16];
	size_t k = 0;

	(void)total;
	gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
	drain(&d, stream, ends[1] - 1, seqs, &k);
	ck_assert_uint_eq(k, 1);
}
END_TEST

START_TEST(test_version_pinning)
{
	uint8_t buf[128];
	size_t n = make_ping(buf, 1, 1), used;
	struct gmig_decoder d;
	struct gmig_frame f;

	gmig_decoder_init(&d, payload_buf, sizeof(payload_buf));
	gmig_decoder_set_versions(&d, GMIG_VERSION_MAX + 1, GMIG_VERSION_MAX + 1);
	ck_assert_int_eq(gmig_decoder_feed(&d, buf, n, &used, &f), -EPROTONOSUPPORT);
}
END_TEST

START_TEST(test_strerror)
{
	ck_assert_str_eq(gmig_proto_strerror(-EBADMSG), "checksum mismatch");
	ck_assert_str_eq(gmig_proto_strerror(-EILSEQ), "bad magic: not a gmig frame");
	ck_assert_str_eq(gmig_proto_strerror(-ENOENT), "not a protocol error");
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_valid_ping);
	tcase_add_loop_test(tc, test_header_rows, 0, sizeof(header_rows) / sizeof(header_rows[0]));
	tcase_add_test(tc, test_every_bit_flip);
	tcase_add_test(tc, test_short_header_waits);
	tcase_add_test(tc, test_receiver_cap);
	tcase_add_test(tc, test_split_at_every_byte);
	tcase_add_test(tc, test_byte_by_byte_and_random_cuts);
	tcase_add_test(tc, test_truncated_stream);
	tcase_add_test(tc, test_version_pinning);
	tcase_add_test(tc, test_strerror);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
