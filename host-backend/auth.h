/*
 * Peer authentication: both gmigds prove they hold the shared secret with HMAC-SHA256 over
 * fresh nonces, so a recorded exchange cannot be replayed.
 *
 *   source -> HELLO;  dest -> CHALLENGE(nonce_d)
 *   source -> AUTH(mac_s, nonce_s)   mac_s = HMAC(secret, "gmig source" || nonce_d || HELLO payload)
 *   dest   -> PROOF(mac_d)           mac_d = HMAC(secret, "gmig dest" || nonce_s || nonce_d)
 */
#ifndef GMIG_HOST_AUTH_H
#define GMIG_HOST_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/limits.h"

#define AUTH_SECRET_MIN		16	/* bytes; shorter secrets are refused */
#define AUTH_SECRET_MAX		1024
#define AUTH_LABEL_SOURCE	"gmig source"
#define AUTH_LABEL_DEST		"gmig dest"

struct auth_secret {
	uint8_t key[AUTH_SECRET_MAX];
	size_t len;
};

/*
 * Reads the secret from @path: its bytes, less one final newline (and a CR before it). The file
 * must not be readable by others. 0, or a negative errno with a sentence in @err (-EINVAL for a
 * secret too short or too long, -EPERM for a file others may read).
 */
int auth_secret_load(struct auth_secret *s, const char *path, char *err, size_t errlen);

/* Wipes the secret. */
void auth_secret_clear(struct auth_secret *s);

/* Fills @nonce with random bytes (libsodium). */
void auth_nonce(uint8_t nonce[GMIG_MAC_SIZE]);

/* The initiator's MAC: over the acceptor's nonce and the HELLO payload it sent. */
void auth_mac_source(const struct auth_secret *s, const uint8_t nonce_d[GMIG_MAC_SIZE],
		     const uint8_t *hello, size_t hello_len, uint8_t mac[GMIG_MAC_SIZE]);

/* The acceptor's MAC: over both nonces. */
void auth_mac_dest(const struct auth_secret *s, const uint8_t nonce_s[GMIG_MAC_SIZE],
		   const uint8_t nonce_d[GMIG_MAC_SIZE], uint8_t mac[GMIG_MAC_SIZE]);

/* Compares two MACs in constant time. */
bool auth_mac_equal(const uint8_t a[GMIG_MAC_SIZE], const uint8_t b[GMIG_MAC_SIZE]);

#endif
