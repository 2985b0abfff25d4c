/* Safe points: every API call that submits work passes the gate, and a freeze closes it. */
#include <errno.h>

#include "clock.h"
#include "gate.h"

int gmig_gate_init(struct gmig_gate *g)
{
	atomic_init(&g->closed, false);
	atomic_init(&g->inside, 0);
	pthread_mutex_init(&g->lock, NULL);
	return gmig_cond_init_monotonic(&g->changed);
}

void gmig_gate_destroy(struct gmig_gate *g)
{
	pthread_cond_destroy(&g->changed);
	pthread_mutex_destroy(&g->lock);
}

/* A caller left while the gate was closing: the closer may be waiting for the count to reach 0. */
static void wake_closer(struct gmig_gate *g)
{
	pthread_mutex_lock(&g->lock);
	pthread_cond_broadcast(&g->changed);
	pthread_mutex_unlock(&g->lock);
}

void gmig_gate_enter(struct gmig_gate *g)
{
	atomic_fetch_add(&g->inside, 1);
	if (!atomic_load(&g->closed))
		return;
	/* Closed or closing: step back out, then wait for the gate to open. */
	atomic_fetch_sub(&g->inside, 1);
	pthread_mutex_lock(&g->lock);
	pthread_cond_broadcast(&g->changed);
	while (atomic_load(&g->closed))
		pthread_cond_wait(&g->changed, &g->lock);
	/* Counted in under the lock: a close cannot start until it is released. */
	atomic_fetch_add(&g->inside, 1);
	pthread_mutex_unlock(&g->lock);
}

void gmig_gate_leave(struct gmig_gate *g)
{
	atomic_fetch_sub(&g->inside, 1);
	if (atomic_load(&g->closed))
		wake_closer(g);
}

int gmig_gate_close(struct gmig_gate *g, const struct timespec *deadline)
{
	int err = 0;

	pthread_mutex_lock(&g->lock);
	atomic_store(&g->closed, true);
	while (atomic_load(&g->inside) && !err)
		err = -pthread_cond_timedwait(&g->changed, &g->lock, deadline);
	if (atomic_load(&g->inside)) {
		atomic_store(&g->closed, false);
		pthread_cond_broadcast(&g->changed);
		err = -ETIMEDOUT;
	} else {
		err = 0;
	}
	pthread_mutex_unlock(&g->lock);
	return err;
}

void gmig_gate_open(struct gmig_gate *g)
{
	pthread_mutex_lock(&g->lock);
	atomic_store(&g->closed, false);
	pthread_cond_broadcast(&g->changed);
	pthread_mutex_unlock(&g->lock);
}

bool gmig_gate_is_closed(struct gmig_gate *g)
{
	return atomic_load(&g->closed);
}
