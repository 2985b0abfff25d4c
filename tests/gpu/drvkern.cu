/*
 * Kernels of GPU test 3, built into a fatbin that the driver-API program embeds and loads
 * with cuModuleLoadData; extern "C" so it finds them by name.
 */
#include <stdint.h>

#include "gputest.h"

__device__ unsigned long long g_launches;

extern "C" __global__ void k_step(uint64_t *v, long n, uint64_t step)
{
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
		v[i] = gt_mix64(v[i] ^ step) + (uint64_t)i;
	if (blockIdx.x == 0 && threadIdx.x == 0)
		g_launches++;
}

extern "C" __global__ void k_digest(unsigned long long *out, const uint64_t *v, long n)
{
	unsigned long long x = 0;

	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
		x ^= gt_mix64(v[i] + (uint64_t)i);
	atomicXor(out, x);
}
