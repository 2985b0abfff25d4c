/* The frozen blob: a client's state that is not device memory, encoded and validated. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "gmig/message.h"
#include "state.h"

#define MAGIC		"GMST"
#define REGION_SIZE	24
#define QUEUE_SIZE	12
#define ALLOC_SIZE	16
#define SUM_SIZE	8

static void put16(uint8_t **p, uint16_t v)
{
	(*p)[0] = (uint8_t)v;
	(*p)[1] = (uint8_t)(v >> 8);
	*p += 2;
}

static void put32(uint8_t **p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p, (uint16_t)(v >> 16));
}

static void put64(uint8_t **p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t **p)
{
	uint16_t v = (uint16_t)((*p)[0] | (*p)[1] << 8);

	*p += 2;
	return v;
}

static uint32_t get32(const uint8_t **p)
{
	uint32_t lo = get16(p);

	return lo | (uint32_t)get16(p) << 16;
}

static uint64_t get64(const uint8_t **p)
{
	uint64_t lo = get32(p);

	return lo | (uint64_t)get32(p) << 32;
}

static bool pow2_chunk(uint32_t c)
{
	return c >= GMIG_CHUNK_MIN && c <= GMIG_CHUNK_MAX && !(c & (c - 1));
}

/* The rules a decoded state must meet, and an encoded one too. */
static int validate(const struct gmig_state *s)
{
	uint64_t end = 0;

	if (s->backend < 1 || s->backend > GMIG_BACKEND_MAX)
		return -EPROTO;
	if (!s->arena_size || s->arena_va > UINT64_MAX - s->arena_size)
		return -EPROTO;
	for (uint32_t i = 0; i < s->nregions; i++) {
		const struct gmig_region *r = &s->regions[i];

		if (i && r->id <= s->regions[i - 1].id)
			return -EPROTO;
		if (!r->size || !pow2_chunk(r->chunk) || r->va < s->arena_va + end ||
		    r->va - s->arena_va > s->arena_size || r->size > s->arena_size - (r->va - s->arena_va))
			return -EPROTO;
		end = r->va - s->arena_va + r->size;
	}
	for (uint32_t i = 1; i < s->nqueues; i++)
		if (s->queues[i].id <= s->queues[i - 1].id)
			return -EPROTO;
	end = 0;
	for (uint64_t i = 0; i < s->nallocs; i++) {
		const struct gmig_alloc *a = &s->allocs[i];

		if (!a->size || a->off % GMIG_ARENA_ALIGN || a->size % GMIG_ARENA_ALIGN ||
		    a->off < end || a->off > s->arena_size || a->size > s->arena_size - a->off)
			return -EPROTO;
		end = a->off + a->size;
	}
	return 0;
}

static uint64_t blob_len(uint32_t nregions, uint32_t nqueues, uint64_t nallocs)
{
	if (nallocs > GMIG_BLOB_MAX)
		return UINT64_MAX;
	return GMIG_STATE_HDR_SIZE + (uint64_t)nregions * REGION_SIZE +
	       (uint64_t)nqueues * QUEUE_SIZE + nallocs * ALLOC_SIZE + SUM_SIZE;
}

int gmig_state_encode(const struct gmig_state *s, uint8_t **blob, size_t *len)
{
	uint64_t n = blob_len(s->nregions, s->nqueues, s->nallocs);
	uint8_t *buf, *p;

	if (validate(s))
		return -EINVAL;
	if (n > GMIG_BLOB_MAX)
		return -E2BIG;
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	p = buf;
	memcpy(p, MAGIC, 4);
	p += 4;
	put16(&p, GMIG_STATE_VERSION);
	*p++ = s->backend;
	*p++ = 0;
	memcpy(p, s->uuid, GMIG_UUID_SIZE);
	p += GMIG_UUID_SIZE;
	put64(&p, s->arena_va);
	put64(&p, s->arena_size);
	put32(&p, s->nregions);
	put32(&p, s->nqueues);
	put64(&p, s->nallocs);
	for (uint32_t i = 0; i < s->nregions; i++) {
		put32(&p, s->regions[i].id);
		put64(&p, s->regions[i].va);
		put64(&p, s->regions[i].size);
		put32(&p, s->regions[i].chunk);
	}
	for (uint32_t i = 0; i < s->nqueues; i++) {
		put32(&p, s->queues[i].id);
		put64(&p, s->queues[i].submitted);
	}
	for (uint64_t i = 0; i < s->nallocs; i++) {
		put64(&p, s->allocs[i].off);
		put64(&p, s->allocs[i].size);
	}
	put64(&p, XXH3_64bits(buf, (size_t)(p - buf)));
	*blob = buf;
	*len = (size_t)n;
	return 0;
}

void gmig_state_clear(struct gmig_state *s)
{
	free(s->regions);
	free(s->queues);
	free(s->allocs);
	memset(s, 0, sizeof(*s));
}

int gmig_state_decode(const uint8_t *blob, size_t len, struct gmig_state *s)
{
	const uint8_t *p = blob;
	int err;

	memset(s, 0, sizeof(*s));
	if (len < GMIG_STATE_HDR_SIZE + SUM_SIZE || len > GMIG_BLOB_MAX)
		return -EBADMSG;
	if (memcmp(p, MAGIC, 4))
		return -EBADMSG;
	p += 4;
	if (get16(&p) != GMIG_STATE_VERSION)
		return -EPROTONOSUPPORT;
	s->backend = *p++;
	if (*p++)
		return -EPROTO;
	memcpy(s->uuid, p, GMIG_UUID_SIZE);
	p += GMIG_UUID_SIZE;
	s->arena_va = get64(&p);
	s->arena_size = get64(&p);
	s->nregions = get32(&p);
	s->nqueues = get32(&p);
	s->nallocs = get64(&p);
	/* Counts first, so no allocation is sized by a number the length does not back. */
	if (blob_len(s->nregions, s->nqueues, s->nallocs) != len) {
		memset(s, 0, sizeof(*s));
		return -EBADMSG;
	}
	{
		const uint8_t *sum = blob + len - SUM_SIZE;

		if (get64(&sum) != XXH3_64bits(blob, len - SUM_SIZE)) {
			memset(s, 0, sizeof(*s));
			return -EBADMSG;
		}
	}
	s->regions = calloc(s->nregions ? s->nregions : 1, sizeof(*s->regions));
	s->queues = calloc(s->nqueues ? s->nqueues : 1, sizeof(*s->queues));
	s->allocs = calloc(s->nallocs ? s->nallocs : 1, sizeof(*s->allocs));
	if (!s->regions || !s->queues || !s->allocs) {
		gmig_state_clear(s);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->nregions; i++) {
		s->regions[i].id = get32(&p);
		s->regions[i].va = get64(&p);
		s->regions[i].size = get64(&p);
		s->regions[i].chunk = get32(&p);
	}
	for (uint32_t i = 0; i < s->nqueues; i++) {
		s->queues[i].id = get32(&p);
		s->queues[i].submitted = get64(&p);
	}
	for (uint64_t i = 0; i < s->nallocs; i++) {
		s->allocs[i].off = get64(&p);
		s->allocs[i].size = get64(&p);
	}
	err = validate(s);
	if (err)
		gmig_state_clear(s);
	return err;
}

int gmig_state_same_program(const struct gmig_state *a, const struct gmig_state *b)
{
	if (a->backend != b->backend || a->arena_va != b->arena_va || a->arena_size != b->arena_size)
		return -ESTALE;
	if (a->nregions != b->nregions || a->nqueues != b->nqueues || a->nallocs != b->nallocs)
		return -ESTALE;
	for (uint32_t i = 0; i < a->nregions; i++) {
		const struct gmig_region *x = &a->regions[i], *y = &b->regions[i];

		if (x->id != y->id || x->va != y->va || x->size != y->size || x->chunk != y->chunk)
			return -ESTALE;
	}
	for (uint32_t i = 0; i < a->nqueues; i++)
		if (a->queues[i].id != b->queues[i].id || a->queues[i].submitted != b->queues[i].submitted)
			return -ESTALE;
	for (uint64_t i = 0; i < a->nallocs; i++)
		if (a->allocs[i].off != b->allocs[i].off || a->allocs[i].size != b->allocs[i].size)
			return -ESTALE;
	return 0;
}
