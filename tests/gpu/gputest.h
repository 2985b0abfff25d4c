/*
 * What every GPU test program shares: checked calls, options, and the line protocol
 * scripts/gpu-check reads (ready, uuid, ptr lines apart from the compared results).
 *
 * Output lines a program prints, one per line, flushed at once:
 *   uuid start GPU-...       the GPU its context runs on when it starts
 *   ptr start NAME 0x...     a device pointer or handle once it is set up
 *   ready                    set up; a migration may come from now on
 *   ...                      results, compared bit for bit with an unmigrated run
 *   ptr end NAME 0x...       the same pointers at the end: they must not change
 *   uuid end GPU-...         the GPU it ends on: the other one after a migration
 * Results are integers or floats printed with %a, so equal text means equal bits.
 */
#ifndef GMIG_GPUTEST_H
#define GMIG_GPUTEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>

#define GT_DRV(call) gt_drv_check((call), #call, __FILE__, __LINE__)

static inline void gt_drv_check(CUresult r, const char *what, const char *file, int line)
{
	/* The number only: the runtime programs link no libcuda to name it with. */
	if (r == CUDA_SUCCESS)
		return;
	fprintf(stderr, "%s:%d: %s: CUresult %d\n", file, line, what, (int)r);
	exit(1);
}

/* Line-buffered stdout, so the script sees "ready" while the program runs. */
static inline void gt_start(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* The value of option @name (--steps 40), or @def when it is not given. */
static inline long gt_opt(int argc, char **argv, const char *name, long def)
{
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], name))
			return strtol(argv[i + 1], NULL, 0);
	}
	return def;
}

static inline void gt_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&ts, &ts))
		;
}

/* Prints "uuid WHEN GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi -L spells it. */
static inline void gt_print_uuid(const char *when, const CUuuid *u)
{
	const unsigned char *b = (const unsigned char *)u->bytes;

	printf("uuid %s GPU-", when);
	for (int i = 0; i < 16; i++)
		printf("%02x%s", b[i], (i == 3 || i == 5 || i == 7 || i == 9) ? "-" : "");
	printf("\n");
}

static inline void gt_print_ptr(const char *when, const char *name, const void *p)
{
	printf("ptr %s %s %#llx\n", when, name, (unsigned long long)(uintptr_t)p);
}

/* A 64-bit mix (splitmix64's finaliser): the integer work the test kernels are made of. */
#define GT_MIX(x) gt_mix64(x)
#ifdef __CUDACC__
__host__ __device__
#endif
static inline uint64_t gt_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif
