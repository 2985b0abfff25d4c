/*
 * The vendor baseline: the driver's own checkpoint API moving this process, holding SIZE GiB
 * of written device memory on GPU 0, onto the next GPU (gpuPairs: every GPU to the next, a
 * full permutation), called on its own pid from a side thread; Lock, Checkpoint, Restore and
 * Unlock are timed apart, then the data is checked on the new GPU.
 *
 *   gmig-bench-ckpt --gib SIZE
 * Prints one line: "vendor gib=8 lock_ms=... checkpoint_ms=... restore_ms=... unlock_ms=...
 * moved=1 data=ok". No timing is an assertion; exit 1 on any CUDA error.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h>

#define TILE		(256ull << 20)	/* bytes copied in and checked per call */
#define MAX_GPUS	16

#define CK(call) check((call), #call)

static void check(CUresult r, const char *what)
{
	const char *name = "?";

	if (r == CUDA_SUCCESS)
		return;
	cuGetErrorName(r, &name);
	fprintf(stderr, "gmig-bench-ckpt: %s: %s (%d)\n", what, name, (int)r);
	exit(1);
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static struct {
	CUcheckpointGpuPair pairs[MAX_GPUS];
	unsigned int npairs;
	double ms[4];
} job;

/* Runs the whole cycle on this process while the main thread waits in pthread_join. */
static void *cycle(void *arg)
{
	CUcheckpointLockArgs lock = { .timeoutMs = 60000 };
	CUcheckpointCheckpointArgs ckpt = { { 0 } };
	CUcheckpointRestoreArgs restore = { .gpuPairs = job.pairs, .gpuPairsCount = job.npairs };
	CUcheckpointUnlockArgs unlock = { { 0 } };
	int pid = getpid();
	double t;

	(void)arg;
	t = now_ms();
	CK(cuCheckpointProcessLock(pid, &lock));
	job.ms[0] = now_ms() - t;
	t = now_ms();
	CK(cuCheckpointProcessCheckpoint(pid, &ckpt));
	job.ms[1] = now_ms() - t;
	t = now_ms();
	CK(cuCheckpointProcessRestore(pid, &restore));
	job.ms[2] = now_ms() - t;
	t = now_ms();
	CK(cuCheckpointProcessUnlock(pid, &unlock));
	job.ms[3] = now_ms() - t;
	return NULL;
}

/* The expected first 4 KiB of tile @i: the shared random tile with the tile's number in it. */
static void stamp(uint32_t *words, size_t i)
{
	for (size_t k = 0; k < 1024; k++)
		words[k] = (uint32_t)(i * 2654435761u) ^ (uint32_t)k;
}

int main(int argc, char **argv)
{
	size_t gib = argc == 3 && !strcmp(argv[1], "--gib") ? strtoul(argv[2], NULL, 10) : 0;
	size_t ntiles = gib * (1ull << 30) / TILE, bad = 0;
	CUdeviceptr *tiles;
	uint64_t *host, x = 88172645463325252ull;
	uint32_t head[1024];
	CUuuid before, after;
	CUcontext ctx;
	CUdevice dev;
	pthread_t th;
	int n;

	if (!gib) {
		fprintf(stderr, "usage: gmig-bench-ckpt --gib SIZE\n");
		return 2;
	}
	CK(cuInit(0));
	CK(cuDeviceGetCount(&n));
	if (n < 2 || n > MAX_GPUS) {
		fprintf(stderr, "gmig-bench-ckpt: needs 2 to %d GPUs, found %d\n", MAX_GPUS, n);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		CUdevice a, b;

		CK(cuDeviceGet(&a, i));
		CK(cuDeviceGet(&b, (i + 1) % n));
		CK(cuDeviceGetUuid(&job.pairs[i].oldUuid, a));
		CK(cuDeviceGetUuid(&job.pairs[i].newUuid, b));
	}
	job.npairs = (unsigned int)n;
	CK(cuDeviceGet(&dev, 0));
	CK(cuDevicePrimaryCtxRetain(&ctx, dev));
	CK(cuCtxSetCurrent(ctx));

	/* Random, not zero: the copy must not be cheaper than real data. */
	CK(cuMemAllocHost((void **)&host, TILE));
	for (size_t k = 0; k < TILE / 8; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		host[k] = x;
	}
	tiles = calloc(ntiles, sizeof(*tiles));
	for (size_t i = 0; i < ntiles; i++) {
		CK(cuMemAlloc(&tiles[i], TILE));
		CK(cuMemcpyHtoD(tiles[i], host, TILE));
		stamp(head, i);
		CK(cuMemcpyHtoD(tiles[i], head, sizeof(head)));
	}
	CK(cuCtxSynchronize());
	CK(cuDeviceGetUuid(&before, dev));

	pthread_create(&th, NULL, cycle, NULL);
	pthread_join(th, NULL);

	CK(cuCtxGetDevice(&dev));
	CK(cuDeviceGetUuid(&after, dev));
	/* Every tile's head and, from every eighth tile, the whole of it. */
	for (size_t i = 0; i < ntiles; i++) {
		uint32_t got[1024];

		stamp(head, i);
		CK(cuMemcpyDtoH(got, tiles[i], sizeof(got)));
		bad += memcmp(got, head, sizeof(got)) != 0;
	}
	for (size_t i = 0; i < ntiles; i += 8) {
		uint64_t *back = malloc(TILE);

		CK(cuMemcpyDtoH(back, tiles[i], TILE));
		bad += memcmp((char *)back + 4096, (char *)host + 4096, TILE - 4096) != 0;
		free(back);
	}
	printf("vendor gib=%zu lock_ms=%.1f checkpoint_ms=%.1f restore_ms=%.1f unlock_ms=%.1f "
	       "moved=%d data=%s\n", gib, job.ms[0], job.ms[1], job.ms[2], job.ms[3],
	       memcmp(&before, &after, sizeof(before)) != 0, bad ? "BAD" : "ok");
	return bad ? 1 : 0;
}
