/*
 * Host channel connections: bytes demultiplexed into frames and JSON lines, the session's
 * HELLO and resume, host requests handed to the migration table, and JSON commands answered.
 */
#ifndef GMIG_AGENT_HOST_H
#define GMIG_AGENT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "gmig/message.h"
#include "gmig/qga.h"

#include "config.h"
#include "demux.h"

struct agent;
struct bufferevent;
struct event;
struct json_object;
struct serial_port;

enum hconn_kind { HC_UNIX, HC_VSOCK, HC_SERIAL };

struct hconn {
	TAILQ_ENTRY(hconn) link;
	struct agent *a;
	struct bufferevent *bev;
	enum hconn_kind kind;
	char peer[CONFIG_PATH_MAX + 32];	/* "host unix#7" for logs */
	struct demux dm;
	uint64_t tx_seq;		/* frames sent outside the session */
	bool closing;			/* flushing its last words, then closed */
	bool eof;			/* the peer sent all it will send */
	bool heard;			/* the peer sent something: worth logging its end */
	bool dead;			/* freed on the way out of the callback */
	bool in_callback;
	struct event *resume_ev;	/* input again after a block */
	struct event *close_timer;	/* bounds the flush of a closing connection */
	struct serial_port *serial;	/* HC_SERIAL: the port it runs on */
	int fail_err;			/* errno of a failed read or write, 0 for a hangup */

	/* A JSON command whose answer comes later; no input is read meanwhile. */
	bool json_deferred;		/* set by a handler during dispatch */
	bool json_wait;
	char *json_line;
	size_t json_len;
	const char *json_cur;		/* the line being dispatched */
	size_t json_cur_len;
};

/*
 * Takes a connected descriptor as a host channel connection; @fd is closed on failure (and on
 * free unless HC_SERIAL, whose port keeps it). NULL when out of memory or over the limit.
 */
struct hconn *hconn_new(struct agent *a, int fd, enum hconn_kind kind, const char *peer,
			struct serial_port *port);
void hconn_free_all(struct agent *a);

/* Sends a message to the host on the session's connection. 0, or -ENOTCONN when detached. */
int host_send(struct agent *a, const struct gmig_msg *m);
/* Whether the session's connection can carry fds (a unix socket, SHM agreed). */
bool host_passes_fds(const struct agent *a);
/*
 * Sends @m with @fd attached (SCM_RIGHTS) on the session's connection. 0; -EAGAIN when output
 * is queued or the socket is full (nothing went: try later); -EOPNOTSUPP when the connection
 * cannot carry fds; or another negative errno (the connection then closes).
 */
int host_send_fd(struct agent *a, const struct gmig_msg *m, int fd);
/* Bytes waiting in the session connection's output buffer; 0 when detached. */
size_t host_out_len(struct agent *a);
/* Reads the session connection's input again (a slot became free); from the loop. */
void host_unblock(struct agent *a);

/*
 * The answer of a deferred JSON command on @c: rc 0 with @ret (consumed; NULL for {}), or a
 * negative errno with @desc for the error reply.
 */
void host_json_answer(struct hconn *c, int rc, struct json_object *ret, const char *desc);
/* Called by a command handler that answers later through host_json_answer(). */
void host_json_defer(struct hconn *c);
/* The connection is going away: a step that waits on it must forget it. */
void host_json_forget(struct agent *a, struct hconn *c);

#endif
