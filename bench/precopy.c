/*
 * Pre-copy throughput through gmig-agent: a program on the simulated GPU holds
 * N MiB of device memory, and a full round (base 0) carries all of it from
 * libgmig through the agent's staging memory and host channel (a unix socket)
 * to a peer playing the host. Printed beside a plain memcpy of the same bytes,
 * the floor any copy path pays, measured in the same run.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"
#include "procs.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double memcpy_gbps(size_t bytes)
{
	char *a = malloc(bytes), *b = malloc(bytes);
	double t, best = 1e9;

	ck_assert(a && b);
	memset(a, 0x5a, bytes);
	memset(b, 0, bytes);
	for (int i = 0; i < 3; i++) {
		t = now();
		memcpy(b, a, bytes);
		t = now() - t;
		if (t < best)
			best = t;
	}
	ck_assert_int_eq(b[bytes - 1], 0x5a);
	free(a);
	free(b);
	return (double)bytes / best / 1e9;
}

START_TEST(bench)
{
	static const unsigned sizes[] = { 64, 256, 1024 };
	const char *bin = getenv("GMIG_SIMPROG_BIN");

	printf("\npre-copy of a whole program's device memory (round with base 0), 64 KiB chunks\n");
	printf("%8s %14s %10s %12s %14s %8s\n", "MiB", "1st GB/s", "round s", "agent GB/s",
	       "memcpy GB/s", "ratio");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct scratch sc;
		struct peer p;
		struct gmig_round_end st;
		char mem[16], env_dev[160], env_sock[160];
		char *argv[] = { (char *)bin, "--steps", "1000000", "--step-ms", "100000", "--memory", mem, NULL };
		char *env[] = { env_dev, env_sock, NULL };
		double t, gbps, base, cold;
		pid_t agent, prog;

		scratch_make(&sc, sizes[i] * 2 + 64);
		agent = start_agent(&sc);
		snprintf(mem, sizeof(mem), "%u", sizes[i]);
		snprintf(env_dev, sizeof(env_dev), "GMIG_SIM_DEVICE=%s", sc.dev[0]);
		snprintf(env_sock, sizeof(env_sock), "GMIG_AGENT_SOCKET=%s", sc.client_sock);
		prog = spawn(argv, env, "/dev/null");
		ck_assert_int_eq(peer_connect(&p, sc.host_sock), 0);
		for (int k = 0; k < 2000 && p.clients != 1; k++) {
			ck_assert_int_eq(peer_inventory(&p), 0);
			usleep(10000);
		}
		ck_assert_uint_eq(p.clients, 1);
		/*
		 * The first round also pays for first touches of fresh memory (slow on
		 * virtual machines); the second, again against base 0, is the pipeline.
		 */
		t = now();
		ck_assert_int_eq(peer_round(&p, 1, 0, &st, false), 0);
		cold = (double)((uint64_t)sizes[i] << 20) / (now() - t) / 1e9;
		t = now();
		ck_assert_int_eq(peer_round(&p, 2, 0, &st, false), 0);
		t = now() - t;
		gbps = (double)((uint64_t)sizes[i] << 20) / t / 1e9;
		base = memcpy_gbps((size_t)sizes[i] << 20);
		printf("%8u %14.2f %10.3f %12.2f %14.2f %7.0f%%\n", sizes[i], cold, t, gbps, base,
		       100 * gbps / base);
		fflush(stdout);
		peer_close(&p);
		kill(prog, SIGKILL);
		reap(prog);
		kill(agent, SIGTERM);
		reap(agent);
		scratch_remove(&sc);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bench");
	TCase *tc = tcase_create("precopy");
	SRunner *sr;

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, bench);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	return srunner_ntests_failed(sr) ? EXIT_FAILURE : EXIT_SUCCESS;
}
