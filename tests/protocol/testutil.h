/* Deterministic pseudo-random helpers shared by the protocol test suites. */
#ifndef GMIG_TESTUTIL_H
#define GMIG_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64: a fixed seed gives the same sequence on every run and machine. */
uint64_t tu_rand(uint64_t *state);
/* A value in [0, n), n > 0. */
uint64_t tu_below(uint64_t *state, uint64_t n);
void tu_fill(void *buf, size_t len, uint64_t *state);

#endif
