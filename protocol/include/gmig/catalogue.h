/*
 * The gmig message catalogue, defined once: every message, its fields and its
 * length rule. Structs, codecs, validators, names and the tables of
 * docs/protocol.md are all generated from these lists; edit only here.
 */
#ifndef GMIG_CATALOGUE_H
#define GMIG_CATALOGUE_H

#include "gmig/limits.h"

/*
 * Field kinds and their wire sizes (all integers little-endian):
 *   u8 u16 u32 u64 i32 - integers
 *   uuid, token        - 16 opaque bytes
 *   mac                - 32 opaque bytes (nonces, HMAC-SHA256 values)
 *   str16 str32 str64  - text of at most N bytes, NUL-padded to N; no
 *                        control characters
 *
 * A field list is F(ctx, kind, name, doc) rows; ctx is passed through.
 */

/* Enumerations: E(NAME, value, doc). */
#define GMIG_ROLES(E)								\
	E(CLIENT, 1, "libgmig inside a GPU program, talking to its agent")	\
	E(AGENT, 2, "gmig-agent in the guest, talking to the host")		\
	E(HOST, 3, "gmigd, talking to a guest's agent")			\
	E(PEER, 4, "gmigd, talking to another host's gmigd")			\
	E(CTL, 5, "gmigctl, talking to its gmigd")

#define GMIG_PHASES(E)								\
	E(IDLE, 0, "no migration; programs run")				\
	E(PRECOPY, 1, "pre-copy rounds; programs run")				\
	E(FROZEN, 2, "every client at a safe point; no new GPU work")		\
	E(RELEASED, 3, "frozen, and no GPU is held")				\
	E(ATTACHED, 4, "frozen, attached to the target GPUs")			\
	E(RESTORED, 5, "frozen, device memory restored; thaw is next")

#define GMIG_ENCODINGS(E)							\
	E(RAW, 0, "the bytes as they are; tail length equals length")		\
	E(ZERO, 1, "all zero; empty tail")					\
	E(LZ4, 2, "an LZ4 block; tail no longer than length")

#define GMIG_BACKENDS(E)							\
	E(SIM, 1, "the simulated GPU, a stand-in where no GPU can be")		\
	E(CUDA, 2, "an NVIDIA GPU driven through the CUDA driver API")		\
	E(DRM, 3, "a DRM device seen by inventory only")

#define GMIG_CAPS(E)								\
	E(LZ4, 0x1, "the sender decodes LZ4 region data")			\
	E(SHM, 0x2, "bulk data may travel through shared staging memory (host: on a unix channel, fds ride with STAGING_PHYS)") \
	E(PHYS, 0x4, "staging has stable guest-physical addresses (gmig.ko)")

/* Records: fixed-size elements of a message's tail. */
#define GMIG_REC_GPU(F, c)							\
	F(c, u32, index, "GPU index as the sender numbers them")		\
	F(c, u16, vendor, "PCI vendor id (0x10de NVIDIA, 0 simulated)")	\
	F(c, u16, device, "PCI device id")					\
	F(c, u64, mem_bytes, "device memory size")				\
	F(c, uuid, uuid, "GPU UUID")						\
	F(c, str16, pci, "PCI address dddd:bb:dd.f, empty if none")		\
	F(c, str64, model, "model name")					\
	F(c, u8, backend, "backend, one of the backend values")

#define GMIG_REC_REGION(F, c)							\
	F(c, u32, id, "region id, unique within its client")			\
	F(c, u64, va, "device virtual address")				\
	F(c, u64, size, "bytes")						\
	F(c, u32, chunk, "fingerprint chunk size, a power of two")

#define GMIG_REC_GPU_MAP(F, c)							\
	F(c, u32, from, "source GPU index")					\
	F(c, u32, to, "target GPU index")					\
	F(c, uuid, uuid, "target GPU UUID")

#define GMIG_REC_MANIFEST(F, c)						\
	F(c, u32, pid, "client process id")					\
	F(c, u32, region, "region id")						\
	F(c, u64, va, "device virtual address")				\
	F(c, u64, size, "bytes")						\
	F(c, u32, chunk, "chunk size, a power of two")

#define GMIG_REC_PHYS(F, c)							\
	F(c, u64, gpa, "guest-physical address of a contiguous piece")		\
	F(c, u64, len, "its bytes; the pieces follow the staging in order")

/* Fixed parts of message payloads. */
#define GMIG_SCH_EMPTY(F, c)

#define GMIG_SCH_HELLO(F, c)							\
	F(c, u16, min_version, "lowest protocol version the sender speaks")	\
	F(c, u16, max_version, "highest protocol version the sender speaks")	\
	F(c, u8, role, "sender's role")					\
	F(c, u64, caps, "capability bits the sender offers")			\
	F(c, u64, session, "session to resume, 0 for a new session")		\
	F(c, token, token, "that session's resume token, zeros if new")	\
	F(c, str32, name, "sender's name for logs")

#define GMIG_SCH_WELCOME(F, c)							\
	F(c, u16, version, "agreed protocol version")				\
	F(c, u8, role, "sender's role")					\
	F(c, u64, caps, "capability bits both sides offer")			\
	F(c, u64, session, "session id, random, never 0")			\
	F(c, token, token, "resume token for a later reconnect")		\
	F(c, u8, resumed, "1 if an earlier session resumed, else 0")		\
	F(c, u8, phase, "phase of the session")				\
	F(c, u64, last_seq, "last sequence number received before the drop")

#define GMIG_SCH_NONCE(F, c)							\
	F(c, u64, nonce, "echoed unchanged")

#define GMIG_SCH_ERROR(F, c)							\
	F(c, i32, code, "negative errno")					\
	F(c, u16, ref_type, "type of the frame that failed, 0 if none")	\
	F(c, u64, ref_seq, "sequence number of that frame")

#define GMIG_SCH_CODE(F, c)							\
	F(c, i32, code, "0, or the negative errno that ends the session")

#define GMIG_SCH_INV_GPUS(F, c)							\
	F(c, u32, clients, "INV_CLIENT frames that follow")

#define GMIG_SCH_INV_CLIENT(F, c)						\
	F(c, u32, index, "this client's position, from 0")			\
	F(c, u32, count, "clients in this inventory")				\
	F(c, u32, pid, "process id in the guest")				\
	F(c, u32, gpu, "index of the GPU it runs on")				\
	F(c, str32, name, "program name")

#define GMIG_SCH_ROUND_BEGIN(F, c)						\
	F(c, u32, round, "round number, from 1")				\
	F(c, u32, base, "last round the receiver holds whole; 0: send all")

#define GMIG_SCH_REGION_DATA(F, c)						\
	F(c, u32, pid, "client process id")					\
	F(c, u32, region, "region id")						\
	F(c, u64, offset, "byte offset in the region")				\
	F(c, u32, length, "decoded bytes, 1 to GMIG_DATA_MAX")			\
	F(c, u8, encoding, "encoding of the tail")				\
	F(c, u32, epoch, "round in which the bytes were read")

#define GMIG_SCH_ROUND_END(F, c)						\
	F(c, u32, round, "round number")					\
	F(c, u64, chunks, "chunks fingerprinted")				\
	F(c, u64, dirty, "chunks changed since the last round")		\
	F(c, u64, zero, "changed chunks sent as zero markers")			\
	F(c, u64, bytes, "payload bytes sent")					\
	F(c, u64, usecs, "round duration in microseconds")

#define GMIG_SCH_STAGING(F, c)							\
	F(c, u32, slots, "slots in each direction")				\
	F(c, u32, slot_size, "bytes per slot, a power of two")

#define GMIG_SCH_STAGED(F, c)							\
	F(c, u32, region, "region id")						\
	F(c, u64, offset, "byte offset in the region")				\
	F(c, u32, length, "bytes, at most the slot size unless ZERO")		\
	F(c, u8, encoding, "RAW (bytes in the slot) or ZERO (no slot)")	\
	F(c, u32, epoch, "round in which the bytes were read")			\
	F(c, u32, slot, "slot holding the bytes; 0 for ZERO")

#define GMIG_SCH_REGION_REF(F, c)						\
	F(c, u32, pid, "client process id")					\
	F(c, u32, region, "region id")						\
	F(c, u64, offset, "byte offset in the region")				\
	F(c, u32, length, "bytes in the slot, 1 to the slot size")		\
	F(c, u32, epoch, "round in which the bytes were read")			\
	F(c, u32, slot, "the client's staging slot holding the bytes")

#define GMIG_SCH_STAGING_PHYS(F, c)						\
	F(c, u32, pid, "client process id")					\
	F(c, u32, slots, "slots in each direction")				\
	F(c, u32, slot_size, "bytes per slot, a power of two")

#define GMIG_SCH_REF_DONE(F, c)							\
	F(c, u32, pid, "client process id")					\
	F(c, u32, slot, "the slot the host read; it is the client's again")

#define GMIG_SCH_RESTORE_REF(F, c)						\
	F(c, u32, pid, "client process id")					\
	F(c, u32, region, "region id")						\
	F(c, u64, offset, "byte offset in the region")				\
	F(c, u32, length, "bytes in the slot, 1 to the slot size")		\
	F(c, u8, encoding, "RAW: the host wrote the bytes into the slot")	\
	F(c, u32, epoch, "round in which the bytes were read")			\
	F(c, u32, slot, "the lent agent-to-client slot holding the bytes")

#define GMIG_SCH_SLOT_LEND(F, c)						\
	F(c, u32, pid, "client process id")					\
	F(c, u32, slot, "an agent-to-client slot (slots to 2 x slots - 1) the host may fill once")

#define GMIG_SCH_SLOT(F, c)							\
	F(c, u32, slot, "slot handed back to its writer")

#define GMIG_SCH_CHALLENGE(F, c)						\
	F(c, mac, nonce, "random nonce the other side must sign")

#define GMIG_SCH_AUTH(F, c)							\
	F(c, mac, mac, "HMAC-SHA256 proving the shared secret")		\
	F(c, mac, nonce, "the sender's own nonce, for the proof back")

#define GMIG_SCH_PROOF(F, c)							\
	F(c, mac, mac, "HMAC-SHA256 over the initiator's nonce")

#define GMIG_SCH_IMAGE_BEGIN(F, c)						\
	F(c, str32, guest, "guest name, for logs and reports")			\
	F(c, u64, bytes, "image bytes the source expects to send")

#define GMIG_SCH_HANDOVER(F, c)							\
	F(c, u64, session, "the guest session to resume")			\
	F(c, token, token, "its resume token")					\
	F(c, u32, rounds, "pre-copy rounds run")				\
	F(c, u64, freeze_us, "time since the guest froze, microseconds")

#define GMIG_SCH_FREEZE(F, c)							\
	F(c, u32, deadline_ms, "time allowed to reach safe points, > 0")

#define GMIG_SCH_FROZEN(F, c)							\
	F(c, u32, index, "this client's position, from 0")			\
	F(c, u32, count, "clients frozen; 0 sends one frame with pid 0")	\
	F(c, u32, pid, "client process id")

#define GMIG_SCH_CLIENTS(F, c)							\
	F(c, u32, clients, "clients the step applied to")

#define GMIG_SCH_RESTORE_BEGIN(F, c)						\
	F(c, u32, clients, "clients in the image")				\
	F(c, u64, bytes, "image bytes to follow")

#define GMIG_SCH_TOTALS(F, c)							\
	F(c, u64, chunks, "chunks carried")					\
	F(c, u64, bytes, "decoded bytes carried")

#define GMIG_SCH_ROLLBACK(F, c)							\
	F(c, u8, phase, "phase the session rolled back from")			\
	F(c, u32, clients, "clients thawed on the source")

/*
 * Schemas: S(name, fields, tail kind, tail record, tail maximum, tail name, check).
 * Tail kinds: NONE; BYTES (up to max bytes); RECORDS (up to max records).
 * check names a semantic validator in message.c; tail record none if no records.
 */
#define GMIG_SCHEMAS(S)								\
	S(empty, GMIG_SCH_EMPTY, NONE, none, 0, "", check_none)			\
	S(hello, GMIG_SCH_HELLO, NONE, none, 0, "", check_hello)		\
	S(welcome, GMIG_SCH_WELCOME, NONE, none, 0, "", check_welcome)	\
	S(nonce, GMIG_SCH_NONCE, NONE, none, 0, "", check_none)			\
	S(error, GMIG_SCH_ERROR, BYTES, none, GMIG_TEXT_MAX, "text", check_error) \
	S(code, GMIG_SCH_CODE, NONE, none, 0, "", check_code)			\
	S(inv_gpus, GMIG_SCH_INV_GPUS, RECORDS, gpu, GMIG_GPUS_MAX, "gpus", check_none) \
	S(inv_client, GMIG_SCH_INV_CLIENT, RECORDS, region, GMIG_REGIONS_MAX, "regions", check_index) \
	S(round_begin, GMIG_SCH_ROUND_BEGIN, NONE, none, 0, "", check_round_begin) \
	S(region_data, GMIG_SCH_REGION_DATA, BYTES, none, GMIG_DATA_MAX, "data", check_region_data) \
	S(round_end, GMIG_SCH_ROUND_END, NONE, none, 0, "", check_none)		\
	S(staging, GMIG_SCH_STAGING, NONE, none, 0, "", check_staging)		\
	S(staged, GMIG_SCH_STAGED, NONE, none, 0, "", check_staged)		\
	S(slot, GMIG_SCH_SLOT, NONE, none, 0, "", check_none)			\
	S(challenge, GMIG_SCH_CHALLENGE, NONE, none, 0, "", check_none)	\
	S(auth, GMIG_SCH_AUTH, NONE, none, 0, "", check_none)			\
	S(proof, GMIG_SCH_PROOF, NONE, none, 0, "", check_none)		\
	S(image_begin, GMIG_SCH_IMAGE_BEGIN, BYTES, none, GMIG_ADDR_MAX, "channel", check_image_begin) \
	S(handover, GMIG_SCH_HANDOVER, RECORDS, gpu_map, GMIG_GPUS_MAX, "map", check_handover) \
	S(freeze, GMIG_SCH_FREEZE, NONE, none, 0, "", check_freeze)		\
	S(frozen, GMIG_SCH_FROZEN, BYTES, none, GMIG_BLOB_MAX, "state", check_frozen) \
	S(clients, GMIG_SCH_CLIENTS, NONE, none, 0, "", check_none)			\
	S(attach, GMIG_SCH_EMPTY, RECORDS, gpu_map, GMIG_GPUS_MAX, "map", check_none) \
	S(restore_begin, GMIG_SCH_RESTORE_BEGIN, RECORDS, manifest, GMIG_MANIFEST_MAX, "manifest", check_none) \
	S(totals, GMIG_SCH_TOTALS, NONE, none, 0, "", check_none)			\
	S(abort, GMIG_SCH_CODE, BYTES, none, GMIG_TEXT_MAX, "text", check_abort) \
	S(rollback, GMIG_SCH_ROLLBACK, NONE, none, 0, "", check_rollback)	\
	S(region_ref, GMIG_SCH_REGION_REF, NONE, none, 0, "", check_region_ref) \
	S(staging_phys, GMIG_SCH_STAGING_PHYS, RECORDS, phys, GMIG_PHYS_MAX, "ranges", check_staging_phys) \
	S(ref_done, GMIG_SCH_REF_DONE, NONE, none, 0, "", check_ref_done)	\
	S(restore_ref, GMIG_SCH_RESTORE_REF, NONE, none, 0, "", check_restore_ref) \
	S(slot_lend, GMIG_SCH_SLOT_LEND, NONE, none, 0, "", check_slot_lend)

/* Records: R(name, fields, check). */
#define GMIG_RECORDS(R)								\
	R(gpu, GMIG_REC_GPU, check_gpu)						\
	R(region, GMIG_REC_REGION, check_region)				\
	R(gpu_map, GMIG_REC_GPU_MAP, check_none)					\
	R(manifest, GMIG_REC_MANIFEST, check_manifest)				\
	R(phys, GMIG_REC_PHYS, check_phys)

/* Messages: M(NAME, type, family, schema, doc). Type 0 is invalid. */
#define GMIG_MESSAGES(M)							\
	M(HELLO, 0x0101, session, hello,					\
	  "opens or resumes a session; the receiver answers WELCOME or ERROR")	\
	M(WELCOME, 0x0102, session, welcome,					\
	  "accepts a HELLO: agreed version, session id and resume token")	\
	M(PING, 0x0103, session, nonce, "liveness probe; answered by PONG")	\
	M(PONG, 0x0104, session, nonce, "answer to PING")			\
	M(ERROR, 0x0105, session, error,					\
	  "a request failed; text is for humans, code for programs")		\
	M(BYE, 0x0106, session, code,						\
	  "the sender ends the session; no resume")				\
	M(INV_REQUEST, 0x0201, inventory, empty,				\
	  "asks for the GPU and client inventory")				\
	M(INV_GPUS, 0x0202, inventory, inv_gpus,				\
	  "the GPUs, then the number of INV_CLIENT frames to follow")		\
	M(INV_CLIENT, 0x0203, inventory, inv_client,				\
	  "one GPU program and its device-memory regions")			\
	M(ROUND_BEGIN, 0x0301, precopy, round_begin,				\
	  "starts a pre-copy round: send what changed since the last one")	\
	M(REGION_DATA, 0x0302, precopy, region_data,				\
	  "device bytes of one region, read in round epoch")			\
	M(ROUND_END, 0x0303, precopy, round_end,				\
	  "closes a round with its statistics")					\
	M(REGION_REF, 0x0304, precopy, region_ref,				\
	  "agent to host, with PHYS: bytes of one region lie in a client's pinned slot; the host reads them from guest RAM") \
	M(REF_DONE, 0x0305, precopy, ref_done,					\
	  "host to agent: the slot of a REGION_REF was read and goes back to its client") \
	M(FREEZE, 0x0401, freeze, freeze,					\
	  "every client stops at a safe point before the deadline, or all thaw") \
	M(FROZEN, 0x0402, freeze, frozen,					\
	  "one frozen client and its opaque state blob")			\
	M(THAW, 0x0403, freeze, empty, "blocked GPU work proceeds")		\
	M(THAWED, 0x0404, freeze, clients, "answer to THAW")			\
	M(RELEASE, 0x0501, device, empty,					\
	  "frozen clients drop every reference to their GPUs")			\
	M(RELEASED, 0x0502, device, clients, "answer to RELEASE")		\
	M(ATTACH, 0x0503, device, attach,					\
	  "released clients bind to the target GPUs, same addresses")		\
	M(ATTACHED, 0x0504, device, clients, "answer to ATTACH")		\
	M(RESTORE_BEGIN, 0x0601, restore, restore_begin,			\
	  "starts a restore; the manifest lists every region of the image")	\
	M(RESTORE_DATA, 0x0602, restore, region_data,				\
	  "image bytes for one region")						\
	M(RESTORE_END, 0x0603, restore, totals,					\
	  "closes the restore with what was sent")				\
	M(RESTORED, 0x0604, restore, totals,					\
	  "answer to RESTORE_END with what was applied")			\
	M(RESTORE_REF, 0x0605, restore, restore_ref,				\
	  "host to agent, with PHYS or SHM: image bytes the host wrote into a lent slot of the client") \
	M(ABORT, 0x0701, abort, abort,						\
	  "abandon the migration; the source rolls back and thaws")		\
	M(ABORTED, 0x0702, abort, rollback, "answer to ABORT")			\
	M(STAGING, 0x0801, staging, staging,					\
	  "agent to client: the staging memfd rides with this frame (SCM_RIGHTS)") \
	M(STAGED, 0x0802, staging, staged,					\
	  "bytes of one region are in a staging slot (or are zero)")		\
	M(SLOT_FREE, 0x0803, staging, slot,					\
	  "the receiver of a STAGED is done with its slot")			\
	M(STAGING_PHYS, 0x0804, staging, staging_phys,				\
	  "agent to host, with PHYS or SHM, once per client before its first REGION_REF or SLOT_LEND: where its staging lies (SHM: [0, size) of the fd riding with it)") \
	M(SLOT_LEND, 0x0805, staging, slot_lend,				\
	  "agent to host, during a restore: one agent-to-client slot of a client the host may fill, then name with RESTORE_REF") \
	M(CHALLENGE, 0x0901, peer, challenge,					\
	  "peer acceptor to initiator, after HELLO: sign this nonce")		\
	M(AUTH, 0x0902, peer, auth,						\
	  "initiator's proof of the shared secret, and its own nonce")		\
	M(PROOF, 0x0903, peer, proof,						\
	  "acceptor's proof of the shared secret; WELCOME follows")		\
	M(IMAGE_BEGIN, 0x0904, peer, image_begin,				\
	  "source to destination: an image follows; tail: the guest's channel there") \
	M(HANDOVER, 0x0905, peer, handover,					\
	  "source to destination: the image is whole; attach, restore and thaw") \
	M(MIGRATED, 0x0906, peer, code,						\
	  "destination to source: the guest runs on the target (code 0) or not")

#endif
