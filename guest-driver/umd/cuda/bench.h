/*
 * Entry points for bench/ to time the CUDA backend's device work on a GPU
 * (exported from libgmig.so; a program finds them with dlsym). Both run on
 * the arena's device with the core started (after cuInit, GMIG_BACKEND not
 * sim, GMIG_DISABLE unset) and return -ENODEV otherwise.
 */
#ifndef GMIG_UMD_CUDA_BENCH_H
#define GMIG_UMD_CUDA_BENCH_H

#include <stdint.h>

/*
 * Fingerprints [va, va + len) in chunks of chunk bytes, iters times, with
 * the backend's kernel; out (room for len / chunk rounded up) gets the
 * prints, *seconds the time of all iterations. va is a device address of
 * the arena (cuMemAlloc under libgmig).
 */
int gmig_cuda_bench_fingerprint(uint64_t va, uint64_t len, uint32_t chunk, unsigned iters,
				uint64_t *out, double *seconds);
/* Copies [va, va + len) to host memory dst (pinned for it first when pin) iters times; *seconds as above. */
int gmig_cuda_bench_read(uint64_t va, uint64_t len, void *dst, int pin, unsigned iters,
			 double *seconds);

#endif
