/*
 * Zero-copy access to a guest's staging: the file QEMU backs the RAM with (memory-backend-file
 * or memfd with share=on, mapped read-write where it may be, else read-only) holding each
 * client's pinned staging as the agent described it (STAGING_PHYS); or, for an agent on this
 * machine (SHM), the client's staging fd itself. Every range the guest names is checked
 * against what is mapped: the host never trusts the guest.
 */
#ifndef GMIG_HOST_GUESTMEM_H
#define GMIG_HOST_GUESTMEM_H

#include <stdbool.h>
#include <stdint.h>

#include "gmig/message.h"

#define GUESTMEM_LOWMEM_DEFAULT	(3ull << 30)	/* x86 pc: RAM below 4 GiB ends here; the rest
						   of it is mapped from 4 GiB on */
#define GUESTMEM_STAGINGS_MAX	64		/* clients with a described staging at once */

struct guestmem;

/* One client's staging as guest-physical pieces in buffer order. */
struct gm_staging {
	uint32_t pid, slots, slot_size;
	uint32_t nranges;
	struct gmig_rec_phys *ranges;
	struct guestmem *own;		/* SHM: the staging fd mapped; NULL: in the guest's RAM */
	/* Agent-to-client slots lent for the restore (bit = slot - slots), not yet filled. */
	uint64_t lent;
	bool lending;			/* the agent lends this client's slots in this restore */
};

/* The clients of one guest whose staging the host can reach. */
struct gm_table {
	struct gm_staging st[GUESTMEM_STAGINGS_MAX];
	unsigned int n;
};

/*
 * Maps the RAM file at @path read-only. @lowmem: guest-physical addresses below it are at the
 * same offset in the file; from 4 GiB on at offset - 4 GiB + lowmem. 0 or -errno.
 */
int guestmem_open(const char *path, uint64_t lowmem, struct guestmem **out);
void guestmem_close(struct guestmem *gm);
/* Maps all of @fd (a client's staging) read-write; the fd stays the caller's. 0 or -errno. */
int guestmem_map_fd(int fd, struct guestmem **out);
bool guestmem_writable(const struct guestmem *gm);
uint64_t guestmem_size(const struct guestmem *gm);

/*
 * Takes a STAGING_PHYS into @st (replacing what it held): every piece must lie in the RAM and
 * the pieces must cover the client's slots. 0, -EFAULT (a piece outside the RAM), -EINVAL
 * (too short for its slots), -ENOMEM.
 */
int gm_staging_set(const struct guestmem *gm, struct gm_staging *st,
		   const struct gmig_staging_phys *m);
void gm_staging_clear(struct gm_staging *st);

/*
 * Copies @length bytes of the client's slot @slot out of guest RAM. -ERANGE for a slot or
 * length outside the staging; -EFAULT if a piece left the RAM.
 */
int guestmem_read_slot(const struct guestmem *gm, const struct gm_staging *st, uint32_t slot,
		       uint32_t length, uint8_t *out);

/*
 * Copies @length bytes into the client's agent-to-client slot @slot (slots to 2 x slots - 1).
 * -ERANGE for a slot or length outside the staging; -EFAULT if a piece left the RAM; -EROFS
 * when the RAM is mapped read-only.
 */
int guestmem_write_slot(const struct guestmem *gm, const struct gm_staging *st, uint32_t slot,
			uint32_t length, const uint8_t *in);

/* The staging of client @pid, or NULL. */
struct gm_staging *gm_table_find(struct gm_table *t, uint32_t pid);
/*
 * Takes a STAGING_PHYS: with @fd >= 0 (SHM) the ranges are offsets in that fd, which is mapped
 * (and stays the caller's); else they lie in @ram. 0, -EPROTO (no fd and no RAM), -ENOSPC
 * (too many clients), or gm_staging_set()'s errors.
 */
int gm_table_set(struct gm_table *t, const struct guestmem *ram,
		 const struct gmig_staging_phys *m, int fd);
/* The restore is over or starts again: no slot is lent any more. */
void gm_table_unlend(struct gm_table *t);
/* Takes a SLOT_LEND: 0, -ENOENT (no staging told), -ERANGE (not an agent-to-client slot). */
int gm_table_lend(struct gm_table *t, uint32_t pid, uint32_t slot);
/* The mapping that holds @st. */
const struct guestmem *gm_staging_mem(const struct gm_staging *st, const struct guestmem *ram);
void gm_table_clear(struct gm_table *t);

#endif
