/*
 * The device-memory arena. Granules are backed from the front of the
 * reservation and stay backed until release, as a caching allocator keeps
 * them, so the backed extent is one region that only grows: its id, address
 * and the fingerprints of what it already held stay valid from one pre-copy
 * round to the next. First-fit from the front keeps that extent dense.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

int gmig_arena_init(struct gmig_arena *a, struct gmig_be *be, struct gmig_bdev *dev,
		    uint64_t size, uint32_t chunk)
{
	uint64_t g = be->ops->granule;
	int err;

	memset(a, 0, sizeof(*a));
	if (!size || size > UINT64_MAX - g)
		return -EINVAL;
	a->be = be;
	a->dev = dev;
	a->granule = g;
	a->chunk = chunk;
	a->size = (size + g - 1) / g * g;
	a->handles = calloc(a->size / g, sizeof(*a->handles));
	if (!a->handles)
		return -ENOMEM;
	err = be->ops->reserve(be, a->size, &a->va);
	if (err) {
		free(a->handles);
		return err;
	}
	pthread_mutex_init(&a->lock, NULL);
	return 0;
}

/* Unmaps granules [from, to); the first failure is returned, the rest still go. Under the lock. */
static int unback(struct gmig_arena *a, uint64_t from, uint64_t to)
{
	int err = 0, e;

	for (uint64_t i = from; i < to; i++) {
		e = a->be->ops->unmap(a->dev, a->va + i * a->granule, a->handles[i]);
		if (e && !err)
			err = e;
	}
	return err;
}

/* Backs granules [from, to) from dev; all or nothing. Under the lock. */
static int back(struct gmig_arena *a, struct gmig_bdev *dev, uint64_t from, uint64_t to)
{
	uint64_t i;
	int err = 0;

	for (i = from; i < to; i++) {
		err = a->be->ops->map(dev, a->va + i * a->granule, &a->handles[i]);
		if (err)
			break;
	}
	if (!err)
		return 0;
	while (i-- > from)
		a->be->ops->unmap(dev, a->va + i * a->granule, a->handles[i]);
	return err;
}

void gmig_arena_fini(struct gmig_arena *a)
{
	if (!a->handles)
		return;
	if (a->dev)
		unback(a, 0, a->nbacked);
	a->be->ops->unreserve(a->be, a->va, a->size);
	free(a->handles);
	free(a->allocs);
	pthread_mutex_destroy(&a->lock);
	memset(a, 0, sizeof(*a));
}

/* The index of the first allocation starting at or after off. */
static uint64_t lower_bound(const struct gmig_arena *a, uint64_t off)
{
	uint64_t lo = 0, hi = a->nallocs;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (a->allocs[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int grow_table(struct gmig_arena *a)
{
	uint64_t cap = a->cap ? a->cap * 2 : 64;
	struct gmig_alloc *v;

	if (a->nallocs < a->cap)
		return 0;
	v = realloc(a->allocs, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	a->allocs = v;
	a->cap = cap;
	return 0;
}

int gmig_arena_alloc(struct gmig_arena *a, uint64_t size, uint64_t *va)
{
	uint64_t i, pos = 0, need;
	int err;

	if (!size || size > a->size)
		return size ? -ENOMEM : -EINVAL;
	size = (size + GMIG_ARENA_ALIGN - 1) & ~(uint64_t)(GMIG_ARENA_ALIGN - 1);

	pthread_mutex_lock(&a->lock);
	/* First fit: the first gap between allocations, then the space after the last. */
	for (i = 0; i < a->nallocs; i++) {
		if (a->allocs[i].off - pos >= size)
			break;
		pos = a->allocs[i].off + a->allocs[i].size;
	}
	err = -ENOMEM;
	if (i == a->nallocs && a->size - pos < size)
		goto out_unlock;
	err = grow_table(a);
	if (err)
		goto out_unlock;
	need = (pos + size + a->granule - 1) / a->granule;
	if (need > a->nbacked) {
		err = a->dev ? back(a, a->dev, a->nbacked, need) : -ENODEV;
		if (err) {
			err = err == -ENOSPC ? -ENOMEM : err;
			goto out_unlock;
		}
		a->nbacked = need;
	}
	memmove(&a->allocs[i + 1], &a->allocs[i], (a->nallocs - i) * sizeof(*a->allocs));
	a->allocs[i] = (struct gmig_alloc){ pos, size };
	a->nallocs++;
	*va = a->va + pos;
out_unlock:
	pthread_mutex_unlock(&a->lock);
	return err;
}

int gmig_arena_free(struct gmig_arena *a, uint64_t va)
{
	uint64_t i, off = va - a->va;
	int err = -EINVAL;

	if (va < a->va || off >= a->size)
		return -EINVAL;
	pthread_mutex_lock(&a->lock);
	i = lower_bound(a, off);
	if (i < a->nallocs && a->allocs[i].off == off) {
		memmove(&a->allocs[i], &a->allocs[i + 1], (a->nallocs - i - 1) * sizeof(*a->allocs));
		a->nallocs--;
		err = 0;
	}
	pthread_mutex_unlock(&a->lock);
	return err;
}

int gmig_arena_find(struct gmig_arena *a, uint64_t va, uint64_t *base, uint64_t *size)
{
	uint64_t i, off = va - a->va;
	int err = -ENOENT;

	if (va < a->va || off >= a->size)
		return -ENOENT;
	pthread_mutex_lock(&a->lock);
	i = lower_bound(a, off + 1);
	if (i > 0 && off < a->allocs[i - 1].off + a->allocs[i - 1].size) {
		*base = a->va + a->allocs[i - 1].off;
		*size = a->allocs[i - 1].size;
		err = 0;
	}
	pthread_mutex_unlock(&a->lock);
	return err;
}

bool gmig_arena_contains(struct gmig_arena *a, uint64_t va, uint64_t n)
{
	uint64_t i, off = va - a->va;
	bool ok = false;

	if (va < a->va || off >= a->size || !n || n > a->size - off)
		return false;
	pthread_mutex_lock(&a->lock);
	/* The allocation that could hold off is the last one starting at or before it. */
	i = lower_bound(a, off + 1);
	if (i > 0) {
		const struct gmig_alloc *al = &a->allocs[i - 1];

		ok = off + n <= al->off + al->size;
	}
	pthread_mutex_unlock(&a->lock);
	return ok;
}

uint32_t gmig_arena_regions(struct gmig_arena *a, struct gmig_region *out, uint32_t max)
{
	uint32_t n = 0;

	pthread_mutex_lock(&a->lock);
	if (a->nbacked && max) {
		out[0] = (struct gmig_region){ GMIG_ARENA_REGION_ID, a->va, a->nbacked * a->granule,
					       a->chunk };
		n = 1;
	}
	pthread_mutex_unlock(&a->lock);
	return n;
}

int gmig_arena_allocs(struct gmig_arena *a, struct gmig_alloc **out, uint64_t *n)
{
	int err = 0;

	pthread_mutex_lock(&a->lock);
	*n = a->nallocs;
	*out = malloc((a->nallocs ? a->nallocs : 1) * sizeof(**out));
	if (!*out)
		err = -ENOMEM;
	else if (a->nallocs)
		memcpy(*out, a->allocs, a->nallocs * sizeof(**out));
	pthread_mutex_unlock(&a->lock);
	return err;
}

int gmig_arena_release(struct gmig_arena *a)
{
	int err = 0;

	pthread_mutex_lock(&a->lock);
	if (a->dev) {
		err = unback(a, 0, a->nbacked);
		a->dev = NULL;
	}
	pthread_mutex_unlock(&a->lock);
	return err;
}

int gmig_arena_attach(struct gmig_arena *a, struct gmig_bdev *dev)
{
	int err = -EBUSY;

	pthread_mutex_lock(&a->lock);
	if (!a->dev) {
		err = back(a, dev, 0, a->nbacked);
		if (!err)
			a->dev = dev;
	}
	pthread_mutex_unlock(&a->lock);
	return err == -ENOSPC ? -ENOMEM : err;
}
