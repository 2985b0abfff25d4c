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
	uint64_t need = 2ull * slots * slot_size;
	void *mem;
	int err = -EINVAL;

	/* Only a gmig.ko buffer answers this ioctl (with ENOSPC for an empty array). */
	if (!ioctl(fd, GMIG_IOC_STAGING_PHYS, &ph) || errno != ENOSPC)
		return -ENOTTY;
	memset(st, 0, sizeof(*st));
	if (!slots || slots > GMIG_SLOTS_MAX || !slot_size || (slot_size & (slot_size - 1)) ||
	    ph.bytes < need)
		goto out_close;
	/* Its size cannot change: the agent cannot pull pages from under this mapping. */
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
