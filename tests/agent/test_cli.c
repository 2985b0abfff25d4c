/* Check suite: gmig-agent's command line: --help, --version, and bad options and config files refused. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static char tmpdir[64];

/* Runs gmig-agent with @args (NULL-terminated); its exit code, and stdout+stderr in @out. */
static int run_agent(const char *const *args, char *out, size_t cap)
{
	const char *argv[16] = { harness_bin() };
	size_t n = 0, i;
	int fds[2], status;
	pid_t pid;

	for (i = 0; args[i]; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, TL_TIMEOUT_MS) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		r = read(fds[0], out + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *conf_file(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

static void setup(void)
{
	harness_tmpdir(tmpdir, sizeof(tmpdir), "cli");
}

static void teardown(void)
{
	rm_tree(tmpdir);
}

enum conf { C_NONE, C_EMPTY, C_UNKNOWN, C_RANGE, C_TWICE, C_CHANNEL_LESS, C_BAD_SOCKET };

static const struct cli_row {
	const char *args[6];
	enum conf conf;		/* -c FILE, written for the row, goes first */
	int code;
	const char *want;	/* in the output */
} cli_rows[] = {
	/* 1 */ { { "--help" }, C_NONE, 0, "vsock_port           9190" },
	/* 2 */ { { "-h" }, C_NONE, 0, "--client-socket PATH" },
	/* 3 */ { { "--version" }, C_NONE, 0, "gmig-agent 0.1.0" },
	/* 4 */ { { "--bogus" }, C_NONE, 2, "Usage: gmig-agent" },
	/* 5 */ { { "-c", "/nonexistent/agent.conf" }, C_NONE, 2, "No such file or directory" },
	/* 6 */ { { NULL }, C_UNKNOWN, 2, "bad.conf:2: unknown key 'bogus'" },
	/* 7 */ { { NULL }, C_RANGE, 2, "slots: 0 is out of range [1, 64]" },
	/* 8 */ { { NULL }, C_TWICE, 2, "'vsock_port' is set twice" },
	/* 9 */ { { "--vsock-port", "0" }, C_EMPTY, 2, "no host channel" },
	/* 10 */ { { "--log-level", "loud" }, C_EMPTY, 2, "log_level: 'loud'" },
	/* 11 */ { { "--vsock-port", "x" }, C_EMPTY, 2, "vsock_port: 'x' is not a number" },
	/* 12 */ { { "--unix", "relative" }, C_EMPTY, 2, "not an absolute path" },
	/* 13 */ { { "stray" }, C_EMPTY, 2, "unexpected argument 'stray'" },
	/* 14 */ { { NULL }, C_CHANNEL_LESS, 2, "no host channel" },
	/* 15 */ { { NULL }, C_BAD_SOCKET, 1, "cannot start" },
};

START_TEST(test_cli)
{
	const struct cli_row *row = &cli_rows[_i];
	const char *args[10];
	char out[16384];
	size_t n = 0;
	int code;

	switch (row->conf) {
	case C_NONE:
		break;
	case C_EMPTY:
		args[n++] = "-c";
		args[n++] = conf_file("empty.conf", "");
		break;
	case C_UNKNOWN:
		args[n++] = "-c";
		args[n++] = conf_file("bad.conf", "# ok\nbogus = 1\n");
		break;
	case C_RANGE:
		args[n++] = "-c";
		args[n++] = conf_file("range.conf", "slots = 0\n");
		break;
	case C_TWICE:
		args[n++] = "-c";
		args[n++] = conf_file("twice.conf", "vsock_port = 1\nvsock_port = 2\n");
		break;
	case C_CHANNEL_LESS:
		args[n++] = "-c";
		args[n++] = conf_file("none.conf", "vsock_port = 0\n");
		break;
	case C_BAD_SOCKET:
		args[n++] = "-c";
		args[n++] = conf_file("sock.conf", "vsock_port = 0\nunix = /tmp/gmig-cli-host.sock\n"
				      "client_socket = /proc/gmig/agent.sock\n");
		break;
	}
	for (const char *const *a = row->args; *a; a++)
		args[n++] = *a;
	args[n] = NULL;
	code = run_agent(args, out, sizeof(out));
	ck_assert_msg(code == row->code, "row %d: exit %d, expected %d: %s", _i + 1, code,
		      row->code, out);
	ck_assert_msg(strstr(out, row->want), "row %d: '%s' not in: %s", _i + 1, row->want, out);
}
END_TEST

/* Every config key is in --help with its default. */
START_TEST(test_help_lists_keys)
{
	static const char *const keys[] = { "vsock_port", "serial", "unix", "unix_mode",
		"client_socket", "client_socket_mode", "sim_dir", "sysfs_dir", "slots", "slot_size",
		"host_buffer", "max_clients", "max_host_conns", "resume_timeout_ms",
		"request_timeout_ms", "freeze_grace_ms", "hello_timeout_ms", "log_level", NULL };
	const char *args[] = { "--help", NULL };
	char out[16384];

	ck_assert_int_eq(run_agent(args, out, sizeof(out)), 0);
	for (const char *const *k = keys; *k; k++) {
		char want[64];

		snprintf(want, sizeof(want), "\n  %s ", *k);
		ck_assert_msg(strstr(out, want), "%s not in --help", *k);
	}
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("agent-cli");
	TCase *tc = tcase_create("cli");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_cli, 0, sizeof(cli_rows) / sizeof(cli_rows[0]));
	tcase_add_test(tc, test_help_lists_keys);
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
