/*
 * libFuzzer target for the frame decoder and the message decoder: the input
 * is a byte stream fed in pieces; every frame that decodes must re-encode to
 * exactly the bytes it came from (the encoding is canonical).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gmig/message.h"

static uint8_t payload[GMIG_PAYLOAD_MAX];
static uint8_t again[GMIG_HDR_SIZE + GMIG_PAYLOAD_MAX];

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
	piece = (size_t)data[0] * 7 + 1;
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
