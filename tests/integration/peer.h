/*
 * A test peer that plays the host side of a migration against gmig-agent:
 * it opens (and resumes) the session, keeps the image of every client's
 * device memory in memory and drives rounds, freeze, release, attach,
 * restore and thaw. Blocking, with a timeout on every wait, for tests and
 * benchmarks; gmigd is the real host side.
 */
#ifndef GMIG_TEST_PEER_H
#define GMIG_TEST_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/message.h"

#define PEER_REGIONS_MAX 64
#define PEER_GPUS_MAX 16

struct peer_region {
	uint32_t pid, region, chunk;
	uint64_t va, size;
	uint8_t *data;		/* the image */
};

/* Where peer_migrate() drops the channel and resumes the session. */
enum peer_drop {
	DROP_NONE,
	DROP_AFTER_INVENTORY,
	DROP_MID_ROUND,
	DROP_AFTER_ROUND,
	DROP_AFTER_FREEZE,
	DROP_AFTER_RELEASE,
	DROP_AFTER_ATTACH,
	DROP_MID_RESTORE,
	DROP_AFTER_RESTORE,
	DROP_MAX,
};

struct peer {
	int fd;
	char path[108];
	struct gmig_decoder dec;
	uint8_t *payload;
	uint8_t in[64 << 10];
	size_t in_off, in_len;
	uint64_t seq, session;
	uint8_t token[GMIG_TOKEN_SIZE];
	int timeout_ms;
	uint8_t phase;			/* from the last WELCOME */
	struct gmig_rec_gpu gpus[PEER_GPUS_MAX];
	unsigned ngpus;
	struct peer_region regions[PEER_REGIONS_MAX];
	unsigned nregions;
	uint32_t clients;
	char error[GMIG_TEXT_MAX + 1];	/* text of the last ERROR frame */
	uint64_t bytes_in;
};

struct peer_options {
	uint32_t max_rounds;		/* pre-copy rounds at most (default 5) */
	uint32_t freeze_deadline_ms;	/* default 5000 */
	uint32_t target_gpu;		/* index in the inventory to attach to (default 1) */
	enum peer_drop drop;
};

struct peer_report {
	uint32_t rounds;
	uint64_t precopy_bytes, final_bytes, restore_bytes;
	double precopy_s, pause_s, total_s;	/* pause: FREEZE sent to THAWED received */
};

int peer_connect(struct peer *p, const char *path);
/* Drops the connection and resumes the session with its token. */
int peer_resume(struct peer *p);
void peer_close(struct peer *p);

int peer_inventory(struct peer *p);
/* A round against base; when drop_mid is set, the connection is dropped halfway. */
int peer_round(struct peer *p, uint32_t round, uint32_t base, struct gmig_round_end *st, bool drop_mid);
int peer_freeze(struct peer *p, uint32_t deadline_ms);
/* Sends a request without fields and waits for its answer; returns clients or -errno. */
int peer_step(struct peer *p, uint16_t request, uint16_t answer);
int peer_attach(struct peer *p, uint32_t from, uint32_t to);
int peer_restore(struct peer *p, bool drop_mid);
/* Sends one message. */
int peer_send(struct peer *p, const struct gmig_msg *m);
/* Sends raw bytes on the channel (for malformed-input tests). */
int peer_send_raw(struct peer *p, const void *data, size_t n);
/* Reads one frame and returns its type, decoded into m; -errno on failure or timeout. */
int peer_recv(struct peer *p, struct gmig_msg *m);

/* A whole migration from GPU 0 to opts->target_gpu. */
int peer_migrate(struct peer *p, const struct peer_options *opts, struct peer_report *rep);

#endif
