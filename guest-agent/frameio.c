/* Writing gmig messages as frames: into a libevent output buffer, or straight to a socket with a file descriptor. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "frameio.h"
#include "fault.h"

/* The fixed part of every message is far smaller than this; the tails travel apart. */
#define HEAD_MAX	(GMIG_HDR_SIZE + 256)

int frame_put(struct evbuffer *out, struct gmig_hdr *hdr, const struct gmig_msg *m)
{
	const struct gmig_tail *tail = gmig_msg_tail(m);
	uint8_t head[HEAD_MAX];
	long n = gmig_msg_encode_head(head, sizeof(head), hdr, m);
	size_t tlen = tail ? tail->len : 0;

	if (n < 0)
		return (int)n;
	/* Room first, so that a frame is added whole or not at all. */
	if (fault_hit() || evbuffer_expand(out, (size_t)n + tlen))
		return -ENOMEM;
	if (evbuffer_add(out, head, (size_t)n))
		return -ENOMEM;
	if (tlen && evbuffer_add(out, tail->ptr, tlen))
		return -ENOMEM;
	return 0;
}

/* Sends a frame with @fd attached; the bytes written, or -errno. */
static long send_with_fd(int sock, struct gmig_hdr *hdr, const struct gmig_msg *m, int fd,
			 uint8_t *buf, size_t cap, long *len)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;
	long n = gmig_msg_encode(buf, cap, hdr, m);
	ssize_t w;

	*len = n;
	if (n < 0)
		return n;
	iov.iov_base = buf;
	iov.iov_len = (size_t)n;
	memset(&ctl, 0, sizeof(ctl));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));

	do {
		w = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (w < 0 && errno == EINTR);
	return w < 0 ? -errno : (long)w;
}

int frame_send_fd(int sock, struct gmig_hdr *hdr, const struct gmig_msg *m, int fd)
{
	uint8_t buf[HEAD_MAX];
	long n, w = send_with_fd(sock, hdr, m, fd, buf, sizeof(buf), &n);

	if (w < 0)
		return (int)w;
	return w == n ? 0 : -EAGAIN;
}

int frame_send_fd_rest(int sock, struct gmig_hdr *hdr, const struct gmig_msg *m, int fd,
		       struct evbuffer *rest)
{
	uint8_t buf[HEAD_MAX];
	long n, w = send_with_fd(sock, hdr, m, fd, buf, sizeof(buf), &n);

	if (w == -EWOULDBLOCK)
		return -EAGAIN;
	if (w < 0)
		return (int)w;
	/* The fd went with the first byte: the rest follows as plain bytes, in order. */
	if (w < n && evbuffer_add(rest, buf + w, (size_t)(n - w)))
		return -ENOMEM;
	return 0;
}

void msg_error(struct gmig_msg *m, int code, uint16_t ref_type, uint64_t ref_seq, const char *text)
{
	size_t len = strlen(text);

	memset(m, 0, sizeof(*m));
	m->type = GMIG_MSG_ERROR;
	m->u.error.code = code < 0 ? code : -EIO;
	m->u.error.ref_type = ref_type;
	m->u.error.ref_seq = ref_seq;
	m->u.error.tail.ptr = (const uint8_t *)text;
	m->u.error.tail.len = (uint32_t)(len > GMIG_TEXT_MAX ? GMIG_TEXT_MAX : len);
}
