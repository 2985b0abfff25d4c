/* Writing gmig messages as frames: into a libevent output buffer, or straight to a socket with a file descriptor. */
#ifndef GMIG_AGENT_FRAMEIO_H
#define GMIG_AGENT_FRAMEIO_H

#include <stdint.h>

#include "gmig/message.h"

struct evbuffer;


/*
 * Encodes @m as one frame at the end of @out; @hdr gives version, session and seq, and gets
 * type, length and checksum. 0, -EINVAL for a message the codec refuses, or -ENOMEM.
 * Nothing is added on failure.
 */
int frame_put(struct evbuffer *out, struct gmig_hdr *hdr, const struct gmig_msg *m);

/*
 * Sends @m as one frame on the socket @sock with @fd attached (SCM_RIGHTS), for a socket whose
 * output buffer in user space is empty. 0, or a negative errno; -EAGAIN when the socket took
 * only part of it.
 */
int frame_send_fd(int sock, struct gmig_hdr *hdr, const struct gmig_msg *m, int fd);

/*
 * As frame_send_fd(), for a socket with an output buffer @rest that is empty: what the socket
 * did not take goes to @rest, in order. 0; -EAGAIN when the socket took nothing (neither the
 * frame nor the fd went: try later); or a negative errno.
 */
int frame_send_fd_rest(int sock, struct gmig_hdr *hdr, const struct gmig_msg *m, int fd,
		       struct evbuffer *rest);

/* Fills @m as ERROR: @code (negative), the frame it answers, and @text cut at GMIG_TEXT_MAX. */
void msg_error(struct gmig_msg *m, int code, uint16_t ref_type, uint64_t ref_seq, const char *text);

#endif
