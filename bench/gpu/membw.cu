/*
 * Copy bandwidths that bound a GPU migration, measured in one run: device-to-device copy
 * (bytes read plus written), pinned host-to-device and device-to-host cudaMemcpy (which is
 * cuMemcpy), and GPU 0 to GPU 1 without peer access. Event-timed, median of the repeats.
 *
 *   gmig-bench-membw [--mib 4096] [--repeat 7]
 * Prints "membw NAME GB/s" lines.
 */
#include <algorithm>
#include <vector>

#include "../../tests/gpu/gputest-rt.cuh"

typedef void (*copy_fn)(void *dst, const void *src, size_t bytes);

static void d2d(void *dst, const void *src, size_t bytes)
{
	GT_RT(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
}

static void h2d(void *dst, const void *src, size_t bytes)
{
	GT_RT(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, 0));
}

static void d2h(void *dst, const void *src, size_t bytes)
{
	GT_RT(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, 0));
}

static void peer(void *dst, const void *src, size_t bytes)
{
	GT_RT(cudaMemcpyPeerAsync(dst, 1, src, 0, bytes, 0));
}

/* Median GB/s of @repeat copies, @counted bytes each (read + write for device copies). */
static double measure(copy_fn f, void *dst, const void *src, size_t bytes, double counted, int repeat)
{
	std::vector<double> gbs;
	cudaEvent_t a, b;
	float ms;

	GT_RT(cudaEventCreate(&a));
	GT_RT(cudaEventCreate(&b));
	f(dst, src, bytes);	/* warm-up */
	for (int i = 0; i < repeat; i++) {
		GT_RT(cudaEventRecord(a, 0));
		f(dst, src, bytes);
		GT_RT(cudaEventRecord(b, 0));
		GT_RT(cudaEventSynchronize(b));
		GT_RT(cudaEventElapsedTime(&ms, a, b));
		gbs.push_back(counted / (ms * 1e6));
	}
	std::sort(gbs.begin(), gbs.end());
	GT_RT(cudaEventDestroy(a));
	GT_RT(cudaEventDestroy(b));
	return gbs[gbs.size() / 2];
}

__global__ void k_fill(uint64_t *v, size_t words)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < words; i += (size_t)gridDim.x * blockDim.x)
		v[i] = gt_mix64(i) | 1;
}

int main(int argc, char **argv)
{
	size_t bytes = (size_t)gt_opt(argc, argv, "--mib", 4096) << 20;
	int repeat = (int)gt_opt(argc, argv, "--repeat", 7), n = 0;
	void *a, *b, *host, *other = NULL;

	gt_start();
	GT_RT(cudaGetDeviceCount(&n));
	GT_RT(cudaSetDevice(0));
	GT_RT(cudaMalloc(&a, bytes));
	GT_RT(cudaMalloc(&b, bytes));
	GT_RT(cudaMallocHost(&host, bytes));
	memset(host, 0x5b, bytes);
	k_fill<<<2048, 256>>>((uint64_t *)a, bytes / 8);
	GT_LAUNCHED();
	printf("membw d2d %.1f\n", measure(d2d, b, a, bytes, 2.0 * bytes, repeat));
	printf("membw h2d_pinned %.1f\n", measure(h2d, a, host, bytes, (double)bytes, repeat));
	printf("membw d2h_pinned %.1f\n", measure(d2h, host, a, bytes, (double)bytes, repeat));
	if (n > 1) {
		GT_RT(cudaSetDevice(1));
		GT_RT(cudaMalloc(&other, bytes));
		GT_RT(cudaSetDevice(0));
		printf("membw peer_0to1 %.1f\n", measure(peer, other, a, bytes, (double)bytes, repeat));
	}
	return 0;
}
