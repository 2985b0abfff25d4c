/*
 * Zero-copy reads of a guest's RAM: the file QEMU backs the RAM with (memory-backend-file or
 * memfd with share=on, mapped read-only here), and the pinned staging of each client as the
 * agent described it (STAGING_PHYS). Every range the guest names is checked against the RAM:
 * the host never trusts the guest.
 */
#ifndef GMIG_HOST_GUESTMEM_H
#define GMIG_HOST_GUESTMEM_H

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
};

/*
 * Maps the RAM file at @path read-only. @lowmem: guest-physical addresses below it are at the
 * same offset in the file; from 4 GiB on at offset - 4 GiB + lowmem. 0 or -errno.
 */
int guestmem_open(const char *path, uint64_t lowmem, struct guestmem **out);
void guestmem_close(struct guestmem *gm);
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

#endif
