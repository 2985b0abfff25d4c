/* Guest and peer addresses: every kind parses to its canonical text; malformed ones are refused. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "addr.h"

static const struct {
	const char *text;
	int rc;
	enum addr_kind kind;
	const char *canon;	/* or a part of the error */
} rows[] = {
	/* 0 */ { "vsock:3:9190", 0, ADDR_VSOCK, "vsock:3:9190" },
	/* 1 */ { "vsock:4294967294:1", 0, ADDR_VSOCK, "vsock:4294967294:1" },
	/* 2 */ { "hvsock:/run/fc/v.sock:9190", 0, ADDR_HVSOCK, "hvsock:/run/fc/v.sock:9190" },
	/* 3 */ { "hvsock:/odd:name.sock:52", 0, ADDR_HVSOCK, "hvsock:/odd:name.sock:52" },
	/* 4 */ { "serial:/var/lib/libvirt/qemu/c.sock", 0, ADDR_SERIAL,
		  "serial:/var/lib/libvirt/qemu/c.sock" },
	/* 5 */ { "unix:/tmp/a.sock", 0, ADDR_UNIX, "unix:/tmp/a.sock" },
	/* 6 */ { "tcp:127.0.0.1:9190", 0, ADDR_TCP, "tcp:127.0.0.1:9190" },
	/* 7 */ { "tcp:[::1]:9190", 0, ADDR_TCP, "tcp:[::1]:9190" },
	/* 8 */ { "tcp:guest.example:22", 0, ADDR_TCP, "tcp:guest.example:22" },
	/* 9 */ { "vsock:2:9190", 0, ADDR_VSOCK, "vsock:2:9190" },
	/* 10 */ { "vsock:1:9190", -EINVAL, 0, "CID" },
	/* 11 */ { "vsock:3", -EINVAL, 0, "vsock:CID:PORT" },
	/* 12 */ { "vsock:3:0", -EINVAL, 0, "port" },
	/* 13 */ { "vsock:x:1", -EINVAL, 0, "CID" },
	/* 14 */ { "vsock:3:99999999999", -EINVAL, 0, "port" },
	/* 15 */ { "hvsock:/a.sock", -EINVAL, 0, "hvsock:/PATH:PORT" },
	/* 16 */ { "hvsock:relative:5", -EINVAL, 0, "absolute" },
	/* 17 */ { "unix:relative", -EINVAL, 0, "absolute" },
	/* 18 */ { "unix:", -EINVAL, 0, "absolute" },
	/* 19 */ { "tcp:host", -EINVAL, 0, "port is missing" },
	/* 20 */ { "tcp::1:80", -EINVAL, 0, "[ADDR]:PORT" },
	/* 21 */ { "tcp:[::1:80", -EINVAL, 0, "']' is missing" },
	/* 22 */ { "tcp:host:0", -EINVAL, 0, "port" },
	/* 23 */ { "tcp:ho st:1", -EINVAL, 0, "host" },
	/* 24 */ { "floppy:/a", -EINVAL, 0, "not an address kind" },
	/* 25 */ { "noscheme", -EINVAL, 0, "expected" },
	/* 26 */ { "unix:/tab\there", -EINVAL, 0, "printable" },
	/* 27 */ { "", -EINVAL, 0, "expected" },
};

START_TEST(test_parse)
{
	char err[ADDR_ERR_MAX] = "", canon[GMIG_ADDR_MAX + 1];
	struct gaddr a, b;
	int rc = addr_parse(rows[_i].text, &a, err, sizeof(err));

	ck_assert_msg(rc == rows[_i].rc, "row %d: rc %d (%s)", _i, rc, err);
	if (rc) {
		ck_assert_msg(strstr(err, rows[_i].canon), "row %d: '%s' lacks '%s'", _i, err,
			      rows[_i].canon);
		return;
	}
	ck_assert_int_eq(a.kind, rows[_i].kind);
	addr_format(&a, canon, sizeof(canon));
	ck_assert_str_eq(canon, rows[_i].canon);
	/* The canonical text parses to the same address. */
	ck_assert_int_eq(addr_parse(canon, &b, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
}
END_TEST

/* 28: a path too long for a unix socket, and an address over GMIG_ADDR_MAX. */
START_TEST(test_long)
{
	char text[GMIG_ADDR_MAX + 16], err[ADDR_ERR_MAX];
	struct gaddr a;

	snprintf(text, sizeof(text), "unix:/%0120d", 0);
	ck_assert_int_eq(addr_parse(text, &a, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "longer than"));
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	memcpy(text, "unix:/", 6);
	ck_assert_int_eq(addr_parse(text, &a, err, sizeof(err)), -EINVAL);
}
END_TEST

/* 29: socket addresses for each kind, and host:port with defaults. */
START_TEST(test_sockaddr)
{
	struct sockaddr_storage ss;
	char err[ADDR_ERR_MAX], host[ADDR_HOST_MAX], text[64];
	socklen_t len;
	uint16_t port;
	struct gaddr a;

	ck_assert_int_eq(addr_parse("vsock:7:9190", &a, err, sizeof(err)), 0);
	ck_assert_int_eq(addr_sockaddr(&a, &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_VSOCK);
	ck_assert_uint_eq(((struct sockaddr_vm *)&ss)->svm_cid, 7);
	ck_assert_uint_eq(((struct sockaddr_vm *)&ss)->svm_port, 9190);
	ck_assert_int_eq(addr_parse("hvsock:/run/x.sock:5", &a, err, sizeof(err)), 0);
	ck_assert_int_eq(addr_sockaddr(&a, &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_UNIX);
	ck_assert_str_eq(((struct sockaddr_un *)&ss)->sun_path, "/run/x.sock");
	ck_assert_int_eq(addr_parse("tcp:127.0.0.1:80", &a, err, sizeof(err)), 0);
	ck_assert_int_eq(addr_sockaddr(&a, &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	sockaddr_format((struct sockaddr *)&ss, len, text, sizeof(text));
	ck_assert_str_eq(text, "127.0.0.1:80");

	ck_assert_int_eq(hostport_parse("10.0.0.2", host, sizeof(host), &port, 9191, err,
					sizeof(err)), 0);
	ck_assert_str_eq(host, "10.0.0.2");
	ck_assert_uint_eq(port, 9191);
	ck_assert_int_eq(hostport_parse("[fe80::1]:7", host, sizeof(host), &port, 9191, err,
					sizeof(err)), 0);
	ck_assert_str_eq(host, "fe80::1");
	ck_assert_uint_eq(port, 7);
	ck_assert_int_eq(hostport_parse("[fe80::1]x", host, sizeof(host), &port, 9191, err,
					sizeof(err)), -EINVAL);
	ck_assert_int_eq(hostport_parse(":80", host, sizeof(host), &port, 9191, err, sizeof(err)),
			 -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-addr");
	TCase *tc = tcase_create("addr");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_parse, 0, (int)(sizeof(rows) / sizeof(rows[0])));
	tcase_add_test(tc, test_long);
	tcase_add_test(tc, test_sockaddr);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
