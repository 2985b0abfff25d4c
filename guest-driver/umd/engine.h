/* The simulated GPU's compute engine: streams, each a worker thread running its queued operations in order. */
#ifndef GMIG_UMD_ENGINE_H
#define GMIG_UMD_ENGINE_H

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "backend.h"
#include "gmig/sim.h"

#define GMIG_ENGINE_ARGS_MAX	4096	/* kernel argument bytes copied per launch */
#define GMIG_ENGINE_STREAMS_MAX	1024	/* streams alive at once, the default one included */

enum gmig_op_kind { GMIG_OP_KERNEL, GMIG_OP_COPY, GMIG_OP_FILL };

/* One queued operation; the stream frees it once it has run. */
struct gmig_op {
	struct gmig_op *next;
	enum gmig_op_kind kind;
	gsim_kernel_fn fn;		/* KERNEL */
	uint32_t nblocks;
	void *dst;			/* COPY, FILL */
	const void *src;		/* COPY */
	size_t n;
	int value;			/* FILL */
	alignas(max_align_t) unsigned char args[];	/* KERNEL: the launch's copy */
};

struct gsim_stream {
	uint32_t id;
	pthread_t thread;
	pthread_mutex_t lock;		/* protects the queue, the counters and stop */
	pthread_cond_t wake;		/* for the worker: an op was queued, or stop was set */
	pthread_cond_t idle;		/* for waiters: an op completed */
	struct gmig_op *head, **tail;
	uint64_t submitted, completed;
	bool stop;
	struct gsim_stream *next;	/* the engine's list, under the engine's lock */
};

struct gmig_engine {
	pthread_mutex_t lock;		/* protects the list, count and next_id */
	struct gsim_stream *streams;	/* in id order; the default stream first */
	uint32_t count;
	uint32_t next_id;
};

/* Starts the engine with its default stream. */
int gmig_engine_init(struct gmig_engine *eng);
/* Lets every stream finish its queue, then stops and frees them. */
void gmig_engine_fini(struct gmig_engine *eng);

int gmig_engine_create(struct gmig_engine *eng, struct gsim_stream **s);
/* Waits for the stream's work, then ends it. -EINVAL for the default or an unknown stream. */
int gmig_engine_destroy(struct gmig_engine *eng, struct gsim_stream *s);
/* The stream a handle names: NULL is the default stream; NULL is returned for an unknown handle. */
struct gsim_stream *gmig_engine_find(struct gmig_engine *eng, struct gsim_stream *handle);

/* A new operation with room for args_size argument bytes; NULL when out of memory. */
struct gmig_op *gmig_op_new(enum gmig_op_kind kind, size_t args_size);
/* Queues op (the stream owns it from now on); *ticket is what gmig_engine_wait waits for. */
void gmig_engine_submit(struct gsim_stream *s, struct gmig_op *op, uint64_t *ticket);
void gmig_engine_wait(struct gsim_stream *s, uint64_t ticket);
void gmig_engine_sync(struct gsim_stream *s);
void gmig_engine_sync_all(struct gmig_engine *eng);

/* Waits until every stream is idle, or deadline (CLOCK_MONOTONIC): -ETIMEDOUT. */
int gmig_engine_drain(struct gmig_engine *eng, const struct timespec *deadline);
/* The streams, in id order, for the frozen blob; returns how many (<= max). */
int gmig_engine_queues(struct gmig_engine *eng, struct gmig_queue *out, uint32_t max);

/* True on a stream's worker thread: kernels must not call the API. */
bool gmig_engine_on_worker(void);

#endif
