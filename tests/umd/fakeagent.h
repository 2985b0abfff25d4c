/*
 * A fake gmig-agent for libgmig's link tests: it listens on a unix socket in
 * a temp directory, speaks the frames of the client link with the real
 * codecs, hands out a memfd staging area, and keeps the image of the
 * client's region as the STAGED frames build it.
 */
#ifndef GMIG_FAKEAGENT_H
#define GMIG_FAKEAGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "gmig/message.h"

#define FA_TIMEOUT_MS	10000	/* longest wait for anything; a test fails after it */
#define FA_SESSION	0x5e55107ull

struct fake {
	int lfd, fd;
	char path[108];
	struct gmig_decoder dec;
	uint8_t *payload;
	uint8_t in[1 << 16];
	size_t in_off, in_len;
	uint64_t tx_seq;
	struct gmig_hdr last;		/* header of the last frame received */

	int memfd;
	uint8_t *stage;
	uint32_t slots, slot_size;
	bool agent_slot_out[2 * GMIG_SLOTS_MAX];

	uint32_t pid, gpu;
	char name[33];
	struct gmig_rec_region region;	/* the client's one region, from INV_CLIENT */
	uint32_t nregions;
	uint8_t *image;			/* region bytes as staged */
	uint64_t image_cap;
	uint32_t staged_raw, staged_zero, inventories;
};

void fa_listen(struct fake *f, const char *path);
void fa_close(struct fake *f);
/* Accepts the client and checks its HELLO; false if none came in time. */
bool fa_accept(struct fake *f, int timeout_ms);
void fa_welcome(struct fake *f);
/* A staging memfd with these seals, sent with STAGING. */
void fa_staging(struct fake *f, uint32_t slots, uint32_t slot_size, int seals);
/* accept + WELCOME + STAGING (4 slots of 256 KiB, sealed) + the INV_CLIENT that follows. */
void fa_open(struct fake *f);

void fa_send(struct fake *f, const struct gmig_msg *m);
/* Sends m with fd attached (SCM_RIGHTS). */
void fa_send_fd(struct fake *f, const struct gmig_msg *m, int fd);
void fa_send_bytes(struct fake *f, const void *p, size_t n);
/* Encodes m into buf (whole frame) with the next sequence number; returns its size. */
size_t fa_encode(struct fake *f, const struct gmig_msg *m, uint8_t *buf, size_t cap);

/* The next message: its type, 0 when the client closed, -ETIMEDOUT. */
int fa_recv(struct fake *f, struct gmig_msg *m, int timeout_ms);
/* The next message must be of type want (an ERROR is shown in the failure). */
void fa_expect(struct fake *f, uint16_t want, struct gmig_msg *m);
/* The next message must be ERROR with this code, about a frame of ref_type. */
void fa_expect_error(struct fake *f, int32_t code, uint16_t ref_type);
/* The client must close the connection now. */
void fa_expect_closed(struct fake *f);

/* Applies a STAGED of the client to the image, and frees its slot unless told not to. */
void fa_apply_staged(struct fake *f, const struct gmig_staged *s, bool free_slot);
/* A whole round: ROUND_BEGIN, STAGED until ROUND_END; *end gets the statistics. */
void fa_round(struct fake *f, uint32_t round, uint32_t base, struct gmig_round_end *end);
/* A whole restore of the image: RESTORE_BEGIN, STAGED into the agent's slots, RESTORE_END. */
void fa_restore(struct fake *f, struct gmig_totals *done);

void fa_simple(struct fake *f, uint16_t type);		/* a message without fields */
void fa_attach(struct fake *f, uint32_t from, const uint8_t *uuid);
void fa_freeze(struct fake *f, uint32_t deadline_ms);
void fa_ping(struct fake *f, uint64_t nonce);		/* PING, expects PONG */

#endif
