/* A thread for one blocking step, with its end reported through an eventfd into the loop. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "worker.h"

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	uint64_t one = 1;

	w->rc = w->fn(w->arg, w->detail, sizeof(w->detail));
	/* The loop reads the result after this write; the eventfd orders the two. */
	while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	return NULL;
}

static void teardown(struct worker *w)
{
	if (w->running) {
		pthread_join(w->th, NULL);
		w->running = false;
	}
	if (w->ev) {
		event_free(w->ev);
		w->ev = NULL;
	}
	if (w->efd >= 0) {
		close(w->efd);
		w->efd = -1;
	}
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	worker_done_fn *done = w->done;
	void *ctx = w->ctx;
	char detail[WORKER_DETAIL_MAX];
	uint64_t v;
	int rc;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno == EAGAIN)
		return;
	teardown(w);
	rc = w->rc;
	memcpy(detail, w->detail, sizeof(detail));
	done(ctx, rc, detail);
}

int worker_start(struct worker *w, struct event_base *base, worker_fn *fn, void *arg,
		 worker_done_fn *done, void *ctx)
{
	int rc;

	memset(w, 0, sizeof(*w));
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0)
		return -errno;
	w->ev = event_new(base, w->efd, EV_READ, done_cb, w);
	if (!w->ev) {
		rc = -ENOMEM;
		goto out_close;
	}
	if (event_add(w->ev, NULL)) {
		rc = -ENOMEM;
		goto out_free_ev;
	}
	w->fn = fn;
	w->arg = arg;
	w->done = done;
	w->ctx = ctx;
	rc = -pthread_create(&w->th, NULL, thread_main, w);
	if (rc)
		goto out_free_ev;
	w->running = true;
	return 0;

out_free_ev:
	event_free(w->ev);
	w->ev = NULL;
out_close:
	close(w->efd);
	w->efd = -1;
	return rc;
}

void worker_join(struct worker *w)
{
	/* A worker that never started is all zeros: no event, no thread, and fd 0 is not ours. */
	if (w->running || w->ev)
		teardown(w);
}
