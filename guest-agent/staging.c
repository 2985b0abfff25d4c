/* A client's staging memory, a memfd or gmig.ko's pinned buffer, and its slots' bookkeeping. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kmod.h"
#include "staging.h"

/* Staging from gmig.ko: a buffer fd that cannot be resized, mapped, with its ranges. */
static int staging_init_kmod(struct staging *st)
{
	int rc;

	st->fd = kmod_staging_create(st->size);
	if (st->fd < 0)
		return st->fd;
	rc = kmod_staging_phys(st->fd, &st->phys, &st->nphys);
	if (rc)
		goto out_close;
	st->map = mmap(NULL, st->size, PROT_READ | PROT_WRITE, MAP_SHARED, st->fd, 0);
	if (st->map == MAP_FAILED) {
		rc = -errno;
		st->map = NULL;
		goto out_free_phys;
	}
	return 0;

out_free_phys:
	free(st->phys);
	st->phys = NULL;
	st->nphys = 0;
out_close:
	close(st->fd);
	st->fd = -1;
	return rc;
}

int staging_init(struct staging *st, uint32_t slots, uint32_t slot_size)
{
	int rc;

	memset(st, 0, sizeof(*st));
	st->fd = -1;
	if (!slots || slots > GMIG_SLOTS_MAX || !slot_size || (slot_size & (slot_size - 1)))
		return -EINVAL;
	st->slots = slots;
	st->slot_size = slot_size;
	st->size = 2ull * slots * slot_size;

	/* Pinned pages when the module gives them; its limits leave larger ones to a memfd. */
	if (kmod_active() && staging_init_kmod(st) == 0)
		return 0;

	st->fd = memfd_create("gmig-staging", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (st->fd < 0)
		return -errno;
	if (ftruncate(st->fd, (off_t)st->size)) {
		rc = -errno;
		goto out_close;
	}
	/*
	 * The client must not shrink the file under the agent's mapping (a SIGBUS in the
	 * agent) nor add seals of its own.
	 */
	if (fcntl(st->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		rc = -errno;
		goto out_close;
	}
	st->map = mmap(NULL, st->size, PROT_READ | PROT_WRITE, MAP_SHARED, st->fd, 0);
	if (st->map == MAP_FAILED) {
		rc = -errno;
		st->map = NULL;
		goto out_close;
	}
	return 0;

out_close:
	close(st->fd);
	st->fd = -1;
	return rc;
}

void staging_clear(struct staging *st)
{
	if (st->map)
		munmap(st->map, st->size);
	if (st->fd >= 0)
		close(st->fd);
	free(st->phys);
	memset(st, 0, sizeof(*st));
	st->fd = -1;
}

int staging_in_take(struct staging *st, uint32_t slot)
{
	if (slot >= st->slots)
		return -ERANGE;
	if (st->in_busy & (1ull << slot))
		return -EBUSY;
	st->in_busy |= 1ull << slot;
	return 0;
}

void staging_in_release(struct staging *st, uint32_t slot)
{
	if (slot < st->slots)
		st->in_busy &= ~(1ull << slot);
}

const uint8_t *staging_in_ptr(const struct staging *st, uint32_t slot)
{
	return st->map + (uint64_t)slot * st->slot_size;
}

int staging_out_get(struct staging *st)
{
	for (uint32_t i = 0; i < st->slots; i++) {
		if (!(st->out_busy & (1ull << i))) {
			st->out_busy |= 1ull << i;
			return (int)(st->slots + i);
		}
	}
	return -ENOSPC;
}

int staging_out_put(struct staging *st, uint32_t slot)
{
	uint32_t i;

	if (slot < st->slots || slot >= 2 * st->slots)
		return -ERANGE;
	i = slot - st->slots;
	if (!(st->out_busy & (1ull << i)))
		return -EINVAL;
	st->out_busy &= ~(1ull << i);
	return 0;
}

uint8_t *staging_out_ptr(const struct staging *st, uint32_t slot)
{
	return st->map + (uint64_t)slot * st->slot_size;
}

unsigned int staging_out_free(const struct staging *st)
{
	return st->slots - (unsigned int)__builtin_popcountll(st->out_busy);
}
