/* The simulated GPU's compute engine: streams, each a worker thread running its queued operations in order. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine.h"

static _Thread_local bool on_worker;

bool gmig_engine_on_worker(void)
{
	return on_worker;
}

struct gmig_op *gmig_op_new(enum gmig_op_kind kind, size_t args_size)
{
	struct gmig_op *op = calloc(1, sizeof(*op) + args_size);

	if (op)
		op->kind = kind;
	return op;
}

static void op_run(struct gmig_op *op)
{
	switch (op->kind) {
	case GMIG_OP_KERNEL:
		for (uint32_t b = 0; b < op->nblocks; b++)
			op->fn(b, op->nblocks, op->args);
		break;
	case GMIG_OP_COPY:
		memmove(op->dst, op->src, op->n);
		break;
	case GMIG_OP_FILL:
		memset(op->dst, op->value, op->n);
		break;
	}
}

static void *worker(void *arg)
{
	struct gsim_stream *s = arg;
	struct gmig_op *op;

	on_worker = true;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->head && !s->stop)
			pthread_cond_wait(&s->wake, &s->lock);
		op = s->head;
		if (!op)
			break;
		s->head = op->next;
		if (!s->head)
			s->tail = &s->head;
		pthread_mutex_unlock(&s->lock);
		op_run(op);
		free(op);
		pthread_mutex_lock(&s->lock);
		s->completed++;
		pthread_cond_broadcast(&s->idle);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void stream_free(struct gsim_stream *s)
{
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* A stream with its worker running; the worker blocks every signal so the program's handlers run on its own threads. */
static int stream_new(uint32_t id, struct gsim_stream **sp)
{
	struct gsim_stream *s = calloc(1, sizeof(*s));
	sigset_t all, old;
	int err;

	if (!s)
		return -ENOMEM;
	s->id = id;
	s->tail = &s->head;
	pthread_mutex_init(&s->lock, NULL);
	err = gmig_cond_init_monotonic(&s->wake);
	if (err)
		goto out_free;
	err = gmig_cond_init_monotonic(&s->idle);
	if (err)
		goto out_wake;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&s->thread, NULL, worker, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto out_idle;
	*sp = s;
	return 0;

out_idle:
	pthread_cond_destroy(&s->idle);
out_wake:
	pthread_cond_destroy(&s->wake);
out_free:
	pthread_mutex_destroy(&s->lock);
	free(s);
	return err;
}

/* Lets the worker finish the queue, then joins and frees it. */
static void stream_end(struct gsim_stream *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	stream_free(s);
}

int gmig_engine_init(struct gmig_engine *eng)
{
	int err;

	memset(eng, 0, sizeof(*eng));
	pthread_mutex_init(&eng->lock, NULL);
	eng->next_id = 2;
	err = stream_new(1, &eng->streams);
	if (err) {
		pthread_mutex_destroy(&eng->lock);
		return err;
	}
	eng->count = 1;
	return 0;
}

void gmig_engine_fini(struct gmig_engine *eng)
{
	struct gsim_stream *s, *next;

	for (s = eng->streams; s; s = next) {
		next = s->next;
		stream_end(s);
	}
	eng->streams = NULL;
	pthread_mutex_destroy(&eng->lock);
}

int gmig_engine_create(struct gmig_engine *eng, struct gsim_stream **sp)
{
	struct gsim_stream *s, **pos;
	uint32_t id;
	int err;

	pthread_mutex_lock(&eng->lock);
	if (eng->count >= GMIG_ENGINE_STREAMS_MAX || eng->next_id == UINT32_MAX) {
		pthread_mutex_unlock(&eng->lock);
		return -EAGAIN;
	}
	id = eng->next_id++;
	err = stream_new(id, &s);
	if (!err) {
		for (pos = &eng->streams; *pos; pos = &(*pos)->next)
			;
		*pos = s;
		eng->count++;
		*sp = s;
	}
	pthread_mutex_unlock(&eng->lock);
	return err;
}

int gmig_engine_destroy(struct gmig_engine *eng, struct gsim_stream *s)
{
	struct gsim_stream **pos;

	pthread_mutex_lock(&eng->lock);
	/* The default stream is the list's head and never leaves it. */
	for (pos = &eng->streams->next; *pos && *pos != s; pos = &(*pos)->next)
		;
	if (!s || !*pos) {
		pthread_mutex_unlock(&eng->lock);
		return -EINVAL;
	}
	*pos = s->next;
	eng->count--;
	pthread_mutex_unlock(&eng->lock);
	stream_end(s);
	return 0;
}

struct gsim_stream *gmig_engine_find(struct gmig_engine *eng, struct gsim_stream *handle)
{
	struct gsim_stream *s;

	pthread_mutex_lock(&eng->lock);
	for (s = eng->streams; s && handle && s != handle; s = s->next)
		;
	pthread_mutex_unlock(&eng->lock);
	return s;
}

void gmig_engine_submit(struct gsim_stream *s, struct gmig_op *op, uint64_t *ticket)
{
	op->next = NULL;
	pthread_mutex_lock(&s->lock);
	*s->tail = op;
	s->tail = &op->next;
	*ticket = ++s->submitted;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void gmig_engine_wait(struct gsim_stream *s, uint64_t ticket)
{
	pthread_mutex_lock(&s->lock);
	while (s->completed < ticket)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

void gmig_engine_sync(struct gsim_stream *s)
{
	uint64_t ticket;

	pthread_mutex_lock(&s->lock);
	ticket = s->submitted;
	pthread_mutex_unlock(&s->lock);
	gmig_engine_wait(s, ticket);
}

void gmig_engine_sync_all(struct gmig_engine *eng)
{
	/* Holding the list lock keeps every stream alive while we wait on it. */
	pthread_mutex_lock(&eng->lock);
	for (struct gsim_stream *s = eng->streams; s; s = s->next)
		gmig_engine_sync(s);
	pthread_mutex_unlock(&eng->lock);
}

int gmig_engine_drain(struct gmig_engine *eng, const struct timespec *deadline)
{
	int err = 0;

	pthread_mutex_lock(&eng->lock);
	for (struct gsim_stream *s = eng->streams; s && !err; s = s->next) {
		pthread_mutex_lock(&s->lock);
		while (s->completed < s->submitted && !err)
			err = -pthread_cond_timedwait(&s->idle, &s->lock, deadline);
		if (err && s->completed == s->submitted)
			err = 0;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&eng->lock);
	return err;
}

int gmig_engine_queues(struct gmig_engine *eng, struct gmig_queue *out, uint32_t max)
{
	uint32_t n = 0;

	pthread_mutex_lock(&eng->lock);
	for (struct gsim_stream *s = eng->streams; s && n < max; s = s->next, n++) {
		pthread_mutex_lock(&s->lock);
		out[n] = (struct gmig_queue){ s->id, s->submitted };
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&eng->lock);
	return (int)n;
}
