/* The guest's GPUs for INV_GPUS and gmig-inventory: simulated devices, PCI sysfs, and libdrm. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xf86drm.h>

#include "gmig/simdev.h"

#include "inventory.h"

#define NVIDIA_VENDOR		0x10de
#define NVIDIA_PROC		"/proc/driver/nvidia/gpus"
#define PCI_CLASS_DISPLAY	0x03	/* base class of VGA, 3D and other display controllers */

/* Reads a small text file into @buf; the length, or -1. */
static ssize_t read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static int read_hex(const char *dir, const char *name, unsigned long *out)
{
	char path[512], buf[64], *end;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (read_text(path, buf, sizeof(buf)) <= 0)
		return -1;
	*out = strtoul(buf, &end, 16);
	return end == buf ? -1 : 0;
}

/* "dddd:bb:dd.f": the only names a PCI device directory may have. */
static bool pci_name_ok(const char *s)
{
	static const char form[] = "xxxx:xx:xx.x";

	if (strlen(s) != sizeof(form) - 1)
		return false;
	for (size_t i = 0; form[i]; i++) {
		if (form[i] == 'x' ? !isxdigit((unsigned char)s[i]) : s[i] != form[i])
			return false;
	}
	return true;
}

static void set_text(char *dst, size_t size, const char *src)
{
	size_t j = 0;

	/* Record text holds no control characters. */
	for (size_t i = 0; src[i] && j + 1 < size; i++)
		dst[j++] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
	dst[j] = '\0';
}

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into 16 bytes. */
static bool parse_uuid(const char *s, uint8_t *uuid)
{
	unsigned int n = 0;

	if (!strncmp(s, "GPU-", 4))
		s += 4;
	for (; *s && n < 32; s++) {
		if (*s == '-')
			continue;
		if (!isxdigit((unsigned char)*s))
			return false;
		if (n % 2 == 0)
			uuid[n / 2] = (uint8_t)(hexval((unsigned char)*s) << 4);
		else
			uuid[n / 2] |= (uint8_t)hexval((unsigned char)*s);
		n++;
	}
	return n == 32;
}

/* NVIDIA's driver tells the model and UUID of each GPU in /proc. */
static void nvidia_details(struct gmig_rec_gpu *g)
{
	char path[256], buf[4096], *line, *save = NULL;

	snprintf(path, sizeof(path), NVIDIA_PROC "/%s/information", g->pci);
	if (read_text(path, buf, sizeof(buf)) <= 0)
		return;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':'), *v;

		if (!colon)
			continue;
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (!strcmp(line, "Model"))
			set_text(g->model, sizeof(g->model), v);
		else if (!strcmp(line, "GPU UUID"))
			parse_uuid(v, g->uuid);
	}
}

static bool have_pci(const struct gmig_rec_gpu *out, unsigned int n, const char *pci)
{
	for (unsigned int i = 0; i < n; i++) {
		if (!strcmp(out[i].pci, pci))
			return true;
	}
	return false;
}

static void pci_fill(struct gmig_rec_gpu *g, const char *pci, unsigned int vendor,
		     unsigned int device)
{
	memset(g, 0, sizeof(*g));
	set_text(g->pci, sizeof(g->pci), pci);
	g->vendor = (uint16_t)vendor;
	g->device = (uint16_t)device;
	g->backend = vendor == NVIDIA_VENDOR ? GMIG_BACKEND_CUDA : GMIG_BACKEND_DRM;
	snprintf(g->model, sizeof(g->model), "PCI %04x:%04x", vendor & 0xffff, device & 0xffff);
	if (vendor == NVIDIA_VENDOR)
		nvidia_details(g);
}

/* Display controllers under <sysfs>/bus/pci/devices. */
static unsigned int scan_sysfs(const char *sysfs, struct gmig_rec_gpu *out, unsigned int n,
			       unsigned int max)
{
	char dir[CONFIG_PATH_MAX + 32], dev[PATH_MAX], buf[64];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/bus/pci/devices", sysfs);
	d = opendir(dir);
	if (!d)
		return n;
	while ((e = readdir(d)) && n < max) {
		unsigned long cls, vendor, device;

		if (!pci_name_ok(e->d_name) || have_pci(out, n, e->d_name))
			continue;
		snprintf(dev, sizeof(dev), "%s/%s", dir, e->d_name);
		if (read_hex(dev, "class", &cls) || (cls >> 16) != PCI_CLASS_DISPLAY)
			continue;
		if (read_hex(dev, "vendor", &vendor) || read_hex(dev, "device", &device))
			continue;
		pci_fill(&out[n], e->d_name, (unsigned int)vendor, (unsigned int)device);
		/* amdgpu tells its memory; other drivers do not say it here. */
		snprintf(dev, sizeof(dev), "%s/%s/mem_info_vram_total", dir, e->d_name);
		if (read_text(dev, buf, sizeof(buf)) > 0)
			out[n].mem_bytes = strtoull(buf, NULL, 10);
		n++;
	}
	closedir(d);
	return n;
}

/* Devices the DRM subsystem knows, for those sysfs did not show (e.g. another sysfs root). */
static unsigned int scan_drm(struct gmig_rec_gpu *out, unsigned int n, unsigned int max)
{
	drmDevicePtr devs[GMIG_GPUS_MAX];
	int count = drmGetDevices2(0, devs, GMIG_GPUS_MAX);
	char pci[16];

	if (count <= 0)
		return n;
	for (int i = 0; i < count && n < max; i++) {
		drmDevicePtr d = devs[i];

		if (d->bustype != DRM_BUS_PCI)
			continue;
		snprintf(pci, sizeof(pci), "%04x:%02x:%02x.%x", d->businfo.pci->domain,
			 d->businfo.pci->bus, d->businfo.pci->dev, d->businfo.pci->func);
		if (have_pci(out, n, pci))
			continue;
		pci_fill(&out[n], pci, d->deviceinfo.pci->vendor_id, d->deviceinfo.pci->device_id);
		n++;
	}
	drmFreeDevices(devs, count);
	return n;
}

static unsigned int scan_sim(const char *dir, struct gmig_rec_gpu *out, unsigned int max)
{
	static struct gmig_simdev_info info[GMIG_GPUS_MAX];
	int count = gmig_simdev_list(dir, info, (int)(max < GMIG_GPUS_MAX ? max : GMIG_GPUS_MAX));
	unsigned int n = 0;

	for (int i = 0; i < count; i++, n++) {
		struct gmig_rec_gpu *g = &out[n];

		memset(g, 0, sizeof(*g));
		g->mem_bytes = info[i].mem_bytes;
		memcpy(g->uuid, info[i].uuid, sizeof(g->uuid));
		set_text(g->model, sizeof(g->model), info[i].model[0] ? info[i].model : info[i].name);
		g->backend = GMIG_BACKEND_SIM;
	}
	return n;
}

static int by_pci(const void *x, const void *y)
{
	return strcmp(((const struct gmig_rec_gpu *)x)->pci, ((const struct gmig_rec_gpu *)y)->pci);
}

unsigned int inventory_gpus(const struct agent_config *cfg, struct gmig_rec_gpu *out,
			    unsigned int max)
{
	unsigned int nsim = scan_sim(cfg->sim_dir, out, max), n;

	n = scan_sysfs(cfg->sysfs_dir, out, nsim, max);
	/* libdrm reads the real /sys: only when the inventory looks at it. */
	if (!strcmp(cfg->sysfs_dir, "/sys"))
		n = scan_drm(out, n, max);
	/* Directory order is no order: PCI devices by address, so indexes are stable. */
	qsort(out + nsim, n - nsim, sizeof(*out), by_pci);
	for (unsigned int i = 0; i < n; i++)
		out[i].index = i;
	return n;
}
