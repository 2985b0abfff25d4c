/* Check suite for the QGA JSON dialect: line assembly, request checks, replies and dispatch. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gmig/qga.h"
#include "testutil.h"

#define S(lit)		lit, sizeof(lit) - 1
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* --- helpers --- */

/* Parse exactly @len bytes as strict JSON, or NULL. */
static struct json_object *parse_strict(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	char *copy = malloc(len + 1);

	ck_assert_ptr_nonnull(tok);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	copy[len] = '\0';
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, copy, (int)len + 1);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	free(copy);
	return obj;
}

/*
 * A reply must be one line: an optional sentinel, then a JSON object whose first member is
 * "return" or "error" and whose only other member is a trailing "id".  Compares it with
 * @want member by member, then byte for byte (json-c's plain output is fixed).
 */
static void check_reply(const char *got, size_t got_len, const char *want, bool delimited)
{
	size_t off = delimited ? 1 : 0;
	size_t want_len = strlen(want);
	struct json_object *g, *w;
	struct json_object_iterator it, end;
	const char *first;
	int members;

	ck_assert_ptr_nonnull(got);
	ck_assert_uint_ge(got_len, off + 3);
	if (delimited)
		ck_assert_uint_eq((unsigned char)got[0], GMIG_QGA_SENTINEL);
	else
		ck_assert_uint_ne((unsigned char)got[0], GMIG_QGA_SENTINEL);
	ck_assert_int_eq(got[got_len - 1], '\n');
	ck_assert_int_eq(got[got_len], '\0');
	ck_assert_msg(!memchr(got + off, '\n', got_len - off - 1), "newline inside reply");
	ck_assert_msg(!memchr(got + off, GMIG_QGA_SENTINEL, got_len - off),
		      "sentinel inside reply");

	g = parse_strict(got + off, got_len - off - 1);
	w = parse_strict(want, want_len);
	ck_assert_msg(w, "bad expectation %s", want);
	ck_assert_msg(g, "reply is not JSON: %.*s", (int)got_len, got);
	ck_assert_msg(json_object_equal(g, w), "reply %.*s, want %s", (int)(got_len - off - 1),
		      got + off, want);

	it = json_object_iter_begin(g);
	end = json_object_iter_end(g);
	first = json_object_iter_peek_name(&it);
	ck_assert_msg(!strcmp(first, "return") || !strcmp(first, "error"), "first member %s",
		      first);
	for (members = 0; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		members++;
	ck_assert_int_le(members, 2);
	if (members == 2)
		ck_assert(json_object_object_get_ex(g, "id", NULL));

	ck_assert_uint_eq(got_len, off + want_len + 1);
	ck_assert_msg(!memcmp(got + off, want, want_len), "reply %.*s, want %s",
		      (int)(got_len - off - 1), got + off, want);
	json_object_put(g);
	json_object_put(w);
}

/* A reply that is well formed, whatever it says; for random input. */
static void check_reply_shape(const char *got, size_t got_len)
{
	size_t off;
	struct json_object *g, *v;

	ck_assert_ptr_nonnull(got);
	off = (unsigned char)got[0] == GMIG_QGA_SENTINEL;
	ck_assert_uint_ge(got_len, off + 3);
	ck_assert_int_eq(got[got_len - 1], '\n');
	ck_assert(!memchr(got + off, '\n', got_len - off - 1));
	g = parse_strict(got + off, got_len - off - 1);
	ck_assert_msg(g, "reply is not JSON: %.*s", (int)got_len, got);
	ck_assert(json_object_is_type(g, json_type_object));
	if (json_object_object_get_ex(g, "error", &v)) {
		struct json_object *c, *d;

		ck_assert(!json_object_object_get_ex(g, "return", NULL));
		ck_assert(json_object_object_get_ex(v, "class", &c));
		ck_assert(json_object_object_get_ex(v, "desc", &d));
		ck_assert(json_object_is_type(c, json_type_string));
		ck_assert(json_object_is_type(d, json_type_string));
		ck_assert_int_gt(json_object_get_string_len(c), 0);
		ck_assert_int_gt(json_object_get_string_len(d), 0);
		ck_assert_int_eq(json_object_object_length(v), 2);
		ck_assert(!off);
	} else {
		ck_assert(json_object_object_get_ex(g, "return", NULL));
	}
	ck_assert_int_le(json_object_object_length(g), 2);
	json_object_put(g);
}

/* --- allocator interposition: leak counting and fault injection --- */

#if defined(__SANITIZE_ADDRESS__)
#define TEST_NO_FAULTS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define TEST_NO_FAULTS 1
#endif
#endif

#ifndef TEST_NO_FAULTS
/*
 * Leak counting and fault injection: the test binary interposes glibc's allocator (json-c
 * allocates through it); while armed, malloc and calloc number their calls, the one numbered
 * fault.fail_at fails, and what stays allocated is counted.  Sanitizer builds bring their own
 * allocator (and LeakSanitizer) and skip this.  The state is volatile because the compiler
 * assumes free() never reads our globals and would move the stores around it.
 *
 * json-c 0.16 itself does not survive every allocation failure: its tokener strdup()s object
 * keys unchecked (a NULL key crashes in the hash), and printbuf appends that fail to grow are
 * ignored both while tokenizing and while serializing (the text comes out short).  So realloc,
 * which only printbufs use, never fails here, and no failure is injected inside
 * json_tokener_parse_ex(); every allocation gmig makes or asks json-c to make is covered.
 */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static volatile struct {
	bool	armed;
	long	count;		/* malloc and calloc calls seen while armed */
	long	fail_at;	/* the one to fail, 1-based; 0 for none */
	long	live;		/* allocated minus freed while armed */
} fault;

static void fault_arm(long fail_at)
{
	fault.count = 0;
	fault.live = 0;
	fault.fail_at = fail_at;
	fault.armed = true;
}

static bool fault_hit(void)
{
	return fault.armed && ++fault.count == fault.fail_at;
}

void *malloc(size_t n)
{
	void *p = fault_hit() ? NULL : __libc_malloc(n);

	if (p && fault.armed)
		fault.live++;
	return p;
}

void *calloc(size_t n, size_t size)
{
	void *p = fault_hit() ? NULL : __libc_calloc(n, size);

	if (p && fault.armed)
		fault.live++;
	return p;
}

void *realloc(void *old, size_t n)
{
	void *p = __libc_realloc(old, n);

	if (p && !old && fault.armed)
		fault.live++;
	return p;
}

void free(void *p)
{
	if (p && fault.armed)
		fault.live--;
	__libc_free(p);
}

/* Dispatch counting allocations: all but the reply must be freed again. */
static char *dispatch_counted(const struct gmig_qga_dispatcher *d, const char *line, size_t len,
			      size_t *reply_len)
{
	char *reply;
	long live;

	fault_arm(0);
	reply = gmig_qga_dispatch(d, line, len, reply_len);
	live = fault.live;
	fault.armed = false;
	ck_assert_msg(live == (reply ? 1 : 0), "%ld allocations left behind", live);
	return reply;
}
#else
static char *dispatch_counted(const struct gmig_qga_dispatcher *d, const char *line, size_t len,
			      size_t *reply_len)
{
	return gmig_qga_dispatch(d, line, len, reply_len);
}
#endif

/* --- the command table every dispatch test runs against --- */

struct calls {
	int n;
};

static int h_echo(void *ctx, struct json_object *args, struct json_object **ret,
		  struct gmig_qga_error *err)
{
	(void)err;
	((struct calls *)ctx)->n++;
	*ret = json_object_get(args);
	return 0;
}

static int h_void(void *ctx, struct json_object *args, struct json_object **ret,
		  struct gmig_qga_error *err)
{
	(void)args;
	(void)ret;
	(void)err;
	((struct calls *)ctx)->n++;
	return 0;
}

static int h_fail(void *ctx, struct json_object *args, struct json_object **ret,
		  struct gmig_qga_error *err)
{
	(void)args;
	(void)ret;
	((struct calls *)ctx)->n++;
	gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "GPU %d lost", 3);
	return -EIO;
}

static int h_errno(void *ctx, struct json_object *args, struct json_object **ret,
		   struct gmig_qga_error *err)
{
	(void)args;
	(void)ret;
	(void)err;
	((struct calls *)ctx)->n++;
	return -EIO;
}

/* Fails but leaves a value behind: the dispatcher must drop it (ASan would see a leak). */
static int h_late(void *ctx, struct json_object *args, struct json_object **ret,
		  struct gmig_qga_error *err)
{
	(void)args;
	((struct calls *)ctx)->n++;
	*ret = json_object_new_int(5);
	snprintf(err->desc, sizeof(err->desc), "too late");
	return -EAGAIN;
}

static int h_thaw(void *ctx, struct json_object *args, struct json_object **ret,
		  struct gmig_qga_error *err)
{
	(void)args;
	(void)err;
	((struct calls *)ctx)->n++;
	*ret = json_object_new_object();
	json_object_object_add(*ret, "thawed", json_object_new_boolean(1));
	return 0;
}

static const struct gmig_qga_cmd test_cmds[] = {
	{ "gmig-echo",	0,					h_echo },
	{ "gmig-void",	0,					h_void },
	{ "gmig-fail",	0,					h_fail },
	{ "gmig-errno",	0,					h_errno },
	{ "gmig-late",	0,					h_late },
	{ "gmig-thaw",	GMIG_QGA_FROZEN_OK,			h_thaw },
	{ "gmig-off",	GMIG_QGA_FROZEN_OK | GMIG_QGA_DISABLED,	h_echo },
};

static struct gmig_qga_dispatcher test_disp(struct calls *calls, bool frozen)
{
	return (struct gmig_qga_dispatcher){
		.cmds = test_cmds,
		.ncmds = ARRAY_SIZE(test_cmds),
		.version = "9.9.9-test",
		.ctx = calls,
		.frozen = frozen,
	};
}

/* --- line assembly --- */

struct lines_row {
	const char	*in;
	size_t		in_len;
	size_t		size;		/* buffer size: lines up to size - 1 bytes */
	const char	*want;		/* "[line]" per line, "!" per -EMSGSIZE */
	size_t		want_len;
};

static const struct lines_row lines_rows[] = {
	/* 1 */ { S("a\n"), 16, S("[a]") },
	/* 2 */ { S("a\r\n"), 16, S("[a]") },
	/* 3 */ { S("ab\ncd\n"), 16, S("[ab][cd]") },
	/* 4 */ { S("\n\r\n \t\n\r\r\n"), 16, S("") },
	/* 5 */ { S("abc"), 16, S("") },
	/* 6 */ { S("abc\xff{x}\n"), 16, S("[{x}]") },
	/* 7 */ { S("\xff\xff\n\xff" "a\n"), 16, S("[a]") },
	/* 8 */ { S("12345678\n"), 9, S("[12345678]") },
	/* 9 */ { S("12345678\r\n"), 9, S("[12345678]") },
	/* 10 */ { S("123456789\nok\n"), 9, S("![ok]") },
	/* 11 */ { S("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nok\n"), 9, S("![ok]") },
	/* 12 */ { S("1234567890\xffok\n"), 9, S("![ok]") },
	/* 13 */ { S("a\rb\n"), 16, S("[a\rb]") },
	/* 14 */ { S("12345678\rx\nok\n"), 9, S("![ok]") },
	/* 15 */ { S("1234567\r\r\n"), 9, S("[1234567\r]") },
	/* 16 */ { S("a\0b\n"), 16, S("[a\0b]") },
	/* 17 */ { S("12345678\r\xffok\n"), 9, S("[ok]") },
	/* 18 */ { S("123456789\xff" "123456789\n"), 9, S("!!") },
	/* 19 */ { S("\ra\n"), 16, S("[\ra]") },
	/* 20 */ { S("  {}  \n"), 16, S("[  {}  ]") },
	/* 21 */ { S("a\nbc"), 16, S("[a]") },
	/* 22 */ { S("12345678\r\r\n"), 9, S("!") },
	/* 23 */ { S("\n\n\na\n\n"), 2, S("[a]") },
};

/* Feed @in in chunks of the sizes @chunk() picks; record what comes out. */
static size_t lines_run(const struct lines_row *row, size_t (*chunk)(size_t left, void *arg),
			void *arg, char *out, size_t out_size)
{
	struct gmig_qga_lines ls;
	char *buf = malloc(row->size);
	size_t pos = 0, n = 0;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(gmig_qga_lines_init(&ls, buf, row->size), 0);
	while (pos < row->in_len) {
		size_t left = chunk(row->in_len - pos, arg);
		int guard = 0;

		ck_assert_uint_ge(left, 1);
		while (left) {
			const char *line = NULL;
			size_t line_len = 0, used = SIZE_MAX;
			int rc = gmig_qga_lines_feed(&ls, row->in + pos, left, &used, &line,
						     &line_len);

			ck_assert_uint_le(used, left);
			ck_assert_int_lt(guard++, 1000);
			pos += used;
			left -= used;
			if (rc == 0) {
				ck_assert_uint_eq(left, 0);
			} else if (rc == 1) {
				ck_assert_ptr_eq(line, buf);
				ck_assert_int_eq(line[line_len], '\0');
				ck_assert_uint_le(line_len, row->size - 1);
				ck_assert_uint_lt(n + line_len + 2, out_size);
				out[n++] = '[';
				memcpy(out + n, line, line_len);
				n += line_len;
				out[n++] = ']';
			} else {
				ck_assert_int_eq(rc, -EMSGSIZE);
				ck_assert_uint_lt(n + 1, out_size);
				out[n++] = '!';
			}
		}
	}
	free(buf);
	return n;
}

static size_t chunk_all(size_t left, void *arg)
{
	(void)arg;
	return left;
}

static size_t chunk_one(size_t left, void *arg)
{
	(void)left;
	(void)arg;
	return 1;
}

/* First chunk ends at *arg, the rest comes in one piece. */
static size_t chunk_split(size_t left, void *arg)
{
	size_t *at = arg;
	size_t n = *at && *at < left ? *at : left;

	*at = 0;
	return n;
}

static size_t chunk_rand(size_t left, void *arg)
{
	return 1 + tu_below(arg, left < 7 ? left : 7);
}

static void lines_expect(const struct lines_row *row, const char *got, size_t n, const char *how)
{
	ck_assert_msg(n == row->want_len && !memcmp(got, row->want, n),
		      "%s: got '%.*s', want '%.*s'", how, (int)n, got, (int)row->want_len,
		      row->want);
}

START_TEST(test_lines_rows)
{
	const struct lines_row *row = &lines_rows[_i];
	char out[256];
	size_t n;

	n = lines_run(row, chunk_all, NULL, out, sizeof(out));
	lines_expect(row, out, n, "whole");
	n = lines_run(row, chunk_one, NULL, out, sizeof(out));
	lines_expect(row, out, n, "byte by byte");
	for (size_t at = 1; at < row->in_len; at++) {
		size_t split = at;

		n = lines_run(row, chunk_split, &split, out, sizeof(out));
		lines_expect(row, out, n, "split");
	}
	for (uint64_t seed = 1; seed <= 16; seed++) {
		uint64_t state = seed;

		n = lines_run(row, chunk_rand, &state, out, sizeof(out));
		lines_expect(row, out, n, "random chunks");
	}
}
END_TEST

START_TEST(test_lines_init)
{
	struct gmig_qga_lines ls;
	static char big[GMIG_QGA_LINE_BUF + 100];
	char small[2];

	/* 1 */ ck_assert_int_eq(gmig_qga_lines_init(&ls, NULL, 16), -EINVAL);
	/* 2 */ ck_assert_int_eq(gmig_qga_lines_init(&ls, small, 0), -EINVAL);
	/* 3 */ ck_assert_int_eq(gmig_qga_lines_init(&ls, small, 1), -EINVAL);
	/* 4 */ ck_assert_int_eq(gmig_qga_lines_init(&ls, small, 2), 0);
	ck_assert_uint_eq(ls.cap, 1);
	/* 5 */ ck_assert_int_eq(gmig_qga_lines_init(&ls, big, sizeof(big)), 0);
	ck_assert_uint_eq(ls.cap, GMIG_QGA_LINE_MAX);
}
END_TEST

START_TEST(test_lines_reset)
{
	struct gmig_qga_lines ls;
	char buf[16];
	const char *line;
	size_t used, len;

	ck_assert_int_eq(gmig_qga_lines_init(&ls, buf, sizeof(buf)), 0);
	ck_assert_int_eq(gmig_qga_lines_feed(&ls, S("{\"exe"), &used, &line, &len), 0);
	gmig_qga_lines_reset(&ls);
	ck_assert_int_eq(gmig_qga_lines_feed(&ls, S("{}\n"), &used, &line, &len), 1);
	ck_assert_uint_eq(used, 3);
	ck_assert_str_eq(line, "{}");
	ck_assert_uint_eq(len, 2);
}
END_TEST

/* --- request parsing --- */

struct parse_row {
	const char	*line;
	size_t		len;
	int		rc;
	const char	*desc;		/* error description, when rc < 0 */
	const char	*execute;	/* command name, when rc == 0 */
	bool		has_id;
	bool		has_args;
};

#define PARSE_BAD(line, rc, desc, has_id) { S(line), rc, desc, NULL, has_id, false }
#define NOT_OBJECT	"QMP input must be a JSON object"
#define NO_EXECUTE	"QMP input lacks member 'execute'"
#define EXEC_STRING	"QMP input member 'execute' must be a string"
#define ARGS_OBJECT	"QMP input member 'arguments' must be an object"

static const struct parse_row parse_rows[] = {
	/* 1 */ { S("{\"execute\":\"guest-ping\"}"), 0, NULL, "guest-ping", false, false },
	/* 2 */ { S("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1}}"), 0, NULL,
		  "guest-sync", false, true },
	/* 3 */ { S("{\"execute\":\"x\",\"arguments\":{},\"id\":\"a\"}"), 0, NULL, "x", true,
		  true },
	/* 4 */ { S("{\"id\":null,\"execute\":\"x\"}"), 0, NULL, "x", true, false },
	/* 5 */ { S("{'execute':'guest-ping'}"), 0, NULL, "guest-ping", false, false },
	/* 6 */ { S("  {\"execute\":\"x\"}  \t\r"), 0, NULL, "x", false, false },
	/* 7 */ { S("{\"execute\":\"x\",\"id\":{\"a\":[1,{\"b\":null}]}}"), 0, NULL, "x", true,
		  false },
	/* 8 */ PARSE_BAD("[]", -EBADMSG, NOT_OBJECT, false),
	/* 9 */ PARSE_BAD("1", -EBADMSG, NOT_OBJECT, false),
	/* 10 */ PARSE_BAD("\"execute\"", -EBADMSG, NOT_OBJECT, false),
	/* 11 */ PARSE_BAD("null", -EBADMSG, NOT_OBJECT, false),
	/* 12 */ PARSE_BAD("{}", -EBADMSG, NO_EXECUTE, false),
	/* 13 */ PARSE_BAD("{\"id\":7}", -EBADMSG, NO_EXECUTE, true),
	/* 14 */ PARSE_BAD("{\"execute\":1}", -EBADMSG, EXEC_STRING, false),
	/* 15 */ PARSE_BAD("{\"execute\":null,\"id\":1}", -EBADMSG, EXEC_STRING, true),
	/* 16 */ PARSE_BAD("{\"execute\":[\"x\"]}", -EBADMSG, EXEC_STRING, false),
	/* 17 */ PARSE_BAD("{\"execute\":\"x\",\"arguments\":[]}", -EBADMSG, ARGS_OBJECT, false),
	/* 18 */ PARSE_BAD("{\"execute\":\"x\",\"arguments\":null}", -EBADMSG, ARGS_OBJECT, false),
	/* 19 */ PARSE_BAD("{\"execute\":\"x\",\"arguments\":\"a\"}", -EBADMSG, ARGS_OBJECT, false),
	/* 20 */ PARSE_BAD("{\"execute\":\"x\",\"foo\":1}", -EBADMSG,
			   "QMP input member 'foo' is unexpected", false),
	/* 21 */ PARSE_BAD("{\"execute\":\"x\",\"exec-oob\":\"y\"}", -EBADMSG,
			   "QMP input member 'exec-oob' is unexpected", false),
	/* 22 */ PARSE_BAD("{\"exec-oob\":\"x\"}", -EBADMSG,
			   "QMP input member 'exec-oob' is unexpected", false),
	/* 23 */ PARSE_BAD("{\"execute\":}", -EBADMSG, "JSON parse error, unexpected character",
			   false),
	/* 24 */ PARSE_BAD("{\"execute\":\"guest-ping\"", -EBADMSG,
			   "JSON parse error, unexpected end of data", false),
	/* 25 */ PARSE_BAD("{\"execute\":\"x\"} {\"execute\":\"y\"}", -EBADMSG,
			   "JSON parse error, unexpected character", false),
	/* 26 */ PARSE_BAD("{\"execute\":\"x\"}x", -EBADMSG,
			   "JSON parse error, unexpected character", false),
	/* 27 */ PARSE_BAD("{\"execute\":\"x\",\"id\":NaN}", -EBADMSG,
			   "JSON parse error, number expected", false),
	/* 28 */ PARSE_BAD("{\"execute\":\"x\",\"id\":[-Infinity]}", -EBADMSG,
			   "JSON parse error, number expected", false),
	/* 29 */ PARSE_BAD("{\"execute\":\"\xc3\x28\"}", -EBADMSG,
			   "JSON parse error, invalid utf-8 string", false),
	/* 30 */ { S("{\"execute\":\"x\",}"), 0, NULL, "x", false, false },
	/* 31 */ PARSE_BAD("", -EBADMSG, "JSON parse error, unexpected end of data", false),
	/* 32 */ PARSE_BAD("{\"execute\":\"x\"}\0junk", -EBADMSG,
			   "JSON parse error, unexpected character", false),
	/* 33 */ { S("/* c */{\"execute\":\"x\"}"), 0, NULL, "x", false, false },
	/* 34 */ PARSE_BAD("\xff{\"execute\":\"x\"}", -EBADMSG,
			   "JSON parse error, invalid utf-8 string", false),
	/* 35 */ PARSE_BAD("{\"execute\":\"x\",\"id\":tru}", -EBADMSG,
			   "JSON parse error, boolean expected", false),
	/* 36 */ PARSE_BAD("1 2", -EBADMSG, "JSON parse error, unexpected character", false),
	/* 37 */ { S("{'execute':'guest-ping','id':'a'}"), 0, NULL, "guest-ping", true, false },
	/* 38 */ PARSE_BAD("{\"execute\":\"x\",\"id\":nan}", -EBADMSG,
			   "JSON parse error, number expected", false),
	/* 39 */ PARSE_BAD("{\"execute\":\"x\"}}", -EBADMSG,
			   "JSON parse error, unexpected character", false),
};

static void parse_expect(const char *line, size_t len, int rc, const char *desc,
			 const char *execute, bool has_id, bool has_args)
{
	struct gmig_qga_request req;
	struct gmig_qga_error err = { .cls = "unset", .desc = "unset" };
	int got = gmig_qga_request_parse(&req, line, len, &err);

	ck_assert_int_eq(got, rc);
	if (rc == 0) {
		ck_assert_str_eq(req.execute, execute);
		ck_assert_str_eq(err.desc, "unset");
		ck_assert(!has_args == !req.args);
		if (req.args)
			ck_assert(json_object_is_type(req.args, json_type_object));
	} else {
		ck_assert_str_eq(err.cls, GMIG_QGA_GENERIC_ERROR);
		ck_assert_str_eq(err.desc, desc);
	}
	ck_assert(req.has_id == has_id);
	if (!has_id)
		ck_assert_ptr_null(req.id);
	gmig_qga_request_clear(&req);
	ck_assert_ptr_null(req.root);
}

START_TEST(test_parse_rows)
{
	const struct parse_row *row = &parse_rows[_i];

	parse_expect(row->line, row->len, row->rc, row->desc, row->execute, row->has_id,
		     row->has_args);
}
END_TEST

/* Nesting up to the limit parses; one level more is refused with QEMU's words. */
START_TEST(test_parse_depth)
{
	static const char head[] = "{\"execute\":\"x\",\"id\":";
	size_t hl = sizeof(head) - 1;
	/* the request object itself is one level */
	size_t levels[] = { GMIG_QGA_DEPTH_MAX - 1, GMIG_QGA_DEPTH_MAX };
	char *line = malloc(hl + 2 * GMIG_QGA_DEPTH_MAX + 2);

	ck_assert_ptr_nonnull(line);
	for (size_t r = 0; r < ARRAY_SIZE(levels); r++) {
		size_t n = hl;

		memcpy(line, head, hl);
		memset(line + n, '[', levels[r]);
		n += levels[r];
		memset(line + n, ']', levels[r]);
		n += levels[r];
		line[n++] = '}';
		if (r == 0)
			/* 1 */ parse_expect(line, n, 0, NULL, "x", true, false);
		else
			/* 2 */ parse_expect(line, n, -EBADMSG, "JSON nesting depth limit exceeded",
					     NULL, false, false);
	}
	free(line);
}
END_TEST

START_TEST(test_parse_oversize)
{
	size_t len = GMIG_QGA_LINE_MAX + 1;
	char *line = malloc(len);

	ck_assert_ptr_nonnull(line);
	memset(line, ' ', len);
	memcpy(line, S("{\"execute\":\"guest-ping\"}"));
	/* 1 */ parse_expect(line, len - 1, 0, NULL, "guest-ping", false, false);
	/* 2 */ parse_expect(line, len, -EMSGSIZE, "JSON token size limit exceeded", NULL, false,
			     false);
	free(line);
}
END_TEST

/* --- dispatch --- */

struct disp_row {
	bool		frozen;
	const char	*line;
	size_t		len;
	const char	*want;		/* exact reply, sentinel and newline excluded */
	bool		delimited;
	int		calls;		/* table handlers run */
};

#define OK(line, want, calls)		{ false, S(line), want, false, calls }
#define FROZEN(line, want, calls)	{ true, S(line), want, false, calls }
#define GENERIC(desc)	"{\"error\":{\"class\":\"GenericError\",\"desc\":\"" desc "\"}"
#define NOT_FOUND(desc)	"{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"" desc "\"}"
#define SYNC(args)	"{\"execute\":\"guest-sync\",\"arguments\":" args "}"
#define BAD_ID		"Invalid parameter type for 'id', expected: integer"

static const struct disp_row disp_rows[] = {
	/* 1 */ OK("{\"execute\":\"guest-ping\"}", "{\"return\":{}}", 0),
	/* 2 */ OK("{\"execute\":\"guest-ping\",\"id\":1}", "{\"return\":{},\"id\":1}", 0),
	/* 3 */ OK("{\"id\":1,\"execute\":\"guest-ping\"}", "{\"return\":{},\"id\":1}", 0),
	/* 4 */ OK(SYNC("{\"id\":42}"), "{\"return\":42}", 0),
	/* 5 */ OK("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":9223372036854775807},"
		   "\"id\":\"s\"}", "{\"return\":9223372036854775807,\"id\":\"s\"}", 0),
	/* 6 */ OK(SYNC("{\"id\":-9223372036854775808}"), "{\"return\":-9223372036854775808}", 0),
	/* 7 */ OK(SYNC("{\"id\":9223372036854775808}"), GENERIC(BAD_ID) "}", 0),
	/* 8 */ OK(SYNC("{\"id\":18446744073709551616}"), GENERIC(BAD_ID) "}", 0),
	/* 9 */ OK(SYNC("{\"id\":1.5}"), GENERIC(BAD_ID) "}", 0),
	/* 10 */ OK(SYNC("{\"id\":\"1\"}"), GENERIC(BAD_ID) "}", 0),
	/* 11 */ OK(SYNC("{\"id\":null}"), GENERIC(BAD_ID) "}", 0),
	/* 12 */ OK(SYNC("{}"), GENERIC("Parameter 'id' is missing") "}", 0),
	/* 13 */ OK("{\"execute\":\"guest-sync\",\"id\":5}",
		    GENERIC("Parameter 'id' is missing") ",\"id\":5}", 0),
	/* 14 */ OK(SYNC("{\"id\":1,\"x\":2}"), GENERIC("Parameter 'x' is unexpected") "}", 0),
	/* 15 */ { false, S("{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":7}}"),
		   "{\"return\":7}", true, 0 },
	/* 16 */ OK("{\"execute\":\"guest-sync-delimited\",\"arguments\":{}}",
		    GENERIC("Parameter 'id' is missing") "}", 0),
	/* 17 */ OK("{\"execute\":\"guest-ping\",\"arguments\":{\"a\":1}}",
		    GENERIC("Parameter 'a' is unexpected") "}", 0),
	/* 18 */ OK("{\"execute\":\"guest-exec\",\"id\":\"abc\"}",
		    NOT_FOUND("The command guest-exec has not been found") ",\"id\":\"abc\"}", 0),
	/* 19 */ OK("{\"execute\":\"gmig-echo\",\"arguments\":{\"x\":[1,2,{\"y\":\"/\"}]},"
		    "\"id\":{\"a\":[1,2]}}",
		    "{\"return\":{\"x\":[1,2,{\"y\":\"/\"}]},\"id\":{\"a\":[1,2]}}", 1),
	/* 20 */ OK("{\"execute\":\"guest-ping\",\"id\":null}", "{\"return\":{},\"id\":null}", 0),
	/* 21 */ OK("{\"execute\":\"gmig-echo\"}", "{\"return\":{}}", 1),
	/* 22 */ OK("{\"execute\":\"gmig-void\",\"id\":[]}", "{\"return\":{},\"id\":[]}", 1),
	/* 23 */ OK("{\"execute\":\"gmig-fail\",\"id\":2}", GENERIC("GPU 3 lost") ",\"id\":2}", 1),
	/* 24 */ OK("{\"execute\":\"gmig-errno\"}",
		    GENERIC("Guest agent command failed, error was 'Input/output error'") "}", 1),
	/* 25 */ OK("{\"execute\":\"gmig-late\"}", GENERIC("too late") "}", 1),
	/* 26 */ FROZEN("{\"execute\":\"gmig-echo\",\"id\":3}",
			NOT_FOUND("Command gmig-echo has been disabled: the agent is in frozen "
				  "state") ",\"id\":3}", 0),
	/* 27 */ FROZEN("{\"execute\":\"gmig-thaw\"}", "{\"return\":{\"thawed\":true}}", 1),
	/* 28 */ FROZEN(SYNC("{\"id\":8}"), "{\"return\":8}", 0),
	/* 29 */ FROZEN("{\"execute\":\"guest-ping\"}", "{\"return\":{}}", 0),
	/* 30 */ OK("{\"execute\":\"gmig-off\"}",
		    NOT_FOUND("Command gmig-off has been disabled: the command is not allowed") "}",
		    0),
	/* 31 */ FROZEN("{\"execute\":\"gmig-off\"}",
			NOT_FOUND("Command gmig-off has been disabled: the command is not allowed")
			"}", 0),
	/* 32 */ OK("[1]", GENERIC("QMP input must be a JSON object") "}", 0),
	/* 33 */ OK("{\"id\":9}", GENERIC("QMP input lacks member 'execute'") ",\"id\":9}", 0),
	/* 34 */ OK("{\"execute\":\"guest-ping\",\"id\":2,\"x\":1}",
		    GENERIC("QMP input member 'x' is unexpected") ",\"id\":2}", 0),
	/* 35 */ OK("{\"execute\":", GENERIC("JSON parse error, unexpected end of data") "}", 0),
	/* 36 */ OK("{\"execute\":\"guest-ping\\u0000\"}",
		    NOT_FOUND("The command guest-ping has not been found") "}", 0),
	/* 37 */ OK("{\"execute\":\"guest-ping\",\"id\":18446744073709551615}",
		    "{\"return\":{},\"id\":18446744073709551615}", 0),
	/* 38 */ OK("{\"execute\":\"guest-ping\",\"id\":\"\xc3\xa9\xe2\x9c\x93\"}",
		    "{\"return\":{},\"id\":\"\xc3\xa9\xe2\x9c\x93\"}", 0),
	/* 39 */ OK(SYNC("{\"id\":0}"), "{\"return\":0}", 0),
	/* 40 */ OK(SYNC("{\"id\":-1}"), "{\"return\":-1}", 0),
	/* 41 */ OK("{\"execute\":\"gmig-echo\",\"arguments\":{\"s\":\"a\\u0000b\"}}",
		    "{\"return\":{\"s\":\"a\\u0000b\"}}", 1),
	/* 42 */ OK("{\"execute\":\"guest-info\",\"arguments\":{\"v\":1}}",
		    GENERIC("Parameter 'v' is unexpected") "}", 0),
	/* 43 */ OK("{\"execute\":\"guest-ping\",\"exec-oob\":\"guest-ping\"}",
		    GENERIC("QMP input member 'exec-oob' is unexpected") "}", 0),
	/* 44 */ OK("{\"execute\":\"GUEST-PING\"}",
		    NOT_FOUND("The command GUEST-PING has not been found") "}", 0),
	/* 45 */ OK("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1},\"id\":1.25}",
		    "{\"return\":1,\"id\":1.25}", 0),
	/* 46 */ FROZEN("{\"execute\":\"guest-exec\"}",
			NOT_FOUND("The command guest-exec has not been found") "}", 0),
	/* 47 */ OK("{\"execute\":\"gmig-echo\",\"arguments\":{\"q\":\"\\\"\\\\\\n\"}}",
		    "{\"return\":{\"q\":\"\\\"\\\\\\n\"}}", 1),
};

START_TEST(test_dispatch_rows)
{
	const struct disp_row *row = &disp_rows[_i];
	struct calls calls = { 0 };
	struct gmig_qga_dispatcher d = test_disp(&calls, row->frozen);
	size_t len = 0;
	char *reply = dispatch_counted(&d, row->line, row->len, &len);

	check_reply(reply, len, row->want, row->delimited);
	ck_assert_int_eq(calls.n, row->calls);
	free(reply);
}
END_TEST

/* A two-command table, so guest-info's whole reply can be compared byte for byte. */
START_TEST(test_dispatch_info)
{
	static const struct gmig_qga_cmd cmds[] = {
		{ "gmig-status",	GMIG_QGA_FROZEN_OK,	h_void },
		{ "gmig-freeze",	0,			h_void },
		{ "gmig-blocked",	GMIG_QGA_DISABLED,	h_void },
	};
#define INFO_HEAD "{\"return\":{\"version\":\"1.2.3\",\"supported_commands\":[" \
	"{\"name\":\"guest-sync-delimited\",\"enabled\":true,\"success-response\":true}," \
	"{\"name\":\"guest-sync\",\"enabled\":true,\"success-response\":true}," \
	"{\"name\":\"guest-ping\",\"enabled\":true,\"success-response\":true}," \
	"{\"name\":\"guest-info\",\"enabled\":true,\"success-response\":true}," \
	"{\"name\":\"gmig-status\",\"enabled\":true,\"success-response\":true},"
	static const char *const want[] = {
		/* 1 */ INFO_HEAD
		"{\"name\":\"gmig-freeze\",\"enabled\":true,\"success-response\":true},"
		"{\"name\":\"gmig-blocked\",\"enabled\":false,\"success-response\":true}]},"
		"\"id\":\"i\"}",
		/* 2 */ INFO_HEAD
		"{\"name\":\"gmig-freeze\",\"enabled\":false,\"success-response\":true},"
		"{\"name\":\"gmig-blocked\",\"enabled\":false,\"success-response\":true}]},"
		"\"id\":\"i\"}",
	};
#undef INFO_HEAD
	struct calls calls = { 0 };
	struct gmig_qga_dispatcher d = {
		.cmds = cmds, .ncmds = ARRAY_SIZE(cmds), .version = "1.2.3", .ctx = &calls,
	};

	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		size_t len = 0;
		char *reply;

		d.frozen = i == 1;
		reply = dispatch_counted(&d, S("{\"execute\":\"guest-info\",\"id\":\"i\"}"), &len);
		check_reply(reply, len, want[i], false);
		free(reply);
	}
	ck_assert_int_eq(calls.n, 0);

	/* 3: no version given, no table */
	{
		struct gmig_qga_dispatcher bare = { 0 };
		size_t len = 0;
		char *reply = gmig_qga_dispatch(&bare, S("{\"execute\":\"guest-info\"}"), &len);

		check_reply(reply, len,
			    "{\"return\":{\"version\":\"\",\"supported_commands\":["
			    "{\"name\":\"guest-sync-delimited\",\"enabled\":true,"
			    "\"success-response\":true},"
			    "{\"name\":\"guest-sync\",\"enabled\":true,\"success-response\":true},"
			    "{\"name\":\"guest-ping\",\"enabled\":true,\"success-response\":true},"
			    "{\"name\":\"guest-info\",\"enabled\":true,\"success-response\":true}"
			    "]}}", false);
		free(reply);
	}
}
END_TEST

START_TEST(test_dispatcher_check)
{
	static const struct gmig_qga_cmd dup[] = {
		{ "gmig-a", 0, h_void }, { "gmig-b", 0, h_void }, { "gmig-a", 0, h_void },
	};
	static const struct gmig_qga_cmd shadow[] = { { "guest-sync", 0, h_void } };
	static const struct gmig_qga_cmd noname[] = { { NULL, 0, h_void } };
	static const struct gmig_qga_cmd empty[] = { { "", 0, h_void } };
	static const struct gmig_qga_cmd nohandler[] = { { "gmig-a", 0, NULL } };
	static const struct {
		const struct gmig_qga_cmd	*cmds;
		size_t				n;
		int				rc;
	} rows[] = {
		/* 1 */ { test_cmds, ARRAY_SIZE(test_cmds), 0 },
		/* 2 */ { NULL, 0, 0 },
		/* 3 */ { dup, ARRAY_SIZE(dup), -EEXIST },
		/* 4 */ { shadow, ARRAY_SIZE(shadow), -EEXIST },
		/* 5 */ { noname, ARRAY_SIZE(noname), -EINVAL },
		/* 6 */ { empty, ARRAY_SIZE(empty), -EINVAL },
		/* 7 */ { nohandler, ARRAY_SIZE(nohandler), -EINVAL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct gmig_qga_dispatcher d = { .cmds = rows[i].cmds, .ncmds = rows[i].n };

		ck_assert_msg(gmig_qga_dispatcher_check(&d) == rows[i].rc, "row %zu", i + 1);
	}
}
END_TEST

/* --- reply builders --- */

START_TEST(test_reply_builders)
{
	struct gmig_qga_request req;
	struct gmig_qga_error err;
	struct json_object *ret = json_object_new_array();
	size_t len = 0;
	char *reply;

	json_object_array_add(ret, json_object_new_string("a/b"));
	ck_assert_int_eq(gmig_qga_request_parse(&req, S("{\"execute\":\"x\",\"id\":[7]}"), &err),
			 0);

	/* 1 */ reply = gmig_qga_reply_return(NULL, ret, &len);
	check_reply(reply, len, "{\"return\":[\"a/b\"]}", false);
	free(reply);
	/* 2 */ reply = gmig_qga_reply_return(&req, ret, &len);
	check_reply(reply, len, "{\"return\":[\"a/b\"],\"id\":[7]}", false);
	free(reply);
	/* 3 */ reply = gmig_qga_reply_return(&req, NULL, &len);
	check_reply(reply, len, "{\"return\":{},\"id\":[7]}", false);
	free(reply);
	/* 4 */ gmig_qga_error_set(&err, "Custom", "bad \"%s\"", "x");
	reply = gmig_qga_reply_error(&req, &err, &len);
	check_reply(reply, len, "{\"error\":{\"class\":\"Custom\",\"desc\":\"bad \\\"x\\\"\"},"
		    "\"id\":[7]}", false);
	free(reply);
	/* 5 */ reply = gmig_qga_reply_oversize(&len);
	check_reply(reply, len, GENERIC("JSON token size limit exceeded") "}", false);
	free(reply);

	/* ret was borrowed: exactly one reference is left */
	ck_assert_int_eq(json_object_put(ret), 1);
	gmig_qga_request_clear(&req);
}
END_TEST

START_TEST(test_error_set)
{
	struct gmig_qga_error err;
	char *big = malloc(3 * GMIG_QGA_DESC_MAX);
	size_t n;

	ck_assert_ptr_nonnull(big);
	/* 1: ASCII is cut at the last byte that fits */
	memset(big, 'a', 2 * GMIG_QGA_DESC_MAX);
	big[2 * GMIG_QGA_DESC_MAX] = '\0';
	gmig_qga_error_set(&err, GMIG_QGA_GENERIC_ERROR, "%s", big);
	ck_assert_uint_eq(strlen(err.desc), GMIG_QGA_DESC_MAX - 1);
	/* 2..13: multi-byte characters are never split, whatever their size and offset */
	for (size_t w = 2; w <= 4; w++) {
		static const char *const chars[] = { "", "", "\xc3\xa9", "\xe2\x9c\x93",
						     "\xf0\x9f\x98\x80" };

		for (size_t lead = 0; lead < 4; lead++) {
			memset(big, 'a', lead);
			for (n = lead; n + w < 2 * GMIG_QGA_DESC_MAX; n += w)
				memcpy(big + n, chars[w], w);
			big[n] = '\0';
			gmig_qga_error_set(&err, "C", "%s", big);
			n = strlen(err.desc);
			ck_assert_uint_le(n, GMIG_QGA_DESC_MAX - 1);
			ck_assert_uint_ge(n, GMIG_QGA_DESC_MAX - w);
			ck_assert_uint_eq((n - lead) % w, 0);
		}
	}
	/* 14: a class is copied */
	ck_assert_str_eq(err.cls, "C");
	free(big);
}
END_TEST

/* --- streams: assembly and dispatch together, as the agent runs them --- */

/* Feed @in in chunks from @chunk; dispatch each line; return all replies joined. */
static char *stream_run(const char *in, size_t in_len, size_t (*chunk)(size_t, void *),
			void *arg, size_t *out_len)
{
	static char buf[GMIG_QGA_LINE_BUF];
	struct gmig_qga_lines ls;
	struct calls calls = { 0 };
	struct gmig_qga_dispatcher d = test_disp(&calls, false);
	char *out = NULL;
	size_t pos = 0, n = 0;

	ck_assert_int_eq(gmig_qga_lines_init(&ls, buf, sizeof(buf)), 0);
	while (pos < in_len) {
		size_t left = chunk(in_len - pos, arg);

		while (left) {
			const char *line;
			size_t line_len, used, rlen = 0;
			int rc = gmig_qga_lines_feed(&ls, in + pos, left, &used, &line, &line_len);
			char *reply = NULL;

			pos += used;
			left -= used;
			if (rc == 1)
				reply = gmig_qga_dispatch(&d, line, line_len, &rlen);
			else if (rc == -EMSGSIZE)
				reply = gmig_qga_reply_oversize(&rlen);
			if (!reply)
				continue;
			check_reply_shape(reply, rlen);
			out = realloc(out, n + rlen + 1);
			ck_assert_ptr_nonnull(out);
			memcpy(out + n, reply, rlen);
			n += rlen;
			out[n] = '\0';
			free(reply);
		}
	}
	*out_len = n;
	return out;
}

/* What libvirt and other clients send: reset, delimited sync, commands, CRLF, blank lines. */
START_TEST(test_stream_split)
{
	static const char in[] =
		"{\"execute\":\"guest-pi\xff{\"execute\":\"guest-sync-delimited\","
		"\"arguments\":{\"id\":123}}\n"
		"\r\n"
		"{\"execute\":\"guest-ping\",\"id\":1}\r\n"
		"{\"execute\":\"guest-sync\", \"arguments\":{\"id\":1700000000000}}\n"
		"{\"execute\":\n"
		"\n"
		"{\"execute\":\"gmig-echo\",\"arguments\":{\"k\":\"v\"}}\n";
	static const char want[] =
		"\xff{\"return\":123}\n"
		"{\"return\":{},\"id\":1}\n"
		"{\"return\":1700000000000}\n"
		GENERIC("JSON parse error, unexpected end of data") "}\n"
		"{\"return\":{\"k\":\"v\"}}\n";
	size_t len = 0;
	char *out;

	/* 1: whole */
	out = stream_run(in, sizeof(in) - 1, chunk_all, NULL, &len);
	ck_assert_uint_eq(len, sizeof(want) - 1);
	ck_assert(!memcmp(out, want, len));
	free(out);
	/* 2: every split point */
	for (size_t at = 1; at < sizeof(in) - 1; at++) {
		size_t split = at;

		out = stream_run(in, sizeof(in) - 1, chunk_split, &split, &len);
		ck_assert_msg(len == sizeof(want) - 1 && !memcmp(out, want, len), "split at %zu",
			      at);
		free(out);
	}
	/* 3: byte by byte */
	out = stream_run(in, sizeof(in) - 1, chunk_one, NULL, &len);
	ck_assert_uint_eq(len, sizeof(want) - 1);
	ck_assert(!memcmp(out, want, len));
	free(out);
}
END_TEST

/*
 * A request padded to exactly GMIG_QGA_LINE_MAX is answered; one byte more is refused once
 * and the next request is answered again.
 */
START_TEST(test_stream_line_max)
{
	static const char head[] = "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":5},\"id\":\"";
	static const char next[] = "{\"execute\":\"guest-ping\",\"id\":6}\n";
	size_t hl = sizeof(head) - 1;
	size_t max_len = GMIG_QGA_LINE_MAX;
	size_t total = 2 * (max_len + 3) + sizeof(next);
	char *in = malloc(total);
	char *out;
	size_t n = 0, len = 0, pad = max_len - hl - 2;
	const char *p;

	ck_assert_ptr_nonnull(in);
	for (int extra = 0; extra <= 1; extra++) {
		memcpy(in + n, head, hl);
		n += hl;
		memset(in + n, 'p', pad + extra);
		n += pad + extra;
		memcpy(in + n, "\"}\r\n", 4);
		n += 4;
	}
	memcpy(in + n, next, sizeof(next) - 1);
	n += sizeof(next) - 1;

	for (int pass = 0; pass < 2; pass++) {
		uint64_t state = 99;

		out = pass ? stream_run(in, n, chunk_rand, &state, &len)
			   : stream_run(in, n, chunk_all, NULL, &len);
		/* 1: the line at the maximum echoes its whole id */
		p = out;
		ck_assert(!memcmp(p, "{\"return\":5,\"id\":\"ppp", 21));
		p = strchr(p, '\n');
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((size_t)(p - out), strlen("{\"return\":5,\"id\":\"\"}") + pad);
		/* 2: the line one over is refused once; 3: the next one is answered */
		ck_assert_str_eq(p + 1, GENERIC("JSON token size limit exceeded") "}\n"
				 "{\"return\":{},\"id\":6}\n");
		free(out);
	}
	free(in);
}
END_TEST

/* Deterministic noise: random bytes and mutated requests always get a well-formed reply. */
START_TEST(test_dispatch_noise)
{
	static const char *const seeds[] = {
		"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":12}}",
		"{\"execute\":\"gmig-echo\",\"arguments\":{\"a\":[1,2.5,\"s\",null]},\"id\":{}}",
		"{\"execute\":\"guest-info\",\"id\":\"x\"}",
	};
	uint64_t state = 0x5eed;
	struct calls calls = { 0 };
	struct gmig_qga_dispatcher d = test_disp(&calls, false);
	char line[256];

	for (int i = 0; i < 6000; i++) {
		size_t len, rlen = 0;
		char *reply;

		if (i % 3 == 0) {
			len = tu_below(&state, sizeof(line));
			tu_fill(line, len, &state);
		} else {
			const char *s = seeds[tu_below(&state, ARRAY_SIZE(seeds))];
			int flips = 1 + (int)tu_below(&state, 3);

			len = strlen(s);
			memcpy(line, s, len);
			while (flips--)
				line[tu_below(&state, len)] = (char)tu_rand(&state);
		}
		d.frozen = i & 1;
		reply = dispatch_counted(&d, line, len, &rlen);
		check_reply_shape(reply, rlen);
		free(reply);
	}
}
END_TEST

/* --- allocation failures --- */

#ifndef TEST_NO_FAULTS
static const char *const fault_lines[] = {
	/* 1 */ "{\"execute\":\"guest-ping\",\"id\":1}",
	/* 2 */ "{\"execute\":\"guest-info\",\"id\":{\"a\":[1,2]}}",
	/* 3 */ "{\"execute\":\"gmig-echo\",\"arguments\":{\"a\":[1,{\"b\":null}]},\"id\":\"q\"}",
	/* 4 */ "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":77}}",
	/* 5 */ "{\"execute\":\"guest-nope\",\"id\":3}",
	/* 6 */ "{\"execute\":\"gmig-fail\"}",
	/* 7 */ "{\"execute\":\"guest-sync\",\"arguments\":{}}",
	/* 8 */ "{\"execute\":",
	/* 9 */ "[1,2,3]",
};

START_TEST(test_alloc_faults)
{
	const char *line = fault_lines[_i];
	size_t line_len = strlen(line);
	struct calls calls = { 0 };
	struct gmig_qga_dispatcher d = test_disp(&calls, false);
	struct gmig_qga_request req;
	struct gmig_qga_error err;
	struct json_tokener *tok;
	size_t want_len = 0, len;
	char *want, *reply;
	long fail_at, tok_allocs, parse_allocs, tried = 0;

	/* A first run warms up whatever json-c and libc set up once, and gives the answer. */
	want = gmig_qga_dispatch(&d, line, line_len, &want_len);
	ck_assert_ptr_nonnull(want);

	/* The allocations of json_tokener_new_ex() come first, then those of the parse. */
	fault_arm(0);
	tok = json_tokener_new_ex(GMIG_QGA_DEPTH_MAX);
	json_tokener_free(tok);
	tok_allocs = fault.count;
	fault_arm(0);
	gmig_qga_request_parse(&req, line, line_len, &err);
	gmig_qga_request_clear(&req);
	parse_allocs = fault.count;
	fault.armed = false;
	ck_assert_int_gt(tok_allocs, 0);
	ck_assert_int_gt(parse_allocs, tok_allocs);

	for (fail_at = 1;; fail_at++) {
		long count, live;
		bool same;

		if (fail_at > tok_allocs && fail_at <= parse_allocs)
			continue;
		len = 0;
		fault_arm(fail_at);
		reply = gmig_qga_dispatch(&d, line, line_len, &len);
		same = reply && len == want_len && !memcmp(reply, want, len);
		if (reply && !same) {
			/* A failure may turn into an error reply; it must still be a reply. */
			fault.armed = false;
			check_reply_shape(reply, len);
			fault.armed = true;
		}
		free(reply);
		count = fault.count;
		live = fault.live;
		fault.armed = false;
		ck_assert_msg(live == 0, "failing allocation %ld leaks %ld", fail_at, live);
		if (count < fail_at) {
			/* Nothing failed: the reply must be the normal one. */
			ck_assert(same);
			break;
		}
		if (!reply)
			tried++;
	}
	/* Failures past the parse were reached and some were reported as out of memory. */
	ck_assert_int_gt(fail_at, parse_allocs + 1);
	ck_assert_int_gt(tried, tok_allocs);
	free(want);
}
END_TEST
#endif

static Suite *qga_suite(void)
{
	Suite *s = suite_create("qga");
	TCase *tc;

	tc = tcase_create("lines");
	tcase_add_loop_test(tc, test_lines_rows, 0, ARRAY_SIZE(lines_rows));
	tcase_add_test(tc, test_lines_init);
	tcase_add_test(tc, test_lines_reset);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_rows, 0, ARRAY_SIZE(parse_rows));
	tcase_add_test(tc, test_parse_depth);
	tcase_add_test(tc, test_parse_oversize);
	suite_add_tcase(s, tc);

	tc = tcase_create("dispatch");
	tcase_add_loop_test(tc, test_dispatch_rows, 0, ARRAY_SIZE(disp_rows));
	tcase_add_test(tc, test_dispatch_info);
	tcase_add_test(tc, test_dispatcher_check);
	tcase_add_test(tc, test_reply_builders);
	tcase_add_test(tc, test_error_set);
	tcase_add_test(tc, test_dispatch_noise);
	suite_add_tcase(s, tc);

	tc = tcase_create("stream");
	tcase_add_test(tc, test_stream_split);
	tcase_add_test(tc, test_stream_line_max);
	suite_add_tcase(s, tc);

#ifndef TEST_NO_FAULTS
	tc = tcase_create("faults");
	tcase_add_loop_test(tc, test_alloc_faults, 0, ARRAY_SIZE(fault_lines));
	suite_add_tcase(s, tc);
#endif
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(qga_suite());
	struct calls calls = { 0 };
	struct gmig_qga_dispatcher d = test_disp(&calls, false);
	size_t len;
	int failed;

	/* Let json-c and libc make their one-time allocations before any test counts. */
	free(gmig_qga_dispatch(&d, S("{\"execute\":\"guest-info\",\"id\":1.5}"), &len));

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
