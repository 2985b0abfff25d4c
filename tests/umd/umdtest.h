/* Helpers shared by libgmig's test suites: private device directories, devices, random bytes. */
#ifndef GMIG_UMDTEST_H
#define GMIG_UMDTEST_H

#include <stdint.h>

#include <stddef.h>

#include "gmig/simdev.h"

#define UT_MIB	(1ull << 20)

/* A fresh directory under /dev/shm for one suite's devices; ut_dir_remove takes it and all in it away. */
void ut_dir_create(char *dir, size_t cap);
void ut_dir_remove(const char *dir);

/* Creates device `name` of bytes in dir; path and uuid out (either may be NULL). */
void ut_device(const char *dir, const char *name, uint64_t bytes, char *path, size_t cap,
	       uint8_t *uuid);
/* Free granules of the device file at path. */
uint32_t ut_device_free(const char *path);

/* splitmix64: a fixed seed gives the same sequence everywhere. */
uint64_t ut_rand(uint64_t *state);
void ut_fill(void *buf, size_t len, uint64_t *state);

#endif
