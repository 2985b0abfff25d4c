/*
 * bench-fingerprint: CPU XXH3-64 chunk fingerprint throughput for chunk sizes
 * 4 KiB to 4 MiB over a buffer (1 GiB by default), against plain memcpy and
 * memcmp of the same bytes, and the pre-copy's per-chunk work (copy into a
 * staging buffer, then hash the copy). Prints a table; asserts nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define CHUNK_MIN	(4u << 10)
#define CHUNK_MAX	(4u << 20)

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fill(uint8_t *p, size_t n)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i + 8 <= n; i += 8) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		memcpy(p + i, &s, 8);
	}
}

/* What each measurement did, so the compiler cannot drop it and the reader can compare runs. */
static uint64_t sink;

enum what { HASH, COPY, CMP, COPY_HASH };

static double run_once(enum what w, const uint8_t *src, uint8_t *dst, uint8_t *stage, size_t size,
		       size_t chunk)
{
	double t0 = now();

	for (size_t off = 0; off < size; off += chunk) {
		switch (w) {
		case HASH:
			sink += XXH3_64bits(src + off, chunk);
			break;
		case COPY:
			memcpy(dst + off, src + off, chunk);
			break;
		case CMP:
			sink += (uint64_t)memcmp(src + off, dst + off, chunk);
			break;
		case COPY_HASH:
			memcpy(stage, src + off, chunk);
			sink += XXH3_64bits(stage, chunk);
			break;
		}
	}
	return now() - t0;
}

/* GB/s (10^9 bytes a second) of the best of runs. */
static double rate(enum what w, const uint8_t *src, uint8_t *dst, uint8_t *stage, size_t size,
		   size_t chunk, int runs)
{
	double best = 1e30;

	for (int r = 0; r < runs; r++) {
		double t = run_once(w, src, dst, stage, size, chunk);

		if (t < best)
			best = t;
	}
	return (double)size / best / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-fingerprint [--size MiB] [--runs N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	size_t mib = 1024;
	int runs = 3, c;
	uint8_t *src, *dst, *stage;
	size_t size;

	while ((c = getopt_long(argc, argv, "s:r:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			mib = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (mib < CHUNK_MAX >> 20 || runs < 1)
		usage();
	size = mib << 20;
	src = aligned_alloc(CHUNK_MAX, size);
	dst = aligned_alloc(CHUNK_MAX, size);
	stage = aligned_alloc(CHUNK_MAX, CHUNK_MAX);
	if (!src || !dst || !stage) {
		fprintf(stderr, "bench-fingerprint: cannot allocate 2 x %zu MiB\n", mib);
		return 1;
	}
	fill(src, size);
	memcpy(dst, src, size);	/* also faults every page in before timing */

	printf("XXH3-64 chunk fingerprints on the CPU, %zu MiB of random bytes, best of %d runs, GB/s\n\n",
	       mib, runs);
	printf("| chunk | xxh3 | memcpy | memcmp | copy + xxh3 | chunks |\n");
	printf("| ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (size_t chunk = CHUNK_MIN; chunk <= CHUNK_MAX; chunk *= 2) {
		double h = rate(HASH, src, dst, stage, size, chunk, runs);
		double cp = rate(COPY, src, dst, stage, size, chunk, runs);
		double cm = rate(CMP, src, dst, stage, size, chunk, runs);
		double ch = rate(COPY_HASH, src, dst, stage, size, chunk, runs);

		if (chunk < (1u << 20))
			printf("| %zu KiB", chunk >> 10);
		else
			printf("| %zu MiB", chunk >> 20);
		printf(" | %.1f | %.1f | %.1f | %.1f | %zu |\n", h, cp, cm, ch, size / chunk);
	}
	printf("\nmemcpy and memcmp run over the same bytes in chunk-sized calls; copy + xxh3 copies\n"
	       "each chunk into one staging buffer and hashes the copy, as a pre-copy round does.\n"
	       "(result %016llx)\n", (unsigned long long)sink);
	free(stage);
	free(dst);
	free(src);
	return 0;
}
