/*
 * Numbered fault injection for libgmighost's allocations and I/O, in the
 * manner of SQLite's sqlite3FaultSim: a test arms fault point n, the n-th
 * point passed from then on fails, and the test checks the failure was clean.
 * Not thread-safe; only tests arm it, and the library runs unchanged when
 * nothing is armed.
 */
#ifndef GMIG_HOST_FAULT_H
#define GMIG_HOST_FAULT_H

#include <stdbool.h>

/* The n-th fault point from now fails (n >= 1); 0 disarms. */
void gmig_fault_arm(unsigned n);
/* Called at each fault point: true when this one is to fail. */
bool gmig_fault(void);
/* Whether the armed fault has fired since gmig_fault_arm(). */
bool gmig_fault_fired(void);

#endif
