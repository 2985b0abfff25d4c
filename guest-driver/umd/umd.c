/* The client core of libgmig: the device, the arena, safe points and the migration verbs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "umd.h"

#define QUEUES_MAX	4096	/* work queues recorded in a blob */

/* dev's position in the backend's enumeration; 0 when it cannot be told. */
static uint32_t gpu_index(struct gmig_be *be, struct gmig_bdev *dev)
{
	struct gmig_bdev_info me, *list = calloc(GMIG_GPUS_MAX, sizeof(*list));
	uint32_t index = 0;
	int n;

	if (!list)
		return 0;
	be->ops->info(dev, &me);
	n = be->ops->enumerate(be, list, GMIG_GPUS_MAX);
	for (int i = 0; i < n; i++) {
		if (!memcmp(list[i].uuid, me.uuid, GMIG_UUID_SIZE)) {
			index = (uint32_t)i;
			break;
		}
	}
	free(list);
	return index;
}

int gmig_umd_init(struct gmig_umd *u, struct gmig_be *be, uint32_t chunk)
{
	struct gmig_bdev_info info;
	int err;

	memset(u, 0, sizeof(*u));
	if (chunk < GMIG_CHUNK_MIN || chunk > GMIG_CHUNK_MAX || (chunk & (chunk - 1)))
		return -EINVAL;
	u->be = be;
	u->pid = (uint32_t)getpid();
	err = be->ops->attach(be, NULL, &u->dev);
	if (err)
		return err;
	be->ops->info(u->dev, &info);
	err = gmig_gate_init(&u->gate);
	if (err)
		goto out_release;
	err = gmig_arena_init(&u->arena, be, u->dev, info.mem_bytes, chunk);
	if (err)
		goto out_gate;
	pthread_mutex_init(&u->lock, NULL);
	gmig_fp_init(&u->fp, chunk);
	u->gpu = gpu_index(be, u->dev);
	return 0;

out_gate:
	gmig_gate_destroy(&u->gate);
out_release:
	be->ops->release(u->dev);
	return err;
}

void gmig_umd_fini(struct gmig_umd *u)
{
	if (!u->be)
		return;
	gmig_fp_clear(&u->fp);
	free(u->blob);
	pthread_mutex_destroy(&u->lock);
	gmig_arena_fini(&u->arena);
	gmig_gate_destroy(&u->gate);
	u->be->ops->release(u->dev);
	memset(u, 0, sizeof(*u));
}

int gmig_umd_capture(struct gmig_umd *u, struct gmig_bdev *dev, struct gmig_state *s)
{
	struct gmig_bdev_info info;
	int n, err = -ENOMEM;

	memset(s, 0, sizeof(*s));
	u->be->ops->info(dev, &info);
	s->backend = u->be->ops->kind;
	memcpy(s->uuid, info.uuid, sizeof(s->uuid));
	s->arena_va = u->arena.va;
	s->arena_size = u->arena.size;
	s->regions = calloc(GMIG_ARENA_REGIONS_MAX, sizeof(*s->regions));
	s->queues = calloc(QUEUES_MAX, sizeof(*s->queues));
	if (!s->regions || !s->queues)
		goto out_clear;
	s->nregions = gmig_arena_regions(&u->arena, s->regions, GMIG_ARENA_REGIONS_MAX);
	n = u->be->ops->queues(dev, s->queues, QUEUES_MAX);
	if (n < 0) {
		err = n;
		goto out_clear;
	}
	s->nqueues = (uint32_t)n;
	err = gmig_arena_allocs(&u->arena, &s->allocs, &s->nallocs);
	if (err)
		goto out_clear;
	return 0;

out_clear:
	gmig_state_clear(s);
	return err;
}

int gmig_umd_freeze(struct gmig_umd *u, uint32_t deadline_ms)
{
	struct timespec deadline = gmig_deadline_ms(deadline_ms);
	struct gmig_state s;
	int err;

	if (u->frozen)
		return 0;
	err = gmig_gate_close(&u->gate, &deadline);
	if (err)
		return err;
	err = u->be->ops->drain(u->dev, &deadline);
	if (err)
		goto out_open;
	err = gmig_umd_capture(u, u->dev, &s);
	if (err)
		goto out_open;
	err = gmig_state_encode(&s, &u->blob, &u->blob_len);
	gmig_state_clear(&s);
	if (err)
		goto out_open;
	u->frozen = true;
	return 0;

out_open:
	gmig_gate_open(&u->gate);
	return err;
}

int gmig_umd_thaw(struct gmig_umd *u)
{
	if (!u->frozen)
		return 0;
	if (!u->dev)
		return -EBUSY;
	free(u->blob);
	u->blob = NULL;
	u->blob_len = 0;
	u->frozen = false;
	gmig_gate_open(&u->gate);
	return 0;
}

int gmig_umd_release(struct gmig_umd *u)
{
	struct gmig_bdev *dev = u->dev;
	int err;

	if (!u->frozen)
		return -EBUSY;
	if (!dev)
		return 0;
	err = gmig_arena_release(&u->arena);
	if (err)
		gmig_log_debug("release: a granule did not unmap cleanly: %d", err);
	pthread_mutex_lock(&u->lock);
	u->dev = NULL;
	pthread_mutex_unlock(&u->lock);
	u->be->ops->release(dev);
	return err;
}

/* Whether the program on dev is the one that was frozen: nothing lost, nothing added. */
static int check_blob(struct gmig_umd *u, struct gmig_bdev *dev)
{
	struct gmig_state then, now;
	int err;

	err = gmig_state_decode(u->blob, u->blob_len, &then);
	if (err)
		return err;
	err = gmig_umd_capture(u, dev, &now);
	if (!err)
		err = gmig_state_same_program(&then, &now);
	gmig_state_clear(&now);
	gmig_state_clear(&then);
	return err;
}

int gmig_umd_attach(struct gmig_umd *u, const uint8_t *uuid)
{
	struct gmig_bdev *dev;
	int err;

	if (!u->frozen || u->dev)
		return -EBUSY;
	err = u->be->ops->attach(u->be, uuid, &dev);
	if (err)
		return err;
	err = gmig_arena_attach(&u->arena, dev);
	if (err)
		goto out_release;
	err = check_blob(u, dev);
	if (err)
		goto out_unmap;
	pthread_mutex_lock(&u->lock);
	u->dev = dev;
	u->gpu = gpu_index(u->be, dev);
	pthread_mutex_unlock(&u->lock);
	return 0;

out_unmap:
	gmig_arena_release(&u->arena);
out_release:
	u->be->ops->release(dev);
	return err;
}

int gmig_umd_device(struct gmig_umd *u, struct gmig_bdev_info *info, uint32_t *gpu)
{
	int err = -ENODEV;

	pthread_mutex_lock(&u->lock);
	if (u->dev) {
		u->be->ops->info(u->dev, info);
		if (gpu)
			*gpu = u->gpu;
		err = 0;
	}
	pthread_mutex_unlock(&u->lock);
	return err;
}

int gmig_umd_host_register(struct gmig_umd *u, void *p, size_t n)
{
	return u->be->ops->host_register ? u->be->ops->host_register(u->be, p, n) : 0;
}

void gmig_umd_host_unregister(struct gmig_umd *u, void *p, size_t n)
{
	if (u->be->ops->host_unregister)
		u->be->ops->host_unregister(u->be, p, n);
}
