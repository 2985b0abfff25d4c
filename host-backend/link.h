/*
 * A framed connection on a libevent bufferevent: connecting (with the hybrid vsock
 * "CONNECT <port>" handshake where the address asks for it), frames decoded from the byte
 * stream and handed to the owner one at a time, frames encoded into the output, input paused
 * and resumed for back-pressure, and an orderly close after the last words drain.
 *
 * Callbacks run from the event loop; the owner may free the link inside any of them.
 */
#ifndef GMIG_HOST_LINK_H
#define GMIG_HOST_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/message.h"

#include "addr.h"

struct bufferevent;
struct event;
struct event_base;

#define LINK_PEER_MAX		96		/* "guest vm1 (unix:/run/x.sock)" for logs */
#define LINK_READ_HIGH		(8u << 20)	/* input read ahead of the decoder */
#define LINK_HANDSHAKE_MAX	64		/* bytes of the hybrid vsock "OK <port>" line */
#define LINK_CLOSE_MS		2000		/* last words may take this long to drain */
#define LINK_IO_MAX		(1u << 20)	/* bytes moved by one read or write call */
#define LINK_FDS_MAX		8		/* fds received and not yet taken, on a unix link */

/* The frame callback's answer. */
#define LINK_CONTINUE	0
#define LINK_PAUSE	1	/* stop reading until link_resume() */

struct link_ops {
	/* Connected, and the handshake (if any) done. */
	void (*up)(void *ctx);
	/* One whole, checksummed frame; its payload lives until the callback returns. */
	int (*frame)(void *ctx, const struct gmig_frame *f);
	/* The link is closed (@err 0 after an orderly close, else negative) and dead. */
	void (*down)(void *ctx, int err, const char *why);
	/* The output fell under the low watermark set with link_set_low_water(). */
	void (*drained)(void *ctx);
};

enum link_state { LS_CONNECTING, LS_HANDSHAKE, LS_OPEN, LS_CLOSING, LS_DEAD };

struct link {
	struct event_base *base;
	struct bufferevent *bev;
	const struct link_ops *ops;
	void *ctx;
	char peer[LINK_PEER_MAX];
	enum link_state state;
	struct gmig_decoder dec;
	uint8_t *payload;		/* the decoder's buffer, GMIG_PAYLOAD_MAX bytes */
	uint32_t hv_port;		/* hybrid vsock port to CONNECT to; 0: none */
	struct event *timer;		/* connect deadline; the close deadline */
	struct event *kick;		/* reads buffered input again after a pause */
	bool paused;
	int in_cb;			/* depth of callbacks into the owner */
	bool free_pending;		/* freed by the owner inside a callback */
	int close_err;			/* what ops->down hears after an orderly close */
	char why[128];			/* and why */
	uint64_t rx_bytes, tx_bytes, rx_frames, tx_frames;
	/* A unix socket reads with recvmsg() itself, so that fds sent along are kept. */
	struct event *rd;		/* NULL: the bufferevent reads */
	int fds[LINK_FDS_MAX];		/* received, oldest first, until taken */
	unsigned int nfds;
	bool detached;			/* on the list of links closing without an owner */
	struct link *next_detached, **prev_detached;
};

/*
 * Connects to @a; @ops->up runs once connected and, for hvsock, once the hybrid vsock
 * handshake is through, all within @timeout_ms (else @ops->down with -ETIMEDOUT).
 * NULL with errno set when it cannot even start.
 */
struct link *link_connect(struct event_base *base, const struct gaddr *a, const char *peer,
			  uint32_t timeout_ms, const struct link_ops *ops, void *ctx);

/* Connects to a TCP peer; otherwise as link_connect(). */
struct link *link_connect_tcp(struct event_base *base, const char *host, uint16_t port,
			      const char *peer, uint32_t timeout_ms, const struct link_ops *ops,
			      void *ctx);

/* Takes an accepted socket @fd (closed on failure). Open at once; no up callback. */
struct link *link_accept(struct event_base *base, int fd, const char *peer,
			 const struct link_ops *ops, void *ctx);

/* Closes at once and frees; no callback runs afterwards. NULL is fine. */
void link_free(struct link *l);

/* Stops reading, lets the output drain (at most LINK_CLOSE_MS), then ops->down(0). */
void link_close(struct link *l, const char *why);

/*
 * As link_close(), but the owner lets go now: no callback runs any more, and the link frees
 * itself once its last words are out. NULL is fine.
 */
void link_close_detached(struct link *l, const char *why);

/* Frees every detached link still draining (daemon exit). */
void link_free_detached(void);

/*
 * Encodes @m as one frame: @h gives version, session and seq; type, length and checksum are
 * filled in. 0, -ENOTCONN when the link is not open, -EINVAL for a message the codec refuses,
 * -ENOMEM. A frame is added whole or not at all.
 */
int link_send(struct link *l, const struct gmig_hdr *h, const struct gmig_msg *m);

/* As link_send(), and hands back the encoded payload (for the peer HMAC over HELLO). */
int link_send_copy(struct link *l, const struct gmig_hdr *h, const struct gmig_msg *m,
		   uint8_t *payload, size_t cap, size_t *len);

/* Sends ERROR (@code < 0, @text) and closes after it drains. */
void link_refuse(struct link *l, int code, uint16_t ref_type, uint64_t ref_seq, const char *text);

/* Bytes waiting in the output buffer. */
size_t link_out_len(const struct link *l);
/* ops->drained runs whenever the output falls to @bytes or below. */
void link_set_low_water(struct link *l, size_t bytes);

void link_pause(struct link *l);
void link_resume(struct link *l);

/*
 * The oldest fd received along with the frames (SCM_RIGHTS on a unix socket), now the
 * caller's; -1 when none is waiting. Fds arrive no later than the frame that names them.
 */
int link_take_fd(struct link *l);
/* Whether the link is a unix socket, which carries fds. */
bool link_is_unix(const struct link *l);

/* Accept only frames of protocol versions [min, max] from now on. */
void link_set_versions(struct link *l, uint8_t min, uint8_t max);


/* Fills @m as ERROR: @code (negative), the frame it answers, and @text cut at GMIG_TEXT_MAX. */
void msg_error(struct gmig_msg *m, int code, uint16_t ref_type, uint64_t ref_seq, const char *text);

#endif
