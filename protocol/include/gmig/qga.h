/* The QEMU guest agent's JSON dialect as gmig speaks it: lines, requests, replies, dispatch. */
#ifndef GMIG_QGA_H
#define GMIG_QGA_H

#include <stdbool.h>
#include <stddef.h>

#include "gmig/limits.h"

struct json_object;

#define GMIG_QGA_LINE_BUF	(GMIG_QGA_LINE_MAX + 1)	/* longest line and its NUL */
#define GMIG_QGA_DEPTH_MAX	1024		/* JSON nesting, as QEMU's MAX_NESTING */
#define GMIG_QGA_SENTINEL	0xff		/* client's reset; delimited reply's prefix */
#define GMIG_QGA_CLASS_MAX	32		/* error class, NUL included */
#define GMIG_QGA_DESC_MAX	GMIG_TEXT_MAX	/* error description, NUL included */

/* The error classes qemu-ga emits today; clients must not parse the description. */
#define GMIG_QGA_GENERIC_ERROR		"GenericError"
#define GMIG_QGA_COMMAND_NOT_FOUND	"CommandNotFound"

struct gmig_qga_error {
	char	cls[GMIG_QGA_CLASS_MAX];	/* the reply's "class" */
	char	desc[GMIG_QGA_DESC_MAX];	/* the reply's "desc", valid UTF-8 */
};

/*
 * Fill @err; the description is cut at GMIG_QGA_DESC_MAX on a UTF-8 character boundary.
 * Handlers use this to report failure.
 */
void gmig_qga_error_set(struct gmig_qga_error *err, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Line assembler for a byte stream cut at arbitrary points.  A newline ends a request and a
 * '\r' just before it is dropped; blank lines are skipped; GMIG_QGA_SENTINEL discards any
 * partial line (qemu-ga's reset, sent by clients before guest-sync-delimited).  A line longer
 * than the cap is reported once and its rest, up to the next newline, is dropped.
 */
struct gmig_qga_lines {
	char	*buf;		/* caller's buffer: cap bytes of line and a NUL */
	size_t	cap;		/* longest line kept, at most GMIG_QGA_LINE_MAX */
	size_t	len;		/* bytes of the line being assembled */
	bool	cr;		/* a '\r' was seen and is held back until the next byte */
	bool	skip;		/* dropping the tail of an over-long line */
	bool	ready;		/* buf holds a line handed out by the last feed */
};

/*
 * Assemble into @buf of @size bytes: lines up to min(@size - 1, GMIG_QGA_LINE_MAX) bytes.
 * Returns 0, or -EINVAL when @buf is NULL or @size < 2.
 */
int gmig_qga_lines_init(struct gmig_qga_lines *ls, char *buf, size_t size);
/* Forget any partial line, as a fresh connection would. */
void gmig_qga_lines_reset(struct gmig_qga_lines *ls);
/*
 * Take bytes from @data until one request line is complete.  Returns 1 with the line in
 * *@line (NUL-terminated, line ending removed, valid until the next feed or reset) and its
 * length in *@line_len; 0 when all of @data was taken without completing a line; -EMSGSIZE
 * once for a line over the cap.  *@used says how many bytes were taken; feed the rest next.
 */
int gmig_qga_lines_feed(struct gmig_qga_lines *ls, const void *data, size_t len,
			size_t *used, const char **line, size_t *line_len);

/*
 * One request line, {"execute": name, "arguments": {...}, "id": any}, checked as QEMU's
 * qmp_dispatch() checks it.  Everything below points into @root.
 */
struct gmig_qga_request {
	struct json_object	*root;		/* owns the parsed line; NULL if unparsed */
	const char		*execute;	/* command name; NULL until found */
	struct json_object	*args;		/* "arguments", an object; NULL if absent */
	struct json_object	*id;		/* "id"; NULL if absent or JSON null */
	bool			has_id;		/* "id" present: echo it, even null */
};

/*
 * Parse @line of @len bytes (no NUL needed).  Returns 0; -EBADMSG with @err filled as qemu-ga
 * would answer (has_id and id still tell whether the reply must carry an id); -EMSGSIZE with
 * @err filled when @len exceeds GMIG_QGA_LINE_MAX; or -ENOMEM.  Call gmig_qga_request_clear()
 * afterwards whatever it returned.
 */
int gmig_qga_request_parse(struct gmig_qga_request *req, const char *line, size_t len,
			   struct gmig_qga_error *err);
void gmig_qga_request_clear(struct gmig_qga_request *req);

/*
 * Replies, one line each: {"return": @ret, "id": ...} or {"error": {"class", "desc"}, "id": ...}.
 * The id is echoed when @req had one; @req may be NULL when the line did not parse far enough.
 * @ret is borrowed; NULL stands for {}.  Returns a malloc'd buffer ending in "\n" (and a NUL
 * not counted in *@len), or NULL when out of memory.
 */
char *gmig_qga_reply_return(const struct gmig_qga_request *req, struct json_object *ret,
			    size_t *len);
char *gmig_qga_reply_error(const struct gmig_qga_request *req, const struct gmig_qga_error *err,
			   size_t *len);
/* The error reply for a line that gmig_qga_lines_feed() reported as -EMSGSIZE. */
char *gmig_qga_reply_oversize(size_t *len);

/*
 * A command handler.  @args is always an object (empty when the request had none) and is
 * borrowed.  On success return 0 and leave a new reference in *@ret, or NULL for {}.  On
 * failure return a negative errno and fill @err; left empty, the reply says "Guest agent
 * command failed, error was '<strerror>'", class GenericError.
 */
typedef int gmig_qga_handler_fn(void *ctx, struct json_object *args, struct json_object **ret,
				struct gmig_qga_error *err);

enum gmig_qga_cmd_flags {
	GMIG_QGA_FROZEN_OK	= 1u << 0,	/* may run while frozen (qemu-ga 'fs-frozen') */
	GMIG_QGA_DISABLED	= 1u << 1,	/* refused, as qemu-ga's --block-rpcs does */
};

struct gmig_qga_cmd {
	const char		*name;		/* gmig's own commands are named gmig-* */
	unsigned int		flags;		/* enum gmig_qga_cmd_flags */
	gmig_qga_handler_fn	*handler;
};

/*
 * The caller's dispatch state.  Built in ahead of the table: guest-sync, guest-sync-delimited,
 * guest-ping and guest-info, all allowed while frozen; a table entry with one of their names is
 * never reached.
 */
struct gmig_qga_dispatcher {
	const struct gmig_qga_cmd	*cmds;		/* const table, ncmds entries */
	size_t				ncmds;
	const char			*version;	/* guest-info "version" */
	void				*ctx;		/* passed to every handler */
	bool				frozen;		/* only FROZEN_OK may run */
};

/*
 * Check the table: 0, -EINVAL for an entry without a name or handler, -EEXIST for a name
 * that repeats or shadows a built-in.
 */
int gmig_qga_dispatcher_check(const struct gmig_qga_dispatcher *d);
/*
 * Answer one request line (as gmig_qga_lines_feed() hands it out): parse errors, unknown,
 * disabled and frozen-refused commands, built-ins and table commands.  Returns the reply as
 * gmig_qga_reply_return() does, prefixed with GMIG_QGA_SENTINEL for a successful
 * guest-sync-delimited; the caller frees it.  NULL when out of memory.
 */
char *gmig_qga_dispatch(const struct gmig_qga_dispatcher *d, const char *line, size_t len,
			size_t *reply_len);

#endif
