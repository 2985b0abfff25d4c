/* Check suite: gmig-agent's config: defaults, good and bad lines, cross-key checks, the shipped file. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

START_TEST(test_defaults)
{
	struct agent_config c;

	config_defaults(&c);
	ck_assert_uint_eq(c.vsock_port, 9190);
	ck_assert_str_eq(c.serial, "");
	ck_assert_str_eq(c.unix_path, "");
	ck_assert_uint_eq(c.unix_mode, 0600);
	ck_assert_str_eq(c.client_socket, "/run/gmig/agent.sock");
	ck_assert_uint_eq(c.client_socket_mode, 0666);
	ck_assert_str_eq(c.sim_dir, "/dev/shm");
	ck_assert_str_eq(c.sysfs_dir, "/sys");
	ck_assert_uint_eq(c.slots, 8);
	ck_assert_uint_eq(c.slot_size, 1u << 20);
	ck_assert_uint_eq(c.host_buffer, 16u << 20);
	ck_assert_uint_eq(c.resume_timeout_ms, 30000);
	ck_assert_uint_eq(c.request_timeout_ms, 30000);
	ck_assert_int_eq(c.log_level, LV_INFO);
	ck_assert_int_eq(config_check(&c, (char[CONFIG_ERR_MAX]){ 0 }, CONFIG_ERR_MAX), 0);
}
END_TEST

/* Lines that parse, and the value they leave behind. */
static const struct good_row {
	const char *text;
	size_t off;		/* offsetof the field checked */
	uint64_t value;		/* for numbers */
	const char *str;	/* for paths */
} good_rows[] = {
	/* 1 */ { "slots = 4\n", offsetof(struct agent_config, slots), 4, NULL },
	/* 2 */ { "slot_size = 64K", offsetof(struct agent_config, slot_size), 65536, NULL },
	/* 3 */ { "slot_size=4M\n", offsetof(struct agent_config, slot_size), 4u << 20, NULL },
	/* 4 */ { "  host_buffer =  1G  \n", offsetof(struct agent_config, host_buffer), 1u << 30, NULL },
	/* 5 */ { "# comment\n\n\tvsock_port = 0\n", offsetof(struct agent_config, vsock_port), 0, NULL },
	/* 6 */ { "client_socket_mode = 0660\r\n", offsetof(struct agent_config, client_socket_mode), 0660, NULL },
	/* 7 */ { "log_level = debug", offsetof(struct agent_config, log_level), LV_DEBUG, NULL },
	/* 8 */ { "unix = /tmp/x y.sock", offsetof(struct agent_config, unix_path), 0, "/tmp/x y.sock" },
	/* 9 */ { "serial = /dev/virtio-ports/org.gmig.agent.0", offsetof(struct agent_config, serial), 0,
		  "/dev/virtio-ports/org.gmig.agent.0" },
	/* 10 */ { "serial =", offsetof(struct agent_config, serial), 0, "" },
	/* 11 */ { "vsock_port = 4294967294", offsetof(struct agent_config, vsock_port), 4294967294u, NULL },
	/* 12 */ { "resume_timeout_ms = 100\nslots = 64", offsetof(struct agent_config, slots), 64, NULL },
	/* 13 */ { "sim_dir = /a#b", offsetof(struct agent_config, sim_dir), 0, "/a#b" },
};

START_TEST(test_good)
{
	const struct good_row *row = &good_rows[_i];
	struct agent_config c;
	char err[CONFIG_ERR_MAX] = "";
	const char *field;

	config_defaults(&c);
	ck_assert_msg(config_parse(&c, row->text, strlen(row->text), "t", err, sizeof(err)) == 0,
		      "row %d: %s", _i + 1, err);
	field = (const char *)&c + row->off;
	if (row->str)
		ck_assert_str_eq(field, row->str);
	else if (row->off == offsetof(struct agent_config, log_level))
		ck_assert_int_eq(*(const int *)field, (int)row->value);
	else
		ck_assert_uint_eq(*(const uint32_t *)field, row->value);
}
END_TEST

/* Lines refused, with the words the error must say. */
static const struct bad_row {
	const char *text;
	size_t len;		/* 0: strlen */
	const char *want;
} bad_rows[] = {
	/* 1 */ { "bogus = 1", 0, "t:1: unknown key 'bogus'" },
	/* 2 */ { "\nslots", 0, "t:2: expected 'key = value'" },
	/* 3 */ { "slots = 0", 0, "out of range [1, 64]" },
	/* 4 */ { "slots = 65", 0, "out of range" },
	/* 5 */ { "slot_size = 3000", 0, "out of range" },
	/* 6 */ { "slot_size = 12K", 0, "not a power of two" },
	/* 7 */ { "slot_size = 8M", 0, "out of range" },
	/* 8 */ { "slot_size = 1T", 0, "is not a size" },
	/* 9 */ { "vsock_port = -1", 0, "is not a number" },
	/* 10 */ { "vsock_port = 12x", 0, "is not a number" },
	/* 11 */ { "vsock_port = 4294967295", 0, "out of range" },
	/* 12 */ { "vsock_port = 99999999999999999999999", 0, "is not a number" },
	/* 13 */ { "unix = relative/path", 0, "not an absolute path" },
	/* 14 */ { "client_socket =", 0, "must not be empty" },
	/* 15 */ { "log_level = loud", 0, "'loud' is not error, warn, info or debug" },
	/* 16 */ { "slots = 2\nslots = 3", 0, "t:2: 'slots' is set twice" },
	/* 17 */ { "unix_mode = 0999", 0, "is not an octal mode" },
	/* 18 */ { "unix_mode = 01777", 0, "out of range" },
	/* 19 */ { "slots = 1\0x", 11, "NUL byte" },
	/* 20 */ { "sim_dir = /a\x01z", 0, "control characters" },
	/* 21 */ { "host_buffer = 1K", 0, "out of range" },
	/* 22 */ { "= 5", 0, "unknown key ''" },
	/* 23 */ { "hello_timeout_ms = 10", 0, "out of range" },
};

START_TEST(test_bad)
{
	const struct bad_row *row = &bad_rows[_i];
	struct agent_config c;
	char err[CONFIG_ERR_MAX] = "";
	size_t len = row->len ? row->len : strlen(row->text);

	config_defaults(&c);
	ck_assert_msg(config_parse(&c, row->text, len, "t", err, sizeof(err)) == -EINVAL,
		      "row %d accepted", _i + 1);
	ck_assert_msg(strstr(err, row->want), "row %d: '%s' not in '%s'", _i + 1, row->want, err);
}
END_TEST

START_TEST(test_long_line)
{
	struct agent_config c;
	char err[CONFIG_ERR_MAX] = "";
	char text[1024];

	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	config_defaults(&c);
	ck_assert_int_eq(config_parse(&c, text, strlen(text), "t", err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "t:1: line too long"));
}
END_TEST

/* Settings that parse one by one but not together. */
static const struct check_row {
	const char *text;
	const char *want;	/* NULL: fine */
} check_rows[] = {
	/* 1 */ { "vsock_port = 0", "no host channel" },
	/* 2 */ { "vsock_port = 0\nserial = /dev/ttyS1", NULL },
	/* 3 */ { "vsock_port = 0\nunix = /tmp/h.sock", NULL },
	/* 4 */ { "unix = /run/gmig/agent.sock", "are the same path" },
	/* 5 */ { "host_buffer = 1M\nslot_size = 4M", "smaller than slot_size" },
	/* 6 */ { "host_buffer = 4M\nslot_size = 4M", NULL },
};

START_TEST(test_check)
{
	const struct check_row *row = &check_rows[_i];
	struct agent_config c;
	char err[CONFIG_ERR_MAX] = "";
	int rc;

	config_defaults(&c);
	ck_assert_int_eq(config_parse(&c, row->text, strlen(row->text), "t", err, sizeof(err)), 0);
	rc = config_check(&c, err, sizeof(err));
	if (!row->want) {
		ck_assert_msg(rc == 0, "row %d: %s", _i + 1, err);
	} else {
		ck_assert_int_eq(rc, -EINVAL);
		ck_assert_msg(strstr(err, row->want), "row %d: %s", _i + 1, err);
	}
}
END_TEST

START_TEST(test_load)
{
	struct agent_config c;
	char err[CONFIG_ERR_MAX] = "";

	config_defaults(&c);
	/* The default path may be missing; a path given on the command line may not. */
	ck_assert_int_eq(config_load(&c, "/nonexistent/agent.conf", 0, err, sizeof(err)), 0);
	ck_assert_int_eq(config_load(&c, "/nonexistent/agent.conf", 1, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/agent.conf"));
	ck_assert_int_eq(config_load(&c, "/", 1, err, sizeof(err)), -EISDIR);
}
END_TEST

/*
 * The shipped agent.conf documents every key with its default, commented out: with the
 * comment marks taken off its key lines it must parse to exactly the defaults.
 */
START_TEST(test_shipped_file)
{
	const char *path = getenv("GMIG_AGENT_CONF");
	const struct config_key_info *keys;
	struct agent_config def, c;
	char err[CONFIG_ERR_MAX] = "", line[512], text[16384] = "";
	size_t nkeys, len = 0;
	FILE *f;

	ck_assert_ptr_nonnull(path);
	config_defaults(&def);
	config_defaults(&c);
	ck_assert_msg(config_load(&c, path, 1, err, sizeof(err)) == 0, "%s", err);
	ck_assert_mem_eq(&c, &def, sizeof(c));

	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		/* "#key = value" lines are the keys; "# text" lines are prose. */
		if (line[0] == '#' && line[1] != ' ' && line[1] != '#' && line[1] != '\n' &&
		    strchr(line, '=')) {
			size_t n = strlen(line + 1);

			ck_assert_uint_lt(len + n, sizeof(text));
			memcpy(text + len, line + 1, n);
			len += n;
		}
	}
	fclose(f);
	config_defaults(&c);
	ck_assert_msg(config_parse(&c, text, len, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_mem_eq(&c, &def, sizeof(c));
	keys = config_keys(&nkeys);
	for (size_t i = 0; i < nkeys; i++) {
		char want[128];

		snprintf(want, sizeof(want), "%s = %s\n", keys[i].name, keys[i].def);
		if (!keys[i].def[0])
			snprintf(want, sizeof(want), "%s =\n", keys[i].name);
		ck_assert_msg(strstr(text, want), "agent.conf lacks '%s'", want);
	}
}
END_TEST

/* docs/agent.md's table of keys says the defaults the code has. */
START_TEST(test_doc_table)
{
	const char *path = getenv("GMIG_AGENT_DOC");
	const struct config_key_info *keys;
	static char doc[65536];
	size_t nkeys, n;
	FILE *f;

	ck_assert_ptr_nonnull(path);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = '\0';
	keys = config_keys(&nkeys);
	for (size_t i = 0; i < nkeys; i++) {
		char want[128];

		if (keys[i].def[0])
			snprintf(want, sizeof(want), "| `%s` | `%s` |", keys[i].name, keys[i].def);
		else
			snprintf(want, sizeof(want), "| `%s` | (empty) |", keys[i].name);
		ck_assert_msg(strstr(doc, want), "docs/agent.md lacks '%s'", want);
	}
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("agent-config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, test_defaults);
	tcase_add_loop_test(tc, test_good, 0, sizeof(good_rows) / sizeof(good_rows[0]));
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bad_rows) / sizeof(bad_rows[0]));
	tcase_add_test(tc, test_long_line);
	tcase_add_loop_test(tc, test_check, 0, sizeof(check_rows) / sizeof(check_rows[0]));
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_shipped_file);
	tcase_add_test(tc, test_doc_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
