/* The gmig frame header and its incremental, validating stream decoder. */
#include <errno.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

#include "gmig/frame.h"
#include "gmig/message.h"
#include "wire.h"

#define OFF_MAGIC	0
#define OFF_VERSION	4
#define OFF_FLAGS	5
#define OFF_TYPE	6
#define OFF_LEN		8
#define OFF_RESERVED	12
#define OFF_SESSION	16
#define OFF_SEQ		24
#define OFF_CHECKSUM	32

_Static_assert(OFF_CHECKSUM + 8 == GMIG_HDR_SIZE, "header layout");

static uint64_t frame_checksum(const uint8_t *hdr, const void *p1, size_t n1,
			       const void *p2, size_t n2)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, OFF_CHECKSUM);
	if (n1)
		XXH3_64bits_update(&st, p1, n1);
	if (n2)
		XXH3_64bits_update(&st, p2, n2);
	return XXH3_64bits_digest(&st);
}

void gmig_hdr_write(uint8_t out[GMIG_HDR_SIZE], struct gmig_hdr *hdr,
		    const void *p1, size_t n1, const void *p2, size_t n2)
{
	put_le32(out + OFF_MAGIC, GMIG_MAGIC);
	out[OFF_VERSION] = hdr->version;
	out[OFF_FLAGS] = hdr->flags;
	put_le16(out + OFF_TYPE, hdr->type);
	put_le32(out + OFF_LEN, hdr->len);
	put_le32(out + OFF_RESERVED, 0);
	put_le64(out + OFF_SESSION, hdr->session);
	put_le64(out + OFF_SEQ, hdr->seq);
	hdr->checksum = frame_checksum(out, p1, n1, p2, n2);
	put_le64(out + OFF_CHECKSUM, hdr->checksum);
}

void gmig_decoder_init(struct gmig_decoder *dec, void *buf, uint32_t cap)
{
	memset(dec, 0, sizeof(*dec));
	dec->buf = buf;
	dec->cap = cap < GMIG_PAYLOAD_MAX ? cap : GMIG_PAYLOAD_MAX;
	dec->min_version = GMIG_VERSION_MIN;
	dec->max_version = GMIG_VERSION_MAX;
}

void gmig_decoder_set_versions(struct gmig_decoder *dec, uint8_t min, uint8_t max)
{
	dec->min_version = min;
	dec->max_version = max;
}

void gmig_decoder_reset(struct gmig_decoder *dec)
{
	dec->have = 0;
	dec->error = 0;
	dec->ready = 0;
}

/* Checks a complete header, in the order the errors are documented. */
static int parse_header(struct gmig_decoder *dec)
{
	const uint8_t *r = dec->raw;
	struct gmig_hdr *h = &dec->hdr;

	if (get_le32(r + OFF_MAGIC) != GMIG_MAGIC)
		return -EILSEQ;
	h->version = r[OFF_VERSION];
	h->flags = r[OFF_FLAGS];
	h->type = get_le16(r + OFF_TYPE);
	h->len = get_le32(r + OFF_LEN);
	h->session = get_le64(r + OFF_SESSION);
	h->seq = get_le64(r + OFF_SEQ);
	h->checksum = get_le64(r + OFF_CHECKSUM);

	if (h->version < dec->min_version || h->version > dec->max_version)
		return -EPROTONOSUPPORT;
	if (h->flags || get_le32(r + OFF_RESERVED))
		return -EPROTO;
	if (!gmig_msg_lookup(h->type))
		return -ENOMSG;
	if (h->len > dec->cap)
		return -EMSGSIZE;
	if (!gmig_msg_length_ok(h->type, h->len))
		return -ERANGE;
	return 0;
}

int gmig_decoder_feed(struct gmig_decoder *dec, const void *data, size_t n,
		      size_t *used, struct gmig_frame *frame)
{
	const uint8_t *in = data;
	size_t take, off = 0;
	int err;

	*used = 0;
	if (dec->error)
		return dec->error;
	if (dec->ready) {
		dec->ready = 0;
		dec->have = 0;
	}

	if (dec->have < GMIG_HDR_SIZE) {
		take = GMIG_HDR_SIZE - dec->have;
		if (take > n)
			take = n;
		memcpy(dec->raw + dec->have, in, take);
		dec->have += (uint32_t)take;
		off = take;
		if (dec->have < GMIG_HDR_SIZE) {
			*used = off;
			return 0;
		}
		err = parse_header(dec);
		if (err) {
			*used = off;
			return dec->error = err;
		}
	}

	take = GMIG_HDR_SIZE + (size_t)dec->hdr.len - dec->have;
	if (take > n - off)
		take = n - off;
	if (take)
		memcpy(dec->buf + (dec->have - GMIG_HDR_SIZE), in + off, take);
	dec->have += (uint32_t)take;
	off += take;
	*used = off;
	if (dec->have < GMIG_HDR_SIZE + dec->hdr.len)
		return 0;

	if (frame_checksum(dec->raw, dec->buf, dec->hdr.len, NULL, 0) != dec->hdr.checksum)
		return dec->error = -EBADMSG;
	frame->hdr = dec->hdr;
	frame->payload = dec->buf;
	dec->ready = 1;
	return 1;
}

const char *gmig_proto_strerror(int err)
{
	switch (err) {
	case 0:			return "success";
	case -EILSEQ:		return "bad magic: not a gmig frame";
	case -EPROTONOSUPPORT:	return "unsupported protocol version";
	case -EPROTO:		return "reserved bits set or a field out of range";
	case -ENOMSG:		return "unknown message type";
	case -EMSGSIZE:		return "payload length over the maximum";
	case -ERANGE:		return "payload length wrong for the message type";
	case -EBADMSG:		return "checksum mismatch";
	case -EINVAL:		return "invalid message";
	default:		return "not a protocol error";
	}
}
