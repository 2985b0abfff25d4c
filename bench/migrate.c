/*
 * Live migration against stop-and-copy, with real processes: gmig-agent, two gmigds on
 * loopback and the sim program, whose working set and dirty rate vary. For each working set
 * and each dirty rate one program runs; it is migrated live from GPU 0 to GPU 1, then back
 * with stop-and-copy (max_rounds 0), and the table shows the pause the program saw and the
 * whole migration's time, from gmigd's reports, all measured in one run.
 *
 *   bench-migrate [--sizes 64,256,1024] [--big] [--dirty idle,low,high] [--repeat N]
 *
 * --big adds 8192 MiB (for machines with some 40 GiB of memory). The programs' dirty rates:
 * idle steps every 5 s, low every 500 ms, high every 20 ms; each step rewrites half of the
 * working set. The measured rate is the bytes a pre-copy round found changed, per second of
 * the round before it. Binaries: $GMIG_AGENT_BIN, $GMIGD_BIN, $GMIG_SIMPROG_BIN, or found
 * beside this program in the build tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gmig/simdev.h"

#define WAIT_MS		600000	/* the longest a migration may take here */

static const struct {
	const char *name;
	unsigned int step_ms;
} dirty_levels[] = {
	{ "idle", 5000 },
	{ "low", 500 },
	{ "high", 20 },
};

static struct {
	char agent[PATH_MAX], gmigd[PATH_MAX], simprog[PATH_MAX];
	char dir[64], secret[128], agent_sock[128], client_sock[128], dev[2][128];
	char src_sock[128], dst_sock[128];
	pid_t agent_pid, src_pid, dst_pid, prog_pid;
	unsigned int port;
} b;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void cleanup(void)
{
	pid_t *pids[] = { &b.prog_pid, &b.src_pid, &b.dst_pid, &b.agent_pid };
	char cmd[128];

	for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
		if (*pids[i] > 0) {
			kill(*pids[i], SIGKILL);
			waitpid(*pids[i], NULL, 0);
			*pids[i] = 0;
		}
	}
	if (b.dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b.dir);
		if (system(cmd))
			fprintf(stderr, "bench-migrate: could not remove %s\n", b.dir);
		b.dir[0] = '\0';
	}
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench-migrate: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	cleanup();
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static void find_bin(char *out, const char *env, const char *self, const char *rel)
{
	char tmp[PATH_MAX];

	if (getenv(env)) {
		snprintf(out, PATH_MAX, "%s", getenv(env));
	} else {
		snprintf(tmp, sizeof(tmp), "%s", self);
		snprintf(out, PATH_MAX, "%s/../%s", dirname(tmp), rel);
	}
	if (access(out, X_OK))
		die("%s not found (set %s)", out, env);
}

/* Starts @argv with @env added; stderr to @err_path, stdout to @out_path (or /dev/null). */
static pid_t spawn(char *const argv[], char *const env[], const char *err_path,
		   const char *out_path)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int i = 0; env && env[i]; i++)
			putenv(env[i]);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			close(fd);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void wait_path(const char *path)
{
	struct stat st;

	for (int i = 0; i < 1000; i++) {
		if (!stat(path, &st))
			return;
		usleep(10000);
	}
	die("%s did not appear", path);
}

/* One control command; its "return" value, or it dies with the error. */
static struct json_object *call(const char *sock, const char *cmd, struct json_object *args)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct json_object *req = json_object_new_object(), *reply, *v, *e;
	static char buf[8 << 20];
	const char *text;
	size_t len = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("cannot reach %s: %s", sock, strerror(errno));
	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || write(fd, "\n", 1) != 1)
		die("write: %s", strerror(errno));
	json_object_put(req);
	while (!len || buf[len - 1] != '\n') {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, WAIT_MS) != 1 || len >= sizeof(buf) - 1)
			die("%s: no answer", cmd);
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			die("%s: gmigd closed the connection", cmd);
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	reply = json_tokener_parse(buf);
	if (!reply)
		die("%s: not JSON", cmd);
	if (json_object_object_get_ex(reply, "return", &v)) {
		json_object_get(v);
		json_object_put(reply);
		return v;
	}
	if (json_object_object_get_ex(reply, "error", &e) && json_object_object_get_ex(e, "desc", &v))
		die("%s: %s", cmd, json_object_get_string(v));
	die("%s: a reply without return or error", cmd);
}

static struct json_object *get(struct json_object *o, const char *path)
{
	char key[64];

	while (o && *path) {
		size_t n = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n + (path[n] == '.');
	}
	return o;
}

static double num(struct json_object *o, const char *path)
{
	struct json_object *v = get(o, path);

	return v ? json_object_get_double(v) : -1;
}

static pid_t start_gmigd(const char *name, const char *sock, bool listen)
{
	char log[160], set[64];
	char *argv[] = { b.gmigd, "--config", "/dev/null", "--control-socket", (char *)sock,
			 "--peer-listen", listen ? "127.0.0.1:0" : "", "--secret-file", b.secret,
			 "--log-level", "warn", "--set", set, "--set", "image_cap=64G", NULL };
	pid_t pid;

	snprintf(set, sizeof(set), "name=%s", name);
	snprintf(log, sizeof(log), "%s/%s.log", b.dir, name);
	pid = spawn(argv, NULL, log, NULL);
	wait_path(sock);
	return pid;
}

static void setup(unsigned int dev_mb)
{
	char *argv[] = { b.agent, "--unix", b.agent_sock, "--client-socket", b.client_sock,
			 "--sim-dir", b.dir, "--vsock-port", "0", "--log-level", "warn", NULL };
	struct json_object *st;
	const char *addr;
	int fd;

	snprintf(b.dir, sizeof(b.dir), "/dev/shm/gmig-bench.XXXXXX");
	if (!mkdtemp(b.dir))
		die("mkdtemp: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		char name[16];

		snprintf(b.dev[i], sizeof(b.dev[i]), "%s/" GMIG_SIMDEV_PREFIX "%d", b.dir, i);
		snprintf(name, sizeof(name), "gpu%d", i);
		if (gmig_simdev_create(b.dev[i], (uint64_t)dev_mb << 20, name))
			die("cannot make a %u MiB simulated GPU in %s", dev_mb, b.dir);
	}
	snprintf(b.secret, sizeof(b.secret), "%s/peer.secret", b.dir);
	fd = open(b.secret, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "the benchmark's shared peer secret\n", 35) != 35)
		die("secret: %s", strerror(errno));
	close(fd);
	snprintf(b.agent_sock, sizeof(b.agent_sock), "%s/agent.sock", b.dir);
	snprintf(b.client_sock, sizeof(b.client_sock), "%s/client.sock", b.dir);
	snprintf(b.src_sock, sizeof(b.src_sock), "%s/src.sock", b.dir);
	snprintf(b.dst_sock, sizeof(b.dst_sock), "%s/dst.sock", b.dir);
	b.agent_pid = spawn(argv, NULL, NULL, NULL);
	wait_path(b.agent_sock);
	wait_path(b.client_sock);
	b.src_pid = start_gmigd("src", b.src_sock, true);
	b.dst_pid = start_gmigd("dst", b.dst_sock, true);
	st = call(b.dst_sock, "status", NULL);
	addr = json_object_get_string(get(st, "peer_listen"));
	b.port = (unsigned int)atoi(strrchr(addr, ':') + 1);
	json_object_put(st);
}

static void teardown(void)
{
	cleanup();
}

static void start_program(unsigned int mem_mb, unsigned int step_ms)
{
	static char env_dev[192], env_sock[192];
	char a_mem[16], a_step[16];
	char *argv[] = { b.simprog, "--steps", "100000000", "--step-ms", a_step, "--memory", a_mem,
			 NULL };
	char *env[] = { env_dev, env_sock, NULL };
	char out[160], guest[160];
	double end = now_ms() + WAIT_MS;

	snprintf(a_mem, sizeof(a_mem), "%u", mem_mb);
	snprintf(a_step, sizeof(a_step), "%u", step_ms);
	snprintf(env_dev, sizeof(env_dev), "GMIG_SIM_DEVICE=%s", b.dev[0]);
	snprintf(env_sock, sizeof(env_sock), "GMIG_AGENT_SOCKET=%s", b.client_sock);
	snprintf(out, sizeof(out), "%s/prog.out", b.dir);
	b.prog_pid = spawn(argv, env, NULL, out);
	/* The program prints its pointers once its memory is allocated and initialised. */
	for (;;) {
		FILE *f = fopen(out, "r");
		char line[256] = "";

		if (f && fgets(line, sizeof(line), f) && !strncmp(line, "pointers", 8)) {
			fclose(f);
			break;
		}
		if (f)
			fclose(f);
		if (waitpid(b.prog_pid, NULL, WNOHANG) == b.prog_pid) {
			b.prog_pid = 0;
			die("the program ended before it started (%u MiB)", mem_mb);
		}
		if (now_ms() > end)
			die("the program did not start within %d s", WAIT_MS / 1000);
		usleep(50000);
	}
	/* And the agent knows it, with all of its memory. */
	snprintf(guest, sizeof(guest), "unix:%s", b.agent_sock);
	for (;;) {
		struct json_object *a = json_object_new_object(), *inv, *c;
		double bytes = 0;

		json_object_object_add(a, "guest", json_object_new_string(guest));
		inv = call(b.src_sock, "inventory", a);
		c = get(inv, "clients");
		if (c && json_object_array_length(c) == 1)
			bytes = num(json_object_array_get_idx(c, 0), "bytes");
		json_object_put(inv);
		if (bytes >= (double)mem_mb * (1 << 20))
			break;
		if (now_ms() > end)
			die("the agent never listed the program's %u MiB", mem_mb);
		usleep(50000);
	}
}

static void stop_program(void)
{
	kill(b.prog_pid, SIGKILL);
	waitpid(b.prog_pid, NULL, 0);
	b.prog_pid = 0;
}

/* One migration of the program; its report. */
static struct json_object *migrate(const char *map, unsigned int max_rounds)
{
	struct json_object *a = json_object_new_object(), *r, *st;
	char guest[160], to[32];
	double end = now_ms() + WAIT_MS;
	int64_t id;

	snprintf(guest, sizeof(guest), "unix:%s", b.agent_sock);
	snprintf(to, sizeof(to), "127.0.0.1:%u", b.port);
	json_object_object_add(a, "guest", json_object_new_string(guest));
	json_object_object_add(a, "to", json_object_new_string(to));
	json_object_object_add(a, "map", json_object_new_string(map));
	json_object_object_add(a, "max-rounds", json_object_new_int((int)max_rounds));
	r = call(b.src_sock, "migrate", a);
	id = json_object_get_int64(get(r, "job"));
	json_object_put(r);
	for (;;) {
		a = json_object_new_object();
		json_object_object_add(a, "job", json_object_new_int64(id));
		st = call(b.src_sock, "status", a);
		if (strcmp(json_object_get_string(get(st, "result")), "running"))
			break;
		json_object_put(st);
		if (now_ms() > end)
			die("migration %lld did not end", (long long)id);
		usleep(20000);
	}
	if (strcmp(json_object_get_string(get(st, "result")), "done"))
		die("migration %lld: %s: %s", (long long)id, json_object_get_string(get(st, "result")),
		    json_object_get_string(get(st, "error")));
	r = json_object_get(get(st, "report"));
	json_object_put(st);
	return r;
}

/* Bytes the rounds after the first found changed, per second of the round before each. */
static double dirty_rate(struct json_object *rep)
{
	struct json_object *rounds = get(rep, "rounds");
	double bytes = 0, ms = 0;
	size_t n = rounds ? json_object_array_length(rounds) : 0;

	for (size_t i = 1; i < n; i++) {
		struct json_object *prev = json_object_array_get_idx(rounds, i - 1);
		struct json_object *r = json_object_array_get_idx(rounds, i);

		bytes += num(r, "changed") * 65536;
		ms += num(prev, "ms");
	}
	return ms > 0 ? bytes / 1048576 / (ms / 1000) : -1;
}

static void row(unsigned int mem, const char *level, const char *mode, struct json_object *rep,
		double rate)
{
	char r[16];

	if (rate >= 0)
		snprintf(r, sizeof(r), "%.0f", rate);
	else
		snprintf(r, sizeof(r), "-");
	printf("%7u  %-5s  %8s  %-13s  %6lld  %-13s  %9.1f  %9.1f  %9.1f  %8.0f  %8.0f\n", mem,
	       level, r, mode, (long long)json_object_array_length(get(rep, "rounds")),
	       json_object_get_string(get(rep, "precopy.stop")), num(rep, "pause_ms"),
	       num(rep, "times_ms.restore"),
	       num(rep, "times_ms.total"), num(rep, "bytes.to_destination") / 1048576,
	       num(rep, "throughput_mbps.source_to_destination"));
	fflush(stdout);
}

static unsigned int parse_list(const char *text, unsigned int *out, unsigned int max)
{
	unsigned int n = 0;
	char *copy = strdup(text), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long v = strtoul(t, &end, 10);

		if (*end || !v || v > 65536)
			die("'%s' is not a size in MiB", t);
		out[n++] = (unsigned int)v;
	}
	free(copy);
	return n;
}

int main(int argc, char **argv)
{
	unsigned int sizes[16] = { 64, 256, 1024 }, nsizes = 3, repeat = 1;
	bool levels[3] = { true, true, true };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			nsizes = parse_list(argv[++i], sizes, 15);
		} else if (!strcmp(argv[i], "--big")) {
			sizes[nsizes++] = 8192;
		} else if (!strcmp(argv[i], "--dirty") && i + 1 < argc) {
			const char *l = argv[++i];

			for (int k = 0; k < 3; k++)
				levels[k] = strstr(l, dirty_levels[k].name) != NULL;
		} else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
			repeat = (unsigned int)atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: bench-migrate [--sizes MiB,...] [--big] "
				"[--dirty idle,low,high] [--repeat N]\n");
			return 2;
		}
	}
	find_bin(b.agent, "GMIG_AGENT_BIN", argv[0], "guest-agent/gmig-agent");
	find_bin(b.gmigd, "GMIGD_BIN", argv[0], "host-backend/gmigd");
	find_bin(b.simprog, "GMIG_SIMPROG_BIN", argv[0], "tests/integration/gmig-simprog");
	signal(SIGPIPE, SIG_IGN);
	atexit(cleanup);

	printf("gmig live migration (pre-copy) against stop-and-copy, two gmigds on loopback,\n"
	       "the sim program on the simulated GPU; times from gmigd's reports, in ms.\n"
	       "dirty: measured by pre-copy, MiB/s; restore: destination gmigd into the program;\n"
	       "moved: MiB on the peer link.\n\n");
	printf("%7s  %-5s  %8s  %-13s  %6s  %-13s  %9s  %9s  %9s  %8s  %8s\n", "MiB", "prog",
	       "dirty", "mode", "rounds", "stopped by", "pause", "restore", "total", "moved",
	       "MB/s");
	for (unsigned int s = 0; s < nsizes; s++) {
		for (int k = 0; k < 3; k++) {
			if (!levels[k])
				continue;
			for (unsigned int rep = 0; rep < repeat; rep++) {
				struct json_object *live, *stop;

				setup(sizes[s] + 64);
				start_program(sizes[s], dirty_levels[k].step_ms);
				live = migrate("0:1", 8);
				row(sizes[s], dirty_levels[k].name, "live", live, dirty_rate(live));
				/* Back from GPU 1 to GPU 0, frozen first and copied whole. */
				stop = migrate("1:0", 0);
				row(sizes[s], dirty_levels[k].name, "stop-and-copy", stop, -1);
				json_object_put(live);
				json_object_put(stop);
				stop_program();
				teardown();
			}
		}
	}
	return 0;
}
