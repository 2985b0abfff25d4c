/* Safe points: every API call that submits work passes the gate, and a freeze closes it. */
#ifndef GMIG_UMD_GATE_H
#define GMIG_UMD_GATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/*
 * The open gate costs a caller two atomic operations and no lock: enter
 * counts itself in, then looks at closed; close sets closed, then looks at
 * the count (both sequentially consistent, so one of the two sees the
 * other). The lock is taken only while the gate is closed or closing.
 */
struct gmig_gate {
	pthread_mutex_t lock;		/* serialises close and open; waits happen under it */
	pthread_cond_t changed;		/* the gate opened, or a caller left a closing gate */
	atomic_bool closed;		/* written under lock */
	atomic_uint inside;		/* callers between enter and leave */
};

int gmig_gate_init(struct gmig_gate *g);
void gmig_gate_destroy(struct gmig_gate *g);

/* Waits while the gate is closed, then counts the caller in. */
void gmig_gate_enter(struct gmig_gate *g);
void gmig_gate_leave(struct gmig_gate *g);

/*
 * Closes the gate and waits until no caller is inside. If deadline
 * (CLOCK_MONOTONIC) passes first, the gate opens again and -ETIMEDOUT is
 * returned: the callers inside carry on, the blocked ones are let through.
 */
int gmig_gate_close(struct gmig_gate *g, const struct timespec *deadline);
void gmig_gate_open(struct gmig_gate *g);
bool gmig_gate_is_closed(struct gmig_gate *g);

#endif
