/* libgmig's process-wide state under a CUDA program: started at the first cuInit, seen by every wrapper. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "interpose.h"
#include "log.h"

static struct {
	pthread_mutex_t lock;		/* serialises start-up and shutdown */
	bool tried;			/* start-up ran (once per process) */
	atomic_bool active;		/* everything below is set up */
	struct gmig_config cfg;
	struct gmig_cudabe cb;
	struct gmig_umd umd;
	struct gmig_link *link;
} cp = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool wanted(void)
{
	const char *b = getenv("GMIG_BACKEND");

	if (gmig_cuda_disabled())
		return false;
	if (b && *b && strcmp(b, "cuda")) {
		gmig_log_debug("cuda: GMIG_BACKEND=%s: the CUDA backend stays off", b);
		return false;
	}
	return true;
}

static int start(void)
{
	const char *why;
	int err;

	gmig_config_from_env(&cp.cfg, &why);
	gmig_log_debug_on = cp.cfg.debug;
	if (why)
		gmig_log_debug("%s", why);
	if (!wanted())
		return -ECANCELED;
	err = gmig_cudabe_init(&cp.cb);
	if (err)
		return err;
	err = gmig_umd_init(&cp.umd, &cp.cb.be, cp.cfg.chunk);
	if (err)
		goto out_be;
	err = gmig_link_start(&cp.link, &cp.umd, cp.cfg.socket, program_invocation_short_name);
	if (err)
		goto out_umd;
	return 0;

out_umd:
	cp.cb.closing = true;
	gmig_umd_fini(&cp.umd);
out_be:
	gmig_cudabe_fini(&cp.cb);
	return err;
}

void gmig_cuda_start(void)
{
	int err;

	if (atomic_load_explicit(&cp.active, memory_order_acquire))
		return;
	pthread_mutex_lock(&cp.lock);
	if (!cp.tried) {
		cp.tried = true;
		err = start();
		if (!err)
			atomic_store_explicit(&cp.active, true, memory_order_release);
		else if (err != -ECANCELED)
			gmig_log_debug("cuda: start-up failed (%s); the program runs without gmig",
				       strerror(-err));
	}
	pthread_mutex_unlock(&cp.lock);
}

struct gmig_gate *gmig_cuda_gate(void)
{
	return atomic_load_explicit(&cp.active, memory_order_acquire) ? &cp.umd.gate : NULL;
}

struct gmig_cudabe *gmig_cuda_be(void)
{
	return atomic_load_explicit(&cp.active, memory_order_acquire) ? &cp.cb : NULL;
}

struct gmig_umd *gmig_cuda_umd(void)
{
	return atomic_load_explicit(&cp.active, memory_order_acquire) ? &cp.umd : NULL;
}

void gmig_cuda_shutdown(void)
{
	pthread_mutex_lock(&cp.lock);
	if (atomic_load(&cp.active)) {
		atomic_store(&cp.active, false);
		gmig_link_stop(cp.link);
		cp.link = NULL;
		cp.cb.closing = true;
		gmig_umd_fini(&cp.umd);
		gmig_cudabe_fini(&cp.cb);
	}
	cp.tried = false;
	pthread_mutex_unlock(&cp.lock);
}
