/* Deterministic pseudo-random helpers shared by the protocol test suites. */
#include "testutil.h"

uint64_t tu_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t tu_below(uint64_t *state, uint64_t n)
{
	return tu_rand(state) % n;
}

void tu_fill(void *buf, size_t len, uint64_t *state)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)tu_rand(state);
}
