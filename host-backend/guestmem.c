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
	uint8_t *map;
	uint64_t size;
	uint64_t lowmem;
	bool writable;
};

int guestmem_open(const char *path, uint64_t lowmem, struct guestmem **out)
{
	struct guestmem *gm = calloc(1, sizeof(*gm));
	struct stat st;
	void *map;
	int fd, rc;

	if (!gm)
		return -ENOMEM;
	/* Read-write lets a restore write straight into the staging; reading alone still helps. */
	gm->writable = true;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		gm->writable = false;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
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
	map = mmap(NULL, (size_t)st.st_size, gm->writable ? PROT_READ | PROT_WRITE : PROT_READ,
		   MAP_SHARED, fd, 0);
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

int guestmem_map_fd(int fd, struct guestmem **out)
{
	struct guestmem *gm = calloc(1, sizeof(*gm));
	struct stat st;
	void *map;

	if (!gm)
		return -ENOMEM;
	/* The size comes from the kernel, never from the guest's word. */
	if (fstat(fd, &st) || st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX) {
		free(gm);
		return -EINVAL;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		int rc = -errno;

		free(gm);
		return rc;
	}
	gm->map = map;
	gm->size = (uint64_t)st.st_size;
	gm->lowmem = gm->size;
	gm->writable = true;
	*out = gm;
	return 0;
}

bool guestmem_writable(const struct guestmem *gm)
{
	return gm && gm->writable;
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
	guestmem_close(st->own);
	memset(st, 0, sizeof(*st));
}

/* Copies between slot @slot's bytes and @buf, one piece at a time, every piece checked. */
static int slot_io(const struct guestmem *gm, const struct gm_staging *st, uint32_t slot,
		   uint32_t length, uint8_t *buf, bool write)
{
	uint64_t pos, end, base = 0, off;

	if (!gm)
		return -EFAULT;
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
		if (write)
			memcpy(gm->map + off, buf, n);
		else
			memcpy(buf, gm->map + off, n);
		buf += n;
		pos += n;
		base += r->len;
	}
	return pos == end ? 0 : -ERANGE;
}

int guestmem_read_slot(const struct guestmem *gm, const struct gm_staging *st, uint32_t slot,
		       uint32_t length, uint8_t *out)
{
	if (slot >= st->slots || !length || length > st->slot_size)
		return -ERANGE;
	return slot_io(gm, st, slot, length, out, false);
}

int guestmem_write_slot(const struct guestmem *gm, const struct gm_staging *st, uint32_t slot,
			uint32_t length, const uint8_t *in)
{
	if (slot < st->slots || slot >= 2 * st->slots || !length || length > st->slot_size)
		return -ERANGE;
	if (!guestmem_writable(gm))
		return -EROFS;
	return slot_io(gm, st, slot, length, (uint8_t *)in, true);
}

const struct guestmem *gm_staging_mem(const struct gm_staging *st, const struct guestmem *ram)
{
	return st->own ? st->own : ram;
}

struct gm_staging *gm_table_find(struct gm_table *t, uint32_t pid)
{
	for (unsigned int i = 0; i < t->n; i++) {
		if (t->st[i].pid == pid)
			return &t->st[i];
	}
	return NULL;
}

int gm_table_set(struct gm_table *t, const struct guestmem *ram,
		 const struct gmig_staging_phys *m, int fd)
{
	struct gm_staging *st = gm_table_find(t, m->pid), fresh = { 0 };
	struct guestmem *own = NULL;
	int rc;

	if (fd < 0 && !ram)
		return -EPROTO;
	if (!st && t->n == GUESTMEM_STAGINGS_MAX)
		return -ENOSPC;
	if (fd >= 0) {
		rc = guestmem_map_fd(fd, &own);
		if (rc)
			return rc;
	}
	rc = gm_staging_set(own ? own : ram, &fresh, m);
	if (rc) {
		guestmem_close(own);
		return rc;
	}
	fresh.own = own;
	if (!st)
		st = &t->st[t->n++];
	else
		gm_staging_clear(st);
	*st = fresh;
	return 0;
}

void gm_table_unlend(struct gm_table *t)
{
	for (unsigned int i = 0; i < t->n; i++) {
		t->st[i].lent = 0;
		t->st[i].lending = false;
	}
}

int gm_table_lend(struct gm_table *t, uint32_t pid, uint32_t slot)
{
	struct gm_staging *st = gm_table_find(t, pid);

	if (!st)
		return -ENOENT;
	if (slot < st->slots || slot >= 2 * st->slots)
		return -ERANGE;
	st->lent |= 1ull << (slot - st->slots);
	st->lending = true;
	return 0;
}

void gm_table_clear(struct gm_table *t)
{
	for (unsigned int i = 0; i < t->n; i++)
		gm_staging_clear(&t->st[i]);
	t->n = 0;
}
