/* Check suite: hostile clients on the client socket: every breach drops the client, never the agent. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gmig/message.h"

#include "testlib.h"

/* A client driven by hand: HELLO sent, WELCOME and STAGING read (the memfd is closed). */
struct raw {
	int fd;
	uint64_t session, seq;
	struct gmig_decoder dec;
	uint8_t buf[1 << 16];
	uint8_t in[1 << 16];
	size_t off, len;
};

static int raw_recv(struct raw *r, struct gmig_msg *m, struct gmig_frame *f)
{
	for (;;) {
		size_t used;
		int rc;

		if (r->off == r->len) {
			char ctl[CMSG_SPACE(sizeof(int))];
			struct iovec iov = { r->in, sizeof(r->in) };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
					     .msg_controllen = sizeof(ctl) };
			struct pollfd p = { .fd = r->fd, .events = POLLIN };
			struct cmsghdr *cm;
			ssize_t n;

			if (poll(&p, 1, TL_TIMEOUT_MS) != 1)
				return -ETIMEDOUT;
			n = recvmsg(r->fd, &mh, MSG_CMSG_CLOEXEC);
			if (n <= 0)
				return -EPIPE;
			for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
				close(fd);
			}
			r->off = 0;
			r->len = (size_t)n;
		}
		rc = gmig_decoder_feed(&r->dec, r->in + r->off, r->len - r->off, &used, f);
		r->off += used;
		if (rc < 0)
			return rc;
		if (rc == 1)
			return gmig_msg_decode(f, m);
	}
}

static void raw_send(struct raw *r, const struct gmig_msg *m, uint64_t session)
{
	uint8_t out[4096];
	struct gmig_hdr h = { .version = 1, .session = session, .seq = ++r->seq };
	long n = gmig_msg_encode(out, sizeof(out), &h, m);

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(write(r->fd, out, (size_t)n), n);
}

/* Connects and says HELLO; returns the answer's type (WELCOME, or ERROR for a refusal). */
static uint16_t raw_open(struct raw *r, struct harness *h)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct gmig_msg m = { .type = GMIG_MSG_HELLO };
	struct gmig_frame f;

	memset(r, 0, sizeof(*r));
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", h->client_path);
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(r->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	gmig_decoder_init(&r->dec, r->buf, sizeof(r->buf));
	m.u.hello = (struct gmig_hello){ .min_version = 1, .max_version = 1,
					 .role = GMIG_ROLE_CLIENT, .caps = GMIG_CAP_SHM };
	memcpy(m.u.hello.name, "raw", 4);
	raw_send(r, &m, 0);
	ck_assert_int_eq(raw_recv(r, &m, &f), 0);
	if (m.type != GMIG_MSG_WELCOME)
		return m.type;
	r->session = m.u.welcome.session;
	ck_assert_int_eq(raw_recv(r, &m, &f), 0);
	ck_assert_uint_eq(m.type, GMIG_MSG_STAGING);
	return GMIG_MSG_WELCOME;
}

/* The agent hangs up (after an ERROR, maybe) within the timeout. */
static bool raw_dropped(struct raw *r)
{
	struct gmig_msg m;
	struct gmig_frame f;
	int rc;

	do {
		rc = raw_recv(r, &m, &f);
	} while (rc == 0 || rc == -EPROTO);
	return rc == -EPIPE;
}

enum breach {
	B_SLOT_RANGE,		/* STAGED in an agent-to-client slot */
	B_SLOT_LENGTH,		/* STAGED longer than a slot */
	B_NO_ROUND,		/* STAGED with no round asked */
	B_SLOT_FREE,		/* SLOT_FREE for a slot it was not given */
	B_ANSWER,		/* THAWED for nothing */
	B_SESSION,		/* another session's id */
	B_HELLO,		/* HELLO again */
	B_GARBAGE,		/* not a frame */
	B_HOST_ONLY,		/* a request only hosts send */
};

static const struct breach_row {
	enum breach b;
} breach_rows[] = {
	/* 1 */ { B_SLOT_RANGE },
	/* 2 */ { B_SLOT_LENGTH },
	/* 3 */ { B_NO_ROUND },
	/* 4 */ { B_SLOT_FREE },
	/* 5 */ { B_ANSWER },
	/* 6 */ { B_SESSION },
	/* 7 */ { B_HELLO },
	/* 8 */ { B_GARBAGE },
	/* 9 */ { B_HOST_ONLY },
};

START_TEST(test_breach)
{
	const struct breach_row *row = &breach_rows[_i];
	struct harness h;
	struct raw r;
	struct fhost fh;
	struct gmig_msg m = { 0 };
	uint64_t session;

	harness_start(&h, NULL);
	ck_assert_uint_eq(raw_open(&r, &h), GMIG_MSG_WELCOME);
	session = r.session;
	switch (row->b) {
	case B_SLOT_RANGE:
	case B_SLOT_LENGTH:
	case B_NO_ROUND:
		m.type = GMIG_MSG_STAGED;
		m.u.staged = (struct gmig_staged){ .region = 1, .length = 4096,
						   .encoding = GMIG_ENC_RAW, .epoch = 1 };
		if (row->b == B_SLOT_RANGE)
			m.u.staged.slot = 2;
		if (row->b == B_SLOT_LENGTH)
			m.u.staged.length = 32768;
		break;
	case B_SLOT_FREE:
		m.type = GMIG_MSG_SLOT_FREE;
		m.u.slot.slot = 3;
		break;
	case B_ANSWER:
		m.type = GMIG_MSG_THAWED;
		m.u.clients.clients = 1;
		break;
	case B_SESSION:
		m.type = GMIG_MSG_PING;
		session ^= 0x10;
		break;
	case B_HELLO:
		m.type = GMIG_MSG_HELLO;
		m.u.hello = (struct gmig_hello){ .min_version = 1, .max_version = 1,
						 .role = GMIG_ROLE_CLIENT, .caps = GMIG_CAP_SHM };
		break;
	case B_GARBAGE:
		ck_assert_int_eq(write(r.fd, "GARBAGE GARBAGE GARBAGE GARBAGE GARBAGE!", 40), 40);
		break;
	case B_HOST_ONLY:
		m.type = GMIG_MSG_FREEZE;
		m.u.freeze.deadline_ms = 10;
		break;
	}
	if (m.type)
		raw_send(&r, &m, session);
	ck_assert_msg(raw_dropped(&r), "row %d: the client was not dropped", _i + 1);
	close(r.fd);

	/* The agent goes on, and takes the next client (the same process may connect again). */
	ck_assert(harness_alive(&h));
	ck_assert_uint_eq(raw_open(&r, &h), GMIG_MSG_WELCOME);
	close(r.fd);		/* it would not answer the inventory; gone, it is not waited for */
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	ck_assert_uint_eq(host_inventory(&fh, NULL), 0);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* One connection per process: a second one is refused, the first keeps its place. */
START_TEST(test_second_connection)
{
	struct harness h;
	struct raw first, second;
	struct fhost fh;
	struct gmig_msg m = { .type = GMIG_MSG_INV_CLIENT };
	uint8_t rec[GMIG_REC_region_SIZE];
	struct gmig_rec_region reg = { .id = 1, .va = 1ull << 40, .size = 1 << 20, .chunk = 65536 };

	harness_start(&h, NULL);
	ck_assert_uint_eq(raw_open(&first, &h), GMIG_MSG_WELCOME);
	ck_assert_uint_eq(raw_open(&second, &h), GMIG_MSG_ERROR);
	ck_assert(raw_dropped(&second));
	close(second.fd);
	/* Unasked, an INV_CLIENT updates what the agent knows of it. */
	ck_assert_int_gt(gmig_rec_put_region(rec, &reg), 0);
	m.u.inv_client = (struct gmig_inv_client){ .index = 0, .count = 1, .pid = (uint32_t)getpid(),
						   .tail = { rec, sizeof(rec) } };
	raw_send(&first, &m, first.session);
	usleep(50 * 1000);
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	/* It answers the agent's INV_REQUEST with the same inventory. */
	host_simple(&fh, GMIG_MSG_INV_REQUEST);
	{
		struct gmig_msg req;
		struct gmig_frame f;

		ck_assert_int_eq(raw_recv(&first, &req, &f), 0);
		ck_assert_uint_eq(req.type, GMIG_MSG_INV_REQUEST);
		raw_send(&first, &m, first.session);
	}
	fhost_expect(&fh, &m, GMIG_MSG_INV_GPUS);
	ck_assert_uint_eq(m.u.inv_gpus.clients, 1);
	fhost_expect(&fh, &m, GMIG_MSG_INV_CLIENT);
	ck_assert_uint_eq(m.u.inv_client.pid, (uint32_t)getpid());
	ck_assert_str_eq(m.u.inv_client.name, "raw");
	ck_assert_uint_eq(gmig_rec_count(&m.u.inv_client.tail, GMIG_REC_region_SIZE), 1);
	close(first.fd);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

static Suite *clients_suite(void)
{
	Suite *s = suite_create("agent-clients");
	TCase *tc = tcase_create("clients");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_breach, 0, sizeof(breach_rows) / sizeof(breach_rows[0]));
	tcase_add_test(tc, test_second_connection);
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(clients_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
