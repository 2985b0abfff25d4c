/* Check suite for libgmig's settings from the environment: values, defaults, fallbacks. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define LONG_PATH "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct {
	const char *var, *value;	/* one variable set; NULL: none */
	uint32_t chunk;
	const char *dir, *device, *socket;
	bool disable, debug, why;
} rows[] = {
	/* 1: nothing set: the defaults */
	{ NULL, NULL, 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, false },
	/* 2..4: chunks in KiB, powers of two from 4 to 4096 */
	{ "GMIG_CHUNK", "4", 4096, "/dev/shm", "", "/run/gmig/agent.sock", false, false, false },
	{ "GMIG_CHUNK", "256", 256 << 10, "/dev/shm", "", "/run/gmig/agent.sock", false, false, false },
	{ "GMIG_CHUNK", "4096", 4 << 20, "/dev/shm", "", "/run/gmig/agent.sock", false, false, false },
	/* 5..10: chunks that are not: the default, and a reason */
	{ "GMIG_CHUNK", "3", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, true },
	{ "GMIG_CHUNK", "2", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, true },
	{ "GMIG_CHUNK", "8192", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, true },
	{ "GMIG_CHUNK", "64k", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, true },
	{ "GMIG_CHUNK", "-64", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, true },
	{ "GMIG_CHUNK", "99999999999999999999", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, true },
	/* 11: an empty value is no value */
	{ "GMIG_CHUNK", "", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, false },
	/* 12..14: GMIG_DISABLE is 1 or nothing */
	{ "GMIG_DISABLE", "1", 65536, "/dev/shm", "", "/run/gmig/agent.sock", true, false, false },
	{ "GMIG_DISABLE", "0", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, false },
	{ "GMIG_DISABLE", "yes", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, false },
	/* 15: debug output */
	{ "GMIG_LOG", "debug", 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, true, false },
	/* 16: another socket */
	{ "GMIG_AGENT_SOCKET", "/tmp/a.sock", 65536, "/dev/shm", "", "/tmp/a.sock", false, false, false },
	/* 17: a socket path too long for sun_path: the default, and a reason */
	{ "GMIG_AGENT_SOCKET", LONG_PATH, 65536, "/dev/shm", "", "/run/gmig/agent.sock", false, false, true },
	/* 18: a device names the directory its siblings are found in */
	{ "GMIG_SIM_DEVICE", "/tmp/x/gmig-sim-0", 65536, "/tmp/x", "/tmp/x/gmig-sim-0", "/run/gmig/agent.sock", false, false, false },
	/* 19: a device at the root */
	{ "GMIG_SIM_DEVICE", "/gmig-sim-0", 65536, "/", "/gmig-sim-0", "/run/gmig/agent.sock", false, false, false },
	/* 20: a directory of its own */
	{ "GMIG_SIM_DIR", "/tmp/y", 65536, "/tmp/y", "", "/run/gmig/agent.sock", false, false, false },
};

START_TEST(test_rows)
{
	static const char *const vars[] = { "GMIG_CHUNK", "GMIG_DISABLE", "GMIG_LOG", "GMIG_AGENT_SOCKET",
					    "GMIG_SIM_DEVICE", "GMIG_SIM_DIR" };
	struct gmig_config cfg;
	const char *why;

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	if (rows[_i].var)
		setenv(rows[_i].var, rows[_i].value, 1);
	gmig_config_from_env(&cfg, &why);
	ck_assert_uint_eq(cfg.chunk, rows[_i].chunk);
	ck_assert_str_eq(cfg.sim_dir, rows[_i].dir);
	ck_assert_str_eq(cfg.sim_device, rows[_i].device);
	ck_assert_str_eq(cfg.socket, rows[_i].socket);
	ck_assert(cfg.disable == rows[_i].disable);
	ck_assert(cfg.debug == rows[_i].debug);
	ck_assert_msg((why != NULL) == rows[_i].why, "row %d: %s", _i + 1, why ? why : "no reason");
}
END_TEST

START_TEST(test_dir_wins_over_device)
{
	struct gmig_config cfg;
	const char *why;

	/* 1: GMIG_SIM_DIR, when set, wins over the device's directory */
	setenv("GMIG_SIM_DEVICE", "/tmp/x/gmig-sim-0", 1);
	setenv("GMIG_SIM_DIR", "/tmp/z", 1);
	gmig_config_from_env(&cfg, &why);
	ck_assert_str_eq(cfg.sim_dir, "/tmp/z");
	ck_assert_str_eq(cfg.sim_device, "/tmp/x/gmig-sim-0");
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_loop_test(tc, test_rows, 0, sizeof(rows) / sizeof(rows[0]));
	tcase_add_test(tc, test_dir_wins_over_device);
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
