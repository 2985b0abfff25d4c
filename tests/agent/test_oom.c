/*
 * Check suite: gmig-agent with the n-th allocation or output failing ($GMIG_AGENT_FAULT), for
 * each n a migration step sequence touches: the agent stays up and exits clean (no leak under
 * the sanitizers), whatever the answers were.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define POINTS_MAX	48	/* the sequence below passes 42 (see the agent's debug log) */

/* Sends without asserting: the agent may have dropped the connection on purpose. */
static void try_send(struct fhost *fh, const struct gmig_msg *m)
{
	static uint8_t buf[4096];
	struct gmig_hdr h = { .version = 1, .session = fh->session, .seq = ++fh->seq };
	long n = gmig_msg_encode(buf, sizeof(buf), &h, m);

	ck_assert_int_gt(n, 0);
	if (fh->fd >= 0 && write(fh->fd, buf, (size_t)n) != n)
		fhost_drop(fh);
}

/* Reads frames until one of type @until, an ERROR, silence or a close. */
static void drain(struct fhost *fh, uint16_t until, int timeout_ms)
{
	struct gmig_msg m;

	while (fh->fd >= 0) {
		int rc = fhost_recv(fh, &m, timeout_ms);

		if (rc == -EPIPE || rc == -ETIMEDOUT || rc < 0)
			return;
		if (m.type == GMIG_MSG_WELCOME) {
			fh->session = m.u.welcome.session;
			memcpy(fh->token, m.u.welcome.token, sizeof(fh->token));
		}
		if (m.type == until || m.type == GMIG_MSG_ERROR)
			return;
	}
}

static void step(struct fhost *fh, uint16_t type, uint32_t arg, uint16_t until)
{
	struct gmig_msg m = { .type = type };

	if (type == GMIG_MSG_FREEZE)
		m.u.freeze.deadline_ms = arg;
	if (type == GMIG_MSG_ROUND_BEGIN) {
		m.u.round_begin.round = arg;
		m.u.round_begin.base = arg - 1;
	}
	if (type == GMIG_MSG_HELLO) {
		m.u.hello = (struct gmig_hello){ .min_version = 1, .max_version = 1,
						 .role = GMIG_ROLE_HOST, .caps = GMIG_CAP_LZ4 };
		fh->seq = 0;
		fh->session = 0;
	}
	try_send(fh, &m);
	drain(fh, until, 1000);
}

/* A guest-ping on a new connection, without asserting; true when answered. */
static bool pings(struct harness *h, struct fhost *fh)
{
	static const char ping[] = "{\"execute\":\"guest-ping\"}\n";
	struct pollfd p;
	char reply[64];
	ssize_t n;

	fhost_reconnect(fh, h);
	if (write(fh->fd, ping, sizeof(ping) - 1) != (ssize_t)sizeof(ping) - 1)
		return false;
	p = (struct pollfd){ .fd = fh->fd, .events = POLLIN };
	if (poll(&p, 1, 2000) != 1)
		return false;
	n = read(fh->fd, reply, sizeof(reply) - 1);
	return n == 14 && !memcmp(reply, "{\"return\":{}}\n", 14);
}

START_TEST(test_fault_point)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	char n[16];

	snprintf(n, sizeof(n), "%d", _i);
	setenv("GMIG_AGENT_FAULT", n, 1);
	harness_start(&h, "log_level = error\nrequest_timeout_ms = 1000");
	unsetenv("GMIG_AGENT_FAULT");
	fclient_start(&fc, &h, FC_NORMAL, 1, 128u << 10);
	fc_wait(&fc.sh->welcomed, 1, 1000);

	fhost_open(&fh, &h);
	step(&fh, GMIG_MSG_HELLO, 0, GMIG_MSG_WELCOME);
	step(&fh, GMIG_MSG_INV_REQUEST, 0, GMIG_MSG_INV_CLIENT);
	step(&fh, GMIG_MSG_ROUND_BEGIN, 1, GMIG_MSG_ROUND_END);
	step(&fh, GMIG_MSG_FREEZE, 1000, GMIG_MSG_FROZEN);
	step(&fh, GMIG_MSG_FREEZE, 1000, GMIG_MSG_FROZEN);
	step(&fh, GMIG_MSG_THAW, 0, GMIG_MSG_THAWED);
	fhost_drop(&fh);

	/* Up, and answering (twice at most: the fault may fall on the first try). */
	ck_assert_msg(harness_alive(&h), "fault point %d killed the agent", _i);
	ck_assert_msg(pings(&h, &fh) || pings(&h, &fh), "fault point %d: no answer", _i);
	fhost_close(&fh);
	fclient_stop(&fc);
	ck_assert_msg(harness_stop(&h) == 0, "fault point %d: unclean exit", _i);
}
END_TEST

static Suite *oom_suite(void)
{
	Suite *s = suite_create("agent-oom");
	TCase *tc = tcase_create("oom");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_fault_point, 1, POINTS_MAX + 1);
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(oom_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
