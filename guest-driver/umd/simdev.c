/*
 * Simulated GPU devices: the device file's header, granule ownership table and mappings; the
 * file is a host file or, inside a VM, the BAR of an ivshmem PCI device backed by one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmig/simdev.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the device file is little-endian");

#define HEADER_SIZE	4096u
#define FORMAT_VERSION	1u
#define PCI_ID_MAX	16	/* bytes of a sysfs vendor or device file */

/* The first HEADER_SIZE bytes of a device file. */
struct header {
	char magic[8];
	uint32_t version;
	uint32_t granule;
	uint64_t mem_bytes;
	uint8_t uuid[16];
	char name[64];
	char model[64];
};

struct gmig_simdev {
	int fd;
	uint32_t *owners;	/* the shared owner table; changed only under flock */
	uint32_t granules;
	struct gmig_simdev_info info;
};

static int header_check(const struct header *h, uint64_t file_size)
{
	if (memcmp(h->magic, GMIG_SIMDEV_MAGIC, sizeof(h->magic)) || h->version != FORMAT_VERSION)
		return -EINVAL;
	if (h->granule != GMIG_SIMDEV_GRANULE || !h->mem_bytes || h->mem_bytes % h->granule)
		return -EINVAL;
	if (h->mem_bytes / h->granule > GMIG_SIMDEV_MAX_GRANULES)
		return -EINVAL;
	if (file_size < GMIG_SIMDEV_DATA_OFFSET + h->mem_bytes)
		return -EINVAL;
	if (!memchr(h->name, 0, sizeof(h->name)) || !memchr(h->model, 0, sizeof(h->model)))
		return -EINVAL;
	return 0;
}

/*
 * Reads @len bytes at @off (page-aligned). A PCI BAR's sysfs file cannot be read, only
 * mapped: then the bytes come through a mapping.
 */
static int read_at(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);
	void *map;

	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		return -EINVAL;
	if (errno != EIO && errno != EINVAL)
		return -errno;
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, off);
	if (map == MAP_FAILED)
		return -errno;
	memcpy(buf, map, len);
	munmap(map, len);
	return 0;
}

/* Reads and checks the header of an open device file; fills info. */
static int read_header(int fd, const char *path, struct gmig_simdev_info *info)
{
	struct header h;
	struct stat st;
	int err;

	if (fstat(fd, &st))
		return -errno;
	err = read_at(fd, &h, sizeof(h), 0);
	if (err)
		return err;
	/* A PCI BAR reports its size as 0 or 4096 in st_size; trust only regular files' sizes. */
	if (header_check(&h, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : UINT64_MAX))
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	snprintf(info->path, sizeof(info->path), "%s", path);
	memcpy(info->name, h.name, sizeof(info->name));
	memcpy(info->model, h.model, sizeof(info->model));
	memcpy(info->uuid, h.uuid, sizeof(info->uuid));
	info->mem_bytes = h.mem_bytes;
	return 0;
}

static uint32_t count_free(const uint32_t *owners, uint32_t granules)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < granules; i++)
		n += !owners[i];
	return n;
}

int gmig_simdev_create(const char *path, uint64_t mem_bytes, const char *name)
{
	struct header h = { .version = FORMAT_VERSION, .granule = GMIG_SIMDEV_GRANULE };
	int fd, err = 0;

	if (!mem_bytes || !name || strlen(name) >= sizeof(h.name))
		return -EINVAL;
	mem_bytes = (mem_bytes + GMIG_SIMDEV_GRANULE - 1) / GMIG_SIMDEV_GRANULE * GMIG_SIMDEV_GRANULE;
	if (mem_bytes / GMIG_SIMDEV_GRANULE > GMIG_SIMDEV_MAX_GRANULES)
		return -EFBIG;
	memcpy(h.magic, GMIG_SIMDEV_MAGIC, sizeof(h.magic));
	h.mem_bytes = mem_bytes;
	snprintf(h.name, sizeof(h.name), "%s", name);
	snprintf(h.model, sizeof(h.model), "gmig simulated GPU");
	if (getrandom(h.uuid, sizeof(h.uuid), 0) != sizeof(h.uuid))
		return -EIO;
	h.uuid[6] = (uint8_t)((h.uuid[6] & 0x0f) | 0x40);	/* RFC 4122 version 4 */
	h.uuid[8] = (uint8_t)((h.uuid[8] & 0x3f) | 0x80);

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0)
		return -errno;
	/* Sparse: device memory costs nothing until written. */
	if (ftruncate(fd, (off_t)(GMIG_SIMDEV_DATA_OFFSET + mem_bytes)) ||
	    pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		err = errno ? -errno : -EIO;
	close(fd);
	if (err)
		unlink(path);
	return err;
}

int gmig_simdev_stat(const char *path, struct gmig_simdev_info *info)
{
	uint32_t granules, *owners;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = read_header(fd, path, info);
	if (err)
		goto out_close;
	granules = (uint32_t)(info->mem_bytes / GMIG_SIMDEV_GRANULE);
	owners = calloc(granules, sizeof(*owners));
	if (!owners) {
		err = -ENOMEM;
		goto out_close;
	}
	err = read_at(fd, owners, granules * sizeof(*owners), HEADER_SIZE);
	if (!err)
		info->granules_free = count_free(owners, granules);
	free(owners);
out_close:
	close(fd);
	return err;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct gmig_simdev_info *)a)->path, ((const struct gmig_simdev_info *)b)->path);
}

/* Whether the sysfs file @dir/@name holds the number @want ("0x1af4\n"). */
static bool id_is(const char *dir, const char *name, unsigned long want)
{
	char path[PATH_MAX], text[PCI_ID_MAX];
	ssize_t n;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	return strtoul(text, NULL, 16) == want;
}

/* The BAR of an ivshmem device at @dir (a PCI device's sysfs directory), in @path. */
static bool ivshmem_bar(const char *dir, char *path, size_t len)
{
	if (!id_is(dir, "vendor", GMIG_SIMDEV_PCI_VENDOR) ||
	    !id_is(dir, "device", GMIG_SIMDEV_PCI_DEVICE))
		return false;
	return snprintf(path, len, "%s/" GMIG_SIMDEV_PCI_BAR, dir) < (int)len;
}

/*
 * A hot-plugged PCI device decodes its BAR only once enabled; nothing in the guest binds a
 * driver to ivshmem, so whoever opens the BAR enables it (a no-op when it is already).
 */
static void pci_enable(const char *path)
{
	size_t bar = strlen(GMIG_SIMDEV_PCI_BAR), n = strlen(path);
	char enable[PATH_MAX];
	int fd;

	if (n <= bar || strcmp(path + n - bar, GMIG_SIMDEV_PCI_BAR) || path[n - bar - 1] != '/')
		return;
	if (snprintf(enable, sizeof(enable), "%.*senable", (int)(n - bar), path) >=
	    (int)sizeof(enable))
		return;
	fd = open(enable, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "1", 1) < 0) {
		/* Not ours to enable (no privilege, no such file): the mapping will tell. */
	}
	close(fd);
}

int gmig_simdev_list(const char *dir, struct gmig_simdev_info *out, int max)
{
	struct dirent *e;
	char path[PATH_MAX], sub[PATH_MAX];
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) && n < max) {
		if (e->d_name[0] == '.')
			continue;
		if (!strncmp(e->d_name, GMIG_SIMDEV_PREFIX, strlen(GMIG_SIMDEV_PREFIX))) {
			if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
				continue;
		} else {
			/* A directory of PCI devices (/sys/bus/pci/devices): take ivshmem BARs. */
			if (snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub) ||
			    !ivshmem_bar(sub, path, sizeof(path)))
				continue;
			pci_enable(path);
		}
		if (gmig_simdev_stat(path, &out[n]) == 0)
			n++;
	}
	closedir(d);
	qsort(out, (size_t)n, sizeof(*out), by_path);
	return n;
}

int gmig_simdev_open(const char *path, struct gmig_simdev **devp)
{
	struct gmig_simdev *dev = calloc(1, sizeof(*dev));
	int err;

	if (!dev)
		return -ENOMEM;
	pci_enable(path);
	dev->fd = open(path, O_RDWR | O_CLOEXEC);
	if (dev->fd < 0) {
		err = -errno;
		goto out_free;
	}
	err = read_header(dev->fd, path, &dev->info);
	if (err)
		goto out_close;
	dev->granules = (uint32_t)(dev->info.mem_bytes / GMIG_SIMDEV_GRANULE);
	dev->owners = mmap(NULL, GMIG_SIMDEV_DATA_OFFSET - HEADER_SIZE, PROT_READ | PROT_WRITE,
			   MAP_SHARED, dev->fd, HEADER_SIZE);
	if (dev->owners == MAP_FAILED) {
		err = -errno;
		goto out_close;
	}
	*devp = dev;
	return 0;

out_close:
	close(dev->fd);
out_free:
	free(dev);
	return err;
}

void gmig_simdev_close(struct gmig_simdev *dev)
{
	if (!dev)
		return;
	munmap(dev->owners, GMIG_SIMDEV_DATA_OFFSET - HEADER_SIZE);
	close(dev->fd);
	free(dev);
}

void gmig_simdev_get_info(const struct gmig_simdev *dev, struct gmig_simdev_info *info)
{
	*info = dev->info;
	info->granules_free = count_free(dev->owners, dev->granules);
}

static bool owner_dead(uint32_t pid)
{
	return pid && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int gmig_simdev_alloc(struct gmig_simdev *dev, uint32_t pid, uint64_t *offset)
{
	int err = -ENOSPC;

	if (!pid)
		return -EINVAL;
	if (flock(dev->fd, LOCK_EX))
		return -errno;
	for (uint32_t i = 0; i < dev->granules; i++) {
		/* The owner table lives in a file any process may write: trust no pid in it. */
		if (dev->owners[i] && !owner_dead(dev->owners[i]))
			continue;
		dev->owners[i] = pid;
		*offset = (uint64_t)i * GMIG_SIMDEV_GRANULE;
		err = 0;
		break;
	}
	flock(dev->fd, LOCK_UN);
	return err;
}

static int granule_index(const struct gmig_simdev *dev, uint64_t offset, uint32_t *index)
{
	if (offset % GMIG_SIMDEV_GRANULE || offset / GMIG_SIMDEV_GRANULE >= dev->granules)
		return -EINVAL;
	*index = (uint32_t)(offset / GMIG_SIMDEV_GRANULE);
	return 0;
}

int gmig_simdev_free(struct gmig_simdev *dev, uint32_t pid, uint64_t offset)
{
	uint32_t i;
	int err = granule_index(dev, offset, &i);

	if (err)
		return err;
	if (flock(dev->fd, LOCK_EX))
		return -errno;
	if (dev->owners[i] == pid)
		dev->owners[i] = 0;
	else
		err = -EPERM;
	flock(dev->fd, LOCK_UN);
	return err;
}

int gmig_simdev_map(struct gmig_simdev *dev, uint64_t offset, void *at)
{
	uint32_t i;
	int err = granule_index(dev, offset, &i);

	if (err)
		return err;
	if (mmap(at, GMIG_SIMDEV_GRANULE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, dev->fd,
		 (off_t)(GMIG_SIMDEV_DATA_OFFSET + offset)) == MAP_FAILED)
		return -errno;
	return 0;
}
