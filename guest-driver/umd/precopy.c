/* One pre-copy round: fingerprint every chunk, copy what changed into staging slots, hand them on. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

#include "clock.h"
#include "precopy.h"

#define SCAN_CHUNKS	16384	/* chunks fingerprinted on the device per call: 1 GiB of 64 KiB chunks */

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

	uint8_t *mem_prev;	/* the slot a block was read into, while it is filed */

	bool zero_on;
	uint64_t zero_off;
	uint32_t zero_len;

	XXH3_state_t h;		/* the print of the chunk being filed */
	bool chunk_zero;
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

/* Ends the zero run unless the zero piece [off, off + n) continues it; then extends it. */
static int zero_piece(struct runs *x, uint64_t off, uint32_t n)
{
	int err;

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

/* A slot with room that continues the raw run at off, taking a new one if need be. */
static int room_at(struct runs *x, uint64_t off)
{
	int err;

	if (x->raw_on && (x->raw_off + x->raw_len != off || x->raw_len == x->sink->slot_size)) {
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
	return 0;
}

/*
 * Files the piece [off, off + n) of a chunk, already read to src (inside the
 * current slot, at or after the run's end): hashes it, then keeps it at the
 * run's end or, all zero, adds it to the zero run. After a zero gap the rest
 * of the block is moved to a fresh slot; *src_moved tells where it went.
 */
static int file_piece(struct runs *x, uint64_t off, const uint8_t *src, uint32_t n, uint64_t rest,
		      const uint8_t **src_moved)
{
	int err;

	XXH3_64bits_update(&x->h, src, n);
	*src_moved = src;
	if (gmig_fp_is_zero(src, n)) {
		/* The bytes stay in the slot as scratch; the run starts after them if it is empty. */
		if (!x->raw_len)
			x->raw_off = off + n;
		return zero_piece(x, off, n);
	}
	x->chunk_zero = false;
	if (x->raw_off + x->raw_len != off) {
		/* A zero gap ended the run: send it, and move the rest of the block to a new slot. */
		uint32_t at = (uint32_t)(src - x->mem);

		err = flush_raw(x);
		if (!err)
			err = room_at(x, off);
		if (err)
			return err;
		/* The old slot is only read, and if it came back as the new one, memmove copes. */
		memmove(x->mem, x->mem_prev + at, rest);
		src = x->mem;
		*src_moved = src;
	}
	if (x->mem + x->raw_len != src)
		memmove(x->mem + x->raw_len, src, n);
	x->raw_len += n;
	return 0;
}

/* Closes chunk ci: its print is that of the bytes staged. */
static void end_chunk(struct runs *x, uint32_t ri, uint64_t ci)
{
	gmig_fp_record(&x->u->fp, ri, ci, XXH3_64bits_digest(&x->h), true);
	x->st->dirty++;
	x->st->zero += x->chunk_zero;
}

/*
 * Sends [off, end) of the region, whole chunks that must all go: each
 * slot's worth is read from the device in one call, then hashed and filed
 * piece by piece (a piece ends at a chunk's end or the block's).
 */
static int send_run(struct runs *x, uint32_t ri, uint64_t off, uint64_t end)
{
	uint32_t chunk = x->u->fp.chunk;
	int err;

	while (off < end) {
		const uint8_t *blk;
		uint64_t n, done = 0;

		err = room_at(x, off);
		if (err)
			return err;
		n = x->sink->slot_size - x->raw_len;
		if (n > end - off)
			n = end - off;
		blk = x->mem + x->raw_len;
		err = x->u->be->ops->read(x->u->dev, x->r->va + off, (void *)blk, n);
		if (err)
			return err;
		while (done < n) {
			uint64_t po = off + done, left = chunk - po % chunk;
			uint32_t m = (uint32_t)(n - done < left ? n - done : left);
			const uint8_t *moved;

			if (po % chunk == 0) {
				XXH3_64bits_reset(&x->h);
				x->chunk_zero = true;
			}
			x->mem_prev = x->mem;
			err = file_piece(x, po, blk + done, m, n - done, &moved);
			if (err)
				return err;
			blk = moved - done;
			done += m;
			if ((po + m) % chunk == 0 || po + m == x->r->size)
				end_chunk(x, ri, (po + m - 1) / chunk);
		}
		off += n;
	}
	return 0;
}

static int region_round(struct runs *x, uint32_t ri)
{
	struct gmig_umd *u = x->u;
	uint32_t chunk = u->fp.chunk;
	uint64_t *scan = malloc(SCAN_CHUNKS * sizeof(*scan)), nchunks = (x->r->size + chunk - 1) / chunk;
	int err = 0;

	if (!scan)
		return -ENOMEM;
	for (uint64_t c0 = 0; c0 < nchunks && !err; c0 += SCAN_CHUNKS) {
		uint64_t k = nchunks - c0 < SCAN_CHUNKS ? nchunks - c0 : SCAN_CHUNKS;
		uint64_t len = k * chunk < x->r->size - c0 * chunk ? k * chunk : x->r->size - c0 * chunk;
		uint64_t j = 0;

		err = u->be->ops->fingerprint(u->dev, x->r->va + c0 * chunk, len, chunk, scan);
		while (j < k && !err) {
			uint64_t e = j;

			/* A run of chunks that must go is read in as few device calls as slots allow. */
			while (e < k && gmig_fp_must_send(&u->fp, ri, c0 + e, scan[e]))
				e++;
			if (e == j) {
				x->st->chunks++;
				gmig_fp_record(&u->fp, ri, c0 + j, scan[j], false);
				j++;
				continue;
			}
			x->st->chunks += e - j;
			err = send_run(x, ri, (c0 + j) * chunk,
				       (c0 + e) * chunk < x->r->size ? (c0 + e) * chunk : x->r->size);
			j = e;
		}
	}
	if (!err)
		err = flush_raw(x);
	if (!err)
		err = flush_zero(x);
	/* A failed round keeps no slot it took. */
	if (err && x->raw_on)
		x->sink->put(x->sink->ctx, x->slot);
	free(scan);
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
