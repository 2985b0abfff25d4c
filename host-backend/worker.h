/*
 * A thread for one blocking job step (writing or reading a checkpoint file) so that the event
 * loop keeps serving; its end is signalled through an eventfd and reported from the loop.
 */
#ifndef GMIG_HOST_WORKER_H
#define GMIG_HOST_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct event;
struct event_base;

#define WORKER_DETAIL_MAX	256

typedef int worker_fn(void *arg, char *detail, size_t len);
typedef void worker_done_fn(void *ctx, int rc, const char *detail);

struct worker {
	pthread_t th;
	int efd;
	struct event *ev;
	bool running;			/* the thread exists and has not been joined */
	worker_fn *fn;
	void *arg;
	worker_done_fn *done;
	void *ctx;
	int rc;
	char detail[WORKER_DETAIL_MAX];
	atomic_bool cancel;		/* the step should stop early */
	atomic_uint_fast64_t progress;	/* bytes done, for status */
};

/* Runs @fn(@arg) on a thread; @done(@ctx, rc, detail) runs from the loop afterwards. 0 or -errno. */
int worker_start(struct worker *w, struct event_base *base, worker_fn *fn, void *arg,
		 worker_done_fn *done, void *ctx);
/* Waits for the thread without reporting (teardown). Safe on a worker never started. */
void worker_join(struct worker *w);

#endif
