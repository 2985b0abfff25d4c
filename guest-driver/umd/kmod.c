/* gmig.ko from the client's side: registration, barrier acks and pinned staging buffers. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* The module's ABI header lives with the module; libgmig's build adds no include path for it. */
#include "../kmd/include/uapi/gmig.h"

#include "kmod.h"

int gmig_kmod_open(void)
{
	const char *path = getenv(GMIG_KMOD_DEVICE_ENV);
	struct gmig_kmd_version v = { .size = sizeof(v) };
	struct gmig_kmd_register r = { .size = sizeof(r), .role = GMIG_KMD_ROLE_CLIENT };
	int fd, err;

	if (!path || !*path)
		path = GMIG_KMD_DEVICE;
	if (!strcmp(path, "none"))
		return -ENODEV;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, GMIG_IOC_VERSION, &v) || v.abi != GMIG_KMD_ABI_VERSION) {
		err = v.abi ? -EPROTO : -errno;
		goto out_close;
	}
	if (ioctl(fd, GMIG_IOC_REGISTER, &r)) {
		err = -errno;
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return err;
}

void gmig_kmod_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

int gmig_kmod_frozen(int fd)
{
	struct gmig_kmd_op op = { .size = sizeof(op) };

	if (fd < 0)
		return -EBADF;
	return ioctl(fd, GMIG_IOC_FROZEN, &op) ? -errno : 0;
}

int gmig_kmod_staging_map(struct gmig_staging_area *st, int fd, uint32_t slots,
			  uint32_t slot_size)
{
	struct gmig_kmd_staging_phys ph = { .size = sizeof(ph) };

	/* Only a gmig.ko buffer answers this ioctl (with ENOSPC for an empty array). */
	if (!ioctl(fd, GMIG_IOC_STAGING_PHYS, &ph) || errno != ENOSPC)
		return -ENOTTY;
	/* Its size cannot change: the agent cannot pull pages from under this mapping. */
	return gmig_staging_map_fd(st, fd, slots, slot_size, ph.bytes);
}
