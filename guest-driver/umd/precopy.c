/* One pre-copy round: fingerprint every chunk, copy what changed into staging slots, hand them on. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

#include "clock.h"
#include "precopy.h"

#define SCAN_CHUNKS	64	/* chunks fingerprinted on the device per call */

/* The pieces of one region not yet handed on: a slot being filled and a zero run. */
struct runs {
	struct gmig_umd *u;
	const struct gmig_sink *sink;
	const struct gmig_region *r;
	uint32_t epoch;
	struct gmig_round_end *st;

	bool raw_on;
	uint32_t slot;
	uint8_t *mem;
	uint64_t raw_off;
	uint32_t raw_len;

	bool zero_on;
	uint64_t zero_off;
	uint32_t zero_len;
};

static int flush_raw(struct runs *x)
{
	struct gmig_staged s = { x->r->id, x->raw_off, x->raw_len, GMIG_ENC_RAW, x->epoch, x->slot };

	if (!x->raw_on)
		return 0;
	x->raw_on = false;
	if (!x->raw_len) {
		x->sink->put(x->sink->ctx, x->slot);
		return 0;
	}
	x->st->bytes += x->raw_len;
	return x->sink->staged(x->sink->ctx, &s);
}

static int flush_zero(struct runs *x)
{
	struct gmig_staged s = { x->r->id, x->zero_off, x->zero_len, GMIG_ENC_ZERO, x->epoch, 0 };

	if (!x->zero_on)
		return 0;
	x->zero_on = false;
	return x->sink->staged(x->sink->ctx, &s);
}

/* Copies the piece [off, off + n) of the region into the slot, hashes the copy, files it. */
static int piece(struct runs *x, uint64_t off, uint32_t n, XXH3_state_t *h, bool *zero)
{
	uint8_t *dst;
	int err;

	if (x->raw_on && (x->raw_off + x->raw_len != off || x->raw_len + n > x->sink->slot_size)) {
		err = flush_raw(x);
		if (err)
			return err;
	}
	if (!x->raw_on) {
		err = x->sink->take(x->sink->ctx, &x->slot, &x->mem);
		if (err)
			return err;
		x->raw_on = true;
		x->raw_off = off;
		x->raw_len = 0;
	}
	dst = x->mem + x->raw_len;
	err = x->u->be->ops->read(x->u->dev, x->r->va + off, dst, n);
	if (err)
		return err;
	XXH3_64bits_update(h, dst, n);
	if (!gmig_fp_is_zero(dst, n)) {
		x->raw_len += n;
		*zero = false;
		return 0;
	}
	/* Zero: the bytes stay in the slot as scratch, the next piece overwrites them. */
	if (!x->raw_len)
		x->raw_off = off + n;
	if (x->zero_on && (x->zero_off + x->zero_len != off || x->zero_len + n > GMIG_DATA_MAX)) {
		err = flush_zero(x);
		if (err)
			return err;
	}
	if (!x->zero_on) {
		x->zero_on = true;
		x->zero_off = off;
		x->zero_len = 0;
	}
	x->zero_len += n;
	return 0;
}

/* Sends chunk ci of the region in pieces of at most a slot; returns the print of what was sent. */
static int send_chunk(struct runs *x, uint64_t ci, uint64_t *print, bool *zero)
{
	uint32_t chunk = x->u->fp.chunk;
	uint64_t off = ci * chunk, end = off + chunk < x->r->size ? off + chunk : x->r->size;
	XXH3_state_t h;
	int err = 0;

	XXH3_64bits_reset(&h);
	*zero = true;
	while (off < end && !err) {
		uint32_t n = end - off < x->sink->slot_size ? (uint32_t)(end - off) : x->sink->slot_size;

		err = piece(x, off, n, &h, zero);
		off += n;
	}
	*print = XXH3_64bits_digest(&h);
	return err;
}

static int region_round(struct runs *x, uint32_t ri)
{
	struct gmig_umd *u = x->u;
	uint32_t chunk = u->fp.chunk;
	uint64_t scan[SCAN_CHUNKS], nchunks = (x->r->size + chunk - 1) / chunk;
	int err = 0;

	for (uint64_t c0 = 0; c0 < nchunks && !err; c0 += SCAN_CHUNKS) {
		uint64_t k = nchunks - c0 < SCAN_CHUNKS ? nchunks - c0 : SCAN_CHUNKS;
		uint64_t len = k * chunk < x->r->size - c0 * chunk ? k * chunk : x->r->size - c0 * chunk;

		err = u->be->ops->fingerprint(u->dev, x->r->va + c0 * chunk, len, chunk, scan);
		for (uint64_t j = 0; j < k && !err; j++) {
			uint64_t print;
			bool zero;

			x->st->chunks++;
			if (!gmig_fp_must_send(&u->fp, ri, c0 + j, scan[j])) {
				gmig_fp_record(&u->fp, ri, c0 + j, scan[j], false);
				continue;
			}
			err = send_chunk(x, c0 + j, &print, &zero);
			if (err)
				break;
			gmig_fp_record(&u->fp, ri, c0 + j, print, true);
			x->st->dirty++;
			x->st->zero += zero;
		}
	}
	if (!err)
		err = flush_raw(x);
	if (!err)
		err = flush_zero(x);
	/* A failed round keeps no slot it took. */
	if (err && x->raw_on)
		x->sink->put(x->sink->ctx, x->slot);
	return err;
}

int gmig_precopy_round(struct gmig_umd *u, uint32_t round, uint32_t base,
		       const struct gmig_sink *sink, struct gmig_round_end *st)
{
	struct gmig_region regions[GMIG_ARENA_REGIONS_MAX];
	uint64_t t0 = gmig_now_us();
	uint32_t n;
	int err;

	memset(st, 0, sizeof(*st));
	st->round = round;
	if (!u->dev)
		return -ENODEV;
	n = gmig_arena_regions(&u->arena, regions, GMIG_ARENA_REGIONS_MAX);
	err = gmig_fp_round_begin(&u->fp, round, base, regions, n);
	for (uint32_t i = 0; i < n && !err; i++) {
		struct runs x = { .u = u, .sink = sink, .r = &regions[i], .epoch = round, .st = st };

		err = region_round(&x, i);
	}
	if (err)
		return err;
	gmig_fp_round_end(&u->fp);
	st->usecs = gmig_now_us() - t0;
	return 0;
}
