/*
 * GPU test 1 (runtime API, static cudart): a Jacobi solver for a 2-D Poisson stencil in
 * float64 whose residual is printed every step, beside a linked list of device-pointer nodes
 * that a kernel chases each step, a module global and a ballast buffer that a part of each
 * step rewrites. Every printed result depends only on the options, never on timing.
 *
 *   gmig-gpu-solver [--n 1024] [--steps 60] [--iters 40] [--step-ms 100] [--mib 256]
 */
#include "gputest-rt.cuh"

#define THREADS		256
#define RED_BLOCKS	1024	/* fixed, so every reduction adds in the same order */
#define NODES		4096

struct node {
	struct node *next;
	const double *x;
	double acc;
	unsigned long long hits;
};

__device__ unsigned long long g_steps;

__global__ void k_init(double *x, double *b, long n)
{
	long N = n * n;

	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < N; i += (long)gridDim.x * blockDim.x) {
		x[i] = 0.0;
		b[i] = (double)(gt_mix64((uint64_t)i) >> 11) * 0x1p-53 - 0.5;
	}
}

__device__ double at(const double *x, long n, long r, long c)
{
	return (r < 0 || c < 0 || r >= n || c >= n) ? 0.0 : x[r * n + c];
}

__global__ void k_jacobi(double *out, const double *x, const double *b, long n)
{
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n * n; i += (long)gridDim.x * blockDim.x) {
		long r = i / n, c = i % n;

		out[i] = 0.25 * (b[i] + at(x, n, r - 1, c) + at(x, n, r + 1, c) +
				 at(x, n, r, c - 1) + at(x, n, r, c + 1));
	}
}

/* Squared residual of 4x - neighbours = b, summed per block in a fixed order. */
__global__ void k_residual(double *partial, const double *x, const double *b, long n)
{
	__shared__ double s[THREADS];
	double sum = 0;

	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n * n; i += (long)gridDim.x * blockDim.x) {
		long r = i / n, c = i % n;
		double d = b[i] - (4 * x[i] - at(x, n, r - 1, c) - at(x, n, r + 1, c) -
				   at(x, n, r, c - 1) - at(x, n, r, c + 1));

		sum += d * d;
	}
	s[threadIdx.x] = sum;
	__syncthreads();
	for (int w = THREADS / 2; w > 0; w /= 2) {
		if (threadIdx.x < w)
			s[threadIdx.x] += s[threadIdx.x + w];
		__syncthreads();
	}
	if (threadIdx.x == 0)
		partial[blockIdx.x] = s[0];
}

__global__ void k_sum(double *out, const double *partial)
{
	__shared__ double s[RED_BLOCKS];

	s[threadIdx.x] = partial[threadIdx.x];
	__syncthreads();
	for (int w = RED_BLOCKS / 2; w > 0; w /= 2) {
		if (threadIdx.x < w)
			s[threadIdx.x] += s[threadIdx.x + w];
		__syncthreads();
	}
	if (threadIdx.x == 0)
		*out = sqrt(s[0]);
}

/* One thread follows the list through device memory, as a pointer-based structure does. */
__global__ void k_chase(double *out, struct node *head)
{
	double sum = 0;

	for (struct node *p = head; p; p = p->next) {
		p->acc = p->acc * 0.5 + *p->x;
		p->hits++;
		sum += p->acc;
	}
	*out = sum;
	g_steps++;
}

__global__ void k_ballast_fill(uint64_t *v, long words, uint64_t salt)
{
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < words; i += (long)gridDim.x * blockDim.x)
		v[i] = gt_mix64((uint64_t)i ^ salt);
}

__global__ void k_ballast_digest(unsigned long long *out, const uint64_t *v, long words)
{
	unsigned long long x = 0;

	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < words; i += (long)gridDim.x * blockDim.x)
		x ^= gt_mix64(v[i] + (uint64_t)i);
	atomicXor(out, x);
}

int main(int argc, char **argv)
{
	long n = gt_opt(argc, argv, "--n", 1024), steps = gt_opt(argc, argv, "--steps", 60);
	long iters = gt_opt(argc, argv, "--iters", 40), step_ms = gt_opt(argc, argv, "--step-ms", 100);
	long words = gt_opt(argc, argv, "--mib", 256) * 131072, slice = words / 16;
	double *x, *y, *b, *partial, *res, *chase, h_res, h_chase;
	unsigned long long *digest, h_digest, h_steps;
	struct node *nodes, *h_nodes;
	unsigned int *order;
	uint64_t *ballast, seed = 12345;

	gt_start();
	GT_RT(cudaSetDevice(0));
	gt_print_rt_uuid("start");
	GT_RT(cudaMalloc(&x, n * n * sizeof(double)));
	GT_RT(cudaMalloc(&y, n * n * sizeof(double)));
	GT_RT(cudaMalloc(&b, n * n * sizeof(double)));
	GT_RT(cudaMalloc(&partial, RED_BLOCKS * sizeof(double)));
	GT_RT(cudaMalloc(&res, 2 * sizeof(double)));
	chase = res + 1;
	GT_RT(cudaMalloc(&digest, sizeof(*digest)));
	GT_RT(cudaMalloc(&nodes, NODES * sizeof(*nodes)));
	GT_RT(cudaMalloc(&ballast, words * sizeof(uint64_t)));
	k_init<<<RED_BLOCKS, THREADS>>>(x, b, n);
	GT_LAUNCHED();
	k_ballast_fill<<<RED_BLOCKS, THREADS>>>(ballast, words, 0);
	GT_LAUNCHED();

	/* The list visits the nodes in a shuffled order; each node reads a spot of x. */
	h_nodes = (struct node *)calloc(NODES, sizeof(*h_nodes));
	order = (unsigned int *)malloc(NODES * sizeof(*order));
	for (unsigned int i = 0; i < NODES; i++)
		order[i] = i;
	for (unsigned int i = NODES - 1; i > 0; i--) {
		unsigned int j = (unsigned int)((seed = gt_mix64(seed)) % (i + 1)), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned int i = 0; i < NODES; i++) {
		struct node *h = &h_nodes[order[i]];

		h->next = i + 1 < NODES ? &nodes[order[i + 1]] : NULL;
		h->x = x + (long)order[i] * 7919 % (n * n);
	}
	GT_RT(cudaMemcpy(nodes, h_nodes, NODES * sizeof(*nodes), cudaMemcpyHostToDevice));
	GT_RT(cudaDeviceSynchronize());

	gt_print_ptr("start", "x", x);
	gt_print_ptr("start", "nodes", nodes);
	gt_print_ptr("start", "ballast", ballast);
	printf("ready\n");

	for (long s = 0; s < steps; s++) {
		for (long it = 0; it < iters; it++) {
			k_jacobi<<<RED_BLOCKS, THREADS>>>(y, x, b, n);
			double *t = x;

			x = y;
			y = t;
		}
		GT_LAUNCHED();
		k_residual<<<RED_BLOCKS, THREADS>>>(partial, x, b, n);
		k_sum<<<1, RED_BLOCKS>>>(res, partial);
		k_chase<<<1, 1>>>(chase, &nodes[order[0]]);
		k_ballast_fill<<<RED_BLOCKS, THREADS>>>(ballast + (s % 16) * slice, slice, (uint64_t)s + 1);
		GT_LAUNCHED();
		GT_RT(cudaMemcpy(&h_res, res, sizeof(h_res), cudaMemcpyDeviceToHost));
		GT_RT(cudaMemcpy(&h_chase, chase, sizeof(h_chase), cudaMemcpyDeviceToHost));
		printf("step %ld residual %a chase %a\n", s, h_res, h_chase);
		gt_sleep_ms(step_ms);
	}

	/* The list's nodes must still point where they did: hits count every visit. */
	GT_RT(cudaMemcpy(h_nodes, nodes, NODES * sizeof(*nodes), cudaMemcpyDeviceToHost));
	for (unsigned int i = 0; i < NODES; i++) {
		if (h_nodes[order[i]].hits != (unsigned long long)steps) {
			printf("node %u visited %llu times, not %ld\n", order[i], h_nodes[order[i]].hits, steps);
			break;
		}
	}
	GT_RT(cudaMemset(digest, 0, sizeof(*digest)));
	k_ballast_digest<<<RED_BLOCKS, THREADS>>>(digest, ballast, words);
	GT_LAUNCHED();
	GT_RT(cudaMemcpy(&h_digest, digest, sizeof(h_digest), cudaMemcpyDeviceToHost));
	GT_RT(cudaMemcpyFromSymbol(&h_steps, g_steps, sizeof(h_steps)));
	printf("ballast %016llx steps %llu\n", h_digest, h_steps);

	/* x and y swap each iteration; an even count leaves x where it started. */
	gt_print_ptr("end", "x", iters * steps % 2 ? y : x);
	gt_print_ptr("end", "nodes", nodes);
	gt_print_ptr("end", "ballast", ballast);
	gt_print_rt_uuid("end");
	return 0;
}
