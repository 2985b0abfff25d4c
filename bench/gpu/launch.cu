/*
 * The interposer's cost per call, which bounds its steady-state overhead on any program: host
 * time of an empty kernel launch and of a small async copy through the runtime API (static
 * cudart reaches libgmig's wrappers through cuGetProcAddress). Run it without libgmig, with
 * libgmig switched off and with libgmig on, in one run, and compare.
 *
 *   gmig-bench-launch [--launches 200000] [--repeat 7]
 * Prints "launch_ns=X copy_ns=Y" (medians over the repeats, ns per call).
 */
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../tests/gpu/gputest-rt.cuh"

__global__ void empty(int *p)
{
	if (!p)
		return;
	*p = 1;
}

/* Median ns per call of @n calls of @f, synchronizing every 1024 so the queue never fills. */
template <typename F> static double per_call(F f, long n, int repeat, cudaStream_t s)
{
	std::vector<double> ns;

	for (int r = 0; r < repeat; r++) {
		auto t0 = std::chrono::steady_clock::now();
		for (long i = 0; i < n; i++) {
			f();
			if ((i & 1023) == 1023)
				GT_RT(cudaStreamSynchronize(s));
		}
		GT_RT(cudaStreamSynchronize(s));
		auto t1 = std::chrono::steady_clock::now();
		ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / n);
	}
	std::sort(ns.begin(), ns.end());
	return ns[ns.size() / 2];
}

int main(int argc, char **argv)
{
	long n = 200000;
	int repeat = 7;
	cudaStream_t s;
	void *a, *b;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--launches"))
			n = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--repeat"))
			repeat = atoi(argv[i + 1]);
	}
	GT_RT(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
	GT_RT(cudaMalloc(&a, 4096));
	GT_RT(cudaMalloc(&b, 4096));
	/* Warm-up: module load, first launch, the interposer's start. */
	per_call([&] { empty<<<1, 32, 0, s>>>(nullptr); }, 10000, 1, s);
	GT_LAUNCHED();
	double launch = per_call([&] { empty<<<1, 32, 0, s>>>(nullptr); }, n, repeat, s);
	GT_LAUNCHED();
	double copy = per_call([&] { GT_RT(cudaMemcpyAsync(b, a, 256, cudaMemcpyDeviceToDevice, s)); },
			       n / 4, repeat, s);
	printf("launch_ns=%.1f copy_ns=%.1f\n", launch, copy);
	return 0;
}
