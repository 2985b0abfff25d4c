/* Zero-copy reads of guest RAM through QEMU's shared RAM file, checked against its size. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guestmem.h"

#define FOUR_GIB	(4ull << 30)

struct guestmem {
	const uint8_t *map;
	uint64_t size;
	uint64_t lowmem;
};

int guestmem_open(const char *path, uint64_t lowmem, struct guestmem **out)
{
	struct guestmem *gm = calloc(1, sizeof(*gm));
	struct stat st;
	void *map;
	int fd, rc;

	if (!gm)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
		rc = -EINVAL;
		goto out_close;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		goto out_close;
	}
	close(fd);
	gm->map = map;
	gm->size = (uint64_t)st.st_size;
	gm->lowmem = lowmem < gm->size ? lowmem : gm->size;
	*out = gm;
	return 0;

out_close:
	close(fd);
out_free:
	free(gm);
	return rc;
}

void guestmem_close(struct guestmem *gm)
{
	if (!gm)
		return;
	munmap((void *)gm->map, gm->size);
	free(gm);
}

uint64_t guestmem_size(const struct guestmem *gm)
{
	return gm->size;
}

/* The file offset of [gpa, gpa + len), which must not straddle the hole; false if outside. */
static bool translate(const struct guestmem *gm, uint64_t gpa, uint64_t len, uint64_t *off)
{
	if (!len || gpa > UINT64_MAX - len)
		return false;
	if (gpa + len <= gm->lowmem) {
		*off = gpa;
		return true;
	}
	if (gpa < FOUR_GIB)
		return false;
	gpa -= FOUR_GIB;
	if (gpa > gm->size - gm->lowmem || len > gm->size - gm->lowmem - gpa)
		return false;
	*off = gpa + gm->lowmem;
	return true;
}

int gm_staging_set(const struct guestmem *gm, struct gm_staging *st,
		   const struct gmig_staging_phys *m)
{
	uint32_t n = gmig_rec_count(&m->tail, GMIG_REC_phys_SIZE);
	struct gmig_rec_phys *r;
	uint64_t total = 0, off;

	r = calloc(n ? n : 1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		gmig_rec_get_phys(&m->tail, i, &r[i]);
		if (!translate(gm, r[i].gpa, r[i].len, &off)) {
			free(r);
			return -EFAULT;
		}
		total += r[i].len;	/* at most GMIG_PHYS_MAX pieces inside the RAM: no overflow */
	}
	/* The client-to-agent slots come first in the buffer. */
	if (total < (uint64_t)m->slots * m->slot_size) {
		free(r);
		return -EINVAL;
	}
	gm_staging_clear(st);
	st->pid = m->pid;
	st->slots = m->slots;
	st->slot_size = m->slot_size;
	st->nranges = n;
	st->ranges = r;
	return 0;
}

void gm_staging_clear(struct gm_staging *st)
{
	free(st->ranges);
	memset(st, 0, sizeof(*st));
}

int guestmem_read_slot(const struct guestmem *gm, const struct gm_staging *st, uint32_t slot,
		       uint32_t length, uint8_t *out)
{
	uint64_t pos, end, base = 0, off;

	if (slot >= st->slots || !length || length > st->slot_size)
		return -ERANGE;
	pos = (uint64_t)slot * st->slot_size;
	end = pos + length;
	for (uint32_t i = 0; i < st->nranges && pos < end; i++) {
		const struct gmig_rec_phys *r = &st->ranges[i];
		uint64_t from, n;

		if (pos >= base + r->len) {
			base += r->len;
			continue;
		}
		from = pos - base;
		n = r->len - from < end - pos ? r->len - from : end - pos;
		if (!translate(gm, r->gpa + from, n, &off))
			return -EFAULT;
		memcpy(out, gm->map + off, n);
		out += n;
		pos += n;
		base += r->len;
	}
	return pos == end ? 0 : -ERANGE;
}
