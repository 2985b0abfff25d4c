/* Safe points: every API call that submits work passes the gate, and a freeze closes it. */
#ifndef GMIG_UMD_GATE_H
#define GMIG_UMD_GATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct gmig_gate {
	pthread_mutex_t lock;		/* protects closed and inside */
	pthread_cond_t changed;		/* the gate opened, or a caller left */
	bool closed;
	uint32_t inside;		/* callers between enter and leave */
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
