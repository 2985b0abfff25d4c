/* Check suite for the message catalogue: codecs, length rules and validators. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gmig/message.h"
#include "testutil.h"

static uint8_t frame_buf[GMIG_HDR_SIZE + GMIG_PAYLOAD_MAX];
static uint8_t frame_buf2[GMIG_HDR_SIZE + GMIG_PAYLOAD_MAX];
static uint8_t tail_buf[GMIG_PAYLOAD_MAX];
static uint8_t decoder_buf[GMIG_PAYLOAD_MAX];

/* Random printable text of up to max bytes. */
static void rand_str(char *s, size_t max, uint64_t *seed)
{
	size_t n = tu_below(seed, max + 1);

	for (size_t i = 0; i < n; i++)
		s[i] = (char)(0x20 + tu_below(seed, 0x5f));
	s[n] = 0;
}

/* Fills every field of a schema's struct with random, in-range values. */
static void rand_fields(const struct gmig_schema_info *s, void *obj, uint64_t *seed)
{
	for (unsigned i = 0; i < s->nfields; i++) {
		const struct gmig_field_info *f = &s->fields[i];
		uint8_t *p = (uint8_t *)obj + f->offset;

		switch (f->kind) {
		case GMIG_K_str16:
		case GMIG_K_str32:
		case GMIG_K_str64:
			rand_str((char *)p, f->wire, seed);
			break;
		default:
			tu_fill(p, f->wire, seed);
			break;
		}
	}
}

static void fix_extent(uint64_t *va, uint64_t *size, uint32_t *chunk, uint64_t *seed)
{
	*size = 1 + (*size >> 20);
	*va &= (1ull << 56) - 1;
	*chunk = GMIG_CHUNK_MIN << tu_below(seed, 11);
}

/* Builds a random record of a kind into out; returns its wire size. */
static int rand_record(const struct gmig_schema_info *r, uint8_t *out, uint64_t *seed)
{
	union {
		struct gmig_rec_gpu gpu;
		struct gmig_rec_region region;
		struct gmig_rec_gpu_map map;
		struct gmig_rec_manifest manifest;
		struct gmig_rec_phys phys;
	} u;

	memset(&u, 0, sizeof(u));
	rand_fields(r, &u, seed);
	if (!strcmp(r->name, "gpu")) {
		u.gpu.backend = (uint8_t)(1 + tu_below(seed, GMIG_BACKEND_MAX));
		return gmig_rec_put_gpu(out, &u.gpu);
	}
	if (!strcmp(r->name, "region")) {
		fix_extent(&u.region.va, &u.region.size, &u.region.chunk, seed);
		return gmig_rec_put_region(out, &u.region);
	}
	if (!strcmp(r->name, "gpu_map"))
		return gmig_rec_put_gpu_map(out, &u.map);
	if (!strcmp(r->name, "phys")) {
		u.phys.gpa >>= 1;
		u.phys.len = 1 + (u.phys.len >> 2);
		return gmig_rec_put_phys(out, &u.phys);
	}
	u.manifest.pid |= 1;
	fix_extent(&u.manifest.va, &u.manifest.size, &u.manifest.chunk, seed);
	return gmig_rec_put_manifest(out, &u.manifest);
}

/* A random valid message of the given type; its tail lives in tail_buf. */
static void rand_msg(const struct gmig_msg_info *info, struct gmig_msg *m, uint64_t *seed)
{
	const struct gmig_schema_info *s = info->schema;
	struct gmig_tail *tail = NULL;
	uint32_t n;

	memset(m, 0, sizeof(*m));
	m->type = info->type;
	rand_fields(s, &m->u, seed);

	if (s->tail != GMIG_TAIL_NONE)
		tail = (struct gmig_tail *)((uint8_t *)&m->u + s->struct_size - sizeof(struct gmig_tail));
	if (s->tail == GMIG_TAIL_BYTES) {
		/* Mostly short tails, sometimes the largest allowed. */
		n = tu_below(seed, 8) ? (uint32_t)tu_below(seed, 300) : s->tail_max;
		if (n > s->tail_max)
			n = s->tail_max;
		for (uint32_t i = 0; i < n; i++)
			tail_buf[i] = (uint8_t)(0x20 + tu_below(seed, 0x5f));
		*tail = (struct gmig_tail){ n ? tail_buf : NULL, n };
	} else if (s->tail == GMIG_TAIL_RECORDS) {
		uint32_t k = (uint32_t)tu_below(seed, 5), off = 0;

		for (uint32_t i = 0; i < k; i++) {
			int w = rand_record(s->record, tail_buf + off, seed);

			ck_assert_int_gt(w, 0);
			off += (uint32_t)w;
		}
		*tail = (struct gmig_tail){ off ? tail_buf : NULL, off };
	}

	switch (m->type) {
	case GMIG_MSG_HELLO:
		m->u.hello.min_version = 1;
		m->u.hello.max_version = (uint16_t)(1 + tu_below(seed, 4));
		m->u.hello.role = (uint8_t)(1 + tu_below(seed, GMIG_ROLE_MAX));
		if (tu_below(seed, 2)) {
			m->u.hello.session = 0;
			memset(m->u.hello.token, 0, sizeof(m->u.hello.token));
		}
		break;
	case GMIG_MSG_WELCOME:
		m->u.welcome.version = 1;
		m->u.welcome.role = (uint8_t)(1 + tu_below(seed, GMIG_ROLE_MAX));
		m->u.welcome.session |= 1;
		m->u.welcome.resumed = (uint8_t)tu_below(seed, 2);
		m->u.welcome.phase = (uint8_t)tu_below(seed, GMIG_PHASE_MAX + 1);
		if (!m->u.welcome.resumed)
			m->u.welcome.last_seq = 0;
		break;
	case GMIG_MSG_ERROR:
		m->u.error.code = -(int32_t)(1 + tu_below(seed, 130));
		break;
	case GMIG_MSG_BYE:
	case GMIG_MSG_ABORT:
	case GMIG_MSG_MIGRATED:
		m->u.code.code = -(int32_t)tu_below(seed, 130);
		break;
	case GMIG_MSG_HANDOVER:
		m->u.handover.session |= 1;
		break;
	case GMIG_MSG_INV_CLIENT:
		m->u.inv_client.count = 1 + (m->u.inv_client.count & 0xff);
		m->u.inv_client.index %= m->u.inv_client.count;
		m->u.inv_client.pid |= 1;
		break;
	case GMIG_MSG_ROUND_BEGIN:
		m->u.round_begin.round |= 1;
		m->u.round_begin.base %= m->u.round_begin.round;
		break;
	case GMIG_MSG_STAGING:
		m->u.staging.slots = 1 + (uint32_t)tu_below(seed, GMIG_SLOTS_MAX);
		m->u.staging.slot_size = GMIG_CHUNK_MIN << tu_below(seed, 11);
		break;
	case GMIG_MSG_STAGED:
		m->u.staged.length = 1 + (uint32_t)tu_below(seed, GMIG_DATA_MAX);
		m->u.staged.offset >>= 1;
		m->u.staged.encoding = tu_below(seed, 2) ? GMIG_ENC_RAW : GMIG_ENC_ZERO;
		if (m->u.staged.encoding == GMIG_ENC_ZERO)
			m->u.staged.slot = 0;
		break;
	case GMIG_MSG_REGION_DATA:
	case GMIG_MSG_RESTORE_DATA: {
		struct gmig_region_data *d = &m->u.region_data;

		d->offset >>= 1;
		d->encoding = (uint8_t)tu_below(seed, GMIG_ENC_MAX + 1);
		if (d->encoding == GMIG_ENC_ZERO) {
			d->tail = (struct gmig_tail){ NULL, 0 };
			d->length = 1 + (uint32_t)tu_below(seed, GMIG_DATA_MAX);
		} else {
			if (!d->tail.len)
				d->tail = (struct gmig_tail){ tail_buf, 1 };
			d->length = d->encoding == GMIG_ENC_RAW ? d->tail.len :
				    d->tail.len + (uint32_t)tu_below(seed, GMIG_DATA_MAX - d->tail.len + 1);
		}
		break;
	}
	case GMIG_MSG_FREEZE:
		m->u.freeze.deadline_ms |= 1;
		break;
	case GMIG_MSG_FROZEN:
		if (tu_below(seed, 4)) {
			m->u.frozen.count = 1 + (m->u.frozen.count & 0xff);
			m->u.frozen.index %= m->u.frozen.count;
			m->u.frozen.pid |= 1;
		} else {
			m->u.frozen = (struct gmig_frozen){ 0 };
		}
		break;
	case GMIG_MSG_ABORTED:
		m->u.rollback.phase = (uint8_t)tu_below(seed, GMIG_PHASE_MAX + 1);
		break;
	case GMIG_MSG_REGION_REF:
		m->u.region_ref.length = 1 + (uint32_t)tu_below(seed, GMIG_DATA_MAX);
		m->u.region_ref.offset >>= 1;
		m->u.region_ref.slot = (uint32_t)tu_below(seed, GMIG_SLOTS_MAX);
		break;
	case GMIG_MSG_STAGING_PHYS:
		m->u.staging_phys.pid |= 1;
		m->u.staging_phys.slots = 1 + (uint32_t)tu_below(seed, GMIG_SLOTS_MAX);
		m->u.staging_phys.slot_size = GMIG_CHUNK_MIN << tu_below(seed, 11);
		break;
	case GMIG_MSG_REF_DONE:
		m->u.ref_done.pid |= 1;
		m->u.ref_done.slot = (uint32_t)tu_below(seed, GMIG_SLOTS_MAX);
		break;
	case GMIG_MSG_RESTORE_REF:
		m->u.restore_ref.pid |= 1;
		m->u.restore_ref.length = 1 + (uint32_t)tu_below(seed, GMIG_DATA_MAX);
		m->u.restore_ref.offset >>= 1;
		m->u.restore_ref.encoding = GMIG_ENC_RAW;
		m->u.restore_ref.slot = (uint32_t)tu_below(seed, 2 * GMIG_SLOTS_MAX);
		break;
	case GMIG_MSG_SLOT_LEND:
		m->u.slot_lend.pid |= 1;
		m->u.slot_lend.slot = (uint32_t)tu_below(seed, 2 * GMIG_SLOTS_MAX);
		break;
	default:
		break;
	}
}

static void assert_fields_equal(const struct gmig_schema_info *s, const void *a, const void *b)
{
	for (unsigned i = 0; i < s->nfields; i++) {
		const struct gmig_field_info *f = &s->fields[i];
		const uint8_t *pa = (const uint8_t *)a + f->offset, *pb = (const uint8_t *)b + f->offset;

		if (f->kind >= GMIG_K_str16)
			ck_assert_str_eq((const char *)pa, (const char *)pb);
		else
			ck_assert_msg(!memcmp(pa, pb, f->wire), "field %s differs", f->name);
	}
}

/* Encode, stream through a decoder at a random cut, decode, compare, re-encode. */
START_TEST(test_round_trip_random)
{
	size_t count;
	const struct gmig_msg_info *table = gmig_msg_table(&count);
	uint64_t seed = 0x5eed;

	for (int iter = 0; iter < 20000; iter++) {
		const struct gmig_msg_info *info = &table[tu_below(&seed, count)];
		struct gmig_hdr h = { .version = 1, .session = tu_rand(&seed), .seq = (uint64_t)iter };
		struct gmig_hdr h2 = h;
		struct gmig_decoder d;
		struct gmig_frame f;
		struct gmig_msg m, back;
		size_t used, cut;
		long n, n2;
		int rc;

		rand_msg(info, &m, &seed);
		n = gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m);
		ck_assert_msg(n > 0, "%s: encode %ld", info->name, n);

		gmig_decoder_init(&d, decoder_buf, sizeof(decoder_buf));
		cut = tu_below(&seed, (uint64_t)n + 1);
		rc = gmig_decoder_feed(&d, frame_buf, cut, &used, &f);
		ck_assert_int_eq(rc, cut == (size_t)n ? 1 : 0);
		if (!rc) {
			rc = gmig_decoder_feed(&d, frame_buf + cut, (size_t)n - cut, &used, &f);
			ck_assert_int_eq(rc, 1);
		}
		ck_assert_int_eq(gmig_msg_decode(&f, &back), 0);
		ck_assert_uint_eq(back.type, m.type);
		ck_assert_uint_eq(f.hdr.seq, (uint64_t)iter);
		assert_fields_equal(info->schema, &m.u, &back.u);

		/* Encoding is canonical: the decoded message encodes to the same bytes. */
		n2 = gmig_msg_encode(frame_buf2, sizeof(frame_buf2), &h2, &back);
		ck_assert_int_eq(n2, n);
		ck_assert(!memcmp(frame_buf, frame_buf2, (size_t)n));
	}
}
END_TEST

/* The head-only encoder plus the tail sent separately makes the same frame. */
START_TEST(test_encode_head_matches)
{
	static uint8_t data[70000];
	struct gmig_hdr h = { .version = 1, .session = 5, .seq = 6 };
	struct gmig_msg m = { .type = GMIG_MSG_REGION_DATA };
	long full, head;

	memset(data, 0xab, sizeof(data));
	m.u.region_data = (struct gmig_region_data){ .pid = 1, .region = 2, .offset = 0,
		.length = sizeof(data), .encoding = GMIG_ENC_RAW, .epoch = 3,
		.tail = { data, sizeof(data) } };
	full = gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m);
	head = gmig_msg_encode_head(frame_buf2, 128, &h, &m);
	ck_assert_int_eq(head, GMIG_HDR_SIZE + 25);
	memcpy(frame_buf2 + head, data, sizeof(data));
	ck_assert_int_eq(full, head + (long)sizeof(data));
	ck_assert(!memcmp(frame_buf, frame_buf2, (size_t)full));
}
END_TEST

/* Length rules, per type: one row per message, checked at the boundaries. */
START_TEST(test_length_rules)
{
	size_t count;
	const struct gmig_msg_info *t = gmig_msg_table(&count);

	for (size_t i = 0; i < count; i++) {
		const struct gmig_schema_info *s = t[i].schema;
		uint32_t f = s->fixed;

		if (f)
			ck_assert_msg(!gmig_msg_length_ok(t[i].type, f - 1), "%s short", t[i].name);
		switch (s->tail) {
		case GMIG_TAIL_NONE:
			ck_assert(gmig_msg_length_ok(t[i].type, f));
			ck_assert_msg(!gmig_msg_length_ok(t[i].type, f + 1), "%s long", t[i].name);
			break;
		case GMIG_TAIL_BYTES:
			ck_assert(gmig_msg_length_ok(t[i].type, f));
			ck_assert(gmig_msg_length_ok(t[i].type, f + s->tail_max));
			ck_assert(!gmig_msg_length_ok(t[i].type, f + s->tail_max + 1));
			break;
		case GMIG_TAIL_RECORDS:
			ck_assert(gmig_msg_length_ok(t[i].type, f + s->record->fixed));
			ck_assert(!gmig_msg_length_ok(t[i].type, f + s->record->fixed + 1));
			ck_assert(gmig_msg_length_ok(t[i].type, f + s->record->fixed * s->tail_max));
			ck_assert(!gmig_msg_length_ok(t[i].type, f + s->record->fixed * (s->tail_max + 1)));
			break;
		}
		ck_assert(!gmig_msg_length_ok(t[i].type, GMIG_PAYLOAD_MAX + 1));

		/* The tail accessor knows exactly the types that have a tail, and where it is. */
		struct gmig_msg m = { .type = t[i].type };
		struct gmig_tail *tail = gmig_msg_tail(&m);

		if (s->tail == GMIG_TAIL_NONE) {
			ck_assert_ptr_null(tail);
		} else {
			ck_assert_ptr_eq(tail, (struct gmig_tail *)((uint8_t *)&m.u + s->struct_size -
								     sizeof(struct gmig_tail)));
		}
	}
	ck_assert_ptr_null(gmig_msg_tail(&(struct gmig_msg){ .type = 0 }));
	ck_assert(!gmig_msg_length_ok(0, 0));
	ck_assert_str_eq(gmig_msg_name(0), "unknown");
	ck_assert_str_eq(gmig_msg_name(GMIG_MSG_RESTORE_DATA), "RESTORE_DATA");
	ck_assert_ptr_null(gmig_msg_lookup(0x0900));
}
END_TEST

/*
 * Payload bytes written over a valid message, resealed with a good checksum:
 * the decoder takes the frame, the message decoder must refuse it.
 */
struct payload_row {
	uint16_t type;
	unsigned off, width;
	uint64_t value;
	int expect;
};

static const struct payload_row payload_rows[] = {
	/* HELLO: min_version 0, min > max, role 0 and 6, new session with a token */
	/* 1 */ { GMIG_MSG_HELLO, 0, 2, 0, -EPROTO },
	/* 2 */ { GMIG_MSG_HELLO, 0, 2, 9, -EPROTO },
	/* 3 */ { GMIG_MSG_HELLO, 4, 1, 0, -EPROTO },
	/* 4 */ { GMIG_MSG_HELLO, 4, 1, GMIG_ROLE_MAX + 1, -EPROTO },
	/* 5 */ { GMIG_MSG_HELLO, 21, 1, 1, -EPROTO },
	/* HELLO name: a control character, a byte after the NUL padding */
	/* 6 */ { GMIG_MSG_HELLO, 37, 1, '\n', -EPROTO },
	/* 7 */ { GMIG_MSG_HELLO, 68, 1, 'x', -EPROTO },
	/* 8 */ { GMIG_MSG_HELLO, 37, 1, 0x7f, -EPROTO },
	/* WELCOME: session 0, resumed 2, phase past the last, last_seq on a new session */
	/* 9 */ { GMIG_MSG_WELCOME, 11, 8, 0, -EPROTO },
	/* 10 */ { GMIG_MSG_WELCOME, 35, 1, 2, -EPROTO },
	/* 11 */ { GMIG_MSG_WELCOME, 36, 1, GMIG_PHASE_MAX + 1, -EPROTO },
	/* 12 */ { GMIG_MSG_WELCOME, 37, 8, 5, -EPROTO },
	/* ERROR: code 0 or positive; text with a control character */
	/* 13 */ { GMIG_MSG_ERROR, 0, 4, 0, -EPROTO },
	/* 14 */ { GMIG_MSG_ERROR, 0, 4, 5, -EPROTO },
	/* 15 */ { GMIG_MSG_ERROR, 14, 1, '\r', -EPROTO },
	/* BYE with a positive code */
	/* 16 */ { GMIG_MSG_BYE, 0, 4, 1, -EPROTO },
	/* INV_CLIENT: index == count, pid 0 */
	/* 17 */ { GMIG_MSG_INV_CLIENT, 0, 4, 3, -EPROTO },
	/* 18 */ { GMIG_MSG_INV_CLIENT, 8, 4, 0, -EPROTO },
	/* INV_CLIENT region record: size 0, chunk not a power of two, chunk too small, va+size wraps */
	/* 19 */ { GMIG_MSG_INV_CLIENT, 48 + 12, 8, 0, -EPROTO },
	/* 20 */ { GMIG_MSG_INV_CLIENT, 48 + 20, 4, 65535, -EPROTO },
	/* 21 */ { GMIG_MSG_INV_CLIENT, 48 + 20, 4, 2048, -EPROTO },
	/* 22 */ { GMIG_MSG_INV_CLIENT, 48 + 4, 8, UINT64_MAX, -EPROTO },
	/* INV_GPUS record: backend 0 and past the last */
	/* 23 */ { GMIG_MSG_INV_GPUS, 4 + 112, 1, 0, -EPROTO },
	/* 24 */ { GMIG_MSG_INV_GPUS, 4 + 112, 1, GMIG_BACKEND_MAX + 1, -EPROTO },
	/* ROUND_BEGIN: round 0, base not before round */
	/* 25 */ { GMIG_MSG_ROUND_BEGIN, 0, 4, 0, -EPROTO },
	/* 26 */ { GMIG_MSG_ROUND_BEGIN, 4, 4, 1, -EPROTO },
	/* REGION_DATA: length 0, length != raw tail, unknown encoding, zero with a tail, offset wraps */
	/* 27 */ { GMIG_MSG_REGION_DATA, 16, 4, 0, -EPROTO },
	/* 28 */ { GMIG_MSG_REGION_DATA, 16, 4, 17, -EPROTO },
	/* 29 */ { GMIG_MSG_REGION_DATA, 20, 1, GMIG_ENC_MAX + 1, -EPROTO },
	/* 30 */ { GMIG_MSG_REGION_DATA, 20, 1, GMIG_ENC_ZERO, -EPROTO },
	/* 31 */ { GMIG_MSG_REGION_DATA, 8, 8, UINT64_MAX - 3, -EPROTO },
	/* 32 */ { GMIG_MSG_REGION_DATA, 16, 4, GMIG_DATA_MAX + 1, -EPROTO },
	/* FREEZE deadline 0; FROZEN count 0 with a pid; index past count */
	/* 33 */ { GMIG_MSG_FREEZE, 0, 4, 0, -EPROTO },
	/* 34 */ { GMIG_MSG_FROZEN, 4, 4, 0, -EPROTO },
	/* 35 */ { GMIG_MSG_FROZEN, 0, 4, 2, -EPROTO },
	/* RESTORE_BEGIN manifest record pid 0; ABORTED phase past the last */
	/* 36 */ { GMIG_MSG_RESTORE_BEGIN, 12, 4, 0, -EPROTO },
	/* 37 */ { GMIG_MSG_ABORTED, 0, 1, GMIG_PHASE_MAX + 1, -EPROTO },
	/* ABORT with a positive code */
	/* 38 */ { GMIG_MSG_ABORT, 0, 4, 7, -EPROTO },
	/* STAGING: no slots, too many, slot size not a power of two, too small */
	/* 39 */ { GMIG_MSG_STAGING, 0, 4, 0, -EPROTO },
	/* 40 */ { GMIG_MSG_STAGING, 0, 4, GMIG_SLOTS_MAX + 1, -EPROTO },
	/* 41 */ { GMIG_MSG_STAGING, 4, 4, 65537, -EPROTO },
	/* 42 */ { GMIG_MSG_STAGING, 4, 4, 2048, -EPROTO },
	/* STAGED: length 0, LZ4 on a client link, ZERO naming a slot, offset wraps */
	/* 43 */ { GMIG_MSG_STAGED, 12, 4, 0, -EPROTO },
	/* 44 */ { GMIG_MSG_STAGED, 16, 1, GMIG_ENC_LZ4, -EPROTO },
	/* 45 */ { GMIG_MSG_STAGED, 16, 1, GMIG_ENC_ZERO, -EPROTO },
	/* 46 */ { GMIG_MSG_STAGED, 4, 8, UINT64_MAX, -EPROTO },
	/* HANDOVER with session 0; IMAGE_BEGIN with a control character in its channel */
	/* 47 */ { GMIG_MSG_HANDOVER, 0, 8, 0, -EPROTO },
	/* 48 */ { GMIG_MSG_IMAGE_BEGIN, 40, 1, '\n', -EPROTO },
	/* 49 */ { GMIG_MSG_MIGRATED, 0, 4, 1, -EPROTO },
	/* REGION_REF: length 0, past GMIG_DATA_MAX, offset wraps, slot past GMIG_SLOTS_MAX */
	/* 50 */ { GMIG_MSG_REGION_REF, 16, 4, 0, -EPROTO },
	/* 51 */ { GMIG_MSG_REGION_REF, 16, 4, GMIG_DATA_MAX + 1, -EPROTO },
	/* 52 */ { GMIG_MSG_REGION_REF, 8, 8, UINT64_MAX - 3, -EPROTO },
	/* 53 */ { GMIG_MSG_REGION_REF, 24, 4, GMIG_SLOTS_MAX, -EPROTO },
	/* STAGING_PHYS: pid 0, no slots, slot size not a power of two, a range of 0 bytes,
	   a range that wraps */
	/* 54 */ { GMIG_MSG_STAGING_PHYS, 0, 4, 0, -EPROTO },
	/* 55 */ { GMIG_MSG_STAGING_PHYS, 4, 4, 0, -EPROTO },
	/* 56 */ { GMIG_MSG_STAGING_PHYS, 8, 4, 65537, -EPROTO },
	/* 57 */ { GMIG_MSG_STAGING_PHYS, 12 + 8, 8, 0, -EPROTO },
	/* 58 */ { GMIG_MSG_STAGING_PHYS, 12, 8, UINT64_MAX - 4095, -EPROTO },
	/* REF_DONE: pid 0, slot past GMIG_SLOTS_MAX */
	/* 59 */ { GMIG_MSG_REF_DONE, 0, 4, 0, -EPROTO },
	/* 60 */ { GMIG_MSG_REF_DONE, 4, 4, GMIG_SLOTS_MAX, -EPROTO },
	/* RESTORE_REF: pid 0, length 0, past GMIG_DATA_MAX, offset wraps, not RAW, slot past
	   2 x GMIG_SLOTS_MAX */
	/* 61 */ { GMIG_MSG_RESTORE_REF, 0, 4, 0, -EPROTO },
	/* 62 */ { GMIG_MSG_RESTORE_REF, 16, 4, 0, -EPROTO },
	/* 63 */ { GMIG_MSG_RESTORE_REF, 16, 4, GMIG_DATA_MAX + 1, -EPROTO },
	/* 64 */ { GMIG_MSG_RESTORE_REF, 8, 8, UINT64_MAX - 3, -EPROTO },
	/* 65 */ { GMIG_MSG_RESTORE_REF, 20, 1, GMIG_ENC_ZERO, -EPROTO },
	/* 66 */ { GMIG_MSG_RESTORE_REF, 25, 4, 2 * GMIG_SLOTS_MAX, -EPROTO },
	/* SLOT_LEND: pid 0, slot past 2 x GMIG_SLOTS_MAX */
	/* 67 */ { GMIG_MSG_SLOT_LEND, 0, 4, 0, -EPROTO },
	/* 68 */ { GMIG_MSG_SLOT_LEND, 4, 4, 2 * GMIG_SLOTS_MAX, -EPROTO },
};

/* One fixed valid message per row type, with one record or a 16-byte tail. */
static void valid_msg(uint16_t type, struct gmig_msg *m)
{
	static const char text[] = "sixteen bytes!!!";
	static uint8_t rec[256];
	struct gmig_rec_region region = { .id = 1, .va = 0x7f0000000000, .size = 1 << 20, .chunk = 65536 };
	struct gmig_rec_gpu gpu = { .index = 0, .vendor = 0x10de, .mem_bytes = 1ull << 34,
				    .pci = "0000:65:00.0", .model = "H200", .backend = GMIG_BACKEND_CUDA };
	struct gmig_rec_manifest man = { .pid = 9, .region = 1, .va = 4096, .size = 8192, .chunk = 4096 };

	memset(m, 0, sizeof(*m));
	m->type = type;
	switch (type) {
	case GMIG_MSG_HELLO:
		m->u.hello = (struct gmig_hello){ .min_version = 1, .max_version = 1,
			.role = GMIG_ROLE_AGENT, .name = "guest" };
		break;
	case GMIG_MSG_WELCOME:
		m->u.welcome = (struct gmig_welcome){ .version = 1, .role = GMIG_ROLE_HOST, .session = 77 };
		break;
	case GMIG_MSG_ERROR:
		m->u.error = (struct gmig_error){ .code = -EIO, .tail = { (const uint8_t *)text, 16 } };
		break;
	case GMIG_MSG_BYE:
		break;
	case GMIG_MSG_ABORT:
		m->u.abort = (struct gmig_abort){ .code = -ETIMEDOUT, .tail = { (const uint8_t *)text, 16 } };
		break;
	case GMIG_MSG_INV_CLIENT:
		ck_assert_int_eq(gmig_rec_put_region(rec, &region), GMIG_REC_region_SIZE);
		m->u.inv_client = (struct gmig_inv_client){ .index = 0, .count = 3, .pid = 100,
			.name = "train", .tail = { rec, GMIG_REC_region_SIZE } };
		break;
	case GMIG_MSG_INV_GPUS:
		ck_assert_int_eq(gmig_rec_put_gpu(rec, &gpu), GMIG_REC_gpu_SIZE);
		m->u.inv_gpus = (struct gmig_inv_gpus){ .clients = 1, .tail = { rec, GMIG_REC_gpu_SIZE } };
		break;
	case GMIG_MSG_ROUND_BEGIN:
		m->u.round_begin = (struct gmig_round_begin){ .round = 1 };
		break;
	case GMIG_MSG_STAGING:
		m->u.staging = (struct gmig_staging){ .slots = 4, .slot_size = 1 << 20 };
		break;
	case GMIG_MSG_STAGED:
		m->u.staged = (struct gmig_staged){ .region = 1, .offset = 65536, .length = 65536,
			.encoding = GMIG_ENC_RAW, .epoch = 2, .slot = 3 };
		break;
	case GMIG_MSG_REGION_DATA:
		m->u.region_data = (struct gmig_region_data){ .pid = 1, .region = 1, .offset = 0,
			.length = 16, .encoding = GMIG_ENC_RAW, .epoch = 1,
			.tail = { (const uint8_t *)text, 16 } };
		break;
	case GMIG_MSG_FREEZE:
		m->u.freeze.deadline_ms = 1000;
		break;
	case GMIG_MSG_FROZEN:
		m->u.frozen = (struct gmig_frozen){ .index = 0, .count = 1, .pid = 5 };
		break;
	case GMIG_MSG_RESTORE_BEGIN:
		ck_assert_int_eq(gmig_rec_put_manifest(rec, &man), GMIG_REC_manifest_SIZE);
		m->u.restore_begin = (struct gmig_restore_begin){ .clients = 1, .bytes = 8192,
			.tail = { rec, GMIG_REC_manifest_SIZE } };
		break;
	case GMIG_MSG_ABORTED:
		m->u.rollback.phase = GMIG_PHASE_FROZEN;
		break;
	case GMIG_MSG_HANDOVER:
		m->u.handover = (struct gmig_handover){ .session = 9, .rounds = 3 };
		break;
	case GMIG_MSG_IMAGE_BEGIN:
		m->u.image_begin = (struct gmig_image_begin){ .guest = "vm1", .bytes = 1 << 20,
			.tail = { (const uint8_t *)text, 16 } };
		break;
	case GMIG_MSG_MIGRATED:
		break;
	case GMIG_MSG_REGION_REF:
		m->u.region_ref = (struct gmig_region_ref){ .pid = 7, .region = 1, .offset = 65536,
			.length = 65536, .epoch = 2, .slot = 3 };
		break;
	case GMIG_MSG_RESTORE_REF:
		m->u.restore_ref = (struct gmig_restore_ref){ .pid = 7, .region = 1,
			.offset = 65536, .length = 65536, .encoding = GMIG_ENC_RAW, .epoch = 2,
			.slot = 11 };
		break;
	case GMIG_MSG_SLOT_LEND:
		m->u.slot_lend = (struct gmig_slot_lend){ .pid = 7, .slot = 11 };
		break;
	case GMIG_MSG_STAGING_PHYS: {
		struct gmig_rec_phys ph = { .gpa = 0x10000000, .len = 8 << 20 };

		ck_assert_int_eq(gmig_rec_put_phys(rec, &ph), GMIG_REC_phys_SIZE);
		m->u.staging_phys = (struct gmig_staging_phys){ .pid = 7, .slots = 4,
			.slot_size = 1 << 20, .tail = { rec, GMIG_REC_phys_SIZE } };
		break;
	}
	case GMIG_MSG_REF_DONE:
		m->u.ref_done = (struct gmig_ref_done){ .pid = 7, .slot = 3 };
		break;
	default:
		ck_abort_msg("no valid message for type %#x", type);
	}
}

START_TEST(test_payload_rows)
{
	const struct payload_row *r = &payload_rows[_i];
	struct gmig_hdr h = { .version = 1 };
	struct gmig_decoder d;
	struct gmig_frame f;
	struct gmig_msg m;
	size_t used;
	long n;

	valid_msg(r->type, &m);
	n = gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m);
	ck_assert_int_gt(n, 0);
	/* The unmodified frame decodes. */
	gmig_decoder_init(&d, decoder_buf, sizeof(decoder_buf));
	ck_assert_int_eq(gmig_decoder_feed(&d, frame_buf, (size_t)n, &used, &f), 1);
	ck_assert_int_eq(gmig_msg_decode(&f, &m), 0);

	ck_assert_uint_le(r->off + r->width, h.len);
	for (unsigned i = 0; i < r->width; i++)
		frame_buf[GMIG_HDR_SIZE + r->off + i] = (uint8_t)(r->value >> (8 * i));
	gmig_hdr_write(frame_buf, &h, frame_buf + GMIG_HDR_SIZE, h.len, NULL, 0);

	gmig_decoder_init(&d, decoder_buf, sizeof(decoder_buf));
	ck_assert_int_eq(gmig_decoder_feed(&d, frame_buf, (size_t)n, &used, &f), 1);
	ck_assert_msg(gmig_msg_decode(&f, &m) == r->expect, "row %d", _i + 1);
}
END_TEST

/* Invalid messages are refused by the encoder too: nothing invalid is ever sent. */
START_TEST(test_encoder_refuses)
{
	static const uint8_t data[32];
	struct gmig_hdr h = { .version = 1 };
	struct gmig_msg m;
	uint8_t small[GMIG_HDR_SIZE + 8];

	/* 1: unknown type */
	m = (struct gmig_msg){ .type = 0 };
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	/* 2: version 0 and 3: flags set */
	valid_msg(GMIG_MSG_HELLO, &m);
	h.version = 0;
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	h = (struct gmig_hdr){ .version = 1, .flags = 1 };
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	h.flags = 0;
	/* 4: a name with no room for its NUL */
	memset(m.u.hello.name, 'a', sizeof(m.u.hello.name));
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	/* 5: a name with a control character */
	strcpy(m.u.hello.name, "bad\tname");
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	/* 6: a semantic error (role 0) */
	valid_msg(GMIG_MSG_HELLO, &m);
	m.u.hello.role = 0;
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	/* 7: buffer too small */
	valid_msg(GMIG_MSG_HELLO, &m);
	ck_assert_int_eq(gmig_msg_encode(small, sizeof(small), &h, &m), -EMSGSIZE);
	/* 8: tail over the type's maximum */
	valid_msg(GMIG_MSG_ERROR, &m);
	m.u.error.tail = (struct gmig_tail){ tail_buf, GMIG_TEXT_MAX + 1 };
	memset(tail_buf, 'e', GMIG_TEXT_MAX + 1);
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EMSGSIZE);
	/* 9: records tail not a whole number of records */
	valid_msg(GMIG_MSG_INV_GPUS, &m);
	m.u.inv_gpus.tail.len -= 1;
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	/* 10: a tail length without a pointer */
	valid_msg(GMIG_MSG_REGION_DATA, &m);
	m.u.region_data.tail.ptr = NULL;
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	/* 11: raw data whose length disagrees with the tail */
	valid_msg(GMIG_MSG_REGION_DATA, &m);
	m.u.region_data.tail = (struct gmig_tail){ data, sizeof(data) };
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
	/* 12: an invalid record in a valid message */
	valid_msg(GMIG_MSG_INV_GPUS, &m);
	memset((uint8_t *)m.u.inv_gpus.tail.ptr + GMIG_REC_gpu_SIZE - 1, 0, 1);
	ck_assert_int_eq(gmig_msg_encode(frame_buf, sizeof(frame_buf), &h, &m), -EINVAL);
}
END_TEST

START_TEST(test_records)
{
	static uint8_t out[GMIG_REC_gpu_SIZE];
	struct gmig_rec_gpu in = { .index = 3, .vendor = 0x10de, .device = 0x2335,
				   .mem_bytes = 150ull << 30, .pci = "0000:19:00.0",
				   .model = "NVIDIA H200", .backend = GMIG_BACKEND_CUDA }, back;
	struct gmig_tail t = { out, sizeof(out) };

	memset(in.uuid, 0x42, sizeof(in.uuid));
	ck_assert_int_eq(gmig_rec_put_gpu(out, &in), GMIG_REC_gpu_SIZE);
	ck_assert_uint_eq(gmig_rec_count(&t, GMIG_REC_gpu_SIZE), 1);
	gmig_rec_get_gpu(&t, 0, &back);
	ck_assert_uint_eq(back.mem_bytes, in.mem_bytes);
	ck_assert_str_eq(back.model, "NVIDIA H200");
	ck_assert_str_eq(back.pci, "0000:19:00.0");
	ck_assert(!memcmp(back.uuid, in.uuid, sizeof(in.uuid)));
	in.backend = 0;
	ck_assert_int_eq(gmig_rec_put_gpu(out, &in), -EINVAL);
}
END_TEST

START_TEST(test_enum_names)
{
	ck_assert_str_eq(gmig_role_name(GMIG_ROLE_AGENT), "AGENT");
	ck_assert_str_eq(gmig_role_name(0), "?");
	ck_assert_str_eq(gmig_role_name(99), "?");
	ck_assert_str_eq(gmig_phase_name(GMIG_PHASE_RESTORED), "RESTORED");
	ck_assert_str_eq(gmig_encoding_name(GMIG_ENC_LZ4), "LZ4");
	ck_assert_str_eq(gmig_backend_name(GMIG_BACKEND_SIM), "SIM");
	ck_assert_int_eq(GMIG_PHASE_MAX, GMIG_PHASE_RESTORED);
	ck_assert_int_eq(GMIG_ROLE_MAX, GMIG_ROLE_CTL);
}
END_TEST

static Suite *message_suite(void)
{
	Suite *s = suite_create("message");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_round_trip_random);
	tcase_add_test(tc, test_encode_head_matches);
	tcase_add_test(tc, test_length_rules);
	tcase_add_loop_test(tc, test_payload_rows, 0, sizeof(payload_rows) / sizeof(payload_rows[0]));
	tcase_add_test(tc, test_encoder_refuses);
	tcase_add_test(tc, test_records);
	tcase_add_test(tc, test_enum_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(message_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
