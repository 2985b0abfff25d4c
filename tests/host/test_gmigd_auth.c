/* Peer authentication: the secret file's rules and the two HMAC proofs, against libsodium directly. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"

static char path[64];

static void write_secret(const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void setup(void)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/gmigd-secret.XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_ge(sodium_init(), 0);
}

static void teardown(void)
{
	unlink(path);
}

static const struct {
	const char *data;
	size_t len;
	mode_t mode;
	int rc;
	size_t key_len;
} rows[] = {
	/* 0 */ { "0123456789abcdef", 16, 0600, 0, 16 },
	/* 1 */ { "0123456789abcdef\n", 17, 0600, 0, 16 },
	/* 2 */ { "0123456789abcdef\r\n", 18, 0640, 0, 16 },
	/* 3 */ { "0123456789abcde\n", 16, 0600, -EINVAL, 0 },
	/* 4 */ { "", 0, 0600, -EINVAL, 0 },
	/* 5 */ { "0123456789abcdef", 16, 0644, -EPERM, 0 },
	/* 6 */ { "binary\0secret\0with\0zeros", 25, 0600, 0, 25 },
};

START_TEST(test_load)
{
	struct auth_secret s;
	char err[256] = "";
	int rc;

	write_secret(rows[_i].data, rows[_i].len, rows[_i].mode);
	rc = auth_secret_load(&s, path, err, sizeof(err));
	ck_assert_msg(rc == rows[_i].rc, "row %d: %d (%s)", _i, rc, err);
	if (!rc) {
		ck_assert_uint_eq(s.len, rows[_i].key_len);
		ck_assert_int_eq(memcmp(s.key, rows[_i].data, s.len), 0);
	} else {
		ck_assert_ptr_nonnull(strstr(err, path));
	}
	auth_secret_clear(&s);
	ck_assert_uint_eq(s.len, 0);
}
END_TEST

/* 7: too long, and missing. */
START_TEST(test_load_limits)
{
	static char big[AUTH_SECRET_MAX + 1];
	struct auth_secret s;
	char err[256];

	memset(big, 'x', sizeof(big));
	write_secret(big, AUTH_SECRET_MAX, 0600);
	ck_assert_int_eq(auth_secret_load(&s, path, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.len, AUTH_SECRET_MAX);
	write_secret(big, sizeof(big), 0600);
	ck_assert_int_eq(auth_secret_load(&s, path, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(auth_secret_load(&s, "/nonexistent/peer.secret", err, sizeof(err)), -ENOENT);
}
END_TEST

/* 8: the MACs are HMAC-SHA256 over exactly the documented bytes. */
START_TEST(test_macs)
{
	struct auth_secret s = { .len = 20 }, other = { .len = 20 };
	uint8_t nd[GMIG_MAC_SIZE], ns[GMIG_MAC_SIZE], hello[69], mac[GMIG_MAC_SIZE],
		want[GMIG_MAC_SIZE], buf[11 + 2 * GMIG_MAC_SIZE + 69];
	crypto_auth_hmacsha256_state st;

	memcpy(s.key, "the shared secret!!!", 20);
	memcpy(other.key, "the shared secret!!?", 20);
	auth_nonce(nd);
	auth_nonce(ns);
	ck_assert(!auth_mac_equal(nd, ns));	/* fresh every time */
	for (size_t i = 0; i < sizeof(hello); i++)
		hello[i] = (uint8_t)(i * 7);

	auth_mac_source(&s, nd, hello, sizeof(hello), mac);
	memcpy(buf, "gmig source", 11);
	memcpy(buf + 11, nd, GMIG_MAC_SIZE);
	memcpy(buf + 11 + GMIG_MAC_SIZE, hello, sizeof(hello));
	crypto_auth_hmacsha256_init(&st, s.key, s.len);
	crypto_auth_hmacsha256_update(&st, buf, 11 + GMIG_MAC_SIZE + sizeof(hello));
	crypto_auth_hmacsha256_final(&st, want);
	ck_assert(auth_mac_equal(mac, want));

	auth_mac_dest(&s, ns, nd, mac);
	memcpy(buf, "gmig dest", 9);
	memcpy(buf + 9, ns, GMIG_MAC_SIZE);
	memcpy(buf + 9 + GMIG_MAC_SIZE, nd, GMIG_MAC_SIZE);
	crypto_auth_hmacsha256_init(&st, s.key, s.len);
	crypto_auth_hmacsha256_update(&st, buf, 9 + 2 * GMIG_MAC_SIZE);
	crypto_auth_hmacsha256_final(&st, want);
	ck_assert(auth_mac_equal(mac, want));

	/* Another secret, another nonce, another HELLO: another MAC. */
	auth_mac_dest(&other, ns, nd, want);
	ck_assert(!auth_mac_equal(mac, want));
	auth_mac_dest(&s, nd, ns, want);
	ck_assert(!auth_mac_equal(mac, want));
	auth_mac_source(&s, nd, hello, sizeof(hello), mac);
	hello[68] ^= 1;
	auth_mac_source(&s, nd, hello, sizeof(hello), want);
	ck_assert(!auth_mac_equal(mac, want));
	/* The labels keep the two proofs apart. */
	auth_mac_source(&s, nd, ns, GMIG_MAC_SIZE, mac);
	auth_mac_dest(&s, nd, ns, want);
	ck_assert(!auth_mac_equal(mac, want));
}
END_TEST

int main(void)
{
	Suite *su = suite_create("gmigd-auth");
	TCase *tc = tcase_create("auth");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_load, 0, (int)(sizeof(rows) / sizeof(rows[0])));
	tcase_add_test(tc, test_load_limits);
	tcase_add_test(tc, test_macs);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
