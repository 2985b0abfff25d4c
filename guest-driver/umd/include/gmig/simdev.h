/*
 * Simulated GPU devices: a device is a file (under /dev/shm, or a PCI BAR
 * such as an ivshmem region in a VM) holding a header, a granule ownership
 * table and the device memory. Whoever plays the host creates it; a "new
 * GPU" is a new file. It stands in for a GPU where none can be.
 *
 * Layout: bytes [0, 4096) header; [4096, GMIG_SIMDEV_DATA_OFFSET) the owner
 * table, one little-endian u32 pid per granule (0 = free); device memory from
 * GMIG_SIMDEV_DATA_OFFSET on, in granules of GMIG_SIMDEV_GRANULE bytes.
 * Allocation takes flock(LOCK_EX) on the file; granules of dead owners are
 * reclaimed.
 *
 * In a VM the host's device file is the memory of an ivshmem-plain PCI device
 * (vendor 0x1af4, device 0x1110); its BAR 2 is the file's bytes, so the guest
 * opens /sys/bus/pci/devices/<bdf>/resource2 as the device file. Note that QEMU
 * wants a power-of-two BAR: create such files with a size of 2^n - 2 MiB.
 */
#ifndef GMIG_SIMDEV_H
#define GMIG_SIMDEV_H

#include <stdint.h>

#define GMIG_SIMDEV_MAGIC	"GMIGSIM1"
#define GMIG_SIMDEV_GRANULE	(2u << 20)
#define GMIG_SIMDEV_DATA_OFFSET	(2u << 20)
#define GMIG_SIMDEV_MAX_GRANULES ((GMIG_SIMDEV_DATA_OFFSET - 4096) / 4)	/* ~1 TiB */
#define GMIG_SIMDEV_PREFIX	"gmig-sim-"	/* file names found by gmig_simdev_list */
#define GMIG_SIMDEV_PCI_VENDOR	0x1af4		/* ivshmem (Red Hat, Inc.) */
#define GMIG_SIMDEV_PCI_DEVICE	0x1110
#define GMIG_SIMDEV_PCI_BAR	"resource2"	/* the shared memory BAR's sysfs file */
#define GMIG_SIMDEV_PCI_DIR	"/sys/bus/pci/devices"

struct gmig_simdev;

struct gmig_simdev_info {
	char path[256];
	char name[64];
	char model[64];
	uint8_t uuid[16];
	uint64_t mem_bytes;	/* device memory, a whole number of granules */
	uint32_t granules_free;
};

/* Creates a new device file of mem_bytes (rounded up to granules), random UUID. */
int gmig_simdev_create(const char *path, uint64_t mem_bytes, const char *name);
/*
 * Lists valid device files named GMIG_SIMDEV_PREFIX* in dir and, when dir holds PCI device
 * directories (GMIG_SIMDEV_PCI_DIR), the BARs of ivshmem devices (enabling them); by path.
 * Returns the count.
 */
int gmig_simdev_list(const char *dir, struct gmig_simdev_info *out, int max);
/* Reads a device's header; -EINVAL for a file that is not a valid device. */
int gmig_simdev_stat(const char *path, struct gmig_simdev_info *info);

int gmig_simdev_open(const char *path, struct gmig_simdev **dev);
void gmig_simdev_close(struct gmig_simdev *dev);
void gmig_simdev_get_info(const struct gmig_simdev *dev, struct gmig_simdev_info *info);

/* Takes a free granule for pid; returns its offset in device memory. -ENOSPC when full. */
int gmig_simdev_alloc(struct gmig_simdev *dev, uint32_t pid, uint64_t *offset);
int gmig_simdev_free(struct gmig_simdev *dev, uint32_t pid, uint64_t offset);
/* Maps the granule at device offset over [at, at + GMIG_SIMDEV_GRANULE), MAP_FIXED. */
int gmig_simdev_map(struct gmig_simdev *dev, uint64_t offset, void *at);

#endif
