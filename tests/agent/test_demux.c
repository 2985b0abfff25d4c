/* Check suite: the host channel's demultiplexer, fed whole, byte by byte and cut at random. */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmig/message.h"

#include "demux.h"

/* What the callbacks saw, as text: "F<nonce> ", "L<line> ", "O ", "E<err> ". */
struct seen {
	char log[1024];
	int block_frames;	/* this many frame deliveries answer DEMUX_BLOCK */
	int block_lines;
	int frames;		/* deliveries, blocked ones included */
};

static void seen_add(struct seen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void seen_add(struct seen *s, const char *fmt, ...)
{
	size_t n = strlen(s->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->log + n, sizeof(s->log) - n, fmt, ap);
	va_end(ap);
}

static int on_frame(void *ctx, const struct gmig_frame *f)
{
	struct seen *s = ctx;
	struct gmig_msg m;

	s->frames++;
	if (s->block_frames > 0) {
		s->block_frames--;
		return DEMUX_BLOCK;
	}
	ck_assert_int_eq(gmig_msg_decode(f, &m), 0);
	ck_assert_uint_eq(m.type, GMIG_MSG_PING);
	seen_add(s, "F%llu ", (unsigned long long)m.u.nonce.nonce);
	return 0;
}

static int on_line(void *ctx, const char *line, size_t len)
{
	struct seen *s = ctx;

	ck_assert_uint_eq(strlen(line), len);
	seen_add(s, "L%s ", line);
	if (s->block_lines > 0) {
		s->block_lines--;
		return DEMUX_BLOCK;
	}
	return 0;
}

static void on_oversize(void *ctx)
{
	seen_add(ctx, "O ");
}

static void on_error(void *ctx, int err)
{
	seen_add(ctx, "E%d ", err);
}

static const struct demux_ops ops = { on_frame, on_line, on_oversize, on_error };

/* Input pieces: 'P'+digit is a PING frame with that nonce, 'B' one with a bad checksum. */
static size_t build(const char *spec, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (const char *p = spec; *p; p++) {
		if (*p == '%' && (p[1] == 'P' || p[1] == 'B')) {
			struct gmig_hdr h = { .version = 1, .seq = 1 };
			struct gmig_msg m = { .type = GMIG_MSG_PING };
			long k;

			m.u.nonce.nonce = (uint64_t)(p[2] - '0');
			k = gmig_msg_encode(out + n, cap - n, &h, &m);
			ck_assert_int_gt(k, 0);
			if (p[1] == 'B')
				out[n + k - 1] ^= 0x10;
			n += (size_t)k;
			p += 2;
			continue;
		}
		if (*p == '\\' && p[1] == '0') {
			out[n++] = 0;
			p++;
			continue;
		}
		if (*p == '%' && p[1] == 'X') {
			/* The sentinel, 0xFF. */
			out[n++] = 0xff;
			p++;
			continue;
		}
		if (*p == '%' && p[1] == 'L') {
			/* A line of GMIG_QGA_LINE_MAX + 1 bytes, without its newline. */
			memset(out + n, 'x', GMIG_QGA_LINE_MAX + 1);
			n += GMIG_QGA_LINE_MAX + 1;
			p++;
			continue;
		}
		ck_assert_uint_lt(n, cap);
		out[n++] = (uint8_t)*p;
	}
	return n;
}

static const struct demux_row {
	const char *input;
	const char *want;
} demux_rows[] = {
	/* 1 */ { "%P1", "F1 " },
	/* 2 */ { "{\"a\":1}\n", "L{\"a\":1} " },
	/* 3 */ { "{\"a\":1}\n%P2{\"b\":2}\r\n", "L{\"a\":1} F2 L{\"b\":2} " },
	/* 4 */ { "\n\r\n  \n%P3", "F3 " },
	/* 5 */ { "%X%P4", "F4 " },
	/* 6 */ { "junk%X%P5", "F5 " },
	/* 7 */ { "{\"x\"%X{\"y\":0}\n", "L{\"y\":0} " },
	/* 8 */ { "%L\n%P6", "O F6 " },
	/* 9 */ { "%L tail %X more\n{}\n", "O Lmore L{} " },
	/* 10 */ { "GXYZ%P1", "E-84 " },
	/* 11 */ { "%P1%B2%P3", "F1 E-74 " },
	/* 12 */ { "%P7%P8%P9", "F7 F8 F9 " },
	/* 13 */ { "a\rb\n", "La\rb " },
	/* 14 */ { "{}\nG", "L{} " },
	/* 15 */ { "{}\n\\0%P1", "L{} F1 " },
	/* 16 */ { " \t\r\n%P2 {\"c\":3}\n", "F2 L{\"c\":3} " },
};

static void feed_cut(struct demux *d, const uint8_t *in, size_t n, int mode, uint64_t *seed)
{
	size_t off = 0;

	while (off < n) {
		size_t piece = n - off;
		long used;

		if (mode == 1)
			piece = 1;
		else if (mode == 2)
			piece = 1 + (*seed = *seed * 6364136223846793005ull + 1) % 97;
		if (piece > n - off)
			piece = n - off;
		used = demux_feed(d, in + off, piece);
		ck_assert_int_ge(used, 0);
		if (d->mode == DM_DEAD)
			return;
		ck_assert_uint_eq((size_t)used, piece);
		off += piece;
	}
}

START_TEST(test_rows)
{
	static uint8_t in[2 * GMIG_QGA_LINE_MAX + 4096];
	const struct demux_row *row = &demux_rows[_i];
	size_t n = build(row->input, in, sizeof(in));
	uint64_t seed = 42;

	/* Whole, one byte at a time, and in random pieces: the same messages each time. */
	for (int mode = 0; mode < 3; mode++) {
		struct seen s = { "" };
		struct demux d;

		demux_init(&d, GMIG_PAYLOAD_MAX, &ops, &s);
		feed_cut(&d, in, n, mode, &seed);
		ck_assert_msg(!strcmp(s.log, row->want), "row %d mode %d: '%s', expected '%s'",
			      _i + 1, mode, s.log, row->want);
		demux_clear(&d);
	}
}
END_TEST

/* A blocked frame is held and handed out again; nothing after it is taken meanwhile. */
START_TEST(test_block_frame)
{
	uint8_t in[256];
	size_t n = build("%P1%P2", in, sizeof(in)), one = n / 2;
	struct seen s = { "", .block_frames = 2 };
	struct demux d;
	long used;

	demux_init(&d, 4096, &ops, &s);
	used = demux_feed(&d, in, n);
	ck_assert_int_eq(used, (long)one);
	ck_assert(demux_held(&d));
	ck_assert_str_eq(s.log, "");
	ck_assert_int_eq(demux_feed(&d, NULL, 0), 0);	/* still blocked */
	ck_assert(demux_held(&d));
	ck_assert_int_eq(demux_feed(&d, in + used, n - (size_t)used), (long)(n - one));
	ck_assert(!demux_held(&d));
	ck_assert_str_eq(s.log, "F1 F2 ");
	ck_assert_int_eq(s.frames, 4);
	demux_clear(&d);
}
END_TEST

/* A line whose handler blocks stops the feed right after it. */
START_TEST(test_block_line)
{
	uint8_t in[256];
	size_t n = build("{\"a\":1}\n%P3", in, sizeof(in));
	struct seen s = { "", .block_lines = 1 };
	struct demux d;
	long used;

	demux_init(&d, 4096, &ops, &s);
	used = demux_feed(&d, in, n);
	ck_assert_int_eq(used, 8);
	ck_assert_str_eq(s.log, "L{\"a\":1} ");
	ck_assert_int_eq(demux_feed(&d, in + used, n - (size_t)used), (long)(n - 8));
	ck_assert_str_eq(s.log, "L{\"a\":1} F3 ");
	demux_clear(&d);
}
END_TEST

/* After WELCOME only the agreed version passes; a stopped demux takes nothing. */
START_TEST(test_versions_and_stop)
{
	uint8_t in[256];
	size_t n = build("%P1", in, sizeof(in));
	struct seen s = { "" };
	struct demux d;

	demux_init(&d, 4096, &ops, &s);
	demux_set_versions(&d, 2, 2);
	demux_feed(&d, in, n);
	ck_assert_str_eq(s.log, "E-93 ");
	demux_clear(&d);

	memset(&s, 0, sizeof(s));
	demux_init(&d, 4096, &ops, &s);
	demux_stop(&d);
	ck_assert_int_eq(demux_feed(&d, in, n), 0);
	ck_assert_str_eq(s.log, "");
	demux_clear(&d);
}
END_TEST

/* A frame larger than the receiver's buffer is refused before its payload is read. */
START_TEST(test_frame_cap)
{
	static uint8_t in[GMIG_HDR_SIZE + 8192];
	uint8_t text[2000];
	struct gmig_hdr h = { .version = 1 };
	struct gmig_msg m = { .type = GMIG_MSG_ERROR };
	struct seen s = { "" };
	struct demux d;
	long k;

	memset(text, 'e', sizeof(text));
	m.u.error.code = -EIO;
	m.u.error.tail = (struct gmig_tail){ text, 1000 };
	k = gmig_msg_encode(in, sizeof(in), &h, &m);
	ck_assert_int_gt(k, 0);
	demux_init(&d, 512, &ops, &s);
	demux_feed(&d, in, (size_t)k);
	ck_assert_str_eq(s.log, "E-90 ");
	demux_clear(&d);
}
END_TEST

static Suite *demux_suite(void)
{
	Suite *s = suite_create("agent-demux");
	TCase *tc = tcase_create("demux");

	tcase_add_loop_test(tc, test_rows, 0, sizeof(demux_rows) / sizeof(demux_rows[0]));
	tcase_add_test(tc, test_block_frame);
	tcase_add_test(tc, test_block_line);
	tcase_add_test(tc, test_versions_and_stop);
	tcase_add_test(tc, test_frame_cap);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(demux_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
