/* The fingerprint kernel: XXH3-64 of every chunk of a range of device memory, one warp per chunk. */
#include <stdint.h>

#include "xxh3dev.h"

#define FULL	0xffffffffu

/* The warp's sum for thread t's lane: its own terms plus its neighbour's swapped ones, over 4 threads. */
static __device__ __forceinline__ uint64_t warp_lane_sum(uint64_t mine, uint64_t swapped)
{
	uint64_t v = mine + __shfl_xor_sync(FULL, swapped, 1);

	v += __shfl_xor_sync(FULL, v, 8);
	return v + __shfl_xor_sync(FULL, v, 16);
}

/* Word i of thread t in block b; aligned says whether an 8-byte load may be used. */
static __device__ __forceinline__ uint64_t load(const uint8_t *in, uint64_t b, unsigned t, unsigned i,
						bool aligned)
{
	const uint8_t *p = in + b * GMIG_XXH_BLOCK + gmig_xxh_word(t, i);

	return aligned ? __ldg((const unsigned long long *)p) : gmig_xxh_read64(p);
}

/*
 * out[c] = XXH3_64bits(base + c * chunk, min(chunk, len - c * chunk)) for
 * c < nchunks; chunks of 240 bytes or less are left to the host (out 0).
 * Launch with a multiple of 32 threads per block.
 */
extern "C" __global__ void __launch_bounds__(256, 4)
gmig_xxh3_chunks(const uint8_t *base, uint64_t len, uint32_t chunk, uint64_t nchunks, uint64_t *out)
{
	uint64_t c = ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) / GMIG_XXH_WARP;
	unsigned t = threadIdx.x % GMIG_XXH_WARP, lane = t % 8;
	uint64_t key[GMIG_XXH_PER_THREAD], cur[GMIG_XXH_PER_THREAD], next[GMIG_XXH_PER_THREAD];
	uint64_t after[GMIG_XXH_PER_THREAD];
	uint64_t acc, n, blocks, mine, swapped, lanes[8];
	const uint8_t *in;
	unsigned stripes;
	bool aligned;

	if (c >= nchunks)
		return;
	in = base + c * chunk;
	n = len - c * chunk < chunk ? len - c * chunk : chunk;
	if (n <= GMIG_XXH_MIDSIZE_MAX) {
		if (t == 0)
			out[c] = 0;
		return;
	}
	aligned = ((uintptr_t)in | n) % 8 == 0;
	gmig_xxh_keys(t, key);
	acc = gmig_xxh_acc_init(lane);
	gmig_xxh_shape(n, &blocks, &stripes);

	for (unsigned i = 0; i < GMIG_XXH_PER_THREAD; i++) {
		if (blocks > 0)
			cur[i] = load(in, 0, t, i, aligned);
		if (blocks > 1)
			next[i] = load(in, 1, t, i, aligned);
	}
	for (uint64_t b = 0; b < blocks; b++) {
		/* The loads of the two blocks after this one are in flight while it is reduced. */
		if (b + 2 < blocks)
			for (unsigned i = 0; i < GMIG_XXH_PER_THREAD; i++)
				after[i] = load(in, b + 2, t, i, aligned);
		mine = swapped = 0;
		for (unsigned i = 0; i < GMIG_XXH_PER_THREAD; i++)
			gmig_xxh_pair(cur[i], key[i], &mine, &swapped);
		acc = gmig_xxh_scramble(acc + warp_lane_sum(mine, swapped), lane);
		for (unsigned i = 0; i < GMIG_XXH_PER_THREAD; i++) {
			cur[i] = next[i];
			next[i] = after[i];
		}
	}

	/* The stripes of the partial block, then the last stripe, which may overlap them. */
	mine = swapped = 0;
	for (unsigned i = 0; i < GMIG_XXH_PER_THREAD; i++)
		if (t / 8 + 4 * i < stripes)
			gmig_xxh_pair(load(in, blocks, t, i, aligned), key[i], &mine, &swapped);
	acc += warp_lane_sum(mine, swapped);
	mine = swapped = 0;
	if (t < 8)
		gmig_xxh_last(in, n, t, &mine, &swapped);
	acc += warp_lane_sum(mine, swapped);

	for (unsigned l = 0; l < 8; l++)
		lanes[l] = __shfl_sync(FULL, acc, l);
	if (t == 0)
		out[c] = gmig_xxh_merge(lanes, n);
}
