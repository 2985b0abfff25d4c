/*
 * The gsim API: a tiny CUDA over the sim backend. Every call that submits
 * work or touches the allocation table passes the gate, which makes it a
 * safe point; waiting for results happens outside the gate, so a freeze
 * never waits for more than the work already queued.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "gmig/sim.h"
#include "link.h"
#include "log.h"
#include "simapi.h"
#include "simbe.h"
#include "umd.h"

static struct {
	pthread_mutex_t lock;		/* serialises start-up and shutdown */
	atomic_bool ready;		/* everything below is set up */
	struct gmig_config cfg;
	struct gmig_engine engine;
	struct gmig_simbe sb;
	struct gmig_umd umd;
	struct gmig_link *link;
} sim = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int start(void)
{
	const char *why;
	int err;

	gmig_config_from_env(&sim.cfg, &why);
	gmig_log_debug_on = sim.cfg.debug;
	if (why)
		gmig_log_debug("%s", why);
	err = gmig_engine_init(&sim.engine);
	if (err)
		return err;
	gmig_simbe_init(&sim.sb, &sim.engine, sim.cfg.sim_dir, sim.cfg.sim_device);
	err = gmig_umd_init(&sim.umd, &sim.sb.be, sim.cfg.chunk);
	if (err)
		goto out_engine;
	if (!sim.cfg.disable) {
		err = gmig_link_start(&sim.link, &sim.umd, sim.cfg.socket, program_invocation_short_name);
		if (err)
			goto out_umd;
	}
	return 0;

out_umd:
	gmig_umd_fini(&sim.umd);
out_engine:
	gmig_engine_fini(&sim.engine);
	return err;
}

/* Starts libgmig on first use; a failure is not kept, so a device created later is found. */
static int ready(void)
{
	int err = 0;

	if (atomic_load_explicit(&sim.ready, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&sim.lock);
	if (!atomic_load_explicit(&sim.ready, memory_order_relaxed)) {
		err = start();
		if (!err)
			atomic_store_explicit(&sim.ready, true, memory_order_release);
		else
			gmig_log_debug("start-up failed: %s", strerror(-err));
	}
	pthread_mutex_unlock(&sim.lock);
	return err;
}

void gmig_sim_shutdown(void)
{
	pthread_mutex_lock(&sim.lock);
	if (atomic_load(&sim.ready)) {
		gmig_link_stop(sim.link);
		sim.link = NULL;
		gmig_engine_fini(&sim.engine);
		gmig_umd_fini(&sim.umd);
		atomic_store(&sim.ready, false);
	}
	pthread_mutex_unlock(&sim.lock);
}

struct gmig_umd *gmig_sim_umd(void)
{
	return atomic_load(&sim.ready) ? &sim.umd : NULL;
}

struct gmig_link *gmig_sim_link(void)
{
	return atomic_load(&sim.ready) ? sim.link : NULL;
}

/* Passes the gate: blocks while the program is frozen. */
static int enter(void)
{
	int err;

	/* A kernel calling the API would wait on the gate while the freeze waits on the kernel. */
	if (gmig_engine_on_worker())
		return -EDEADLK;
	err = ready();
	if (err)
		return err;
	gmig_gate_enter(&sim.umd.gate);
	return 0;
}

static void leave(void)
{
	gmig_gate_leave(&sim.umd.gate);
}

static bool on_device(const void *p, size_t n)
{
	return gmig_arena_contains(&sim.umd.arena, (uintptr_t)p, n);
}

int gsim_init(void)
{
	return ready();
}

int gsim_device_info(struct gsim_device_info *info)
{
	struct gmig_bdev_info bi;
	int err;

	if (!info)
		return -EINVAL;
	err = enter();
	if (err)
		return err;
	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&sim.umd.lock);
	if (sim.umd.dev) {
		sim.sb.be.ops->info(sim.umd.dev, &bi);
		gmig_simbe_path(sim.umd.dev, info->path, sizeof(info->path));
	} else {
		err = -ENODEV;
	}
	pthread_mutex_unlock(&sim.umd.lock);
	leave();
	if (err)
		return err;
	memcpy(info->name, bi.name, sizeof(info->name));
	memcpy(info->model, bi.model, sizeof(info->model));
	memcpy(info->uuid, bi.uuid, sizeof(info->uuid));
	info->mem_bytes = bi.mem_bytes;
	return 0;
}

int gsim_malloc(void **dptr, size_t size)
{
	uint64_t va;
	int err;

	if (!dptr)
		return -EINVAL;
	err = enter();
	if (err)
		return err;
	err = gmig_arena_alloc(&sim.umd.arena, size, &va);
	leave();
	if (!err)
		*dptr = (void *)(uintptr_t)va;
	return err;
}

int gsim_free(void *dptr)
{
	int err;

	if (!dptr)
		return 0;
	if (gmig_engine_on_worker())
		return -EDEADLK;
	err = ready();
	if (err)
		return err;
	/* Like cudaFree: work queued before the free may still use the memory. */
	gmig_engine_sync_all(&sim.engine);
	err = enter();
	if (err)
		return err;
	err = gmig_arena_free(&sim.umd.arena, (uintptr_t)dptr);
	leave();
	return err;
}

/* Checks a copy's pointers against its kind; -EFAULT for device memory not allocated. */
static int check_copy(void *dst, const void *src, size_t n, enum gsim_copy kind)
{
	switch (kind) {
	case GSIM_HOST_TO_DEVICE:
		return !src ? -EINVAL : on_device(dst, n) ? 0 : -EFAULT;
	case GSIM_DEVICE_TO_HOST:
		return !dst ? -EINVAL : on_device(src, n) ? 0 : -EFAULT;
	case GSIM_DEVICE_TO_DEVICE:
		return on_device(dst, n) && on_device(src, n) ? 0 : -EFAULT;
	default:
		return -EINVAL;
	}
}

/* Queues an operation on stream s (NULL: default); *stream and *ticket say what to wait for. */
static int submit(struct gmig_op *op, gsim_stream_t s, struct gsim_stream **stream, uint64_t *ticket)
{
	struct gsim_stream *q = gmig_engine_find(&sim.engine, s);

	if (!q) {
		free(op);
		return -EINVAL;
	}
	gmig_engine_submit(q, op, ticket);
	if (stream)
		*stream = q;
	return 0;
}

static int copy(void *dst, const void *src, size_t n, enum gsim_copy kind, gsim_stream_t s, bool sync)
{
	struct gsim_stream *q = NULL;
	struct gmig_op *op;
	uint64_t ticket;
	int err;

	if ((unsigned)kind > GSIM_DEVICE_TO_DEVICE)
		return -EINVAL;
	err = enter();
	if (err)
		return err;
	err = n ? check_copy(dst, src, n, kind) : 0;
	if (!err && n) {
		op = gmig_op_new(GMIG_OP_COPY, 0);
		if (!op) {
			err = -ENOMEM;
		} else {
			op->dst = dst;
			op->src = src;
			op->n = n;
			err = submit(op, s, &q, &ticket);
		}
	}
	leave();
	if (!err && n && sync)
		gmig_engine_wait(q, ticket);
	return err;
}

int gsim_memcpy(void *dst, const void *src, size_t n, enum gsim_copy kind)
{
	return copy(dst, src, n, kind, NULL, true);
}

int gsim_memcpy_async(void *dst, const void *src, size_t n, enum gsim_copy kind, gsim_stream_t s)
{
	return copy(dst, src, n, kind, s, false);
}

int gsim_memset(void *dptr, int value, size_t n)
{
	struct gsim_stream *q = NULL;
	struct gmig_op *op;
	uint64_t ticket;
	int err;

	err = enter();
	if (err)
		return err;
	err = n && !on_device(dptr, n) ? -EFAULT : 0;
	if (!err && n) {
		op = gmig_op_new(GMIG_OP_FILL, 0);
		if (!op) {
			err = -ENOMEM;
		} else {
			op->dst = dptr;
			op->value = value;
			op->n = n;
			err = submit(op, NULL, &q, &ticket);
		}
	}
	leave();
	if (!err && n)
		gmig_engine_wait(q, ticket);
	return err;
}

int gsim_stream_create(gsim_stream_t *s)
{
	int err;

	if (!s)
		return -EINVAL;
	err = enter();
	if (err)
		return err;
	err = gmig_engine_create(&sim.engine, s);
	leave();
	return err;
}

int gsim_stream_destroy(gsim_stream_t s)
{
	int err = enter();

	if (err)
		return err;
	err = gmig_engine_destroy(&sim.engine, s);
	leave();
	return err;
}

int gsim_stream_synchronize(gsim_stream_t s)
{
	struct gsim_stream *q;
	int err = ready();

	if (err)
		return err;
	if (gmig_engine_on_worker())
		return -EDEADLK;
	q = gmig_engine_find(&sim.engine, s);
	if (!q)
		return -EINVAL;
	gmig_engine_sync(q);
	return 0;
}

int gsim_device_synchronize(void)
{
	int err = ready();

	if (err)
		return err;
	if (gmig_engine_on_worker())
		return -EDEADLK;
	gmig_engine_sync_all(&sim.engine);
	return 0;
}

int gsim_launch(gsim_kernel_fn fn, uint32_t nblocks, const void *args, size_t args_size,
		gsim_stream_t s)
{
	struct gmig_op *op;
	uint64_t ticket;
	int err;

	if (!fn || !nblocks || args_size > GMIG_ENGINE_ARGS_MAX || (args_size && !args))
		return -EINVAL;
	err = enter();
	if (err)
		return err;
	op = gmig_op_new(GMIG_OP_KERNEL, args_size);
	if (op) {
		op->fn = fn;
		op->nblocks = nblocks;
		if (args_size)
			memcpy(op->args, args, args_size);
		err = submit(op, s, NULL, &ticket);
	} else {
		err = -ENOMEM;
	}
	leave();
	return err;
}

const char *gsim_strerror(int err)
{
	const char *s;

	if (!err)
		return "success";
	s = err < 0 ? strerrordesc_np(-err) : NULL;
	return s ? s : "unknown error";
}
