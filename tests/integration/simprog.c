/*
 * gmig-simprog: a GPU program on the simulated GPU that keeps computing a
 * checkable sequence on two streams, for migration tests and demos. Its output
 * depends only on its arguments, never on timing, so a migrated run must print
 * exactly what an unmigrated run prints.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "gmig/sim.h"

struct step_args {
	uint64_t *x;
	uint64_t n;
	uint64_t step;
};

struct mix_args {
	uint64_t *y;
	const uint64_t *x;
	uint64_t n;
	uint64_t step;
};

struct digest_args {
	const uint64_t *v;
	uint64_t n;
	uint64_t *out;
};

/* Each block advances its slice of x by one LCG step salted with the step number. */
static void k_step(uint32_t block, uint32_t nblocks, void *p)
{
	struct step_args *a = p;
	uint64_t lo = a->n * block / nblocks, hi = a->n * (block + 1) / nblocks;

	for (uint64_t i = lo; i < hi; i++)
		a->x[i] = a->x[i] * 6364136223846793005ull + (a->step | 1);
}

/* Folds x into y; only every 16th element, so most of y stays as it was (a sparse dirty set). */
static void k_mix(uint32_t block, uint32_t nblocks, void *p)
{
	struct mix_args *a = p;
	uint64_t lo = a->n * block / nblocks, hi = a->n * (block + 1) / nblocks;
	unsigned r = (unsigned)(a->step % 63) + 1;

	for (uint64_t i = lo + (a->step % 16); i < hi; i += 16)
		a->y[i] ^= (a->x[i] << r) | (a->x[i] >> (64 - r));
}

static void k_digest(uint32_t block, uint32_t nblocks, void *p)
{
	struct digest_args *a = p;

	(void)nblocks;
	if (block == 0)
		*a->out = XXH3_64bits(a->v, a->n * sizeof(uint64_t));
}

static void check(int err, const char *what)
{
	if (err) {
		fprintf(stderr, "gmig-simprog: %s: %s\n", what, gsim_strerror(err));
		exit(1);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gmig-simprog [--steps N] [--memory MIB] [--step-ms MS] [--kernel-ms MS]\n"
		"Computes a checkable sequence on the simulated GPU and prints a digest per\n"
		"ten steps; the output depends only on the arguments.\n"
		"  -s, --steps N       steps to run (default 100)\n"
		"  -m, --memory MIB    device memory in use, two arrays (default 16)\n"
		"  -w, --step-ms MS    host pause after each step, to stretch the run (default 0)\n"
		"  -k, --kernel-ms MS  a kernel of each step busy-waits this long (default 0)\n"
		"  -h, --help          show this help\n");
}

struct spin_args {
	uint64_t ms;
};

static void k_spin(uint32_t block, uint32_t nblocks, void *p)
{
	struct spin_args *a = p;
	struct timespec t0, t;

	(void)block;
	(void)nblocks;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((uint64_t)(t.tv_sec - t0.tv_sec) * 1000 + (uint64_t)(t.tv_nsec - t0.tv_nsec) / 1000000 < a->ms);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "steps", required_argument, NULL, 's' },
		{ "memory", required_argument, NULL, 'm' },
		{ "step-ms", required_argument, NULL, 'w' },
		{ "kernel-ms", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long steps = 100, mem_mb = 16, step_ms = 0, kernel_ms = 0, *v;
	gsim_stream_t s1, s2;
	uint64_t *x, *y, *digest, n, host_digest, *init;
	void *px, *py;
	int c;

	while ((c = getopt_long(argc, argv, "s:m:w:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': v = &steps; break;
		case 'm': v = &mem_mb; break;
		case 'w': v = &step_ms; break;
		case 'k': v = &kernel_ms; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		char *end;

		*v = strtoul(optarg, &end, 10);
		if (*end || (v == &mem_mb && (!*v || *v > 65536))) {
			usage(stderr);
			return 2;
		}
	}

	n = (uint64_t)mem_mb * (1 << 20) / 2 / sizeof(uint64_t);
	check(gsim_init(), "init");
	check(gsim_malloc(&px, n * sizeof(uint64_t)), "malloc x");
	check(gsim_malloc(&py, n * sizeof(uint64_t)), "malloc y");
	check(gsim_malloc((void **)&digest, sizeof(uint64_t)), "malloc digest");
	x = px;
	y = py;
	check(gsim_stream_create(&s1), "stream");
	check(gsim_stream_create(&s2), "stream");

	init = malloc(n * sizeof(uint64_t));
	if (!init)
		return 1;
	for (uint64_t i = 0; i < n; i++)
		init[i] = i * 0x9e3779b97f4a7c15ull;
	check(gsim_memcpy(x, init, n * sizeof(uint64_t), GSIM_HOST_TO_DEVICE), "memcpy x");
	/* Half of y stays zero: zero chunks travel as markers. */
	check(gsim_memset(y, 0, n * sizeof(uint64_t)), "memset y");
	check(gsim_memcpy(y, init, n * sizeof(uint64_t) / 2, GSIM_HOST_TO_DEVICE), "memcpy y");
	free(init);
	printf("pointers x=%p y=%p digest=%p\n", (void *)x, (void *)y, (void *)digest);
	fflush(stdout);

	for (unsigned long step = 1; step <= steps; step++) {
		struct step_args sa = { x, n, step };
		struct mix_args ma = { y, x, n / 2, step };

		/* x advances on stream 1; y mixes in the first half of x on stream 2, after it. */
		check(gsim_launch(k_step, 8, &sa, sizeof(sa), s1), "launch step");
		if (kernel_ms) {
			struct spin_args sp = { kernel_ms };

			check(gsim_launch(k_spin, 1, &sp, sizeof(sp), s1), "launch spin");
		}
		check(gsim_stream_synchronize(s1), "sync s1");
		check(gsim_launch(k_mix, 8, &ma, sizeof(ma), s2), "launch mix");
		check(gsim_stream_synchronize(s2), "sync s2");
		if (step % 10 == 0 || step == steps) {
			struct digest_args da = { y, n, digest };
			struct digest_args dx = { x, n, digest };
			uint64_t dy;

			check(gsim_launch(k_digest, 1, &da, sizeof(da), NULL), "launch digest");
			check(gsim_memcpy(&dy, digest, sizeof(dy), GSIM_DEVICE_TO_HOST), "memcpy digest");
			check(gsim_launch(k_digest, 1, &dx, sizeof(dx), NULL), "launch digest");
			check(gsim_memcpy(&host_digest, digest, sizeof(host_digest), GSIM_DEVICE_TO_HOST),
			      "memcpy digest");
			printf("step %lu x=%016" PRIx64 " y=%016" PRIx64 "\n", step, host_digest, dy);
			fflush(stdout);
		}
		if (step_ms)
			usleep((useconds_t)step_ms * 1000);
	}
	printf("pointers x=%p y=%p digest=%p\n", (void *)x, (void *)y, (void *)digest);
	check(gsim_stream_destroy(s1), "stream destroy");
	check(gsim_stream_destroy(s2), "stream destroy");
	check(gsim_free(x), "free");
	check(gsim_free(y), "free");
	check(gsim_free(digest), "free");
	return 0;
}
