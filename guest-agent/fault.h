/*
 * Numbered fault injection for gmig-agent's allocations and output, in the manner of SQLite's
 * sqlite3FaultSim: with $GMIG_AGENT_FAULT=n the n-th fault point passed fails, once, and the
 * tests check the agent copes. Unarmed, every point passes.
 */
#ifndef GMIG_AGENT_FAULT_H
#define GMIG_AGENT_FAULT_H

#include <stdbool.h>
#include <stddef.h>

#define FAULT_ENV	"GMIG_AGENT_FAULT"

/* The n-th fault point from now fails (n >= 1); 0 disarms. */
void fault_arm(unsigned int n);
/* Fault points passed since start, for sizing the tests' sweeps. */
unsigned int fault_passed(void);
/* Called at each fault point: true when this one is to fail. */
bool fault_hit(void);

/* malloc() and calloc() that fail at a fault point. */
void *fault_malloc(size_t n);
void *fault_calloc(size_t n, size_t size);

#endif
