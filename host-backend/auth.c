/* Peer authentication: the shared secret, nonces and the two HMAC-SHA256 proofs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"

int auth_secret_load(struct auth_secret *s, const char *path, char *err, size_t errlen)
{
	uint8_t buf[AUTH_SECRET_MAX + 2];
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd, rc;

	memset(s, 0, sizeof(*s));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "peer secret %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		snprintf(err, errlen, "peer secret %s: %s", path, strerror(-rc));
		goto out_close;
	}
	if (st.st_mode & S_IROTH) {
		rc = -EPERM;
		snprintf(err, errlen, "peer secret %s is readable by others: chmod 600 it", path);
		goto out_close;
	}
	for (;;) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "peer secret %s: %s", path, strerror(-rc));
			goto out_wipe;
		}
		if (n == 0 || len + (size_t)n == sizeof(buf)) {
			len += (size_t)n;
			break;
		}
		len += (size_t)n;
	}
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	if (len < AUTH_SECRET_MIN || len > AUTH_SECRET_MAX) {
		rc = -EINVAL;
		snprintf(err, errlen, "peer secret %s: must hold %d to %d bytes (it holds %zu)", path,
			 AUTH_SECRET_MIN, AUTH_SECRET_MAX, len);
		goto out_wipe;
	}
	memcpy(s->key, buf, len);
	s->len = len;
	rc = 0;
out_wipe:
	sodium_memzero(buf, sizeof(buf));
out_close:
	close(fd);
	return rc;
}

void auth_secret_clear(struct auth_secret *s)
{
	sodium_memzero(s, sizeof(*s));
}

void auth_nonce(uint8_t nonce[GMIG_MAC_SIZE])
{
	randombytes_buf(nonce, GMIG_MAC_SIZE);
}

void auth_mac_source(const struct auth_secret *s, const uint8_t nonce_d[GMIG_MAC_SIZE],
		     const uint8_t *hello, size_t hello_len, uint8_t mac[GMIG_MAC_SIZE])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, s->key, s->len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)AUTH_LABEL_SOURCE,
				      strlen(AUTH_LABEL_SOURCE));
	crypto_auth_hmacsha256_update(&st, nonce_d, GMIG_MAC_SIZE);
	crypto_auth_hmacsha256_update(&st, hello, hello_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

void auth_mac_dest(const struct auth_secret *s, const uint8_t nonce_s[GMIG_MAC_SIZE],
		   const uint8_t nonce_d[GMIG_MAC_SIZE], uint8_t mac[GMIG_MAC_SIZE])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, s->key, s->len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)AUTH_LABEL_DEST,
				      strlen(AUTH_LABEL_DEST));
	crypto_auth_hmacsha256_update(&st, nonce_s, GMIG_MAC_SIZE);
	crypto_auth_hmacsha256_update(&st, nonce_d, GMIG_MAC_SIZE);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

bool auth_mac_equal(const uint8_t a[GMIG_MAC_SIZE], const uint8_t b[GMIG_MAC_SIZE])
{
	return sodium_memcmp(a, b, GMIG_MAC_SIZE) == 0;
}
