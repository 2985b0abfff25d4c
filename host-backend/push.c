/* Pushing an image into a guest: manifest, coalesced zero and data runs, totals; bounded output. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "guest.h"
#include "push.h"

bool bytes_zero(const uint8_t *b, size_t n)
{
	return !n || (!b[0] && !memcmp(b, b + 1, n - 1));
}

static int guest_sink_send(void *ctx, const struct gmig_msg *m)
{
	return guest_send(ctx, m);
}

static size_t guest_sink_queued(void *ctx)
{
	return guest_out_len(ctx);
}

void push_sink_guest(struct push_sink *sink, struct guest *g)
{
	*sink = (struct push_sink){ guest_sink_send, guest_sink_queued, g };
}

void push_init(struct push *p, const struct push_sink *sink, const struct gmig_image *img,
	       size_t budget, bool lz4, uint8_t *lz4_buf)
{
	memset(p, 0, sizeof(*p));
	p->sink = *sink;
	p->img = img;
	p->budget = budget;
	p->lz4 = lz4 && lz4_buf;
	p->lz4_buf = lz4_buf;
	for (uint32_t i = 0; i < img->nregions; i++)
		p->total += img->regions[i].size;
}

static uint32_t run_epoch(const struct gmig_image_region *r, uint64_t off, uint64_t len);

void push_use_refs(struct push *p, struct gm_table *t, const struct guestmem *ram,
		   bool may_lend)
{
	p->refs = t;
	p->ram = ram;
	p->may_lend = t && may_lend;
	if (t)
		gm_table_unlend(t);
}

/*
 * The staging a data run of client @pid goes into: NULL when the agent lends none of its
 * slots (frames carry the bytes).
 */
static struct gm_staging *ref_target(struct push *p, uint32_t pid)
{
	struct gm_staging *st = p->refs ? gm_table_find(p->refs, pid) : NULL;

	if (!st || !st->lending || !guestmem_writable(gm_staging_mem(st, p->ram)))
		return NULL;
	return st;
}

/* Writes [off, off + len) of region @r into a lent slot and names it; -EAGAIN: none lent now. */
static int send_ref(struct push *p, const struct gmig_image_region *r, struct gm_staging *st,
		    uint64_t off, uint64_t len)
{
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_REF };
	uint32_t i, slot;
	int rc;

	if (!st->lent)
		return -EAGAIN;
	i = (uint32_t)__builtin_ctzll(st->lent);
	slot = st->slots + i;
	rc = guestmem_write_slot(gm_staging_mem(st, p->ram), st, slot, (uint32_t)len,
				 r->data + off);
	if (rc)
		return rc;
	m.u.restore_ref = (struct gmig_restore_ref){ .pid = r->pid, .region = r->id,
		.offset = off, .length = (uint32_t)len, .encoding = GMIG_ENC_RAW,
		.epoch = run_epoch(r, off, len), .slot = slot };
	rc = p->sink.send(p->sink.ctx, &m);
	if (rc)
		return rc;
	st->lent &= ~(1ull << i);
	p->by_ref += len;
	p->wire += GMIG_HDR_SIZE + 29;
	return 0;
}

/* Whether the agent lent any slot in this restore. */
static bool lending(const struct gm_table *t)
{
	for (unsigned int i = 0; i < t->n; i++) {
		if (t->st[i].lending)
			return true;
	}
	return false;
}

static int send_begin(struct push *p)
{
	const struct gmig_image *img = p->img;
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_BEGIN };
	uint32_t clients = 0;
	uint8_t *man;
	int rc;

	if (img->nregions > GMIG_MANIFEST_MAX || !gmig_image_complete(img))
		return -EINVAL;
	man = malloc((size_t)(img->nregions ? img->nregions : 1) * GMIG_REC_manifest_SIZE);
	if (!man)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->nregions; i++) {
		const struct gmig_image_region *r = &img->regions[i];
		struct gmig_rec_manifest e = { r->pid, r->id, r->va, r->size, r->chunk };

		gmig_rec_put_manifest(man + (size_t)i * GMIG_REC_manifest_SIZE, &e);
	}
	/* Only clients with regions are named: the agent counts the pids of the manifest. */
	for (uint32_t i = 0; i < img->nregions; i++)
		clients += !i || img->regions[i].pid != img->regions[i - 1].pid;
	m.u.restore_begin.clients = clients;
	m.u.restore_begin.bytes = p->total;
	m.u.restore_begin.tail = (struct gmig_tail){ man, img->nregions * GMIG_REC_manifest_SIZE };
	rc = p->sink.send(p->sink.ctx, &m);
	free(man);
	return rc;
}

/* The epoch a run of chunks was read in: the newest of them (at least 1). */
static uint32_t run_epoch(const struct gmig_image_region *r, uint64_t off, uint64_t len)
{
	uint32_t e = 1;

	for (uint64_t c = off / r->chunk; c * r->chunk < off + len; c++) {
		if (r->epochs[c] > e)
			e = r->epochs[c];
	}
	return e;
}

/* Sends the next run of region @r from p->offset: zero chunks, or data chunks. */
static int send_run(struct push *p, const struct gmig_image_region *r)
{
	uint64_t off = p->offset, len = 0, chunk = r->chunk;
	uint64_t cap;
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_DATA };
	struct gm_staging *st = NULL;
	bool zero;
	int rc;

	zero = bytes_zero(r->data + off, (size_t)(chunk < r->size - off ? chunk : r->size - off));
	cap = zero ? GMIG_DATA_MAX : PUSH_FRAME_MAX;
	if (!zero && (st = ref_target(p, r->pid))) {
		if (!st->lent)
			return -EAGAIN;
		cap = st->slot_size;
	}
	while (off + len < r->size && len < cap) {
		uint64_t n = chunk < r->size - off - len ? chunk : r->size - off - len;

		if (len + n > cap || bytes_zero(r->data + off + len, (size_t)n) != zero)
			break;
		len += n;
	}
	if (!len) {
		/* A chunk larger than a frame: send it in frame-sized pieces (chunk <= DATA_MAX). */
		len = r->size - off < cap ? r->size - off : cap;
	}
	if (st) {
		rc = send_ref(p, r, st, off, len);
		if (rc)
			return rc;
		p->offset += len;
		p->sent.chunks++;
		p->sent.bytes += len;
		return 0;
	}
	m.u.region_data = (struct gmig_region_data){ .pid = r->pid, .region = r->id,
		.offset = off, .length = (uint32_t)len, .epoch = run_epoch(r, off, len) };
	if (zero) {
		m.u.region_data.encoding = GMIG_ENC_ZERO;
	} else {
		m.u.region_data.encoding = GMIG_ENC_RAW;
		m.u.region_data.tail = (struct gmig_tail){ r->data + off, (uint32_t)len };
		if (p->lz4) {
			int n = LZ4_compress_default((const char *)r->data + off, (char *)p->lz4_buf,
						     (int)len, LZ4_compressBound(PUSH_FRAME_MAX));

			if (n > 0 && (uint64_t)n < len) {
				m.u.region_data.encoding = GMIG_ENC_LZ4;
				m.u.region_data.tail = (struct gmig_tail){ p->lz4_buf, (uint32_t)n };
			}
		}
	}
	rc = p->sink.send(p->sink.ctx, &m);
	if (rc)
		return rc;
	p->offset += len;
	p->sent.chunks++;
	p->sent.bytes += len;
	p->wire += GMIG_HDR_SIZE + 25 + m.u.region_data.tail.len;
	return 0;
}

int push_run(struct push *p)
{
	const struct gmig_image *img = p->img;
	int rc;

	if (p->ended)
		return 1;
	if (!p->begun) {
		rc = send_begin(p);
		if (rc)
			return rc;
		p->begun = true;
	}
	while (p->region < img->nregions) {
		const struct gmig_image_region *r = &img->regions[p->region];
		size_t budget = p->budget;

		if (p->may_lend && !lending(p->refs) && budget > PUSH_LEND_WAIT)
			budget = PUSH_LEND_WAIT;
		if (p->sink.queued(p->sink.ctx) >= budget)
			return 0;
		if (p->offset >= r->size) {
			p->region++;
			p->offset = 0;
			continue;
		}
		rc = send_run(p, r);
		if (rc == -EAGAIN)
			return 0;	/* every lent slot is filled: a SLOT_LEND brings the next */
		if (rc)
			return rc;
	}
	{
		struct gmig_msg m = { .type = GMIG_MSG_RESTORE_END, .u.totals = p->sent };

		rc = p->sink.send(p->sink.ctx, &m);
		if (rc)
			return rc;
	}
	p->ended = true;
	return 1;
}

bool push_matches(const struct push *p, const struct gmig_totals *restored)
{
	return restored->chunks == p->sent.chunks && restored->bytes == p->sent.bytes;
}
