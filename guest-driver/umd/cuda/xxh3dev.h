/*
 * XXH3-64 (no seed, default secret) of inputs longer than 240 bytes, split
 * the way a warp computes it: compiled by nvcc for the fingerprint kernel and
 * by the C compiler for the unit test that checks it against XXH3_64bits().
 *
 * XXH3's accumulate step is additive within a block of 16 stripes of 8
 * lanes: each of 32 threads adds up the contributions of 4 (stripe, lane)
 * pairs, the warp sums them per lane, then every thread applies the sum to
 * its copy of its lane's accumulator and scrambles it once per block.
 * Thread t serves lane t % 8 and stripes t / 8, t / 8 + 4, t / 8 + 8,
 * t / 8 + 12 of each block.
 */
#ifndef GMIG_UMD_CUDA_XXH3DEV_H
#define GMIG_UMD_CUDA_XXH3DEV_H

#include <stdint.h>

#ifdef __CUDACC__
#define GMIG_XXH_FN	static __device__ __forceinline__
#define GMIG_XXH_CONST	__constant__
#else
#define GMIG_XXH_FN	static inline
#define GMIG_XXH_CONST	static const
#endif

#define GMIG_XXH_STRIPE		64	/* bytes of one stripe */
#define GMIG_XXH_BLOCK_STRIPES	16	/* stripes per block with the default secret */
#define GMIG_XXH_BLOCK		(GMIG_XXH_STRIPE * GMIG_XXH_BLOCK_STRIPES)
#define GMIG_XXH_SECRET_SIZE	192
#define GMIG_XXH_MIDSIZE_MAX	240	/* longer inputs take the long path computed here */
#define GMIG_XXH_WARP		32
#define GMIG_XXH_PER_THREAD	(GMIG_XXH_BLOCK_STRIPES * 8 / GMIG_XXH_WARP)

#define GMIG_XXH_PRIME32_1	0x9E3779B1u
#define GMIG_XXH_PRIME32_2	0x85EBCA77u
#define GMIG_XXH_PRIME32_3	0xC2B2AE3Du
#define GMIG_XXH_PRIME64_1	0x9E3779B185EBCA87ull
#define GMIG_XXH_PRIME64_2	0xC2B2AE3D27D4EB4Full
#define GMIG_XXH_PRIME64_3	0x165667B19E3779F9ull
#define GMIG_XXH_PRIME64_4	0x85EBCA77C2B2AE63ull
#define GMIG_XXH_PRIME64_5	0x27D4EB2F165667C5ull

/* xxhash.h's XXH3_kSecret. */
GMIG_XXH_CONST uint8_t gmig_xxh_secret[GMIG_XXH_SECRET_SIZE] = {
	0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
	0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
	0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
	0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
	0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
	0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
	0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
	0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
	0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
	0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
	0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
	0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

/* Little-endian 64-bit read at any alignment (both targets are little-endian). */
GMIG_XXH_FN uint64_t gmig_xxh_read64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

GMIG_XXH_FN uint64_t gmig_xxh_secret64(unsigned off)
{
	return gmig_xxh_read64(gmig_xxh_secret + off);
}

/* The starting value of accumulator lane. */
GMIG_XXH_FN uint64_t gmig_xxh_acc_init(unsigned lane)
{
	switch (lane) {
	case 0: return GMIG_XXH_PRIME32_3;
	case 1: return GMIG_XXH_PRIME64_1;
	case 2: return GMIG_XXH_PRIME64_2;
	case 3: return GMIG_XXH_PRIME64_3;
	case 4: return GMIG_XXH_PRIME64_4;
	case 5: return GMIG_XXH_PRIME32_2;
	case 6: return GMIG_XXH_PRIME64_5;
	default: return GMIG_XXH_PRIME32_1;
	}
}

/*
 * One (stripe, lane) pair of XXH3_accumulate_512: *mine gains what goes to
 * acc[lane], *swapped what goes to acc[lane ^ 1].
 */
GMIG_XXH_FN void gmig_xxh_pair(uint64_t data, uint64_t key, uint64_t *mine, uint64_t *swapped)
{
	uint64_t dk = data ^ key;

	*swapped += data;
	*mine += (uint64_t)(uint32_t)dk * (dk >> 32);
}

/* XXH3_scrambleAcc for one lane. */
GMIG_XXH_FN uint64_t gmig_xxh_scramble(uint64_t acc, unsigned lane)
{
	acc ^= acc >> 47;
	acc ^= gmig_xxh_secret64(GMIG_XXH_SECRET_SIZE - GMIG_XXH_STRIPE + 8 * lane);
	return acc * GMIG_XXH_PRIME32_1;
}

/* The secret words thread t uses in every block: key[i] for stripe t / 8 + 4 i, lane t % 8. */
GMIG_XXH_FN void gmig_xxh_keys(unsigned t, uint64_t key[GMIG_XXH_PER_THREAD])
{
	for (unsigned i = 0; i < GMIG_XXH_PER_THREAD; i++)
		key[i] = gmig_xxh_secret64((t / 8 + 4 * i) * 8 + 8 * (t % 8));
}

/* Byte offset, inside a block, of the word thread t reads for its i-th stripe. */
GMIG_XXH_FN unsigned gmig_xxh_word(unsigned t, unsigned i)
{
	return (t / 8 + 4 * i) * GMIG_XXH_STRIPE + 8 * (t % 8);
}

/* How many whole blocks, and stripes after them, the long path accumulates before the last stripe. */
GMIG_XXH_FN void gmig_xxh_shape(uint64_t len, uint64_t *blocks, unsigned *stripes)
{
	*blocks = (len - 1) / GMIG_XXH_BLOCK;
	*stripes = (unsigned)(((len - 1) - *blocks * GMIG_XXH_BLOCK) / GMIG_XXH_STRIPE);
}

/* Thread t's part of the last stripe (threads 0..7 only): the stripe ending at len, its own secret offset. */
GMIG_XXH_FN void gmig_xxh_last(const uint8_t *in, uint64_t len, unsigned t, uint64_t *mine, uint64_t *swapped)
{
	uint64_t data = gmig_xxh_read64(in + len - GMIG_XXH_STRIPE + 8 * t);

	gmig_xxh_pair(data, gmig_xxh_secret64(GMIG_XXH_SECRET_SIZE - GMIG_XXH_STRIPE - 7 + 8 * t),
		      mine, swapped);
}

GMIG_XXH_FN uint64_t gmig_xxh_mul128_fold64(uint64_t a, uint64_t b)
{
#ifdef __CUDA_ARCH__
	return a * b ^ __umul64hi(a, b);
#else
	unsigned __int128 p = (unsigned __int128)a * b;

	return (uint64_t)p ^ (uint64_t)(p >> 64);
#endif
}

/* XXH3_mergeAccs and the avalanche: the final print from the 8 lanes. */
GMIG_XXH_FN uint64_t gmig_xxh_merge(const uint64_t acc[8], uint64_t len)
{
	uint64_t h = len * GMIG_XXH_PRIME64_1;

	for (unsigned i = 0; i < 4; i++)
		h += gmig_xxh_mul128_fold64(acc[2 * i] ^ gmig_xxh_secret64(11 + 16 * i),
					    acc[2 * i + 1] ^ gmig_xxh_secret64(11 + 16 * i + 8));
	h ^= h >> 37;
	h *= 0x165667919E3779F9ull;
	return h ^ h >> 32;
}

#ifndef __CUDACC__
/*
 * The kernel's computation for one chunk, run thread by thread on the CPU:
 * the same helpers, the same split, shuffles replaced by sums over the 32
 * threads. The unit test compares it with XXH3_64bits(); len > 240.
 */
static inline uint64_t gmig_xxh_warp_emulated(const uint8_t *in, uint64_t len)
{
	uint64_t key[GMIG_XXH_WARP][GMIG_XXH_PER_THREAD], acc[GMIG_XXH_WARP];
	uint64_t m[GMIG_XXH_WARP], d[GMIG_XXH_WARP], lanes[8], blocks;
	unsigned stripes;

	for (unsigned t = 0; t < GMIG_XXH_WARP; t++) {
		gmig_xxh_keys(t, key[t]);
		acc[t] = gmig_xxh_acc_init(t % 8);
	}
	gmig_xxh_shape(len, &blocks, &stripes);
	/* Phases: every whole block, the stripes of the partial block, the last stripe. */
	for (uint64_t b = 0; b <= blocks + 1; b++) {
		for (unsigned t = 0; t < GMIG_XXH_WARP; t++) {
			m[t] = d[t] = 0;
			for (unsigned i = 0; i < GMIG_XXH_PER_THREAD; i++) {
				unsigned s = t / 8 + 4 * i;

				if (b < blocks || (b == blocks && s < stripes))
					gmig_xxh_pair(gmig_xxh_read64(in + b * GMIG_XXH_BLOCK + gmig_xxh_word(t, i)),
						      key[t][i], &m[t], &d[t]);
			}
			if (b == blocks + 1 && t < 8)
				gmig_xxh_last(in, len, t, &m[t], &d[t]);
		}
		/* The warp's reduction: a lane's own terms plus its neighbour's swapped ones, over 4 threads. */
		for (unsigned l = 0; l < 8; l++) {
			lanes[l] = 0;
			for (unsigned t = l; t < GMIG_XXH_WARP; t += 8)
				lanes[l] += m[t] + d[t ^ 1];
		}
		for (unsigned t = 0; t < GMIG_XXH_WARP; t++) {
			acc[t] += lanes[t % 8];
			if (b < blocks)
				acc[t] = gmig_xxh_scramble(acc[t], t % 8);
		}
	}
	for (unsigned l = 0; l < 8; l++)
		lanes[l] = acc[l];
	return gmig_xxh_merge(lanes, len);
}
#endif

#endif
