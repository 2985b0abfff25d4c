/* Check suite: the host channels besides the unix socket: a serial port (a pty here) and vsock where it exists. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

static int open_pty(char *slave, size_t cap)
{
	int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	struct termios t;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(grantpt(fd), 0);
	ck_assert_int_eq(unlockpt(fd), 0);
	ck_assert_int_eq(ptsname_r(fd, slave, cap), 0);
	ck_assert_int_eq(tcgetattr(fd, &t), 0);
	cfmakeraw(&t);
	ck_assert_int_eq(tcsetattr(fd, TCSANOW, &t), 0);
	return fd;
}

/* Reads from the pty master until a newline; a frame's bytes pass through untouched. */
static size_t pty_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		ck_assert_msg(poll(&p, 1, TL_TIMEOUT_MS) == 1, "no reply on the serial port");
		r = read(fd, buf + n, 1);
		ck_assert_int_eq(r, 1);
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return n;
}

/* The agent serves JSON and frames on the port; the host may come and go. */
START_TEST(test_serial)
{
	static const char ping[] = "{\"execute\":\"guest-ping\",\"id\":\"s\"}\n";
	struct harness h;
	struct fhost fh;
	char slave[64], conf[128], reply[1024];
	struct gmig_msg m;
	int master;

	master = open_pty(slave, sizeof(slave));
	snprintf(conf, sizeof(conf), "serial = %s", slave);
	harness_start(&h, conf);

	/* The pty is in raw mode on the agent's side: the JSON line comes back as sent. */
	ck_assert_int_eq(write(master, ping, strlen(ping)), (ssize_t)strlen(ping));
	pty_line(master, reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{},\"id\":\"s\"}");

	/* A session over the port; fhost speaks through the master. */
	memset(&fh, 0, sizeof(fh));
	fh.fd = master;
	fh.buf = malloc(GMIG_PAYLOAD_MAX);
	ck_assert_ptr_nonnull(fh.buf);
	gmig_decoder_init(&fh.dec, fh.buf, GMIG_PAYLOAD_MAX);
	fhost_hello(&fh, false, NULL);
	host_simple(&fh, GMIG_MSG_INV_REQUEST);
	fhost_expect(&fh, &m, GMIG_MSG_INV_GPUS);
	ck_assert_uint_eq(m.u.inv_gpus.clients, 0);
	free(fh.buf);

	/* The host side goes away: the agent lets the port go and keeps serving the others. */
	close(master);
	usleep(100 * 1000);
	ck_assert(harness_alive(&h));
	fhost_open(&fh, &h);
	fhost_json(&fh, "{\"execute\":\"gmig-status\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"state\":\"detached\""), "%s", reply);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A port that does not exist yet is waited for, not fatal. */
START_TEST(test_serial_missing)
{
	struct harness h;
	struct fhost fh;
	char reply[256];

	harness_start(&h, "serial = /dev/virtio-ports/org.gmig.test.absent");
	fhost_open(&fh, &h);
	fhost_json(&fh, "{\"execute\":\"guest-ping\"}", reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{}}");
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* vsock on: where the guest has none, the agent logs it and serves its other channels. */
START_TEST(test_vsock_optional)
{
	struct harness h;
	struct fhost fh;
	char conf[64], reply[256];

	srand((unsigned int)time(NULL) ^ (unsigned int)getpid());
	snprintf(conf, sizeof(conf), "vsock_port = %d", 20000 + rand() % 20000);
	harness_start(&h, conf);
	fhost_open(&fh, &h);
	fhost_json(&fh, "{\"execute\":\"guest-ping\"}", reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{}}");
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

static Suite *channels_suite(void)
{
	Suite *s = suite_create("agent-channels");
	TCase *tc = tcase_create("channels");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_serial);
	tcase_add_test(tc, test_serial_missing);
	tcase_add_test(tc, test_vsock_optional);
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(channels_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
