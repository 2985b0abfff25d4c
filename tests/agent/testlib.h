/*
 * Shared by gmig-agent's suites: the real gmig-agent binary started in a temporary directory,
 * a fake host on its host channel and fake clients (forked processes) on its client socket.
 */
#ifndef GMIG_AGENT_TESTLIB_H
#define GMIG_AGENT_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gmig/message.h"

#define TL_TIMEOUT_MS		5000	/* any single wait in a test */
#define TL_CHUNK		(64u << 10)
#define TL_MAX_CLIENTS		8
#define TL_MAX_REGIONS		4

/* --- the agent --- */

struct harness {
	char dir[64];
	char host_path[100];
	char client_path[100];
	char conf_path[128];
	char sim_dir[128];
	char sys_dir[128];
	pid_t agent;
};

/* Makes a directory /tmp/gmig-agent-@what-<runner pid>-XXXXXX into @dir. */
void harness_tmpdir(char *dir, size_t size, const char *what);
/* Removes what tests of this runner left (a failed test exits without cleaning up). */
void harness_sweep(void);

/* Writes a config (test defaults, then @extra lines), starts gmig-agent and waits for its sockets. */
void harness_start(struct harness *h, const char *extra);
/* SIGTERM, then the exit status (0 for a clean exit); the directory is removed. */
int harness_stop(struct harness *h);
/* True while the agent process lives. */
bool harness_alive(struct harness *h);
/* The path of the gmig-agent binary under test ($GMIG_AGENT_BIN). */
const char *harness_bin(void);

/* --- data the fake clients stage and the host checks --- */

/* Byte @off of region @region as read in round @epoch; odd chunks compress well. */
uint8_t pat_byte(uint32_t region, uint64_t off, uint32_t epoch);
/* Whether chunk @chunk of the region is all zero in round @epoch. */
bool pat_zero_chunk(uint32_t region, uint64_t chunk, uint32_t epoch);

/* --- the fake host --- */

struct fhost {
	int fd;
	struct gmig_decoder dec;
	uint8_t *buf;
	uint8_t in[1 << 16];
	size_t in_off, in_len;
	uint64_t seq;			/* last sequence number sent */
	uint64_t session;
	uint8_t token[GMIG_TOKEN_SIZE];
	uint64_t caps;
	uint64_t last_hdr_seq;		/* of the last frame received */
};

void fhost_open(struct fhost *fh, struct harness *h);
void fhost_close(struct fhost *fh);
/* Closes the socket only (the session stays for a resume). */
void fhost_drop(struct fhost *fh);
/* Connects again with the same session state. */
void fhost_reconnect(struct fhost *fh, struct harness *h);
void fhost_send(struct fhost *fh, const struct gmig_msg *m);
void fhost_send_raw(struct fhost *fh, const void *p, size_t n);
/* 0 with @m (tails valid until the next receive), -ETIMEDOUT, -EPIPE on close, or a decode error. */
int fhost_recv(struct fhost *fh, struct gmig_msg *m, int timeout_ms);
/* Receives and asserts the type; an unexpected ERROR's text is shown. */
void fhost_expect(struct fhost *fh, struct gmig_msg *m, uint16_t type);
/* HELLO, new (@resume false) or resuming the session held in @fh; the WELCOME into @w. */
void fhost_hello(struct fhost *fh, bool resume, struct gmig_welcome *w);
/* HELLO with explicit fields; returns the answer's type (WELCOME or ERROR) in @m. */
void fhost_hello_raw(struct fhost *fh, uint64_t session, const uint8_t *token, uint16_t vmin,
		     uint16_t vmax, uint8_t role, struct gmig_msg *m);
/* Sends a JSON line (a newline is added) and reads one reply line into @reply. */
size_t fhost_json(struct fhost *fh, const char *line, char *reply, size_t cap);
/* Reads one reply line (for replies that come later). */
size_t fhost_json_read(struct fhost *fh, char *reply, size_t cap, int timeout_ms);
/* True when the agent closed the connection within @timeout_ms. */
bool fhost_closed(struct fhost *fh, int timeout_ms);

/* --- fake clients --- */

enum fc_mode {
	FC_NORMAL,
	FC_STUCK_FREEZE,	/* the first FREEZE overruns its deadline, then fails (as libgmig) */
	FC_DIE_MID_ROUND,	/* killed (SIGKILL) halfway through its first round */
	FC_SILENT_ROUND,	/* takes rounds but never answers them */
};

/* What a fake client did, in memory shared with the test. */
struct fc_shared {
	volatile int pid;
	volatile int welcomed;
	volatile int frozen;
	volatile int freezes;
	volatile int freeze_fails;
	volatile int thaws;
	volatile int rounds;
	volatile int releases;
	volatile int attaches;
	volatile int aborts;
	volatile int restore_begins;
	volatile int restored_ok;
	volatile int restore_bad;
	volatile uint64_t restore_bytes;
	volatile int slots, slot_size;
	volatile int error;		/* the fake client's own check failed: line number */
};

struct fclient {
	pid_t pid;
	struct fc_shared *sh;
	enum fc_mode mode;
	uint32_t nregions;
	uint32_t region_size;
};

void fclient_start(struct fclient *fc, struct harness *h, enum fc_mode mode, uint32_t nregions,
		   uint32_t region_size);
/* Waits until *@field >= @value; false on timeout. */
bool fc_wait(volatile int *field, int value, int timeout_ms);
void fclient_kill(struct fclient *fc);
void fclient_stop(struct fclient *fc);

/* --- the host's copy of what clients sent --- */

struct image_region {
	uint32_t pid, id;
	uint64_t va, size;
	uint32_t chunk;
	uint8_t *data;
	uint32_t *epoch;		/* per chunk: round of the bytes held, 0: none */
};

struct image {
	unsigned int n;
	struct image_region r[TL_MAX_CLIENTS * TL_MAX_REGIONS];
};

/* Adds every region of an INV_CLIENT. */
void image_add_client(struct image *im, const struct gmig_inv_client *ic);
/* Checks a REGION_DATA against the pattern and stores it; asserts on a mismatch. */
void image_take(struct image *im, const struct gmig_region_data *rd);
/* Whether every chunk is held from round @epoch. */
bool image_whole(const struct image *im, uint32_t epoch);
void image_free(struct image *im);

/* Runs a round: ROUND_BEGIN, REGION_DATA into @im until ROUND_END, whose totals come back. */
void host_round(struct fhost *fh, struct image *im, uint32_t round, uint32_t base,
		struct gmig_round_end *end);
/* Sends the whole image back: RESTORE_BEGIN, RESTORE_DATA (RAW, ZERO, LZ4), RESTORE_END. */
void host_restore(struct fhost *fh, const struct image *im, bool lz4);
/* Rebuilds the image's metadata from an inventory; returns the INV_CLIENT count. */
uint32_t host_inventory(struct fhost *fh, struct image *im);

/* A request with no fields (INV_REQUEST, THAW, RELEASE...) or the simple ones. */
void host_simple(struct fhost *fh, uint16_t type);
void host_freeze(struct fhost *fh, uint32_t deadline_ms);
void host_attach(struct fhost *fh);

/* --- restore by reference: a host with capabilities, fds with frames, a client in this process --- */

/* HELLO for a new session offering @caps (GMIG_CAP_*); the WELCOME into @w. */
void fhost_hello_caps(struct fhost *fh, uint64_t caps, struct gmig_welcome *w);
/*
 * As fhost_recv(), reading with recvmsg(): a descriptor riding with the bytes read (STAGING_PHYS
 * over SHM) goes to *@fd; *@fd is left alone when none comes.
 */
int fhost_recv_fd(struct fhost *fh, struct gmig_msg *m, int timeout_ms, int *fd);
/* Polls gmig-status until the session's state is @state ("attached", "detached"...). */
bool harness_wait_session(struct harness *h, const char *state, int timeout_ms);
/* bytes-restored-by-reference from gmig-status. */
uint64_t harness_restored_by_ref(struct harness *h);

/* A client driven step by step from the test's own process, its staging mapped as libgmig does. */
struct iclient {
	int fd;
	struct gmig_decoder dec;
	uint8_t *buf;
	uint8_t in[1 << 16];
	size_t in_off, in_len;
	uint64_t session, seq;
	int stage_fd;
	uint8_t *stage;			/* 2 x slots slots: its own, then the agent's */
	uint32_t slots, slot_size;
};

/* Connects, HELLO (SHM), WELCOME, STAGING with its memfd, mapped. */
void iclient_open(struct iclient *ic, struct harness *h);
/* Closes the connection and unmaps (the agent sees the client die). */
void iclient_close(struct iclient *ic);
void iclient_send(struct iclient *ic, const struct gmig_msg *m);
/* 0 with @m, -ETIMEDOUT, -EPIPE on close, or a decode error. */
int iclient_recv(struct iclient *ic, struct gmig_msg *m, int timeout_ms);
/* Receives and asserts the type. */
void iclient_expect(struct iclient *ic, struct gmig_msg *m, uint16_t type);
/* Takes request @type (FREEZE, RELEASE, ATTACH) and answers it as a lone client does. */
void iclient_answer(struct iclient *ic, uint16_t type);
/* PING, and the very next frame from the agent must be its PONG (nothing else was sent). */
void iclient_quiet(struct iclient *ic);

/* Recursive removal of a test directory. */
void rm_tree(const char *dir);

#endif
