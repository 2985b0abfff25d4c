/* gmig messages: structs, enums and codecs generated from the catalogue. */
#ifndef GMIG_MESSAGE_H
#define GMIG_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/catalogue.h"
#include "gmig/frame.h"

#define GMIG_DECL_u8(n)		uint8_t n
#define GMIG_DECL_u16(n)	uint16_t n
#define GMIG_DECL_u32(n)	uint32_t n
#define GMIG_DECL_u64(n)	uint64_t n
#define GMIG_DECL_i32(n)	int32_t n
#define GMIG_DECL_uuid(n)	uint8_t n[GMIG_UUID_SIZE]
#define GMIG_DECL_token(n)	uint8_t n[GMIG_TOKEN_SIZE]
#define GMIG_DECL_mac(n)	uint8_t n[GMIG_MAC_SIZE]
#define GMIG_DECL_str16(n)	char n[16 + 1]
#define GMIG_DECL_str32(n)	char n[32 + 1]
#define GMIG_DECL_str64(n)	char n[64 + 1]

#define GMIG_WIRE_u8	1
#define GMIG_WIRE_u16	2
#define GMIG_WIRE_u32	4
#define GMIG_WIRE_u64	8
#define GMIG_WIRE_i32	4
#define GMIG_WIRE_uuid	GMIG_UUID_SIZE
#define GMIG_WIRE_token	GMIG_TOKEN_SIZE
#define GMIG_WIRE_mac	GMIG_MAC_SIZE
#define GMIG_WIRE_str16	16
#define GMIG_WIRE_str32	32
#define GMIG_WIRE_str64	64

enum gmig_kind {
	GMIG_K_u8, GMIG_K_u16, GMIG_K_u32, GMIG_K_u64, GMIG_K_i32,
	GMIG_K_uuid, GMIG_K_token, GMIG_K_mac, GMIG_K_str16, GMIG_K_str32, GMIG_K_str64,
};

enum gmig_tail_kind { GMIG_TAIL_NONE, GMIG_TAIL_BYTES, GMIG_TAIL_RECORDS };

#define GMIG__ROLE(name, value, doc)	GMIG_ROLE_##name = value,
#define GMIG__PHASE(name, value, doc)	GMIG_PHASE_##name = value,
#define GMIG__ENC(name, value, doc)	GMIG_ENC_##name = value,
#define GMIG__BACKEND(name, value, doc)	GMIG_BACKEND_##name = value,
#define GMIG__CAP(name, value, doc)	GMIG_CAP_##name = value,
#define GMIG__COUNT(name, value, doc)	+ 1
enum gmig_role { GMIG_ROLES(GMIG__ROLE) GMIG_ROLE_MAX = 0 GMIG_ROLES(GMIG__COUNT) };
enum gmig_phase { GMIG_PHASES(GMIG__PHASE) GMIG_PHASE_MAX = -1 GMIG_PHASES(GMIG__COUNT) };
enum gmig_encoding { GMIG_ENCODINGS(GMIG__ENC) GMIG_ENC_MAX = -1 GMIG_ENCODINGS(GMIG__COUNT) };
enum gmig_backend { GMIG_BACKENDS(GMIG__BACKEND) GMIG_BACKEND_MAX = 0 GMIG_BACKENDS(GMIG__COUNT) };
enum gmig_cap { GMIG_CAPS(GMIG__CAP) };
#undef GMIG__ROLE
#undef GMIG__PHASE
#undef GMIG__ENC
#undef GMIG__BACKEND
#undef GMIG__CAP
#undef GMIG__COUNT

/* Message types. */
#define GMIG__TYPE(name, type, family, schema, doc) GMIG_MSG_##name = type,
enum gmig_type { GMIG_MESSAGES(GMIG__TYPE) };
#undef GMIG__TYPE

/*
 * A message's tail: raw wire bytes. On decode it points into the frame's
 * payload and lives as long as it; on encode it points at the caller's bytes.
 * Records are read with gmig_rec_get_*() and written with gmig_rec_put_*().
 */
struct gmig_tail {
	const uint8_t *ptr;
	uint32_t len;
};

#define GMIG__MEMBER(c, kind, name, doc) GMIG_DECL_##kind(name);
#define GMIG__TAIL_NONE
#define GMIG__TAIL_BYTES struct gmig_tail tail;
#define GMIG__TAIL_RECORDS struct gmig_tail tail;
#define GMIG__STRUCT(name, fields, tail, rec, max, tname, check)		\
	struct gmig_##name { fields(GMIG__MEMBER, ~) GMIG__TAIL_##tail };
GMIG_SCHEMAS(GMIG__STRUCT)
#undef GMIG__STRUCT

#define GMIG__WIRE(c, kind, name, doc) + GMIG_WIRE_##kind
#define GMIG__REC(name, fields, check)						\
	struct gmig_rec_##name { fields(GMIG__MEMBER, ~) };			\
	enum { GMIG_REC_##name##_SIZE = 0 fields(GMIG__WIRE, ~) };
GMIG_RECORDS(GMIG__REC)
#undef GMIG__REC
#undef GMIG__MEMBER
#undef GMIG__WIRE

/* One decoded or to-be-encoded message: type selects the union member. */
struct gmig_msg {
	uint16_t type;
	union {
#define GMIG__UNION(name, fields, tail, rec, max, tname, check) struct gmig_##name name;
		GMIG_SCHEMAS(GMIG__UNION)
#undef GMIG__UNION
	} u;
};

/* Describes the catalogue for generic code, the docs generator and tests. */
struct gmig_field_info {
	const char *name;
	enum gmig_kind kind;
	uint16_t offset;	/* in the C struct */
	uint16_t wire;		/* bytes on the wire */
	const char *doc;
};

struct gmig_schema_info {
	const char *name;
	const struct gmig_field_info *fields;
	uint16_t nfields;
	uint16_t fixed;		/* wire bytes of the fixed part */
	uint16_t struct_size;
	enum gmig_tail_kind tail;
	const struct gmig_schema_info *record;	/* RECORDS only */
	uint32_t tail_max;	/* bytes (BYTES) or records (RECORDS) */
	const char *tail_name;
	int (*check)(const void *msg);
};

struct gmig_msg_info {
	uint16_t type;
	const char *name;
	const char *family;
	const struct gmig_schema_info *schema;
	const char *doc;
};

/* The catalogue in type order; NULL for an unknown type (0 included). */
const struct gmig_msg_info *gmig_msg_lookup(uint16_t type);
const struct gmig_msg_info *gmig_msg_table(size_t *count);
const struct gmig_schema_info *gmig_record_table(size_t *count);
/* "HELLO", or "unknown" for a type not in the catalogue. */
const char *gmig_msg_name(uint16_t type);

/* Whether a payload length is legal for a type; false for unknown types. */
bool gmig_msg_length_ok(uint16_t type, uint32_t len);

/*
 * Decodes and validates a frame's payload into msg. Fields are copied; the
 * tail points into frame->payload. Returns 0, -ENOMSG for an unknown type,
 * -ERANGE for a length wrong for the type, -EPROTO for an invalid field.
 */
int gmig_msg_decode(const struct gmig_frame *frame, struct gmig_msg *msg);

/*
 * Encodes msg as a whole frame into buf: header, fixed part and tail.
 * hdr->type and hdr->len are set from msg; hdr->checksum is computed.
 * Returns the frame size, -EINVAL for an invalid message, -EMSGSIZE if buf
 * is too small or the payload over the maximum.
 */
long gmig_msg_encode(void *buf, size_t cap, struct gmig_hdr *hdr, const struct gmig_msg *msg);

/*
 * Like gmig_msg_encode but writes only the header and the fixed part; the
 * caller sends msg's tail right after them (it is covered by the checksum).
 * Returns the bytes written, or the same errors.
 */
long gmig_msg_encode_head(void *buf, size_t cap, struct gmig_hdr *hdr, const struct gmig_msg *msg);

/* The tail of msg (a pointer into msg, like strchr's), or NULL for a type without one. */
struct gmig_tail *gmig_msg_tail(const struct gmig_msg *msg);

/* Records: the number in a tail, and typed access to record i. */
uint32_t gmig_rec_count(const struct gmig_tail *tail, uint32_t rec_size);
#define GMIG__REC_API(name, fields, check)					\
	void gmig_rec_get_##name(const struct gmig_tail *tail, uint32_t i,	\
				 struct gmig_rec_##name *rec);			\
	int gmig_rec_put_##name(uint8_t *out, const struct gmig_rec_##name *rec);
GMIG_RECORDS(GMIG__REC_API)
#undef GMIG__REC_API

/* Names of enumeration values for logs; "?" when out of range. */
const char *gmig_role_name(unsigned role);
const char *gmig_phase_name(unsigned phase);
const char *gmig_encoding_name(unsigned encoding);
const char *gmig_backend_name(unsigned backend);

#endif
