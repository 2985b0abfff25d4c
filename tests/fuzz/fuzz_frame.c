/*
 * libFuzzer target for the frame decoder and the message decoder: the input
 * is a byte stream fed in pieces; every frame that decodes must re-encode to
 * exactly the bytes it came from (the encoding is canonical). When the first
 * byte has its top bit set, the checksums are recomputed first, so that
 * mutated payloads get past the checksum and into the message decoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gmig/message.h"

static uint8_t payload[GMIG_PAYLOAD_MAX];
static uint8_t again[GMIG_HDR_SIZE + GMIG_PAYLOAD_MAX];
static uint8_t sealed[1 << 20];

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Rewrites each frame's checksum in place, trusting its length field. */
static void reseal(uint8_t *p, size_t n)
{
	while (n >= GMIG_HDR_SIZE) {
		struct gmig_hdr h = { .version = p[4], .flags = p[5],
				      .type = (uint16_t)(p[6] | p[7] << 8), .len = le32(p + 8),
				      .session = le64(p + 16), .seq = le64(p + 24) };
		size_t len = h.len < n - GMIG_HDR_SIZE ? h.len : n - GMIG_HDR_SIZE;

		gmig_hdr_write(p, &h, p + GMIG_HDR_SIZE, len, NULL, 0);
		p += GMIG_HDR_SIZE + len;
		n -= GMIG_HDR_SIZE + len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmig_decoder dec;
	struct gmig_frame f;
	struct gmig_msg m;
	size_t off = 1, start = 1, used, piece;
	int rc;

	if (!size)
		return 0;
	/* The first byte sets how the stream is cut, as a socket might. */
	piece = (size_t)(data[0] & 0x7f) * 7 + 1;
	if (data[0] & 0x80 && size <= sizeof(sealed)) {
		memcpy(sealed, data, size);
		reseal(sealed + 1, size - 1);
		data = sealed;
	}
	gmig_decoder_init(&dec, payload, sizeof(payload));
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece;

		rc = gmig_decoder_feed(&dec, data + off, n, &used, &f);
		off += used;
		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		if (gmig_msg_decode(&f, &m) == 0) {
			struct gmig_hdr h = { .version = f.hdr.version, .session = f.hdr.session,
					      .seq = f.hdr.seq };
			long len = gmig_msg_encode(again, sizeof(again), &h, &m);

			if (len != (long)(off - start) || memcmp(again, data + start, (size_t)len))
				abort();
		}
		start = off;
	}
	return 0;
}
