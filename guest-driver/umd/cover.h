/* A set of byte ranges, merged as they are added: what a restore has written of a region. */
#ifndef GMIG_UMD_COVER_H
#define GMIG_UMD_COVER_H

#include <stdbool.h>
#include <stdint.h>

struct gmig_extent {
	uint64_t start, end;	/* [start, end) */
};

struct gmig_cover {
	struct gmig_extent *v;	/* sorted, disjoint, never touching */
	uint64_t n, cap;
};

void gmig_cover_init(struct gmig_cover *c);
void gmig_cover_clear(struct gmig_cover *c);
/* Adds [start, start + len); len > 0 and no overflow. -ENOMEM. */
int gmig_cover_add(struct gmig_cover *c, uint64_t start, uint64_t len);
/* Whether [0, size) is covered. */
bool gmig_cover_full(const struct gmig_cover *c, uint64_t size);
uint64_t gmig_cover_bytes(const struct gmig_cover *c);

#endif
