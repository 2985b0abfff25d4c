/* A guest's GPU memory image as a host holds it; every change from the wire is checked here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "fault.h"
#include "image.h"

/* A restore lists every region in one manifest, so an image holds no more. */
#define IMAGE_REGIONS_MAX	GMIG_MANIFEST_MAX
#define IMAGE_CLIENTS_MAX	GMIG_MANIFEST_MAX

static void *fault_calloc(size_t n, size_t size)
{
	return gmig_fault() ? NULL : calloc(n, size);
}

static void *fault_realloc(void *p, size_t size)
{
	return gmig_fault() ? NULL : realloc(p, size);
}

/*
 * Arrays grow in powers of two; the capacity follows from the count, so it is
 * not stored. An array is always at least cap_for(count) long.
 */
static size_t cap_for(size_t n)
{
	size_t c = 1;

	if (!n)
		return 0;
	while (c < n)
		c <<= 1;
	return c;
}

/* Makes room for m elements where n are; 0, or -ENOMEM with the array untouched. */
static int array_grow(void *arrp, size_t n, size_t m, size_t elem)
{
	void **arr = arrp, *p;

	if (cap_for(m) <= cap_for(n))
		return 0;
	p = fault_realloc(*arr, cap_for(m) * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	return 0;
}

/* Gives back what m elements no longer need; a failed shrink keeps the larger array. */
static void array_shrink(void *arrp, size_t n, size_t m, size_t elem)
{
	void **arr = arrp, *p;

	if (cap_for(m) >= cap_for(n))
		return;
	if (!m) {
		free(*arr);
		*arr = NULL;
		return;
	}
	p = realloc(*arr, cap_for(m) * elem);
	if (p)
		*arr = p;
}

uint64_t gmig_image_nchunks(const struct gmig_image_region *r)
{
	return r->size / r->chunk + (r->size % r->chunk != 0);
}

static void region_free(struct gmig_image_region *r)
{
	free(r->data);
	free(r->epochs);
	r->data = NULL;
	r->epochs = NULL;
}

void gmig_image_init(struct gmig_image *img, uint64_t cap)
{
	memset(img, 0, sizeof(*img));
	img->cap = cap;
}

void gmig_image_clear(struct gmig_image *img)
{
	uint64_t cap = img->cap;

	for (uint32_t i = 0; i < img->nregions; i++)
		region_free(&img->regions[i]);
	for (uint32_t i = 0; i < img->nclients; i++)
		free(img->clients[i].blob);
	free(img->regions);
	free(img->clients);
	free(img->gpus);
	gmig_image_init(img, cap);
}

/* First index whose (pid, id) is not below the key. */
static uint32_t region_lower(const struct gmig_image *img, uint32_t pid, uint32_t id)
{
	uint32_t lo = 0, hi = img->nregions;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct gmig_image_region *r = &img->regions[mid];

		if (r->pid < pid || (r->pid == pid && r->id < id))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* First index whose pid is not below the key. */
static uint32_t client_lower(const struct gmig_image *img, uint32_t pid)
{
	uint32_t lo = 0, hi = img->nclients;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (img->clients[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct gmig_image_region *gmig_image_region(struct gmig_image *img, uint32_t pid, uint32_t id)
{
	uint32_t i = region_lower(img, pid, id);

	if (i < img->nregions && img->regions[i].pid == pid && img->regions[i].id == id)
		return &img->regions[i];
	return NULL;
}

struct gmig_image_client *gmig_image_client(struct gmig_image *img, uint32_t pid)
{
	uint32_t i = client_lower(img, pid);

	return i < img->nclients && img->clients[i].pid == pid ? &img->clients[i] : NULL;
}

static bool gpu_known(const struct gmig_image *img, uint32_t index)
{
	for (uint32_t i = 0; i < img->ngpus; i++)
		if (img->gpus[i].index == index)
			return true;
	return false;
}

int gmig_image_set_gpus(struct gmig_image *img, const struct gmig_inv_gpus *m)
{
	struct gmig_rec_gpu *gpus = NULL;
	uint8_t wire[GMIG_REC_gpu_SIZE];
	uint32_t n;
	int err = -EINVAL;

	if (m->tail.len % GMIG_REC_gpu_SIZE || (m->tail.len && !m->tail.ptr))
		return -EINVAL;
	n = gmig_rec_count(&m->tail, GMIG_REC_gpu_SIZE);
	if (n > GMIG_GPUS_MAX)
		return -EINVAL;
	if (n) {
		gpus = fault_calloc(n, sizeof(*gpus));
		if (!gpus)
			return -ENOMEM;
	}
	/* A record is valid when it encodes back to exactly its own bytes. */
	for (uint32_t i = 0; i < n; i++) {
		gmig_rec_get_gpu(&m->tail, i, &gpus[i]);
		if (gmig_rec_put_gpu(wire, &gpus[i]) < 0 ||
		    memcmp(wire, m->tail.ptr + (size_t)i * GMIG_REC_gpu_SIZE, sizeof(wire)))
			goto out_free_gpus;
		for (uint32_t j = 0; j < i; j++)
			if (gpus[j].index == gpus[i].index)
				goto out_free_gpus;
	}
	for (uint32_t c = 0; c < img->nclients; c++) {
		uint32_t i = 0;

		while (i < n && gpus[i].index != img->clients[c].gpu)
			i++;
		if (i == n)
			goto out_free_gpus;
	}
	free(img->gpus);
	img->gpus = gpus;
	img->ngpus = n;
	return 0;

out_free_gpus:
	free(gpus);
	return err;
}

static bool name_ok(const char *name)
{
	size_t n = strnlen(name, sizeof(((struct gmig_inv_client *)0)->name));

	if (n >= sizeof(((struct gmig_inv_client *)0)->name))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	return true;
}

/* One region of a client's new list; from is its index in the image, or -1 if new. */
struct pending {
	struct gmig_image_region r;
	int64_t from;
};

static int by_va(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	return x->r.va < y->r.va ? -1 : x->r.va > y->r.va;
}

static int by_id(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	return x->r.id < y->r.id ? -1 : x->r.id > y->r.id;
}

/* Reads, validates and sorts (by id) the region records of an INV_CLIENT. */
static int read_regions(const struct gmig_inv_client *m, struct pending *p, uint32_t k)
{
	uint8_t wire[GMIG_REC_region_SIZE];

	for (uint32_t i = 0; i < k; i++) {
		struct gmig_rec_region rec;

		gmig_rec_get_region(&m->tail, i, &rec);
		if (gmig_rec_put_region(wire, &rec) < 0)
			return -EINVAL;
		p[i].r = (struct gmig_image_region){ .pid = m->pid, .id = rec.id, .chunk = rec.chunk,
						     .va = rec.va, .size = rec.size };
		p[i].from = -1;
	}
	if (!k)
		return 0;
	qsort(p, k, sizeof(*p), by_va);
	for (uint32_t i = 1; i < k; i++)
		if (p[i - 1].r.va + p[i - 1].r.size > p[i].r.va)
			return -EINVAL;
	qsort(p, k, sizeof(*p), by_id);
	for (uint32_t i = 1; i < k; i++)
		if (p[i - 1].r.id == p[i].r.id)
			return -EINVAL;
	return 0;
}

/* Takes data and epoch arrays for a new region; -ENOMEM with nothing taken. */
static int region_alloc(struct gmig_image_region *r)
{
	uint64_t n = gmig_image_nchunks(r);

	if (r->size > SIZE_MAX || n > SIZE_MAX / sizeof(uint32_t))
		return -ENOMEM;
	r->data = fault_calloc(1, (size_t)r->size);
	if (!r->data)
		return -ENOMEM;
	r->epochs = fault_calloc((size_t)n, sizeof(uint32_t));
	if (!r->epochs) {
		free(r->data);
		r->data = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Enlarges a held region's arrays for size bytes without changing what they
 * hold or r->size: arrays longer than needed are harmless, so a later failure
 * needs no undo.
 */
static int region_reserve(struct gmig_image_region *r, uint64_t size)
{
	struct gmig_image_region big = *r;
	uint64_t n;
	void *p;

	if (size == r->size)
		return 0;
	big.size = size;
	n = gmig_image_nchunks(&big);
	if (size > SIZE_MAX || n > SIZE_MAX / sizeof(uint32_t))
		return -ENOMEM;
	p = fault_realloc(r->data, (size_t)size);
	if (!p)
		return -ENOMEM;
	r->data = p;
	p = fault_realloc(r->epochs, (size_t)n * sizeof(uint32_t));
	if (!p)
		return -ENOMEM;
	r->epochs = p;
	return 0;
}

/* Zeroes what a region gained; a short last chunk that grew must be written again. */
static void region_commit_growth(struct gmig_image_region *r, uint64_t size)
{
	uint64_t old_n = gmig_image_nchunks(r), new_n;

	if (size == r->size)
		return;
	memset(r->data + r->size, 0, (size_t)(size - r->size));
	if (r->size % r->chunk)
		r->epochs[old_n - 1] = 0;
	r->size = size;
	new_n = gmig_image_nchunks(r);
	memset(r->epochs + old_n, 0, (size_t)(new_n - old_n) * sizeof(uint32_t));
}

int gmig_image_set_client(struct gmig_image *img, const struct gmig_inv_client *m)
{
	struct gmig_image_client *c;
	struct pending *p = NULL;
	uint32_t k, lo, hi, nregions, ci;
	uint64_t total;
	int err;

	if (!m->pid || m->tail.len % GMIG_REC_region_SIZE || (m->tail.len && !m->tail.ptr))
		return -EINVAL;
	k = gmig_rec_count(&m->tail, GMIG_REC_region_SIZE);
	if (k > GMIG_REGIONS_MAX || !name_ok(m->name) || !gpu_known(img, m->gpu))
		return -EINVAL;
	c = gmig_image_client(img, m->pid);
	if (!c && img->nclients >= IMAGE_CLIENTS_MAX)
		return -ENOSPC;
	if (k) {
		p = fault_calloc(k, sizeof(*p));
		if (!p)
			return -ENOMEM;
	}
	err = read_regions(m, p, k);
	if (err)
		goto out_free_pending;

	/* Match the list with what the image holds, and size the result. */
	lo = region_lower(img, m->pid, 0);
	hi = region_lower(img, m->pid + 1, 0);
	if (m->pid == UINT32_MAX)
		hi = img->nregions;
	total = img->bytes;
	for (uint32_t i = lo; i < hi; i++)
		total -= img->regions[i].size;
	err = -EINVAL;
	for (uint32_t j = 0; j < k; j++) {
		struct gmig_image_region *old = gmig_image_region(img, m->pid, p[j].r.id);

		if (old) {
			if (old->va != p[j].r.va || old->chunk != p[j].r.chunk || p[j].r.size < old->size)
				goto out_free_pending;
			p[j].from = old - img->regions;
		}
		if (p[j].r.size > UINT64_MAX - total) {
			err = -ENOSPC;
			goto out_free_pending;
		}
		total += p[j].r.size;
	}
	nregions = img->nregions - (hi - lo) + k;
	if ((img->cap && total > img->cap) || nregions > IMAGE_REGIONS_MAX) {
		err = -ENOSPC;
		goto out_free_pending;
	}

	/* Take all memory first; from the commit on nothing can fail. */
	for (uint32_t j = 0; j < k; j++) {
		if (p[j].from >= 0)
			err = region_reserve(&img->regions[p[j].from], p[j].r.size);
		else
			err = region_alloc(&p[j].r);
		if (err)
			goto out_free_new;
	}
	err = array_grow(&img->regions, img->nregions, nregions, sizeof(*img->regions));
	if (err)
		goto out_free_new;
	if (!c) {
		err = array_grow(&img->clients, img->nclients, img->nclients + 1u,
				 sizeof(*img->clients));
		if (err)
			goto out_free_new;
	}

	/* Commit: held regions keep their bytes, those no longer listed go. */
	for (uint32_t j = 0; j < k; j++) {
		struct gmig_image_region *old;

		if (p[j].from < 0)
			continue;
		old = &img->regions[p[j].from];
		region_commit_growth(old, p[j].r.size);
		p[j].r = *old;
		old->data = NULL;
		old->epochs = NULL;
	}
	for (uint32_t i = lo; i < hi; i++)
		region_free(&img->regions[i]);
	if (hi < img->nregions)
		memmove(&img->regions[lo + k], &img->regions[hi],
			(size_t)(img->nregions - hi) * sizeof(*img->regions));
	for (uint32_t j = 0; j < k; j++)
		img->regions[lo + j] = p[j].r;
	array_shrink(&img->regions, img->nregions, nregions, sizeof(*img->regions));
	img->nregions = nregions;
	img->bytes = total;

	ci = client_lower(img, m->pid);
	if (!c) {
		memmove(&img->clients[ci + 1], &img->clients[ci],
			(size_t)(img->nclients - ci) * sizeof(*img->clients));
		img->clients[ci] = (struct gmig_image_client){ .pid = m->pid };
		img->nclients++;
	}
	img->clients[ci].gpu = m->gpu;
	memcpy(img->clients[ci].name, m->name, sizeof(img->clients[ci].name));
	free(p);
	return 0;

out_free_new:
	for (uint32_t j = 0; j < k; j++)
		if (p[j].from < 0)
			region_free(&p[j].r);
out_free_pending:
	free(p);
	return err;
}

void gmig_image_drop_client(struct gmig_image *img, uint32_t pid)
{
	uint32_t lo = region_lower(img, pid, 0), hi = region_lower(img, pid + 1, 0);
	uint32_t ci = client_lower(img, pid);

	if (pid == UINT32_MAX)
		hi = img->nregions;
	for (uint32_t i = lo; i < hi; i++) {
		img->bytes -= img->regions[i].size;
		region_free(&img->regions[i]);
	}
	if (hi < img->nregions)
		memmove(&img->regions[lo], &img->regions[hi],
			(size_t)(img->nregions - hi) * sizeof(*img->regions));
	array_shrink(&img->regions, img->nregions, img->nregions - (hi - lo), sizeof(*img->regions));
	img->nregions -= hi - lo;

	if (ci == img->nclients || img->clients[ci].pid != pid)
		return;
	free(img->clients[ci].blob);
	memmove(&img->clients[ci], &img->clients[ci + 1],
		(size_t)(img->nclients - ci - 1) * sizeof(*img->clients));
	array_shrink(&img->clients, img->nclients, img->nclients - 1u, sizeof(*img->clients));
	img->nclients--;
}

/* Checks a frame's length against its encoding; 0 or -EPROTO. */
static int check_encoding(const struct gmig_region_data *d, bool lz4)
{
	if (!d->length || d->length > GMIG_DATA_MAX || !d->epoch)
		return -EPROTO;
	if (d->tail.len && !d->tail.ptr)
		return -EPROTO;
	switch (d->encoding) {
	case GMIG_ENC_RAW:
		return d->tail.len == d->length ? 0 : -EPROTO;
	case GMIG_ENC_ZERO:
		return d->tail.len == 0 ? 0 : -EPROTO;
	case GMIG_ENC_LZ4:
		return lz4 && d->tail.len && d->tail.len <= d->length ? 0 : -EPROTO;
	default:
		return -EPROTO;
	}
}

int gmig_image_apply(struct gmig_image *img, const struct gmig_region_data *d, bool lz4)
{
	struct gmig_image_region *r = gmig_image_region(img, d->pid, d->region);
	const uint8_t *src = NULL;
	uint8_t *scratch = NULL;
	uint64_t end, first, last, ci;
	int err;

	if (!r)
		return -ENOENT;
	err = check_encoding(d, lz4);
	if (err)
		return err;
	if (d->offset >= r->size || d->length > r->size - d->offset)
		return -ERANGE;
	end = d->offset + d->length;
	if (d->offset % r->chunk || (end % r->chunk && end != r->size))
		return -ERANGE;
	first = d->offset / r->chunk;
	last = (end - 1) / r->chunk;

	/* Nothing to do when every chunk holds newer bytes. */
	for (ci = first; ci <= last && r->epochs[ci] > d->epoch; ci++)
		;
	if (ci > last)
		return 0;

	if (d->encoding == GMIG_ENC_RAW) {
		src = d->tail.ptr;
	} else if (d->encoding == GMIG_ENC_LZ4) {
		scratch = gmig_fault() ? NULL : malloc(d->length);
		if (!scratch)
			return -ENOMEM;
		if (LZ4_decompress_safe((const char *)d->tail.ptr, (char *)scratch, (int)d->tail.len,
					(int)d->length) != (int)d->length) {
			free(scratch);
			return -EPROTO;
		}
		src = scratch;
	}
	for (ci = first; ci <= last; ci++) {
		uint64_t off = ci * r->chunk;
		size_t n = (size_t)(r->size - off < r->chunk ? r->size - off : r->chunk);

		if (r->epochs[ci] > d->epoch)
			continue;
		if (src)
			memcpy(r->data + off, src + (off - d->offset), n);
		else
			memset(r->data + off, 0, n);
		r->epochs[ci] = d->epoch;
	}
	free(scratch);
	return 0;
}

int gmig_image_set_blob(struct gmig_image *img, uint32_t pid, const void *blob, uint32_t len)
{
	struct gmig_image_client *c = gmig_image_client(img, pid);
	uint8_t *copy;

	if (!c)
		return -ENOENT;
	if (len > GMIG_BLOB_MAX)
		return -EMSGSIZE;
	if (len && !blob)
		return -EINVAL;
	/* A frozen client with an empty blob still has one: never NULL once frozen. */
	copy = gmig_fault() ? NULL : malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, blob, len);
	free(c->blob);
	c->blob = copy;
	c->blob_len = len;
	return 0;
}

bool gmig_image_complete(const struct gmig_image *img)
{
	for (uint32_t i = 0; i < img->nregions; i++) {
		const struct gmig_image_region *r = &img->regions[i];
		uint64_t n = gmig_image_nchunks(r);

		for (uint64_t ci = 0; ci < n; ci++)
			if (!r->epochs[ci])
				return false;
	}
	return true;
}
