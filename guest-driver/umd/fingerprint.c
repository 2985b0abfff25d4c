/* Chunk fingerprints of device memory: base and current generations, and what changed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fingerprint.h"

#define WORDS(n) (((n) + 63) / 64)

static bool bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void region_free(struct gmig_fp_region *r)
{
	free(r->base);
	free(r->cur);
	free(r->sent);
	free(r->stale);
}

void gmig_fp_init(struct gmig_fp *fp, uint32_t chunk)
{
	memset(fp, 0, sizeof(*fp));
	fp->chunk = chunk;
}

void gmig_fp_clear(struct gmig_fp *fp)
{
	for (uint32_t i = 0; i < fp->nregions; i++)
		region_free(&fp->regions[i]);
	free(fp->regions);
	gmig_fp_init(fp, fp->chunk);
}

/* Resizes r's arrays to n chunks; new bitmap words are zero. */
static int region_resize(struct gmig_fp_region *r, uint64_t n)
{
	uint64_t old = WORDS(r->nchunks), words = WORDS(n);
	uint64_t **arrays[] = { &r->base, &r->cur };
	uint64_t **maps[] = { &r->sent, &r->stale };

	for (int k = 0; k < 2; k++) {
		uint64_t *v = realloc(*arrays[k], (n ? n : 1) * sizeof(uint64_t));

		if (!v)
			return -ENOMEM;
		*arrays[k] = v;
	}
	for (int k = 0; k < 2; k++) {
		uint64_t *v = realloc(*maps[k], (words ? words : 1) * sizeof(uint64_t));

		if (!v)
			return -ENOMEM;
		if (words > old)
			memset(v + old, 0, (words - old) * sizeof(uint64_t));
		*maps[k] = v;
	}
	/* Bits past the end of a shrunk region must not come back if it grows again. */
	if (n < r->nchunks && n % 64)
		for (int k = 0; k < 2; k++)
			(*maps[k])[n / 64] &= (1ull << (n % 64)) - 1;
	r->nchunks = n;
	if (r->nbase > n)
		r->nbase = n;
	return 0;
}

/* Moves the generations of every region one step, as round_begin documents. */
static void advance(struct gmig_fp *fp, bool promote, bool keep)
{
	for (uint32_t i = 0; i < fp->nregions; i++) {
		struct gmig_fp_region *r = &fp->regions[i];
		uint64_t words = WORDS(r->nchunks);

		if (promote) {
			uint64_t *t = r->base;

			r->base = r->cur;
			r->cur = t;
			r->nbase = r->nchunks;
			/* The round sent every stale chunk again: the base holds them now. */
			memset(r->stale, 0, words * sizeof(uint64_t));
		} else if (keep) {
			for (uint64_t w = 0; w < words; w++)
				r->stale[w] |= r->sent[w];
		} else {
			r->nbase = 0;
			memset(r->stale, 0, words * sizeof(uint64_t));
		}
		memset(r->sent, 0, words * sizeof(uint64_t));
		r->nsent = 0;
	}
}

int gmig_fp_round_begin(struct gmig_fp *fp, uint32_t round, uint32_t base,
			const struct gmig_region *regions, uint32_t n)
{
	bool promote = base && base == fp->cur_round && fp->cur_whole;
	bool keep = base && !promote && base == fp->base_round;
	struct gmig_fp_region *next;
	int err = 0;

	advance(fp, promote, keep);
	fp->base_round = promote ? fp->cur_round : keep ? fp->base_round : 0;
	fp->cur_round = round;
	fp->cur_whole = false;

	/* Match the regions by id; what is gone is dropped, what is new has no base. */
	next = calloc(n ? n : 1, sizeof(*next));
	if (!next) {
		gmig_fp_clear(fp);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < fp->nregions; j++) {
			if (fp->regions[j].id == regions[i].id && fp->regions[j].nchunks != UINT64_MAX) {
				next[i] = fp->regions[j];
				fp->regions[j].nchunks = UINT64_MAX;	/* taken */
				break;
			}
		}
		next[i].id = regions[i].id;
		next[i].size = regions[i].size;
		if (!err)
			err = region_resize(&next[i], (regions[i].size + fp->chunk - 1) / fp->chunk);
	}
	for (uint32_t j = 0; j < fp->nregions; j++)
		if (fp->regions[j].nchunks != UINT64_MAX)
			region_free(&fp->regions[j]);
	free(fp->regions);
	fp->regions = next;
	fp->nregions = n;
	if (err)
		gmig_fp_clear(fp);
	return err;
}

bool gmig_fp_must_send(const struct gmig_fp *fp, uint32_t ri, uint64_t ci, uint64_t print)
{
	const struct gmig_fp_region *r = &fp->regions[ri];

	return ci >= r->nbase || r->base[ci] != print || bit(r->stale, ci);
}

void gmig_fp_record(struct gmig_fp *fp, uint32_t ri, uint64_t ci, uint64_t print, bool sent)
{
	struct gmig_fp_region *r = &fp->regions[ri];

	r->cur[ci] = print;
	if (sent && !bit(r->sent, ci)) {
		r->sent[ci / 64] |= 1ull << (ci % 64);
		r->nsent++;
	}
}

void gmig_fp_round_end(struct gmig_fp *fp)
{
	fp->cur_whole = true;
}

bool gmig_fp_was_sent(const struct gmig_fp *fp, uint32_t ri, uint64_t ci)
{
	return bit(fp->regions[ri].sent, ci);
}

uint64_t gmig_fp_hash(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}

bool gmig_fp_is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	/* Equal to itself shifted by one byte, and the first byte zero: all zero. */
	return !n || (!b[0] && !memcmp(b, b + 1, n - 1));
}
