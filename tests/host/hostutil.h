/* Helpers shared by the host-side test suites: seeded randomness, temp dirs, image builders. */
#ifndef GMIG_HOSTUTIL_H
#define GMIG_HOSTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* splitmix64: a fixed seed gives the same sequence on every run and machine. */
uint64_t hu_rand(uint64_t *state);
/* A value in [0, n), n > 0. */
uint64_t hu_below(uint64_t *state, uint64_t n);
void hu_fill(void *buf, size_t len, uint64_t *state);
/* Bytes LZ4 shrinks: short random words repeated. */
void hu_fill_text(void *buf, size_t len, uint64_t *state);

/* A fresh directory under $TMPDIR (or /tmp); hu_rmtree removes it and all inside. */
char *hu_tmpdir(void);
void hu_rmtree(const char *dir);
/* Entries in dir other than . and .. */
int hu_count_entries(const char *dir);

/* Sets n valid GPUs with indices 0..n-1 (n <= GMIG_GPUS_MAX); returns set_gpus' result. */
int hu_set_gpus(struct gmig_image *img, unsigned n);
/* INV_CLIENT for pid on gpu with regions (id, va, size, chunk); returns set_client's result. */
int hu_set_client(struct gmig_image *img, uint32_t pid, uint32_t gpu, const char *name,
		  const struct gmig_rec_region *regions, unsigned n);
/* Writes every chunk of a region with RAW or ZERO frames of the given epoch through apply. */
void hu_fill_region(struct gmig_image *img, struct gmig_image_region *r, uint32_t epoch,
		    uint64_t *state);
/*
 * A random complete image: 1-4 GPUs, 1-4 clients with 0-4 regions each (sizes
 * of up to about max_bytes / 8, not always chunk multiples; chunks of 4-64
 * KiB), chunks zero, random or compressible, blobs absent, empty or random.
 */
void hu_random_image(struct gmig_image *img, uint64_t *state, uint64_t max_bytes);
/* Whether two images hold the same GPUs, clients, blobs, regions and bytes. */
bool hu_image_equal(const struct gmig_image *a, const struct gmig_image *b);
/* Whether an image holds nothing. */
bool hu_image_empty(const struct gmig_image *img);

#endif
