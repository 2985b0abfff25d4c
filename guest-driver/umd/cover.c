/* A set of byte ranges, merged as they are added: what a restore has written of a region. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cover.h"

void gmig_cover_init(struct gmig_cover *c)
{
	memset(c, 0, sizeof(*c));
}

void gmig_cover_clear(struct gmig_cover *c)
{
	free(c->v);
	gmig_cover_init(c);
}

int gmig_cover_add(struct gmig_cover *c, uint64_t start, uint64_t len)
{
	uint64_t end = start + len, lo = 0, hi = c->n, j;

	/* The first extent that ends at or after start: it may touch or overlap the new one. */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (c->v[mid].end < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Extents lo .. j-1 touch or overlap [start, end): they merge into one. */
	for (j = lo; j < c->n && c->v[j].start <= end; j++) {
		if (c->v[j].start < start)
			start = c->v[j].start;
		if (c->v[j].end > end)
			end = c->v[j].end;
	}
	if (j == lo) {
		if (c->n == c->cap) {
			uint64_t cap = c->cap ? c->cap * 2 : 16;
			struct gmig_extent *v = realloc(c->v, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			c->v = v;
			c->cap = cap;
		}
		memmove(&c->v[lo + 1], &c->v[lo], (c->n - lo) * sizeof(*c->v));
		c->n++;
	} else if (j > lo + 1) {
		memmove(&c->v[lo + 1], &c->v[j], (c->n - j) * sizeof(*c->v));
		c->n -= j - lo - 1;
	}
	c->v[lo] = (struct gmig_extent){ start, end };
	return 0;
}

bool gmig_cover_full(const struct gmig_cover *c, uint64_t size)
{
	return c->n == 1 && c->v[0].start == 0 && c->v[0].end >= size;
}

uint64_t gmig_cover_bytes(const struct gmig_cover *c)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < c->n; i++)
		n += c->v[i].end - c->v[i].start;
	return n;
}
