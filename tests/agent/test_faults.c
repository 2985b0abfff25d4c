/* Check suite: gmig-agent under faults: clients dying or stuck, the host channel dropping in every phase. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define REGION_SIZE	(256u << 10)
#define CHUNKS		(REGION_SIZE / TL_CHUNK)

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- the host channel dropped in every phase, then resumed with the token --- */

enum drop_at {
	DROP_IDLE,		/* after HELLO and the inventory */
	DROP_MID_ROUND,		/* during the first round */
	DROP_PRECOPY,		/* between rounds */
	DROP_FROZEN,		/* after FROZEN */
	DROP_MID_FINAL,		/* during the final delta, frozen */
	DROP_RELEASED,
	DROP_ATTACHED,
	DROP_MID_RESTORE,	/* after RESTORE_BEGIN and some data */
	DROP_RESTORED,
	DROP_THAWED,		/* after the migration */
};

static const struct drop_row {
	enum drop_at at;
	uint8_t phase;		/* the phase WELCOME reports on resume */
} drop_rows[] = {
	/* 1 */ { DROP_IDLE, GMIG_PHASE_IDLE },
	/* 2 */ { DROP_MID_ROUND, GMIG_PHASE_PRECOPY },
	/* 3 */ { DROP_PRECOPY, GMIG_PHASE_PRECOPY },
	/* 4 */ { DROP_FROZEN, GMIG_PHASE_FROZEN },
	/* 5 */ { DROP_MID_FINAL, GMIG_PHASE_FROZEN },
	/* 6 */ { DROP_RELEASED, GMIG_PHASE_RELEASED },
	/* 7 */ { DROP_ATTACHED, GMIG_PHASE_ATTACHED },
	/* 8 */ { DROP_MID_RESTORE, GMIG_PHASE_ATTACHED },
	/* 9 */ { DROP_RESTORED, GMIG_PHASE_RESTORED },
	/* 10 */ { DROP_THAWED, GMIG_PHASE_IDLE },
};

/* Drops the connection and resumes: same session, the expected phase, nothing lost. */
static void drop_resume(struct harness *h, struct fhost *fh, uint8_t phase)
{
	struct gmig_welcome w;
	uint64_t session = fh->session;
	uint64_t sent = fh->seq;

	fhost_reconnect(fh, h);
	fhost_hello(fh, true, &w);
	ck_assert_uint_eq(w.resumed, 1);
	ck_assert_uint_eq(w.session, session);
	ck_assert_msg(w.phase == phase, "resumed in %s, expected %s", gmig_phase_name(w.phase),
		      gmig_phase_name(phase));
	ck_assert_uint_eq(w.last_seq, sent);
}

/* Starts a round and leaves after a few of its frames. */
static void round_partial(struct fhost *fh, struct image *im, uint32_t round, uint32_t base)
{
	struct gmig_msg m = { .type = GMIG_MSG_ROUND_BEGIN };

	m.u.round_begin.round = round;
	m.u.round_begin.base = base;
	fhost_send(fh, &m);
	for (int i = 0; i < 3; i++) {
		fhost_expect(fh, &m, GMIG_MSG_REGION_DATA);
		image_take(im, &m.u.region_data);
	}
}

START_TEST(test_drop_every_phase)
{
	const struct drop_row *row = &drop_rows[_i];
	struct harness h;
	struct fhost fh;
	struct fclient fc[2];
	struct image im = { 0 };
	struct gmig_msg m;

	harness_start(&h, NULL);
	for (int i = 0; i < 2; i++)
		fclient_start(&fc[i], &h, FC_NORMAL, 1, REGION_SIZE);
	for (int i = 0; i < 2; i++)
		ck_assert(fc_wait(&fc[i].sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	ck_assert_uint_eq(host_inventory(&fh, &im), 2);
	if (row->at == DROP_IDLE)
		drop_resume(&h, &fh, row->phase);

	if (row->at == DROP_MID_ROUND) {
		round_partial(&fh, &im, 1, 0);
		drop_resume(&h, &fh, row->phase);
	}
	/* A round cut short runs again against the base the host holds whole. */
	host_round(&fh, &im, 1, 0, NULL);
	ck_assert(image_whole(&im, 1));
	if (row->at == DROP_PRECOPY)
		drop_resume(&h, &fh, row->phase);
	host_round(&fh, &im, 2, 1, NULL);

	host_freeze(&fh, 2000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	if (row->at == DROP_FROZEN) {
		drop_resume(&h, &fh, row->phase);
		/* The step in progress again: the same answer, not a second freeze. */
		host_freeze(&fh, 2000);
		fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
		ck_assert_uint_eq(m.u.frozen.count, 2);
		fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	}
	if (row->at == DROP_MID_FINAL) {
		round_partial(&fh, &im, 3, 2);
		drop_resume(&h, &fh, row->phase);
	}
	host_round(&fh, &im, 3, 2, NULL);
	ck_assert(image_whole(&im, 3));

	host_simple(&fh, GMIG_MSG_RELEASE);
	fhost_expect(&fh, &m, GMIG_MSG_RELEASED);
	if (row->at == DROP_RELEASED) {
		drop_resume(&h, &fh, row->phase);
		host_simple(&fh, GMIG_MSG_RELEASE);
		fhost_expect(&fh, &m, GMIG_MSG_RELEASED);
		ck_assert_uint_eq(m.u.clients.clients, 2);
	}
	host_attach(&fh);
	fhost_expect(&fh, &m, GMIG_MSG_ATTACHED);
	if (row->at == DROP_ATTACHED) {
		drop_resume(&h, &fh, row->phase);
		host_attach(&fh);
		fhost_expect(&fh, &m, GMIG_MSG_ATTACHED);
	}
	if (row->at == DROP_MID_RESTORE) {
		uint8_t man[GMIG_REC_manifest_SIZE * 2];

		m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_BEGIN };
		for (unsigned int k = 0; k < im.n; k++) {
			struct gmig_rec_manifest r = { .pid = im.r[k].pid, .region = im.r[k].id,
						       .va = im.r[k].va, .size = im.r[k].size,
						       .chunk = im.r[k].chunk };

			gmig_rec_put_manifest(man + k * GMIG_REC_manifest_SIZE, &r);
		}
		m.u.restore_begin.clients = 2;
		m.u.restore_begin.tail = (struct gmig_tail){ man, im.n * GMIG_REC_manifest_SIZE };
		fhost_send(&fh, &m);
		m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_DATA };
		m.u.region_data = (struct gmig_region_data){ .pid = im.r[0].pid,
			.region = im.r[0].id, .length = TL_CHUNK, .encoding = GMIG_ENC_RAW,
			.epoch = 3, .tail = { im.r[0].data, TL_CHUNK } };
		fhost_send(&fh, &m);
		usleep(50 * 1000);
		drop_resume(&h, &fh, row->phase);
	}
	host_restore(&fh, &im, true);
	if (row->at == DROP_RESTORED) {
		drop_resume(&h, &fh, row->phase);
		m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_END };
		m.u.totals.chunks = 2 * CHUNKS;
		m.u.totals.bytes = 2 * REGION_SIZE;
		fhost_send(&fh, &m);
		fhost_expect(&fh, &m, GMIG_MSG_RESTORED);
		ck_assert_uint_eq(m.u.totals.bytes, 2 * REGION_SIZE);
	}
	host_simple(&fh, GMIG_MSG_THAW);
	fhost_expect(&fh, &m, GMIG_MSG_THAWED);
	if (row->at == DROP_THAWED) {
		drop_resume(&h, &fh, row->phase);
		host_simple(&fh, GMIG_MSG_THAW);
		fhost_expect(&fh, &m, GMIG_MSG_THAWED);
	}

	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(fc[i].sh->freezes, 1);
		ck_assert_int_eq(fc[i].sh->releases, 1);
		ck_assert_int_eq(fc[i].sh->attaches, 1);
		ck_assert_int_eq(fc[i].sh->restored_ok, 1);
		ck_assert_int_eq(fc[i].sh->restore_bad, 0);
		ck_assert_int_eq(fc[i].sh->frozen, 0);
		fclient_stop(&fc[i]);
	}
	fhost_close(&fh);
	image_free(&im);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* --- clients that die or get stuck --- */

/* A client killed in the middle of a round is dropped and the round completes without it. */
START_TEST(test_client_killed_mid_round)
{
	struct harness h;
	struct fhost fh;
	struct fclient ok, dies;
	struct image im = { 0 };
	struct gmig_round_end end;
	struct gmig_msg m;

	harness_start(&h, NULL);
	fclient_start(&ok, &h, FC_NORMAL, 2, REGION_SIZE);
	fclient_start(&dies, &h, FC_DIE_MID_ROUND, 2, REGION_SIZE);
	ck_assert(fc_wait(&ok.sh->welcomed, 1, TL_TIMEOUT_MS));
	ck_assert(fc_wait(&dies.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	ck_assert_uint_eq(host_inventory(&fh, &im), 2);
	host_round(&fh, &im, 1, 0, &end);
	/* Only the survivor's chunks count; its bytes are all there. */
	ck_assert_uint_eq(end.chunks, 2 * CHUNKS);
	ck_assert_int_eq(ok.sh->rounds, 1);
	ck_assert_uint_eq(host_inventory(&fh, NULL), 1);
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	ck_assert_uint_eq(m.u.frozen.count, 1);
	ck_assert_uint_eq(m.u.frozen.pid, (uint32_t)ok.pid);
	host_simple(&fh, GMIG_MSG_THAW);
	fhost_expect(&fh, &m, GMIG_MSG_THAWED);
	ck_assert_uint_eq(m.u.clients.clients, 1);

	fclient_stop(&ok);
	fclient_stop(&dies);
	fhost_close(&fh);
	image_free(&im);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A client past its freeze deadline fails the freeze; the others thaw; all go on unharmed. */
START_TEST(test_freeze_deadline)
{
	struct harness h;
	struct fhost fh;
	struct fclient ok, stuck;
	struct gmig_msg m;
	char reply[2048];
	uint64_t t0, took;

	harness_start(&h, NULL);
	fclient_start(&ok, &h, FC_NORMAL, 1, REGION_SIZE);
	fclient_start(&stuck, &h, FC_STUCK_FREEZE, 1, REGION_SIZE);
	ck_assert(fc_wait(&ok.sh->welcomed, 1, TL_TIMEOUT_MS));
	ck_assert(fc_wait(&stuck.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);

	t0 = ms_now();
	host_freeze(&fh, 300);
	fhost_expect(&fh, &m, GMIG_MSG_ERROR);
	took = ms_now() - t0;
	ck_assert_int_eq(m.u.error.code, -ETIMEDOUT);
	ck_assert_uint_eq(m.u.error.ref_type, GMIG_MSG_FREEZE);
	/*
	 * The agent answered by the deadline and its grace (200 ms), long before the client
	 * gave up (1500 ms past the deadline).
	 */
	ck_assert_msg(took >= 300 && took < 300 + 200 + 600, "answered after %llu ms",
		      (unsigned long long)took);
	ck_assert(fc_wait(&ok.sh->thaws, 1, TL_TIMEOUT_MS));
	ck_assert_int_eq(ok.sh->frozen, 0);
	fhost_json(&fh, "{\"execute\":\"gmig-status\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"phase\":\"idle\"") && strstr(reply, "did not answer"),
		      "%s", reply);

	/* The stuck program gave up by itself and goes on; it thaws too. */
	ck_assert(fc_wait(&stuck.sh->freeze_fails, 1, TL_TIMEOUT_MS));
	ck_assert(fc_wait(&stuck.sh->thaws, 1, TL_TIMEOUT_MS));
	ck_assert_uint_eq(host_inventory(&fh, NULL), 2);
	host_freeze(&fh, 2000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	ck_assert_uint_eq(m.u.frozen.count, 2);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	host_simple(&fh, GMIG_MSG_THAW);
	fhost_expect(&fh, &m, GMIG_MSG_THAWED);
	ck_assert_uint_eq(m.u.clients.clients, 2);

	fclient_stop(&ok);
	fclient_stop(&stuck);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A client that never ends its round fails the round after the timeout; the agent goes on. */
START_TEST(test_silent_round)
{
	struct harness h;
	struct fhost fh;
	struct fclient silent;
	struct gmig_msg m = { .type = GMIG_MSG_ROUND_BEGIN };
	uint64_t t0;

	harness_start(&h, "request_timeout_ms = 400");
	fclient_start(&silent, &h, FC_SILENT_ROUND, 1, REGION_SIZE);
	ck_assert(fc_wait(&silent.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	m.u.round_begin.round = 1;
	t0 = ms_now();
	fhost_send(&fh, &m);
	fhost_expect(&fh, &m, GMIG_MSG_ERROR);
	ck_assert_int_eq(m.u.error.code, -ETIMEDOUT);
	ck_assert_uint_eq(m.u.error.ref_type, GMIG_MSG_ROUND_BEGIN);
	ck_assert_uint_ge(ms_now() - t0, 400);
	m = (struct gmig_msg){ .type = GMIG_MSG_PING };
	m.u.nonce.nonce = 77;
	fhost_send(&fh, &m);
	fhost_expect(&fh, &m, GMIG_MSG_PONG);
	ck_assert_uint_eq(m.u.nonce.nonce, 77);

	fclient_stop(&silent);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* No host comes back while frozen: the clients thaw after the resume timeout. */
START_TEST(test_resume_timeout)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	struct gmig_msg m;
	char reply[2048];

	harness_start(&h, "resume_timeout_ms = 300");
	fclient_start(&fc, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	ck_assert_int_eq(fc.sh->frozen, 1);
	fhost_drop(&fh);
	ck_assert(fc_wait(&fc.sh->thaws, 1, 2000));
	ck_assert_int_eq(fc.sh->frozen, 0);

	fhost_reconnect(&fh, &h);
	fhost_json(&fh, "{\"execute\":\"gmig-status\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"phase\":\"idle\"") && strstr(reply, "\"state\":\"detached\""),
		      "%s", reply);
	fclient_stop(&fc);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A program that starts during a migration is held until the thaw. */
START_TEST(test_held_client)
{
	struct harness h;
	struct fhost fh;
	struct fclient first, late;
	struct gmig_msg m;
	char reply[2048];

	harness_start(&h, NULL);
	fclient_start(&first, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&first.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);

	fclient_start(&late, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(!fc_wait(&late.sh->welcomed, 1, 300));
	fhost_json(&fh, "{\"execute\":\"gmig-status\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"clients\":1") && strstr(reply, "\"held\":1"), "%s", reply);
	/* Held clients are in no step: RELEASE and the inventory count the first only. */
	ck_assert_uint_eq(host_inventory(&fh, NULL), 1);
	host_simple(&fh, GMIG_MSG_THAW);
	fhost_expect(&fh, &m, GMIG_MSG_THAWED);
	ck_assert_uint_eq(m.u.clients.clients, 1);
	ck_assert(fc_wait(&late.sh->welcomed, 1, TL_TIMEOUT_MS));
	ck_assert_uint_eq(host_inventory(&fh, NULL), 2);

	fclient_stop(&first);
	fclient_stop(&late);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A new session while frozen ends the old one: the clients roll back (thaw). */
START_TEST(test_new_session_rolls_back)
{
	struct harness h;
	struct fhost fh, fh2;
	struct fclient fc;
	struct gmig_welcome w;
	struct gmig_msg m;
	uint64_t old;

	harness_start(&h, NULL);
	fclient_start(&fc, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	old = fh.session;
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);

	fhost_open(&fh2, &h);
	fhost_hello(&fh2, false, &w);
	ck_assert_uint_ne(w.session, old);
	ck_assert(fc_wait(&fc.sh->thaws, 1, TL_TIMEOUT_MS));
	/* The replaced connection is closed; its token no longer resumes anything. */
	ck_assert(fhost_closed(&fh, TL_TIMEOUT_MS));
	fhost_reconnect(&fh, &h);
	fhost_hello_raw(&fh, old, fh.token, 1, 1, GMIG_ROLE_HOST, &m);
	ck_assert_uint_eq(m.type, GMIG_MSG_ERROR);
	ck_assert_int_eq(m.u.error.code, -ESTALE);

	fclient_stop(&fc);
	fhost_close(&fh);
	fhost_close(&fh2);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* Stopping the agent while programs are frozen thaws them first. */
START_TEST(test_stop_while_frozen)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	struct gmig_msg m;

	harness_start(&h, NULL);
	fclient_start(&fc, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
	ck_assert(fc_wait(&fc.sh->thaws, 1, TL_TIMEOUT_MS));
	ck_assert_int_eq(fc.sh->frozen, 0);
	fclient_stop(&fc);
}
END_TEST

/* Junk on the client socket, and a client that never says HELLO, are dropped. */
START_TEST(test_bad_clients)
{
	struct harness h;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct fhost fh;
	struct fclient fc;
	char junk[256], buf[64];
	int fd, quiet;

	harness_start(&h, "hello_timeout_ms = 200");
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", h.client_path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	memset(junk, 'G', sizeof(junk));
	ck_assert_int_eq(write(fd, junk, sizeof(junk)), sizeof(junk));
	ck_assert_int_ge(read(fd, buf, sizeof(buf)), 0);	/* an ERROR, then the close */
	close(fd);
	quiet = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(quiet, (struct sockaddr *)&sun, sizeof(sun)), 0);
	/* The agent hangs up on the silent one. */
	ck_assert_int_eq(read(quiet, buf, sizeof(buf)), 0);
	close(quiet);

	fclient_start(&fc, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	ck_assert_uint_eq(host_inventory(&fh, NULL), 1);
	fclient_stop(&fc);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("agent-faults");
	TCase *tc = tcase_create("faults");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_drop_every_phase, 0, sizeof(drop_rows) / sizeof(drop_rows[0]));
	tcase_add_test(tc, test_client_killed_mid_round);
	tcase_add_test(tc, test_freeze_deadline);
	tcase_add_test(tc, test_silent_round);
	tcase_add_test(tc, test_resume_timeout);
	tcase_add_test(tc, test_held_client);
	tcase_add_test(tc, test_new_session_rolls_back);
	tcase_add_test(tc, test_stop_while_frozen);
	tcase_add_test(tc, test_bad_clients);
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(faults_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
