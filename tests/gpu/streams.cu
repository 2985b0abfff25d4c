/*
 * GPU test 2 (runtime API, static cudart): three streams ordered by events, a CUDA graph
 * captured once and launched every step, stream-ordered allocations (cudaMallocAsync: one
 * kept for the whole run, one made and freed each step) and a host callback. Integer work
 * only, so the printed digests are exact.
 *
 *   gmig-gpu-streams [--steps 60] [--step-ms 100] [--mib 64]
 */
#include "gputest-rt.cuh"

#define BLOCKS	512
#define THREADS	256

__global__ void k_seed(uint64_t *a, long n, uint64_t step)
{
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
		a[i] = gt_mix64(a[i] + step);
}

__global__ void k_fold(uint64_t *dst, const uint64_t *src, long n, unsigned int rot)
{
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
		dst[i] += (src[i] << rot) | (src[i] >> (64 - rot));
}

__global__ void k_digest(unsigned long long *out, const uint64_t *v, long n)
{
	unsigned long long x = 0;

	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
		x ^= gt_mix64(v[i] ^ (uint64_t)i);
	atomicXor(out, x);
}

static void CUDART_CB on_host(void *p)
{
	++*(unsigned long *)p;
}

int main(int argc, char **argv)
{
	long steps = gt_opt(argc, argv, "--steps", 60), step_ms = gt_opt(argc, argv, "--step-ms", 100);
	long n = gt_opt(argc, argv, "--mib", 64) * 131072;
	size_t bytes = n * sizeof(uint64_t);
	cudaStream_t s[3];
	cudaEvent_t ev[2];
	cudaGraph_t graph;
	cudaGraphExec_t exec;
	uint64_t *a, *b, *c, *kept, *tmp;
	unsigned long long *dig, h_dig[4];
	unsigned long callbacks = 0;

	gt_start();
	GT_RT(cudaSetDevice(0));
	gt_print_rt_uuid("start");
	for (int i = 0; i < 3; i++)
		GT_RT(cudaStreamCreateWithFlags(&s[i], cudaStreamNonBlocking));
	for (int i = 0; i < 2; i++)
		GT_RT(cudaEventCreateWithFlags(&ev[i], cudaEventDisableTiming));
	GT_RT(cudaMalloc(&a, bytes));
	GT_RT(cudaMalloc(&b, bytes));
	GT_RT(cudaMalloc(&c, bytes));
	GT_RT(cudaMalloc(&dig, 4 * sizeof(*dig)));
	GT_RT(cudaMemset(a, 0x5a, bytes));
	GT_RT(cudaMemset(b, 0x33, bytes));
	GT_RT(cudaMemset(c, 0x0f, bytes));
	/* A stream-ordered allocation that lives through the migration, from the default pool. */
	GT_RT(cudaMallocAsync(&kept, bytes, s[2]));
	GT_RT(cudaMemsetAsync(kept, 0x77, bytes, s[2]));

	/* The graph: fold b into c, then a copy of c into kept, then fold kept into c. */
	GT_RT(cudaStreamBeginCapture(s[2], cudaStreamCaptureModeGlobal));
	k_fold<<<BLOCKS, THREADS, 0, s[2]>>>(c, b, n, 7);
	GT_RT(cudaMemcpyAsync(kept, c, bytes, cudaMemcpyDeviceToDevice, s[2]));
	k_fold<<<BLOCKS, THREADS, 0, s[2]>>>(c, kept, n, 29);
	GT_RT(cudaStreamEndCapture(s[2], &graph));
	GT_RT(cudaGraphInstantiate(&exec, graph, 0));
	GT_RT(cudaDeviceSynchronize());

	gt_print_ptr("start", "a", a);
	gt_print_ptr("start", "kept", kept);
	gt_print_ptr("start", "stream2", s[2]);
	gt_print_ptr("start", "graph", exec);
	printf("ready\n");

	for (long st = 0; st < steps; st++) {
		k_seed<<<BLOCKS, THREADS, 0, s[0]>>>(a, n, (uint64_t)st);
		GT_RT(cudaEventRecord(ev[0], s[0]));
		GT_RT(cudaStreamWaitEvent(s[1], ev[0], 0));
		k_fold<<<BLOCKS, THREADS, 0, s[1]>>>(b, a, n, (unsigned int)(st % 63) + 1);
		GT_RT(cudaEventRecord(ev[1], s[1]));
		GT_RT(cudaStreamWaitEvent(s[2], ev[1], 0));
		GT_RT(cudaGraphLaunch(exec, s[2]));
		/* A short-lived pool allocation each step, freed in stream order. */
		GT_RT(cudaMallocAsync(&tmp, bytes / 4, s[2]));
		GT_RT(cudaMemcpyAsync(tmp, c + (st % 4) * (n / 4), bytes / 4, cudaMemcpyDeviceToDevice, s[2]));
		k_fold<<<BLOCKS, THREADS, 0, s[2]>>>(a, tmp, n / 4, 13);
		GT_RT(cudaFreeAsync(tmp, s[2]));
		GT_RT(cudaLaunchHostFunc(s[2], on_host, &callbacks));
		GT_RT(cudaMemsetAsync(dig, 0, 4 * sizeof(*dig), s[2]));
		k_digest<<<BLOCKS, THREADS, 0, s[2]>>>(dig, a, n);
		k_digest<<<BLOCKS, THREADS, 0, s[2]>>>(dig + 1, b, n);
		k_digest<<<BLOCKS, THREADS, 0, s[2]>>>(dig + 2, c, n);
		k_digest<<<BLOCKS, THREADS, 0, s[2]>>>(dig + 3, kept, n);
		GT_LAUNCHED();
		GT_RT(cudaMemcpyAsync(h_dig, dig, sizeof(h_dig), cudaMemcpyDeviceToHost, s[2]));
		GT_RT(cudaStreamSynchronize(s[2]));
		/* s[0] may run ahead into the next step only after s[1] consumed a. */
		GT_RT(cudaStreamWaitEvent(s[0], ev[1], 0));
		printf("step %ld a %016llx b %016llx c %016llx kept %016llx callbacks %lu\n", st,
		       h_dig[0], h_dig[1], h_dig[2], h_dig[3], callbacks);
		gt_sleep_ms(step_ms);
	}

	gt_print_ptr("end", "a", a);
	gt_print_ptr("end", "kept", kept);
	gt_print_ptr("end", "stream2", s[2]);
	gt_print_ptr("end", "graph", exec);
	gt_print_rt_uuid("end");
	GT_RT(cudaFreeAsync(kept, s[2]));
	GT_RT(cudaGraphExecDestroy(exec));
	GT_RT(cudaGraphDestroy(graph));
	GT_RT(cudaDeviceSynchronize());
	return 0;
}
