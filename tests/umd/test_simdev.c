/* Check suite for simulated GPU device files: create, list, validate, allocate, map. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmig/simdev.h"

static char dir[64];
static char path[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/dev/shm/gmig-test-simdev.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/" GMIG_SIMDEV_PREFIX "a", dir);
}

static void teardown(void)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_create_and_stat)
{
	struct gmig_simdev_info info;

	ck_assert_int_eq(gmig_simdev_create(path, 5u << 20, "gpu-a"), 0);
	ck_assert_int_eq(gmig_simdev_stat(path, &info), 0);
	ck_assert_str_eq(info.name, "gpu-a");
	ck_assert_str_eq(info.path, path);
	/* Rounded up to whole granules. */
	ck_assert_uint_eq(info.mem_bytes, 3 * GMIG_SIMDEV_GRANULE);
	ck_assert_uint_eq(info.granules_free, 3);
	ck_assert_uint_eq(info.uuid[6] >> 4, 4);
	/* A second create of the same path fails and keeps the first. */
	ck_assert_int_eq(gmig_simdev_create(path, 1 << 20, "other"), -EEXIST);
	ck_assert_int_eq(gmig_simdev_stat(path, &info), 0);
	ck_assert_str_eq(info.name, "gpu-a");
	ck_assert_int_eq(gmig_simdev_create(path, 0, "x"), -EINVAL);
	ck_assert_int_eq(gmig_simdev_create(path, 1 << 20, NULL), -EINVAL);
}
END_TEST

/* Writes n bytes at off into the device file at path. */
static void poke(const char *p, off_t off, const void *data, size_t n)
{
	int fd = open(p, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, data, n, off), (ssize_t)n);
	close(fd);
}

/* Header bytes that make a file not a device. Offsets follow struct header in simdev.c. */
static const struct bad_header_row {
	off_t off;
	uint64_t value;
	unsigned width;
} bad_rows[] = {
	/* 1 magic */ { 0, 'X', 1 },
	/* 2 version */ { 8, 2, 4 },
	/* 3 granule */ { 12, 4096, 4 },
	/* 4 mem_bytes zero */ { 16, 0, 8 },
	/* 5 mem_bytes not whole granules */ { 16, (2u << 20) + 1, 8 },
	/* 6 mem_bytes beyond the file */ { 16, 64ull << 20, 8 },
	/* 7 mem_bytes beyond the table */ { 16, (uint64_t)(GMIG_SIMDEV_MAX_GRANULES + 1) * GMIG_SIMDEV_GRANULE, 8 },
};

START_TEST(test_bad_headers)
{
	const struct bad_header_row *r = &bad_rows[_i];
	struct gmig_simdev_info info;
	struct gmig_simdev *dev;

	ck_assert_int_eq(gmig_simdev_create(path, 4u << 20, "gpu"), 0);
	poke(path, r->off, &r->value, r->width);
	ck_assert_msg(gmig_simdev_stat(path, &info) == -EINVAL, "row %d", _i + 1);
	ck_assert_int_eq(gmig_simdev_open(path, &dev), -EINVAL);
}
END_TEST

START_TEST(test_unterminated_name_and_short_file)
{
	struct gmig_simdev_info info;
	char name[64];
	int fd;

	ck_assert_int_eq(gmig_simdev_create(path, 4u << 20, "gpu"), 0);
	memset(name, 'n', sizeof(name));
	poke(path, 40, name, sizeof(name));
	ck_assert_int_eq(gmig_simdev_stat(path, &info), -EINVAL);

	fd = open(path, O_RDWR | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, GMIG_SIMDEV_MAGIC, 8), 8);
	close(fd);
	ck_assert_int_eq(gmig_simdev_stat(path, &info), -EINVAL);
	ck_assert_int_eq(gmig_simdev_stat("/nonexistent/gmig-sim-x", &info), -ENOENT);
}
END_TEST

START_TEST(test_list_skips_junk)
{
	struct gmig_simdev_info out[8];
	char p[160];
	FILE *f;

	snprintf(p, sizeof(p), "%s/" GMIG_SIMDEV_PREFIX "b", dir);
	ck_assert_int_eq(gmig_simdev_create(p, 2u << 20, "b"), 0);
	ck_assert_int_eq(gmig_simdev_create(path, 2u << 20, "a"), 0);
	snprintf(p, sizeof(p), "%s/" GMIG_SIMDEV_PREFIX "junk", dir);
	f = fopen(p, "w");
	fputs("not a device", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/other-name", dir);
	ck_assert_int_eq(gmig_simdev_create(p, 2u << 20, "c"), 0);

	ck_assert_int_eq(gmig_simdev_list(dir, out, 8), 2);
	ck_assert_str_eq(out[0].name, "a");
	ck_assert_str_eq(out[1].name, "b");
	ck_assert_int_eq(gmig_simdev_list(dir, out, 1), 1);
	ck_assert_int_eq(gmig_simdev_list("/nonexistent", out, 8), -ENOENT);
}
END_TEST

static void put_text(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* A fake PCI device directory @bdf with the given ids and, when @dev, a device file as BAR 2. */
static void fake_pci(const char *bdf, const char *vendor, const char *device, const char *name)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, bdf);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/%s/vendor", dir, bdf);
	put_text(p, vendor);
	snprintf(p, sizeof(p), "%s/%s/device", dir, bdf);
	put_text(p, device);
	snprintf(p, sizeof(p), "%s/%s/enable", dir, bdf);
	put_text(p, "0\n");
	if (name) {
		snprintf(p, sizeof(p), "%s/%s/" GMIG_SIMDEV_PCI_BAR, dir, bdf);
		ck_assert_int_eq(gmig_simdev_create(p, 2u << 20, name), 0);
	}
}

/*
 * In a VM: a directory of PCI devices lists the BARs of ivshmem devices (0x1af4:0x1110) and
 * enables them; other devices, ivshmem without a valid BAR, and odd ids are skipped.
 */
START_TEST(test_list_pci)
{
	struct gmig_simdev_info out[8];
	struct gmig_simdev *dev;
	char p[256], text[8] = "";
	FILE *f;

	fake_pci("0000:00:04.0", "0x1af4\n", "0x1110\n", "vm-gpu");
	fake_pci("0000:00:05.0", "0x8086\n", "0x1110\n", "not-ivshmem");
	fake_pci("0000:00:06.0", "0x1af4\n", "0x1000\n", "virtio-net");
	fake_pci("0000:00:07.0", "0x1af4\n", "0x1110\n", NULL);	/* no BAR file */
	fake_pci("0000:00:08.0", "junk", "", NULL);
	ck_assert_int_eq(gmig_simdev_create(path, 2u << 20, "file"), 0);

	ck_assert_int_eq(gmig_simdev_list(dir, out, 8), 2);
	ck_assert_str_eq(out[0].name, "vm-gpu");
	snprintf(p, sizeof(p), "%s/0000:00:04.0/" GMIG_SIMDEV_PCI_BAR, dir);
	ck_assert_str_eq(out[0].path, p);
	ck_assert_uint_eq(out[0].granules_free, 1);
	ck_assert_str_eq(out[1].name, "file");
	/* Listing enabled the device; the one not listed stays as it was. */
	snprintf(p, sizeof(p), "%s/0000:00:04.0/enable", dir);
	f = fopen(p, "r");
	ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
	fclose(f);
	ck_assert_int_eq(text[0], '1');
	snprintf(p, sizeof(p), "%s/0000:00:05.0/enable", dir);
	f = fopen(p, "r");
	ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
	fclose(f);
	ck_assert_int_eq(text[0], '0');
	ck_assert_int_eq(gmig_simdev_open(out[0].path, &dev), 0);
	gmig_simdev_close(dev);
}
END_TEST

START_TEST(test_alloc_free_exhaust)
{
	struct gmig_simdev_info info;
	struct gmig_simdev *dev;
	uint64_t off[4], extra;
	uint32_t me = (uint32_t)getpid();

	ck_assert_int_eq(gmig_simdev_create(path, 3 * GMIG_SIMDEV_GRANULE, "gpu"), 0);
	ck_assert_int_eq(gmig_simdev_open(path, &dev), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(gmig_simdev_alloc(dev, me, &off[i]), 0);
		ck_assert_uint_eq(off[i], (uint64_t)i * GMIG_SIMDEV_GRANULE);
	}
	ck_assert_int_eq(gmig_simdev_alloc(dev, me, &extra), -ENOSPC);
	ck_assert_int_eq(gmig_simdev_alloc(dev, 0, &extra), -EINVAL);
	gmig_simdev_get_info(dev, &info);
	ck_assert_uint_eq(info.granules_free, 0);

	/* Freeing needs the owner and a granule offset inside the device. */
	ck_assert_int_eq(gmig_simdev_free(dev, me + 1, off[1]), -EPERM);
	ck_assert_int_eq(gmig_simdev_free(dev, me, off[1] + 4096), -EINVAL);
	ck_assert_int_eq(gmig_simdev_free(dev, me, 3 * GMIG_SIMDEV_GRANULE), -EINVAL);
	ck_assert_int_eq(gmig_simdev_free(dev, me, off[1]), 0);
	ck_assert_int_eq(gmig_simdev_free(dev, me, off[1]), -EPERM);
	ck_assert_int_eq(gmig_simdev_alloc(dev, me, &extra), 0);
	ck_assert_uint_eq(extra, off[1]);
	gmig_simdev_close(dev);
	gmig_simdev_close(NULL);
}
END_TEST

/* Granules of a process that died are taken back. */
START_TEST(test_reclaim_dead_owner)
{
	struct gmig_simdev *dev;
	uint64_t off;
	pid_t child;
	int status;

	ck_assert_int_eq(gmig_simdev_create(path, GMIG_SIMDEV_GRANULE, "gpu"), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct gmig_simdev *d;

		if (gmig_simdev_open(path, &d) || gmig_simdev_alloc(d, (uint32_t)getpid(), &off))
			_exit(1);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(gmig_simdev_open(path, &dev), 0);
	ck_assert_int_eq(gmig_simdev_alloc(dev, (uint32_t)getpid(), &off), 0);
	ck_assert_uint_eq(off, 0);
	gmig_simdev_close(dev);
}
END_TEST

/* Two openers see the same memory; mappings land where asked. */
START_TEST(test_map_shared)
{
	struct gmig_simdev *a, *b;
	uint64_t off;
	uint8_t *va, *vb;

	ck_assert_int_eq(gmig_simdev_create(path, 2 * GMIG_SIMDEV_GRANULE, "gpu"), 0);
	ck_assert_int_eq(gmig_simdev_open(path, &a), 0);
	ck_assert_int_eq(gmig_simdev_open(path, &b), 0);
	ck_assert_int_eq(gmig_simdev_alloc(a, (uint32_t)getpid(), &off), 0);
	va = mmap(NULL, 2 * GMIG_SIMDEV_GRANULE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	vb = mmap(NULL, GMIG_SIMDEV_GRANULE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(va != MAP_FAILED && vb != MAP_FAILED);
	ck_assert_int_eq(gmig_simdev_map(a, off, va + GMIG_SIMDEV_GRANULE), 0);
	ck_assert_int_eq(gmig_simdev_map(b, off, vb), 0);
	memset(va + GMIG_SIMDEV_GRANULE, 0x5c, 4096);
	ck_assert_uint_eq(vb[4095], 0x5c);
	ck_assert_int_eq(gmig_simdev_map(a, off + 1, va), -EINVAL);
	ck_assert_int_eq(gmig_simdev_map(a, 2 * GMIG_SIMDEV_GRANULE, va), -EINVAL);
	munmap(va, 2 * GMIG_SIMDEV_GRANULE);
	munmap(vb, GMIG_SIMDEV_GRANULE);
	gmig_simdev_close(a);
	gmig_simdev_close(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("simdev");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_create_and_stat);
	tcase_add_loop_test(tc, test_bad_headers, 0, sizeof(bad_rows) / sizeof(bad_rows[0]));
	tcase_add_test(tc, test_unterminated_name_and_short_file);
	tcase_add_test(tc, test_list_skips_junk);
	tcase_add_test(tc, test_list_pci);
	tcase_add_test(tc, test_alloc_free_exhaust);
	tcase_add_test(tc, test_reclaim_dead_owner);
	tcase_add_test(tc, test_map_shared);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
