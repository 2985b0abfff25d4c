/* The QEMU guest agent's JSON dialect: line assembly, request checks, replies and dispatch. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gmig/qga.h"

/*
 * Replies as one line: no pretty-printing, and '/' left alone (json-c escapes it by default,
 * which is legal JSON but not what qemu-ga writes).
 */
#define REPLY_FLAGS	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/*
 * Input must be UTF-8, as the QMP spec requires.  json-c's strict mode is not used: it refuses
 * single-quoted string values, which QEMU accepts.  The price is that comments, trailing commas
 * and upper-case keywords are accepted too, where QEMU would refuse them.  Trailing bytes and
 * non-finite numbers, which the default mode would let through, are refused below.
 */
#define PARSE_FLAGS	JSON_TOKENER_VALIDATE_UTF8

/* Keys we add are string literals and each is added once. */
#define ADD_FLAGS	(JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_KEY_IS_CONSTANT)

/* Cut a truncated string back to the last whole UTF-8 character. */
static void utf8_trim(char *s)
{
	size_t len = strlen(s);
	size_t i = len;
	size_t need;
	unsigned char lead;

	while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	lead = (unsigned char)s[i - 1];
	if (lead < 0x80)
		return;
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	if (len - (i - 1) < need)
		s[i - 1] = '\0';
}

void gmig_qga_error_set(struct gmig_qga_error *err, const char *cls, const char *fmt, ...)
{
	va_list ap;
	int n;

	snprintf(err->cls, sizeof(err->cls), "%s", cls);
	va_start(ap, fmt);
	n = vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
	va_end(ap);
	if (n < 0)
		err->desc[0] = '\0';
	else if ((size_t)n >= sizeof(err->desc))
		utf8_trim(err->desc);
}

/* --- line assembly --- */

int gmig_qga_lines_init(struct gmig_qga_lines *ls, char *buf, size_t size)
{
	if (!buf || size < 2)
		return -EINVAL;
	*ls = (struct gmig_qga_lines){
		.buf = buf,
		.cap = size - 1 < GMIG_QGA_LINE_MAX ? size - 1 : GMIG_QGA_LINE_MAX,
	};
	buf[0] = '\0';
	return 0;
}

void gmig_qga_lines_reset(struct gmig_qga_lines *ls)
{
	ls->len = 0;
	ls->cr = false;
	ls->skip = false;
	ls->ready = false;
}

static bool lines_blank(const struct gmig_qga_lines *ls)
{
	for (size_t i = 0; i < ls->len; i++) {
		char c = ls->buf[i];

		if (c != ' ' && c != '\t' && c != '\r')
			return false;
	}
	return true;
}

/* Store one byte; false when the line is already at its cap. */
static bool lines_put(struct gmig_qga_lines *ls, char c)
{
	if (ls->len == ls->cap)
		return false;
	ls->buf[ls->len++] = c;
	return true;
}

int gmig_qga_lines_feed(struct gmig_qga_lines *ls, const void *data, size_t len,
			size_t *used, const char **line, size_t *line_len)
{
	const unsigned char *p = data;
	size_t i;

	if (ls->ready) {
		ls->len = 0;
		ls->ready = false;
	}

	for (i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (c == GMIG_QGA_SENTINEL) {
			gmig_qga_lines_reset(ls);
			continue;
		}
		if (c == '\n') {
			bool dropped = ls->skip;

			ls->cr = false;
			ls->skip = false;
			if (dropped || lines_blank(ls)) {
				ls->len = 0;
				continue;
			}
			ls->buf[ls->len] = '\0';
			ls->ready = true;
			*used = i + 1;
			*line = ls->buf;
			*line_len = ls->len;
			return 1;
		}
		if (ls->skip)
			continue;
		if (ls->cr) {
			/* Not a line ending after all: the '\r' is part of the line. */
			ls->cr = false;
			if (!lines_put(ls, '\r')) {
				ls->skip = true;
				*used = i;
				return -EMSGSIZE;
			}
		}
		if (c == '\r') {
			ls->cr = true;
			continue;
		}
		if (!lines_put(ls, (char)c)) {
			ls->skip = true;
			*used = i + 1;
			return -EMSGSIZE;
		}
	}
	*used = len;
	return 0;
}

/* --- requests --- */

/*
 * json-c accepts NaN and Infinity even in strict mode, and would write them back verbatim into
 * an echoed id, which no JSON client can read.  QEMU's lexer refuses them.
 */
static bool numbers_finite(struct json_object *obj)
{
	struct json_object_iterator it, end;
	size_t i, n;

	switch (json_object_get_type(obj)) {
	case json_type_double:
		return isfinite(json_object_get_double(obj));
	case json_type_array:
		n = json_object_array_length(obj);
		for (i = 0; i < n; i++) {
			if (!numbers_finite(json_object_array_get_idx(obj, i)))
				return false;
		}
		return true;
	case json_type_object:
		it = json_object_iter_begin(obj);
		end = json_object_iter_end(obj);
		for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
			if (!numbers_finite(json_object_iter_peek_value(&it)))
				return false;
		}
		return true;
	default:
		return true;
	}
}

static bool json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * QEMU words syntax errors "JSON parse error, <what>"; json-c's descriptions of <what> differ
 * from QEMU's own, so only the prefix and the limit messages match it exactly.
 */
static int parse_json(const char *line, size_t len, struct json_object **out,
		      struct gmig_qga_error *err)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end = len;

	*out = NULL;
	if (len > GMIG_QGA_LINE_MAX) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "JSON token size limit exceeded");
		return -EMSGSIZE;
	}
	tok = json_tokener_new_ex(GMIG_QGA_DEPTH_MAX);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, PARSE_FLAGS);

	obj = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_success) {
		end = json_tokener_get_parse_end(tok);
	} else if (jerr == json_tokener_continue) {
		/* A lone NUL tells json-c the input has ended (numbers and keywords need it). */
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
	}
	json_tokener_free(tok);

	if (jerr == json_tokener_success) {
		/* An embedded NUL also ends a value for json-c; what follows must be blank. */
		while (end < len && json_space(line[end]))
			end++;
		if (end < len)
			jerr = json_tokener_error_parse_unexpected;
		else if (!numbers_finite(obj))
			jerr = json_tokener_error_parse_number;
	}
	if (jerr == json_tokener_success) {
		*out = obj;
		return 0;
	}

	json_object_put(obj);
	if (jerr == json_tokener_error_depth)
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "JSON nesting depth limit exceeded");
	else
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "JSON parse error, %s",
				   json_tokener_error_desc(jerr));
	return -EBADMSG;
}

/* The member checks of QEMU's qmp_dispatch_check_obj(), with exec-oob not allowed. */
static int request_check(struct gmig_qga_request *req, struct gmig_qga_error *err)
{
	struct json_object_iterator it = json_object_iter_begin(req->root);
	struct json_object_iterator end = json_object_iter_end(req->root);

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *key = json_object_iter_peek_name(&it);
		struct json_object *val = json_object_iter_peek_value(&it);

		if (!strcmp(key, "execute")) {
			if (!json_object_is_type(val, json_type_string)) {
				gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
						   "QMP input member 'execute' must be a string");
				return -EBADMSG;
			}
			req->execute = json_object_get_string(val);
		} else if (!strcmp(key, "arguments")) {
			if (!json_object_is_type(val, json_type_object)) {
				gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
						   "QMP input member 'arguments' must be an object");
				return -EBADMSG;
			}
			req->args = val;
		} else if (strcmp(key, "id")) {
			gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
					   "QMP input member '%s' is unexpected", key);
			return -EBADMSG;
		}
	}
	if (!req->execute) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "QMP input lacks member 'execute'");
		return -EBADMSG;
	}
	return 0;
}

int gmig_qga_request_parse(struct gmig_qga_request *req, const char *line, size_t len,
			   struct gmig_qga_error *err)
{
	int rc;

	*req = (struct gmig_qga_request){ 0 };
	rc = parse_json(line, len, &req->root, err);
	if (rc)
		return rc;
	if (!json_object_is_type(req->root, json_type_object)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "QMP input must be a JSON object");
		return -EBADMSG;
	}
	/* QEMU picks up the id before checking anything else, so even a bad request echoes it. */
	req->has_id = json_object_object_get_ex(req->root, "id", &req->id);
	return request_check(req, err);
}

void gmig_qga_request_clear(struct gmig_qga_request *req)
{
	json_object_put(req->root);
	*req = (struct gmig_qga_request){ 0 };
}

/* --- replies --- */

/* Add @val under a literal @key; @val is consumed even on failure. */
static int obj_add(struct json_object *obj, const char *key, struct json_object *val)
{
	if (json_object_object_add_ex(obj, key, val, ADD_FLAGS) < 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

/* As obj_add() for a value just created: NULL means its allocation failed. */
static int obj_add_new(struct json_object *obj, const char *key, struct json_object *val)
{
	return val ? obj_add(obj, key, val) : -ENOMEM;
}

static int arr_add(struct json_object *arr, struct json_object *val)
{
	if (json_object_array_add(arr, val) < 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Serialize @rsp (consumed) as one line, id last and the sentinel first when @delimit.
 * json-c 0.16 ignores a printbuf that fails to grow, so when memory runs out mid-way the text
 * can come out short; the allocations made here are all checked.
 */
static char *reply_finish(struct json_object *rsp, const struct gmig_qga_request *req,
			  bool delimit, size_t *len)
{
	const char *text;
	size_t n, off = delimit ? 1 : 0;
	char *buf = NULL;

	if (!rsp)
		return NULL;
	if (req && req->has_id && obj_add(rsp, "id", json_object_get(req->id)))
		goto out_put;
	text = json_object_to_json_string_length(rsp, REPLY_FLAGS, &n);
	if (!text)
		goto out_put;
	buf = malloc(off + n + 2);
	if (!buf)
		goto out_put;
	if (delimit)
		buf[0] = (char)GMIG_QGA_SENTINEL;
	memcpy(buf + off, text, n);
	buf[off + n] = '\n';
	buf[off + n + 1] = '\0';
	*len = off + n + 1;
out_put:
	json_object_put(rsp);
	return buf;
}

static char *reply_return(const struct gmig_qga_request *req, struct json_object *ret,
			  bool delimit, size_t *len)
{
	struct json_object *rsp = json_object_new_object();

	if (!rsp) {
		json_object_put(ret);
		return NULL;
	}
	if (!ret)
		ret = json_object_new_object();
	if (!ret || obj_add(rsp, "return", ret)) {
		json_object_put(rsp);
		return NULL;
	}
	return reply_finish(rsp, req, delimit, len);
}

char *gmig_qga_reply_return(const struct gmig_qga_request *req, struct json_object *ret,
			    size_t *len)
{
	return reply_return(req, json_object_get(ret), false, len);
}

char *gmig_qga_reply_error(const struct gmig_qga_request *req, const struct gmig_qga_error *err,
			   size_t *len)
{
	struct json_object *rsp, *e;

	rsp = json_object_new_object();
	if (!rsp)
		return NULL;
	e = json_object_new_object();
	if (!e || obj_add(rsp, "error", e))
		goto out_put_rsp;
	if (obj_add_new(e, "class", json_object_new_string(err->cls)) ||
	    obj_add_new(e, "desc", json_object_new_string(err->desc)))
		goto out_put_rsp;
	return reply_finish(rsp, req, false, len);

out_put_rsp:
	json_object_put(rsp);
	return NULL;
}

char *gmig_qga_reply_oversize(size_t *len)
{
	struct gmig_qga_error err;

	/* QEMU's words for a message past its parser's size limit. */
	gmig_qga_error_set(&err, GMIG_QGA_GENERIC_ERROR, "JSON token size limit exceeded");
	return gmig_qga_reply_error(NULL, &err, len);
}

/* --- dispatch --- */

/* call_command()'s answer when the reply is an error; errors of its own are negative. */
#define ANSWER_ERROR	1

struct call {
	const struct gmig_qga_dispatcher	*d;
	bool					delimit;	/* guest-sync-delimited */
};

typedef int builtin_fn(struct call *c, struct json_object *args, struct json_object **ret,
		       struct gmig_qga_error *err);

/*
 * The arguments of a built-in, checked with the wording of QEMU's QObject input visitor:
 * members are visited first, leftovers are reported after.
 */
static int args_only(struct json_object *args, const char *allowed, struct gmig_qga_error *err)
{
	struct json_object_iterator it = json_object_iter_begin(args);
	struct json_object_iterator end = json_object_iter_end(args);

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *key = json_object_iter_peek_name(&it);

		if (!allowed || strcmp(key, allowed)) {
			gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
					   "Parameter '%s' is unexpected", key);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * An int64 argument.  json-c keeps integers up to UINT64_MAX; QEMU's int visitor refuses what
 * does not fit int64, and so do we.  json-c clamps below INT64_MIN silently, where QEMU would
 * refuse: the one case we cannot tell apart.
 */
static int arg_int(struct json_object *args, const char *name, int64_t *v,
		   struct gmig_qga_error *err)
{
	struct json_object *val;

	if (!json_object_object_get_ex(args, name, &val)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "Parameter '%s' is missing", name);
		return -EINVAL;
	}
	if (!json_object_is_type(val, json_type_int) ||
	    (json_object_get_int64(val) == INT64_MAX &&
	     json_object_get_uint64(val) != (uint64_t)INT64_MAX)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Invalid parameter type for '%s', expected: integer", name);
		return -EINVAL;
	}
	*v = json_object_get_int64(val);
	return 0;
}

static int guest_sync(struct call *c, struct json_object *args, struct json_object **ret,
		      struct gmig_qga_error *err)
{
	int64_t id;
	int rc;

	(void)c;
	rc = arg_int(args, "id", &id, err);
	if (!rc)
		rc = args_only(args, "id", err);
	if (rc)
		return rc;
	*ret = json_object_new_int64(id);
	return *ret ? 0 : -ENOMEM;
}

static int guest_sync_delimited(struct call *c, struct json_object *args,
				struct json_object **ret, struct gmig_qga_error *err)
{
	int rc = guest_sync(c, args, ret, err);

	/* As qemu-ga: only a successful reply carries the sentinel. */
	if (!rc)
		c->delimit = true;
	return rc;
}

static int guest_ping(struct call *c, struct json_object *args, struct json_object **ret,
		      struct gmig_qga_error *err)
{
	(void)c;
	(void)ret;
	return args_only(args, NULL, err);
}

static int guest_info(struct call *c, struct json_object *args, struct json_object **ret,
		      struct gmig_qga_error *err);

static const struct builtin {
	const char	*name;
	builtin_fn	*fn;
} builtins[] = {
	{ "guest-sync-delimited",	guest_sync_delimited },
	{ "guest-sync",			guest_sync },
	{ "guest-ping",			guest_ping },
	{ "guest-info",			guest_info },
};

#define NBUILTINS	(sizeof(builtins) / sizeof(builtins[0]))

/* As qemu-ga's qmp_command_is_enabled(): what a call right now would be allowed to do. */
static bool cmd_enabled(const struct gmig_qga_dispatcher *d, const struct gmig_qga_cmd *cmd)
{
	if (cmd->flags & GMIG_QGA_DISABLED)
		return false;
	return !d->frozen || (cmd->flags & GMIG_QGA_FROZEN_OK);
}

static int info_add(struct json_object *list, const char *name, bool enabled)
{
	struct json_object *e = json_object_new_object();

	if (!e)
		return -ENOMEM;
	if (obj_add_new(e, "name", json_object_new_string(name)) ||
	    obj_add_new(e, "enabled", json_object_new_boolean(enabled)) ||
	    obj_add_new(e, "success-response", json_object_new_boolean(true))) {
		json_object_put(e);
		return -ENOMEM;
	}
	return arr_add(list, e);
}

static int guest_info(struct call *c, struct json_object *args, struct json_object **ret,
		      struct gmig_qga_error *err)
{
	const struct gmig_qga_dispatcher *d = c->d;
	struct json_object *info, *list;
	size_t i;
	int rc;

	rc = args_only(args, NULL, err);
	if (rc)
		return rc;
	info = json_object_new_object();
	if (!info)
		return -ENOMEM;
	if (obj_add_new(info, "version", json_object_new_string(d->version ? d->version : "")))
		goto out_put_info;
	list = json_object_new_array();
	if (obj_add_new(info, "supported_commands", list))
		goto out_put_info;
	for (i = 0; i < NBUILTINS; i++) {
		if (info_add(list, builtins[i].name, true))
			goto out_put_info;
	}
	for (i = 0; i < d->ncmds; i++) {
		if (info_add(list, d->cmds[i].name, cmd_enabled(d, &d->cmds[i])))
			goto out_put_info;
	}
	*ret = info;
	return 0;

out_put_info:
	json_object_put(info);
	return -ENOMEM;
}

static const struct builtin *builtin_find(const char *name)
{
	for (size_t i = 0; i < NBUILTINS; i++) {
		if (!strcmp(builtins[i].name, name))
			return &builtins[i];
	}
	return NULL;
}

static const struct gmig_qga_cmd *cmd_find(const struct gmig_qga_dispatcher *d, const char *name)
{
	for (size_t i = 0; i < d->ncmds; i++) {
		if (!strcmp(d->cmds[i].name, name))
			return &d->cmds[i];
	}
	return NULL;
}

int gmig_qga_dispatcher_check(const struct gmig_qga_dispatcher *d)
{
	for (size_t i = 0; i < d->ncmds; i++) {
		const struct gmig_qga_cmd *cmd = &d->cmds[i];

		if (!cmd->name || !cmd->name[0] || !cmd->handler)
			return -EINVAL;
		if (builtin_find(cmd->name) || cmd_find(d, cmd->name) != cmd)
			return -EEXIST;
	}
	return 0;
}

/* A name with an embedded NUL (json-c keeps "\u0000") must not match its prefix. */
static bool name_whole(const struct gmig_qga_request *req)
{
	struct json_object *val;

	json_object_object_get_ex(req->root, "execute", &val);
	return strlen(req->execute) == (size_t)json_object_get_string_len(val);
}

/*
 * Run the command of a well-formed request.  Returns 0 with the result in *@ret, ANSWER_ERROR
 * when the answer is the error in @err, or -ENOMEM when the dispatcher itself (a built-in
 * included) ran out of memory.  A table handler's own failure, -ENOMEM too, is an answer.
 */
static int call_command(struct call *c, const struct gmig_qga_request *req,
			struct json_object **ret, struct gmig_qga_error *err)
{
	const struct gmig_qga_dispatcher *d = c->d;
	const struct builtin *bi = NULL;
	const struct gmig_qga_cmd *cmd = NULL;
	struct json_object *args;
	int rc;

	if (name_whole(req)) {
		bi = builtin_find(req->execute);
		if (!bi)
			cmd = cmd_find(d, req->execute);
	}
	if (!bi && !cmd) {
		gmig_qga_error_set(err, GMIG_QGA_COMMAND_NOT_FOUND,
				   "The command %s has not been found", req->execute);
		return ANSWER_ERROR;
	}
	/*
	 * QEMU refuses a disabled command with class CommandNotFound and "Command %s has been
	 * disabled: <reason>".  Reasons as qemu-ga words them: "the command is not allowed" for
	 * its allow/block lists; "the agent is in frozen state" is the freeze reason of QEMU 6.0
	 * to 9.0 (9.1 says "not allowed" for both), kept because it tells the client why.
	 */
	if (cmd && (cmd->flags & GMIG_QGA_DISABLED)) {
		gmig_qga_error_set(err, GMIG_QGA_COMMAND_NOT_FOUND,
				   "Command %s has been disabled: the command is not allowed",
				   req->execute);
		return ANSWER_ERROR;
	}
	if (cmd && !cmd_enabled(d, cmd)) {
		gmig_qga_error_set(err, GMIG_QGA_COMMAND_NOT_FOUND,
				   "Command %s has been disabled: the agent is in frozen state",
				   req->execute);
		return ANSWER_ERROR;
	}

	args = req->args ? json_object_get(req->args) : json_object_new_object();
	if (!args)
		return -ENOMEM;
	err->cls[0] = '\0';
	err->desc[0] = '\0';
	if (bi)
		rc = bi->fn(c, args, ret, err);
	else
		rc = cmd->handler(d->ctx, args, ret, err);
	json_object_put(args);
	if (rc >= 0)
		return 0;

	/* QEMU drops a return value that came with an error; so do we. */
	json_object_put(*ret);
	*ret = NULL;
	if (bi && rc == -ENOMEM)
		return -ENOMEM;
	if (!err->desc[0]) {
		/* QEMU's QERR_QGA_COMMAND_FAILED */
		const char *what = strerrordesc_np(-rc);
		char unknown[32];

		if (!what) {
			snprintf(unknown, sizeof(unknown), "Unknown error %d", -rc);
			what = unknown;
		}
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Guest agent command failed, error was '%s'", what);
	} else if (!err->cls[0]) {
		snprintf(err->cls, sizeof(err->cls), "%s", GMIG_QGA_GENERIC_ERROR);
	}
	return ANSWER_ERROR;
}

char *gmig_qga_dispatch(const struct gmig_qga_dispatcher *d, const char *line, size_t len,
			size_t *reply_len)
{
	struct call c = { .d = d };
	struct gmig_qga_request req;
	struct gmig_qga_error err;
	struct json_object *ret = NULL;
	char *reply;
	int rc;

	rc = gmig_qga_request_parse(&req, line, len, &err);
	if (!rc)
		rc = call_command(&c, &req, &ret, &err);
	if (rc == -ENOMEM)
		goto out_clear;
	if (rc)
		reply = gmig_qga_reply_error(&req, &err, reply_len);
	else
		reply = reply_return(&req, ret, c.delimit, reply_len);
	gmig_qga_request_clear(&req);
	return reply;

out_clear:
	gmig_qga_request_clear(&req);
	return NULL;
}
