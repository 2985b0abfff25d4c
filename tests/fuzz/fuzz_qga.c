/* libFuzzer target for the QGA dialect: line assembly, request checks, replies and dispatch. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gmig/qga.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define SMALL_CAP	64	/* a second, tiny cap so that over-long lines are common */

static int h_echo(void *ctx, struct json_object *args, struct json_object **ret,
		  struct gmig_qga_error *err)
{
	(void)ctx;
	(void)err;
	*ret = json_object_get(args);
	return 0;
}

static int h_fail(void *ctx, struct json_object *args, struct json_object **ret,
		  struct gmig_qga_error *err)
{
	(void)ctx;
	(void)args;
	(void)ret;
	gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "failed: %s",
			   json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN));
	return -EIO;
}

static int h_errno(void *ctx, struct json_object *args, struct json_object **ret,
		   struct gmig_qga_error *err)
{
	(void)ctx;
	(void)args;
	(void)ret;
	(void)err;
	return -(int)json_object_object_length(args) - 1;
}

static const struct gmig_qga_cmd cmds[] = {
	{ "gmig-echo",	GMIG_QGA_FROZEN_OK,	h_echo },
	{ "gmig-fail",	0,			h_fail },
	{ "gmig-errno",	0,			h_errno },
	{ "gmig-off",	GMIG_QGA_DISABLED,	h_echo },
};

/* Every reply is one line of a JSON object with exactly "return" or "error", then "id". */
static void check_reply(const char *reply, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj, *v, *c, *d;
	size_t off;

	if (!reply || len < 3 || reply[len] != '\0' || reply[len - 1] != '\n')
		abort();
	off = (unsigned char)reply[0] == GMIG_QGA_SENTINEL;
	if (memchr(reply + off, '\n', len - off - 1) ||
	    memchr(reply + off, GMIG_QGA_SENTINEL, len - off))
		abort();

	tok = json_tokener_new_ex(GMIG_QGA_DEPTH_MAX + 2);
	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, reply + off, (int)(len - off - 1));
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len - off - 1 ||
	    !json_object_is_type(obj, json_type_object))
		abort();
	json_tokener_free(tok);

	if (json_object_object_length(obj) > 2)
		abort();
	if (json_object_object_length(obj) == 2 && !json_object_object_get_ex(obj, "id", NULL))
		abort();
	if (json_object_object_get_ex(obj, "error", &v)) {
		if (off || json_object_object_get_ex(obj, "return", NULL) ||
		    json_object_object_length(v) != 2 ||
		    !json_object_object_get_ex(v, "class", &c) ||
		    !json_object_object_get_ex(v, "desc", &d) ||
		    !json_object_is_type(c, json_type_string) ||
		    !json_object_is_type(d, json_type_string) ||
		    json_object_get_string_len(c) == 0 || json_object_get_string_len(d) == 0)
			abort();
	} else if (!json_object_object_get_ex(obj, "return", NULL)) {
		abort();
	}
	json_object_put(obj);
}

struct events {
	uint64_t	hash;	/* over every line and -EMSGSIZE handed out */
	size_t		n;
};

static void events_add(struct events *ev, const void *p, size_t len, int rc)
{
	const unsigned char *b = p;

	ev->hash = (ev->hash ^ (uint64_t)(rc + 2)) * 0x100000001b3ull;
	for (size_t i = 0; i < len; i++)
		ev->hash = (ev->hash ^ b[i]) * 0x100000001b3ull;
	ev->n++;
}

/*
 * Feed @data in chunks whose sizes follow @seed (0: all at once), dispatching each line when
 * @d is given.  Returns what came out, for comparing one chunking with another.
 */
static struct events run(const uint8_t *data, size_t size, size_t cap_size, uint64_t seed,
			 const struct gmig_qga_dispatcher *d)
{
	static char buf[GMIG_QGA_LINE_BUF];
	struct gmig_qga_lines ls;
	struct events ev = { .hash = 0xcbf29ce484222325ull };
	size_t pos = 0;

	if (gmig_qga_lines_init(&ls, buf, cap_size))
		abort();
	while (pos < size) {
		size_t left = size - pos;

		if (seed) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			left = 1 + (seed >> 33) % (left < 97 ? left : 97);
		}
		while (left) {
			const char *line;
			size_t line_len, used, rlen = 0;
			int rc = gmig_qga_lines_feed(&ls, data + pos, left, &used, &line,
						     &line_len);
			char *reply = NULL;

			if (used > left || (rc == 0 && used != left))
				abort();
			pos += used;
			left -= used;
			if (rc == 1) {
				if (line_len == 0 || line_len > cap_size - 1 ||
				    line[line_len] != '\0')
					abort();
				events_add(&ev, line, line_len, rc);
				if (d)
					reply = gmig_qga_dispatch(d, line, line_len, &rlen);
			} else if (rc == -EMSGSIZE) {
				events_add(&ev, NULL, 0, rc);
				if (d)
					reply = gmig_qga_reply_oversize(&rlen);
			} else if (rc != 0) {
				abort();
			}
			if (reply) {
				check_reply(reply, rlen);
				free(reply);
			} else if (d && rc != 0) {
				abort();
			}
		}
	}
	return ev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmig_qga_dispatcher d = {
		.cmds = cmds,
		.ncmds = ARRAY_SIZE(cmds),
		.version = "fuzz",
	};
	uint64_t h = 0xcbf29ce484222325ull;
	size_t cap_size, rlen = 0;
	struct events whole, pieces;
	char *reply;

	/* The input's own hash picks the variant, so seeds stay plain request text. */
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ull;
	d.frozen = h & 1;
	cap_size = h & 2 ? SMALL_CAP + 1 : GMIG_QGA_LINE_BUF;

	/* The stream as the agent sees it; the same bytes cut differently must give the same. */
	whole = run(data, size, cap_size, 0, &d);
	pieces = run(data, size, cap_size, h | 1, NULL);
	if (whole.n != pieces.n || whole.hash != pieces.hash)
		abort();

	/* And the raw input as one request line. */
	reply = gmig_qga_dispatch(&d, (const char *)data, size, &rlen);
	check_reply(reply, rlen);
	free(reply);
	return 0;
}
