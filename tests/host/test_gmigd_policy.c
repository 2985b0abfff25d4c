/* The convergence policy of pre-copy, row by row. */
#include <check.h>
#include <stdlib.h>

#include "policy.h"

#define R(d, b, us)	{ d, b, us }

static const struct {
	struct policy p;
	struct policy_round r[6];
	uint32_t n;
	enum policy_verdict v;
	uint64_t est_ms;
} rows[] = {
	/* 0: stop-and-copy asks for no round at all */
	{ { 0, 300 }, { R(0, 0, 0) }, 0, PV_STOP_COPY, 0 },
	/* 1: before any round: one */
	{ { 8, 300 }, { R(0, 0, 0) }, 0, PV_MORE, 0 },
	/* 2: a first round too slow for the target: more (1 GB at 1 GB/s = 1 s) */
	{ { 8, 300 }, { R(1000, 1000000000, 1000000) }, 1, PV_MORE, 1000 },
	/* 3: a whole image small enough: the final delta fits at once */
	{ { 8, 300 }, { R(100, 100000000, 100000) }, 1, PV_UNDER_TARGET, 100 },
	/* 4: shrinking, and the next delta (100 MB at the 1 GB/s seen) fits 300 ms */
	{ { 8, 300 }, { R(1000, 1000000000, 1000000), R(100, 100000000, 200000) }, 2,
	  PV_UNDER_TARGET, 100 },
	/* 5: shrinking, not yet under: more */
	{ { 8, 300 }, { R(1000, 1000000000, 1000000), R(600, 600000000, 700000) }, 2,
	  PV_MORE, 600 },
	/* 6: the changed set stopped shrinking */
	{ { 8, 300 }, { R(1000, 1000000000, 1000000), R(600, 600000000, 700000),
		       R(650, 650000000, 700000) }, 3, PV_NOT_SHRINKING, 650 },
	/* 7: the bound on rounds */
	{ { 2, 300 }, { R(1000, 1000000000, 1000000), R(600, 600000000, 700000) }, 2,
	  PV_MAX_ROUNDS, 600 },
	/* 8: an idle program: nothing changed, nothing to estimate */
	{ { 8, 300 }, { R(1000, 1000000000, 1000000), R(0, 0, 5000) }, 2, PV_UNDER_TARGET, 0 },
	/* 9: a round that moved nothing in no time does not divide by zero */
	{ { 8, 1 }, { R(0, 0, 0) }, 1, PV_UNDER_TARGET, 0 },
	/* 10: equal dirty counts count as not shrinking */
	{ { 8, 10 }, { R(500, 500000000, 500000), R(500, 500000000, 500000) }, 2,
	  PV_NOT_SHRINKING, 500 },
};

START_TEST(test_decide)
{
	uint64_t est = 12345;
	enum policy_verdict v = policy_decide(&rows[_i].p, rows[_i].r, rows[_i].n, &est);

	ck_assert_msg(v == rows[_i].v, "row %d: %s, not %s", _i, policy_verdict_names[v],
		      policy_verdict_names[rows[_i].v]);
	ck_assert_msg(est == rows[_i].est_ms, "row %d: estimate %llu, not %llu", _i,
		      (unsigned long long)est, (unsigned long long)rows[_i].est_ms);
}
END_TEST

#define GPU(b, m)	{ .backend = GMIG_BACKEND_##b, .model = m }

static const struct {
	struct gmig_rec_gpu from, to;
	bool ok;
} gpu_rows[] = {
	/* 0: two GPUs of one model: the driver moves the program */
	{ GPU(CUDA, "NVIDIA H200"), GPU(CUDA, "NVIDIA H200"), true },
	/* 1: another chip: refused before the freeze */
	{ GPU(CUDA, "NVIDIA H200"), GPU(CUDA, "NVIDIA A100-SXM4-80GB"), false },
	/* 2: a CUDA program to a GPU of another backend */
	{ GPU(CUDA, "NVIDIA H200"), GPU(SIM, "NVIDIA H200"), false },
	/* 3: and the other way */
	{ GPU(SIM, "gpu0"), GPU(CUDA, "NVIDIA H200"), false },
	/* 4: simulated GPUs move their bytes themselves, whatever their names */
	{ GPU(SIM, "gpu0"), GPU(SIM, "gpu1"), true },
	/* 5: a model name differing only in case is another name */
	{ GPU(CUDA, "NVIDIA H200"), GPU(CUDA, "nvidia h200"), false },
};

START_TEST(test_gpus_compatible)
{
	ck_assert_msg(policy_gpus_compatible(&gpu_rows[_i].from, &gpu_rows[_i].to) == gpu_rows[_i].ok,
		      "row %d", _i);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-policy");
	TCase *tc = tcase_create("policy");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_decide, 0, (int)(sizeof(rows) / sizeof(rows[0])));
	tcase_add_loop_test(tc, test_gpus_compatible, 0, (int)(sizeof(gpu_rows) / sizeof(gpu_rows[0])));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
