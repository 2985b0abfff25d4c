/* Check suite for checkpoint files: round trips, atomic writes, every way a file can be damaged. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "checkpoint.h"
#include "fault.h"
#include "hostutil.h"

#define K4	4096u
#define HDR	64
#define REC	32
#define TRAILER	24
#define GPU_REC	GMIG_REC_gpu_SIZE
#define CLIENT_REC 56
#define REGION_REC GMIG_REC_manifest_SIZE
#define MAX_RECS 256

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void poke(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Where everything sits in a checkpoint file, found by walking it as the format says. */
struct layout {
	size_t size;
	uint32_t gpus, clients, regions;
	uint64_t chunks;
	size_t clients_off, regions_off, manifest_end;
	size_t blob_off[8], blob_len[8];
	unsigned nblobs;
	size_t rec[MAX_RECS];
	uint32_t stored[MAX_RECS];
	uint8_t enc[MAX_RECS];
	size_t trailer;
};

static void walk(const uint8_t *f, size_t size, struct layout *L)
{
	size_t pos;

	memset(L, 0, sizeof(*L));
	L->size = size;
	L->gpus = le32(f + 16);
	L->clients = le32(f + 20);
	L->regions = le32(f + 24);
	L->chunks = le64(f + 40);
	L->clients_off = HDR + L->gpus * GPU_REC;
	L->regions_off = L->clients_off + L->clients * CLIENT_REC;
	L->manifest_end = L->regions_off + L->regions * REGION_REC;
	pos = L->manifest_end;
	for (uint32_t i = 0; i < L->clients; i++) {
		const uint8_t *c = f + L->clients_off + i * CLIENT_REC;

		if (!(le32(c + 8) & 1))
			continue;
		ck_assert_uint_lt(L->nblobs, 8);
		L->blob_off[L->nblobs] = pos;
		L->blob_len[L->nblobs++] = le32(c + 12);
		pos += le32(c + 12);
	}
	ck_assert_uint_le(L->chunks, MAX_RECS);
	for (uint64_t k = 0; k < L->chunks; k++) {
		L->rec[k] = pos;
		L->enc[k] = f[pos + 4];
		L->stored[k] = le32(f + pos + 20);
		pos += REC + L->stored[k];
	}
	L->trailer = pos;
	ck_assert_uint_eq(pos + TRAILER, size);
}

/* Recomputes the manifest, header and file checksums after a deliberate change. */
static void reseal(uint8_t *f, size_t size)
{
	size_t mlen = (size_t)le32(f + 16) * GPU_REC + (size_t)le32(f + 20) * CLIENT_REC +
		      (size_t)le32(f + 24) * REGION_REC;

	if (HDR + mlen <= size)
		poke(f + 48, 8, XXH3_64bits(f + HDR, mlen));
	poke(f + 56, 8, XXH3_64bits(f, 56));
	poke(f + size - 8, 8, XXH3_64bits(f, size - TRAILER));
}

static void fill_chunk(uint8_t *p, size_t n, char kind, uint64_t *seed)
{
	if (kind == 'r')
		hu_fill(p, n, seed);
	else if (kind == 't')
		hu_fill_text(p, n, seed);
	else
		memset(p, 0, n);
}

/*
 * The small image of the malformed-file tests: two GPUs; pid 100 "alpha" with
 * a 100-byte blob and regions 1 (8 chunks of 4 KiB) and 2 (10 KiB: a short
 * last chunk); pid 200 "beta", no blob, region 7 (4 chunks of 8 KiB). Chunks
 * are random (r), compressible (t) or zero (z), so every encoding appears.
 */
static void small_image(struct gmig_image *img)
{
	static const struct {
		uint32_t pid, id, chunk;
		uint64_t va, size;
		const char *kinds;
	} regs[] = {
		{ 100, 1, K4, 0x7f0000000000ull, 8 * K4, "rztrtzrt" },
		{ 100, 2, K4, 0x7f0000100000ull, 10 * 1024, "trz" },
		{ 200, 7, 2 * K4, 0x7f0000000000ull, 8 * K4, "rtzr" },
	};
	uint8_t blob[100];
	uint64_t seed = 42;

	gmig_image_init(img, 0);
	ck_assert_int_eq(hu_set_gpus(img, 2), 0);
	for (int c = 0; c < 2; c++) {
		struct gmig_rec_region rr[2];
		unsigned n = 0;

		for (int i = 0; i < 3; i++)
			if (regs[i].pid == (c ? 200u : 100u))
				rr[n++] = (struct gmig_rec_region){ regs[i].id, regs[i].va, regs[i].size,
								    regs[i].chunk };
		ck_assert_int_eq(hu_set_client(img, c ? 200 : 100, (uint32_t)c, c ? "beta" : "alpha", rr, n), 0);
	}
	hu_fill(blob, sizeof(blob), &seed);
	ck_assert_int_eq(gmig_image_set_blob(img, 100, blob, sizeof(blob)), 0);
	for (int i = 0; i < 3; i++) {
		struct gmig_image_region *r = gmig_image_region(img, regs[i].pid, regs[i].id);
		uint8_t *buf = malloc(r->chunk);

		ck_assert_ptr_nonnull(buf);
		for (uint64_t ci = 0; ci < gmig_image_nchunks(r); ci++) {
			uint64_t off = ci * r->chunk;
			uint32_t len = (uint32_t)(r->size - off < r->chunk ? r->size - off : r->chunk);
			struct gmig_region_data d = { .pid = r->pid, .region = r->id, .offset = off,
						      .length = len, .encoding = GMIG_ENC_RAW, .epoch = 3,
						      .tail = { buf, len } };

			fill_chunk(buf, len, regs[i].kinds[ci], &seed);
			ck_assert_int_eq(gmig_image_apply(img, &d, false), 0);
		}
		free(buf);
	}
}

/* The bytes of a file written from img; the caller frees them. */
static uint8_t *file_of(const struct gmig_image *img, size_t *size)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(gmig_checkpoint_write_file(img, f, NULL, NULL), 0);
	ck_assert_int_eq(fclose(f), 0);
	*size = len;
	return (uint8_t *)buf;
}

/* Reads size bytes as a checkpoint into img (initialised); the stream's size is told when known. */
static int read_mem(const uint8_t *buf, size_t size, bool known, struct gmig_image *img,
		    char *detail)
{
	FILE *f = size ? fmemopen((void *)buf, size, "rb") : fopen("/dev/null", "rb");
	int rc;

	ck_assert_ptr_nonnull(f);
	rc = gmig_checkpoint_read_file(f, known ? size : UINT64_MAX, img, detail, GMIG_CKPT_DETAIL_MAX);
	fclose(f);
	if (rc)
		ck_assert_msg(hu_image_empty(img), "a failed read left a partial image (%s)", detail);
	return rc;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_round_trip)
{
	uint64_t seed = 0xc0ffee;
	char *dir = hu_tmpdir(), path[4096], detail[GMIG_CKPT_DETAIL_MAX];

	snprintf(path, sizeof(path), "%s/guest.ckpt", dir);
	for (int i = 0; i < 12; i++) {
		struct gmig_image a, b;
		uint8_t *bytes;
		size_t size;

		gmig_image_init(&a, 0);
		hu_random_image(&a, &seed, 1u << 20);
		ck_assert_int_eq(gmig_checkpoint_write(&a, path, NULL, NULL), 0);
		ck_assert_int_eq(hu_count_entries(dir), 1);
		gmig_image_init(&b, a.bytes);
		ck_assert_msg(gmig_checkpoint_read(path, &b, detail, sizeof(detail)) == 0, "image %d: %s",
			      i, detail);
		ck_assert_str_eq(detail, "");
		ck_assert_msg(hu_image_equal(&a, &b), "image %d differs after a round trip", i);
		/* Chunks read from a file hold epoch 1. */
		for (uint32_t r = 0; r < b.nregions; r++)
			ck_assert_uint_eq(b.regions[r].epochs[0], 1);

		/* The same through streams, of known and of unknown length. */
		bytes = file_of(&a, &size);
		ck_assert_uint_eq(size, file_size(path));
		for (int known = 0; known < 2; known++) {
			ck_assert_int_eq(read_mem(bytes, size, known, &b, detail), 0);
			ck_assert(hu_image_equal(&a, &b));
		}
		/* The reader takes every byte the writer wrote, and no more. */
		{
			FILE *f = fmemopen(bytes, size, "rb");

			ck_assert_int_eq(gmig_checkpoint_read_file(f, size, &b, detail, sizeof(detail)), 0);
			ck_assert_int_eq(ftell(f), (long)size);
			fclose(f);
		}
		free(bytes);
		gmig_image_clear(&a);
		gmig_image_clear(&b);
	}
	hu_rmtree(dir);
	free(dir);
}
END_TEST

/* The header and trailer hold what the format says, and the walk adds up. */
START_TEST(test_format_fields)
{
	struct gmig_image img;
	struct layout L;
	size_t size;
	uint8_t *f;
	unsigned raw = 0, zero = 0, lz4 = 0;

	small_image(&img);
	f = file_of(&img, &size);
	walk(f, size, &L);
	ck_assert_mem_eq(f, "GMIGCKPT", 8);
	ck_assert_uint_eq(le32(f + 8) & 0xffff, 1);
	ck_assert_uint_eq(le32(f + 8) >> 16, 0);
	ck_assert_uint_eq(le32(f + 12), HDR);
	ck_assert_uint_eq(L.gpus, 2);
	ck_assert_uint_eq(L.clients, 2);
	ck_assert_uint_eq(L.regions, 3);
	ck_assert_uint_eq(le64(f + 32), img.bytes);
	ck_assert_uint_eq(L.chunks, 8 + 3 + 4);
	ck_assert_uint_eq(L.nblobs, 1);
	ck_assert_uint_eq(L.blob_len[0], 100);
	ck_assert_mem_eq(f + L.trailer, "GMIGTAIL", 8);
	ck_assert_uint_eq(le64(f + L.trailer + 8), L.chunks);
	ck_assert_uint_eq(le64(f + L.trailer + 16), XXH3_64bits(f, L.trailer));
	for (uint64_t k = 0; k < L.chunks; k++) {
		raw += L.enc[k] == GMIG_ENC_RAW;
		zero += L.enc[k] == GMIG_ENC_ZERO;
		lz4 += L.enc[k] == GMIG_ENC_LZ4;
		if (L.enc[k] == GMIG_ENC_ZERO)
			ck_assert_uint_eq(L.stored[k], 0);
		if (L.enc[k] == GMIG_ENC_LZ4)
			ck_assert_uint_lt(L.stored[k], le32(f + L.rec[k] + 16));
	}
	ck_assert_uint_eq(raw, 6);
	ck_assert_uint_eq(zero, 4);
	ck_assert_uint_eq(lz4, 5);
	free(f);
	gmig_image_clear(&img);
}
END_TEST

/* Cut at every boundary between records and fields, and at random points: "truncated at byte N". */
START_TEST(test_truncated)
{
	struct gmig_image img, out;
	char detail[GMIG_CKPT_DETAIL_MAX], want[64];
	size_t size, cuts[1024], n = 0;
	uint64_t seed = 99;
	struct layout L;
	uint8_t *f;

	small_image(&img);
	gmig_image_init(&out, 0);
	f = file_of(&img, &size);
	walk(f, size, &L);
	cuts[n++] = 0;
	cuts[n++] = 8;
	cuts[n++] = HDR;
	for (uint32_t i = 1; i <= L.gpus; i++)
		cuts[n++] = HDR + i * GPU_REC;
	for (uint32_t i = 1; i <= L.clients; i++)
		cuts[n++] = L.clients_off + i * CLIENT_REC;
	for (uint32_t i = 1; i <= L.regions; i++)
		cuts[n++] = L.regions_off + i * REGION_REC;
	for (unsigned i = 0; i < L.nblobs; i++)
		cuts[n++] = L.blob_off[i] + L.blob_len[i];
	for (uint64_t k = 0; k < L.chunks; k++) {
		cuts[n++] = L.rec[k] + REC;
		cuts[n++] = L.rec[k] + REC + L.stored[k] / 2;
	}
	cuts[n++] = L.trailer;
	cuts[n++] = L.trailer + 8;
	cuts[n++] = L.trailer + 16;
	cuts[n++] = size - 1;
	while (n < 400)
		cuts[n++] = (size_t)hu_below(&seed, size);

	for (size_t i = 0; i < n; i++) {
		for (int known = 0; known < 2; known++) {
			int rc = read_mem(f, cuts[i], known, &out, detail);

			ck_assert_msg(rc == -ENODATA, "cut at %zu (known %d): rc %d: %s", cuts[i], known, rc,
				      detail);
			snprintf(want, sizeof(want), "truncated at byte %zu", cuts[i]);
			ck_assert_msg(!strncmp(detail, want, strlen(want)) &&
				      (detail[strlen(want)] == 0 || detail[strlen(want)] == ':'),
				      "cut at %zu: \"%s\"", cuts[i], detail);
		}
	}
	free(f);
	gmig_image_clear(&img);
}
END_TEST

/* A flipped bit in each section of the file, and the errors it may give. */
struct flip_row {
	const char *section;
	int expect[3];		/* any of these; 0 ends the list */
	const char *detail;	/* a substring the detail must hold, or NULL */
};

static const struct flip_row fl_magic = { "header magic", { -EINVAL }, "bad magic" };
static const struct flip_row fl_version = { "header version", { -EPROTONOSUPPORT }, "version" };
static const struct flip_row fl_header = { "header", { -EBADMSG }, "header checksum mismatch" };
static const struct flip_row fl_manifest = { "manifest", { -EBADMSG },
					     "manifest checksum mismatch" };
static const struct flip_row fl_blob = { "blob", { -EBADMSG }, "blob checksum mismatch" };
static const struct flip_row fl_rec_where = { "record region/offset", { -EINVAL, -ERANGE }, NULL };
static const struct flip_row fl_rec_enc = { "record encoding", { -EINVAL }, "encoding" };
static const struct flip_row fl_rec_reserved = { "record reserved", { -EINVAL }, "reserved" };
static const struct flip_row fl_rec_len = { "record length", { -EINVAL }, "length" };
static const struct flip_row fl_rec_stored = { "record stored", { -EINVAL }, "stored" };
static const struct flip_row fl_rec_stored_lz4 = { "LZ4 record stored",
						   { -EINVAL, -EBADMSG, -ENODATA }, NULL };
static const struct flip_row fl_rec_hash = { "record hash", { -EBADMSG }, "checksum mismatch" };
static const struct flip_row fl_data = { "chunk data", { -EBADMSG }, "checksum mismatch" };
/* A flip may decode to the same bytes (a match pointing at an equal run): the file checksum then. */
static const struct flip_row fl_data_lz4 = { "LZ4 chunk data", { -EBADMSG }, NULL };
static const struct flip_row fl_tr_magic = { "trailer magic", { -EINVAL }, "bad trailer magic" };
static const struct flip_row fl_tr_count = { "trailer count", { -EINVAL }, "trailer counts" };
static const struct flip_row fl_tr_hash = { "trailer hash", { -EBADMSG },
					    "file checksum mismatch" };

static void flip_bits(uint8_t *f, size_t size, size_t from, size_t to, const struct flip_row *row)
{
	char detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image out;

	gmig_image_init(&out, 0);
	for (size_t bit = from * 8; bit < to * 8; bit++) {
		bool ok = false;
		int rc;

		f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = read_mem(f, size, true, &out, detail);
		f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		for (int i = 0; i < 3 && row->expect[i]; i++)
			ok |= rc == row->expect[i];
		ck_assert_msg(ok, "%s: bit %zu of byte %zu: rc %d (%s)", row->section, bit % 8, bit / 8, rc,
			      detail);
		if (row->detail)
			ck_assert_msg(strstr(detail, row->detail), "%s: byte %zu: \"%s\"", row->section,
				      bit / 8, detail);
	}
	gmig_image_clear(&out);
}

START_TEST(test_bit_flips)
{
	struct gmig_image img;
	uint64_t seed = 5;
	struct layout L;
	size_t size;
	uint8_t *f;

	small_image(&img);
	f = file_of(&img, &size);
	walk(f, size, &L);
	flip_bits(f, size, 0, 8, &fl_magic);
	flip_bits(f, size, 8, 10, &fl_version);
	flip_bits(f, size, 10, HDR, &fl_header);
	flip_bits(f, size, HDR, L.manifest_end, &fl_manifest);
	flip_bits(f, size, L.blob_off[0], L.blob_off[0] + L.blob_len[0], &fl_blob);
	for (uint64_t k = 0; k < L.chunks; k++) {
		size_t r = L.rec[k], d = r + REC, n = L.stored[k];

		flip_bits(f, size, r, r + 4, &fl_rec_where);
		flip_bits(f, size, r + 4, r + 5, &fl_rec_enc);
		flip_bits(f, size, r + 5, r + 8, &fl_rec_reserved);
		flip_bits(f, size, r + 8, r + 16, &fl_rec_where);
		flip_bits(f, size, r + 16, r + 20, &fl_rec_len);
		flip_bits(f, size, r + 20, r + 24,
			  L.enc[k] == GMIG_ENC_LZ4 ? &fl_rec_stored_lz4 : &fl_rec_stored);
		flip_bits(f, size, r + 24, r + 32, &fl_rec_hash);
		/* Chunk data: every bit of both ends and of a sample between. */
		if (n) {
			const struct flip_row *row = L.enc[k] == GMIG_ENC_LZ4 ? &fl_data_lz4 : &fl_data;

			ck_assert_uint_gt(n, 64);
			flip_bits(f, size, d, d + 16, row);
			flip_bits(f, size, d + n - 16, d + n, row);
			for (int i = 0; i < 16; i++) {
				size_t at = d + 16 + (size_t)hu_below(&seed, n - 32);

				flip_bits(f, size, at, at + 1, row);
			}
		}
	}
	flip_bits(f, size, L.trailer, L.trailer + 8, &fl_tr_magic);
	flip_bits(f, size, L.trailer + 8, L.trailer + 16, &fl_tr_count);
	flip_bits(f, size, L.trailer + 16, L.trailer + 24, &fl_tr_hash);
	free(f);
	gmig_image_clear(&img);
}
END_TEST

/* Where a malformed-file row changes the file. */
enum base {
	AT_FILE,	/* offset from the start */
	AT_GPU,		/* GPU record index */
	AT_CLIENT,	/* client record index */
	AT_REGION,	/* manifest region record index */
	AT_BLOB,	/* blob index */
	AT_RECORD,	/* chunk record index, its header */
	AT_LZ4,		/* the first LZ4 chunk record, its header */
	AT_TRAILER,
	AT_SPECIAL,	/* a change that is not one field: see fn */
};

/*
 * Deliberate changes and the precise error each gives: a field poked (or, with
 * flip, xored), then the checksums recomputed unless the row says otherwise.
 */
struct bad_row {
	enum base base;
	unsigned index, off, width;
	uint64_t value;
	bool flip, reseal;
	uint64_t cap;
	int expect;
	const char *detail;
	void (*fn)(uint8_t *f, size_t *size, const struct layout *L);
};

static size_t first_lz4(const struct layout *L)
{
	for (uint64_t k = 0; k < L->chunks; k++)
		if (L->enc[k] == GMIG_ENC_LZ4)
			return L->rec[k];
	ck_abort();
	return 0;
}

/* Regions 0 and 1 of the manifest trade places. */
static void swap_regions(uint8_t *f, size_t *size, const struct layout *L)
{
	uint8_t t[REGION_REC], *a = f + L->regions_off, *b = a + REGION_REC;

	(void)size;
	memcpy(t, a, REGION_REC);
	memcpy(a, b, REGION_REC);
	memcpy(b, t, REGION_REC);
}

/* Records 0 and 1 trade places: each stays valid, only the file checksum can tell. */
static void swap_records(uint8_t *f, size_t *size, const struct layout *L)
{
	size_t a = L->rec[0], b = L->rec[1], end = L->rec[2];
	uint8_t *t = malloc(end - a);

	(void)size;
	ck_assert_ptr_nonnull(t);
	memcpy(t, f + b, end - b);
	memcpy(t + (end - b), f + a, b - a);
	memcpy(f + a, t, end - a);
	free(t);
}

/* Record 3 (a raw chunk of region 0) is cut out; the header and trailer counts follow. */
static void cut_record(uint8_t *f, size_t *size, const struct layout *L)
{
	size_t at = L->rec[3], n = REC + L->stored[3];

	ck_assert_uint_eq(L->enc[3], GMIG_ENC_RAW);
	memmove(f + at, f + at + n, *size - at - n);
	*size -= n;
	poke(f + 40, 8, L->chunks - 1);
	poke(f + *size - 16, 8, L->chunks - 1);
}

/* One byte more after the trailer (the buffer has room for it). */
static void append_byte(uint8_t *f, size_t *size, const struct layout *L)
{
	(void)L;
	f[(*size)++] = 0;
}

/* An LZ4 record that claims to store as many bytes as it decodes to. */
static void lz4_not_smaller(uint8_t *f, size_t *size, const struct layout *L)
{
	size_t r = first_lz4(L);

	(void)size;
	poke(f + r + 20, 4, le32(f + r + 16));
}

#define M_CLIENTS	GMIG_MANIFEST_MAX

static const struct bad_row bad_rows[] = {
	/* 1 */ { AT_FILE, 0, 3, 1, 'X', false, false, 0, -EINVAL, "bad magic" },
	/* 2 */ { AT_FILE, 0, 8, 2, 2, false, true, 0, -EPROTONOSUPPORT, "format version 2 not supported" },
	/* 3 */ { AT_FILE, 0, 8, 2, 0, false, true, 0, -EPROTONOSUPPORT, "format version 0" },
	/* 4 */ { AT_FILE, 0, 10, 2, 1, false, true, 0, -EINVAL, "header: unknown flags" },
	/* 5 */ { AT_FILE, 0, 12, 4, 128, false, true, 0, -EINVAL, "size 128" },
	/* 6 */ { AT_FILE, 0, 16, 4, GMIG_GPUS_MAX + 1, false, true, 0, -EINVAL, "65 GPUs, over the limit" },
	/* 7 */ { AT_FILE, 0, 20, 4, M_CLIENTS + 1, false, true, 0, -EINVAL, "clients, over the limit" },
	/* 8 */ { AT_FILE, 0, 24, 4, GMIG_MANIFEST_MAX + 1, false, true, 0, -EINVAL, "regions, over the limit" },
	/* 9 */ { AT_FILE, 0, 28, 4, 1, false, true, 0, -EINVAL, "reserved" },
	/* 10 */ { AT_FILE, 0, 0, 0, 0, false, false, 1, -ENOSPC, "over the cap of 1" },
	/* 11 */ { AT_FILE, 0, 24, 4, GMIG_MANIFEST_MAX, false, true, 0, -ENODATA, "truncated at byte" },
	/* 12 */ { AT_REGION, 0, 24, 4, 3000, false, true, 0, -EINVAL, "region 0: invalid record" },
	/* 13 */ { AT_REGION, 0, 24, 4, 2048, false, true, 0, -EINVAL, "region 0: invalid record" },
	/* 14 */ { AT_REGION, 0, 16, 8, 0, false, true, 0, -EINVAL, "region 0: invalid record" },
	/* 15 */ { AT_REGION, 0, 16, 8, 9 * K4, false, true, 0, -EINVAL, "the header says" },
	/* 16 */ { AT_SPECIAL, .reseal = true, .expect = -EINVAL, .detail = "not in (pid, id) order",
		   .fn = swap_regions },
	/* 17 */ { AT_REGION, 2, 0, 4, 300, false, true, 0, -EINVAL, "pid 300 has no client" },
	/* 18 */ { AT_REGION, 1, 8, 8, 0x7f0000004000ull, false, true, 0, -EINVAL, "regions overlap" },
	/* 19 */ { AT_CLIENT, 0, 0, 4, 0, false, true, 0, -EINVAL, "client 0: pid 0" },
	/* 20 */ { AT_CLIENT, 1, 0, 4, 50, false, true, 0, -EINVAL, "out of order" },
	/* 21 */ { AT_CLIENT, 0, 4, 4, 9, false, true, 0, -EINVAL, "GPU 9 is not in the file" },
	/* 22 */ { AT_CLIENT, 0, 8, 4, 3, false, true, 0, -EINVAL, "unknown flags" },
	/* 23 */ { AT_CLIENT, 0, 12, 4, GMIG_BLOB_MAX + 1, false, true, 0, -EINVAL, "over the limit" },
	/* 24 */ { AT_CLIENT, 1, 12, 4, 10, false, true, 0, -EINVAL, "blob length without a blob" },
	/* 25 */ { AT_CLIENT, 1, 24, 1, 0x01, false, true, 0, -EINVAL, "invalid name" },
	/* 26 */ { AT_CLIENT, 1, 24 + 31, 1, 'z', false, true, 0, -EINVAL, "invalid name" },
	/* 27 */ { AT_GPU, 1, 0, 4, 0, false, true, 0, -EINVAL, "GPU 0 is listed twice" },
	/* 28 */ { AT_GPU, 0, GPU_REC - 1, 1, 0, false, true, 0, -EINVAL, "GPU record 0 is invalid" },
	/* 29 */ { AT_BLOB, 0, 7, 1, 0x10, true, true, 0, -EBADMSG, "client 0 (pid 100): blob checksum mismatch" },
	/* 30 */ { AT_RECORD, 0, 8, 8, 8 * K4, false, true, 0, -ERANGE, "outside region 0" },
	/* 31 */ { AT_RECORD, 0, 8, 8, UINT64_MAX - K4 + 1, false, true, 0, -ERANGE, "outside region 0" },
	/* 32 */ { AT_RECORD, 0, 8, 8, 100, false, true, 0, -EINVAL, "not on a chunk boundary" },
	/* 33 */ { AT_RECORD, 1, 8, 8, 0, false, true, 0, -EINVAL, "region 0: chunk 0 appears twice" },
	/* 34 */ { AT_SPECIAL, .reseal = true, .expect = -EINVAL,
		   .detail = "region 0 (pid 100, id 1): 1 chunks missing", .fn = cut_record },
	/* 35 */ { AT_RECORD, 0, 0, 4, 99, false, true, 0, -EINVAL, "region index 99 out of range" },
	/* 36 */ { AT_RECORD, 0, 6, 1, 1, false, true, 0, -EINVAL, "reserved bytes" },
	/* 37 */ { AT_RECORD, 0, 4, 1, 7, false, true, 0, -EINVAL, "encoding 7" },
	/* 38 */ { AT_RECORD, 0, 24, 1, 1, true, true, 0, -EBADMSG, "chunk 0 of region 0: checksum mismatch" },
	/* record 10 is region 1's short last chunk; it claims a whole one */
	/* 39 */ { AT_RECORD, 10, 16, 4, K4, false, true, 0, -EINVAL,
		   "chunk 2 of region 1: length 4096, the chunk has 2048" },
	/* 40 */ { AT_SPECIAL, .reseal = true, .expect = -EINVAL, .detail = "stored bytes",
		   .fn = lz4_not_smaller },
	/* 41 */ { AT_LZ4, 0, REC + 3, 1, 0x40, true, true, 0, -EBADMSG, "of region" },
	/* 42 */ { AT_FILE, 0, 40, 8, 16, false, true, 0, -EINVAL, "header counts 16 chunk records" },
	/* 43 */ { AT_FILE, 0, 40, 8, UINT64_MAX, false, true, 0, -EINVAL, "header counts" },
	/* 44 */ { AT_SPECIAL, .expect = -EBADMSG, .detail = "file checksum mismatch", .fn = swap_records },
	/* 45 */ { AT_TRAILER, 0, 8, 8, 16, false, false, 0, -EINVAL, "trailer counts 16" },
	/* 46 */ { AT_SPECIAL, .expect = -EINVAL, .detail = "data after the trailer", .fn = append_byte },
	/* 47 */ { AT_FILE, 0, 0, 0, 0, false, false, 0, 0, "" },
};

START_TEST(test_bad_rows)
{
	const struct bad_row *row = &bad_rows[_i];
	char detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image img, out;
	struct layout L;
	size_t size, at = 0;
	uint8_t *f, *g;

	small_image(&img);
	f = file_of(&img, &size);
	walk(f, size, &L);
	g = malloc(size + 1);
	ck_assert_ptr_nonnull(g);
	memcpy(g, f, size);
	switch (row->base) {
	case AT_FILE:
		break;
	case AT_GPU:
		at = HDR + row->index * GPU_REC;
		break;
	case AT_CLIENT:
		at = L.clients_off + row->index * CLIENT_REC;
		break;
	case AT_REGION:
		at = L.regions_off + row->index * REGION_REC;
		break;
	case AT_BLOB:
		at = L.blob_off[row->index];
		break;
	case AT_RECORD:
		at = L.rec[row->index];
		break;
	case AT_LZ4:
		at = first_lz4(&L);
		break;
	case AT_TRAILER:
		at = L.trailer;
		break;
	case AT_SPECIAL:
		row->fn(g, &size, &L);
		break;
	}
	if (row->base != AT_SPECIAL && row->flip)
		g[at + row->off] ^= (uint8_t)row->value;
	else if (row->base != AT_SPECIAL)
		poke(g + at + row->off, row->width, row->value);
	if (row->reseal)
		reseal(g, size);

	gmig_image_init(&out, row->cap);
	for (int known = 0; known < 2; known++) {
		int rc = read_mem(g, size, known, &out, detail);

		ck_assert_msg(rc == row->expect, "row %d (known %d): rc %d, expected %d: %s", _i + 1, known,
			      rc, row->expect, detail);
		ck_assert_msg(strstr(detail, row->detail), "row %d: detail \"%s\" lacks \"%s\"", _i + 1,
			      detail, row->detail);
		if (!rc)
			ck_assert(hu_image_equal(&img, &out));
		gmig_image_clear(&out);
	}
	free(g);
	free(f);
	gmig_image_clear(&img);
}
END_TEST

/* Paths that are not files to read or places to write. */
START_TEST(test_paths)
{
	char *dir = hu_tmpdir(), p[4096], detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image img, out;

	small_image(&img);
	gmig_image_init(&out, 0);
	/* 1: a directory */
	ck_assert_int_eq(gmig_checkpoint_read(dir, &out, detail, sizeof(detail)), -EISDIR);
	ck_assert_str_eq(detail, "is a directory");
	/* 2: no such file */
	snprintf(p, sizeof(p), "%s/none", dir);
	ck_assert_int_eq(gmig_checkpoint_read(p, &out, detail, sizeof(detail)), -ENOENT);
	/* 3: an empty file */
	write_bytes(p, "", 0);
	ck_assert_int_eq(gmig_checkpoint_read(p, &out, detail, sizeof(detail)), -ENODATA);
	ck_assert_str_eq(detail, "truncated at byte 0: the file is empty");
	/* 4: not a checkpoint */
	write_bytes(p, "#!/bin/sh\necho hello\n", 21);
	ck_assert_int_eq(gmig_checkpoint_read(p, &out, detail, sizeof(detail)), -EINVAL);
	ck_assert_str_eq(detail, "bad magic: not a gmig checkpoint");
	ck_assert(hu_image_empty(&out));
	unlink(p);
	/* 5: writing into a directory that does not exist */
	snprintf(p, sizeof(p), "%s/no/such/dir/x.ckpt", dir);
	ck_assert_int_eq(gmig_checkpoint_write(&img, p, NULL, NULL), -ENOENT);
	/* 6: writing under a regular file */
	snprintf(p, sizeof(p), "%s/file", dir);
	write_bytes(p, "x", 1);
	snprintf(p, sizeof(p), "%s/file/x.ckpt", dir);
	ck_assert_int_eq(gmig_checkpoint_write(&img, p, NULL, NULL), -ENOTDIR);
	/* 7: writing over a directory: the rename fails and the temporary file goes */
	snprintf(p, sizeof(p), "%s/sub", dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(gmig_checkpoint_write(&img, p, NULL, NULL), -EISDIR);
	ck_assert_int_eq(hu_count_entries(p), 0);
	ck_assert_int_eq(hu_count_entries(dir), 2);
	/* 8: a read-only directory (root writes anyway, so only as another user) */
	if (geteuid()) {
		ck_assert_int_eq(chmod(p, 0500), 0);
		snprintf(p, sizeof(p), "%s/sub/x.ckpt", dir);
		ck_assert_int_eq(gmig_checkpoint_write(&img, p, NULL, NULL), -EACCES);
		snprintf(p, sizeof(p), "%s/sub", dir);
		ck_assert_int_eq(chmod(p, 0700), 0);
	}
	/* 9: an image that is not complete is not written */
	{
		struct gmig_rec_region r = { 1, 0x1000000, K4, K4 };

		ck_assert_int_eq(hu_set_client(&img, 999, 0, "new", &r, 1), 0);
		snprintf(p, sizeof(p), "%s/incomplete.ckpt", dir);
		ck_assert_int_eq(gmig_checkpoint_write(&img, p, NULL, NULL), -EINVAL);
		ck_assert_int_eq(hu_count_entries(dir), 2);
	}
	/* 10: a relative path writes in the working directory */
	gmig_image_drop_client(&img, 999);
	{
		char cwd[4096];

		ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
		ck_assert_int_eq(chdir(dir), 0);
		ck_assert_int_eq(gmig_checkpoint_write(&img, "rel.ckpt", NULL, NULL), 0);
		ck_assert_int_eq(gmig_checkpoint_read("rel.ckpt", &out, detail, sizeof(detail)), 0);
		ck_assert(hu_image_equal(&img, &out));
		ck_assert_int_eq(chdir(cwd), 0);
	}
	gmig_image_clear(&out);
	gmig_image_clear(&img);
	hu_rmtree(dir);
	free(dir);
}
END_TEST

/* Each allocation and I/O step of a write fails once: the old file stays, nothing else is left. */
START_TEST(test_write_faults)
{
	char *dir = hu_tmpdir(), path[4096], detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image a, b, out;
	uint64_t seed = 77;
	unsigned points = 0, after_rename = 0;

	small_image(&a);
	gmig_image_init(&b, 0);
	hu_random_image(&b, &seed, 256 << 10);
	gmig_image_init(&out, 0);
	snprintf(path, sizeof(path), "%s/g.ckpt", dir);
	ck_assert_int_eq(gmig_checkpoint_write(&a, path, NULL, NULL), 0);
	for (unsigned n = 1;; n++) {
		int rc;

		gmig_fault_arm(n);
		rc = gmig_checkpoint_write(&b, path, NULL, NULL);
		if (!gmig_fault_fired()) {
			gmig_fault_arm(0);
			ck_assert_int_eq(rc, 0);
			break;
		}
		gmig_fault_arm(0);
		points++;
		ck_assert_msg(rc < 0, "fault %u fired but the write succeeded", n);
		ck_assert_int_eq(hu_count_entries(dir), 1);
		ck_assert_int_eq(gmig_checkpoint_read(path, &out, detail, sizeof(detail)), 0);
		/* Only the directory's sync (open, fsync) comes after the rename. */
		if (hu_image_equal(&b, &out))
			after_rename++;
		else
			ck_assert_msg(hu_image_equal(&a, &out), "fault %u: the old file changed", n);
	}
	ck_assert_uint_eq(after_rename, 2);
	ck_assert_int_eq(gmig_checkpoint_read(path, &out, detail, sizeof(detail)), 0);
	ck_assert(hu_image_equal(&b, &out));
	ck_assert_uint_gt(points, 10);
	gmig_image_clear(&out);
	gmig_image_clear(&a);
	gmig_image_clear(&b);
	hu_rmtree(dir);
	free(dir);
}
END_TEST

/* Each allocation and I/O step of a read fails once: an error and an empty image. */
START_TEST(test_read_faults)
{
	char *dir = hu_tmpdir(), path[4096], detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image a, out;
	unsigned points = 0;

	small_image(&a);
	gmig_image_init(&out, 0);
	snprintf(path, sizeof(path), "%s/g.ckpt", dir);
	ck_assert_int_eq(gmig_checkpoint_write(&a, path, NULL, NULL), 0);
	for (unsigned n = 1;; n++) {
		int rc;

		gmig_fault_arm(n);
		rc = gmig_checkpoint_read(path, &out, detail, sizeof(detail));
		if (!gmig_fault_fired()) {
			gmig_fault_arm(0);
			ck_assert_int_eq(rc, 0);
			break;
		}
		gmig_fault_arm(0);
		points++;
		ck_assert_msg(rc == -ENOMEM || rc == -EIO, "fault %u: rc %d (%s)", n, rc, detail);
		ck_assert(hu_image_empty(&out));
		ck_assert_str_ne(detail, "");
	}
	ck_assert(hu_image_equal(&a, &out));
	ck_assert_uint_gt(points, 20);
	gmig_image_clear(&out);
	gmig_image_clear(&a);
	hu_rmtree(dir);
	free(dir);
}
END_TEST

struct progress_log {
	unsigned calls;
	uint64_t last, total;
	int stop;
};

static int progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress_log *p = arg;

	ck_assert_uint_gt(done, p->last);
	p->calls++;
	p->last = done;
	p->total = total;
	return p->stop;
}

START_TEST(test_progress)
{
	struct gmig_rec_region r = { 1, 0x7f0000000000ull, 72u << 20, 4u << 20 };
	struct gmig_region_data d = { .pid = 1, .region = 1, .length = 4u << 20,
				      .encoding = GMIG_ENC_ZERO, .epoch = 1 };
	struct progress_log log = { 0 };
	char *dir = hu_tmpdir(), path[4096];
	struct gmig_image img;

	gmig_image_init(&img, 0);
	ck_assert_int_eq(hu_set_gpus(&img, 1), 0);
	ck_assert_int_eq(hu_set_client(&img, 1, 0, "big", &r, 1), 0);
	for (d.offset = 0; d.offset < r.size; d.offset += d.length)
		ck_assert_int_eq(gmig_image_apply(&img, &d, false), 0);
	snprintf(path, sizeof(path), "%s/p.ckpt", dir);
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, progress, &log), 0);
	ck_assert_uint_eq(log.calls, 2);
	ck_assert_uint_eq(log.last, r.size);
	ck_assert_uint_eq(log.total, r.size);

	/* A callback that says stop: its error comes back and no file is made. */
	log = (struct progress_log){ .stop = -ECANCELED };
	unlink(path);
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, progress, &log), -ECANCELED);
	ck_assert_uint_eq(log.calls, 1);
	ck_assert_int_eq(hu_count_entries(dir), 0);
	gmig_image_clear(&img);
	hu_rmtree(dir);
	free(dir);
}
END_TEST

/* The reader honours the image's cap, and an empty image round-trips. */
START_TEST(test_cap_and_empty)
{
	char detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image img, out;
	uint8_t *f;
	size_t size;

	small_image(&img);
	f = file_of(&img, &size);
	gmig_image_init(&out, img.bytes - 1);
	ck_assert_int_eq(read_mem(f, size, true, &out, detail), -ENOSPC);
	gmig_image_init(&out, img.bytes);
	ck_assert_int_eq(read_mem(f, size, true, &out, detail), 0);
	ck_assert_uint_eq(out.cap, img.bytes);
	ck_assert(hu_image_equal(&img, &out));
	/* A read replaces what the image held. */
	ck_assert_int_eq(read_mem(f, size, true, &out, detail), 0);
	ck_assert(hu_image_equal(&img, &out));
	free(f);
	gmig_image_clear(&img);
	gmig_image_clear(&out);

	gmig_image_init(&img, 0);
	f = file_of(&img, &size);
	ck_assert_uint_eq(size, HDR + TRAILER);
	ck_assert_int_eq(read_mem(f, size, false, &out, detail), 0);
	ck_assert(hu_image_empty(&out));
	free(f);
}
END_TEST

/* Images the reader would refuse are not written: each row breaks one rule by hand. */
START_TEST(test_write_refuses)
{
	char *dir = hu_tmpdir(), path[4096];
	struct gmig_image img;
	struct gmig_image_region t;
	uint8_t *blob;

	snprintf(path, sizeof(path), "%s/x.ckpt", dir);
	small_image(&img);
	/* 1: a blob length without a blob */
	blob = img.clients[0].blob;
	img.clients[0].blob = NULL;
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, NULL, NULL), -EINVAL);
	img.clients[0].blob = blob;
	/* 2: a blob over the limit */
	img.clients[0].blob_len = GMIG_BLOB_MAX + 1;
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, NULL, NULL), -EINVAL);
	img.clients[0].blob_len = 100;
	/* 3: regions out of (pid, id) order */
	t = img.regions[0];
	img.regions[0] = img.regions[1];
	img.regions[1] = t;
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, NULL, NULL), -EINVAL);
	img.regions[1] = img.regions[0];
	img.regions[0] = t;
	/* 4: a byte count that is not the regions' sum */
	img.bytes++;
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, NULL, NULL), -EINVAL);
	img.bytes--;
	/* 5: a name with a control character */
	img.clients[1].name[0] = '\n';
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, NULL, NULL), -EINVAL);
	img.clients[1].name[0] = 'b';
	/* 6: a client on a GPU the image does not list */
	img.clients[1].gpu = 7;
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, NULL, NULL), -EINVAL);
	img.clients[1].gpu = 1;
	/* 7: an unwritten chunk */
	img.regions[2].epochs[3] = 0;
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, NULL, NULL), -EINVAL);
	img.regions[2].epochs[3] = 1;
	ck_assert_int_eq(hu_count_entries(dir), 0);
	/* 8: all put back, it writes */
	ck_assert_int_eq(gmig_checkpoint_write(&img, path, NULL, NULL), 0);
	ck_assert_int_eq(hu_count_entries(dir), 1);
	gmig_image_clear(&img);
	hu_rmtree(dir);
	free(dir);
}
END_TEST

/*
 * A header that promises the largest manifest in a tiny file of known size is
 * refused before the manifest is allocated: the reader's second fault point
 * (after reading the header) would be that allocation, and it is never reached.
 */
START_TEST(test_hostile_counts_allocate_nothing)
{
	char detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image img, out;
	uint8_t *f;
	size_t size;

	small_image(&img);
	f = file_of(&img, &size);
	poke(f + 16, 4, GMIG_GPUS_MAX);
	poke(f + 20, 4, GMIG_MANIFEST_MAX);
	poke(f + 24, 4, GMIG_MANIFEST_MAX);
	reseal(f, size);
	gmig_image_init(&out, 0);
	gmig_fault_arm(2);
	ck_assert_int_eq(read_mem(f, size, true, &out, detail), -ENODATA);
	ck_assert(!gmig_fault_fired());
	gmig_fault_arm(0);
	/* Of unknown size, the same file is allocated for and found short. */
	gmig_fault_arm(2);
	ck_assert_int_eq(read_mem(f, size, false, &out, detail), -ENOMEM);
	ck_assert(gmig_fault_fired());
	gmig_fault_arm(0);
	free(f);
	gmig_image_clear(&img);
}
END_TEST

static Suite *checkpoint_suite(void)
{
	Suite *s = suite_create("checkpoint");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_format_fields);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_bit_flips);
	tcase_add_loop_test(tc, test_bad_rows, 0, sizeof(bad_rows) / sizeof(bad_rows[0]));
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_write_faults);
	tcase_add_test(tc, test_read_faults);
	tcase_add_test(tc, test_progress);
	tcase_add_test(tc, test_cap_and_empty);
	tcase_add_test(tc, test_hostile_counts_allocate_nothing);
	tcase_add_test(tc, test_write_refuses);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(checkpoint_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
