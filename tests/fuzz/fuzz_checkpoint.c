/*
 * libFuzzer target for the checkpoint reader: the input is a checkpoint file,
 * read from memory as it is and then again with every checksum recomputed, so
 * that mutations get past the checksums into the manifest and chunk parsers.
 * A file that reads must write back, and that file must read to an image that
 * writes the very same bytes (the writer is deterministic).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <xxhash.h>

#include "checkpoint.h"

#define FUZZ_CAP	(64u << 20)	/* image bytes a fuzzed file may make the reader allocate */
#define SEAL_MAX	(1u << 20)

static uint8_t sealed[SEAL_MAX];
static uint8_t decoded[GMIG_CHUNK_MAX];
static const uint8_t zeros[GMIG_CHUNK_MAX];

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The hash a chunk record should carry, or false when its data cannot be decoded. */
static bool chunk_hash(uint8_t enc, const uint8_t *data, uint32_t len, uint32_t stored, uint64_t *h)
{
	if (len > GMIG_CHUNK_MAX)
		return false;
	switch (enc) {
	case GMIG_ENC_RAW:
		*h = XXH3_64bits(data, stored);
		return true;
	case GMIG_ENC_ZERO:
		*h = XXH3_64bits(zeros, len);
		return true;
	case GMIG_ENC_LZ4:
		if (LZ4_decompress_safe((const char *)data, (char *)decoded, (int)stored, (int)len) != (int)len)
			return false;
		*h = XXH3_64bits(decoded, len);
		return true;
	}
	return false;
}

/* Recomputes blob, chunk, manifest, header and file checksums in place, trusting the counts. */
static void reseal(uint8_t *p, size_t n)
{
	uint64_t gpus, clients, regions, mlen, pos, chunks;

	if (n < 64)
		return;
	gpus = le32(p + 16);
	clients = le32(p + 20);
	regions = le32(p + 24);
	mlen = gpus * GMIG_REC_gpu_SIZE + clients * 56 + regions * GMIG_REC_manifest_SIZE;
	if (mlen > n - 64) {
		put64(p + 56, XXH3_64bits(p, 56));
		return;
	}
	pos = 64 + mlen;
	for (uint64_t i = 0; i < clients; i++) {
		uint8_t *c = p + 64 + gpus * GMIG_REC_gpu_SIZE + i * 56;
		uint32_t len = le32(c + 12);

		if (!(le32(c + 8) & 1))
			continue;
		if (len > n - pos)
			break;
		put64(c + 16, XXH3_64bits(p + pos, len));
		pos += len;
	}
	put64(p + 48, XXH3_64bits(p + 64, mlen));
	put64(p + 56, XXH3_64bits(p, 56));
	chunks = le64(p + 40);
	for (uint64_t k = 0; k < chunks && n - pos >= 32; k++) {
		uint8_t *r = p + pos;
		uint32_t stored = le32(r + 20);
		uint64_t h;

		if (stored > n - pos - 32)
			return;
		if (chunk_hash(r[4], r + 32, le32(r + 16), stored, &h))
			put64(r + 24, h);
		pos += 32 + stored;
	}
	if (n - pos >= 24)
		put64(p + pos + 16, XXH3_64bits(p, pos));
}

static int read_buf(const uint8_t *data, size_t size, struct gmig_image *img)
{
	char detail[GMIG_CKPT_DETAIL_MAX];
	FILE *f;
	int rc;

	if (!size)
		return -1;
	f = fmemopen((void *)data, size, "rb");
	if (!f)
		abort();
	rc = gmig_checkpoint_read_file(f, size, img, detail, sizeof(detail));
	fclose(f);
	/* A failed read leaves nothing behind, and always says why. */
	if (rc && (img->nregions || img->nclients || img->ngpus || img->bytes || !detail[0]))
		abort();
	return rc;
}

static char *write_buf(const struct gmig_image *img, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f || gmig_checkpoint_write_file(img, f, NULL, NULL) || fclose(f))
		abort();
	return buf;
}

/* What was read writes back, reads again, and writes the same bytes. */
static void round_trip(const struct gmig_image *img)
{
	struct gmig_image again;
	size_t len1, len2;
	char *one = write_buf(img, &len1), *two;

	gmig_image_init(&again, FUZZ_CAP);
	if (read_buf((const uint8_t *)one, len1, &again))
		abort();
	two = write_buf(&again, &len2);
	if (len1 != len2 || memcmp(one, two, len1))
		abort();
	free(one);
	free(two);
	gmig_image_clear(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmig_image img;

	gmig_image_init(&img, FUZZ_CAP);
	if (!read_buf(data, size, &img))
		round_trip(&img);
	if (size <= SEAL_MAX) {
		memcpy(sealed, data, size);
		reseal(sealed, size);
		if (memcmp(sealed, data, size) && !read_buf(sealed, size, &img))
			round_trip(&img);
	}
	gmig_image_clear(&img);
	return 0;
}
