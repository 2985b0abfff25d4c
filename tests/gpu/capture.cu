/*
 * GPU test 4 (runtime API, static cudart): a stream capture held open for a while. A
 * migration asked while it is open must fail and leave the program running; once the
 * capture is closed ("captured"), a migration must succeed. The graph made from the capture
 * is launched every later step.
 *
 *   gmig-gpu-capture [--before 10] [--hold-ms 6000] [--steps 50] [--step-ms 100] [--mib 64]
 *   [--relaxed 1]   (cudaStreamCaptureModeRelaxed instead of the default global mode)
 */
#include "gputest-rt.cuh"

#define BLOCKS	512
#define THREADS	256

__global__ void k_step(uint64_t *v, long n, uint64_t salt)
{
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
		v[i] = gt_mix64(v[i] + salt);
}

__global__ void k_digest(unsigned long long *out, const uint64_t *v, long n)
{
	unsigned long long x = 0;

	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
		x ^= gt_mix64(v[i] ^ (uint64_t)i);
	atomicXor(out, x);
}

static unsigned long long digest(unsigned long long *dig, const uint64_t *v, long n, cudaStream_t s)
{
	unsigned long long h;

	GT_RT(cudaMemsetAsync(dig, 0, sizeof(*dig), s));
	k_digest<<<BLOCKS, THREADS, 0, s>>>(dig, v, n);
	GT_LAUNCHED();
	GT_RT(cudaMemcpyAsync(&h, dig, sizeof(h), cudaMemcpyDeviceToHost, s));
	GT_RT(cudaStreamSynchronize(s));
	return h;
}

int main(int argc, char **argv)
{
	long before = gt_opt(argc, argv, "--before", 10), steps = gt_opt(argc, argv, "--steps", 50);
	long hold_ms = gt_opt(argc, argv, "--hold-ms", 6000), step_ms = gt_opt(argc, argv, "--step-ms", 100);
	long n = gt_opt(argc, argv, "--mib", 64) * 131072;
	cudaStreamCaptureMode mode = gt_opt(argc, argv, "--relaxed", 0) ?
		cudaStreamCaptureModeRelaxed : cudaStreamCaptureModeGlobal;
	unsigned long long *dig;
	cudaGraphExec_t exec;
	cudaGraph_t graph;
	cudaStream_t s, cs;
	uint64_t *v, *w;

	gt_start();
	GT_RT(cudaSetDevice(0));
	gt_print_rt_uuid("start");
	GT_RT(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
	GT_RT(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
	GT_RT(cudaMalloc(&v, n * sizeof(*v)));
	GT_RT(cudaMalloc(&w, n * sizeof(*w)));
	GT_RT(cudaMalloc(&dig, sizeof(*dig)));
	GT_RT(cudaMemset(v, 0x21, n * sizeof(*v)));
	GT_RT(cudaMemset(w, 0x43, n * sizeof(*w)));
	GT_RT(cudaDeviceSynchronize());
	gt_print_ptr("start", "v", v);
	gt_print_ptr("start", "w", w);
	printf("ready\n");

	for (long i = 0; i < before; i++) {
		k_step<<<BLOCKS, THREADS, 0, s>>>(v, n, (uint64_t)i);
		printf("before %ld %016llx\n", i, digest(dig, v, n, s));
		gt_sleep_ms(step_ms);
	}

	/* The capture stays open while the host sleeps: no freeze may land in it. */
	GT_RT(cudaStreamBeginCapture(cs, mode));
	k_step<<<BLOCKS, THREADS, 0, cs>>>(w, n, 0x9e3779b97f4a7c15ull);
	k_step<<<BLOCKS, THREADS, 0, cs>>>(v, n, 0x51);
	GT_LAUNCHED();
	printf("capturing\n");
	gt_sleep_ms(hold_ms);
	GT_RT(cudaStreamEndCapture(cs, &graph));
	GT_RT(cudaGraphInstantiate(&exec, graph, 0));
	printf("captured\n");

	for (long i = 0; i < steps; i++) {
		GT_RT(cudaGraphLaunch(exec, s));
		printf("after %ld v %016llx w %016llx\n", i, digest(dig, v, n, s), digest(dig, w, n, s));
		gt_sleep_ms(step_ms);
	}
	gt_print_ptr("end", "v", v);
	gt_print_ptr("end", "w", w);
	gt_print_rt_uuid("end");
	GT_RT(cudaGraphExecDestroy(exec));
	GT_RT(cudaGraphDestroy(graph));
	return 0;
}
