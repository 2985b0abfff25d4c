/* Process and scratch-directory helpers for the integration tests. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gmig/simdev.h"
#include "procs.h"

void scratch_make(struct scratch *s, unsigned dev_mb)
{
	snprintf(s->dir, sizeof(s->dir), "/dev/shm/gmig-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(s->dir));
	for (int i = 0; i < 2; i++) {
		char name[32];

		snprintf(s->dev[i], sizeof(s->dev[i]), "%s/" GMIG_SIMDEV_PREFIX "%d", s->dir, i);
		snprintf(name, sizeof(name), "gpu%d", i);
		ck_assert_int_eq(gmig_simdev_create(s->dev[i], (uint64_t)dev_mb << 20, name), 0);
	}
	snprintf(s->host_sock, sizeof(s->host_sock), "%s/host.sock", s->dir);
	snprintf(s->client_sock, sizeof(s->client_sock), "%s/client.sock", s->dir);
}

void scratch_remove(struct scratch *s)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", s->dir);
}

pid_t spawn(char *const argv[], char *const env[], const char *out_path)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (int i = 0; env && env[i]; i++)
			putenv(env[i]);
		if (out_path) {
			int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (fd < 0 || dup2(fd, 1) < 0)
				_exit(126);
			close(fd);
		}
		execv(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

int reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool wait_for_path(const char *path, int ms)
{
	struct stat st;

	for (int t = 0; t < ms; t += 10) {
		if (!stat(path, &st))
			return true;
		usleep(10000);
	}
	return false;
}

pid_t start_agent(const struct scratch *s)
{
	const char *bin = getenv("GMIG_AGENT_BIN");
	char *argv[] = { (char *)bin, "--unix", (char *)s->host_sock, "--client-socket",
			 (char *)s->client_sock, "--sim-dir", (char *)s->dir, "--vsock-port", "0",
			 "--log-level", "warn", NULL };
	pid_t pid;

	ck_assert_msg(bin != NULL, "GMIG_AGENT_BIN is not set");
	pid = spawn(argv, NULL, NULL);
	ck_assert_msg(wait_for_path(s->host_sock, 10000), "gmig-agent did not start");
	ck_assert(wait_for_path(s->client_sock, 10000));
	return pid;
}

char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ne(getdelim(&buf, &len, '\0', f), -1);
	fclose(f);
	return buf;
}
