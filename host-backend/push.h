/*
 * Pushing an image into a guest: RESTORE_BEGIN with the manifest of every region, the bytes
 * as RESTORE_DATA (runs of zero chunks as one ZERO frame, runs of other chunks as RAW or LZ4
 * frames of up to PUSH_FRAME_MAX), then RESTORE_END with what was sent. Where the agent lends
 * a client's slots (SLOT_LEND, with staging the host can write: PHYS or SHM), data runs go
 * into those slots instead, named by RESTORE_REF; zero runs stay frames. Frames are queued only
 * while the guest's output holds less than the owner's budget, so memory stays bounded; the
 * owner calls push_run() again whenever the output drains.
 */
#ifndef GMIG_HOST_PUSH_H
#define GMIG_HOST_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/message.h"

#include "guestmem.h"
#include "image.h"

#define PUSH_FRAME_MAX	(1u << 20)	/* decoded bytes of one RAW/LZ4 RESTORE_DATA */
#define PUSH_LEND_WAIT	(2u << 20)	/* output queued while the agent may still lend slots */

/* Where the frames go: a guest session, or a test. */
struct push_sink {
	int (*send)(void *ctx, const struct gmig_msg *m);	/* 0 or -errno */
	size_t (*queued)(void *ctx);				/* bytes not yet out */
	void *ctx;
};

struct push {
	struct push_sink sink;
	const struct gmig_image *img;
	size_t budget;			/* output bytes queued at most */
	bool lz4;
	uint8_t *lz4_buf;		/* LZ4_compressBound(PUSH_FRAME_MAX) bytes, the owner's */
	bool begun, ended;
	uint32_t region;		/* next region to send */
	uint64_t offset;		/* next byte in it */
	struct gmig_totals sent;	/* frames and decoded bytes sent */
	uint64_t wire;			/* bytes queued */
	struct gm_table *refs;		/* clients' staging and lent slots; NULL: frames only */
	const struct guestmem *ram;
	bool may_lend;			/* the agent can lend: queue little until it does */
	uint64_t by_ref;		/* decoded bytes written into lent slots */
	uint64_t total;			/* decoded bytes of the whole image */
};

/* Sets up a push of @img into @sink; nothing is sent yet. */
void push_init(struct push *p, const struct push_sink *sink, const struct gmig_image *img,
	       size_t budget, bool lz4, uint8_t *lz4_buf);

/*
 * Restore by reference: data for a client whose slots the agent lends goes into them
 * (@t's lent slots, in @ram or the client's own mapping). Forgets what was lent before. With
 * @may_lend (PHYS or SHM agreed) only PUSH_LEND_WAIT is queued until a slot is lent, so that
 * the bytes do not all go as frames before the lending arrives.
 */
void push_use_refs(struct push *p, struct gm_table *t, const struct guestmem *ram,
		   bool may_lend);

/* A sink that sends into a guest's session. */
struct guest;
void push_sink_guest(struct push_sink *sink, struct guest *g);

/*
 * Queues frames until the budget is used. 1 when RESTORE_END is queued (wait for RESTORED),
 * 0 when more remains (call again when the output drains or a slot is lent), or a negative
 * errno: -ENOTCONN
 * when the guest dropped, -EINVAL for an image that cannot be restored (incomplete, or a
 * manifest over GMIG_MANIFEST_MAX regions).
 */
int push_run(struct push *p);

/* Whether the agent's RESTORED says it got all of it. */
bool push_matches(const struct push *p, const struct gmig_totals *restored);

/* Whether a buffer is all zero bytes. */
bool bytes_zero(const uint8_t *b, size_t n);

#endif
