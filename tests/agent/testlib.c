/* Shared by gmig-agent's suites: the agent binary in a temporary directory, a fake host, fake clients. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <lz4.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gmig/frame.h"
#include "gmig/message.h"

#include "testlib.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- the agent --- */

/*
 * The test runner's pid names every directory a test makes: a test that fails leaves through
 * _exit() and cleans nothing, so the runner sweeps them (harness_sweep) after its tests.
 */
static pid_t runner;

__attribute__((constructor)) static void runner_init(void)
{
	runner = getpid();
}

void harness_tmpdir(char *dir, size_t size, const char *what)
{
	snprintf(dir, size, "/tmp/gmig-agent-%s-%d-XXXXXX", what, (int)runner);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

void harness_sweep(void)
{
	char pattern[64];
	glob_t g;

	snprintf(pattern, sizeof(pattern), "/tmp/gmig-agent-*-%d-*", (int)runner);
	if (glob(pattern, 0, NULL, &g))
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		rm_tree(g.gl_pathv[i]);
	globfree(&g);
}

/* What a failed test leaves behind is cleaned when its process exits. */
static struct harness *live;
static pid_t live_clients[TL_MAX_CLIENTS * 4];
static unsigned int nlive_clients;

static void harness_atexit(void)
{
	for (unsigned int i = 0; i < nlive_clients; i++) {
		if (live_clients[i] > 0)
			kill(live_clients[i], SIGKILL);
	}
	if (live) {
		if (live->agent > 0)
			kill(live->agent, SIGKILL);
		rm_tree(live->dir);
	}
}

const char *harness_bin(void)
{
	const char *bin = getenv("GMIG_AGENT_BIN");

	ck_assert_msg(bin && *bin, "GMIG_AGENT_BIN is not set");
	return bin;
}

static bool can_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	ok = fd >= 0 && !connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Base settings of every test; a key in @extra replaces its line here. */
static const char *const base_conf[][2] = {
	{ "vsock_port", "0" },
	{ "request_timeout_ms", "3000" },
	{ "hello_timeout_ms", "2000" },
	{ "freeze_grace_ms", "200" },
	{ "slots", "2" },
	{ "slot_size", "16K" },
	{ "host_buffer", "64K" },
};

static bool extra_has(const char *extra, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = extra; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, key, n) && (p[n] == ' ' || p[n] == '='))
			return true;
	}
	return false;
}

void harness_start(struct harness *h, const char *extra)
{
	static bool registered;
	const char *level = getenv("GMIG_TEST_LOG");
	const char *bin = harness_bin();
	uint64_t t0;
	FILE *f;

	memset(h, 0, sizeof(*h));
	harness_tmpdir(h->dir, sizeof(h->dir), "test");
	snprintf(h->host_path, sizeof(h->host_path), "%s/host.sock", h->dir);
	snprintf(h->client_path, sizeof(h->client_path), "%s/run/agent.sock", h->dir);
	snprintf(h->conf_path, sizeof(h->conf_path), "%s/agent.conf", h->dir);
	snprintf(h->sim_dir, sizeof(h->sim_dir), "%s/sim", h->dir);
	snprintf(h->sys_dir, sizeof(h->sys_dir), "%s/sys", h->dir);
	ck_assert_int_eq(mkdir(h->sim_dir, 0755), 0);
	ck_assert_int_eq(mkdir(h->sys_dir, 0755), 0);
	if (!registered) {
		atexit(harness_atexit);
		/* A peer that hangs up makes write() fail, as the tests expect, not kill them. */
		signal(SIGPIPE, SIG_IGN);
		registered = true;
	}
	live = h;

	f = fopen(h->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "# written by the agent tests\nunix = %s\nclient_socket = %s\n"
		"sim_dir = %s\nsysfs_dir = %s\n", h->host_path, h->client_path, h->sim_dir,
		h->sys_dir);
	if (!extra_has(extra, "log_level"))
		fprintf(f, "log_level = %s\n", level ? level : "warn");
	for (size_t i = 0; i < sizeof(base_conf) / sizeof(base_conf[0]); i++) {
		if (!extra_has(extra, base_conf[i][0]))
			fprintf(f, "%s = %s\n", base_conf[i][0], base_conf[i][1]);
	}
	if (extra)
		fprintf(f, "%s\n", extra);
	ck_assert_int_eq(fclose(f), 0);

	h->agent = fork();
	ck_assert_int_ge(h->agent, 0);
	if (h->agent == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(bin, bin, "-c", h->conf_path, (char *)NULL);
		_exit(127);
	}
	t0 = now_ms();
	while (!can_connect(h->host_path) || !can_connect(h->client_path)) {
		ck_assert_msg(harness_alive(h), "gmig-agent exited at start");
		ck_assert_msg(now_ms() - t0 < TL_TIMEOUT_MS, "gmig-agent did not start");
		sleep_ms(5);
	}
}

bool harness_alive(struct harness *h)
{
	int status;

	return h->agent > 0 && waitpid(h->agent, &status, WNOHANG) == 0;
}

int harness_stop(struct harness *h)
{
	uint64_t t0 = now_ms();
	int status = 0, rc = -1;

	if (h->agent > 0) {
		kill(h->agent, SIGTERM);
		while (now_ms() - t0 < TL_TIMEOUT_MS) {
			pid_t p = waitpid(h->agent, &status, WNOHANG);

			if (p == h->agent) {
				rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
				break;
			}
			sleep_ms(5);
		}
		if (rc < 0) {
			kill(h->agent, SIGKILL);
			waitpid(h->agent, &status, 0);
		}
		h->agent = 0;
	}
	rm_tree(h->dir);
	live = NULL;
	return rc;
}

/* --- the pattern --- */

uint8_t pat_byte(uint32_t region, uint64_t off, uint32_t epoch)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ull ^ ((uint64_t)region << 40) ^ ((uint64_t)epoch << 52);

	/* Odd chunks are runs (LZ4 packs them), even ones noise. */
	if ((off / TL_CHUNK) % 2)
		return (uint8_t)((off >> 8) + region * 7 + epoch * 13);
	x ^= x >> 29;
	return (uint8_t)(x ^ (x >> 17));
}

bool pat_zero_chunk(uint32_t region, uint64_t chunk, uint32_t epoch)
{
	return (chunk + region + epoch) % 4 == 3;
}

/* --- the fake host --- */

static int connect_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	ck_assert_msg(!connect(fd, (struct sockaddr *)&sun, sizeof(sun)), "connect %s: %s", path,
		      strerror(errno));
	return fd;
}

void fhost_open(struct fhost *fh, struct harness *h)
{
	memset(fh, 0, sizeof(*fh));
	fh->buf = malloc(GMIG_PAYLOAD_MAX);
	ck_assert_ptr_nonnull(fh->buf);
	fh->fd = connect_unix(h->host_path);
	gmig_decoder_init(&fh->dec, fh->buf, GMIG_PAYLOAD_MAX);
}

void fhost_drop(struct fhost *fh)
{
	if (fh->fd >= 0)
		close(fh->fd);
	fh->fd = -1;
}

void fhost_close(struct fhost *fh)
{
	fhost_drop(fh);
	free(fh->buf);
	fh->buf = NULL;
}

void fhost_reconnect(struct fhost *fh, struct harness *h)
{
	fhost_drop(fh);
	fh->fd = connect_unix(h->host_path);
	fh->in_off = fh->in_len = 0;
	gmig_decoder_init(&fh->dec, fh->buf, GMIG_PAYLOAD_MAX);
}

static void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	/* write(), not send(): the fake host also speaks over a pty (a serial port). */
	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		ck_assert_msg(w > 0, "send: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

void fhost_send_raw(struct fhost *fh, const void *p, size_t n)
{
	write_all(fh->fd, p, n);
}

void fhost_send(struct fhost *fh, const struct gmig_msg *m)
{
	static uint8_t buf[GMIG_HDR_SIZE + GMIG_PAYLOAD_MAX];
	struct gmig_hdr h = { .version = GMIG_VERSION_MAX, .session = fh->session,
			      .seq = ++fh->seq };
	long n = gmig_msg_encode(buf, sizeof(buf), &h, m);

	ck_assert_msg(n > 0, "encoding %s: %ld", gmig_msg_name(m->type), n);
	write_all(fh->fd, buf, (size_t)n);
}

/* More bytes into the input buffer; 0, -ETIMEDOUT or -EPIPE. */
static int fill(struct fhost *fh, uint64_t deadline)
{
	struct pollfd p = { .fd = fh->fd, .events = POLLIN };
	uint64_t now = now_ms();
	ssize_t r;
	int rc;

	if (now >= deadline)
		return -ETIMEDOUT;
	rc = poll(&p, 1, (int)(deadline - now));
	if (rc == 0)
		return -ETIMEDOUT;
	if (rc < 0)
		return -errno;
	r = read(fh->fd, fh->in, sizeof(fh->in));
	if (r <= 0)
		return -EPIPE;
	fh->in_off = 0;
	fh->in_len = (size_t)r;
	return 0;
}

int fhost_recv(struct fhost *fh, struct gmig_msg *m, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	struct gmig_frame f;
	size_t used;
	int rc;

	for (;;) {
		if (fh->in_off == fh->in_len) {
			rc = fill(fh, deadline);
			if (rc)
				return rc;
		}
		rc = gmig_decoder_feed(&fh->dec, fh->in + fh->in_off, fh->in_len - fh->in_off,
				       &used, &f);
		fh->in_off += used;
		if (rc < 0)
			return rc;
		if (rc == 1)
			break;
	}
	fh->last_hdr_seq = f.hdr.seq;
	return gmig_msg_decode(&f, m);
}

void fhost_expect(struct fhost *fh, struct gmig_msg *m, uint16_t type)
{
	int rc = fhost_recv(fh, m, TL_TIMEOUT_MS);

	ck_assert_msg(rc == 0, "waiting for %s: %s", gmig_msg_name(type), strerror(-rc));
	if (m->type == GMIG_MSG_ERROR && type != GMIG_MSG_ERROR)
		ck_abort_msg("waiting for %s: ERROR %d about %s: %.*s", gmig_msg_name(type),
			     m->u.error.code, gmig_msg_name(m->u.error.ref_type),
			     (int)m->u.error.tail.len, (const char *)m->u.error.tail.ptr);
	ck_assert_msg(m->type == type, "waiting for %s, got %s", gmig_msg_name(type),
		      gmig_msg_name(m->type));
}

void fhost_hello_raw(struct fhost *fh, uint64_t session, const uint8_t *token, uint16_t vmin,
		     uint16_t vmax, uint8_t role, struct gmig_msg *m)
{
	struct gmig_msg h = { .type = GMIG_MSG_HELLO };
	uint64_t keep = fh->session;
	int rc;

	h.u.hello.min_version = vmin;
	h.u.hello.max_version = vmax;
	h.u.hello.role = role;
	h.u.hello.caps = GMIG_CAP_LZ4;
	h.u.hello.session = session;
	if (token)
		memcpy(h.u.hello.token, token, GMIG_TOKEN_SIZE);
	snprintf(h.u.hello.name, sizeof(h.u.hello.name), "fakehost");
	fh->session = 0;
	fhost_send(fh, &h);
	fh->session = keep;
	rc = fhost_recv(fh, m, TL_TIMEOUT_MS);
	ck_assert_msg(rc == 0, "no answer to HELLO: %s", strerror(-rc));
}

void fhost_hello(struct fhost *fh, bool resume, struct gmig_welcome *w)
{
	struct gmig_msg m;

	if (!resume) {
		fh->seq = 0;
		fh->session = 0;
		memset(fh->token, 0, sizeof(fh->token));
	}
	fhost_hello_raw(fh, resume ? fh->session : 0, resume ? fh->token : NULL, 1, 1,
			GMIG_ROLE_HOST, &m);
	if (m.type == GMIG_MSG_ERROR)
		ck_abort_msg("HELLO refused: %d %.*s", m.u.error.code, (int)m.u.error.tail.len,
			     (const char *)m.u.error.tail.ptr);
	ck_assert_uint_eq(m.type, GMIG_MSG_WELCOME);
	ck_assert_uint_eq(m.u.welcome.role, GMIG_ROLE_AGENT);
	ck_assert_uint_ne(m.u.welcome.session, 0);
	fh->session = m.u.welcome.session;
	memcpy(fh->token, m.u.welcome.token, GMIG_TOKEN_SIZE);
	fh->caps = m.u.welcome.caps;
	if (w)
		*w = m.u.welcome;
}

size_t fhost_json_read(struct fhost *fh, char *reply, size_t cap, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	size_t n = 0;

	for (;;) {
		while (fh->in_off < fh->in_len) {
			char ch = (char)fh->in[fh->in_off++];

			if (ch == '\n') {
				reply[n] = '\0';
				return n;
			}
			ck_assert_msg(n + 1 < cap, "JSON reply too long");
			reply[n++] = ch;
		}
		ck_assert_msg(fill(fh, deadline) == 0, "no JSON reply (got %zu bytes)", n);
	}
}

size_t fhost_json(struct fhost *fh, const char *line, char *reply, size_t cap)
{
	write_all(fh->fd, line, strlen(line));
	write_all(fh->fd, "\n", 1);
	return fhost_json_read(fh, reply, cap, TL_TIMEOUT_MS);
}

bool fhost_closed(struct fhost *fh, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int rc;

	fh->in_off = fh->in_len;
	do {
		rc = fill(fh, deadline);
	} while (rc == 0);
	return rc == -EPIPE;
}

/* --- fake clients: a forked process each --- */

struct fc_ctx {
	int fd;
	struct fc_shared *sh;
	enum fc_mode mode;
	uint32_t nregions, region_size;
	struct gmig_decoder dec;
	uint8_t *buf;
	uint8_t in[1 << 16];
	size_t in_off, in_len;
	int got_fd;
	uint64_t session, seq;
	uint8_t *stage;
	uint32_t slots, slot_size;
	uint64_t busy;			/* own slots in use */
	/* A round being staged. */
	bool in_round;
	uint32_t round, region, chunk, piece_off;
	uint64_t chunks, zero, bytes, pieces;
	/* Requests that came during a round wait: answers go in order. */
	struct { struct gmig_hdr hdr; uint8_t *payload; } later[16];
	unsigned int nlater;
	/* The restore. */
	bool in_restore;
	uint8_t covered[TL_MAX_REGIONS][64];	/* per 4 KiB unit of up to 256 KiB */
	uint64_t rs_chunks, rs_bytes;
	bool rs_bad;
	bool stuck_done;
};

#define FC_FAIL(x)	do { (x)->sh->error = __LINE__; _exit(3); } while (0)
#define FC_CHECK(x, cond) do { if (!(cond)) FC_FAIL(x); } while (0)

static void fc_send(struct fc_ctx *x, const struct gmig_msg *m)
{
	static uint8_t out[GMIG_HDR_SIZE + GMIG_BLOB_MAX + 64];
	struct gmig_hdr h = { .version = 1, .session = x->session, .seq = ++x->seq };
	long n = gmig_msg_encode(out, sizeof(out), &h, m);
	const uint8_t *p = out;

	FC_CHECK(x, n > 0);
	while (n > 0) {
		ssize_t w = send(x->fd, p, (size_t)n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0);	/* the agent dropped us */
		p += w;
		n -= w;
	}
}

/* Reads the next frame (and any descriptor riding with it); exits when the agent is gone. */
static void fc_recv(struct fc_ctx *x, struct gmig_frame *f)
{
	for (;;) {
		size_t used;
		int rc;

		if (x->in_off == x->in_len) {
			union {
				struct cmsghdr h;
				char b[CMSG_SPACE(sizeof(int))];
			} ctl;
			struct iovec iov = { x->in, sizeof(x->in) };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
					     .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
			struct pollfd p = { .fd = x->fd, .events = POLLIN };
			struct cmsghdr *cm;
			ssize_t r;

			if (poll(&p, 1, 20000) <= 0)
				_exit(4);
			r = recvmsg(x->fd, &mh, MSG_CMSG_CLOEXEC);
			if (r <= 0)
				_exit(0);
			for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
				if (cm->cmsg_type == SCM_RIGHTS)
					memcpy(&x->got_fd, CMSG_DATA(cm), sizeof(int));
			}
			x->in_off = 0;
			x->in_len = (size_t)r;
		}
		rc = gmig_decoder_feed(&x->dec, x->in + x->in_off, x->in_len - x->in_off, &used, f);
		x->in_off += used;
		FC_CHECK(x, rc >= 0);
		if (rc == 1)
			return;
	}
}

static void fc_simple(struct fc_ctx *x, uint16_t type, uint32_t clients)
{
	struct gmig_msg m = { .type = type };

	m.u.clients.clients = clients;
	fc_send(x, &m);
}

static void fc_error(struct fc_ctx *x, int code, uint16_t ref, const char *text)
{
	struct gmig_msg m = { .type = GMIG_MSG_ERROR };

	m.u.error.code = code;
	m.u.error.ref_type = ref;
	m.u.error.tail = (struct gmig_tail){ (const uint8_t *)text, (uint32_t)strlen(text) };
	fc_send(x, &m);
}

static void fc_inventory(struct fc_ctx *x)
{
	uint8_t recs[TL_MAX_REGIONS * GMIG_REC_region_SIZE];
	struct gmig_msg m = { .type = GMIG_MSG_INV_CLIENT };

	for (uint32_t i = 0; i < x->nregions; i++) {
		struct gmig_rec_region r = { .id = i + 1,
					     .va = 0x7f0000000000ull + ((uint64_t)(i + 1) << 32),
					     .size = x->region_size, .chunk = TL_CHUNK };

		FC_CHECK(x, gmig_rec_put_region(recs + i * GMIG_REC_region_SIZE, &r) > 0);
	}
	m.u.inv_client.index = 0;
	m.u.inv_client.count = 1;
	m.u.inv_client.pid = (uint32_t)getpid();
	snprintf(m.u.inv_client.name, sizeof(m.u.inv_client.name), "fake");
	m.u.inv_client.tail = (struct gmig_tail){ recs, x->nregions * GMIG_REC_region_SIZE };
	fc_send(x, &m);
}

/* Stages what it can of the round in progress; ROUND_END when all is staged. */
static void fc_pump(struct fc_ctx *x)
{
	uint32_t per_region = x->region_size / TL_CHUNK;
	uint64_t total = (uint64_t)x->nregions * per_region * (TL_CHUNK / x->slot_size);

	while (x->region < x->nregions) {
		uint32_t id = x->region + 1;
		uint64_t off = (uint64_t)x->chunk * TL_CHUNK + x->piece_off;
		struct gmig_msg m = { .type = GMIG_MSG_STAGED };
		int slot = -1;

		if (x->mode == FC_DIE_MID_ROUND && x->pieces >= total / 2)
			raise(SIGKILL);
		m.u.staged.region = id;
		m.u.staged.epoch = x->round;
		if (pat_zero_chunk(id, x->chunk, x->round)) {
			m.u.staged.offset = off;
			m.u.staged.length = TL_CHUNK;
			m.u.staged.encoding = GMIG_ENC_ZERO;
			fc_send(x, &m);
			x->zero++;
			x->chunks++;
			x->pieces += TL_CHUNK / x->slot_size;
			goto next_chunk;
		}
		for (uint32_t s = 0; s < x->slots; s++) {
			if (!(x->busy & (1ull << s))) {
				slot = (int)s;
				break;
			}
		}
		if (slot < 0)
			return;		/* the next SLOT_FREE goes on */
		for (uint32_t i = 0; i < x->slot_size; i++)
			x->stage[(size_t)slot * x->slot_size + i] = pat_byte(id, off + i, x->round);
		x->busy |= 1ull << slot;
		m.u.staged.offset = off;
		m.u.staged.length = x->slot_size;
		m.u.staged.encoding = GMIG_ENC_RAW;
		m.u.staged.slot = (uint32_t)slot;
		fc_send(x, &m);
		x->bytes += x->slot_size;
		x->pieces++;
		x->piece_off += x->slot_size;
		if (x->piece_off < TL_CHUNK)
			continue;
		x->chunks++;
next_chunk:
		x->piece_off = 0;
		if (++x->chunk == per_region) {
			x->chunk = 0;
			x->region++;
		}
	}
	{
		struct gmig_msg m = { .type = GMIG_MSG_ROUND_END };

		m.u.round_end.round = x->round;
		m.u.round_end.chunks = x->chunks;
		m.u.round_end.dirty = x->chunks;
		m.u.round_end.zero = x->zero;
		m.u.round_end.bytes = x->bytes;
		x->in_round = false;
		x->sh->rounds++;
		fc_send(x, &m);
	}
}

static void fc_restore_staged(struct fc_ctx *x, const struct gmig_staged *s)
{
	uint32_t r = s->region - 1;
	const uint8_t *p;

	if (!x->in_restore || r >= x->nregions || s->offset % 4096 || s->length % 4096 ||
	    s->offset + s->length > x->region_size) {
		x->rs_bad = true;
		return;
	}
	if (s->encoding == GMIG_ENC_ZERO) {
		for (uint64_t c = s->offset / TL_CHUNK; c < (s->offset + s->length) / TL_CHUNK; c++)
			x->rs_bad |= !pat_zero_chunk(s->region, c, s->epoch);
	} else {
		FC_CHECK(x, s->slot >= x->slots && s->slot < 2 * x->slots);
		p = x->stage + (size_t)s->slot * x->slot_size;
		for (uint32_t i = 0; i < s->length; i++)
			x->rs_bad |= p[i] != pat_byte(s->region, s->offset + i, s->epoch);
	}
	for (uint64_t u = s->offset / 4096; u < (s->offset + s->length) / 4096; u++)
		x->covered[r][u] = 1;
	x->rs_chunks++;
	x->rs_bytes += s->length;
}

static void fc_handle(struct fc_ctx *x, const struct gmig_frame *f)
{
	struct gmig_msg m, a;

	FC_CHECK(x, gmig_msg_decode(f, &m) == 0);
	FC_CHECK(x, f->hdr.session == x->session);
	if (x->in_round && m.type != GMIG_MSG_SLOT_FREE && m.type != GMIG_MSG_PING) {
		FC_CHECK(x, x->nlater < 16);
		x->later[x->nlater].hdr = f->hdr;
		x->later[x->nlater].payload = malloc(f->hdr.len + 1);
		FC_CHECK(x, x->later[x->nlater].payload);
		memcpy(x->later[x->nlater].payload, f->payload, f->hdr.len);
		x->nlater++;
		return;
	}
	switch (m.type) {
	case GMIG_MSG_SLOT_FREE:
		FC_CHECK(x, m.u.slot.slot < x->slots && (x->busy & (1ull << m.u.slot.slot)));
		x->busy &= ~(1ull << m.u.slot.slot);
		if (x->in_round)
			fc_pump(x);
		break;
	case GMIG_MSG_STAGED:
		fc_restore_staged(x, &m.u.staged);
		if (m.u.staged.encoding == GMIG_ENC_RAW) {
			a = (struct gmig_msg){ .type = GMIG_MSG_SLOT_FREE };
			a.u.slot.slot = m.u.staged.slot;
			fc_send(x, &a);
		}
		break;
	case GMIG_MSG_PING:
		a = m;
		a.type = GMIG_MSG_PONG;
		fc_send(x, &a);
		break;
	case GMIG_MSG_INV_REQUEST:
		fc_inventory(x);
		break;
	case GMIG_MSG_ROUND_BEGIN:
		if (x->mode == FC_SILENT_ROUND) {
			x->sh->rounds++;
			break;
		}
		x->in_round = true;
		x->round = m.u.round_begin.round;
		x->region = x->chunk = x->piece_off = 0;
		x->chunks = x->zero = x->bytes = 0;
		fc_pump(x);
		break;
	case GMIG_MSG_FREEZE:
		if (x->mode == FC_STUCK_FREEZE && !x->stuck_done) {
			/* Past the deadline the program gives up and goes on, as libgmig does. */
			x->stuck_done = true;
			sleep_ms(m.u.freeze.deadline_ms + 1500);
			x->sh->freeze_fails++;
			fc_error(x, -ETIMEDOUT, GMIG_MSG_FREEZE, "safe point not reached in time");
			break;
		}
		a = (struct gmig_msg){ .type = GMIG_MSG_FROZEN };
		a.u.frozen.index = 0;
		a.u.frozen.count = 1;
		a.u.frozen.pid = (uint32_t)getpid();
		a.u.frozen.tail = (struct gmig_tail){ (const uint8_t *)"state-blob", 10 };
		/* What the test reads is set before the answer that lets it read. */
		x->sh->frozen = 1;
		x->sh->freezes++;
		fc_send(x, &a);
		break;
	case GMIG_MSG_THAW:
		x->sh->frozen = 0;
		x->sh->thaws++;
		fc_simple(x, GMIG_MSG_THAWED, 1);
		break;
	case GMIG_MSG_RELEASE:
		if (!x->sh->frozen) {
			fc_error(x, -EBUSY, GMIG_MSG_RELEASE, "not frozen");
			break;
		}
		x->sh->releases++;
		fc_simple(x, GMIG_MSG_RELEASED, 1);
		break;
	case GMIG_MSG_ATTACH:
		x->sh->attaches++;
		fc_simple(x, GMIG_MSG_ATTACHED, 1);
		break;
	case GMIG_MSG_RESTORE_BEGIN: {
		uint32_t n = gmig_rec_count(&m.u.restore_begin.tail, GMIG_REC_manifest_SIZE);

		FC_CHECK(x, m.u.restore_begin.clients == 1 && n == x->nregions);
		for (uint32_t i = 0; i < n; i++) {
			struct gmig_rec_manifest r;

			gmig_rec_get_manifest(&m.u.restore_begin.tail, i, &r);
			FC_CHECK(x, r.pid == (uint32_t)getpid() && r.size == x->region_size);
		}
		x->in_restore = true;
		memset(x->covered, 0, sizeof(x->covered));
		x->rs_chunks = x->rs_bytes = 0;
		x->rs_bad = false;
		x->sh->restore_begins++;
		break;
	}
	case GMIG_MSG_RESTORE_END: {
		bool whole = x->in_restore && !x->rs_bad;

		for (uint32_t r = 0; r < x->nregions; r++)
			for (uint32_t u = 0; u < x->region_size / 4096; u++)
				whole &= x->covered[r][u] == 1;
		if (!whole || m.u.totals.bytes != x->rs_bytes) {
			x->sh->restore_bad++;
			fc_error(x, -ENODATA, GMIG_MSG_RESTORE_END, "image incomplete or wrong");
			break;
		}
		a = (struct gmig_msg){ .type = GMIG_MSG_RESTORED };
		a.u.totals.chunks = x->rs_chunks;
		a.u.totals.bytes = x->rs_bytes;
		x->sh->restore_bytes = x->rs_bytes;
		x->sh->restored_ok++;
		fc_send(x, &a);
		break;
	}
	case GMIG_MSG_ABORT:
		a = (struct gmig_msg){ .type = GMIG_MSG_ABORTED };
		a.u.rollback.phase = x->sh->frozen ? GMIG_PHASE_FROZEN : GMIG_PHASE_IDLE;
		a.u.rollback.clients = 1;
		x->sh->frozen = 0;
		x->sh->aborts++;
		fc_send(x, &a);
		break;
	case GMIG_MSG_ERROR:
		break;
	default:
		FC_FAIL(x);
	}
}

static void fc_main(struct fc_ctx *x, const char *path)
{
	struct gmig_msg m = { .type = GMIG_MSG_HELLO };
	struct gmig_frame f;

	x->fd = connect_unix(path);
	x->buf = malloc(GMIG_PAYLOAD_MAX);
	FC_CHECK(x, x->buf);
	gmig_decoder_init(&x->dec, x->buf, GMIG_PAYLOAD_MAX);
	x->got_fd = -1;
	m.u.hello.min_version = 1;
	m.u.hello.max_version = 1;
	m.u.hello.role = GMIG_ROLE_CLIENT;
	m.u.hello.caps = GMIG_CAP_SHM;
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "fake-%d", (int)x->mode);
	fc_send(x, &m);

	fc_recv(x, &f);
	FC_CHECK(x, gmig_msg_decode(&f, &m) == 0 && m.type == GMIG_MSG_WELCOME);
	x->session = m.u.welcome.session;
	fc_recv(x, &f);
	FC_CHECK(x, gmig_msg_decode(&f, &m) == 0 && m.type == GMIG_MSG_STAGING);
	FC_CHECK(x, x->got_fd >= 0 && f.hdr.session == x->session);
	x->slots = m.u.staging.slots;
	x->slot_size = m.u.staging.slot_size;
	x->stage = mmap(NULL, 2ull * x->slots * x->slot_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			x->got_fd, 0);
	FC_CHECK(x, x->stage != MAP_FAILED);
	/* The agent sealed it: the client cannot shrink it under the agent. */
	FC_CHECK(x, ftruncate(x->got_fd, 4096) < 0);
	x->sh->slots = (int)x->slots;
	x->sh->slot_size = (int)x->slot_size;
	fc_inventory(x);
	x->sh->welcomed = 1;

	for (;;) {
		if (!x->in_round && x->nlater) {
			struct gmig_frame lf = { .hdr = x->later[0].hdr, .payload = x->later[0].payload };
			uint8_t *payload = x->later[0].payload;

			memmove(&x->later[0], &x->later[1], --x->nlater * sizeof(x->later[0]));
			fc_handle(x, &lf);
			free(payload);
			continue;
		}
		fc_recv(x, &f);
		fc_handle(x, &f);
	}
}

void fclient_start(struct fclient *fc, struct harness *h, enum fc_mode mode, uint32_t nregions,
		   uint32_t region_size)
{
	ck_assert_uint_le(nregions, TL_MAX_REGIONS);
	ck_assert_uint_le(region_size, 64 * 4096);
	ck_assert_uint_eq(region_size % TL_CHUNK, 0);
	memset(fc, 0, sizeof(*fc));
	fc->mode = mode;
	fc->nregions = nregions;
	fc->region_size = region_size;
	fc->sh = mmap(NULL, sizeof(*fc->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	ck_assert_ptr_ne(fc->sh, MAP_FAILED);
	fc->pid = fork();
	ck_assert_int_ge(fc->pid, 0);
	if (fc->pid == 0) {
		static struct fc_ctx x;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		x.sh = fc->sh;
		x.mode = mode;
		x.nregions = nregions;
		x.region_size = region_size;
		x.sh->pid = (int)getpid();
		fc_main(&x, h->client_path);
		_exit(0);
	}
	if (nlive_clients < sizeof(live_clients) / sizeof(live_clients[0]))
		live_clients[nlive_clients++] = fc->pid;
}

bool fc_wait(volatile int *field, int value, int timeout_ms)
{
	uint64_t t0 = now_ms();

	while (*field < value) {
		if (now_ms() - t0 > (uint64_t)timeout_ms)
			return false;
		sleep_ms(2);
	}
	return true;
}

void fclient_kill(struct fclient *fc)
{
	if (fc->pid > 0) {
		kill(fc->pid, SIGKILL);
		waitpid(fc->pid, NULL, 0);
		fc->pid = 0;
	}
}

void fclient_stop(struct fclient *fc)
{
	ck_assert_msg(fc->sh->error == 0, "fake client %d failed its check at testlib.c:%d",
		      fc->sh->pid, fc->sh->error);
	fclient_kill(fc);
	munmap(fc->sh, sizeof(*fc->sh));
}

/* --- the host's image --- */

void image_add_client(struct image *im, const struct gmig_inv_client *ic)
{
	uint32_t n = gmig_rec_count(&ic->tail, GMIG_REC_region_SIZE);

	for (uint32_t i = 0; i < n; i++) {
		struct gmig_rec_region r;
		struct image_region *ir;
		bool known = false;

		gmig_rec_get_region(&ic->tail, i, &r);
		for (unsigned int k = 0; k < im->n; k++)
			known |= im->r[k].pid == ic->pid && im->r[k].id == r.id;
		if (known)
			continue;
		ck_assert_uint_lt(im->n, sizeof(im->r) / sizeof(im->r[0]));
		ir = &im->r[im->n++];
		ir->pid = ic->pid;
		ir->id = r.id;
		ir->va = r.va;
		ir->size = r.size;
		ir->chunk = r.chunk;
		ir->data = calloc(1, r.size);
		ir->epoch = calloc(r.size / 4096, sizeof(uint32_t));
		ck_assert(ir->data && ir->epoch);
	}
}

static struct image_region *image_find(struct image *im, uint32_t pid, uint32_t id)
{
	for (unsigned int k = 0; k < im->n; k++) {
		if (im->r[k].pid == pid && im->r[k].id == id)
			return &im->r[k];
	}
	return NULL;
}

void image_take(struct image *im, const struct gmig_region_data *rd)
{
	struct image_region *ir = image_find(im, rd->pid, rd->region);

	ck_assert_msg(ir, "REGION_DATA for pid %u region %u, not in the inventory", rd->pid,
		      rd->region);
	ck_assert_uint_le(rd->offset + rd->length, ir->size);
	ck_assert_uint_eq(rd->offset % 4096, 0);
	ck_assert_uint_eq(rd->length % 4096, 0);
	if (rd->encoding == GMIG_ENC_ZERO) {
		for (uint64_t c = rd->offset / TL_CHUNK; c < (rd->offset + rd->length) / TL_CHUNK; c++) {
			if (!pat_zero_chunk(rd->region, c, rd->epoch))
				ck_abort_msg("zero marker for a chunk that is not zero");
		}
		memset(ir->data + rd->offset, 0, rd->length);
	} else {
		ck_assert_uint_eq(rd->encoding, GMIG_ENC_RAW);
		/* Check records each passing assertion: compare first, assert on a mismatch only. */
		for (uint32_t i = 0; i < rd->length; i++) {
			if (rd->tail.ptr[i] != pat_byte(rd->region, rd->offset + i, rd->epoch))
				ck_abort_msg("pid %u region %u byte %llu differs from what was staged",
					     rd->pid, rd->region, (unsigned long long)(rd->offset + i));
		}
		memcpy(ir->data + rd->offset, rd->tail.ptr, rd->length);
	}
	for (uint64_t u = rd->offset / 4096; u < (rd->offset + rd->length) / 4096; u++)
		ir->epoch[u] = rd->epoch;
}

bool image_whole(const struct image *im, uint32_t epoch)
{
	for (unsigned int k = 0; k < im->n; k++) {
		for (uint64_t u = 0; u < im->r[k].size / 4096; u++) {
			if (im->r[k].epoch[u] != epoch)
				return false;
		}
	}
	return true;
}

void image_free(struct image *im)
{
	for (unsigned int k = 0; k < im->n; k++) {
		free(im->r[k].data);
		free(im->r[k].epoch);
	}
	im->n = 0;
}

/* --- host steps --- */

void host_simple(struct fhost *fh, uint16_t type)
{
	struct gmig_msg m = { .type = type };

	fhost_send(fh, &m);
}

void host_freeze(struct fhost *fh, uint32_t deadline_ms)
{
	struct gmig_msg m = { .type = GMIG_MSG_FREEZE };

	m.u.freeze.deadline_ms = deadline_ms;
	fhost_send(fh, &m);
}

void host_attach(struct fhost *fh)
{
	struct gmig_rec_gpu_map map = { .from = 0, .to = 0, .uuid = { 0xa5 } };
	uint8_t rec[GMIG_REC_gpu_map_SIZE];
	struct gmig_msg m = { .type = GMIG_MSG_ATTACH };

	ck_assert_int_gt(gmig_rec_put_gpu_map(rec, &map), 0);
	m.u.attach.tail = (struct gmig_tail){ rec, sizeof(rec) };
	fhost_send(fh, &m);
}

uint32_t host_inventory(struct fhost *fh, struct image *im)
{
	struct gmig_msg m;
	uint32_t n;

	host_simple(fh, GMIG_MSG_INV_REQUEST);
	fhost_expect(fh, &m, GMIG_MSG_INV_GPUS);
	n = m.u.inv_gpus.clients;
	for (uint32_t i = 0; i < n; i++) {
		fhost_expect(fh, &m, GMIG_MSG_INV_CLIENT);
		ck_assert_uint_eq(m.u.inv_client.index, i);
		ck_assert_uint_eq(m.u.inv_client.count, n);
		if (im)
			image_add_client(im, &m.u.inv_client);
	}
	return n;
}

void host_round(struct fhost *fh, struct image *im, uint32_t round, uint32_t base,
		struct gmig_round_end *end)
{
	struct gmig_msg m = { .type = GMIG_MSG_ROUND_BEGIN };

	m.u.round_begin.round = round;
	m.u.round_begin.base = base;
	fhost_send(fh, &m);
	for (;;) {
		int rc = fhost_recv(fh, &m, TL_TIMEOUT_MS);

		ck_assert_msg(rc == 0, "round %u: %s", round, strerror(-rc));
		if (m.type == GMIG_MSG_REGION_DATA) {
			ck_assert_uint_eq(m.u.region_data.epoch, round);
			image_take(im, &m.u.region_data);
			continue;
		}
		if (m.type == GMIG_MSG_ERROR)
			ck_abort_msg("round %u: ERROR %d: %.*s", round, m.u.error.code,
				     (int)m.u.error.tail.len, (const char *)m.u.error.tail.ptr);
		ck_assert_msg(m.type == GMIG_MSG_ROUND_END, "round %u: got %s", round,
			      gmig_msg_name(m.type));
		ck_assert_uint_eq(m.u.round_end.round, round);
		if (end)
			*end = m.u.round_end;
		return;
	}
}

static bool chunk_zero(const uint8_t *p, size_t n)
{
	return p[0] == 0 && !memcmp(p, p + 1, n - 1);
}

void host_restore(struct fhost *fh, const struct image *im, bool lz4)
{
	static uint8_t man[TL_MAX_CLIENTS * TL_MAX_REGIONS * GMIG_REC_manifest_SIZE];
	static char packed[LZ4_COMPRESSBOUND(TL_CHUNK)];
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_BEGIN };
	uint32_t pids[TL_MAX_CLIENTS], npids = 0, frames = 0;
	uint64_t bytes = 0, total = 0;

	for (unsigned int k = 0; k < im->n; k++) {
		const struct image_region *ir = &im->r[k];
		struct gmig_rec_manifest r = { .pid = ir->pid, .region = ir->id, .va = ir->va,
					       .size = ir->size, .chunk = ir->chunk };
		bool seen = false;

		ck_assert_int_gt(gmig_rec_put_manifest(man + k * GMIG_REC_manifest_SIZE, &r), 0);
		for (uint32_t i = 0; i < npids; i++)
			seen |= pids[i] == ir->pid;
		if (!seen)
			pids[npids++] = ir->pid;
		total += ir->size;
	}
	m.u.restore_begin.clients = npids;
	m.u.restore_begin.bytes = total;
	m.u.restore_begin.tail = (struct gmig_tail){ man, im->n * GMIG_REC_manifest_SIZE };
	fhost_send(fh, &m);

	for (unsigned int k = 0; k < im->n; k++) {
		const struct image_region *ir = &im->r[k];

		for (uint64_t off = 0; off < ir->size; off += TL_CHUNK) {
			const uint8_t *p = ir->data + off;

			m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_DATA };
			m.u.region_data.pid = ir->pid;
			m.u.region_data.region = ir->id;
			m.u.region_data.offset = off;
			m.u.region_data.length = TL_CHUNK;
			m.u.region_data.epoch = ir->epoch[off / 4096];
			if (chunk_zero(p, TL_CHUNK)) {
				m.u.region_data.encoding = GMIG_ENC_ZERO;
			} else if (lz4 && (off / TL_CHUNK) % 2) {
				int n = LZ4_compress_default((const char *)p, packed, TL_CHUNK,
							     sizeof(packed));

				ck_assert_int_gt(n, 0);
				m.u.region_data.encoding = n < (int)TL_CHUNK ? GMIG_ENC_LZ4 : GMIG_ENC_RAW;
				m.u.region_data.tail = n < (int)TL_CHUNK ?
					(struct gmig_tail){ (const uint8_t *)packed, (uint32_t)n } :
					(struct gmig_tail){ p, TL_CHUNK };
			} else {
				m.u.region_data.encoding = GMIG_ENC_RAW;
				m.u.region_data.tail = (struct gmig_tail){ p, TL_CHUNK };
			}
			fhost_send(fh, &m);
			frames++;
			bytes += TL_CHUNK;
		}
	}
	m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_END };
	m.u.totals.chunks = frames;
	m.u.totals.bytes = bytes;
	fhost_send(fh, &m);
	fhost_expect(fh, &m, GMIG_MSG_RESTORED);
	/* In the host's units: its frames and their bytes, whatever slots they were cut into. */
	ck_assert_uint_eq(m.u.totals.chunks, frames);
	ck_assert_uint_eq(m.u.totals.bytes, bytes);
}

/* --- restore by reference: a host with capabilities, fds with frames, a client in this process --- */

void fhost_hello_caps(struct fhost *fh, uint64_t caps, struct gmig_welcome *w)
{
	struct gmig_msg m = { .type = GMIG_MSG_HELLO };
	int rc;

	fh->seq = 0;
	fh->session = 0;
	memset(fh->token, 0, sizeof(fh->token));
	m.u.hello.min_version = 1;
	m.u.hello.max_version = 1;
	m.u.hello.role = GMIG_ROLE_HOST;
	m.u.hello.caps = caps;
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "fakehost");
	fhost_send(fh, &m);
	rc = fhost_recv(fh, &m, TL_TIMEOUT_MS);
	ck_assert_msg(rc == 0, "no answer to HELLO: %s", strerror(-rc));
	ck_assert_msg(m.type == GMIG_MSG_WELCOME, "HELLO answered with %s", gmig_msg_name(m.type));
	fh->session = m.u.welcome.session;
	memcpy(fh->token, m.u.welcome.token, GMIG_TOKEN_SIZE);
	fh->caps = m.u.welcome.caps;
	if (w)
		*w = m.u.welcome;
}

/* recvmsg() into @in, keeping a descriptor that rides along in *@fd; 0, -ETIMEDOUT or -EPIPE. */
static int recv_with_fd(int sock, uint8_t *in, size_t cap, size_t *len, int *fd, int timeout_ms)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { in, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b) };
	struct pollfd p = { .fd = sock, .events = POLLIN };
	struct cmsghdr *cm;
	ssize_t r;
	int rc = poll(&p, 1, timeout_ms);

	if (rc == 0)
		return -ETIMEDOUT;
	if (rc < 0)
		return -errno;
	r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (r <= 0)
		return -EPIPE;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	}
	*len = (size_t)r;
	return 0;
}

int fhost_recv_fd(struct fhost *fh, struct gmig_msg *m, int timeout_ms, int *fd)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	struct gmig_frame f;
	size_t used;
	int rc;

	for (;;) {
		if (fh->in_off == fh->in_len) {
			uint64_t now = now_ms();

			if (now >= deadline)
				return -ETIMEDOUT;
			rc = recv_with_fd(fh->fd, fh->in, sizeof(fh->in), &fh->in_len, fd,
					  (int)(deadline - now));
			if (rc)
				return rc;
			fh->in_off = 0;
		}
		rc = gmig_decoder_feed(&fh->dec, fh->in + fh->in_off, fh->in_len - fh->in_off,
				       &used, &f);
		fh->in_off += used;
		if (rc < 0)
			return rc;
		if (rc == 1)
			break;
	}
	fh->last_hdr_seq = f.hdr.seq;
	return gmig_msg_decode(&f, m);
}

/* gmig-status, on a connection of its own, into @reply. */
static void status_line(struct harness *h, char *reply, size_t cap)
{
	struct fhost q;

	fhost_open(&q, h);
	fhost_json(&q, "{\"execute\":\"gmig-status\"}", reply, cap);
	fhost_close(&q);
}

bool harness_wait_session(struct harness *h, const char *state, int timeout_ms)
{
	uint64_t t0 = now_ms();
	char want[64], reply[2048];

	snprintf(want, sizeof(want), "\"state\":\"%s\"", state);
	for (;;) {
		status_line(h, reply, sizeof(reply));
		if (strstr(reply, want))
			return true;
		if (now_ms() - t0 > (uint64_t)timeout_ms)
			return false;
		sleep_ms(10);
	}
}

uint64_t harness_restored_by_ref(struct harness *h)
{
	static const char key[] = "\"bytes-restored-by-reference\":";
	char reply[2048];
	const char *p;

	status_line(h, reply, sizeof(reply));
	p = strstr(reply, key);
	ck_assert_msg(p, "gmig-status without %s: %s", key, reply);
	return strtoull(p + sizeof(key) - 1, NULL, 10);
}

void iclient_send(struct iclient *ic, const struct gmig_msg *m)
{
	static uint8_t out[GMIG_HDR_SIZE + GMIG_BLOB_MAX + 64];
	struct gmig_hdr h = { .version = 1, .session = ic->session, .seq = ++ic->seq };
	long n = gmig_msg_encode(out, sizeof(out), &h, m);

	ck_assert_msg(n > 0, "encoding %s: %ld", gmig_msg_name(m->type), n);
	write_all(ic->fd, out, (size_t)n);
}

/* The next frame; a descriptor riding with it goes to ic->stage_fd. */
static int iclient_frame(struct iclient *ic, struct gmig_frame *f, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		size_t used;
		int rc;

		if (ic->in_off == ic->in_len) {
			uint64_t now = now_ms();

			if (now >= deadline)
				return -ETIMEDOUT;
			rc = recv_with_fd(ic->fd, ic->in, sizeof(ic->in), &ic->in_len, &ic->stage_fd,
					  (int)(deadline - now));
			if (rc)
				return rc;
			ic->in_off = 0;
		}
		rc = gmig_decoder_feed(&ic->dec, ic->in + ic->in_off, ic->in_len - ic->in_off,
				       &used, f);
		ic->in_off += used;
		if (rc < 0)
			return rc;
		if (rc == 1)
			return 0;
	}
}

int iclient_recv(struct iclient *ic, struct gmig_msg *m, int timeout_ms)
{
	struct gmig_frame f;
	int rc = iclient_frame(ic, &f, timeout_ms);

	return rc ? rc : gmig_msg_decode(&f, m);
}

void iclient_expect(struct iclient *ic, struct gmig_msg *m, uint16_t type)
{
	int rc = iclient_recv(ic, m, TL_TIMEOUT_MS);

	ck_assert_msg(rc == 0, "client waiting for %s: %s", gmig_msg_name(type), strerror(-rc));
	ck_assert_msg(m->type == type, "client waiting for %s, got %s", gmig_msg_name(type),
		      gmig_msg_name(m->type));
}

void iclient_open(struct iclient *ic, struct harness *h)
{
	struct gmig_msg m = { .type = GMIG_MSG_HELLO };

	memset(ic, 0, sizeof(*ic));
	ic->stage_fd = -1;
	ic->buf = malloc(GMIG_PAYLOAD_MAX);
	ck_assert_ptr_nonnull(ic->buf);
	gmig_decoder_init(&ic->dec, ic->buf, GMIG_PAYLOAD_MAX);
	ic->fd = connect_unix(h->client_path);
	m.u.hello.min_version = 1;
	m.u.hello.max_version = 1;
	m.u.hello.role = GMIG_ROLE_CLIENT;
	m.u.hello.caps = GMIG_CAP_SHM;
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "iclient");
	iclient_send(ic, &m);
	iclient_expect(ic, &m, GMIG_MSG_WELCOME);
	ic->session = m.u.welcome.session;
	iclient_expect(ic, &m, GMIG_MSG_STAGING);
	ck_assert_msg(ic->stage_fd >= 0, "STAGING came without its memfd");
	ic->slots = m.u.staging.slots;
	ic->slot_size = m.u.staging.slot_size;
	ic->stage = mmap(NULL, 2ull * ic->slots * ic->slot_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED, ic->stage_fd, 0);
	ck_assert_ptr_ne(ic->stage, MAP_FAILED);
}

void iclient_close(struct iclient *ic)
{
	if (ic->stage && ic->stage != MAP_FAILED)
		munmap(ic->stage, 2ull * ic->slots * ic->slot_size);
	ic->stage = NULL;
	if (ic->stage_fd >= 0)
		close(ic->stage_fd);
	ic->stage_fd = -1;
	if (ic->fd >= 0)
		close(ic->fd);
	ic->fd = -1;
	free(ic->buf);
	ic->buf = NULL;
}

void iclient_answer(struct iclient *ic, uint16_t type)
{
	struct gmig_msg m, a = { 0 };

	iclient_expect(ic, &m, type);
	switch (type) {
	case GMIG_MSG_FREEZE:
		a.type = GMIG_MSG_FROZEN;
		a.u.frozen.index = 0;
		a.u.frozen.count = 1;
		a.u.frozen.pid = (uint32_t)getpid();
		a.u.frozen.tail = (struct gmig_tail){ (const uint8_t *)"state", 5 };
		break;
	case GMIG_MSG_RELEASE:
		a.type = GMIG_MSG_RELEASED;
		a.u.clients.clients = 1;
		break;
	case GMIG_MSG_ATTACH:
		a.type = GMIG_MSG_ATTACHED;
		a.u.clients.clients = 1;
		break;
	default:
		ck_abort_msg("iclient_answer: no answer for %s", gmig_msg_name(type));
	}
	iclient_send(ic, &a);
}

void iclient_quiet(struct iclient *ic)
{
	struct gmig_msg m = { .type = GMIG_MSG_PING };

	m.u.nonce.nonce = 0x51ee9;
	iclient_send(ic, &m);
	iclient_expect(ic, &m, GMIG_MSG_PONG);
	ck_assert_uint_eq(m.u.nonce.nonce, 0x51ee9);
}
