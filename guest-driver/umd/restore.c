/* A restore into the attached device: the manifest checked against the arena, bytes written, coverage kept. */
#include <errno.h>
#include <string.h>

#include "restore.h"

void gmig_restore_init(struct gmig_restore *rs)
{
	memset(rs, 0, sizeof(*rs));
}

void gmig_restore_clear(struct gmig_restore *rs)
{
	for (uint32_t i = 0; i < GMIG_ARENA_REGIONS_MAX; i++)
		gmig_cover_clear(&rs->regions[i].cover);
	gmig_restore_init(rs);
}

static struct gmig_restore_region *find(struct gmig_restore *rs, uint32_t id)
{
	for (uint32_t i = 0; i < rs->nregions; i++)
		if (rs->regions[i].r.id == id)
			return &rs->regions[i];
	return NULL;
}

int gmig_restore_begin(struct gmig_restore *rs, struct gmig_umd *u, const struct gmig_restore_begin *m)
{
	struct gmig_region regions[GMIG_ARENA_REGIONS_MAX];
	uint32_t n = gmig_arena_regions(&u->arena, regions, GMIG_ARENA_REGIONS_MAX);
	uint32_t count = gmig_rec_count(&m->tail, GMIG_REC_manifest_SIZE);

	gmig_restore_clear(rs);
	rs->nregions = n;
	for (uint32_t i = 0; i < n; i++)
		rs->regions[i].r = regions[i];
	for (uint32_t i = 0; i < count; i++) {
		struct gmig_rec_manifest rec;
		struct gmig_restore_region *rr;

		gmig_rec_get_manifest(&m->tail, i, &rec);
		rr = find(rs, rec.region);
		if (rec.pid != u->pid || !rr || rr->named || rec.va != rr->r.va || rec.size != rr->r.size) {
			gmig_restore_clear(rs);
			return -EINVAL;
		}
		rr->named = true;
	}
	rs->active = true;
	return 0;
}

int gmig_restore_apply(struct gmig_restore *rs, struct gmig_umd *u, uint32_t region, uint64_t offset,
		       uint32_t len, const void *src)
{
	struct gmig_restore_region *rr = find(rs, region);
	int err;

	if (!rs->active || !u->dev)
		return -EPROTO;
	if (!rr || !rr->named || !len || offset > rr->r.size || len > rr->r.size - offset)
		return -ERANGE;
	err = u->be->ops->write(u->dev, rr->r.va + offset, src, len);
	if (!err)
		err = gmig_cover_add(&rr->cover, offset, len);
	if (err)
		return err;
	rs->pieces++;
	rs->bytes += len;
	return 0;
}

int gmig_restore_end(struct gmig_restore *rs, struct gmig_totals *out)
{
	if (!rs->active)
		return -EPROTO;
	for (uint32_t i = 0; i < rs->nregions; i++)
		if (!rs->regions[i].named || !gmig_cover_full(&rs->regions[i].cover, rs->regions[i].r.size))
			return -ENODATA;
	rs->active = false;
	out->chunks = rs->pieces;
	out->bytes = rs->bytes;
	return 0;
}
