/* Safe points: every API call that submits work passes the gate, and a freeze closes it. */
#include <errno.h>

#include "clock.h"
#include "gate.h"

int gmig_gate_init(struct gmig_gate *g)
{
	g->closed = false;
	g->inside = 0;
	pthread_mutex_init(&g->lock, NULL);
	return gmig_cond_init_monotonic(&g->changed);
}

void gmig_gate_destroy(struct gmig_gate *g)
{
	pthread_cond_destroy(&g->changed);
	pthread_mutex_destroy(&g->lock);
}

void gmig_gate_enter(struct gmig_gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (g->closed)
		pthread_cond_wait(&g->changed, &g->lock);
	g->inside++;
	pthread_mutex_unlock(&g->lock);
}

void gmig_gate_leave(struct gmig_gate *g)
{
	pthread_mutex_lock(&g->lock);
	if (!--g->inside && g->closed)
		pthread_cond_broadcast(&g->changed);
	pthread_mutex_unlock(&g->lock);
}

int gmig_gate_close(struct gmig_gate *g, const struct timespec *deadline)
{
	int err = 0;

	pthread_mutex_lock(&g->lock);
	g->closed = true;
	while (g->inside && !err)
		err = -pthread_cond_timedwait(&g->changed, &g->lock, deadline);
	if (g->inside) {
		g->closed = false;
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
	g->closed = false;
	pthread_cond_broadcast(&g->changed);
	pthread_mutex_unlock(&g->lock);
}

bool gmig_gate_is_closed(struct gmig_gate *g)
{
	bool closed;

	pthread_mutex_lock(&g->lock);
	closed = g->closed;
	pthread_mutex_unlock(&g->lock);
	return closed;
}
