/*
 * The program the migration benchmarks move: it holds a working set of device memory,
 * written with non-zero data, and rewrites a window of it each step (the dirty rate), until
 * its time is up or it is killed. Prints "ready" once the working set is written.
 *
 *   gmig-bench-hold --mib 8192 [--dirty-mib 0] [--step-ms 100] [--seconds 300]
 */
#include "../../tests/gpu/gputest-rt.cuh"

__global__ void k_fill(uint64_t *v, size_t words, uint64_t salt)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < words; i += (size_t)gridDim.x * blockDim.x)
		v[i] = gt_mix64(i ^ salt) | 1;
}

int main(int argc, char **argv)
{
	size_t words = (size_t)gt_opt(argc, argv, "--mib", 1024) << 17;
	size_t dirty = (size_t)gt_opt(argc, argv, "--dirty-mib", 0) << 17;
	long step_ms = gt_opt(argc, argv, "--step-ms", 100), seconds = gt_opt(argc, argv, "--seconds", 300);
	uint64_t *v;

	gt_start();
	if (dirty > words)
		dirty = words;
	GT_RT(cudaSetDevice(0));
	GT_RT(cudaMalloc(&v, words * 8));
	k_fill<<<2048, 256>>>(v, words, 0);
	GT_LAUNCHED();
	GT_RT(cudaDeviceSynchronize());
	printf("ready\n");
	for (long s = 1; s <= seconds * 1000 / (step_ms ? step_ms : 1); s++) {
		if (dirty) {
			size_t off = (size_t)s * dirty % (words - dirty + 1);

			k_fill<<<2048, 256>>>(v + off, dirty, (uint64_t)s);
			GT_LAUNCHED();
			GT_RT(cudaDeviceSynchronize());
		}
		gt_sleep_ms(step_ms);
	}
	return 0;
}
