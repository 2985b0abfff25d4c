/* Helpers shared by libgmig's test suites: private device directories, devices, random bytes. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "umdtest.h"

void ut_dir_create(char *dir, size_t cap)
{
	snprintf(dir, cap, "/dev/shm/gmig-test-umd.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void ut_dir_remove(const char *dir)
{
	if (dir[0])
		nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

void ut_device(const char *dir, const char *name, uint64_t bytes, char *path, size_t cap,
	       uint8_t *uuid)
{
	struct gmig_simdev_info info;
	char p[256];

	snprintf(p, sizeof(p), "%s/" GMIG_SIMDEV_PREFIX "%s", dir, name);
	ck_assert_int_eq(gmig_simdev_create(p, bytes, name), 0);
	ck_assert_int_eq(gmig_simdev_stat(p, &info), 0);
	if (path)
		snprintf(path, cap, "%s", p);
	if (uuid)
		memcpy(uuid, info.uuid, sizeof(info.uuid));
}

uint32_t ut_device_free(const char *path)
{
	struct gmig_simdev_info info;

	ck_assert_int_eq(gmig_simdev_stat(path, &info), 0);
	return info.granules_free;
}

uint64_t ut_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void ut_fill(void *buf, size_t len, uint64_t *state)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)ut_rand(state);
}
