/*
 * gmig's device work against the copies that bound it, in one run under libgmig (LD_PRELOAD,
 * agent running): the CUDA backend's fingerprint kernel (64 KiB chunks) and its device-to-host
 * read, found with dlsym in libgmig.so, beside a device-to-device copy and pinned cuMemcpy
 * both ways of the same memory.
 *
 *   gmig-bench-fingerprint [--mib 4096] [--iters 10]
 * Prints one line of "NAME_GBs=VALUE" fields (decimal GB/s; a copy counts read plus write).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>

#define CHUNK	(64u << 10)

typedef int (*fingerprint_fn)(uint64_t va, uint64_t len, uint32_t chunk, unsigned iters,
			      uint64_t *out, double *seconds);
typedef int (*read_fn)(uint64_t va, uint64_t len, void *dst, int pin, unsigned iters,
		       double *seconds);

#define CK(call) check((call), #call)

static void check(CUresult r, const char *what)
{
	const char *name = "?";

	if (r == CUDA_SUCCESS)
		return;
	cuGetErrorName(r, &name);
	fprintf(stderr, "gmig-bench-fingerprint: %s: %s (%d)\n", what, name, (int)r);
	exit(1);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static long opt(int argc, char **argv, const char *name, long def)
{
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], name))
			return strtol(argv[i + 1], NULL, 0);
	}
	return def;
}

int main(int argc, char **argv)
{
	size_t len = (size_t)opt(argc, argv, "--mib", 4096) << 20;
	unsigned iters = (unsigned)opt(argc, argv, "--iters", 10);
	fingerprint_fn fingerprint = (fingerprint_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "gmig_cuda_bench_fingerprint");
	read_fn bread = (read_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "gmig_cuda_bench_read");
	uint64_t *prints, *host, x = 0x9e3779b97f4a7c15ull;
	CUdeviceptr a, b;
	CUcontext ctx;
	CUdevice dev;
	double t, s;
	void *dst;
	int r;

	CK(cuInit(0));
	CK(cuDeviceGet(&dev, 0));
	CK(cuDevicePrimaryCtxRetain(&ctx, dev));
	CK(cuCtxSetCurrent(ctx));
	CK(cuMemAlloc(&a, len));
	CK(cuMemAlloc(&b, len));
	CK(cuMemAllocHost((void **)&host, len));
	for (size_t k = 0; k < len / 8; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		host[k] = x;
	}
	CK(cuMemcpyHtoD(a, host, len));	/* also the warm-up of both directions */
	CK(cuMemcpyDtoH(host, a, len));

	t = now_s();
	for (unsigned i = 0; i < iters; i++)
		CK(cuMemcpyDtoD(b, a, len));
	CK(cuCtxSynchronize());
	printf("d2d_GBs=%.0f", 2.0 * len * iters / (now_s() - t) / 1e9);
	t = now_s();
	for (unsigned i = 0; i < iters; i++)
		CK(cuMemcpyDtoH(host, a, len));
	printf(" d2h_pinned_GBs=%.1f", (double)len * iters / (now_s() - t) / 1e9);
	t = now_s();
	for (unsigned i = 0; i < iters; i++)
		CK(cuMemcpyHtoD(b, host, len));
	printf(" h2d_pinned_GBs=%.1f", (double)len * iters / (now_s() - t) / 1e9);

	if (!fingerprint || !bread) {
		printf(" gmig=absent (not under a CUDA-built libgmig.so)\n");
		return 0;
	}
	prints = calloc(len / CHUNK, sizeof(*prints));
	r = fingerprint(a, len, CHUNK, 1, prints, &s);	/* warm-up: module load */
	if (!r)
		r = fingerprint(a, len, CHUNK, iters, prints, &s);
	if (r)
		printf(" fingerprint=error%d", r);
	else
		printf(" fingerprint_GBs=%.0f", (double)len * iters / s / 1e9);
	dst = malloc(len);
	r = bread(a, len, dst, 1, iters, &s);
	if (r)
		printf(" gmig_read=error%d", r);
	else
		printf(" gmig_read_GBs=%.1f", (double)len * iters / s / 1e9);
	/* The backend's read must bring the bytes that were written. */
	printf(" gmig_read_data=%s\n", !r && !memcmp(dst, host, len) ? "ok" : "BAD");
	return 0;
}
