/*
 * Check suite for the CUDA backend over the fake driver (libcuda.so.1 of
 * this directory): cuMemAlloc lands in the arena, a program moves to the
 * other GPU and back with its bytes and pointers unchanged, and the freezes
 * and attaches that must fail do, before anything is released.
 */
#include <check.h>
#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "interpose.h"
#include "precopy.h"
#include "umdtest.h"

#define MIB	(1ull << 20)

static struct gmig_umd *u;
static int (*phys_of)(uintptr_t);
static int (*restores)(void);

static void setup(void)
{
	CUcontext ctx;
	CUdevice d;

	setenv("GMIG_AGENT_SOCKET", "/nonexistent/gmig-test.sock", 1);
	ck_assert_ptr_nonnull(dlopen("libcuda.so.1", RTLD_NOW));
	phys_of = (int (*)(uintptr_t))dlsym(RTLD_DEFAULT, "fakecuda_phys_of");
	restores = (int (*)(void))dlsym(RTLD_DEFAULT, "fakecuda_restores");
	ck_assert_int_eq(cuInit(0), CUDA_SUCCESS);
	u = gmig_cuda_umd();
	ck_assert_ptr_nonnull(u);
	ck_assert_int_eq(cuDeviceGet(&d, 0), CUDA_SUCCESS);
	ck_assert_int_eq(cuDevicePrimaryCtxRetain(&ctx, d), CUDA_SUCCESS);
	ck_assert_int_eq(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
}

static void teardown(void)
{
	gmig_cuda_shutdown();
}

static bool in_arena(CUdeviceptr p, size_t n)
{
	return p >= u->arena.va && p + n <= u->arena.va + u->arena.size;
}

START_TEST(test_alloc)
{
	CUdeviceptr p, q, r, big;
	CUdeviceptr base;
	size_t size, pitch;
	CUcontext c1;

	/* 1: in the arena, 256-aligned */
	ck_assert_int_eq(cuMemAlloc(&p, 1000), CUDA_SUCCESS);
	ck_assert(in_arena(p, 1000));
	ck_assert_uint_eq(p % 256, 0);
	/* 2: the next one follows, rounded to 256 */
	ck_assert_int_eq(cuMemAlloc(&q, 1), CUDA_SUCCESS);
	ck_assert_uint_eq(q, p + 1024);
	/* 3: freed space is reused */
	ck_assert_int_eq(cuMemFree(p), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemAlloc(&r, 512), CUDA_SUCCESS);
	ck_assert_uint_eq(r, p);
	/* 4: the allocation's range, from inside it */
	ck_assert_int_eq(cuMemGetAddressRange(&base, &size, r + 100), CUDA_SUCCESS);
	ck_assert_uint_eq(base, r);
	ck_assert_uint_eq(size, 512);
	/* 5: freeing an address that starts no allocation */
	ck_assert_int_eq(cuMemFree(q + 8), CUDA_ERROR_INVALID_VALUE);
	/* 6: a pitched allocation: 512-byte rows in the arena */
	ck_assert_int_eq(cuMemAllocPitch(&p, &pitch, 700, 10, 4), CUDA_SUCCESS);
	ck_assert_uint_eq(pitch, 1024);
	ck_assert(in_arena(p, pitch * 10));
	/* 7: the device is full (64 MiB): out of memory, and the arena takes what fits */
	ck_assert_int_eq(cuMemAlloc(&big, 70 * MIB), CUDA_ERROR_OUT_OF_MEMORY);
	ck_assert_int_eq(cuMemAlloc(&big, 60 * MIB), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemAlloc(&p, 8 * MIB), CUDA_ERROR_OUT_OF_MEMORY);
	/* 8: size 0 is the driver's error */
	ck_assert_int_eq(cuMemAlloc(&p, 0), CUDA_ERROR_INVALID_VALUE);
	/* 9: a context on the other GPU gets the driver's own memory */
	ck_assert_int_eq(cuDevicePrimaryCtxRetain(&c1, 1), CUDA_SUCCESS);
	ck_assert_int_eq(cuCtxSetCurrent(c1), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemAlloc(&p, 4096), CUDA_SUCCESS);
	ck_assert(!in_arena(p, 4096));
	ck_assert_int_eq(cuMemFree(p), CUDA_SUCCESS);
}
END_TEST

/* A sink standing in for the agent: the bytes of every STAGED frame land in image. */
struct isink {
	uint8_t *slot, *image;
	uint64_t size;
};

static int i_take(void *ctx, uint32_t *slot, uint8_t **mem)
{
	*slot = 0;
	*mem = ((struct isink *)ctx)->slot;
	return 0;
}

static int i_staged(void *ctx, const struct gmig_staged *s)
{
	struct isink *t = ctx;

	ck_assert_uint_le(s->offset + s->length, t->size);
	if (s->encoding == GMIG_ENC_RAW)
		memcpy(t->image + s->offset, t->slot, s->length);
	else
		memset(t->image + s->offset, 0, s->length);
	return 0;
}

static void i_put(void *ctx, uint32_t slot)
{
	(void)ctx;
	(void)slot;
}

/* The UUID of the GPU at enumeration index i. */
static void uuid_at(int i, uint8_t *uuid)
{
	struct gmig_bdev_info list[GMIG_GPUS_MAX];

	ck_assert_int_ge(u->be->ops->enumerate(u->be, list, GMIG_GPUS_MAX), i + 1);
	memcpy(uuid, list[i].uuid, GMIG_UUID_SIZE);
}

/* Freezes, ships the arena into a sink, releases, attaches to uuid and writes the image back, thaws. */
static void move_to(const uint8_t *uuid)
{
	struct gmig_region r;
	struct gmig_round_end st;
	struct isink t;
	struct gmig_sink sink = { &t, 4 * MIB, i_take, i_staged, i_put };

	ck_assert_int_eq(gmig_umd_freeze(u, 5000), 0);
	ck_assert_uint_eq(gmig_arena_regions(&u->arena, &r, 1), 1);
	t = (struct isink){ malloc(4 * MIB), calloc(1, r.size), r.size };
	ck_assert_int_eq(gmig_precopy_round(u, 1, 0, &sink, &st), 0);
	ck_assert_uint_eq(st.chunks, r.size / u->fp.chunk);
	ck_assert_int_eq(gmig_umd_release(u), 0);
	ck_assert_int_eq(gmig_umd_attach(u, uuid), 0);
	ck_assert_int_eq(u->be->ops->write(u->dev, r.va, t.image, r.size), 0);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	free(t.slot);
	free(t.image);
}

START_TEST(test_move)
{
	uint8_t *a = malloc(3 * MIB), *b = malloc(MIB), *back = malloc(3 * MIB), gpu0[16], gpu1[16];
	uint64_t seed = 7;
	CUdeviceptr da, db, da2;
	CUstream s;
	CUuuid now;
	char bus[32];
	int v;

	ut_fill(a, 3 * MIB, &seed);
	ut_fill(b, MIB, &seed);
	ck_assert_int_eq(cuMemAlloc(&da, 3 * MIB), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemAlloc(&db, MIB), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemcpyHtoD(da, a, 3 * MIB), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemcpyHtoD(db, b, MIB), CUDA_SUCCESS);
	ck_assert_int_eq(cuStreamCreate(&s, 0), CUDA_SUCCESS);
	uuid_at(0, gpu0);
	uuid_at(1, gpu1);

	/* 1: onto GPU 1: same pointers, same bytes, the memory really is on GPU 1 */
	move_to(gpu1);
	ck_assert_int_eq(cuMemcpyDtoH(back, da, 3 * MIB), CUDA_SUCCESS);
	ck_assert_mem_eq(back, a, 3 * MIB);
	ck_assert_int_eq(cuMemcpyDtoH(back, db, MIB), CUDA_SUCCESS);
	ck_assert_mem_eq(back, b, MIB);
	if (phys_of)
		ck_assert_int_eq(phys_of(da), 1);
	if (restores)
		ck_assert_int_eq(restores(), 1);
	/* 2: ordinal 0 is GPU 1 now; its PCI identity says so, though the driver's is stale */
	ck_assert_int_eq(cuDeviceGetUuid_v2(&now, 0), CUDA_SUCCESS);
	ck_assert_mem_eq(now.bytes, gpu1, 16);
	ck_assert_int_eq(cuDeviceGetPCIBusId(bus, sizeof(bus), 0), CUDA_SUCCESS);
	ck_assert_str_eq(bus, "0000:00:0B.0");
	ck_assert_int_eq(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, 0), CUDA_SUCCESS);
	ck_assert_int_eq(v, 11);
	/* 3: the program goes on: a new allocation follows the old ones, on GPU 1 */
	ck_assert_int_eq(cuMemAlloc(&da2, 4096), CUDA_SUCCESS);
	ck_assert_uint_eq(da2, db + MIB);
	if (phys_of)
		ck_assert_int_eq(phys_of(da2), 1);
	/* 4: back onto GPU 0 */
	move_to(gpu0);
	ck_assert_int_eq(cuMemcpyDtoH(back, da, 3 * MIB), CUDA_SUCCESS);
	ck_assert_mem_eq(back, a, 3 * MIB);
	if (phys_of)
		ck_assert_int_eq(phys_of(da), 0);
	/* 5: the same GPU again (a rollback): Restore without pairs, bytes kept */
	move_to(gpu0);
	ck_assert_int_eq(cuMemcpyDtoH(back, db, MIB), CUDA_SUCCESS);
	ck_assert_mem_eq(back, b, MIB);
	ck_assert_int_eq(cuStreamDestroy(s), CUDA_SUCCESS);
	free(a);
	free(b);
	free(back);
}
END_TEST

START_TEST(test_fingerprint)
{
	const uint32_t chunk = 64 << 10;
	uint8_t *a = malloc(4 * chunk);
	uint64_t seed = 9, out[4];
	CUdeviceptr d;

	ut_fill(a, 4 * chunk, &seed);
	ck_assert_int_eq(cuMemAlloc(&d, 4 * chunk), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemcpyHtoD(d, a, 4 * chunk), CUDA_SUCCESS);
	/* 1: whole chunks, by the kernel */
	ck_assert_int_eq(u->be->ops->fingerprint(u->dev, d, 4 * chunk, chunk, out), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(out[i], XXH3_64bits(a + (size_t)i * chunk, chunk));
	/* 2: a tail of 100 bytes, too short for the kernel, hashed on the CPU */
	ck_assert_int_eq(u->be->ops->fingerprint(u->dev, d, 3 * chunk + 100, chunk, out), 0);
	ck_assert_uint_eq(out[3], XXH3_64bits(a + 3 * chunk, 100));
	ck_assert_uint_eq(out[2], XXH3_64bits(a + 2 * chunk, chunk));
	free(a);
}
END_TEST

START_TEST(test_capture)
{
	CUstream s;
	CUgraph g;

	ck_assert_int_eq(cuStreamCreate(&s, 0), CUDA_SUCCESS);
	/* 1: a capture open: the freeze is refused and the program runs on */
	ck_assert_int_eq(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), -EBUSY);
	ck_assert(!gmig_gate_is_closed(&u->gate));
	/* 2: a failed begin opens nothing */
	ck_assert_int_ne(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
	/* 3: once it ended, the freeze goes through */
	ck_assert_int_eq(cuStreamEndCapture(s, &g), CUDA_SUCCESS);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	/* 4: ending a capture that is not open is the driver's error, and changes nothing */
	ck_assert_int_ne(cuStreamEndCapture(s, &g), CUDA_SUCCESS);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	ck_assert_int_eq(cuStreamDestroy(s), CUDA_SUCCESS);
}
END_TEST

/* libgmig's own device work, from its link thread: a fingerprint and a read of the arena. */
struct side_work {
	CUdeviceptr d;
	uint32_t chunk;
	uint8_t *dst;
	uint64_t prints[2];
	int fp_err, read_err;
};

static void *side_thread(void *arg)
{
	struct side_work *w = arg;

	w->fp_err = u->be->ops->fingerprint(u->dev, w->d, 2 * w->chunk, w->chunk, w->prints);
	w->read_err = u->be->ops->read(u->dev, w->d, w->dst, 2 * w->chunk);
	return NULL;
}

START_TEST(test_capture_precopy)
{
	const uint32_t chunk = 64 << 10;
	struct side_work w = { .chunk = chunk, .dst = malloc(2 * chunk) };
	uint8_t *a = malloc(2 * chunk);
	uint64_t seed = 11;
	pthread_t t;
	CUstream s;
	CUgraph g;

	ut_fill(a, 2 * chunk, &seed);
	ck_assert_int_eq(cuMemAlloc(&w.d, 2 * chunk), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemcpyHtoD(w.d, a, 2 * chunk), CUDA_SUCCESS);
	ck_assert_int_eq(cuStreamCreate(&s, 0), CUDA_SUCCESS);
	/* 1: a pre-copy round while the program captures in the global mode works... */
	ck_assert_int_eq(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
	ck_assert_int_eq(pthread_create(&t, NULL, side_thread, &w), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(w.fp_err, 0);
	ck_assert_int_eq(w.read_err, 0);
	ck_assert_uint_eq(w.prints[1], XXH3_64bits(a + chunk, chunk));
	ck_assert_mem_eq(w.dst, a, 2 * chunk);
	/* 2: ...and leaves the program's capture valid */
	ck_assert_int_eq(cuStreamEndCapture(s, &g), CUDA_SUCCESS);
	ck_assert_int_eq(cuStreamDestroy(s), CUDA_SUCCESS);
	free(a);
	free(w.dst);
}
END_TEST

START_TEST(test_other_chip)
{
	uint8_t gpu0[16], gpu1[16], *a = malloc(MIB), *back = malloc(MIB);
	uint64_t seed = 3;
	CUdeviceptr d;

	ut_fill(a, MIB, &seed);
	ck_assert_int_eq(cuMemAlloc(&d, MIB), CUDA_SUCCESS);
	ck_assert_int_eq(cuMemcpyHtoD(d, a, MIB), CUDA_SUCCESS);
	uuid_at(0, gpu0);
	uuid_at(1, gpu1);
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), 0);
	ck_assert_int_eq(gmig_umd_release(u), 0);
	/* 1: GPU 1 is another chip: refused before the driver is asked */
	ck_assert_int_eq(gmig_umd_attach(u, gpu1), -EXDEV);
	if (restores)
		ck_assert_int_eq(restores(), 0);
	/* 2: a GPU nobody has */
	gpu1[0] ^= 0xff;
	ck_assert_int_eq(gmig_umd_attach(u, gpu1), -ENODEV);
	/* 3: rollback onto the GPU it came from */
	ck_assert_int_eq(gmig_umd_attach(u, gpu0), 0);
	ck_assert_int_eq(u->be->ops->write(u->dev, d, a, MIB), 0);
	ck_assert_int_eq(gmig_umd_thaw(u), 0);
	ck_assert_int_eq(cuMemcpyDtoH(back, d, MIB), CUDA_SUCCESS);
	ck_assert_mem_eq(back, a, MIB);
	free(a);
	free(back);
}
END_TEST

START_TEST(test_no_checkpoint_api)
{
	CUdeviceptr d;

	/* 1: the freeze fails before anything is released; the program runs on */
	ck_assert_int_eq(gmig_umd_freeze(u, 1000), -EOPNOTSUPP);
	ck_assert(!gmig_gate_is_closed(&u->gate));
	ck_assert_int_eq(cuMemAlloc(&d, 4096), CUDA_SUCCESS);
	ck_assert(in_arena(d, 4096));
}
END_TEST

static void setup_other_chip(void)
{
	setenv("FAKECUDA_CHIP1", "Fake GPU B1", 1);
	setup();
}

static void setup_no_ckpt(void)
{
	setenv("FAKECUDA_NO_CKPT", "1", 1);
	setup();
}

int main(void)
{
	Suite *s = suite_create("cuda-move");
	TCase *tc = tcase_create("core"), *chip = tcase_create("other-chip"), *old = tcase_create("old-driver");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_alloc);
	tcase_add_test(tc, test_move);
	tcase_add_test(tc, test_fingerprint);
	tcase_add_test(tc, test_capture);
	tcase_add_test(tc, test_capture_precopy);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(chip, setup_other_chip, teardown);
	tcase_add_test(chip, test_other_chip);
	suite_add_tcase(s, chip);
	tcase_add_checked_fixture(old, setup_no_ckpt, teardown);
	tcase_add_test(old, test_no_checkpoint_api);
	suite_add_tcase(s, old);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
