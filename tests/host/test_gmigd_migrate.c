/*
 * Live migrations between two gmigds on loopback with real processes: gmig-agent, a program
 * on the simulated GPU that keeps computing, and faults injected at each phase (the
 * destination killed, the peer link cut, the guest channel cut, the freeze deadline passed,
 * the operator's abort). The program's results must equal an unmigrated run's every time.
 */
#include <check.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gmig/message.h"
#include "harness.h"
#include "proxy.h"

#define STEPS		120
#define STEP_MS		10
#define MEM_MB		6
#define PAUSE_TARGET	"3000"	/* ms; loose, for a loaded 2-core CI machine under sanitizers */

static struct rig rig;

static const char *const settings[] = {
	"pause_target_ms=" PAUSE_TARGET,
	"guest_resume_ms=300",
	"rollback_timeout_ms=20000",
	"connect_timeout_ms=3000",
	"step_timeout_ms=15000",
	"peer_timeout_ms=15000",
	"handover_timeout_ms=20000",
	NULL,
};

static void setup(void)
{
	rig_setup(&rig, 64);
}

static void teardown(void)
{
	rig_teardown(&rig);
}

static char guest_addr[160];

/* For a proxy in front of the agent: it moves bytes, not fds (and rules key on REGION_DATA). */
static const char *const no_shm[] = { "guest_shm=no", NULL };

static void start_daemons(const char *const *extra)
{
	const char *sets[16];
	int n = 0;

	for (int i = 0; settings[i]; i++)
		sets[n++] = settings[i];
	for (int i = 0; extra && extra[i]; i++)
		sets[n++] = extra[i];
	sets[n] = NULL;
	rig_daemon(&rig, &rig.src, "src", false, NULL, sets);
	rig_daemon(&rig, &rig.dst, "dst", true, NULL, sets);
	snprintf(guest_addr, sizeof(guest_addr), "unix:%s", rig.agent_sock);
}

/* The destination's first job: bytes restored into the program, and how many by reference. */
static int64_t dst_by_ref(int64_t *restored)
{
	struct json_object *st = ctl_ok(rig.dst.sock, "status", NULL), *a, *job;
	int64_t by_ref;

	a = json_object_new_object();
	json_object_object_add(a, "job", json_object_new_int64(ji(
		json_object_array_get_idx(json_object_object_get(st, "jobs"), 0), "job")));
	job = ctl_ok(rig.dst.sock, "status", a);
	*restored = ji(job, "report.restored");
	by_ref = ji(job, "report.restored_by_reference");
	json_object_put(job);
	json_object_put(st);
	return by_ref;
}

static struct json_object *migrate_args(const char *guest, uint16_t port, const char *channel)
{
	struct json_object *a = json_object_new_object();
	char to[32];

	snprintf(to, sizeof(to), "127.0.0.1:%u", port);
	json_object_object_add(a, "guest", json_object_new_string(guest));
	json_object_object_add(a, "to", json_object_new_string(to));
	json_object_object_add(a, "map", json_object_new_string("0:1"));
	if (channel)
		json_object_object_add(a, "channel", json_object_new_string(channel));
	return a;
}


/* The program ran to its end with the reference's results. */
static void finish_program(char *ref)
{
	char *got;

	ck_assert_int_eq(rig_reap(rig.prog, 60000), 0);
	rig.prog = 0;
	got = slurp_file(rig.prog_out);
	assert_same_results(got, ref);
	free(got);
	free(ref);
}

static void check_done(struct json_object *st)
{
	if (strcmp(js(st, "result"), "done")) {
		rig_dump(rig.src.log);
		rig_dump(rig.dst.log);
		ck_abort_msg("migration: %s: %s", js(st, "result"), js(st, "error"));
	}
}

/* 1: a live migration while the program writes: bit-exact, the pause within the target. */
START_TEST(test_live)
{
	char *ref = rig_reference(&rig, STEPS, MEM_MB);
	struct json_object *st, *dst_st, *rounds;
	double pause, total, precopy;
	int64_t restored, by_ref;
	char out[65536], to[32];
	const char *argv[] = { "gmigctl", "--socket", rig.src.sock, "--json", "migrate",
			       guest_addr, to, "--map", "0:1", NULL };
	int rc;

	start_daemons(NULL);
	snprintf(to, sizeof(to), "127.0.0.1:%u", rig.dst.port);
	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);

	rc = run_gmigctl(argv, out, sizeof(out));
	st = json_tokener_parse(out);
	ck_assert_msg(st != NULL, "gmigctl --json printed: %s", out);
	if (rc)
		rig_dump(rig.src.log);
	ck_assert_msg(rc == 0, "gmigctl exit %d: %s", rc, out);
	check_done(st);
	rounds = json_object_object_get(json_object_object_get(st, "report"), "rounds");
	ck_assert_ptr_nonnull(rounds);
	ck_assert_int_ge(json_object_array_length(rounds), 2);	/* pre-copy, then the final */
	pause = jd(st, "report.pause_ms");
	total = jd(st, "report.times_ms.total");
	precopy = jd(st, "report.times_ms.precopy");
	ck_assert_msg(pause > 0 && pause <= atof(PAUSE_TARGET), "pause %.1f ms", pause);
	/* The program ran through pre-copy: the pause is a part of the migration, not all of it. */
	ck_assert_msg(precopy > 0 && pause < total, "pause %.1f of %.1f ms", pause, total);
	ck_assert_int_gt(ji(st, "report.bytes.to_destination"), MEM_MB << 19);
	json_object_put(st);

	/* The destination's own report agrees. */
	dst_st = ctl_ok(rig.dst.sock, "status", NULL);
	ck_assert_str_eq(js(json_object_array_get_idx(json_object_object_get(dst_st, "jobs"), 0),
			    "result"), "done");
	/* An agent on this machine: the restore wrote into the program's lent slots (SHM). */
	by_ref = dst_by_ref(&restored);
	if (!by_ref) {
		rig_dump(rig.dst.log);
		rig_dump(rig.agent_log);
	}
	ck_assert_int_gt(by_ref, 0);
	ck_assert_int_le(by_ref, restored);
	json_object_put(dst_st);

	/* The program moved: GPU 0 holds nothing of it any more. */
	rig_check_gpu(&rig, 1);
	finish_program(ref);
}
END_TEST

/*
 * 2: stop-and-copy (max-rounds 0), the LZ4 peer link, and no shared staging (every byte
 * through the socket) give the same results.
 */
START_TEST(test_stop_and_copy_lz4)
{
	static const char *const extra[] = { "peer_lz4=yes", "guest_shm=no", NULL };
	char *ref = rig_reference(&rig, STEPS, MEM_MB);
	struct json_object *a, *st;
	int64_t restored;
	uint32_t id;

	start_daemons(extra);
	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);
	a = migrate_args(guest_addr, rig.dst.port, NULL);
	json_object_object_add(a, "max-rounds", json_object_new_int(0));
	id = ctl_job(rig.src.sock, "migrate", a);
	st = ctl_wait(rig.src.sock, id);
	check_done(st);
	ck_assert_int_eq(json_object_array_length(json_object_object_get(
		json_object_object_get(st, "report"), "rounds")), 1);
	ck_assert_str_eq(js(st, "report.precopy.stop"), "stop-and-copy");
	ck_assert(json_object_get_boolean(json_object_object_get(json_object_object_get(st, "report"),
								   "lz4")));
	json_object_put(st);
	ck_assert_int_eq(dst_by_ref(&restored), 0);
	ck_assert_int_gt(restored, 0);
	rig_check_gpu(&rig, 1);
	finish_program(ref);
}
END_TEST

/* Faults, each at a phase; all but the last roll back. */
enum fault_kind { F_KILL_DEST, F_CUT_PEER, F_CUT_GUEST, F_RESUME_GUEST, F_ABORT };

static const struct fault {
	const char *what;
	enum fault_kind kind;
	uint16_t type;
	enum proxy_dir dir;
	enum proxy_act act;
	const char *result;
	const char *via;	/* a state the source must have passed through */
} faults[] = {
	/* 0 */ { "destination killed in pre-copy", F_KILL_DEST, GMIG_MSG_REGION_DATA,
		  PX_TO_CLIENT, PX_NOTHING, "rolled-back", "RB_ABORT" },
	/* 1 */ { "destination killed once frozen", F_KILL_DEST, GMIG_MSG_FROZEN,
		  PX_TO_CLIENT, PX_NOTHING, "rolled-back", "RB_ABORT" },
	/* 2 */ { "destination killed once released", F_KILL_DEST, GMIG_MSG_RELEASED,
		  PX_TO_CLIENT, PX_NOTHING, "rolled-back", "RB_ATTACH" },
	/* 3 */ { "peer link cut in pre-copy", F_CUT_PEER, GMIG_MSG_REGION_DATA,
		  PX_TO_SERVER, PX_CUT_BEFORE, "rolled-back", "RB_ABORT" },
	/* 4 */ { "peer link cut after the freeze", F_CUT_PEER, GMIG_MSG_FROZEN,
		  PX_TO_SERVER, PX_CUT_AFTER, "rolled-back", "RB_ABORT" },
	/* 5 */ { "peer link cut at the hand-over", F_CUT_PEER, GMIG_MSG_HANDOVER,
		  PX_TO_SERVER, PX_CUT_BEFORE, "rolled-back", "RB_ATTACH" },
	/* 6 */ { "guest channel cut in pre-copy", F_CUT_GUEST, GMIG_MSG_REGION_DATA,
		  PX_TO_CLIENT, PX_CUT_BEFORE, "rolled-back", "RB_ABORT" },
	/* 7 */ { "guest channel cut once frozen", F_CUT_GUEST, GMIG_MSG_FROZEN,
		  PX_TO_CLIENT, PX_CUT_BEFORE, "rolled-back", "RB_ABORT" },
	/* 8 */ { "guest channel cut once released", F_CUT_GUEST, GMIG_MSG_RELEASED,
		  PX_TO_CLIENT, PX_CUT_BEFORE, "rolled-back", "RB_ATTACH" },
	/* 9 */ { "operator abort in pre-copy", F_ABORT, GMIG_MSG_REGION_DATA,
		  PX_TO_CLIENT, PX_NOTHING, "rolled-back", "RB_ABORT" },
	/* 10 */ { "guest channel cut and resumed in time", F_RESUME_GUEST, GMIG_MSG_REGION_DATA,
		   PX_TO_CLIENT, PX_CUT_BEFORE, "done", "HANDOVER" },
};

static uint32_t fault_job;

/* Whether the job's transitions entered @state. */
static bool passed(struct json_object *st, const char *state)
{
	struct json_object *t = json_object_object_get(json_object_object_get(st, "report"),
						       "transitions");

	for (size_t i = 0; t && i < json_object_array_length(t); i++) {
		if (!strcmp(js(json_object_array_get_idx(t, i), "to"), state))
			return true;
	}
	return false;
}

static void kill_dest(void *arg)
{
	(void)arg;
	rig_daemon_kill(&rig.dst);
}

static void abort_job(void *arg)
{
	struct json_object *a = json_object_new_object(), *r;
	char err[256];

	(void)arg;
	/* The job id is known: the trigger is a frame of its first round. */
	json_object_object_add(a, "job", json_object_new_int64(fault_job));
	r = ctl_call(rig.src.sock, "abort", a, err, sizeof(err));
	json_object_put(r);
}

START_TEST(test_fault)
{
	const struct fault *f = &faults[_i];
	char *ref = rig_reference(&rig, STEPS, MEM_MB);
	struct proxy_rule rule = { .type = f->type, .dir = f->dir, .nth = 1, .act = f->act };
	struct proxy *px = NULL;
	char proxied[160], real[160];
	struct json_object *st;
	uint16_t port;
	start_daemons(no_shm);
	snprintf(real, sizeof(real), "unix:%s", rig.agent_sock);
	snprintf(proxied, sizeof(proxied), "%s/proxied.sock", rig.dir);
	port = rig.dst.port;
	switch (f->kind) {
	case F_KILL_DEST:
		rule.hook = kill_dest;
		break;
	case F_ABORT:
		rule.hook = abort_job;
		break;
	case F_CUT_GUEST:
		rule.refuse_ms = 1500;	/* longer than guest_resume_ms: the source gives up */
		break;
	case F_RESUME_GUEST:
		rule.refuse_ms = 0;
		break;
	case F_CUT_PEER:
		break;
	}
	if (f->kind == F_CUT_PEER) {
		px = proxy_tcp(rig.dst.port, &port, &rule);
	} else {
		px = proxy_unix(proxied, rig.agent_sock, &rule);
		snprintf(proxied, sizeof(proxied), "unix:%s/proxied.sock", rig.dir);
	}
	ck_assert_ptr_nonnull(px);

	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, real, 1);
	/* The source reaches the guest through the proxy; the destination directly. */
	fault_job = ctl_job(rig.src.sock, "migrate",
			    migrate_args(f->kind == F_CUT_PEER ? real : proxied, port, real));
	st = ctl_wait(rig.src.sock, fault_job);
	ck_assert_msg(proxy_fired(px), "%s: the fault never happened", f->what);
	if (strcmp(js(st, "result"), f->result)) {
		rig_dump(rig.src.log);
		if (rig.dst.pid)
			rig_dump(rig.dst.log);
		ck_abort_msg("%s: %s (%s), expected %s", f->what, js(st, "result"), js(st, "error"),
			     f->result);
	}
	if (!strcmp(f->result, "rolled-back"))
		ck_assert_msg(js(st, "error")[0], "%s: a rollback says why", f->what);
	ck_assert_msg(passed(st, f->via), "%s: never in %s", f->what, f->via);
	json_object_put(st);
	proxy_free(px);
	/* Rolled back: the program is on GPU 0, and GPU 1 holds nothing of it. Done: the reverse. */
	rig_check_gpu(&rig, strcmp(f->result, "done") ? 0 : 1);
	finish_program(ref);
}
END_TEST

/* Waits until the program has printed its first line: set-up is over, its steps (and their kernels) run. */
static void wait_program_stepping(const char *out)
{
	for (int i = 0; i < 3000; i++) {
		FILE *f = fopen(out, "r");
		char line[256] = "";

		if (f) {
			bool started = fgets(line, sizeof(line), f) && !strncmp(line, "pointers", 8);

			fclose(f);
			if (started)
				return;
		}
		usleep(10000);
	}
	ck_abort_msg("the program never started its steps");
}

/* 11: a freeze whose deadline passes rolls back; the program is unharmed. */
START_TEST(test_freeze_deadline)
{
	char *ref = rig_reference(&rig, 6, MEM_MB);
	struct json_object *a, *st;
	uint32_t id;

	start_daemons(NULL);
	/*
	 * Each step has a 1.5 s kernel: a 20 ms deadline cannot be met while it runs,
	 * and the program outlasts pre-copy even under sanitizers on a loaded machine.
	 */
	rig.prog = rig_program(&rig, rig.prog_out, false, 6, 0, MEM_MB, 1500);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);
	/* Before its steps the program runs no kernel, and a freeze there would succeed. */
	wait_program_stepping(rig.prog_out);
	a = migrate_args(guest_addr, rig.dst.port, NULL);
	json_object_object_add(a, "freeze-deadline-ms", json_object_new_int(20));
	id = ctl_job(rig.src.sock, "migrate", a);
	st = ctl_wait(rig.src.sock, id);
	ck_assert_msg(!strcmp(js(st, "result"), "rolled-back"), "%s: %s", js(st, "result"),
		      js(st, "error"));
	ck_assert_str_eq(js(st, "report.failed_in"), "FREEZE");
	json_object_put(st);
	rig_check_gpu(&rig, 0);
	finish_program(ref);
}
END_TEST

/* Halves the regions an INV_CLIENT lists, as if the program had not allocated the rest yet. */
static void shrink_regions(uint8_t *frame, size_t len)
{
	static uint8_t payload[GMIG_PAYLOAD_MAX], out[GMIG_HDR_SIZE + 65536];
	struct gmig_decoder dec;
	struct gmig_frame f;
	struct gmig_msg m;
	uint8_t recs[64 * GMIG_REC_region_SIZE];
	uint32_t n;
	size_t used;
	long w;

	gmig_decoder_init(&dec, payload, sizeof(payload));
	ck_assert_int_eq(gmig_decoder_feed(&dec, frame, len, &used, &f), 1);
	ck_assert_int_eq(gmig_msg_decode(&f, &m), 0);
	n = gmig_rec_count(&m.u.inv_client.tail, GMIG_REC_region_SIZE);
	ck_assert_uint_le(n, 64);
	for (uint32_t i = 0; i < n; i++) {
		struct gmig_rec_region r;

		gmig_rec_get_region(&m.u.inv_client.tail, i, &r);
		if (r.size > r.chunk)
			r.size = (r.size / 2 + r.chunk - 1) / r.chunk * r.chunk;
		ck_assert_int_gt(gmig_rec_put_region(recs + i * GMIG_REC_region_SIZE, &r), 0);
	}
	m.u.inv_client.tail = (struct gmig_tail){ recs, n * GMIG_REC_region_SIZE };
	w = gmig_msg_encode(out, sizeof(out), &f.hdr, &m);
	ck_assert_int_eq(w, (long)len);
	memcpy(frame, out, len);
}

/* 13: the program's regions grow past what the first inventory said: the round runs again. */
START_TEST(test_regions_grow)
{
	char *ref = rig_reference(&rig, STEPS, MEM_MB), proxied[160], real[160], *log;
	struct proxy_rule rule = { .type = GMIG_MSG_INV_CLIENT, .dir = PX_TO_CLIENT, .nth = 1,
				   .rewrite = shrink_regions };
	struct json_object *st, *rounds;
	struct proxy *px;
	bool again = false;

	start_daemons(no_shm);
	snprintf(real, sizeof(real), "unix:%s", rig.agent_sock);
	snprintf(proxied, sizeof(proxied), "%s/proxied.sock", rig.dir);
	px = proxy_unix(proxied, rig.agent_sock, &rule);
	ck_assert_ptr_nonnull(px);
	snprintf(proxied, sizeof(proxied), "unix:%s/proxied.sock", rig.dir);
	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, real, 1);
	st = ctl_wait(rig.src.sock, ctl_job(rig.src.sock, "migrate",
					    migrate_args(proxied, rig.dst.port, real)));
	ck_assert(proxy_fired(px));
	check_done(st);
	/* A round that met the grown regions did not count: the next one has the same base. */
	rounds = json_object_object_get(json_object_object_get(st, "report"), "rounds");
	for (size_t i = 1; i < json_object_array_length(rounds); i++)
		again |= ji(json_object_array_get_idx(rounds, i), "base") ==
			 ji(json_object_array_get_idx(rounds, i - 1), "base");
	ck_assert_msg(again, "no round ran again");
	json_object_put(st);
	log = slurp_file(rig.src.log);
	ck_assert_ptr_nonnull(strstr(log, "regions grew during round"));
	free(log);
	proxy_free(px);
	rig_check_gpu(&rig, 1);
	finish_program(ref);
}
END_TEST

static void term_source(void *arg)
{
	(void)arg;
	kill(rig.src.pid, SIGTERM);
}

/* 12: SIGTERM in the middle of pre-copy: the source rolls the job back, then exits cleanly. */
START_TEST(test_sigterm)
{
	char *ref = rig_reference(&rig, STEPS, MEM_MB), proxied[160], real[160], *log;
	struct proxy_rule rule = { .type = GMIG_MSG_REGION_DATA, .dir = PX_TO_CLIENT, .nth = 1,
				   .hook = term_source };
	struct proxy *px;

	start_daemons(no_shm);
	snprintf(real, sizeof(real), "unix:%s", rig.agent_sock);
	snprintf(proxied, sizeof(proxied), "%s/proxied.sock", rig.dir);
	px = proxy_unix(proxied, rig.agent_sock, &rule);
	ck_assert_ptr_nonnull(px);
	snprintf(proxied, sizeof(proxied), "unix:%s/proxied.sock", rig.dir);
	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, real, 1);
	ctl_job(rig.src.sock, "migrate", migrate_args(proxied, rig.dst.port, real));
	ck_assert_int_eq(rig_reap(rig.src.pid, 30000), 0);
	rig.src.pid = 0;
	ck_assert(proxy_fired(px));
	log = slurp_file(rig.src.log);
	ck_assert_msg(strstr(log, "rolled-back") && strstr(log, "every job ended"), "%s", log);
	free(log);
	proxy_free(px);
	rig_check_gpu(&rig, 0);
	finish_program(ref);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-migrate");
	TCase *tc = tcase_create("live");
	TCase *tf = tcase_create("faults");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_unchecked_fixture(tc, rig_base_setup, rig_base_teardown);
	tcase_add_test(tc, test_live);
	tcase_add_test(tc, test_stop_and_copy_lz4);
	tcase_add_test(tc, test_freeze_deadline);
	tcase_add_test(tc, test_sigterm);
	tcase_add_test(tc, test_regions_grow);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tf, 120);
	tcase_add_checked_fixture(tf, setup, teardown);
	tcase_add_unchecked_fixture(tf, rig_base_setup, rig_base_teardown);
	tcase_add_loop_test(tf, test_fault, 0, (int)(sizeof(faults) / sizeof(faults[0])));
	suite_add_tcase(s, tf);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
