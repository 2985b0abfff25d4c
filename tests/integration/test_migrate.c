/*
 * End-to-end migrations on the simulated GPU with real processes: a program
 * computing a checkable sequence, gmig-agent, and a test peer playing the
 * host. The program's output must equal an unmigrated run's, bit for bit,
 * and its device pointers must not change.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gmig/simdev.h"
#include "peer.h"
#include "procs.h"

#define STEPS "150"
#define STEP_MS "10"
#define MEMORY "16"

static struct scratch sc;
static pid_t agent;

static void setup(void)
{
	scratch_make(&sc, 128);
	agent = start_agent(&sc);
}

static void teardown(void)
{
	kill(agent, SIGTERM);
	ck_assert_int_eq(reap(agent), 0);
	scratch_remove(&sc);
}

/* A program run: steps, and how long one kernel of each step spins. */
struct run {
	const char *steps, *kernel_ms;
};

static const struct run plain_run = { STEPS, "0" };
/* Every step has a one-second kernel: a 20 ms freeze deadline cannot be met while it runs. */
static const struct run slow_run = { "10", "1000" };

/* Starts gmig-simprog on GPU 0 with its output in out (migratable unless disabled). */
static pid_t start_program(const char *out, bool disabled, const struct run *run)
{
	static char env_dev[160], env_sock[160], env_dis[32];
	const char *bin = getenv("GMIG_SIMPROG_BIN");
	char *argv[] = { (char *)bin, "--steps", (char *)run->steps, "--step-ms", STEP_MS,
			 "--memory", MEMORY, "--kernel-ms", (char *)run->kernel_ms, NULL };
	char *env[] = { env_dev, env_sock, env_dis, NULL };

	ck_assert_msg(bin != NULL, "GMIG_SIMPROG_BIN is not set");
	snprintf(env_dev, sizeof(env_dev), "GMIG_SIM_DEVICE=%s", sc.dev[0]);
	snprintf(env_sock, sizeof(env_sock), "GMIG_AGENT_SOCKET=%s", sc.client_sock);
	snprintf(env_dis, sizeof(env_dis), "GMIG_DISABLE=%d", disabled);
	return spawn(argv, env, out);
}

/* The unmigrated runs' outputs, computed once before the tests fork. */
static char *plain_ref, *slow_ref;

static char *run_reference(const struct run *run)
{
	char out[160];
	pid_t pid;

	snprintf(out, sizeof(out), "%s/reference.txt", sc.dir);
	pid = start_program(out, true, run);
	ck_assert_int_eq(reap(pid), 0);
	return slurp(out);
}

/* Runs once in the runner, before the tests fork, so each test inherits the references. */
static void references_setup(void)
{
	scratch_make(&sc, 128);
	plain_ref = run_reference(&plain_run);
	slow_ref = run_reference(&slow_run);
	scratch_remove(&sc);
}

static void references_teardown(void)
{
	free(plain_ref);
	free(slow_ref);
}

/* A fresh copy of a reference, which the comparison may edit. */
static char *reference(const struct run *run)
{
	char *ref = strdup(run == &slow_run ? slow_ref : plain_ref);

	ck_assert_ptr_nonnull(ref);
	return ref;
}

/* Waits until the agent has n clients. */
static void wait_clients(struct peer *p, uint32_t n)
{
	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(peer_inventory(p), 0);
		if (p->clients == n)
			return;
		usleep(10000);
	}
	ck_abort_msg("the agent never saw %u clients", n);
}

/* Removes the "pointers" lines, checking the first and last are equal. */
static char *results_of(char *out)
{
	char *first = strstr(out, "pointers"), *last = strrchr(out, '\n'), *p, *w;

	ck_assert_ptr_nonnull(first);
	*last = 0;
	last = strrchr(out, '\n');
	ck_assert_ptr_nonnull(last);
	ck_assert_msg(!strncmp(first, last + 1, strcspn(first, "\n")),
		      "device pointers changed: %.*s vs %s", (int)strcspn(first, "\n"), first, last + 1);
	/* Drop both pointer lines. */
	for (p = w = out; *p;) {
		size_t n = strcspn(p, "\n");

		if (strncmp(p, "pointers", 8)) {
			memmove(w, p, n);
			w += n;
			*w++ = '\n';
		}
		p += n + (p[n] == '\n');
	}
	*w = 0;
	return out;
}

static void assert_same_results(char *migrated, char *ref)
{
	char *a = results_of(migrated), *b = results_of(ref);

	ck_assert_msg(strstr(a, "step "), "the program printed no results: %s", a);
	ck_assert_str_eq(a, b);
}

/* One migration with a drop at the given point; loop tests pass the drop. */
static void migrate_once(enum peer_drop drop)
{
	struct peer_options o = { .target_gpu = 1, .drop = drop };
	struct gmig_simdev_info d0, d1;
	struct peer_report rep;
	char out[160], *ref = reference(&plain_run), *got;
	struct peer p;
	pid_t prog;
	int err;

	snprintf(out, sizeof(out), "%s/migrated.txt", sc.dir);
	prog = start_program(out, false, &plain_run);
	ck_assert_int_eq(peer_connect(&p, sc.host_sock), 0);
	wait_clients(&p, 1);
	err = peer_migrate(&p, &o, &rep);
	ck_assert_msg(err == 0, "migration failed: %s (%s)", strerror(-err), p.error);

	/* The program now lives on GPU 1; GPU 0 has nothing of it left. */
	ck_assert_int_eq(gmig_simdev_stat(sc.dev[0], &d0), 0);
	ck_assert_int_eq(gmig_simdev_stat(sc.dev[1], &d1), 0);
	ck_assert_uint_eq(d0.granules_free, d0.mem_bytes / GMIG_SIMDEV_GRANULE);
	ck_assert_uint_lt(d1.granules_free, d1.mem_bytes / GMIG_SIMDEV_GRANULE);
	ck_assert_uint_gt(rep.rounds, 0);

	ck_assert_int_eq(reap(prog), 0);
	peer_close(&p);
	got = slurp(out);
	assert_same_results(got, ref);
	free(got);
	free(ref);
}

START_TEST(test_migrate)
{
	migrate_once(DROP_NONE);
}
END_TEST

START_TEST(test_migrate_with_drop)
{
	migrate_once((enum peer_drop)_i);
}
END_TEST

/* A freeze whose deadline passes fails cleanly; the program goes on and a later migration works. */
START_TEST(test_freeze_deadline)
{
	struct peer_options o = { .target_gpu = 1 };
	struct peer_report rep;
	char out[160], *ref = reference(&slow_run), *got;
	struct gmig_msg m;
	struct peer p;
	pid_t prog;
	int err;

	snprintf(out, sizeof(out), "%s/migrated.txt", sc.dir);
	prog = start_program(out, false, &slow_run);
	ck_assert_int_eq(peer_connect(&p, sc.host_sock), 0);
	wait_clients(&p, 1);
	ck_assert_int_eq(peer_round(&p, 1, 0, &m.u.round_end, false), 0);
	/*
	 * Before its steps (set-up, slow under sanitizers) and in the few milliseconds
	 * between two kernels the program runs no kernel, and a freeze succeeds: then
	 * thaw and try again a little later. Once it steps, one must time out.
	 */
	for (int i = 0; i < 100; i++) {
		err = peer_freeze(&p, 20);
		if (err != 0)
			break;
		ck_assert_int_eq(peer_step(&p, GMIG_MSG_THAW, GMIG_MSG_THAWED), 1);
		usleep(50000);
	}
	ck_assert_msg(err == -ETIMEDOUT, "freeze gave %d (%s)", err, p.error);
	/* The program is not frozen: a migration with a fair deadline goes through. */
	o.freeze_deadline_ms = 5000;
	err = peer_migrate(&p, &o, &rep);
	ck_assert_msg(err == 0, "migration failed: %s (%s)", strerror(-err), p.error);
	ck_assert_int_eq(reap(prog), 0);
	peer_close(&p);
	got = slurp(out);
	assert_same_results(got, ref);
	free(got);
	free(ref);
}
END_TEST

/* A client killed while a round runs is dropped; the round ends and the other client migrates. */
START_TEST(test_client_killed_mid_round)
{
	struct peer_options o = { .target_gpu = 1 };
	struct gmig_msg req = { .type = GMIG_MSG_ROUND_BEGIN, .u.round_begin = { 1, 0 } }, m;
	struct peer_report rep;
	char out[160], out2[160], *ref = reference(&plain_run), *got;
	struct peer p;
	pid_t prog, victim;
	int type, err;

	snprintf(out, sizeof(out), "%s/migrated.txt", sc.dir);
	snprintf(out2, sizeof(out2), "%s/victim.txt", sc.dir);
	prog = start_program(out, false, &plain_run);
	victim = start_program(out2, false, &plain_run);
	ck_assert_int_eq(peer_connect(&p, sc.host_sock), 0);
	wait_clients(&p, 2);
	ck_assert_int_eq(peer_send(&p, &req), 0);
	type = peer_recv(&p, &m);
	ck_assert_int_eq(type, GMIG_MSG_REGION_DATA);
	kill(victim, SIGKILL);
	ck_assert_int_eq(reap(victim), 128 + SIGKILL);
	do
		type = peer_recv(&p, &m);
	while (type == GMIG_MSG_REGION_DATA);
	ck_assert_msg(type == GMIG_MSG_ROUND_END, "round ended with %d (%s)", type, p.error);

	wait_clients(&p, 1);
	/* Forget the dead client's image, as the host would after a fresh inventory. */
	for (unsigned i = 0; i < p.nregions; i++)
		if (p.regions[i].pid == (uint32_t)victim) {
			free(p.regions[i].data);
			p.regions[i--] = p.regions[--p.nregions];
		}
	err = peer_migrate(&p, &o, &rep);
	ck_assert_msg(err == 0, "migration failed: %s (%s)", strerror(-err), p.error);
	ck_assert_int_eq(reap(prog), 0);
	peer_close(&p);
	got = slurp(out);
	assert_same_results(got, ref);
	free(got);
	free(ref);
}
END_TEST

/* Reads one reply line (JSON replies end with a newline); returns its length. */
static ssize_t read_reply(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
		n = recv(fd, buf + len, cap - 1 - len, 0);
		ck_assert_int_gt(n, 0);
		len += (size_t)n;
		if (buf[len - 1] == '\n')
			break;
	}
	buf[len] = 0;
	return (ssize_t)len;
}

static void send_line(struct peer *p, const char *line)
{
	ck_assert_int_eq(peer_send_raw(p, line, strlen(line)), 0);
}

/* Garbage from the host gets a clear error; the agent stays up and serves the next session. */
START_TEST(test_malformed_host_input)
{
	static const char junk[] = "GMIX\x01\x00\x03\x01\x08\x00\x00\x00garbage-garbage-garbage-garbage!";
	struct gmig_msg m;
	struct peer p, q;
	char line[512];
	ssize_t n;
	int type;

	/* A bad frame: ERROR (or a closed channel), never a crash. */
	ck_assert_int_eq(peer_connect(&p, sc.host_sock), 0);
	ck_assert_int_eq(peer_send_raw(&p, junk, sizeof(junk) - 1), 0);
	type = peer_recv(&p, &m);
	ck_assert_msg(type == GMIG_MSG_ERROR || type == -ECONNRESET, "got %d", type);
	if (type == GMIG_MSG_ERROR)
		ck_assert_int_lt(m.u.error.code, 0);
	peer_close(&p);

	/* JSON on the same channel: an unknown command and a malformed line. */
	ck_assert_int_eq(peer_connect(&q, sc.host_sock), 0);
	send_line(&q, "{\"execute\":\"no-such\",\"id\":7}\n");
	n = read_reply(q.fd, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "CommandNotFound"));
	send_line(&q, "{\"execute\":\n");
	n = read_reply(q.fd, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "GenericError"));
	/* guest-sync-delimited: the reply starts with 0xFF and echoes the id. */
	send_line(&q, "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":12345}}\n");
	n = read_reply(q.fd, line, sizeof(line));
	ck_assert_int_gt(n, 1);
	ck_assert_uint_eq((unsigned char)line[0], 0xff);
	ck_assert_ptr_nonnull(strstr(line + 1, "12345"));
	/* gmig-status answers with the phase. */
	send_line(&q, "{\"execute\":\"gmig-status\"}\n");
	n = read_reply(q.fd, line, sizeof(line));
	ck_assert_msg(strstr(line, "\"return\"") && strstr(line, "phase"), "status: %s", line);
	/* And the framed protocol still works on this channel afterwards. */
	ck_assert_int_eq(peer_inventory(&q), 0);
	peer_close(&q);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("sim");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, references_setup, references_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_migrate);
	tcase_add_loop_test(tc, test_migrate_with_drop, DROP_AFTER_INVENTORY, DROP_MAX);
	tcase_add_test(tc, test_freeze_deadline);
	tcase_add_test(tc, test_client_killed_mid_round);
	tcase_add_test(tc, test_malformed_host_input);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
