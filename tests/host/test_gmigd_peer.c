/*
 * The peer link and the control socket under hostile or mistaken input: a wrong secret, an
 * image over the destination's cap, malformed and out-of-order peer frames (before and after
 * authentication), malformed control requests and gmigctl's exit codes. The daemons must
 * refuse each cleanly, and keep serving: a migration afterwards still goes through.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "auth.h"
#include "gmig/message.h"
#include "gmig/qga.h"
#include "gmig/version.h"
#include "harness.h"

#define STEPS		100
#define STEP_MS		10
#define MEM_MB		6

static struct rig rig;
static char guest_addr[160];

static void setup(void)
{
	rig_setup(&rig, 64);
	snprintf(guest_addr, sizeof(guest_addr), "unix:%s", rig.agent_sock);
	ck_assert_int_ge(sodium_init(), 0);
}

static void teardown(void)
{
	rig_teardown(&rig);
}

static struct json_object *migrate_args(uint16_t port)
{
	struct json_object *a = json_object_new_object();
	char to[32];

	snprintf(to, sizeof(to), "127.0.0.1:%u", port);
	json_object_object_add(a, "guest", json_object_new_string(guest_addr));
	json_object_object_add(a, "to", json_object_new_string(to));
	json_object_object_add(a, "map", json_object_new_string("0:1"));
	return a;
}

/* A migration the destination must refuse before anything is touched; the program is unharmed. */
static void refused_migration(const char *why)
{
	char *ref = rig_reference(&rig, STEPS, MEM_MB), *got;
	struct json_object *st;

	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);
	st = ctl_wait(rig.src.sock, ctl_job(rig.src.sock, "migrate", migrate_args(rig.dst.port)));
	ck_assert_msg(!strcmp(js(st, "result"), "failed"), "%s: %s", js(st, "result"),
		      js(st, "error"));
	ck_assert_msg(strstr(js(st, "error"), why), "error '%s' lacks '%s'", js(st, "error"), why);
	json_object_put(st);
	ck_assert_int_eq(rig_reap(rig.prog, 60000), 0);
	rig.prog = 0;
	got = slurp_file(rig.prog_out);
	assert_same_results(got, ref);
	free(got);
	free(ref);
}

/* 1: a destination with another secret refuses the source. */
START_TEST(test_wrong_secret)
{
	char other[160];
	int fd;

	snprintf(other, sizeof(other), "%s/other.secret", rig.dir);
	fd = open(other, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_eq(write(fd, "not the secret the source holds\n", 32), 32);
	close(fd);
	rig_daemon(&rig, &rig.src, "src", false, NULL, NULL);
	rig_daemon(&rig, &rig.dst, "dst", true, other, NULL);
	refused_migration("wrong peer secret");
}
END_TEST

/* 2: an image over the destination's cap is refused before any data is taken. */
START_TEST(test_image_cap)
{
	static const char *const cap[] = { "image_cap=2M", NULL };

	rig_daemon(&rig, &rig.src, "src", false, NULL, NULL);
	rig_daemon(&rig, &rig.dst, "dst", true, NULL, cap);
	refused_migration("passes image_cap");
}
END_TEST

/* --- a raw peer, to say what a real gmigd never would --- */

struct raw {
	int fd;
	struct gmig_decoder dec;
	uint8_t *payload;
	uint8_t in[1 << 16];
	size_t off, len;
	uint64_t seq, session;
	uint8_t hello[128];
	size_t hello_len;
};

static void raw_open(struct raw *r, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	memset(r, 0, sizeof(*r));
	r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	r->payload = malloc(GMIG_PAYLOAD_MAX);
	gmig_decoder_init(&r->dec, r->payload, GMIG_PAYLOAD_MAX);
}

static void raw_close(struct raw *r)
{
	close(r->fd);
	free(r->payload);
}

static void raw_bytes(struct raw *r, const void *b, size_t n)
{
	ck_assert_int_eq(send(r->fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

static size_t raw_encode(struct raw *r, const struct gmig_msg *m, uint8_t *buf, size_t cap)
{
	struct gmig_hdr h = { .version = GMIG_VERSION_MIN, .session = r->session, .seq = ++r->seq };
	long n = gmig_msg_encode(buf, cap, &h, m);

	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

static void raw_send(struct raw *r, const struct gmig_msg *m)
{
	static uint8_t buf[GMIG_HDR_SIZE + GMIG_PAYLOAD_MAX];
	size_t n = raw_encode(r, m, buf, sizeof(buf));

	if (m->type == GMIG_MSG_HELLO) {
		memcpy(r->hello, buf + GMIG_HDR_SIZE, n - GMIG_HDR_SIZE);
		r->hello_len = n - GMIG_HDR_SIZE;
	}
	raw_bytes(r, buf, n);
}

/* The next message's type, or -ECONNRESET when the destination closed. */
static int raw_recv(struct raw *r, struct gmig_msg *m)
{
	struct gmig_frame f;
	size_t used;
	int rc;

	for (;;) {
		if (r->off == r->len) {
			struct pollfd p = { .fd = r->fd, .events = POLLIN };
			ssize_t n;

			ck_assert_msg(poll(&p, 1, 10000) == 1, "the destination said nothing");
			n = recv(r->fd, r->in, sizeof(r->in), 0);
			if (n <= 0)
				return -ECONNRESET;
			r->off = 0;
			r->len = (size_t)n;
		}
		rc = gmig_decoder_feed(&r->dec, r->in + r->off, r->len - r->off, &used, &f);
		r->off += used;
		ck_assert_int_ge(rc, 0);
		if (rc == 1)
			break;
	}
	ck_assert_int_eq(gmig_msg_decode(&f, m), 0);
	return m->type;
}

static void raw_hello(struct raw *r, uint8_t role, uint16_t min, uint16_t max)
{
	struct gmig_msg m = { .type = GMIG_MSG_HELLO, .u.hello = { .min_version = min,
		.max_version = max, .role = role, .name = "raw" } };

	raw_send(r, &m);
}

/* HELLO, CHALLENGE, AUTH (with the right or a wrong secret); with the right one, PROOF, WELCOME. */
static int raw_auth(struct raw *r, bool right)
{
	struct auth_secret s;
	struct gmig_msg m;
	char err[256];
	uint8_t nonce_d[GMIG_MAC_SIZE], nonce_s[GMIG_MAC_SIZE], mac[GMIG_MAC_SIZE];

	ck_assert_int_eq(auth_secret_load(&s, rig.secret, err, sizeof(err)), 0);
	if (!right)
		s.key[0] ^= 1;
	raw_hello(r, GMIG_ROLE_PEER, GMIG_VERSION_MIN, GMIG_VERSION_MAX);
	ck_assert_int_eq(raw_recv(r, &m), GMIG_MSG_CHALLENGE);
	memcpy(nonce_d, m.u.challenge.nonce, sizeof(nonce_d));
	auth_nonce(nonce_s);
	memset(&m, 0, sizeof(m));
	m.type = GMIG_MSG_AUTH;
	auth_mac_source(&s, nonce_d, r->hello, r->hello_len, m.u.auth.mac);
	memcpy(m.u.auth.nonce, nonce_s, sizeof(nonce_s));
	raw_send(r, &m);
	if (!right)
		return 0;
	ck_assert_int_eq(raw_recv(r, &m), GMIG_MSG_PROOF);
	auth_mac_dest(&s, nonce_s, nonce_d, mac);
	ck_assert(auth_mac_equal(mac, m.u.proof.mac));
	ck_assert_int_eq(raw_recv(r, &m), GMIG_MSG_WELCOME);
	r->session = m.u.welcome.session;
	auth_secret_clear(&s);
	return 0;
}

static void raw_image(struct raw *r, uint64_t bytes, const char *channel)
{
	struct gmig_msg m = { .type = GMIG_MSG_IMAGE_BEGIN };

	snprintf(m.u.image_begin.guest, sizeof(m.u.image_begin.guest), "vm-raw");
	m.u.image_begin.bytes = bytes;
	m.u.image_begin.tail = (struct gmig_tail){ (const uint8_t *)channel,
						   (uint32_t)strlen(channel) };
	raw_send(r, &m);
}

static void raw_inventory(struct raw *r)
{
	struct gmig_rec_gpu g = { .index = 0, .mem_bytes = 1 << 30, .backend = GMIG_BACKEND_SIM,
				  .model = "raw" };
	struct gmig_rec_region reg = { .id = 1, .va = 1 << 30, .size = 1 << 20, .chunk = 65536 };
	uint8_t gb[GMIG_REC_gpu_SIZE], rb[GMIG_REC_region_SIZE];
	struct gmig_msg m = { .type = GMIG_MSG_INV_GPUS };

	gmig_rec_put_gpu(gb, &g);
	gmig_rec_put_region(rb, &reg);
	m.u.inv_gpus.clients = 1;
	m.u.inv_gpus.tail = (struct gmig_tail){ gb, sizeof(gb) };
	raw_send(r, &m);
	memset(&m, 0, sizeof(m));
	m.type = GMIG_MSG_INV_CLIENT;
	m.u.inv_client = (struct gmig_inv_client){ .index = 0, .count = 1, .pid = 42, .gpu = 0,
		.name = "raw", .tail = { rb, sizeof(rb) } };
	raw_send(r, &m);
}

static void raw_region(struct raw *r, uint32_t region, uint64_t offset)
{
	static uint8_t data[65536];
	struct gmig_msg m = { .type = GMIG_MSG_REGION_DATA, .u.region_data = { .pid = 42,
		.region = region, .offset = offset, .length = sizeof(data),
		.encoding = GMIG_ENC_RAW, .epoch = 1, .tail = { data, sizeof(data) } } };

	raw_send(r, &m);
}

enum step { S_GARBAGE, S_PING_FIRST, S_HELLO_HOST, S_HELLO_FUTURE, S_WRONG_MAC, S_OVERSIZE,
	    S_BAD_SUM, S_DATA_EARLY, S_CAP, S_BAD_CHANNEL, S_OFF_REGION, S_LZ4_BOMB, S_SESSION,
	    S_HANDOVER_EARLY };

static const struct {
	const char *what;
	enum step step;
	int type;	/* the answer: ERROR (with code) or MIGRATED (with code) */
	int code;
} rows[] = {
	/* 0 */ { "garbage", S_GARBAGE, GMIG_MSG_ERROR, -EILSEQ },
	/* 1 */ { "PING before HELLO", S_PING_FIRST, GMIG_MSG_ERROR, -EPROTO },
	/* 2 */ { "HELLO from a host", S_HELLO_HOST, GMIG_MSG_ERROR, -EPROTO },
	/* 3 */ { "HELLO of versions 7 to 9", S_HELLO_FUTURE, GMIG_MSG_ERROR, -EPROTONOSUPPORT },
	/* 4 */ { "AUTH with a wrong MAC", S_WRONG_MAC, GMIG_MSG_ERROR, -EACCES },
	/* 5 */ { "a length over the maximum", S_OVERSIZE, GMIG_MSG_ERROR, -EMSGSIZE },
	/* 6 */ { "a bad checksum", S_BAD_SUM, GMIG_MSG_ERROR, -EBADMSG },
	/* 7 */ { "data before IMAGE_BEGIN", S_DATA_EARLY, GMIG_MSG_ERROR, -EPROTO },
	/* 8 */ { "an image over the cap", S_CAP, GMIG_MSG_ERROR, -ENOSPC },
	/* 9 */ { "a channel that is no address", S_BAD_CHANNEL, GMIG_MSG_ERROR, -EINVAL },
	/* 10 */ { "data outside the region", S_OFF_REGION, GMIG_MSG_ERROR, -ERANGE },
	/* 11 */ { "an LZ4 block that does not decode", S_LZ4_BOMB, GMIG_MSG_ERROR, -EPROTO },
	/* 12 */ { "a frame of another session", S_SESSION, GMIG_MSG_ERROR, -EPROTO },
	/* 13 */ { "a hand-over of an incomplete image", S_HANDOVER_EARLY, GMIG_MSG_MIGRATED,
		   -ENODATA },
};

static void play(struct raw *r, enum step step)
{
	uint8_t buf[GMIG_HDR_SIZE + 128];
	struct gmig_msg m = { .type = GMIG_MSG_PING };
	size_t n;

	switch (step) {
	case S_GARBAGE:
		raw_bytes(r, "this is not a gmig frame at all, but it is long enough\n", 55);
		break;
	case S_PING_FIRST:
		raw_send(r, &m);
		break;
	case S_HELLO_HOST:
		raw_hello(r, GMIG_ROLE_HOST, GMIG_VERSION_MIN, GMIG_VERSION_MAX);
		break;
	case S_HELLO_FUTURE:
		raw_hello(r, GMIG_ROLE_PEER, 7, 9);
		break;
	case S_WRONG_MAC:
		raw_auth(r, false);
		break;
	case S_OVERSIZE:
		n = raw_encode(r, &m, buf, sizeof(buf));
		buf[11] = 0x7f;		/* length over GMIG_PAYLOAD_MAX */
		raw_bytes(r, buf, n);
		break;
	case S_BAD_SUM:
		n = raw_encode(r, &m, buf, sizeof(buf));
		buf[n - 1] ^= 1;
		raw_bytes(r, buf, n);
		break;
	case S_DATA_EARLY:
		raw_auth(r, true);
		raw_region(r, 1, 0);
		break;
	case S_CAP:
		raw_auth(r, true);
		raw_image(r, 1ull << 40, guest_addr);
		break;
	case S_BAD_CHANNEL:
		raw_auth(r, true);
		raw_image(r, 1 << 20, "floppy:/dev/fd0");
		break;
	case S_OFF_REGION:
		raw_auth(r, true);
		raw_image(r, 1 << 20, guest_addr);
		raw_inventory(r);
		raw_region(r, 1, 1 << 20);
		break;
	case S_LZ4_BOMB: {
		static const uint8_t junk[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

		raw_auth(r, true);
		raw_image(r, 1 << 20, guest_addr);
		raw_inventory(r);
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_REGION_DATA;
		m.u.region_data = (struct gmig_region_data){ .pid = 42, .region = 1,
			.length = 65536, .encoding = GMIG_ENC_LZ4, .epoch = 1,
			.tail = { junk, sizeof(junk) } };
		raw_send(r, &m);
		break;
	}
	case S_SESSION:
		raw_auth(r, true);
		r->session ^= 1;
		raw_image(r, 1 << 20, guest_addr);
		break;
	case S_HANDOVER_EARLY:
		raw_auth(r, true);
		raw_image(r, 1 << 20, guest_addr);
		raw_inventory(r);
		memset(&m, 0, sizeof(m));
		m.type = GMIG_MSG_HANDOVER;
		m.u.handover.session = 1;
		raw_send(r, &m);
		break;
	}
}

/* 3: hostile peers get a precise refusal and a closed connection; the daemon goes on. */
START_TEST(test_malformed_peer)
{
	static const char *const cap[] = { "image_cap=64M", NULL };
	char *ref, *got;
	struct json_object *st;

	rig_daemon(&rig, &rig.src, "src", false, NULL, NULL);
	rig_daemon(&rig, &rig.dst, "dst", true, NULL, cap);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct gmig_msg m;
		struct raw r;
		int type;

		raw_open(&r, rig.dst.port);
		play(&r, rows[i].step);
		do
			type = raw_recv(&r, &m);
		while (type == GMIG_MSG_CHALLENGE || type == GMIG_MSG_PROOF ||
		       type == GMIG_MSG_WELCOME);
		ck_assert_msg(type == rows[i].type, "row %zu (%s): got %d", i, rows[i].what, type);
		ck_assert_msg(m.u.error.code == rows[i].code, "row %zu (%s): code %d, not %d", i,
			      rows[i].what, m.u.error.code, rows[i].code);
		/* And then the connection closes. */
		ck_assert_int_eq(raw_recv(&r, &m), -ECONNRESET);
		raw_close(&r);
	}
	/* The destination holds nothing and serves a real migration. */
	st = ctl_ok(rig.dst.sock, "status", NULL);
	ck_assert_int_eq(ji(st, "image_bytes"), 0);
	json_object_put(st);
	ref = rig_reference(&rig, STEPS, MEM_MB);
	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);
	st = ctl_wait(rig.src.sock, ctl_job(rig.src.sock, "migrate", migrate_args(rig.dst.port)));
	ck_assert_msg(!strcmp(js(st, "result"), "done"), "%s", js(st, "error"));
	json_object_put(st);
	ck_assert_int_eq(rig_reap(rig.prog, 60000), 0);
	rig.prog = 0;
	got = slurp_file(rig.prog_out);
	assert_same_results(got, ref);
	free(got);
	free(ref);
}
END_TEST

/* Control requests, each answered in the QGA dialect with the right class and description. */
static const struct {
	const char *line;
	const char *cls, *desc;
} ctl_rows[] = {
	/* 0 */ { "{\"execute\":\"nonsense\"}", "CommandNotFound", "nonsense" },
	/* 1 */ { "not json", "GenericError", "JSON parse error" },
	/* 2 */ { "{\"execute\":\"migrate\",\"arguments\":{}}", "GenericError",
		  "Parameter 'guest' is missing" },
	/* 3 */ { "{\"execute\":\"migrate\",\"arguments\":{\"guest\":\"vm\",\"to\":\"x\",\"bogus\":1}}",
		  "GenericError", "Parameter 'bogus' is unexpected" },
	/* 4 */ { "{\"execute\":\"migrate\",\"arguments\":{\"guest\":5,\"to\":\"x\"}}", "GenericError",
		  "expected: string" },
	/* 5 */ { "{\"execute\":\"migrate\",\"arguments\":{\"guest\":\"nosuch\",\"to\":\"h:1\"}}",
		  "GenericError", "no guest named 'nosuch'" },
	/* 6 */ { "{\"execute\":\"migrate\",\"arguments\":{\"guest\":\"unix:/x\",\"to\":\"h:1\","
		  "\"map\":\"0-1\"}}", "GenericError", "map:" },
	/* 7 */ { "{\"execute\":\"checkpoint\",\"arguments\":{\"guest\":\"unix:/x\",\"file\":\"rel\"}}",
		  "GenericError", "absolute path" },
	/* 8 */ { "{\"execute\":\"abort\",\"arguments\":{\"job\":999}}", "GenericError", "no job 999" },
	/* 9 */ { "{\"execute\":\"status\",\"arguments\":{\"job\":-1}}", "GenericError",
		  "expects a value" },
	/* 10 */ { "{\"execute\":\"migrate\",\"arguments\":{\"guest\":\"unix:/x\",\"to\":\"h:1\","
		   "\"max-rounds\":\"many\"}}", "GenericError", "expected: integer" },
	/* 11 */ { "{\"execute\":\"migrate\",\"arguments\":{\"guest\":\"vsock:1:2\",\"to\":\"h\"}}",
		   "GenericError", "CID" },
	/* 12 */ { "{\"execute\":\"inventory\",\"arguments\":{\"guest\":\"unix:/nonexistent/a\"}}",
		   "GenericError", "No such file" },
};

/* 4: the control socket refuses what it cannot do, says why, and keeps the connection. */
START_TEST(test_control)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static char big[GMIG_QGA_LINE_MAX + 64];
	char buf[4096];
	size_t len;
	int fd;

	static const char *const quick[] = { "connect_timeout_ms=500", NULL };

	rig_daemon(&rig, &rig.src, "src", false, NULL, quick);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.107s", rig.src.sock);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	for (size_t i = 0; i <= sizeof(ctl_rows) / sizeof(ctl_rows[0]); i++) {
		const char *cls = "GenericError", *desc = "JSON token size limit exceeded";
		struct json_object *reply;

		if (i < sizeof(ctl_rows) / sizeof(ctl_rows[0])) {
			ck_assert_int_gt(send(fd, ctl_rows[i].line, strlen(ctl_rows[i].line), 0), 0);
			ck_assert_int_eq(send(fd, "\n", 1, 0), 1);
			cls = ctl_rows[i].cls;
			desc = ctl_rows[i].desc;
		} else {
			/* The last row: a line over the limit. */
			memset(big, 'x', sizeof(big) - 1);
			big[sizeof(big) - 1] = '\n';
			ck_assert_int_eq(send(fd, big, sizeof(big), 0), (ssize_t)sizeof(big));
		}
		len = 0;
		while (!len || buf[len - 1] != '\n') {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t n;

			ck_assert_int_eq(poll(&p, 1, 10000), 1);
			n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
			ck_assert_int_gt(n, 0);
			len += (size_t)n;
		}
		buf[len] = '\0';
		reply = json_tokener_parse(buf);
		ck_assert_msg(reply, "row %zu: %s", i, buf);
		ck_assert_msg(!strcmp(js(reply, "error.class"), cls) &&
			      strstr(js(reply, "error.desc"), desc), "row %zu: %s", i, buf);
		json_object_put(reply);
	}
	close(fd);
}
END_TEST

/* 5: gmigctl's exit codes and output. */
START_TEST(test_gmigctl)
{
	char out[65536], nosock[160];
	const char *none[] = { "gmigctl", NULL };
	const char *help[] = { "gmigctl", "--help", NULL };
	const char *unreach[] = { "gmigctl", "-s", nosock, "status", NULL };
	const char *status[] = { "gmigctl", "-s", rig.src.sock, "status", NULL };
	const char *json[] = { "gmigctl", "-s", rig.src.sock, "--json", "status", NULL };
	const char *refused[] = { "gmigctl", "-s", rig.src.sock, "inventory", "nosuchguest", NULL };
	const char *badopt[] = { "gmigctl", "-s", rig.src.sock, "checkpoint", "g", "f", "--map",
				 "0:1", NULL };
	const char *inv[] = { "gmigctl", "-s", rig.src.sock, "inventory", guest_addr, NULL };
	const char *nojob[] = { "gmigctl", "-s", rig.src.sock, "status", "77", NULL };
	struct json_object *o;

	rig_daemon(&rig, &rig.src, "src", false, NULL, NULL);
	snprintf(nosock, sizeof(nosock), "%s/nobody.sock", rig.dir);
	ck_assert_int_eq(run_gmigctl(none, out, sizeof(out)), 2);
	ck_assert_int_eq(run_gmigctl(help, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "Exit status"));
	ck_assert_int_eq(run_gmigctl(unreach, out, sizeof(out)), 3);
	ck_assert_ptr_nonnull(strstr(out, "cannot reach gmigd"));
	ck_assert_int_eq(run_gmigctl(status, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "gmigd 0.1.0 on src"));
	ck_assert_int_eq(run_gmigctl(json, out, sizeof(out)), 0);
	o = json_tokener_parse(out);
	ck_assert_msg(o, "%s", out);
	ck_assert_str_eq(js(o, "host"), "src");
	json_object_put(o);
	ck_assert_int_eq(run_gmigctl(refused, out, sizeof(out)), 4);
	ck_assert_ptr_nonnull(strstr(out, "no guest named 'nosuchguest'"));
	ck_assert_int_eq(run_gmigctl(badopt, out, sizeof(out)), 2);
	ck_assert_ptr_nonnull(strstr(out, "does not take --map"));
	ck_assert_int_eq(run_gmigctl(inv, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "phase IDLE") && strstr(out, "gmig simulated GPU"), "%s", out);
	ck_assert_int_eq(run_gmigctl(nojob, out, sizeof(out)), 4);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-peer");
	TCase *tc = tcase_create("peer");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_unchecked_fixture(tc, rig_base_setup, rig_base_teardown);
	tcase_add_test(tc, test_wrong_secret);
	tcase_add_test(tc, test_image_cap);
	tcase_add_test(tc, test_malformed_peer);
	tcase_add_test(tc, test_control);
	tcase_add_test(tc, test_gmigctl);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
