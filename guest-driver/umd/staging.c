/* The staging area shared with the agent: the memfd's mapping and who holds which slot. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "staging.h"

int gmig_staging_map_fd(struct gmig_staging_area *st, int fd, uint32_t slots, uint32_t slot_size,
			uint64_t avail)
{
	uint64_t need = 2ull * slots * slot_size;
	void *mem;
	int err = -EINVAL;

	memset(st, 0, sizeof(*st));
	if (!slots || slots > GMIG_SLOTS_MAX || !slot_size || (slot_size & (slot_size - 1)) ||
	    avail < need)
		goto out_close;
	mem = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		err = -errno;
		goto out_close;
	}
	st->mem = mem;
	st->size = need;
	st->slots = slots;
	st->slot_size = slot_size;
	err = 0;
out_close:
	close(fd);
	return err;
}

int gmig_staging_map(struct gmig_staging_area *st, int fd, uint32_t slots, uint32_t slot_size)
{
	struct stat sb;
	int seals = fcntl(fd, F_GET_SEALS);

	/* Sealed against shrinking, or the agent could pull pages from under the mapping. */
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || seals < 0 || !(seals & F_SEAL_SHRINK))
		return gmig_staging_map_fd(st, fd, slots, slot_size, 0);
	return gmig_staging_map_fd(st, fd, slots, slot_size, (uint64_t)sb.st_size);
}

void gmig_staging_unmap(struct gmig_staging_area *st)
{
	if (st->mem)
		munmap(st->mem, st->size);
	memset(st, 0, sizeof(*st));
}

int gmig_staging_take(struct gmig_staging_area *st, uint32_t *slot)
{
	for (uint32_t i = 0; i < st->slots; i++) {
		if (st->state[i] == GMIG_SLOT_FREE) {
			st->state[i] = GMIG_SLOT_HELD;
			*slot = i;
			return 0;
		}
	}
	return -EAGAIN;
}

void gmig_staging_sent(struct gmig_staging_area *st, uint32_t slot)
{
	st->state[slot] = GMIG_SLOT_SENT;
}

void gmig_staging_put(struct gmig_staging_area *st, uint32_t slot)
{
	st->state[slot] = GMIG_SLOT_FREE;
}

int gmig_staging_freed(struct gmig_staging_area *st, uint32_t slot)
{
	if (slot >= st->slots || st->state[slot] != GMIG_SLOT_SENT)
		return -EPROTO;
	st->state[slot] = GMIG_SLOT_FREE;
	return 0;
}

bool gmig_staging_is_agent_slot(const struct gmig_staging_area *st, uint32_t slot)
{
	return slot >= st->slots && slot - st->slots < st->slots;
}

uint8_t *gmig_staging_slot(const struct gmig_staging_area *st, uint32_t slot)
{
	return st->mem + (size_t)slot * st->slot_size;
}
