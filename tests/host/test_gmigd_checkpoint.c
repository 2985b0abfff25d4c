/*
 * Checkpoint files with real processes: a checkpoint while the program runs, a checkpoint
 * that stops it and a restore onto the other GPU, and damaged, truncated, foreign or missing
 * files refused whole before the guest is touched.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "checkpoint.h"
#include "harness.h"

#define STEPS		100
#define STEP_MS		10
#define MEM_MB		6

static struct rig rig;
static char guest_addr[160];

static const char *const settings[] = { "guest_resume_ms=300", "connect_timeout_ms=3000", NULL };

static void setup(void)
{
	rig_setup(&rig, 64);
	rig_daemon(&rig, &rig.src, "src", false, NULL, settings);
	snprintf(guest_addr, sizeof(guest_addr), "unix:%s", rig.agent_sock);
}

static void teardown(void)
{
	rig_teardown(&rig);
}

/* Granules of GPU @dev the program holds. */
static unsigned int granules_used(int dev)
{
	return rig_granules(&rig, dev, rig.prog);
}

static struct json_object *file_args(const char *file)
{
	struct json_object *a = json_object_new_object();

	json_object_object_add(a, "guest", json_object_new_string(guest_addr));
	json_object_object_add(a, "file", json_object_new_string(file));
	return a;
}

static struct json_object *run_job(const char *cmd, struct json_object *args)
{
	return ctl_wait(rig.src.sock, ctl_job(rig.src.sock, cmd, args));
}

static const char *phase(void)
{
	static char buf[32];
	struct json_object *a = json_object_new_object(), *inv;

	json_object_object_add(a, "guest", json_object_new_string(guest_addr));
	inv = ctl_ok(rig.src.sock, "inventory", a);
	snprintf(buf, sizeof(buf), "%s", js(inv, "phase"));
	json_object_put(inv);
	return buf;
}

static void finish_program(char *ref)
{
	char *got;

	ck_assert_int_eq(rig_reap(rig.prog, 60000), 0);
	rig.prog = 0;
	got = slurp_file(rig.prog_out);
	assert_same_results(got, ref);
	free(got);
	free(ref);
}

/* 1: a checkpoint while the program runs: it goes on, and the file holds its whole image. */
START_TEST(test_live_checkpoint)
{
	char *ref = rig_reference(&rig, STEPS, MEM_MB), file[160], detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image img;
	struct json_object *st;

	snprintf(file, sizeof(file), "%s/live.ckpt", rig.dir);
	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);
	st = run_job("checkpoint", file_args(file));
	ck_assert_msg(!strcmp(js(st, "result"), "done"), "%s", js(st, "error"));
	ck_assert_double_gt(jd(st, "report.pause_ms"), 0);
	ck_assert_double_gt(jd(st, "report.times_ms.write"), 0);
	gmig_image_init(&img, 1ull << 30);
	ck_assert_msg(gmig_checkpoint_read(file, &img, detail, sizeof(detail)) == 0, "%s", detail);
	ck_assert_uint_eq(img.nclients, 1);
	ck_assert_uint_eq(img.bytes, (uint64_t)ji(st, "report.image_bytes"));
	ck_assert(gmig_image_complete(&img));
	gmig_image_clear(&img);
	json_object_put(st);
	finish_program(ref);
}
END_TEST

/* Damage done to a copy of a good checkpoint; each must be refused whole. */
static const struct {
	const char *what;
	const char *detail;	/* part of the error */
} damages[] = {
	/* 0 */ { "a flipped byte in the data", "checksum" },
	/* 1 */ { "cut in half", "truncated" },
	/* 2 */ { "empty", "truncated" },
	/* 3 */ { "not a checkpoint", "magic" },
};

static int flip_middle(const char *path, off_t size)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	if (fd < 0 || pread(fd, &b, 1, size / 2) != 1)
		return -1;
	b ^= 0x40;
	if (pwrite(fd, &b, 1, size / 2) != 1)
		return -1;
	return close(fd);
}

static int cut_half(const char *path, off_t size)
{
	return truncate(path, size / 2);
}

static int empty(const char *path, off_t size)
{
	(void)size;
	return truncate(path, 0);
}

static int not_ckpt(const char *path, off_t size)
{
	int fd = open(path, O_RDWR);

	(void)size;
	if (fd < 0 || pwrite(fd, "NOTACKPT", 8, 0) != 8)
		return -1;
	return close(fd);
}

static int (*const damage_fns[])(const char *, off_t) = { flip_middle, cut_half, empty, not_ckpt };

static void copy_file(const char *from, const char *to)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	ck_assert_int_eq(system(cmd), 0);
}

/*
 * 2: checkpoint --stop (through gmigctl), damaged copies refused without touching the guest,
 * a restore refused while nothing is stopped, then the good file restored onto GPU 1.
 */
START_TEST(test_stop_and_restore)
{
	char *ref = rig_reference(&rig, STEPS, MEM_MB), good[160], bad[160], out[65536];
	const char *ckpt[] = { "gmigctl", "-s", rig.src.sock, "checkpoint", guest_addr, good,
			       "--stop", NULL };
	const char *rest[] = { "gmigctl", "-s", rig.src.sock, "--json", "restore", guest_addr, good,
			       "--map", "0:1", NULL };
	struct json_object *st;
	struct stat sb;
	int rc;

	snprintf(good, sizeof(good), "%s/stop.ckpt", rig.dir);
	snprintf(bad, sizeof(bad), "%s/bad.ckpt", rig.dir);
	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);

	/* A restore into a guest that runs is refused, however good the file. */
	st = run_job("checkpoint", file_args(bad));
	ck_assert_str_eq(js(st, "result"), "done");
	json_object_put(st);
	st = run_job("restore", file_args(bad));
	ck_assert_str_eq(js(st, "result"), "failed");
	ck_assert_msg(strstr(js(st, "error"), "checkpoint --stop"), "%s", js(st, "error"));
	json_object_put(st);

	rc = run_gmigctl(ckpt, out, sizeof(out));
	ck_assert_msg(rc == 0, "gmigctl checkpoint: %d: %s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, ": done"));
	ck_assert_str_eq(phase(), "RELEASED");
	ck_assert_uint_eq(granules_used(0), 0);		/* released: GPU 0 is empty */
	ck_assert_int_eq(stat(good, &sb), 0);

	for (size_t i = 0; i < sizeof(damages) / sizeof(damages[0]); i++) {
		copy_file(good, bad);
		ck_assert_int_eq(damage_fns[i](bad, sb.st_size), 0);
		st = run_job("restore", file_args(bad));
		ck_assert_msg(!strcmp(js(st, "result"), "failed"), "%s: %s", damages[i].what,
			      js(st, "result"));
		ck_assert_msg(strstr(js(st, "error"), damages[i].detail) &&
			      strstr(js(st, "error"), bad), "%s: '%s'", damages[i].what,
			      js(st, "error"));
		ck_assert_str_eq(js(st, "report.failed_in"), "LOAD");
		json_object_put(st);
		/* Untouched: still released, nothing attached anywhere. */
		ck_assert_str_eq(phase(), "RELEASED");
		ck_assert_uint_eq(granules_used(0) + granules_used(1), 0);
	}
	st = run_job("restore", file_args("/nonexistent/dir/x.ckpt"));
	ck_assert_str_eq(js(st, "result"), "failed");
	ck_assert_ptr_nonnull(strstr(js(st, "error"), "No such file"));
	json_object_put(st);

	rc = run_gmigctl(rest, out, sizeof(out));
	st = json_tokener_parse(out);
	ck_assert_msg(rc == 0 && st, "gmigctl restore: %d: %s", rc, out);
	ck_assert_str_eq(js(st, "result"), "done");
	ck_assert_double_gt(jd(st, "report.times_ms.load"), 0);
	ck_assert_double_gt(jd(st, "report.times_ms.restore"), 0);
	json_object_put(st);
	rig_check_gpu(&rig, 1);
	finish_program(ref);
}
END_TEST

/* 3: a checkpoint of another program is refused: the file must match the guest's programs. */
START_TEST(test_foreign_file)
{
	char *ref = rig_reference(&rig, STEPS, MEM_MB), first[160], second[160];
	struct json_object *a, *st;
	pid_t other;

	snprintf(first, sizeof(first), "%s/first.ckpt", rig.dir);
	snprintf(second, sizeof(second), "%s/second.ckpt", rig.dir);
	other = rig_program(&rig, "/dev/null", false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);
	st = run_job("checkpoint", file_args(first));
	ck_assert_str_eq(js(st, "result"), "done");
	json_object_put(st);
	ck_assert_int_eq(rig_reap(other, 60000), 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 0);

	rig.prog = rig_program(&rig, rig.prog_out, false, STEPS, STEP_MS, MEM_MB, 0);
	ctl_wait_clients(rig.src.sock, guest_addr, 1);
	a = file_args(second);
	json_object_object_add(a, "stop", json_object_new_boolean(1));
	st = run_job("checkpoint", a);
	ck_assert_str_eq(js(st, "result"), "done");
	json_object_put(st);

	st = run_job("restore", file_args(first));
	ck_assert_str_eq(js(st, "result"), "failed");
	ck_assert_msg(strstr(js(st, "error"), "not in the checkpoint"), "%s", js(st, "error"));
	json_object_put(st);
	ck_assert_str_eq(phase(), "RELEASED");

	st = run_job("restore", file_args(second));
	ck_assert_msg(!strcmp(js(st, "result"), "done"), "%s", js(st, "error"));
	json_object_put(st);
	finish_program(ref);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-checkpoint");
	TCase *tc = tcase_create("checkpoint");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_unchecked_fixture(tc, rig_base_setup, rig_base_teardown);
	tcase_add_test(tc, test_live_checkpoint);
	tcase_add_test(tc, test_stop_and_restore);
	tcase_add_test(tc, test_foreign_file);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
