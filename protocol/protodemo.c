/*
 * gmig-protodemo: a whole migration session spoken over a socket pair by two
 * processes, an "agent" with a simulated device memory and a "host" that
 * keeps the image, using the real codecs, pre-copy rounds with fingerprints,
 * zero markers and LZ4, freeze, final delta, release, attach and restore.
 * The data path is real; the device is plain memory. It stands in for the
 * migration demo until the daemons exist.
 */
#include <errno.h>
#include <getopt.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "gmig/message.h"
#include "gmig/version.h"

#define PID		4242
#define REGION		1
#define VA		0x7f2000000000ull
#define DEADLINE_MS	5000

struct conn {
	int fd;
	struct gmig_decoder dec;
	uint8_t *payload;
	uint8_t in[64 << 10];
	size_t in_off, in_len;
	uint64_t seq, session, seed;
	FILE *dump;
	uint64_t bytes_out, bytes_in;
};

struct opts {
	size_t mem_mb, chunk;
	int rounds;
	const char *dump;
	bool quiet;
} opt = { 64, GMIG_CHUNK_DEFAULT, 4, NULL, false };

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "gmig-protodemo: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void conn_init(struct conn *c, int fd, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->seed = seed;
	c->payload = malloc(GMIG_PAYLOAD_MAX);
	if (!c->payload)
		die("out of memory");
	gmig_decoder_init(&c->dec, c->payload, GMIG_PAYLOAD_MAX);
}

/* Writes in pieces of random size, as a socket would take them. */
static void write_cut(struct conn *c, const uint8_t *p, size_t n)
{
	if (c->dump && fwrite(p, 1, n, c->dump) != n)
		die("writing the dump: %s", strerror(errno));
	c->bytes_out += n;
	while (n) {
		size_t piece = 1 + rnd(&c->seed) % 200000;
		ssize_t w = write(c->fd, p, piece < n ? piece : n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static void send_msg(struct conn *c, const struct gmig_msg *m)
{
	static uint8_t head[GMIG_HDR_SIZE + 4096];
	struct gmig_hdr h = { .version = GMIG_VERSION_MAX, .session = c->session, .seq = ++c->seq };
	const struct gmig_tail *tail = gmig_msg_tail(m);
	long n = gmig_msg_encode_head(head, sizeof(head), &h, m);

	if (n < 0)
		die("encoding %s: %s", gmig_msg_name(m->type), strerror((int)-n));
	write_cut(c, head, (size_t)n);
	/* Region data and other tails go out from where they are, uncopied. */
	if (tail && tail->len)
		write_cut(c, tail->ptr, tail->len);
}

/* Reads until one whole frame decodes; m's tail points into the decoder. */
static void recv_msg(struct conn *c, struct gmig_msg *m, uint16_t want)
{
	struct gmig_frame f;
	size_t used;
	int rc;

	for (;;) {
		if (c->in_off == c->in_len) {
			size_t piece = 1 + rnd(&c->seed) % sizeof(c->in);
			ssize_t r = read(c->fd, c->in, piece);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				die("peer closed the connection");
			c->in_off = 0;
			c->in_len = (size_t)r;
			c->bytes_in += (size_t)r;
		}
		rc = gmig_decoder_feed(&c->dec, c->in + c->in_off, c->in_len - c->in_off, &used, &f);
		c->in_off += used;
		if (rc < 0)
			die("bad frame: %s", gmig_proto_strerror(rc));
		if (rc == 1)
			break;
	}
	rc = gmig_msg_decode(&f, m);
	if (rc)
		die("bad %s: %s", gmig_msg_name(f.hdr.type), gmig_proto_strerror(rc));
	if (want && m->type != want)
		die("expected %s, got %s", gmig_msg_name(want), gmig_msg_name(m->type));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return p[0] == 0 && !memcmp(p, p + 1, n - 1);
}

/* Stands in for a training step: it rewrites a shrinking share of memory. */
static void program_step(uint8_t *mem, size_t size, int step, uint64_t *seed)
{
	size_t writes = (size / opt.chunk) / (size_t)(2 << step);

	for (size_t i = 0; i < writes; i++) {
		size_t off = rnd(seed) % (size - 256);
		float *w = (float *)(mem + (off & ~(size_t)3));

		for (int k = 0; k < 64; k++)
			w[k] = (float)(rnd(seed) % 1000) * 0.001f;
	}
}

/* Sends the chunks whose fingerprints changed; returns the statistics. */
static void send_round(struct conn *c, const uint8_t *mem, size_t size, uint64_t *prints,
		       uint32_t round, bool full, struct gmig_round_end *st)
{
	size_t chunks = size / opt.chunk;
	int bound = LZ4_compressBound((int)opt.chunk);
	uint8_t *lz = malloc((size_t)bound);
	double t0 = now();

	if (!lz)
		die("out of memory");
	memset(st, 0, sizeof(*st));
	st->round = round;
	for (size_t i = 0; i < chunks; i++) {
		const uint8_t *p = mem + i * opt.chunk;
		uint64_t fp = XXH3_64bits(p, opt.chunk);
		struct gmig_msg m = { .type = GMIG_MSG_REGION_DATA };
		struct gmig_region_data *d = &m.u.region_data;
		int z;

		st->chunks++;
		if (!full && fp == prints[i])
			continue;
		prints[i] = fp;
		st->dirty++;
		*d = (struct gmig_region_data){ .pid = PID, .region = REGION, .offset = i * opt.chunk,
			.length = (uint32_t)opt.chunk, .epoch = round };
		if (all_zero(p, opt.chunk)) {
			d->encoding = GMIG_ENC_ZERO;
			st->zero++;
		} else if ((z = LZ4_compress_default((const char *)p, (char *)lz, (int)opt.chunk, bound)) > 0 &&
			   (size_t)z < opt.chunk * 7 / 8) {
			d->encoding = GMIG_ENC_LZ4;
			d->tail = (struct gmig_tail){ lz, (uint32_t)z };
		} else {
			d->encoding = GMIG_ENC_RAW;
			d->tail = (struct gmig_tail){ p, (uint32_t)opt.chunk };
		}
		st->bytes += d->tail.len;
		send_msg(c, &m);
	}
	st->usecs = (uint64_t)((now() - t0) * 1e6);
	free(lz);
	struct gmig_msg end = { .type = GMIG_MSG_ROUND_END, .u.round_end = *st };
	send_msg(c, &end);
}

/* Applies one REGION_DATA or RESTORE_DATA to an image; it trusts nothing. */
static void apply_data(uint8_t *img, size_t size, const struct gmig_region_data *d)
{
	if (d->pid != PID || d->region != REGION || d->offset > size || d->length > size - d->offset)
		die("region data outside the image");
	switch (d->encoding) {
	case GMIG_ENC_ZERO:
		memset(img + d->offset, 0, d->length);
		break;
	case GMIG_ENC_RAW:
		memcpy(img + d->offset, d->tail.ptr, d->length);
		break;
	case GMIG_ENC_LZ4:
		if (LZ4_decompress_safe((const char *)d->tail.ptr, (char *)img + d->offset,
					(int)d->tail.len, (int)d->length) != (int)d->length)
			die("corrupt LZ4 block at offset %llu", (unsigned long long)d->offset);
		break;
	}
}

static void agent(int fd)
{
	size_t size = opt.mem_mb << 20, chunks = size / opt.chunk;
	uint8_t *mem = calloc(1, size), *target;
	uint64_t *prints = calloc(chunks, sizeof(*prints)), seed = 7, sum;
	uint8_t recs[GMIG_REC_gpu_SIZE * 2], region_rec[GMIG_REC_region_SIZE];
	struct gmig_rec_gpu gpu = { .index = 0, .mem_bytes = 16ull << 30, .model = "gmig simulated GPU",
				    .backend = GMIG_BACKEND_SIM };
	struct gmig_rec_region region = { .id = REGION, .va = VA, .size = size, .chunk = (uint32_t)opt.chunk };
	static const char blob[] = "streams=2 events=1 graphs=0 kernels-in-flight=0";
	struct gmig_round_end st;
	struct gmig_msg m;
	struct conn c;
	uint16_t version;

	if (!mem || !prints)
		die("out of memory");
	conn_init(&c, fd, 0xa9e47);
	/* The program's device memory: weights, zero padding, optimizer state. */
	for (size_t i = 0; i < size / 4; i++)
		if ((i / (opt.chunk / 4)) % 3 != 2)
			((float *)mem)[i] = (float)(rnd(&seed) % ((i / 4096) % 5 ? 16 : 1000000));

	m = (struct gmig_msg){ .type = GMIG_MSG_HELLO, .u.hello = { .min_version = GMIG_VERSION_MIN,
		.max_version = GMIG_VERSION_MAX, .role = GMIG_ROLE_AGENT, .caps = GMIG_CAP_LZ4,
		.name = "demo-guest" } };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_WELCOME);
	if (gmig_version_agree(GMIG_VERSION_MIN, GMIG_VERSION_MAX, m.u.welcome.version,
			       m.u.welcome.version, &version))
		die("no common protocol version");
	c.session = m.u.welcome.session;

	recv_msg(&c, &m, GMIG_MSG_INV_REQUEST);
	gmig_rec_put_gpu(recs, &gpu);
	gpu.index = 1;
	gmig_rec_put_gpu(recs + GMIG_REC_gpu_SIZE, &gpu);
	m = (struct gmig_msg){ .type = GMIG_MSG_INV_GPUS, .u.inv_gpus = { .clients = 1,
		.tail = { recs, sizeof(recs) } } };
	send_msg(&c, &m);
	gmig_rec_put_region(region_rec, &region);
	m = (struct gmig_msg){ .type = GMIG_MSG_INV_CLIENT, .u.inv_client = { .index = 0, .count = 1,
		.pid = PID, .gpu = 0, .name = "train.py", .tail = { region_rec, sizeof(region_rec) } } };
	send_msg(&c, &m);

	for (int r = 1;; r++) {
		recv_msg(&c, &m, 0);
		if (m.type == GMIG_MSG_FREEZE)
			break;
		if (m.type != GMIG_MSG_ROUND_BEGIN)
			die("unexpected %s", gmig_msg_name(m.type));
		send_round(&c, mem, size, prints, m.u.round_begin.round, !m.u.round_begin.base, &st);
		program_step(mem, size, r, &seed);	/* the program runs between rounds */
	}
	m = (struct gmig_msg){ .type = GMIG_MSG_FROZEN, .u.frozen = { .index = 0, .count = 1, .pid = PID,
		.tail = { (const uint8_t *)blob, sizeof(blob) - 1 } } };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_ROUND_BEGIN);
	send_round(&c, mem, size, prints, m.u.round_begin.round, false, &st);
	sum = XXH3_64bits(mem, size);

	recv_msg(&c, &m, GMIG_MSG_RELEASE);
	free(mem);	/* the source GPU's memory is gone */
	m = (struct gmig_msg){ .type = GMIG_MSG_RELEASED, .u.clients.clients = 1 };
	send_msg(&c, &m);

	recv_msg(&c, &m, GMIG_MSG_ATTACH);
	target = calloc(1, size);	/* a fresh GPU: nothing of the old contents */
	if (!target)
		die("out of memory");
	m = (struct gmig_msg){ .type = GMIG_MSG_ATTACHED, .u.clients.clients = 1 };
	send_msg(&c, &m);

	recv_msg(&c, &m, GMIG_MSG_RESTORE_BEGIN);
	struct gmig_totals got = { 0 };
	for (;;) {
		recv_msg(&c, &m, 0);
		if (m.type == GMIG_MSG_RESTORE_END)
			break;
		if (m.type != GMIG_MSG_RESTORE_DATA)
			die("unexpected %s", gmig_msg_name(m.type));
		apply_data(target, size, &m.u.region_data);
		got.chunks++;
		got.bytes += m.u.region_data.length;
	}
	if (XXH3_64bits(target, size) != sum)
		die("restored memory differs from the memory frozen on the source");
	m = (struct gmig_msg){ .type = GMIG_MSG_RESTORED, .u.totals = got };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_THAW);
	m = (struct gmig_msg){ .type = GMIG_MSG_THAWED, .u.clients.clients = 1 };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_BYE);
	free(target);
	free(prints);
	free(c.payload);
	exit(0);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;

	if (opt.quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* Receives one round into the image, then prints and returns its statistics. */
static void recv_round(struct conn *c, uint8_t *img, size_t size, const char *label,
		       struct gmig_round_end *st)
{
	struct gmig_msg m;
	uint64_t frames = 0;

	for (;;) {
		recv_msg(c, &m, 0);
		if (m.type == GMIG_MSG_ROUND_END)
			break;
		if (m.type != GMIG_MSG_REGION_DATA)
			die("unexpected %s", gmig_msg_name(m.type));
		apply_data(img, size, &m.u.region_data);
		frames++;
	}
	*st = m.u.round_end;
	if (frames != st->dirty)
		die("round %u: %llu frames but %llu dirty chunks", st->round,
		    (unsigned long long)frames, (unsigned long long)st->dirty);
	say("  %-9s %5u %8llu %8llu %8llu %10.1f\n", label, st->round,
	    (unsigned long long)st->dirty, (unsigned long long)st->zero,
	    (unsigned long long)st->bytes >> 10, (double)st->usecs / 1000);
}

static void host(int fd, FILE *dump)
{
	size_t size = opt.mem_mb << 20;
	uint8_t *img = calloc(1, size);
	struct gmig_rec_gpu gpu;
	struct gmig_rec_region reg;
	struct gmig_round_end st;
	struct gmig_msg m;
	struct conn c;
	uint16_t version;
	double t0 = now(), tf;
	uint64_t last_dirty = UINT64_MAX;

	if (!img)
		die("out of memory");
	conn_init(&c, fd, 0x4057);
	c.dump = dump;

	recv_msg(&c, &m, GMIG_MSG_HELLO);
	if (gmig_version_agree(GMIG_VERSION_MIN, GMIG_VERSION_MAX, m.u.hello.min_version,
			       m.u.hello.max_version, &version))
		die("no common protocol version");
	say("session: %s \"%s\" speaks v%u-v%u; agreed v%u\n", gmig_role_name(m.u.hello.role),
	    m.u.hello.name, m.u.hello.min_version, m.u.hello.max_version, version);
	c.session = 0x5e55000000000000ull | (uint64_t)getpid();
	m = (struct gmig_msg){ .type = GMIG_MSG_WELCOME, .u.welcome = { .version = version,
		.role = GMIG_ROLE_HOST, .caps = GMIG_CAP_LZ4, .session = c.session } };
	memset(m.u.welcome.token, 0x5a, sizeof(m.u.welcome.token));
	send_msg(&c, &m);

	m = (struct gmig_msg){ .type = GMIG_MSG_INV_REQUEST };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_INV_GPUS);
	uint32_t clients = m.u.inv_gpus.clients;
	for (uint32_t i = 0; i < gmig_rec_count(&m.u.inv_gpus.tail, GMIG_REC_gpu_SIZE); i++) {
		gmig_rec_get_gpu(&m.u.inv_gpus.tail, i, &gpu);
		say("gpu %u: %s, %s, %llu GiB\n", gpu.index, gpu.model, gmig_backend_name(gpu.backend),
		    (unsigned long long)gpu.mem_bytes >> 30);
	}
	for (uint32_t i = 0; i < clients; i++) {
		recv_msg(&c, &m, GMIG_MSG_INV_CLIENT);
		gmig_rec_get_region(&m.u.inv_client.tail, 0, &reg);
		say("client %u: pid %u \"%s\", region %u at 0x%llx, %llu MiB, %u KiB chunks\n", i,
		    m.u.inv_client.pid, m.u.inv_client.name, reg.id, (unsigned long long)reg.va,
		    (unsigned long long)reg.size >> 20, reg.chunk >> 10);
		if (reg.size != size)
			die("region size %llu, expected %zu", (unsigned long long)reg.size, size);
	}

	say("\n  %-9s %5s %8s %8s %8s %10s\n", "phase", "round", "changed", "zero", "sent KiB", "ms");
	uint32_t round = 0;
	while (round < (uint32_t)opt.rounds) {
		round++;
		m = (struct gmig_msg){ .type = GMIG_MSG_ROUND_BEGIN,
			.u.round_begin = { .round = round, .base = round - 1 } };
		send_msg(&c, &m);
		recv_round(&c, img, size, "pre-copy", &st);
		/* Converged: the changed set stopped shrinking. */
		if (st.dirty >= last_dirty)
			break;
		last_dirty = st.dirty;
	}

	tf = now();
	m = (struct gmig_msg){ .type = GMIG_MSG_FREEZE, .u.freeze.deadline_ms = DEADLINE_MS };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_FROZEN);
	say("  frozen: pid %u, state \"%.*s\"\n", m.u.frozen.pid, (int)m.u.frozen.tail.len,
	    (const char *)m.u.frozen.tail.ptr);
	m = (struct gmig_msg){ .type = GMIG_MSG_ROUND_BEGIN,
		.u.round_begin = { .round = round + 1, .base = round } };
	send_msg(&c, &m);
	recv_round(&c, img, size, "final", &st);
	m = (struct gmig_msg){ .type = GMIG_MSG_RELEASE };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_RELEASED);

	uint8_t map[GMIG_REC_gpu_map_SIZE];
	struct gmig_rec_gpu_map gm = { .from = 0, .to = 1 };
	gmig_rec_put_gpu_map(map, &gm);
	m = (struct gmig_msg){ .type = GMIG_MSG_ATTACH, .u.attach.tail = { map, sizeof(map) } };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_ATTACHED);

	uint8_t man[GMIG_REC_manifest_SIZE];
	struct gmig_rec_manifest mr = { .pid = PID, .region = REGION, .va = VA, .size = size,
					 .chunk = (uint32_t)opt.chunk };
	gmig_rec_put_manifest(man, &mr);
	m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_BEGIN, .u.restore_begin = { .clients = 1,
		.bytes = size, .tail = { man, sizeof(man) } } };
	send_msg(&c, &m);
	struct gmig_totals sent = { 0 };
	for (size_t off = 0; off < size; off += opt.chunk) {
		m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_DATA, .u.region_data = { .pid = PID,
			.region = REGION, .offset = off, .length = (uint32_t)opt.chunk, .epoch = round + 1 } };
		if (all_zero(img + off, opt.chunk)) {
			m.u.region_data.encoding = GMIG_ENC_ZERO;
		} else {
			m.u.region_data.encoding = GMIG_ENC_RAW;
			m.u.region_data.tail = (struct gmig_tail){ img + off, (uint32_t)opt.chunk };
		}
		send_msg(&c, &m);
		sent.chunks++;
		sent.bytes += opt.chunk;
	}
	m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_END, .u.totals = sent };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_RESTORED);
	if (m.u.totals.chunks != sent.chunks || m.u.totals.bytes != sent.bytes)
		die("guest applied %llu chunks, host sent %llu", (unsigned long long)m.u.totals.chunks,
		    (unsigned long long)sent.chunks);
	m = (struct gmig_msg){ .type = GMIG_MSG_THAW };
	send_msg(&c, &m);
	recv_msg(&c, &m, GMIG_MSG_THAWED);
	say("  restored %llu chunks; guest verified its memory bit for bit; thawed\n",
	    (unsigned long long)sent.chunks);
	m = (struct gmig_msg){ .type = GMIG_MSG_BYE };
	send_msg(&c, &m);

	double total = now() - t0;
	say("\n%llu KiB received, %llu KiB sent, %.2f s in all (%.2f s from freeze to thaw)\n",
	    (unsigned long long)c.bytes_in >> 10, (unsigned long long)c.bytes_out >> 10, total,
	    now() - tf);
	free(img);
	free(c.payload);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gmig-protodemo [options]\n"
		"Speaks a whole gmig migration session between two processes over a socket pair,\n"
		"with a simulated device memory, and checks the restored memory bit for bit.\n"
		"  -m, --memory MIB   device memory of the simulated program (default 64)\n"
		"  -c, --chunk KIB    fingerprint chunk (default 64)\n"
		"  -r, --rounds N     most pre-copy rounds (default 4)\n"
		"  -d, --dump FILE    also write the host's outgoing frames to FILE\n"
		"  -q, --quiet        print nothing; the exit status tells\n"
		"  -h, --help         show this help\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "memory", required_argument, NULL, 'm' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "dump", required_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	FILE *dump = NULL;
	int sv[2], status, ch;
	unsigned long v;
	char *end;
	pid_t pid;

	while ((ch = getopt_long(argc, argv, "m:c:r:d:qh", opts, NULL)) != -1) {
		switch (ch) {
		case 'm':
		case 'c':
		case 'r':
			v = strtoul(optarg, &end, 10);
			if (*end || !v || v > 65536)
				die("bad number '%s' for -%c", optarg, ch);
			if (ch == 'm')
				opt.mem_mb = v;
			else if (ch == 'c')
				opt.chunk = v << 10;
			else
				opt.rounds = (int)v;
			break;
		case 'd':
			opt.dump = optarg;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (opt.chunk < GMIG_CHUNK_MIN || opt.chunk > GMIG_CHUNK_MAX || (opt.chunk & (opt.chunk - 1)))
		die("chunk must be a power of two from %u to %u KiB", GMIG_CHUNK_MIN >> 10,
		    GMIG_CHUNK_MAX >> 10);
	if ((opt.mem_mb << 20) % opt.chunk)
		die("memory must be a whole number of chunks");
	if (opt.dump && !(dump = fopen(opt.dump, "wb")))
		die("cannot write %s: %s", opt.dump, strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair: %s", strerror(errno));

	say("gmig protocol demo: a guest agent and a host, %zu MiB of simulated device memory\n"
	    "(plain memory standing in for a GPU), %zu KiB chunks\n\n", opt.mem_mb, opt.chunk >> 10);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		agent(sv[1]);
	}
	close(sv[1]);
	host(sv[0], dump);
	close(sv[0]);
	if (dump && fclose(dump))
		die("writing %s: %s", opt.dump, strerror(errno));
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		die("the agent failed");
	say("demo passed\n");
	return 0;
}
