/*
 * The framed link: frames cut at any byte arrive whole; a bad frame gets ERROR and closes the
 * link with the decoder's error; an orderly close lets the last words out; input pauses and
 * resumes; the hybrid vsock handshake against a fake Firecracker socket, accepted, refused,
 * garbled and silent.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "gmig/message.h"
#include "gmig/version.h"
#include "link.h"

struct seen {
	int up, frames, down, drained;
	int down_err;
	char why[128];
	uint16_t types[64];
	uint64_t nonces[64];
	bool pause_each;
	struct link *l;
};

static void on_up(void *ctx)
{
	((struct seen *)ctx)->up++;
}

static int on_frame(void *ctx, const struct gmig_frame *f)
{
	struct seen *s = ctx;
	struct gmig_msg m;

	ck_assert_int_eq(gmig_msg_decode(f, &m), 0);
	if (s->frames < 64) {
		s->types[s->frames] = m.type;
		s->nonces[s->frames] = m.type == GMIG_MSG_PING ? m.u.nonce.nonce : 0;
	}
	s->frames++;
	return s->pause_each ? LINK_PAUSE : LINK_CONTINUE;
}

static void on_down(void *ctx, int err, const char *why)
{
	struct seen *s = ctx;

	s->down++;
	s->down_err = err;
	snprintf(s->why, sizeof(s->why), "%s", why);
	link_free(s->l);
	s->l = NULL;
}

static void on_drained(void *ctx)
{
	((struct seen *)ctx)->drained++;
}

static const struct link_ops ops = { on_up, on_frame, on_down, on_drained };

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until *@flag reaches @want, at most @ms. */
static bool run_until(struct event_base *b, const int *flag, int want, int ms)
{
	uint64_t end = ms_now() + (uint64_t)ms;

	while (*flag < want && ms_now() < end) {
		event_base_loop(b, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return *flag >= want;
}

static size_t ping(uint8_t *buf, uint64_t seq, uint64_t nonce)
{
	struct gmig_hdr h = { .version = GMIG_VERSION_MIN, .seq = seq };
	struct gmig_msg m = { .type = GMIG_MSG_PING, .u.nonce.nonce = nonce };
	long n = gmig_msg_encode(buf, 256, &h, &m);

	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

/* 1: frames written one byte at a time arrive whole and in order. */
START_TEST(test_cuts)
{
	struct event_base *b = event_base_new();
	struct seen s = { 0 };
	uint8_t buf[8 * 256];
	size_t len = 0;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.l = link_accept(b, sv[0], "test", &ops, &s);
	ck_assert_ptr_nonnull(s.l);
	for (int i = 0; i < 8; i++)
		len += ping(buf + len, (uint64_t)i + 1, 1000 + (uint64_t)i);
	for (size_t i = 0; i < len; i++) {
		ck_assert_int_eq(write(sv[1], buf + i, 1), 1);
		event_base_loop(b, EVLOOP_NONBLOCK);
	}
	ck_assert(run_until(b, &s.frames, 8, 5000));
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(s.nonces[i], 1000 + (uint64_t)i);
	ck_assert_uint_eq(s.l->rx_frames, 8);
	link_free(s.l);
	close(sv[1]);
	event_base_free(b);
}
END_TEST

/* 2: a bad frame: the sender hears ERROR with the decoder's code, the owner the same error. */
static const struct {
	size_t off;		/* byte of a valid PING to damage */
	uint8_t xor;
	int err;
} bad[] = {
	/* 0 */ { 0, 0x01, -EILSEQ },	/* magic */
	/* 1 */ { 4, 0x7f, -EPROTONOSUPPORT },	/* version */
	/* 2 */ { 5, 0x01, -EPROTO },	/* flags */
	/* 3 */ { 6, 0x10, -ENOMSG },	/* type */
	/* 4 */ { 10, 0x80, -EMSGSIZE },	/* length, far over */
	/* 5 */ { 8, 0x01, -ERANGE },	/* length, wrong for PING */
	/* 6 */ { 45, 0x01, -EBADMSG },	/* payload: checksum */
};

START_TEST(test_bad_frame)
{
	struct event_base *b = event_base_new();
	struct seen s = { 0 };
	uint8_t buf[256], in[512];
	struct gmig_decoder dec;
	struct gmig_frame f;
	struct gmig_msg m;
	size_t used;
	ssize_t n;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.l = link_accept(b, sv[0], "test", &ops, &s);
	ping(buf, 1, 42);
	buf[bad[_i].off] ^= bad[_i].xor;
	/* A length over the maximum is refused from the header alone. */
	ck_assert_int_eq(write(sv[1], buf, GMIG_HDR_SIZE + 8), GMIG_HDR_SIZE + 8);
	ck_assert(run_until(b, &s.down, 1, 5000));
	ck_assert_int_eq(s.down_err, bad[_i].err);
	ck_assert_int_eq(s.frames, 0);
	n = read(sv[1], in, sizeof(in));
	ck_assert_int_gt(n, GMIG_HDR_SIZE);
	gmig_decoder_init(&dec, in + 256, 256);
	ck_assert_int_eq(gmig_decoder_feed(&dec, in, (size_t)n, &used, &f), 1);
	ck_assert_int_eq(gmig_msg_decode(&f, &m), 0);
	ck_assert_int_eq(m.type, GMIG_MSG_ERROR);
	ck_assert_int_eq(m.u.error.code, bad[_i].err);
	ck_assert_int_eq(read(sv[1], in, sizeof(in)), 0);	/* then closed */
	close(sv[1]);
	event_base_free(b);
}
END_TEST

/* 3: an orderly close lets every queued frame out, then tells the owner. */
START_TEST(test_close_drains)
{
	struct event_base *b = event_base_new();
	struct seen s = { 0 };
	struct gmig_hdr h = { .version = GMIG_VERSION_MIN };
	struct gmig_msg m = { .type = GMIG_MSG_REGION_DATA };
	static uint8_t data[GMIG_DATA_MAX];
	size_t total = 0, want;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.l = link_accept(b, sv[0], "test", &ops, &s);
	m.u.region_data = (struct gmig_region_data){ .pid = 1, .region = 1, .length = GMIG_DATA_MAX,
		.encoding = GMIG_ENC_RAW, .epoch = 1, .tail = { data, GMIG_DATA_MAX } };
	for (int i = 0; i < 4; i++) {
		h.seq = (uint64_t)i + 1;
		ck_assert_int_eq(link_send(s.l, &h, &m), 0);
	}
	want = 4 * (GMIG_HDR_SIZE + 25 + GMIG_DATA_MAX);
	ck_assert_uint_eq(link_out_len(s.l), want);
	link_close(s.l, "test over");
	ck_assert_int_eq(link_send(s.l, &h, &m) == 0, 1);	/* last words are still taken */
	want += GMIG_HDR_SIZE + 25 + GMIG_DATA_MAX;
	while (!s.down) {
		struct pollfd p = { .fd = sv[1], .events = POLLIN };
		static uint8_t sink[1 << 16];
		ssize_t n;

		event_base_loop(b, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 10) == 1 && (n = read(sv[1], sink, sizeof(sink))) > 0)
			total += (size_t)n;
	}
	for (ssize_t n; (n = read(sv[1], data, sizeof(data))) > 0;)
		total += (size_t)n;
	ck_assert_uint_eq(total, want);
	ck_assert_int_eq(s.down_err, 0);
	ck_assert_str_eq(s.why, "test over");
	close(sv[1]);
	event_base_free(b);
}
END_TEST

/* 4: a paused link delivers nothing; resumed, it delivers what it buffered. */
START_TEST(test_pause)
{
	struct event_base *b = event_base_new();
	struct seen s = { .pause_each = true };
	uint8_t buf[4 * 256];
	size_t len = 0;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.l = link_accept(b, sv[0], "test", &ops, &s);
	for (int i = 0; i < 4; i++)
		len += ping(buf + len, (uint64_t)i + 1, (uint64_t)i);
	ck_assert_int_eq(write(sv[1], buf, len), (ssize_t)len);
	ck_assert(run_until(b, &s.frames, 1, 5000));
	ck_assert(!run_until(b, &s.frames, 2, 100));
	for (int i = 2; i <= 4; i++) {
		link_resume(s.l);
		ck_assert(run_until(b, &s.frames, i, 5000));
		ck_assert(!run_until(b, &s.frames, i + 1, 50));
	}
	link_free(s.l);
	close(sv[1]);
	event_base_free(b);
}
END_TEST

/* A fake Firecracker socket: reads "CONNECT <port>\n", then answers as told. */
struct fake {
	char path[108];
	int lfd;
	const char *answer;	/* NULL: close; "": say nothing */
	char got[64];
	pthread_t th;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	size_t len = 0;
	uint8_t frame[256];

	if (fd < 0)
		return NULL;
	while (len < sizeof(f->got) - 1 && (len == 0 || f->got[len - 1] != '\n')) {
		ssize_t n = read(fd, f->got + len, 1);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	f->got[len] = '\0';
	if (f->answer && f->answer[0]) {
		ssize_t n = write(fd, f->answer, strlen(f->answer));

		(void)n;
		if (!strncmp(f->answer, "OK ", 3)) {
			size_t flen = ping(frame, 1, 77);

			n = write(fd, frame, flen);
			(void)n;
		}
	}
	if (f->answer)
		usleep(800 * 1000);
	close(fd);
	return NULL;
}

static const struct {
	const char *answer;
	int up, err;
	const char *why;
} hv[] = {
	/* 0 */ { "OK 1073741824\n", 1, 0, NULL },
	/* 1 */ { NULL, 0, -ECONNRESET, "closed during the handshake" },
	/* 2 */ { "NO SUCH PORT\n", 0, -ECONNREFUSED, "refused CONNECT 9190" },
	/* 3 */ { "", 0, -ETIMEDOUT, "handshake timed out" },
};

START_TEST(test_hvsock)
{
	struct event_base *b = event_base_new();
	struct seen s = { 0 };
	struct fake f = { .answer = hv[_i].answer };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char text[160], err[ADDR_ERR_MAX];
	struct gaddr a;

	snprintf(f.path, sizeof(f.path), "/tmp/gmigd-hv.%d.%d", (int)getpid(), _i);
	unlink(f.path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f.path);
	f.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f.lfd, 1), 0);
	ck_assert_int_eq(pthread_create(&f.th, NULL, fake_main, &f), 0);
	snprintf(text, sizeof(text), "hvsock:%s:9190", f.path);
	ck_assert_int_eq(addr_parse(text, &a, err, sizeof(err)), 0);
	s.l = link_connect(b, &a, "hv", 300, &ops, &s);
	ck_assert_ptr_nonnull(s.l);
	if (hv[_i].up) {
		ck_assert(run_until(b, &s.frames, 1, 5000));
		ck_assert_int_eq(s.up, 1);
		ck_assert_uint_eq(s.nonces[0], 77);
		link_free(s.l);
	} else {
		ck_assert(run_until(b, &s.down, 1, 5000));
		ck_assert_int_eq(s.up, 0);
		ck_assert_int_eq(s.down_err, hv[_i].err);
		ck_assert_msg(strstr(s.why, hv[_i].why), "why: %s", s.why);
	}
	pthread_join(f.th, NULL);
	ck_assert_str_eq(f.got, "CONNECT 9190\n");
	close(f.lfd);
	unlink(f.path);
	event_base_free(b);
}
END_TEST

/* 5: nothing listens: a unix connect fails at once, and says why. */
START_TEST(test_refused)
{
	struct event_base *b = event_base_new();
	struct seen s = { 0 };
	char err[ADDR_ERR_MAX];
	struct gaddr a;

	ck_assert_int_eq(addr_parse("unix:/nonexistent/gmigd-test.sock", &a, err, sizeof(err)), 0);
	errno = 0;
	ck_assert_ptr_null(link_connect(b, &a, "none", 300, &ops, &s));
	ck_assert_int_eq(errno, ENOENT);
	event_base_free(b);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("gmigd-link");
	TCase *tc = tcase_create("link");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_cuts);
	tcase_add_loop_test(tc, test_bad_frame, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_close_drains);
	tcase_add_test(tc, test_pause);
	tcase_add_loop_test(tc, test_hvsock, 0, (int)(sizeof(hv) / sizeof(hv[0])));
	tcase_add_test(tc, test_refused);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
