/* The sim backend: simulated device files (simdev.h) for memory, the engine's streams for work. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "gmig/message.h"
#include "gmig/simdev.h"
#include "simbe.h"

#define DEVICES_MAX	GMIG_GPUS_MAX

struct gmig_bdev {
	struct gmig_simbe *sb;
	struct gmig_simdev *dev;
	struct gmig_simdev_info info;
};

static struct gmig_simbe *simbe(struct gmig_be *be)
{
	return be->priv;
}

static void to_info(const struct gmig_simdev_info *in, struct gmig_bdev_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->uuid, in->uuid, sizeof(out->uuid));
	snprintf(out->name, sizeof(out->name), "%s", in->name);
	snprintf(out->model, sizeof(out->model), "%s", in->model);
	out->mem_bytes = in->mem_bytes;
}

static int sim_enumerate(struct gmig_be *be, struct gmig_bdev_info *out, int max)
{
	struct gmig_simdev_info *list = calloc(DEVICES_MAX, sizeof(*list));
	int n;

	if (!list)
		return -ENOMEM;
	n = gmig_simdev_list(simbe(be)->dir, list, DEVICES_MAX);
	for (int i = 0; i < n && i < max; i++)
		to_info(&list[i], &out[i]);
	free(list);
	return n < max ? n : max;
}

/* The path of the device to attach: by UUID from the directory, else the default. */
static int find_path(struct gmig_simbe *sb, const uint8_t *uuid, char *path, size_t cap)
{
	struct gmig_simdev_info *list;
	int n, err = -ENODEV;

	if (!uuid && sb->device[0]) {
		snprintf(path, cap, "%s", sb->device);
		return 0;
	}
	list = calloc(DEVICES_MAX, sizeof(*list));
	if (!list)
		return -ENOMEM;
	n = gmig_simdev_list(sb->dir, list, DEVICES_MAX);
	for (int i = 0; i < n; i++) {
		if (uuid && memcmp(list[i].uuid, uuid, GMIG_UUID_SIZE))
			continue;
		snprintf(path, cap, "%s", list[i].path);
		err = 0;
		break;
	}
	free(list);
	return err;
}

static int sim_attach(struct gmig_be *be, const uint8_t *uuid, struct gmig_bdev **devp)
{
	struct gmig_simbe *sb = simbe(be);
	struct gmig_bdev *dev;
	char path[GMIG_CONFIG_PATH_MAX];
	int err;

	err = find_path(sb, uuid, path, sizeof(path));
	if (err)
		return err;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->sb = sb;
	err = gmig_simdev_open(path, &dev->dev);
	if (err) {
		free(dev);
		return err == -ENOENT || err == -EINVAL ? -ENODEV : err;
	}
	gmig_simdev_get_info(dev->dev, &dev->info);
	/* A file at the default path may have been replaced by another device since it was listed. */
	if (uuid && memcmp(dev->info.uuid, uuid, GMIG_UUID_SIZE)) {
		gmig_simdev_close(dev->dev);
		free(dev);
		return -ENODEV;
	}
	*devp = dev;
	return 0;
}

static void sim_release(struct gmig_bdev *dev)
{
	if (!dev)
		return;
	gmig_simdev_close(dev->dev);
	free(dev);
}

static void sim_info(const struct gmig_bdev *dev, struct gmig_bdev_info *info)
{
	to_info(&dev->info, info);
}

void gmig_simbe_path(const struct gmig_bdev *dev, char *out, size_t cap)
{
	snprintf(out, cap, "%s", dev->info.path);
}

static int sim_reserve(struct gmig_be *be, uint64_t size, uint64_t *va)
{
	const uint64_t g = GMIG_SIMDEV_GRANULE;
	uint8_t *p, *start;
	uint64_t head;

	(void)be;
	if (!size || size % g || size > UINT64_MAX - g)
		return -EINVAL;
	/* Over-reserve by a granule and trim, so the reservation is granule-aligned. */
	p = mmap(NULL, size + g, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	start = (uint8_t *)(((uintptr_t)p + g - 1) & ~(uintptr_t)(g - 1));
	head = (uint64_t)(start - p);
	if (head)
		munmap(p, head);
	munmap(start + size, g - head);
	*va = (uintptr_t)start;
	return 0;
}

static void sim_unreserve(struct gmig_be *be, uint64_t va, uint64_t size)
{
	(void)be;
	munmap((void *)(uintptr_t)va, size);
}

static int sim_map(struct gmig_bdev *dev, uint64_t va, uint64_t *handle)
{
	uint64_t off;
	int err;

	err = gmig_simdev_alloc(dev->dev, dev->sb->pid, &off);
	if (err)
		return err;
	err = gmig_simdev_map(dev->dev, off, (void *)(uintptr_t)va);
	if (err) {
		gmig_simdev_free(dev->dev, dev->sb->pid, off);
		return err;
	}
	*handle = off;
	return 0;
}

static int sim_unmap(struct gmig_bdev *dev, uint64_t va, uint64_t handle)
{
	/* Back to a plain reservation first: the granule may be someone else's the moment it is free. */
	if (mmap((void *)(uintptr_t)va, GMIG_SIMDEV_GRANULE, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		return -errno;
	return gmig_simdev_free(dev->dev, dev->sb->pid, handle);
}

static int sim_drain(struct gmig_bdev *dev, const struct timespec *deadline)
{
	return gmig_engine_drain(dev->sb->engine, deadline);
}

static int sim_queues(struct gmig_bdev *dev, struct gmig_queue *out, uint32_t max)
{
	return gmig_engine_queues(dev->sb->engine, out, max);
}

static int sim_fingerprint(struct gmig_bdev *dev, uint64_t va, uint64_t len, uint32_t chunk,
			   uint64_t *out)
{
	const uint8_t *p = (const uint8_t *)(uintptr_t)va;

	(void)dev;
	for (uint64_t off = 0; off < len; off += chunk)
		*out++ = XXH3_64bits(p + off, len - off < chunk ? len - off : chunk);
	return 0;
}

static int sim_read(struct gmig_bdev *dev, uint64_t va, void *dst, size_t len)
{
	(void)dev;
	memcpy(dst, (const void *)(uintptr_t)va, len);
	return 0;
}

static int sim_write(struct gmig_bdev *dev, uint64_t va, const void *src, size_t len)
{
	(void)dev;
	if (src)
		memcpy((void *)(uintptr_t)va, src, len);
	else
		memset((void *)(uintptr_t)va, 0, len);
	return 0;
}

static const struct gmig_backend_ops sim_ops = {
	.name = "sim",
	.kind = GMIG_BACKEND_SIM,
	.granule = GMIG_SIMDEV_GRANULE,
	.enumerate = sim_enumerate,
	.attach = sim_attach,
	.release = sim_release,
	.info = sim_info,
	.reserve = sim_reserve,
	.unreserve = sim_unreserve,
	.map = sim_map,
	.unmap = sim_unmap,
	.drain = sim_drain,
	.queues = sim_queues,
	.fingerprint = sim_fingerprint,
	.read = sim_read,
	.write = sim_write,
};

void gmig_simbe_init(struct gmig_simbe *sb, struct gmig_engine *engine, const char *dir,
		     const char *device)
{
	memset(sb, 0, sizeof(*sb));
	sb->be.ops = &sim_ops;
	sb->be.priv = sb;
	sb->engine = engine;
	snprintf(sb->dir, sizeof(sb->dir), "%s", dir);
	snprintf(sb->device, sizeof(sb->device), "%s", device ? device : "");
	sb->pid = (uint32_t)getpid();
}
