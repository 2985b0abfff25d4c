/*
 * Check suite for how libgmig.so gets between a program and the driver: a
 * program that finds libcuda as a static cudart does (dlopen, dlsym of
 * cuGetProcAddress_v2, look-ups by name and flags) gets the wrapper of the
 * exact variant for wrapped entry points and the driver's own pointer for
 * the rest. Run twice: as is, and with GMIG_DISABLE=1 ("disabled"), when
 * every look-up must give the driver's pointers.
 */
#include <check.h>
#include <cuda.h>
#include <cudaTypedefs.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

static bool disabled;
static void *lib;
static PFN_cuGetProcAddress_v12000 real_gpa, gpa;

static void setup(void)
{
	void *(*real)(void);

	lib = dlopen("libcuda.so.1", RTLD_NOW);
	ck_assert_ptr_nonnull(lib);
	real = (void *(*)(void))dlsym(lib, "fakecuda_real_gpa");
	ck_assert_ptr_nonnull(real);
	real_gpa = (PFN_cuGetProcAddress_v12000)real();
	gpa = (PFN_cuGetProcAddress_v12000)dlsym(lib, "cuGetProcAddress_v2");
	ck_assert_ptr_nonnull(gpa);
}

static void teardown(void)
{
	dlclose(lib);
}

/* Whether p lies in the object whose file name contains what. */
static bool in_object(void *p, const char *what)
{
	Dl_info info;

	return p && dladdr(p, &info) && info.dli_fname && strstr(info.dli_fname, what);
}

START_TEST(test_entry)
{
	/* 1: the door itself: libgmig's wrapper, or the driver's own when disabled */
	if (disabled) {
		ck_assert_ptr_eq(gpa, real_gpa);
	} else {
		ck_assert_ptr_ne(gpa, real_gpa);
		ck_assert(in_object((void *)gpa, "libgmig"));
	}
	/* 2: cuGetExportTable and other names pass through untouched */
	ck_assert(in_object(dlsym(lib, "cuDeviceGetCount"), "libcuda"));
	ck_assert(in_object(dlsym(lib, "fakecuda_real_gpa"), "libcuda"));
	/* 3: a wrapped exported symbol looked up by name in libcuda's handle */
	ck_assert(in_object(dlsym(lib, "cuMemAlloc_v2"), disabled ? "libcuda" : "libgmig"));
	/* 4: a name that is nowhere */
	ck_assert_ptr_null(dlsym(lib, "cuNoSuchEntryPoint"));
}
END_TEST

static const struct row {
	const char *name;
	cuuint64_t flags;
	const char *variant;	/* the wrapper expected, NULL: the driver's pointer */
} rows[] = {
	/* 1 */ { "cuMemAlloc", 0, "cuMemAlloc_v2" },
	/* 2 */ { "cuLaunchKernel", 0, "cuLaunchKernel" },
	/* 3 */ { "cuLaunchKernel", CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuLaunchKernel_ptsz" },
	/* 4 */ { "cuStreamBeginCapture", 0, "cuStreamBeginCapture_v2" },
	/* 5 */ { "cuStreamBeginCapture", CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
		  "cuStreamBeginCapture_v2_ptsz" },
	/* 6 */ { "cuEventRecord", CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuEventRecord_ptsz" },
	/* 7 */ { "cuEventRecord", CU_GET_PROC_ADDRESS_LEGACY_STREAM, "cuEventRecord" },
	/* 8 */ { "cuGetProcAddress", 0, "cuGetProcAddress_v2" },
	/* 9 */ { "cuMemcpyHtoD", 0, "cuMemcpyHtoD_v2" },
	/* 10 */ { "cuInit", 0, "cuInit" },
	/* 11 */ { "cuDeviceGetCount", 0, NULL },
	/* 12 */ { "cuDevicePrimaryCtxRetain", 0, NULL },
	/* 13 */ { "cuCheckpointProcessLock", 0, NULL },
};

START_TEST(test_variants)
{
	const struct row *r = &rows[_i];
	void *real = NULL, *got = NULL;
	CUdriverProcAddressQueryResult rs, gs;

	ck_assert_int_eq(real_gpa(r->name, &real, 13000, r->flags, &rs), CUDA_SUCCESS);
	ck_assert_int_eq(gpa(r->name, &got, 13000, r->flags, &gs), CUDA_SUCCESS);
	ck_assert_int_eq(gs, rs);
	ck_assert_ptr_nonnull(real);
	if (!r->variant || disabled) {
		ck_assert_ptr_eq(got, real);
		return;
	}
	/* The wrapper of that exact variant: libgmig exports it under the variant's name. */
	ck_assert_ptr_ne(got, real);
	ck_assert_ptr_eq(got, dlsym(RTLD_DEFAULT, r->variant));
	ck_assert(in_object(got, "libgmig"));
}
END_TEST

START_TEST(test_malformed)
{
	PFN_cuGetProcAddress_v11030 v1 = (PFN_cuGetProcAddress_v11030)dlsym(lib, "cuGetProcAddress");
	CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
	void *p = &p, *q = NULL;

	/* 1: an unknown name: the driver's error and status, nothing mapped */
	ck_assert_int_eq(gpa("cuNoSuchThing", &p, 13000, 0, &st), CUDA_ERROR_NOT_FOUND);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	/* 2: the 4-argument version 1 maps by address too */
	ck_assert_ptr_nonnull(v1);
	ck_assert_int_eq(v1("cuLaunchKernel", &q, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM),
			 CUDA_SUCCESS);
	if (disabled)
		ck_assert(in_object(q, "libcuda"));
	else
		ck_assert_ptr_eq(q, dlsym(RTLD_DEFAULT, "cuLaunchKernel_ptsz"));
	/* 3: a NULL status pointer is passed on as NULL */
	ck_assert_int_eq(gpa("cuInit", &q, 13000, 0, NULL), CUDA_SUCCESS);
}
END_TEST

START_TEST(test_exports)
{
	/* Every entry of the wrapper list is exported by libgmig under its exact name. */
#define NAME_C(name, pfn)		#name,
#define NAME_G(name, pfn, params, args)	#name,
	static const char *const names[] = { GMIG_CUDA_WRAPS(NAME_C, NAME_G) };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_msg(in_object(dlsym(RTLD_DEFAULT, names[i]), "libgmig"), "%s not exported", names[i]);
	ck_assert_uint_ge(sizeof(names) / sizeof(names[0]), 80);
}
END_TEST

START_TEST(test_rtld_next)
{
	/*
	 * 1: RTLD_NEXT from the program finds the first malloc after it: libc's,
	 * or the sanitizer runtime's where one is loaded first
	 */
	ck_assert_ptr_eq(dlsym(RTLD_NEXT, "malloc"), dlsym(RTLD_DEFAULT, "malloc"));
	ck_assert(in_object(dlsym(RTLD_NEXT, "malloc"), "libc") ||
		  in_object(dlsym(RTLD_NEXT, "malloc"), "libasan"));
	/* 2: the next cuInit after the program is libgmig's (loaded before libcuda) */
	ck_assert(in_object(dlsym(RTLD_NEXT, "cuInit"), "libgmig"));
	/* 3: a name nobody after the program defines */
	ck_assert_ptr_null(dlsym(RTLD_NEXT, "gmig_no_such_symbol"));
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s = suite_create("cuda-hook");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	disabled = argc > 1 && !strcmp(argv[1], "disabled");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_entry);
	tcase_add_loop_test(tc, test_variants, 0, sizeof(rows) / sizeof(rows[0]));
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_exports);
	tcase_add_test(tc, test_rtld_next);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
