/* Generic encoder, decoder and validators for every message of the catalogue. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "gmig/message.h"
#include "wire.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Semantic validators; fields are already decoded and their strings checked. */
static int check_none(const void *msg)
{
	(void)msg;
	return 0;
}

static bool text_ok(const struct gmig_tail *t)
{
	for (uint32_t i = 0; i < t->len; i++)
		if (t->ptr[i] < 0x20 || t->ptr[i] == 0x7f)
			return false;
	return true;
}

static bool token_zero(const uint8_t *token)
{
	for (int i = 0; i < GMIG_TOKEN_SIZE; i++)
		if (token[i])
			return false;
	return true;
}

static int check_hello(const void *msg)
{
	const struct gmig_hello *m = msg;

	if (!m->min_version || m->min_version > m->max_version)
		return -EPROTO;
	if (m->role < 1 || m->role > GMIG_ROLE_MAX)
		return -EPROTO;
	if (!m->session && !token_zero(m->token))
		return -EPROTO;
	return 0;
}

static int check_welcome(const void *msg)
{
	const struct gmig_welcome *m = msg;

	if (!m->version || m->role < 1 || m->role > GMIG_ROLE_MAX || !m->session)
		return -EPROTO;
	if (m->resumed > 1 || m->phase > GMIG_PHASE_MAX)
		return -EPROTO;
	if (!m->resumed && m->last_seq)
		return -EPROTO;
	return 0;
}

static int check_error(const void *msg)
{
	const struct gmig_error *m = msg;

	return m->code < 0 && text_ok(&m->tail) ? 0 : -EPROTO;
}

static int check_abort(const void *msg)
{
	const struct gmig_abort *m = msg;

	return m->code <= 0 && text_ok(&m->tail) ? 0 : -EPROTO;
}

static int check_code(const void *msg)
{
	const struct gmig_code *m = msg;

	return m->code <= 0 ? 0 : -EPROTO;
}

static int check_index(const void *msg)
{
	const struct gmig_inv_client *m = msg;

	return m->index < m->count && m->pid ? 0 : -EPROTO;
}

static int check_round_begin(const void *msg)
{
	const struct gmig_round_begin *m = msg;

	return m->round && m->base < m->round ? 0 : -EPROTO;
}

static bool pow2_between(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v >= lo && v <= hi && !(v & (v - 1));
}

static int check_staging(const void *msg)
{
	const struct gmig_staging *m = msg;

	if (!m->slots || m->slots > GMIG_SLOTS_MAX)
		return -EPROTO;
	return pow2_between(m->slot_size, GMIG_CHUNK_MIN, GMIG_DATA_MAX) ? 0 : -EPROTO;
}

static int check_staged(const void *msg)
{
	const struct gmig_staged *m = msg;

	if (!m->length || m->length > GMIG_DATA_MAX || m->offset > UINT64_MAX - m->length)
		return -EPROTO;
	if (m->encoding == GMIG_ENC_ZERO)
		return m->slot ? -EPROTO : 0;
	return m->encoding == GMIG_ENC_RAW ? 0 : -EPROTO;
}

static int check_region_ref(const void *msg)
{
	const struct gmig_region_ref *m = msg;

	if (!m->length || m->length > GMIG_DATA_MAX || m->offset > UINT64_MAX - m->length)
		return -EPROTO;
	return m->slot < GMIG_SLOTS_MAX ? 0 : -EPROTO;
}

static int check_staging_phys(const void *msg)
{
	const struct gmig_staging_phys *m = msg;

	if (!m->pid || !m->slots || m->slots > GMIG_SLOTS_MAX)
		return -EPROTO;
	return pow2_between(m->slot_size, GMIG_CHUNK_MIN, GMIG_DATA_MAX) ? 0 : -EPROTO;
}

static int check_ref_done(const void *msg)
{
	const struct gmig_ref_done *m = msg;

	return m->pid && m->slot < GMIG_SLOTS_MAX ? 0 : -EPROTO;
}

/* Agent-to-client slots are numbered after the client's own: from slots to 2 x slots - 1. */
static int check_restore_ref(const void *msg)
{
	const struct gmig_restore_ref *m = msg;

	if (!m->length || m->length > GMIG_DATA_MAX || m->offset > UINT64_MAX - m->length)
		return -EPROTO;
	if (m->encoding != GMIG_ENC_RAW)
		return -EPROTO;
	return m->pid && m->slot < 2 * GMIG_SLOTS_MAX ? 0 : -EPROTO;
}

static int check_slot_lend(const void *msg)
{
	const struct gmig_slot_lend *m = msg;

	return m->pid && m->slot < 2 * GMIG_SLOTS_MAX ? 0 : -EPROTO;
}

static int check_region_data(const void *msg)
{
	const struct gmig_region_data *m = msg;

	if (!m->length || m->length > GMIG_DATA_MAX)
		return -EPROTO;
	if (m->offset > UINT64_MAX - m->length)
		return -EPROTO;
	switch (m->encoding) {
	case GMIG_ENC_RAW:
		return m->tail.len == m->length ? 0 : -EPROTO;
	case GMIG_ENC_ZERO:
		return m->tail.len == 0 ? 0 : -EPROTO;
	case GMIG_ENC_LZ4:
		return m->tail.len && m->tail.len <= m->length ? 0 : -EPROTO;
	default:
		return -EPROTO;
	}
}

static int check_freeze(const void *msg)
{
	const struct gmig_freeze *m = msg;

	return m->deadline_ms ? 0 : -EPROTO;
}

static int check_frozen(const void *msg)
{
	const struct gmig_frozen *m = msg;

	if (!m->count)
		return !m->index && !m->pid && !m->tail.len ? 0 : -EPROTO;
	return m->index < m->count && m->pid ? 0 : -EPROTO;
}

static int check_rollback(const void *msg)
{
	const struct gmig_rollback *m = msg;

	return m->phase <= GMIG_PHASE_MAX ? 0 : -EPROTO;
}

static int check_image_begin(const void *msg)
{
	const struct gmig_image_begin *m = msg;

	return text_ok(&m->tail) ? 0 : -EPROTO;
}

static int check_handover(const void *msg)
{
	const struct gmig_handover *m = msg;

	return m->session ? 0 : -EPROTO;
}

static int check_gpu(const void *rec)
{
	const struct gmig_rec_gpu *r = rec;

	return r->backend >= 1 && r->backend <= GMIG_BACKEND_MAX ? 0 : -EPROTO;
}

static int check_extent(uint64_t va, uint64_t size, uint32_t chunk)
{
	if (!size || va > UINT64_MAX - size)
		return -EPROTO;
	return pow2_between(chunk, GMIG_CHUNK_MIN, GMIG_CHUNK_MAX) ? 0 : -EPROTO;
}

static int check_region(const void *rec)
{
	const struct gmig_rec_region *r = rec;

	return check_extent(r->va, r->size, r->chunk);
}

static int check_phys(const void *rec)
{
	const struct gmig_rec_phys *r = rec;

	return r->len && r->gpa <= UINT64_MAX - r->len ? 0 : -EPROTO;
}

static int check_manifest(const void *rec)
{
	const struct gmig_rec_manifest *r = rec;

	return r->pid ? check_extent(r->va, r->size, r->chunk) : -EPROTO;
}

/* Field tables, one per schema and record, generated from the catalogue. */
#define FIELD(st, kind, name, doc)						\
	{ #name, GMIG_K_##kind, offsetof(st, name), GMIG_WIRE_##kind, doc },
#define WIRE(st, kind, name, doc) + GMIG_WIRE_##kind

#define SCHEMA_FIELDS(name, fields, tail, rec, max, tname, check)		\
	static const struct gmig_field_info name##_fields[] = {			\
		fields(FIELD, struct gmig_##name) };
GMIG_SCHEMAS(SCHEMA_FIELDS)

#define RECORD_FIELDS(name, fields, check)					\
	static const struct gmig_field_info rec_##name##_fields[] = {		\
		fields(FIELD, struct gmig_rec_##name) };
GMIG_RECORDS(RECORD_FIELDS)

#define REC_INDEX(name, fields, check) REC_##name,
enum { REC_none, GMIG_RECORDS(REC_INDEX) N_RECORDS };

static const struct gmig_schema_info records[N_RECORDS] = {
#define RECORD_INFO(name, fields, chk)						\
	[REC_##name] = { #name, rec_##name##_fields, ARRAY_SIZE(rec_##name##_fields), \
			 0 fields(WIRE, ~), sizeof(struct gmig_rec_##name),	\
			 GMIG_TAIL_NONE, NULL, 0, "", chk },
	GMIG_RECORDS(RECORD_INFO)
};

#define TAIL_OFFSET_NONE(name)		0
#define TAIL_OFFSET_BYTES(name)		offsetof(struct gmig_##name, tail)
#define TAIL_OFFSET_RECORDS(name)	offsetof(struct gmig_##name, tail)
static const size_t tail_offsets[] = {
#define SCHEMA_TAIL(name, fields, tail, rec, max, tname, check) TAIL_OFFSET_##tail(name),
	GMIG_SCHEMAS(SCHEMA_TAIL)
};

#define SCH_INDEX(name, fields, tail, rec, max, tname, check) SCH_##name,
enum { GMIG_SCHEMAS(SCH_INDEX) N_SCHEMAS };

static const struct gmig_schema_info schemas[N_SCHEMAS] = {
#define SCHEMA_INFO(name, fields, tail, rec, max, tname, chk)			\
	[SCH_##name] = { #name, name##_fields, ARRAY_SIZE(name##_fields),	\
			 0 fields(WIRE, ~), sizeof(struct gmig_##name),		\
			 GMIG_TAIL_##tail, REC_##rec ? &records[REC_##rec] : NULL, \
			 max, tname, chk },
	GMIG_SCHEMAS(SCHEMA_INFO)
};

/* Every message must fit the frame maximum, tail at its largest included. */
#define TAIL_MAX_NONE(max, rec)		0
#define TAIL_MAX_BYTES(max, rec)	(uint64_t)(max)
#define TAIL_MAX_RECORDS(max, rec)	(uint64_t)(max) * GMIG_REC_##rec##_SIZE
#define SCHEMA_FITS(name, fields, tail, rec, max, tname, check)		\
	_Static_assert(0 fields(WIRE, ~) + TAIL_MAX_##tail(max, rec) <= GMIG_PAYLOAD_MAX, \
		       #name " exceeds GMIG_PAYLOAD_MAX");
GMIG_SCHEMAS(SCHEMA_FITS)

#define MSG_INDEX(name, type, family, schema, doc) MSG_##name,
enum { GMIG_MESSAGES(MSG_INDEX) N_MESSAGES };

static const struct gmig_msg_info messages[N_MESSAGES] = {
#define MSG_INFO(name, type, family, schema, doc)				\
	[MSG_##name] = { type, #name, #family, &schemas[SCH_##schema], doc },
	GMIG_MESSAGES(MSG_INFO)
};

const struct gmig_msg_info *gmig_msg_lookup(uint16_t type)
{
	switch (type) {
#define MSG_CASE(name, type, family, schema, doc) case type: return &messages[MSG_##name];
	GMIG_MESSAGES(MSG_CASE)
	default:
		return NULL;
	}
}

const struct gmig_msg_info *gmig_msg_table(size_t *count)
{
	*count = N_MESSAGES;
	return messages;
}

const struct gmig_schema_info *gmig_record_table(size_t *count)
{
	*count = N_RECORDS - 1;
	return records + 1;
}

const char *gmig_msg_name(uint16_t type)
{
	const struct gmig_msg_info *info = gmig_msg_lookup(type);

	return info ? info->name : "unknown";
}

bool gmig_msg_length_ok(uint16_t type, uint32_t len)
{
	const struct gmig_msg_info *info = gmig_msg_lookup(type);
	const struct gmig_schema_info *s;
	uint32_t extra;

	if (!info || len > GMIG_PAYLOAD_MAX)
		return false;
	s = info->schema;
	if (len < s->fixed)
		return false;
	extra = len - s->fixed;
	switch (s->tail) {
	case GMIG_TAIL_NONE:
		return extra == 0;
	case GMIG_TAIL_BYTES:
		return extra <= s->tail_max;
	case GMIG_TAIL_RECORDS:
		return extra % s->record->fixed == 0 && extra / s->record->fixed <= s->tail_max;
	}
	return false;
}

static bool str_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Writes the fields of obj; -EINVAL for text too long or not printable. */
static int put_fields(uint8_t *out, const struct gmig_schema_info *s, const void *obj)
{
	for (uint16_t i = 0; i < s->nfields; i++) {
		const struct gmig_field_info *f = &s->fields[i];
		const uint8_t *src = (const uint8_t *)obj + f->offset;
		uint16_t v16;
		uint32_t v32;
		uint64_t v64;
		size_t n;

		switch (f->kind) {
		case GMIG_K_u8:
			*out = *src;
			break;
		case GMIG_K_u16:
			memcpy(&v16, src, 2);
			put_le16(out, v16);
			break;
		case GMIG_K_u32:
		case GMIG_K_i32:
			memcpy(&v32, src, 4);
			put_le32(out, v32);
			break;
		case GMIG_K_u64:
			memcpy(&v64, src, 8);
			put_le64(out, v64);
			break;
		case GMIG_K_uuid:
		case GMIG_K_token:
		case GMIG_K_mac:
			memcpy(out, src, f->wire);
			break;
		case GMIG_K_str16:
		case GMIG_K_str32:
		case GMIG_K_str64:
			n = strnlen((const char *)src, f->wire + 1u);
			if (n > f->wire || !str_ok((const char *)src, n))
				return -EINVAL;
			memcpy(out, src, n);
			memset(out + n, 0, f->wire - n);
			break;
		}
		out += f->wire;
	}
	return 0;
}

/* Reads the fields into obj; -EPROTO for text that is not NUL-padded printable. */
static int get_fields(const uint8_t *in, const struct gmig_schema_info *s, void *obj)
{
	for (uint16_t i = 0; i < s->nfields; i++) {
		const struct gmig_field_info *f = &s->fields[i];
		uint8_t *dst = (uint8_t *)obj + f->offset;
		uint16_t v16;
		uint32_t v32;
		uint64_t v64;
		size_t n;

		switch (f->kind) {
		case GMIG_K_u8:
			*dst = *in;
			break;
		case GMIG_K_u16:
			v16 = get_le16(in);
			memcpy(dst, &v16, 2);
			break;
		case GMIG_K_u32:
		case GMIG_K_i32:
			v32 = get_le32(in);
			memcpy(dst, &v32, 4);
			break;
		case GMIG_K_u64:
			v64 = get_le64(in);
			memcpy(dst, &v64, 8);
			break;
		case GMIG_K_uuid:
		case GMIG_K_token:
		case GMIG_K_mac:
			memcpy(dst, in, f->wire);
			break;
		case GMIG_K_str16:
		case GMIG_K_str32:
		case GMIG_K_str64:
			memcpy(dst, in, f->wire);
			dst[f->wire] = 0;
			n = strnlen((const char *)dst, f->wire);
			if (!str_ok((const char *)dst, n))
				return -EPROTO;
			for (size_t k = n; k < f->wire; k++)
				if (in[k])
					return -EPROTO;
			break;
		}
		in += f->wire;
	}
	return 0;
}

/* The largest record struct, for validating records one by one. */
union any_record {
#define RECORD_MEMBER(name, fields, check) struct gmig_rec_##name name;
	GMIG_RECORDS(RECORD_MEMBER)
};

static int check_records(const struct gmig_schema_info *rec, const struct gmig_tail *t)
{
	union any_record r;

	for (uint32_t off = 0; off < t->len; off += rec->fixed) {
		if (get_fields(t->ptr + off, rec, &r) || rec->check(&r))
			return -EPROTO;
	}
	return 0;
}

static const struct gmig_tail *msg_tail(const struct gmig_msg_info *info, const struct gmig_msg *msg)
{
	const struct gmig_schema_info *s = info->schema;

	if (s->tail == GMIG_TAIL_NONE)
		return NULL;
	return (const struct gmig_tail *)((const uint8_t *)&msg->u + tail_offsets[s - schemas]);
}

int gmig_msg_decode(const struct gmig_frame *frame, struct gmig_msg *msg)
{
	const struct gmig_msg_info *info = gmig_msg_lookup(frame->hdr.type);
	const struct gmig_schema_info *s;
	struct gmig_tail *tail;

	if (!info)
		return -ENOMSG;
	if (!gmig_msg_length_ok(frame->hdr.type, frame->hdr.len))
		return -ERANGE;
	s = info->schema;
	memset(msg, 0, sizeof(*msg));
	msg->type = frame->hdr.type;
	if (get_fields(frame->payload, s, &msg->u))
		return -EPROTO;
	tail = (struct gmig_tail *)msg_tail(info, msg);
	if (tail) {
		tail->len = frame->hdr.len - s->fixed;
		tail->ptr = tail->len ? frame->payload + s->fixed : NULL;
		if (s->tail == GMIG_TAIL_RECORDS && check_records(s->record, tail))
			return -EPROTO;
	}
	return s->check(&msg->u);
}

long gmig_msg_encode_head(void *buf, size_t cap, struct gmig_hdr *hdr, const struct gmig_msg *msg)
{
	const struct gmig_msg_info *info = gmig_msg_lookup(msg->type);
	const struct gmig_tail *tail;
	const struct gmig_schema_info *s;
	uint8_t *out = buf;
	uint32_t tlen;

	if (!info || hdr->flags || hdr->version < GMIG_VERSION_MIN || hdr->version > GMIG_VERSION_MAX)
		return -EINVAL;
	s = info->schema;
	tail = msg_tail(info, msg);
	tlen = tail ? tail->len : 0;
	if (tlen && !tail->ptr)
		return -EINVAL;
	if (s->tail == GMIG_TAIL_RECORDS && tlen % s->record->fixed)
		return -EINVAL;
	if (!gmig_msg_length_ok(msg->type, s->fixed + tlen))
		return -EMSGSIZE;
	if (cap < (size_t)GMIG_HDR_SIZE + s->fixed)
		return -EMSGSIZE;
	if (put_fields(out + GMIG_HDR_SIZE, s, &msg->u) || s->check(&msg->u))
		return -EINVAL;
	if (s->tail == GMIG_TAIL_RECORDS && check_records(s->record, tail))
		return -EINVAL;

	hdr->type = msg->type;
	hdr->len = s->fixed + tlen;
	gmig_hdr_write(out, hdr, out + GMIG_HDR_SIZE, s->fixed, tail ? tail->ptr : NULL, tlen);
	return GMIG_HDR_SIZE + s->fixed;
}

long gmig_msg_encode(void *buf, size_t cap, struct gmig_hdr *hdr, const struct gmig_msg *msg)
{
	const struct gmig_msg_info *info = gmig_msg_lookup(msg->type);
	const struct gmig_tail *tail;
	long head;

	if (!info)
		return -EINVAL;
	tail = msg_tail(info, msg);
	if (tail && cap < (size_t)GMIG_HDR_SIZE + info->schema->fixed + tail->len)
		return -EMSGSIZE;
	head = gmig_msg_encode_head(buf, cap, hdr, msg);
	if (head < 0 || !tail || !tail->len)
		return head;
	memcpy((uint8_t *)buf + head, tail->ptr, tail->len);
	return head + tail->len;
}

struct gmig_tail *gmig_msg_tail(const struct gmig_msg *msg)
{
	const struct gmig_msg_info *info = gmig_msg_lookup(msg->type);

	return info ? (struct gmig_tail *)msg_tail(info, msg) : NULL;
}

uint32_t gmig_rec_count(const struct gmig_tail *tail, uint32_t rec_size)
{
	return tail->len / rec_size;
}

#define RECORD_API(name, fields, chk)						\
	void gmig_rec_get_##name(const struct gmig_tail *tail, uint32_t i,	\
				 struct gmig_rec_##name *rec)			\
	{									\
		const struct gmig_schema_info *s = &records[REC_##name];	\
		get_fields(tail->ptr + (size_t)i * s->fixed, s, rec);		\
	}									\
	int gmig_rec_put_##name(uint8_t *out, const struct gmig_rec_##name *rec) \
	{									\
		const struct gmig_schema_info *s = &records[REC_##name];	\
		if (put_fields(out, s, rec) || s->check(rec))			\
			return -EINVAL;						\
		return s->fixed;						\
	}
GMIG_RECORDS(RECORD_API)

#define ENUM_NAME(name, value, doc) [value] = #name,
static const char *const role_names[] = { GMIG_ROLES(ENUM_NAME) };
static const char *const phase_names[] = { GMIG_PHASES(ENUM_NAME) };
static const char *const encoding_names[] = { GMIG_ENCODINGS(ENUM_NAME) };
static const char *const backend_names[] = { GMIG_BACKENDS(ENUM_NAME) };

static const char *enum_name(const char *const *names, size_t n, unsigned v)
{
	return v < n && names[v] ? names[v] : "?";
}

const char *gmig_role_name(unsigned role)
{
	return enum_name(role_names, ARRAY_SIZE(role_names), role);
}

const char *gmig_phase_name(unsigned phase)
{
	return enum_name(phase_names, ARRAY_SIZE(phase_names), phase);
}

const char *gmig_encoding_name(unsigned encoding)
{
	return enum_name(encoding_names, ARRAY_SIZE(encoding_names), encoding);
}

const char *gmig_backend_name(unsigned backend)
{
	return enum_name(backend_names, ARRAY_SIZE(backend_names), backend);
}
