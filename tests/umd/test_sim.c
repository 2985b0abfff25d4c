/*
 * Check suite for the simulated GPU through the public gsim API, linked
 * against libgmig.so as a program would: devices, memory, copies, streams,
 * kernels. Each test runs in its own process, so each starts libgmig afresh.
 */
#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmig/sim.h"
#include "umdtest.h"

#define G	GMIG_SIMDEV_GRANULE

static char dir[128], devpath[256];
static uint8_t devuuid[16];

static void suite_setup(void)
{
	ut_dir_create(dir, sizeof(dir));
}

static void suite_teardown(void)
{
	ut_dir_remove(dir);
}

static void setup(void)
{
	char name[32];

	snprintf(name, sizeof(name), "e%d", (int)getpid());
	ut_device(dir, name, 8 * G, devpath, sizeof(devpath), devuuid);
	setenv("GMIG_SIM_DIR", dir, 1);
	setenv("GMIG_SIM_DEVICE", devpath, 1);
	setenv("GMIG_DISABLE", "1", 1);
}

static void teardown(void)
{
	unlink(devpath);
}

START_TEST(test_init_and_info)
{
	char empty[200], late[256];
	struct gsim_device_info info;

	/* 1: no device anywhere: -ENODEV, and every call says so */
	snprintf(empty, sizeof(empty), "%s/none%d", dir, (int)getpid());
	ck_assert_int_eq(mkdir(empty, 0700), 0);
	setenv("GMIG_SIM_DIR", empty, 1);
	unsetenv("GMIG_SIM_DEVICE");
	ck_assert_int_eq(gsim_init(), -ENODEV);
	ck_assert_int_eq(gsim_device_info(&info), -ENODEV);
	/* 2: a device that appears later is found: a failure is not kept */
	ut_device(empty, "late", 2 * G, late, sizeof(late), NULL);
	ck_assert_int_eq(gsim_init(), 0);
	ck_assert_int_eq(gsim_device_info(&info), 0);
	ck_assert_str_eq(info.path, late);
	ck_assert_str_eq(info.name, "late");
	ck_assert_uint_eq(info.mem_bytes, 2 * G);
	ck_assert_int_eq(gsim_device_info(NULL), -EINVAL);
	unlink(late);
	rmdir(empty);
}
END_TEST

START_TEST(test_device_by_env)
{
	struct gsim_device_info info;

	/* 1: GMIG_SIM_DEVICE names the device */
	ck_assert_int_eq(gsim_init(), 0);
	ck_assert_int_eq(gsim_device_info(&info), 0);
	ck_assert_str_eq(info.path, devpath);
	ck_assert_mem_eq(info.uuid, devuuid, 16);
	ck_assert_uint_eq(info.mem_bytes, 8 * G);
	ck_assert_str_eq(info.model, "gmig simulated GPU");
}
END_TEST

START_TEST(test_malloc_free)
{
	void *p[4], *big;

	/* 1: 256-byte alignment, distinct blocks */
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(gsim_malloc(&p[i], 1 + 100 * (size_t)i), 0);
		ck_assert_uint_eq((uintptr_t)p[i] % 256, 0);
	}
	ck_assert_ptr_ne(p[0], p[1]);
	/* 2: bad arguments */
	ck_assert_int_eq(gsim_malloc(&big, 0), -EINVAL);
	ck_assert_int_eq(gsim_malloc(NULL, 1), -EINVAL);
	/* 3: more than the device holds */
	ck_assert_int_eq(gsim_malloc(&big, 8 * G + 1), -ENOMEM);
	/* 4: the whole rest of it does fit once the small ones are gone */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(gsim_free(p[i]), 0);
	ck_assert_int_eq(gsim_malloc(&big, 8 * G), 0);
	/* 5: frees: NULL is fine, an inner pointer or a second free is not */
	ck_assert_int_eq(gsim_free(NULL), 0);
	ck_assert_int_eq(gsim_free((char *)big + 256), -EINVAL);
	ck_assert_int_eq(gsim_free(big), 0);
	ck_assert_int_eq(gsim_free(big), -EINVAL);
	ck_assert_int_eq(gsim_free(&big), -EINVAL);
}
END_TEST

START_TEST(test_copies)
{
	static uint8_t host[3][8192];
	uint64_t seed = 1;
	uint8_t *a, *b;

	ck_assert_int_eq(gsim_malloc((void **)&a, 8192), 0);
	ck_assert_int_eq(gsim_malloc((void **)&b, 8192), 0);
	ut_fill(host[0], sizeof(host[0]), &seed);
	/* 1: host to device and back */
	ck_assert_int_eq(gsim_memcpy(a, host[0], 8192, GSIM_HOST_TO_DEVICE), 0);
	ck_assert_int_eq(gsim_memcpy(host[1], a, 8192, GSIM_DEVICE_TO_HOST), 0);
	ck_assert_mem_eq(host[0], host[1], 8192);
	/* 2: device to device */
	ck_assert_int_eq(gsim_memcpy(b, a, 8192, GSIM_DEVICE_TO_DEVICE), 0);
	ck_assert_int_eq(gsim_memcpy(host[2], b, 8192, GSIM_DEVICE_TO_HOST), 0);
	ck_assert_mem_eq(host[0], host[2], 8192);
	/* 3: overlapping device to device moves like memmove */
	ck_assert_int_eq(gsim_memcpy(a + 1, a, 4096, GSIM_DEVICE_TO_DEVICE), 0);
	ck_assert_int_eq(gsim_memcpy(host[1], a, 8192, GSIM_DEVICE_TO_HOST), 0);
	ck_assert_mem_eq(host[1] + 1, host[0], 4096);
	/* 4: memset */
	ck_assert_int_eq(gsim_memset(b + 100, 0x7e, 1000), 0);
	ck_assert_int_eq(gsim_memcpy(host[2], b, 8192, GSIM_DEVICE_TO_HOST), 0);
	ck_assert_uint_eq(host[2][99], host[0][99]);
	ck_assert_uint_eq(host[2][100], 0x7e);
	ck_assert_uint_eq(host[2][1099], 0x7e);
	ck_assert_uint_eq(host[2][1100], host[0][1100]);
	/* 5: nothing to copy is fine, whatever the pointers */
	ck_assert_int_eq(gsim_memcpy(NULL, NULL, 0, GSIM_DEVICE_TO_DEVICE), 0);
	ck_assert_int_eq(gsim_memset(NULL, 0, 0), 0);
	/* 6: a kind that does not exist */
	ck_assert_int_eq(gsim_memcpy(a, host[0], 1, (enum gsim_copy)7), -EINVAL);
	/* 7: device memory that is not allocated, or runs past the allocation */
	ck_assert_int_eq(gsim_memcpy(host[0], host[1], 16, GSIM_HOST_TO_DEVICE), -EFAULT);
	ck_assert_int_eq(gsim_memcpy(host[0], a + 8000, 193, GSIM_DEVICE_TO_HOST), -EFAULT);
	ck_assert_int_eq(gsim_memcpy(b, host[0], 8193, GSIM_HOST_TO_DEVICE), -EFAULT);
	ck_assert_int_eq(gsim_memcpy(b, host[0], 16, GSIM_DEVICE_TO_DEVICE), -EFAULT);
	ck_assert_int_eq(gsim_memset(host[0], 0, 16), -EFAULT);
	/* 8: a missing host pointer */
	ck_assert_int_eq(gsim_memcpy(a, NULL, 16, GSIM_HOST_TO_DEVICE), -EINVAL);
	ck_assert_int_eq(gsim_memcpy(NULL, a, 16, GSIM_DEVICE_TO_HOST), -EINVAL);
	/* 9: memory freed is no longer device memory */
	ck_assert_int_eq(gsim_free(b), 0);
	ck_assert_int_eq(gsim_memcpy(host[0], b, 16, GSIM_DEVICE_TO_HOST), -EFAULT);
}
END_TEST

/* Appends its number to a log in device memory: kernels of one stream run in order. */
struct log_args {
	uint32_t *log;		/* log[0] is the count */
	uint32_t n;
};

static void log_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	struct log_args *a = args;

	(void)block;
	(void)nblocks;
	a->log[1 + a->log[0]++] = a->n;
}

START_TEST(test_stream_order)
{
	static uint32_t host[1 + 1000];
	gsim_stream_t s;
	uint32_t *log;

	ck_assert_int_eq(gsim_stream_create(&s), 0);
	ck_assert_int_eq(gsim_malloc((void **)&log, sizeof(host)), 0);
	ck_assert_int_eq(gsim_memset(log, 0, sizeof(host)), 0);
	for (uint32_t i = 0; i < 1000; i++) {
		struct log_args a = { log, i };

		ck_assert_int_eq(gsim_launch(log_kernel, 1, &a, sizeof(a), s), 0);
	}
	ck_assert_int_eq(gsim_memcpy_async(host, log, sizeof(host), GSIM_DEVICE_TO_HOST, s), 0);
	ck_assert_int_eq(gsim_stream_synchronize(s), 0);
	ck_assert_uint_eq(host[0], 1000);
	for (uint32_t i = 0; i < 1000; i++)
		ck_assert_uint_eq(host[1 + i], i);
	ck_assert_int_eq(gsim_stream_destroy(s), 0);
}
END_TEST

/* x[i] = x[i] * 3 + k over its blocks: the result depends on the order of the k. */
struct axpy_args {
	uint64_t *x;
	uint32_t n, k;
};

static void axpy_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	struct axpy_args *a = args;

	for (uint32_t i = block; i < a->n; i += nblocks)
		a->x[i] = a->x[i] * 3 + a->k;
}

#define STREAMS	48
#define STEPS	40
#define N	512

START_TEST(test_many_streams)
{
	static uint64_t host[STREAMS][N];
	gsim_stream_t s[STREAMS];
	uint64_t *x[STREAMS];

	for (int i = 0; i < STREAMS; i++) {
		ck_assert_int_eq(gsim_stream_create(&s[i]), 0);
		ck_assert_int_eq(gsim_malloc((void **)&x[i], N * sizeof(uint64_t)), 0);
		ck_assert_int_eq(gsim_memset(x[i], 0, N * sizeof(uint64_t)), 0);
	}
	/* Interleaved launches on every stream. */
	for (uint32_t k = 0; k < STEPS; k++)
		for (int i = 0; i < STREAMS; i++) {
			struct axpy_args a = { x[i], N, k + (uint32_t)i };

			ck_assert_int_eq(gsim_launch(axpy_kernel, 1 + k % 5, &a, sizeof(a), s[i]), 0);
		}
	for (int i = 0; i < STREAMS; i++)
		ck_assert_int_eq(gsim_memcpy_async(host[i], x[i], sizeof(host[i]), GSIM_DEVICE_TO_HOST,
						   s[i]), 0);
	ck_assert_int_eq(gsim_device_synchronize(), 0);
	for (int i = 0; i < STREAMS; i++) {
		uint64_t want = 0;

		for (uint32_t k = 0; k < STEPS; k++)
			want = want * 3 + k + (uint32_t)i;
		for (int j = 0; j < N; j++)
			ck_assert_uint_eq(host[i][j], want);
		ck_assert_int_eq(gsim_stream_destroy(s[i]), 0);
	}
}
END_TEST

/* Records its block and the block count; args is the launch's own copy. */
struct blocks_args {
	uint32_t *out;
	uint32_t tag;
	uint8_t pad[4000];
};

static void blocks_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	struct blocks_args *a = args;

	a->out[2 * block] = block + a->tag;
	a->out[2 * block + 1] = nblocks;
}

static void nop_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	(void)block;
	(void)nblocks;
	(void)args;
}

START_TEST(test_kernels)
{
	static struct blocks_args a;
	uint32_t host[14], *out;
	char big[4097] = { 0 };
	gsim_stream_t bogus = (gsim_stream_t)&a;

	ck_assert_int_eq(gsim_malloc((void **)&out, sizeof(host)), 0);
	a.out = out;
	a.tag = 100;
	/* 1: every block runs once, with its number and the count */
	ck_assert_int_eq(gsim_launch(blocks_kernel, 7, &a, sizeof(a), NULL), 0);
	/* 2: the arguments were copied at launch */
	a.tag = 999;
	ck_assert_int_eq(gsim_memcpy(host, out, sizeof(host), GSIM_DEVICE_TO_HOST), 0);
	for (uint32_t b = 0; b < 7; b++) {
		ck_assert_uint_eq(host[2 * b], 100 + b);
		ck_assert_uint_eq(host[2 * b + 1], 7);
	}
	/* 3: bad launches */
	ck_assert_int_eq(gsim_launch(NULL, 1, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(gsim_launch(nop_kernel, 0, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(gsim_launch(nop_kernel, 1, big, sizeof(big), NULL), -EINVAL);
	ck_assert_int_eq(gsim_launch(nop_kernel, 1, NULL, 8, NULL), -EINVAL);
	ck_assert_int_eq(gsim_launch(nop_kernel, 1, big, 4096, NULL), 0);
	/* 4: a stream that does not exist */
	ck_assert_int_eq(gsim_launch(nop_kernel, 1, NULL, 0, bogus), -EINVAL);
	ck_assert_int_eq(gsim_stream_synchronize(bogus), -EINVAL);
	ck_assert_int_eq(gsim_stream_destroy(bogus), -EINVAL);
	ck_assert_int_eq(gsim_memcpy_async(host, out, 4, GSIM_DEVICE_TO_HOST, bogus), -EINVAL);
	/* 5: the default stream cannot be destroyed, but synchronizes */
	ck_assert_int_eq(gsim_stream_destroy(NULL), -EINVAL);
	ck_assert_int_eq(gsim_stream_synchronize(NULL), 0);
	ck_assert_int_eq(gsim_stream_create(NULL), -EINVAL);
}
END_TEST

/* A kernel must not call the API: it would deadlock a freeze. */
static atomic_int from_kernel;

static void api_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	void *p;

	(void)block;
	(void)nblocks;
	(void)args;
	atomic_store(&from_kernel, gsim_malloc(&p, 256));
}

/* Writes a flag late, to show gsim_free waits for queued work. */
static void late_kernel(uint32_t block, uint32_t nblocks, void *args)
{
	uint32_t *flag = *(uint32_t **)args;

	(void)block;
	(void)nblocks;
	usleep(100000);
	*flag = 0xfeed;
}

START_TEST(test_api_from_kernel_and_free)
{
	gsim_stream_t s;
	uint32_t *flag, host;

	ck_assert_int_eq(gsim_launch(api_kernel, 1, NULL, 0, NULL), 0);
	ck_assert_int_eq(gsim_device_synchronize(), 0);
	/* 1: -EDEADLK from a kernel, and the program goes on */
	ck_assert_int_eq(atomic_load(&from_kernel), -EDEADLK);
	/* 2: free waits for work queued before it, like cudaFree */
	ck_assert_int_eq(gsim_stream_create(&s), 0);
	ck_assert_int_eq(gsim_malloc((void **)&flag, 4), 0);
	ck_assert_int_eq(gsim_launch(late_kernel, 1, &flag, sizeof(flag), s), 0);
	ck_assert_int_eq(gsim_memcpy_async(&host, flag, 4, GSIM_DEVICE_TO_HOST, s), 0);
	ck_assert_int_eq(gsim_free(flag), 0);
	ck_assert_uint_eq(host, 0xfeed);
	/* 3: destroying a stream finishes its work first */
	host = 0;
	ck_assert_int_eq(gsim_malloc((void **)&flag, 4), 0);
	ck_assert_int_eq(gsim_launch(late_kernel, 1, &flag, sizeof(flag), s), 0);
	ck_assert_int_eq(gsim_memcpy_async(&host, flag, 4, GSIM_DEVICE_TO_HOST, s), 0);
	ck_assert_int_eq(gsim_stream_destroy(s), 0);
	ck_assert_uint_eq(host, 0xfeed);
}
END_TEST

START_TEST(test_strerror)
{
	/* 1..4 */
	ck_assert_str_eq(gsim_strerror(0), "success");
	ck_assert_str_eq(gsim_strerror(-ENOMEM), "Cannot allocate memory");
	ck_assert_str_eq(gsim_strerror(-EFAULT), "Bad address");
	ck_assert_str_eq(gsim_strerror(5), "unknown error");
	ck_assert_str_eq(gsim_strerror(-100000), "unknown error");
}
END_TEST

static Suite *sim_suite(void)
{
	Suite *s = suite_create("sim");
	TCase *tc = tcase_create("sim");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_init_and_info);
	tcase_add_test(tc, test_device_by_env);
	tcase_add_test(tc, test_malloc_free);
	tcase_add_test(tc, test_copies);
	tcase_add_test(tc, test_stream_order);
	tcase_add_test(tc, test_many_streams);
	tcase_add_test(tc, test_kernels);
	tcase_add_test(tc, test_api_from_kernel_and_free);
	tcase_add_test(tc, test_strerror);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sim_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
