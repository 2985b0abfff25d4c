/* gmig-simdev: creates, lists, shows and removes simulated GPU devices. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmig/simdev.h"

#define LIST_MAX 256

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gmig-simdev create PATH [--size SIZE] [--name NAME]\n"
		"       gmig-simdev list [DIR]\n"
		"       gmig-simdev info PATH\n"
		"       gmig-simdev rm PATH\n"
		"\n"
		"Manages simulated GPUs: files that stand in for a GPU's memory where no GPU\n"
		"can be (tests, demos). Programs using the gsim API find them in $GMIG_SIM_DIR\n"
		"(default /dev/shm) by the prefix " GMIG_SIMDEV_PREFIX ".\n"
		"\n"
		"In a VM, such a file given to QEMU as an ivshmem-plain device's memory is the\n"
		"device's BAR 2: list " GMIG_SIMDEV_PCI_DIR " finds it (GMIG_SIM_DIR=" GMIG_SIMDEV_PCI_DIR "\n"
		"for programs). QEMU wants a power-of-two BAR: create files of 2^n - 2 MiB\n"
		"(--size 30M makes a 32 MiB file).\n"
		"\n"
		"  -s, --size SIZE   device memory, with K, M or G (default 1G); rounded up to 2 MiB\n"
		"  -n, --name NAME   device name (default: the file name)\n"
		"  -h, --help        show this help\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'G': case 'g': shift = 30; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'K': case 'k': shift = 10; end++; break;
	default: break;
	}
	if (*end || !v || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static void print_uuid(const uint8_t *u)
{
	for (int i = 0; i < 16; i++)
		printf("%02x%s", u[i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
}

static void print_info(const struct gmig_simdev_info *info)
{
	printf("%s\n  name   %s\n  model  %s\n  uuid   ", info->path, info->name, info->model);
	print_uuid(info->uuid);
	printf("\n  memory %llu MiB, %u of %llu granules free\n",
	       (unsigned long long)info->mem_bytes >> 20, info->granules_free,
	       (unsigned long long)(info->mem_bytes / GMIG_SIMDEV_GRANULE));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct gmig_simdev_info info, *list;
	uint64_t size = 1ull << 30;
	const char *name = NULL, *cmd, *arg;
	int c, n, err;

	while ((c = getopt_long(argc, argv, "s:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_size(optarg, &size)) {
				fprintf(stderr, "gmig-simdev: bad size '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	arg = optind < argc ? argv[optind++] : NULL;
	if (optind != argc || (!arg && strcmp(cmd, "list"))) {
		usage(stderr);
		return 2;
	}

	if (!strcmp(cmd, "create")) {
		if (!name) {
			name = strrchr(arg, '/');
			name = name ? name + 1 : arg;
		}
		err = gmig_simdev_create(arg, size, name);
		if (!err && !(err = gmig_simdev_stat(arg, &info)))
			print_info(&info);
	} else if (!strcmp(cmd, "list")) {
		list = calloc(LIST_MAX, sizeof(*list));
		if (!list)
			return 1;
		n = gmig_simdev_list(arg ? arg : "/dev/shm", list, LIST_MAX);
		for (int i = 0; i < n; i++)
			print_info(&list[i]);
		err = n < 0 ? n : 0;
		free(list);
	} else if (!strcmp(cmd, "info")) {
		if (!(err = gmig_simdev_stat(arg, &info)))
			print_info(&info);
	} else if (!strcmp(cmd, "rm")) {
		/* Only ever remove what is a device. */
		err = gmig_simdev_stat(arg, &info);
		if (!err && unlink(arg))
			err = -errno;
	} else {
		fprintf(stderr, "gmig-simdev: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	if (err) {
		fprintf(stderr, "gmig-simdev: %s %s: %s\n", cmd, arg ? arg : "",
			err == -EINVAL ? "not a simulated GPU device" : strerror(-err));
		return 1;
	}
	return 0;
}
