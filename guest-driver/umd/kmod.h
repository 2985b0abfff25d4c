/*
 * gmig.ko from the client's side: the program registers as a CLIENT (the kernel then tells the
 * agent when it dies), acks the kernel's freeze barrier at its safe point, and maps pinned
 * staging buffers. Optional: without the module every call reports an error the caller ignores.
 */
#ifndef GMIG_UMD_KMOD_H
#define GMIG_UMD_KMOD_H

#include <stdint.h>

#include "staging.h"

#define GMIG_KMOD_DEVICE_ENV	"GMIG_DEVICE"	/* the device's path, or "none" */

/* Opens the device and registers this process as a client: the fd, or -errno. */
int gmig_kmod_open(void);
/* Accepts a negative fd. */
void gmig_kmod_close(int fd);
/*
 * Acks the kernel's barrier: the gate is closed and the work drained. 0, -ESRCH when no
 * kernel freeze is in progress (the agent does not use the barrier), -EBADF without the module.
 */
int gmig_kmod_frozen(int fd);
/*
 * Maps @fd when it is a gmig.ko staging buffer holding 2 x slots x slot_size bytes, and takes
 * it (closed, mapped or not). -ENOTTY, with @fd left open, when it is not such a buffer.
 */
int gmig_kmod_staging_map(struct gmig_staging_area *st, int fd, uint32_t slots,
			  uint32_t slot_size);

#endif
