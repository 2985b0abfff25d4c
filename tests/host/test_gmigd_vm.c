/*
 * The VM steps against a real QEMU with no guest (-M pc -S): a GPU plugs in from a device file
 * (and plugging it again keeps it), its memory backend reads back for a later re-plug, an
 * unplug of a missing device says so, a migration to nowhere fails with QEMU's words, and a
 * VM that does not run is waited for until the deadline. Skipped (77) without QEMU.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gmig/simdev.h"
#include "hostutil.h"
#include "qmp.h"
#include "vm.h"

static char *dir;
static char qmp_path[300], gpu_path[300];
static pid_t qemu;
static const struct vm_timeouts t = { 5000, 500, 1500 };

static const char *qemu_bin(void)
{
	return getenv("GMIG_QEMU") ? getenv("GMIG_QEMU") : "qemu-system-x86_64";
}

static void setup(void)
{
	char arg[340];
	struct qmp *q = NULL;
	char why[256];
	int rc = -1;

	dir = hu_tmpdir();
	snprintf(qmp_path, sizeof(qmp_path), "%s/qmp.sock", dir);
	snprintf(gpu_path, sizeof(gpu_path), "%s/" GMIG_SIMDEV_PREFIX "gpu", dir);
	/* 2 MiB of header + 30 MiB: a 32 MiB BAR, a power of two as ivshmem wants. */
	ck_assert_int_eq(gmig_simdev_create(gpu_path, 30u << 20, "gpu"), 0);
	snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", qmp_path);
	qemu = fork();
	ck_assert_int_ge(qemu, 0);
	if (qemu == 0) {
		execlp(qemu_bin(), qemu_bin(), "-M", "pc", "-accel", "tcg", "-m", "64", "-S",
		       "-nodefaults", "-display", "none", "-qmp", arg, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && rc; i++) {
		rc = qmp_open(qmp_path, 2000, &q, why, sizeof(why));
		if (rc)
			usleep(50000);
	}
	ck_assert_msg(rc == 0, "QEMU: %s", why);
	qmp_close(q);
}

static void teardown(void)
{
	int status;

	if (qemu > 0) {
		kill(qemu, SIGTERM);
		waitpid(qemu, &status, 0);
	}
	hu_rmtree(dir);
	free(dir);
}

/* 0: plug from a file, plug again (kept), read the backend back as an unplug would. */
START_TEST(test_plug)
{
	struct vm_gpu gpu, back;
	struct json_object *args, *ret = NULL;
	struct qmp *q;
	char why[256] = "";

	ck_assert_int_eq(vm_gpu_from_file("gpu0", gpu_path, &gpu, why, sizeof(why)), 0);
	ck_assert_str_eq(gpu.mem_id, "gpu0-mem");
	ck_assert_uint_eq(gpu.size, 32u << 20);
	ck_assert_msg(vm_plug(qmp_path, &t, &gpu, why, sizeof(why)) == 0, "%s", why);
	ck_assert_msg(vm_plug(qmp_path, &t, &gpu, why, sizeof(why)) == 0, "again: %s", why);
	ck_assert_int_eq(qmp_open(qmp_path, 2000, &q, why, sizeof(why)), 0);
	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string("/machine/peripheral/gpu0"));
	json_object_object_add(args, "property", json_object_new_string("memdev"));
	ck_assert_int_eq(qmp_execute(q, "qom-get", args, &ret, 5000), 0);
	ck_assert_str_eq(json_object_get_string(ret), "/objects/gpu0-mem");
	json_object_put(ret);
	qmp_close(q);
	/* Without a guest to let go, the unplug reads the backend and then times out. */
	memset(&back, 0, sizeof(back));
	snprintf(back.id, sizeof(back.id), "gpu0");
	ck_assert_int_eq(vm_unplug(qmp_path, &t, &back, why, sizeof(why)), -ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(why, "did not release"));
	ck_assert_str_eq(back.mem_id, "gpu0-mem");
	ck_assert_str_eq(back.mem_path, gpu_path);
	ck_assert_uint_eq(back.size, 32u << 20);
	ck_assert(back.share);
}
END_TEST

/* 1: no such device; no such file. */
START_TEST(test_missing)
{
	struct vm_gpu gpu = { .id = "nope" };
	char why[256] = "";

	ck_assert_int_eq(vm_unplug(qmp_path, &t, &gpu, why, sizeof(why)), -ENODEV);
	ck_assert_ptr_nonnull(strstr(why, "nope"));
	ck_assert_int_eq(vm_gpu_from_file("gpu0", "/nonexistent/gpu", &gpu, why, sizeof(why)),
			 -ENOENT);
	ck_assert_int_eq(vm_gpu_from_file("gpu0", dir, &gpu, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(vm_unplug("/nonexistent/qmp.sock", &t, &gpu, why, sizeof(why)), -ENOENT);
}
END_TEST

/* 2: a migration to a port nobody listens on fails with QEMU's reason; a stopped VM never runs. */
START_TEST(test_migrate_nowhere)
{
	struct vm_migrate_stats st;
	char why[256] = "";
	int rc;

	rc = vm_migrate(qmp_path, "tcp:127.0.0.1:1", &t, NULL, &st, why, sizeof(why));
	ck_assert_msg(rc == -EREMOTEIO, "rc %d: %s", rc, why);
	ck_assert_ptr_nonnull(strstr(why, "migration"));
	ck_assert_int_eq(vm_wait_running(qmp_path, &t, why, sizeof(why)), -ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(why, "still"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-vm");
	TCase *tc = tcase_create("vm");
	SRunner *sr;
	int failed;
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", qemu_bin());
	if (system(cmd)) {
		fprintf(stderr, "SKIP: %s is not installed\n", qemu_bin());
		return 77;
	}
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_plug);
	tcase_add_test(tc, test_missing);
	tcase_add_test(tc, test_migrate_nowhere);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
