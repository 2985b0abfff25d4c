/* Check suite: malformed frames, JSON and HELLOs from the host: a clear error, the agent stays up, nothing lost. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmig/frame.h"

#include "testlib.h"

/* Writes a frame with any header and payload, the checksum made right over them. */
static size_t craft(uint8_t *out, uint8_t version, uint16_t type, const void *payload,
		    uint32_t len, uint64_t session, uint64_t seq)
{
	struct gmig_hdr h = { .version = version, .type = type, .len = len, .session = session,
			      .seq = seq };

	memcpy(out + GMIG_HDR_SIZE, payload, len);
	gmig_hdr_write(out, &h, out + GMIG_HDR_SIZE, len, NULL, 0);
	return GMIG_HDR_SIZE + len;
}

enum frame_bad {
	FB_CHECKSUM,	/* a payload byte flipped after the checksum */
	FB_MAGIC,	/* 'G' and then not the magic */
	FB_VERSION,	/* a version not agreed */
	FB_TYPE,	/* no such message */
	FB_TOO_LONG,	/* length over the maximum */
	FB_LENGTH,	/* length wrong for the type */
	FB_FIELD,	/* FREEZE with deadline 0: the frame is whole, a field is not */
	FB_ROUND,	/* ROUND_BEGIN whose base is not below the round */
	FB_NOT_HOSTS,	/* a message hosts do not send */
	FB_GAP,		/* a sequence number skipped */
	FB_SESSION,	/* another session's id */
	FB_PHASE,	/* RELEASE while nothing is frozen */
	FB_RESTORE,	/* RESTORE_DATA with no restore begun */
	FB_STAGED,	/* a client-link message on the host channel */
};

static const struct frame_row {
	enum frame_bad bad;
	int code;		/* the ERROR that must come back */
	uint16_t ref_type;	/* the frame it must name; 0 for a broken stream */
	bool closes;		/* the agent closes the connection after it */
} frame_rows[] = {
	/* 1 */ { FB_CHECKSUM, -EBADMSG, 0, true },
	/* 2 */ { FB_MAGIC, -EILSEQ, 0, true },
	/* 3 */ { FB_VERSION, -EPROTONOSUPPORT, 0, true },
	/* 4 */ { FB_TYPE, -ENOMSG, 0, true },
	/* 5 */ { FB_TOO_LONG, -EMSGSIZE, 0, true },
	/* 6 */ { FB_LENGTH, -ERANGE, 0, true },
	/* 7 */ { FB_FIELD, -EPROTO, GMIG_MSG_FREEZE, false },
	/* 8 */ { FB_ROUND, -EPROTO, GMIG_MSG_ROUND_BEGIN, false },
	/* 9 */ { FB_NOT_HOSTS, -EPROTO, GMIG_MSG_ROUND_END, false },
	/* 10 */ { FB_GAP, -EPROTO, GMIG_MSG_PING, true },
	/* 11 */ { FB_SESSION, -EPROTO, GMIG_MSG_PING, true },
	/* 12 */ { FB_PHASE, -EBUSY, GMIG_MSG_RELEASE, false },
	/* 13 */ { FB_RESTORE, -EPROTO, GMIG_MSG_RESTORE_DATA, false },
	/* 14 */ { FB_STAGED, -EPROTO, GMIG_MSG_STAGED, false },
};

static size_t bad_frame(enum frame_bad bad, struct fhost *fh, uint8_t *out)
{
	uint8_t p[64] = { 0 };
	struct gmig_hdr h = { .version = 1, .session = fh->session };
	struct gmig_msg m = { .type = GMIG_MSG_PING };
	size_t n;

	switch (bad) {
	case FB_CHECKSUM:
		h.seq = ++fh->seq;
		n = (size_t)gmig_msg_encode(out, 128, &h, &m);
		out[GMIG_HDR_SIZE] ^= 1;
		return n;
	case FB_MAGIC:
		memcpy(out, "GXYZ", 4);
		memset(out + 4, 0, 60);
		return 64;
	case FB_VERSION:
		return craft(out, 9, GMIG_MSG_PING, p, 8, fh->session, ++fh->seq);
	case FB_TYPE:
		return craft(out, 1, 0x0999, p, 8, fh->session, ++fh->seq);
	case FB_TOO_LONG:
		n = craft(out, 1, GMIG_MSG_PING, p, 8, fh->session, ++fh->seq);
		memset(out + 8, 0xff, 4);
		return n;
	case FB_LENGTH:
		return craft(out, 1, GMIG_MSG_PING, p, 7, fh->session, ++fh->seq);
	case FB_FIELD:
		return craft(out, 1, GMIG_MSG_FREEZE, p, 4, fh->session, ++fh->seq);
	case FB_ROUND:
		p[0] = 1;	/* round 1 */
		p[4] = 1;	/* base 1 */
		return craft(out, 1, GMIG_MSG_ROUND_BEGIN, p, 8, fh->session, ++fh->seq);
	case FB_NOT_HOSTS:
		return craft(out, 1, GMIG_MSG_ROUND_END, p, 44, fh->session, ++fh->seq);
	case FB_GAP:
		fh->seq += 5;
		return craft(out, 1, GMIG_MSG_PING, p, 8, fh->session, fh->seq);
	case FB_SESSION:
		return craft(out, 1, GMIG_MSG_PING, p, 8, fh->session ^ 1, ++fh->seq);
	case FB_PHASE:
		return craft(out, 1, GMIG_MSG_RELEASE, p, 0, fh->session, ++fh->seq);
	case FB_RESTORE:
		m.type = GMIG_MSG_RESTORE_DATA;
		m.u.region_data = (struct gmig_region_data){ .pid = 1, .region = 1, .length = 8,
			.encoding = GMIG_ENC_ZERO };
		h.seq = ++fh->seq;
		return (size_t)gmig_msg_encode(out, 128, &h, &m);
	case FB_STAGED:
		m.type = GMIG_MSG_STAGED;
		m.u.staged = (struct gmig_staged){ .region = 1, .length = 8,
						   .encoding = GMIG_ENC_ZERO };
		h.seq = ++fh->seq;
		return (size_t)gmig_msg_encode(out, 128, &h, &m);
	}
	return 0;
}

START_TEST(test_bad_frames)
{
	const struct frame_row *row = &frame_rows[_i];
	struct harness h;
	struct fhost fh;
	struct gmig_welcome w;
	struct gmig_msg m;
	uint8_t out[256];
	uint64_t session;
	size_t n;

	harness_start(&h, NULL);
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	session = fh.session;
	/* One good frame first: the first after a HELLO may skip sequence numbers. */
	m = (struct gmig_msg){ .type = GMIG_MSG_PING };
	fhost_send(&fh, &m);
	fhost_expect(&fh, &m, GMIG_MSG_PONG);
	n = bad_frame(row->bad, &fh, out);
	fhost_send_raw(&fh, out, n);
	fhost_expect(&fh, &m, GMIG_MSG_ERROR);
	ck_assert_msg(m.u.error.code == row->code, "row %d: ERROR %d, expected %d", _i + 1,
		      m.u.error.code, row->code);
	ck_assert_uint_eq(m.u.error.ref_type, row->ref_type);
	ck_assert_uint_gt(m.u.error.tail.len, 0);
	if (row->closes) {
		ck_assert(fhost_closed(&fh, TL_TIMEOUT_MS));
		/* The session outlives the connection: resume it, nothing lost. */
		if (row->bad == FB_GAP)
			fh.seq -= 5;
		fhost_reconnect(&fh, &h);
		fhost_hello(&fh, true, &w);
		ck_assert_uint_eq(w.resumed, 1);
		ck_assert_uint_eq(w.session, session);
	}
	/* The connection (old or new) serves on. */
	m = (struct gmig_msg){ .type = GMIG_MSG_PING };
	m.u.nonce.nonce = 4242;
	fhost_send(&fh, &m);
	fhost_expect(&fh, &m, GMIG_MSG_PONG);
	ck_assert_uint_eq(m.u.nonce.nonce, 4242);
	ck_assert(harness_alive(&h));
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

static const struct json_row {
	const char *line;
	const char *want;	/* in the error reply */
} json_rows[] = {
	/* 1 */ { "garbage", "\"class\":\"GenericError\"" },
	/* 2 */ { "{\"execute\":\"guest-nope\"}", "\"class\":\"CommandNotFound\"" },
	/* 3 */ { "{\"execute\":\"gmig-freeze\"}", "Parameter 'deadline-ms' is missing" },
	/* 4 */ { "{\"execute\":\"gmig-freeze\",\"arguments\":{\"deadline-ms\":\"x\"}}",
		  "expected: integer" },
	/* 5 */ { "{\"execute\":\"gmig-freeze\",\"arguments\":{\"deadline-ms\":0}}",
		  "expects a value in [1, 3600000]" },
	/* 6 */ { "{\"execute\":\"gmig-freeze\",\"arguments\":{\"deadline-ms\":18446744073709551615}}",
		  "expects a value in" },
	/* 7 */ { "{\"execute\":\"gmig-freeze\",\"arguments\":{\"deadline-ms\":100,\"x\":1}}",
		  "Parameter 'x' is unexpected" },
	/* 8 */ { "{\"execute\":\"gmig-status\",\"arguments\":{\"x\":1}}",
		  "Parameter 'x' is unexpected" },
	/* 9 */ { "{\"execute\":\"gmig-thaw\",\"id\":\"abc\",\"arguments\":{\"y\":1}}", "\"id\":\"abc\"" },
	/* 10 */ { "[1,2]", "\"class\":\"GenericError\"" },
	/* 11 */ { "{\"execute\":\"guest-sync\"}", "Parameter 'id' is missing" },
	/* 12 */ { "{\"execute\":\"gmig-inventory\",\"arguments\":[1]}", "\"error\"" },
	/* 13 */ { "{\"execute\":1}", "\"error\"" },
};

START_TEST(test_bad_json)
{
	const struct json_row *row = &json_rows[_i];
	struct harness h;
	struct fhost fh;
	char reply[4096];

	harness_start(&h, NULL);
	fhost_open(&fh, &h);
	fhost_json(&fh, row->line, reply, sizeof(reply));
	ck_assert_msg(strncmp(reply, "{\"error\":", 9) == 0 && strstr(reply, row->want),
		      "row %d: %s", _i + 1, reply);
	fhost_json(&fh, "{\"execute\":\"guest-ping\",\"id\":1}", reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{},\"id\":1}");
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* An over-long line is refused once; the stream goes on from the next line, frames included. */
START_TEST(test_oversize_line)
{
	struct harness h;
	struct fhost fh;
	struct gmig_welcome w;
	char reply[1024];
	size_t n = 70000;
	char *big = malloc(n + 1);

	harness_start(&h, NULL);
	fhost_open(&fh, &h);
	memset(big, 'x', n);
	big[n] = '\0';
	fhost_json(&fh, big, reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"error\"") && strstr(reply, "size limit"), "%s", reply);
	fhost_hello(&fh, false, &w);
	fhost_json(&fh, "{\"execute\":\"guest-ping\"}", reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{}}");
	free(big);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* JSON and frames back to back in one write, with the 0xFF reset before a frame. */
START_TEST(test_mixed_stream)
{
	static const char ping[] = "{\"execute\":\"guest-ping\",\"id\":7}\n";
	struct harness h;
	struct fhost fh;
	struct gmig_msg m = { .type = GMIG_MSG_HELLO };
	struct gmig_hdr hd = { .version = 1, .seq = 1 };
	uint8_t buf[512];
	char reply[256];
	size_t n = 0;
	long k;

	harness_start(&h, NULL);
	fhost_open(&fh, &h);
	memcpy(buf, ping, sizeof(ping) - 1);
	n += sizeof(ping) - 1;
	buf[n++] = 0xff;
	m.u.hello = (struct gmig_hello){ .min_version = 1, .max_version = 1,
					 .role = GMIG_ROLE_HOST };
	k = gmig_msg_encode(buf + n, sizeof(buf) - n, &hd, &m);
	ck_assert_int_gt(k, 0);
	n += (size_t)k;
	buf[n++] = '\n';	/* a blank line between messages */
	memcpy(buf + n, ping, sizeof(ping) - 1);
	n += sizeof(ping) - 1;
	fhost_send_raw(&fh, buf, n);

	fhost_json_read(&fh, reply, sizeof(reply), TL_TIMEOUT_MS);
	ck_assert_str_eq(reply, "{\"return\":{},\"id\":7}");
	fhost_expect(&fh, &m, GMIG_MSG_WELCOME);
	fhost_json_read(&fh, reply, sizeof(reply), TL_TIMEOUT_MS);
	ck_assert_str_eq(reply, "{\"return\":{},\"id\":7}");
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

enum hello_bad { HB_TOKEN, HB_SESSION, HB_VERSION, HB_ROLE, HB_NO_SESSION };

static const struct hello_row {
	enum hello_bad bad;
	int code;
	bool closes;
} hello_rows[] = {
	/* 1 */ { HB_TOKEN, -ESTALE, false },
	/* 2 */ { HB_SESSION, -ESTALE, false },
	/* 3 */ { HB_VERSION, -EPROTONOSUPPORT, true },
	/* 4 */ { HB_ROLE, -EPROTO, false },
	/* 5 */ { HB_NO_SESSION, -ESTALE, false },
};

START_TEST(test_bad_hello)
{
	const struct hello_row *row = &hello_rows[_i];
	struct harness h;
	struct fhost fh, bad;
	struct gmig_welcome w;
	struct gmig_msg m;
	uint8_t token[GMIG_TOKEN_SIZE];

	harness_start(&h, NULL);
	fhost_open(&fh, &h);
	if (row->bad != HB_NO_SESSION)
		fhost_hello(&fh, false, NULL);
	else
		fh.session = 0x1234;
	memcpy(token, fh.token, sizeof(token));
	fhost_open(&bad, &h);
	switch (row->bad) {
	case HB_TOKEN:
		token[5] ^= 0x40;
		fhost_hello_raw(&bad, fh.session, token, 1, 1, GMIG_ROLE_HOST, &m);
		break;
	case HB_SESSION:
		fhost_hello_raw(&bad, fh.session + 1, token, 1, 1, GMIG_ROLE_HOST, &m);
		break;
	case HB_VERSION:
		fhost_hello_raw(&bad, 0, NULL, 2, 3, GMIG_ROLE_HOST, &m);
		break;
	case HB_ROLE:
		fhost_hello_raw(&bad, 0, NULL, 1, 1, GMIG_ROLE_CLIENT, &m);
		break;
	case HB_NO_SESSION:
		token[0] = 1;
		fhost_hello_raw(&bad, fh.session, token, 1, 1, GMIG_ROLE_HOST, &m);
		break;
	}
	ck_assert_uint_eq(m.type, GMIG_MSG_ERROR);
	ck_assert_msg(m.u.error.code == row->code, "row %d: %d", _i + 1, m.u.error.code);
	ck_assert_uint_eq(m.u.error.ref_type, GMIG_MSG_HELLO);
	if (row->closes)
		ck_assert(fhost_closed(&bad, TL_TIMEOUT_MS));
	/* The real session is untouched: its token still resumes it. */
	if (row->bad != HB_NO_SESSION) {
		uint64_t session = fh.session;

		fhost_reconnect(&fh, &h);
		fhost_hello(&fh, true, &w);
		ck_assert_uint_eq(w.resumed, 1);
		ck_assert_uint_eq(w.session, session);
	}
	fhost_close(&bad);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A request before any HELLO: no session on this connection. */
START_TEST(test_no_session)
{
	struct harness h;
	struct fhost fh;
	struct gmig_msg m;

	harness_start(&h, NULL);
	fhost_open(&fh, &h);
	host_freeze(&fh, 100);
	fhost_expect(&fh, &m, GMIG_MSG_ERROR);
	ck_assert_int_eq(m.u.error.code, -ENOTCONN);
	ck_assert_uint_eq(m.u.error.ref_type, GMIG_MSG_FREEZE);
	fhost_hello(&fh, false, NULL);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* Random bytes, some shaped like frames or JSON, on many connections: the agent stays up. */
START_TEST(test_random_garbage)
{
	static const char *const starts[] = { "GMIG\x01", "{\"execute\":", "\xff", "G", "" };
	struct harness h;
	struct fhost fh;
	struct gmig_welcome w;
	uint64_t seed = 0x5eed;
	uint8_t buf[4096];

	harness_start(&h, NULL);
	for (int i = 0; i < 40; i++) {
		const char *start = starts[i % 5];
		size_t n = strlen(start);

		memcpy(buf, start, n);
		for (size_t k = n; k < sizeof(buf); k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			buf[k] = (uint8_t)(seed >> 56);
			/* Newlines now and then, so that JSON lines end. */
			if (buf[k] == 0x0b)
				buf[k] = '\n';
		}
		fhost_open(&fh, &h);
		if (i % 2)
			fhost_hello(&fh, false, NULL);
		fhost_send_raw(&fh, buf, sizeof(buf));
		fhost_close(&fh);
	}
	ck_assert(harness_alive(&h));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, &w);
	ck_assert_uint_eq(host_inventory(&fh, NULL), 0);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("agent-hostile");
	TCase *tc = tcase_create("hostile");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_bad_frames, 0, sizeof(frame_rows) / sizeof(frame_rows[0]));
	tcase_add_loop_test(tc, test_bad_json, 0, sizeof(json_rows) / sizeof(json_rows[0]));
	tcase_add_loop_test(tc, test_bad_hello, 0, sizeof(hello_rows) / sizeof(hello_rows[0]));
	tcase_add_test(tc, test_oversize_line);
	tcase_add_test(tc, test_mixed_stream);
	tcase_add_test(tc, test_no_session);
	tcase_add_test(tc, test_random_garbage);
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hostile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
