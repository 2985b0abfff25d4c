/* Helpers shared by the host-side test suites: seeded randomness, temp dirs, image builders. */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostutil.h"

uint64_t hu_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t hu_below(uint64_t *state, uint64_t n)
{
	return hu_rand(state) % n;
}

void hu_fill(void *buf, size_t len, uint64_t *state)
{
	uint8_t *p = buf;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v = hu_rand(state);

		memcpy(p + i, &v, 8);
	}
	for (; i < len; i++)
		p[i] = (uint8_t)hu_rand(state);
}

void hu_fill_text(void *buf, size_t len, uint64_t *state)
{
	static const char *const words[] = { "gpu ", "chunk ", "epoch ", "region ", "image ",
					     "\0\0\0\0", "kernel ", "0123456789 " };
	uint8_t *p = buf;
	size_t i = 0;

	while (i < len) {
		const char *w = words[hu_below(state, sizeof(words) / sizeof(words[0]))];
		size_t n = w[0] ? strlen(w) : 4;

		for (size_t k = 0; k < n && i < len; k++)
			p[i++] = (uint8_t)w[k];
	}
}

char *hu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (!base || !*base)
		base = "/tmp";
	ck_assert_int_gt(asprintf(&path, "%s/gmig-host-test-XXXXXX", base), 0);
	ck_assert_ptr_nonnull(mkdtemp(path));
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void hu_rmtree(const char *dir)
{
	ck_assert_int_eq(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

int hu_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

int hu_set_gpus(struct gmig_image *img, unsigned n)
{
	uint8_t recs[GMIG_GPUS_MAX * GMIG_REC_gpu_SIZE];
	struct gmig_inv_gpus m = { .clients = 0, .tail = { recs, n * GMIG_REC_gpu_SIZE } };

	ck_assert_uint_le(n, GMIG_GPUS_MAX);
	for (unsigned i = 0; i < n; i++) {
		struct gmig_rec_gpu g = { .index = i, .vendor = 0x10de, .device = (uint16_t)(0x2330 + i),
					  .mem_bytes = (uint64_t)(80 + i) << 30, .backend = GMIG_BACKEND_SIM };

		for (int k = 0; k < GMIG_UUID_SIZE; k++)
			g.uuid[k] = (uint8_t)(i * 16 + k);
		snprintf(g.pci, sizeof(g.pci), "0000:%02x:00.0", 0x18 + i);
		snprintf(g.model, sizeof(g.model), "Simulated H200 #%u", i);
		ck_assert_int_eq(gmig_rec_put_gpu(recs + i * GMIG_REC_gpu_SIZE, &g), GMIG_REC_gpu_SIZE);
	}
	return gmig_image_set_gpus(img, &m);
}

int hu_set_client(struct gmig_image *img, uint32_t pid, uint32_t gpu, const char *name,
		  const struct gmig_rec_region *regions, unsigned n)
{
	uint8_t *recs = malloc(n * GMIG_REC_region_SIZE + 1);
	struct gmig_inv_client m = { .index = 0, .count = 1, .pid = pid, .gpu = gpu,
				     .tail = { recs, n * GMIG_REC_region_SIZE } };
	int err;

	ck_assert_ptr_nonnull(recs);
	snprintf(m.name, sizeof(m.name), "%s", name);
	/* Raw little-endian, so that tests can hand in records put_region would refuse. */
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = recs + i * GMIG_REC_region_SIZE;
		const struct gmig_rec_region *r = &regions[i];

		for (int b = 0; b < 4; b++) {
			p[b] = (uint8_t)(r->id >> (8 * b));
			p[20 + b] = (uint8_t)(r->chunk >> (8 * b));
		}
		for (int b = 0; b < 8; b++) {
			p[4 + b] = (uint8_t)(r->va >> (8 * b));
			p[12 + b] = (uint8_t)(r->size >> (8 * b));
		}
	}
	err = gmig_image_set_client(img, &m);
	free(recs);
	return err;
}

void hu_fill_region(struct gmig_image *img, struct gmig_image_region *r, uint32_t epoch,
		    uint64_t *state)
{
	uint8_t *buf = malloc(r->chunk);
	uint64_t n = gmig_image_nchunks(r);

	ck_assert_ptr_nonnull(buf);
	for (uint64_t ci = 0; ci < n; ci++) {
		uint64_t off = ci * r->chunk;
		uint32_t len = (uint32_t)(r->size - off < r->chunk ? r->size - off : r->chunk);
		struct gmig_region_data d = { .pid = r->pid, .region = r->id, .offset = off,
					      .length = len, .encoding = GMIG_ENC_RAW, .epoch = epoch,
					      .tail = { buf, len } };

		switch (hu_below(state, 3)) {
		case 0:
			d.encoding = GMIG_ENC_ZERO;
			d.tail = (struct gmig_tail){ NULL, 0 };
			break;
		case 1:
			hu_fill(buf, len, state);
			break;
		default:
			hu_fill_text(buf, len, state);
			break;
		}
		ck_assert_int_eq(gmig_image_apply(img, &d, false), 0);
	}
	free(buf);
}

void hu_random_image(struct gmig_image *img, uint64_t *state, uint64_t max_bytes)
{
	unsigned ngpus = 1 + (unsigned)hu_below(state, 4), nclients = 1 + (unsigned)hu_below(state, 4);
	uint32_t pid = 100 + (uint32_t)hu_below(state, 50);
	uint64_t per_region = max_bytes / 8 ? max_bytes / 8 : 1;

	ck_assert_int_eq(hu_set_gpus(img, ngpus), 0);
	for (unsigned c = 0; c < nclients; c++) {
		struct gmig_rec_region regs[4];
		unsigned k = (unsigned)hu_below(state, 5);
		uint64_t va = 0x7f0000000000ull + (hu_below(state, 16) << 32);
		uint32_t id = (uint32_t)hu_below(state, 3);
		char name[24];

		pid += 1 + (uint32_t)hu_below(state, 1000);
		for (unsigned i = 0; i < k; i++) {
			uint32_t chunk = 4096u << hu_below(state, 5);
			uint64_t size = (1 + hu_below(state, per_region / chunk + 1)) * chunk;

			/* Now and then a short last chunk. */
			if (!hu_below(state, 3))
				size -= 1 + hu_below(state, chunk - 1);
			id += 1 + (uint32_t)hu_below(state, 3);
			regs[i] = (struct gmig_rec_region){ .id = id, .va = va, .size = size, .chunk = chunk };
			va += (size + 0xfffff) & ~0xfffffull;
		}
		snprintf(name, sizeof(name), "prog-%u", c);
		ck_assert_int_eq(hu_set_client(img, pid, (uint32_t)hu_below(state, ngpus), name, regs, k), 0);
		switch (hu_below(state, 3)) {
		case 0:
			break;
		case 1:
			ck_assert_int_eq(gmig_image_set_blob(img, pid, NULL, 0), 0);
			break;
		default: {
			uint32_t len = 1 + (uint32_t)hu_below(state, 3000);
			uint8_t *blob = malloc(len);

			ck_assert_ptr_nonnull(blob);
			hu_fill(blob, len, state);
			ck_assert_int_eq(gmig_image_set_blob(img, pid, blob, len), 0);
			free(blob);
			break;
		}
		}
	}
	for (uint32_t i = 0; i < img->nregions; i++)
		hu_fill_region(img, &img->regions[i], 1 + (uint32_t)hu_below(state, 5), state);
	ck_assert(gmig_image_complete(img));
}

static bool gpu_equal(const struct gmig_rec_gpu *a, const struct gmig_rec_gpu *b)
{
	uint8_t wa[GMIG_REC_gpu_SIZE], wb[GMIG_REC_gpu_SIZE];

	return gmig_rec_put_gpu(wa, a) > 0 && gmig_rec_put_gpu(wb, b) > 0 && !memcmp(wa, wb, sizeof(wa));
}

bool hu_image_equal(const struct gmig_image *a, const struct gmig_image *b)
{
	if (a->ngpus != b->ngpus || a->nclients != b->nclients || a->nregions != b->nregions ||
	    a->bytes != b->bytes)
		return false;
	for (uint32_t i = 0; i < a->ngpus; i++)
		if (!gpu_equal(&a->gpus[i], &b->gpus[i]))
			return false;
	for (uint32_t i = 0; i < a->nclients; i++) {
		const struct gmig_image_client *x = &a->clients[i], *y = &b->clients[i];

		if (x->pid != y->pid || x->gpu != y->gpu || strcmp(x->name, y->name) ||
		    !x->blob != !y->blob || x->blob_len != y->blob_len ||
		    (x->blob_len && memcmp(x->blob, y->blob, x->blob_len)))
			return false;
	}
	for (uint32_t i = 0; i < a->nregions; i++) {
		const struct gmig_image_region *x = &a->regions[i], *y = &b->regions[i];

		if (x->pid != y->pid || x->id != y->id || x->va != y->va || x->size != y->size ||
		    x->chunk != y->chunk || memcmp(x->data, y->data, x->size))
			return false;
	}
	return gmig_image_complete(a) && gmig_image_complete(b);
}

bool hu_image_empty(const struct gmig_image *img)
{
	return !img->ngpus && !img->nclients && !img->nregions && !img->bytes && !img->gpus &&
	       !img->clients && !img->regions;
}
