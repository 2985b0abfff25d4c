/* gmigd's settings: every default parses, each key's bad values are refused with a line number. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* 1: the table's defaults are valid, fit together, and documented. */
START_TEST(test_defaults)
{
	struct gmigd_config c;
	char err[CONFIG_ERR_MAX];
	size_t n;
	const struct config_key_info *k = config_keys(&n);

	config_defaults(&c);
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.control_socket, "/run/gmig/gmigd.sock");
	ck_assert_str_eq(c.peer_listen, "0.0.0.0:9191");
	ck_assert_uint_eq(c.image_cap, 16ull << 30);
	ck_assert_uint_eq(c.max_rounds, 8);
	ck_assert_uint_eq(c.pause_target_ms, 300);
	ck_assert(!c.peer_lz4);
	ck_assert_uint_gt(n, 15);
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(k[i].doc);
		ck_assert_int_gt(strlen(k[i].doc), 10);
		/* Every default, set alone, is accepted. */
		ck_assert_msg(config_set(&c, k[i].name, k[i].def, err, sizeof(err)) == 0, "%s: %s",
			      k[i].name, err);
	}
}
END_TEST

static const struct {
	const char *text;
	int rc;
	const char *err;	/* a part of the message */
} rows[] = {
	/* 0 */ { "", 0, NULL },
	/* 1 */ { "# only a comment\n\n   \n", 0, NULL },
	/* 2 */ { "max_rounds = 3\npause_target_ms=50\n", 0, NULL },
	/* 3 */ { "image_cap = 2G\n", 0, NULL },
	/* 4 */ { "peer_lz4 = yes\nguest_lz4 = off\n", 0, NULL },
	/* 5 */ { "guest.vm1 = vsock:3:9190\nguest.vm-2 = unix:/run/a.sock\n", 0, NULL },
	/* 6 */ { "peer_listen =\n", 0, NULL },
	/* 7 */ { "peer_listen = [::1]:9191\n", 0, NULL },
	/* 8 */ { "bogus = 1\n", -EINVAL, "t.conf:1: unknown key 'bogus'" },
	/* 9 */ { "max_rounds = 1\nmax_rounds = 2\n", -EINVAL, "t.conf:2: 'max_rounds' is set twice" },
	/* 10 */ { "max_rounds\n", -EINVAL, "expected 'key = value'" },
	/* 11 */ { "max_rounds = -1\n", -EINVAL, "not a number" },
	/* 12 */ { "max_rounds = 1001\n", -EINVAL, "out of range" },
	/* 13 */ { "image_cap = 12Q\n", -EINVAL, "not a size" },
	/* 14 */ { "image_cap = 1K\n", -EINVAL, "out of range" },
	/* 15 */ { "control_socket = relative/path\n", -EINVAL, "not an absolute path" },
	/* 16 */ { "control_socket =\n", -EINVAL, "must not be empty" },
	/* 17 */ { "peer_lz4 = maybe\n", -EINVAL, "not yes or no" },
	/* 18 */ { "log_level = loud\n", -EINVAL, "not error, warn, info or debug" },
	/* 19 */ { "peer_listen = 1.2.3.4\n", 0, NULL },
	/* 20 */ { "peer_listen = host:99999\n", -EINVAL, "port must be a number from 0" },
	/* 21 */ { "guest.vm1 = vsock:1:9190\n", -EINVAL, "CID" },
	/* 22 */ { "guest.bad/name = unix:/x\n", -EINVAL, "guest name" },
	/* 23 */ { "guest.vm1 = unix:/a\nguest.vm1 = unix:/b\n", -EINVAL, "set twice" },
	/* 24 */ { "guest.vm1 = floppy:/a\n", -EINVAL, "not an address kind" },
	/* 25 */ { "control_mode = 0999\n", -EINVAL, "not an octal mode" },
	/* 26 */ { "name = this-name-is-much-longer-than-thirty-two-bytes\n", -EINVAL, "at most 32" },
	/* 27 */ { "step_timeout_ms = 99\n", -EINVAL, "out of range" },
	/* guests under QEMU: vm.NAME.{qmp,gpu,gpu_file,ram}; names may hold dots */
	/* 28 */ { "vm.vm1.qmp = /run/q.sock\nvm.vm1.gpu = gpu-0\nvm.a.b.ram = /dev/shm/r\n", 0, NULL },
	/* 29 */ { "vm.vm1.qmp = relative\n", -EINVAL, "absolute path" },
	/* 30 */ { "vm.vm1.qmpp = /a\n", -EINVAL, "unknown key 'vm.vm1.qmpp'" },
	/* 31 */ { "vm.vm1 = /a\n", -EINVAL, "vm.NAME.qmp" },
	/* 32 */ { "vm.bad/name.qmp = /a\n", -EINVAL, "guest name" },
	/* 33 */ { "vm.vm1.gpu = a b\n", -EINVAL, "QEMU id" },
	/* 34 */ { "vm.vm1.gpu_file =\n", -EINVAL, "absolute path" },
	/* 35 */ { "vm_unplug_timeout_ms = 99\n", -EINVAL, "out of range" },
};

/* 36: vm.NAME keys land in the VM table; the gpu id defaults to gpu0; no qmp, no VM. */
START_TEST(test_vm_keys)
{
	static const char text[] = "vm.vm1.qmp = /run/q.sock\nvm.vm1.gpu_file = /dev/shm/g\n"
				   "vm.a.b.ram = /dev/shm/r\nvm.vm1.qmp = /run/q2.sock\n";
	char err[CONFIG_ERR_MAX];
	struct gmigd_config c;
	const struct config_vm *vm;

	config_defaults(&c);
	ck_assert_msg(config_parse(&c, text, strlen(text), "t.conf", err, sizeof(err)) == 0, "%s",
		      err);
	vm = config_vm(&c, "vm1");
	ck_assert_ptr_nonnull(vm);
	ck_assert_str_eq(vm->qmp, "/run/q2.sock");	/* the last one counts */
	ck_assert_str_eq(vm->gpu, "gpu0");
	ck_assert_str_eq(vm->gpu_file, "/dev/shm/g");
	ck_assert_ptr_null(config_vm(&c, "a.b"));	/* a RAM file alone drives nothing */
	ck_assert_ptr_null(config_vm(&c, "vm2"));
	ck_assert_uint_eq(c.nvms, 2);
}
END_TEST

/* Rows: whole config texts, good and bad. */
START_TEST(test_parse)
{
	struct gmigd_config c;
	char err[CONFIG_ERR_MAX] = "";
	int rc;

	config_defaults(&c);
	rc = config_parse(&c, rows[_i].text, strlen(rows[_i].text), "t.conf", err, sizeof(err));
	ck_assert_msg(rc == rows[_i].rc, "row %d: rc %d (%s)", _i, rc, err);
	if (rows[_i].err)
		ck_assert_msg(strstr(err, rows[_i].err), "row %d: '%s' lacks '%s'", _i, err,
			      rows[_i].err);
}
END_TEST

/* 28: values land where they belong. */
START_TEST(test_values)
{
	static const char text[] = "image_cap = 3G\nmax_rounds = 0\npeer_lz4 = true\n"
				   "guest.vm7 = hvsock:/run/fc.sock:9190\nlog_level = debug\n";
	struct gmigd_config c;
	char err[CONFIG_ERR_MAX];

	config_defaults(&c);
	ck_assert_int_eq(config_parse(&c, text, sizeof(text) - 1, "t", err, sizeof(err)), 0);
	ck_assert_uint_eq(c.image_cap, 3ull << 30);
	ck_assert_uint_eq(c.max_rounds, 0);
	ck_assert(c.peer_lz4);
	ck_assert_uint_eq(c.nguests, 1);
	ck_assert_str_eq(config_guest(&c, "vm7"), "hvsock:/run/fc.sock:9190");
	ck_assert_ptr_null(config_guest(&c, "vm8"));
	ck_assert_int_eq(c.log_level, 3);
}
END_TEST

/* 29: settings that do not fit together. */
START_TEST(test_check)
{
	struct gmigd_config c;
	char err[CONFIG_ERR_MAX];

	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, "rollback_timeout_ms", "1000", err, sizeof(err)), 0);
	ck_assert_int_eq(config_set(&c, "guest_resume_ms", "5000", err, sizeof(err)), 0);
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "rollback_timeout_ms"));
}
END_TEST

/* 30: files: missing (fine only for the default path), too long, a NUL byte. */
START_TEST(test_load)
{
	char path[] = "/tmp/gmigd-conf.XXXXXX", err[CONFIG_ERR_MAX];
	struct gmigd_config c;
	int fd = mkstemp(path);
	char *big;

	ck_assert_int_ge(fd, 0);
	config_defaults(&c);
	ck_assert_int_eq(config_load(&c, "/nonexistent/gmigd.conf", false, err, sizeof(err)), 0);
	ck_assert_int_eq(config_load(&c, "/nonexistent/gmigd.conf", true, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(write(fd, "max_rounds = 4\n", 15), 15);
	ck_assert_int_eq(config_load(&c, path, true, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.max_rounds, 4);
	big = malloc(CONFIG_FILE_MAX + 10);
	memset(big, '#', CONFIG_FILE_MAX + 10);
	ck_assert_int_eq(pwrite(fd, big, CONFIG_FILE_MAX + 10, 0), CONFIG_FILE_MAX + 10);
	config_defaults(&c);
	ck_assert_int_eq(config_load(&c, path, true, err, sizeof(err)), -EFBIG);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(pwrite(fd, "max_rounds = 4\0\n", 16, 0), 16);
	ck_assert_int_eq(config_load(&c, path, true, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	free(big);
	close(fd);
	unlink(path);
}
END_TEST

static char *read_doc(const char *rel)
{
	const char *root = getenv("GMIG_SRC");
	char path[512], *buf = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_msg(root != NULL, "GMIG_SRC is not set");
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s", path);
	ck_assert_int_gt(getdelim(&buf, &len, '\0', f), 0);
	fclose(f);
	return buf;
}

/* 31: the shipped config lists every key with its default; the man page and the guide name it. */
START_TEST(test_documented)
{
	char *conf = read_doc("host-backend/gmigd.conf"), *man = read_doc("host-backend/gmigd.8");
	char *guide = read_doc("docs/gmigd.md"), line[256], err[CONFIG_ERR_MAX];
	struct gmigd_config c;
	size_t n;
	const struct config_key_info *k = config_keys(&n);

	for (size_t i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "\n#%s = %s\n", k[i].name, k[i].def);
		if (!k[i].def[0])
			snprintf(line, sizeof(line), "\n#%s =\n", k[i].name);
		ck_assert_msg(strstr(conf, line), "gmigd.conf lacks '%s'", line + 1);
		ck_assert_msg(strstr(man, k[i].name), "gmigd.8 lacks %s", k[i].name);
		snprintf(line, sizeof(line), "| %s |", k[i].name);
		ck_assert_msg(strstr(guide, line), "docs/gmigd.md lacks %s", k[i].name);
	}
	/* With every '#key' line uncommented, the file is a valid config of the defaults. */
	for (char *p = strstr(conf, "\n#"); p; p = strstr(p + 1, "\n#")) {
		if (p[2] >= 'a' && p[2] <= 'z')
			p[1] = ' ';
	}
	config_defaults(&c);
	ck_assert_msg(config_parse(&c, conf, strlen(conf), "gmigd.conf", err, sizeof(err)) == 0, "%s",
		      err);
	free(conf);
	free(man);
	free(guide);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-config");
	TCase *tc = tcase_create("config");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_vm_keys);
	tcase_add_loop_test(tc, test_parse, 0, (int)(sizeof(rows) / sizeof(rows[0])));
	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_check);
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_documented);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
