/* The host integration rig: scratch GPUs, the agent, gmigd processes, the sim program, a control client. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <endian.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gmig/simdev.h"
#include "harness.h"

static struct rig *live;	/* the rig to clean up if the test exits early */
static char base_dir[48];	/* made by the runner; tests' scratch directories go inside */

static const char *bin(const char *env)
{
	const char *b = getenv(env);

	ck_assert_msg(b != NULL, "%s is not set", env);
	return b;
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool wait_path(const char *path, int ms)
{
	struct stat st;

	for (int t = 0; t < ms; t += 10) {
		if (!stat(path, &st))
			return true;
		usleep(10000);
	}
	return false;
}

/* Starts @argv with @env entries added, stdout to @out and stderr to @err (either may be NULL). */
static pid_t spawn(char *const argv[], char *const env[], const char *out, const char *err)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Nothing outlives the test, however it ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int i = 0; env && env[i]; i++)
			putenv(env[i]);
		if (out) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (fd < 0 || dup2(fd, 1) < 0)
				_exit(126);
			close(fd);
		}
		if (err && out && !strcmp(err, out)) {
			if (dup2(1, 2) < 0)
				_exit(126);
		} else if (err) {
			int fd = open(err, O_WRONLY | O_CREAT | O_APPEND, 0644);

			if (fd < 0 || dup2(fd, 2) < 0)
				_exit(126);
			close(fd);
		}
		execv(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

int rig_reap(pid_t pid, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0)
			return -1;
		if (ms_now() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("process %d did not end within %d ms", (int)pid, timeout_ms);
		}
		usleep(5000);
	}
}

static void kill_reap(pid_t *pid)
{
	int status;

	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, &status, 0);
		*pid = 0;
	}
}

static void cleanup(void)
{
	char cmd[160];

	if (!live)
		return;
	kill_reap(&live->prog);
	kill_reap(&live->src.pid);
	kill_reap(&live->dst.pid);
	kill_reap(&live->agent);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", live->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", live->dir);
	live = NULL;
}

void rig_base_setup(void)
{
	snprintf(base_dir, sizeof(base_dir), "/dev/shm/gmig-host.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

void rig_base_teardown(void)
{
	char cmd[96];

	if (!base_dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base_dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", base_dir);
	base_dir[0] = '\0';
}

void rig_setup(struct rig *r, unsigned int dev_mb)
{
	char *argv[12];
	int fd;

	memset(r, 0, sizeof(*r));
	if (base_dir[0])
		snprintf(r->dir, sizeof(r->dir), "%s/t.XXXXXX", base_dir);
	else
		snprintf(r->dir, sizeof(r->dir), "/dev/shm/gmig-host.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(r->dir));
	live = r;
	atexit(cleanup);
	for (int i = 0; i < 2; i++) {
		char name[16];

		snprintf(r->dev[i], sizeof(r->dev[i]), "%s/" GMIG_SIMDEV_PREFIX "%d", r->dir, i);
		snprintf(name, sizeof(name), "gpu%d", i);
		ck_assert_int_eq(gmig_simdev_create(r->dev[i], (uint64_t)dev_mb << 20, name), 0);
	}
	snprintf(r->agent_sock, sizeof(r->agent_sock), "%s/agent.sock", r->dir);
	snprintf(r->client_sock, sizeof(r->client_sock), "%s/client.sock", r->dir);
	snprintf(r->agent_log, sizeof(r->agent_log), "%s/agent.log", r->dir);
	snprintf(r->prog_out, sizeof(r->prog_out), "%s/prog.out", r->dir);
	snprintf(r->ref_out, sizeof(r->ref_out), "%s/ref.out", r->dir);
	snprintf(r->secret, sizeof(r->secret), "%s/peer.secret", r->dir);
	fd = open(r->secret, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "a shared secret of the two test daemons\n", 40), 40);
	close(fd);

	argv[0] = (char *)bin("GMIG_AGENT_BIN");
	argv[1] = "--unix";
	argv[2] = r->agent_sock;
	argv[3] = "--client-socket";
	argv[4] = r->client_sock;
	argv[5] = "--sim-dir";
	argv[6] = r->dir;
	argv[7] = "--vsock-port";
	argv[8] = "0";
	argv[9] = "--log-level";
	argv[10] = "info";
	argv[11] = NULL;
	r->agent = spawn(argv, NULL, NULL, r->agent_log);
	ck_assert_msg(wait_path(r->agent_sock, 10000), "gmig-agent did not start");
	ck_assert(wait_path(r->client_sock, 10000));
}

void rig_teardown(struct rig *r)
{
	if (r->src.pid)
		ck_assert_int_eq(rig_daemon_stop(&r->src), 0);
	if (r->dst.pid)
		ck_assert_int_eq(rig_daemon_stop(&r->dst), 0);
	if (r->agent) {
		kill(r->agent, SIGTERM);
		ck_assert_int_eq(rig_reap(r->agent, 10000), 0);
		r->agent = 0;
	}
	cleanup();
}

void rig_dump(const char *path)
{
	char *text = slurp_file(path);

	fprintf(stderr, "----- %s -----\n%s----- end -----\n", path, text);
	free(text);
}

void rig_daemon(struct rig *r, struct daemon *dm, const char *name, bool listen,
		const char *secret, const char *const *sets)
{
	char *argv[40], setbuf[16][160];
	int n = 0, k = 0;

	memset(dm, 0, sizeof(*dm));
	snprintf(dm->name, sizeof(dm->name), "%s", name);
	snprintf(dm->sock, sizeof(dm->sock), "%s/%s.sock", r->dir, name);
	snprintf(dm->log, sizeof(dm->log), "%s/%s.log", r->dir, name);
	argv[n++] = (char *)bin("GMIGD_BIN");
	argv[n++] = "--config";
	argv[n++] = "/dev/null";
	argv[n++] = "--control-socket";
	argv[n++] = dm->sock;
	argv[n++] = "--peer-listen";
	argv[n++] = listen ? "127.0.0.1:0" : "";
	argv[n++] = "--secret-file";
	argv[n++] = (char *)(secret ? secret : r->secret);
	argv[n++] = "--log-level";
	argv[n++] = "info";
	snprintf(setbuf[k], sizeof(setbuf[k]), "name=%s", name);
	argv[n++] = "--set";
	argv[n++] = setbuf[k++];
	for (int i = 0; sets && sets[i]; i++) {
		ck_assert_int_lt(k, 16);
		snprintf(setbuf[k], sizeof(setbuf[k]), "%s", sets[i]);
		argv[n++] = "--set";
		argv[n++] = setbuf[k++];
	}
	argv[n] = NULL;
	dm->pid = spawn(argv, NULL, NULL, dm->log);
	if (!wait_path(dm->sock, 10000)) {
		rig_dump(dm->log);
		ck_abort_msg("gmigd %s did not start", name);
	}
	if (listen) {
		struct json_object *st = ctl_ok(dm->sock, "status", NULL);
		const char *addr = js(st, "peer_listen"), *colon = strrchr(addr, ':');

		ck_assert_ptr_nonnull(colon);
		dm->port = (uint16_t)atoi(colon + 1);
		ck_assert_int_gt(dm->port, 0);
		json_object_put(st);
	}
}

int rig_daemon_stop(struct daemon *dm)
{
	int rc;

	if (dm->pid <= 0)
		return 0;
	kill(dm->pid, SIGTERM);
	rc = rig_reap(dm->pid, 15000);
	dm->pid = 0;
	if (rc)
		rig_dump(dm->log);
	return rc;
}

void rig_daemon_kill(struct daemon *dm)
{
	int status;

	if (dm->pid > 0) {
		kill(dm->pid, SIGKILL);
		waitpid(dm->pid, &status, 0);
		dm->pid = 0;
	}
}

pid_t rig_program(struct rig *r, const char *out, bool disabled, unsigned int steps,
		  unsigned int step_ms, unsigned int mem_mb, unsigned int kernel_ms)
{
	static char env_dev[192], env_sock[192], env_dis[32];
	char a_steps[16], a_step_ms[16], a_mem[16], a_kernel[16];
	char *argv[] = { (char *)bin("GMIG_SIMPROG_BIN"), "--steps", a_steps, "--step-ms", a_step_ms,
			 "--memory", a_mem, "--kernel-ms", a_kernel, NULL };
	char *env[] = { env_dev, env_sock, env_dis, NULL };

	snprintf(a_steps, sizeof(a_steps), "%u", steps);
	snprintf(a_step_ms, sizeof(a_step_ms), "%u", step_ms);
	snprintf(a_mem, sizeof(a_mem), "%u", mem_mb);
	snprintf(a_kernel, sizeof(a_kernel), "%u", kernel_ms);
	snprintf(env_dev, sizeof(env_dev), "GMIG_SIM_DEVICE=%s", r->dev[0]);
	snprintf(env_sock, sizeof(env_sock), "GMIG_AGENT_SOCKET=%s", r->client_sock);
	snprintf(env_dis, sizeof(env_dis), "GMIG_DISABLE=%d", disabled);
	return spawn(argv, env, out, NULL);
}

char *rig_reference(struct rig *r, unsigned int steps, unsigned int mem_mb)
{
	pid_t pid = rig_program(r, r->ref_out, true, steps, 0, mem_mb, 0);

	ck_assert_int_eq(rig_reap(pid, 60000), 0);
	return slurp_file(r->ref_out);
}

unsigned int rig_granules(struct rig *r, int dev, pid_t pid)
{
	struct gmig_simdev_info info;
	unsigned int n = 0, granules;
	uint32_t *owners;
	int fd;

	ck_assert_int_eq(gmig_simdev_stat(r->dev[dev], &info), 0);
	granules = (unsigned int)(info.mem_bytes / GMIG_SIMDEV_GRANULE);
	owners = calloc(granules, sizeof(*owners));
	fd = open(r->dev[dev], O_RDONLY);
	ck_assert_int_ge(fd, 0);
	/* The owner table: one little-endian u32 pid per granule, from byte 4096. */
	ck_assert_int_eq(pread(fd, owners, granules * sizeof(*owners), 4096),
			 (ssize_t)(granules * sizeof(*owners)));
	close(fd);
	for (unsigned int i = 0; i < granules; i++)
		n += le32toh(owners[i]) == (uint32_t)pid;
	free(owners);
	return n;
}

void rig_check_gpu(struct rig *r, int on)
{
	siginfo_t si = { 0 };
	unsigned int here = rig_granules(r, on, r->prog), there = rig_granules(r, 1 - on, r->prog);

	ck_assert_msg(there == 0, "the program holds %u granules on GPU %d", there, 1 - on);
	/* A program that already ended holds nothing anywhere; one that runs holds its memory. */
	if (!waitid(P_PID, (id_t)r->prog, &si, WEXITED | WNOHANG | WNOWAIT) && si.si_pid == 0)
		ck_assert_msg(here > 0, "the running program holds nothing on GPU %d", on);
}

/* --- the control client --- */

static int ctl_connect(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	ck_assert_msg(!connect(fd, (struct sockaddr *)&sa, sizeof(sa)), "connect %s: %s", sock,
		      strerror(errno));
	return fd;
}

struct json_object *ctl_call(const char *sock, const char *cmd, struct json_object *args,
			     char *err, size_t errlen)
{
	struct json_object *req = json_object_new_object(), *reply, *v, *e;
	static char buf[4 << 20];
	const char *text;
	size_t len = 0;
	int fd = ctl_connect(sock);

	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	json_object_object_add(req, "id", json_object_new_int(7));
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	ck_assert_int_eq(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
	ck_assert_int_eq(send(fd, "\n", 1, MSG_NOSIGNAL), 1);
	json_object_put(req);
	while (!len || buf[len - 1] != '\n') {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		ck_assert_msg(poll(&p, 1, 90000) == 1, "gmigd did not answer %s", cmd);
		ck_assert_uint_lt(len, sizeof(buf) - 1);
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		ck_assert_int_gt(n, 0);
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	reply = json_tokener_parse(buf);
	ck_assert_msg(reply != NULL, "not JSON: %s", buf);
	ck_assert_int_eq(ji(reply, "id"), 7);
	if (json_object_object_get_ex(reply, "return", &v)) {
		json_object_get(v);
		json_object_put(reply);
		return v;
	}
	ck_assert(json_object_object_get_ex(reply, "error", &e));
	snprintf(err, errlen, "%s", js(e, "desc"));
	json_object_put(reply);
	return NULL;
}

struct json_object *ctl_ok(const char *sock, const char *cmd, struct json_object *args)
{
	char err[1200];
	struct json_object *r = ctl_call(sock, cmd, args, err, sizeof(err));

	ck_assert_msg(r != NULL, "%s failed: %s", cmd, err);
	return r;
}

uint32_t ctl_job(const char *sock, const char *cmd, struct json_object *args)
{
	struct json_object *r = ctl_ok(sock, cmd, args);
	uint32_t id = (uint32_t)ji(r, "job");

	ck_assert_uint_gt(id, 0);
	json_object_put(r);
	return id;
}

static struct json_object *job_status(const char *sock, uint32_t id)
{
	struct json_object *args = json_object_new_object();

	json_object_object_add(args, "job", json_object_new_int64(id));
	return ctl_ok(sock, "status", args);
}

struct json_object *ctl_wait(const char *sock, uint32_t id)
{
	uint64_t end = ms_now() + RIG_WAIT_MS;

	for (;;) {
		struct json_object *st = job_status(sock, id);

		if (strcmp(js(st, "result"), "running"))
			return st;
		json_object_put(st);
		ck_assert_msg(ms_now() < end, "job %u still runs after %d ms", id, RIG_WAIT_MS);
		usleep(20000);
	}
}

bool ctl_wait_state(const char *sock, uint32_t id, const char *state, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;

	while (ms_now() < end) {
		struct json_object *st = job_status(sock, id);
		bool there = !strcmp(js(st, "state"), state);
		bool over = strcmp(js(st, "result"), "running");

		json_object_put(st);
		if (there)
			return true;
		if (over)
			return false;
		usleep(5000);
	}
	return false;
}

void ctl_wait_clients(const char *sock, const char *guest, unsigned int n)
{
	uint64_t end = ms_now() + 20000;

	for (;;) {
		struct json_object *args = json_object_new_object(), *inv, *clients;
		size_t have;

		json_object_object_add(args, "guest", json_object_new_string(guest));
		inv = ctl_ok(sock, "inventory", args);
		ck_assert(json_object_object_get_ex(inv, "clients", &clients));
		have = json_object_array_length(clients);
		json_object_put(inv);
		if (have == n)
			return;
		ck_assert_msg(ms_now() < end, "the agent never saw %u programs (%zu)", n, have);
		usleep(20000);
	}
}

/* --- json --- */

static struct json_object *jpath(struct json_object *o, const char *path)
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

const char *js(struct json_object *o, const char *path)
{
	struct json_object *v = jpath(o, path);

	return v ? json_object_get_string(v) : "";
}

int64_t ji(struct json_object *o, const char *path)
{
	struct json_object *v = jpath(o, path);

	return v ? json_object_get_int64(v) : -1;
}

double jd(struct json_object *o, const char *path)
{
	struct json_object *v = jpath(o, path);

	return v ? json_object_get_double(v) : -1;
}

/* --- results --- */

char *slurp_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return strdup("");
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	return buf;
}

char *results_of(char *out)
{
	char *first = strstr(out, "pointers"), *last, *p, *w;

	ck_assert_msg(first != NULL, "no pointers line in: %s", out);
	last = strrchr(out, '\n');
	ck_assert_ptr_nonnull(last);
	*last = 0;
	last = strrchr(out, '\n');
	ck_assert_ptr_nonnull(last);
	ck_assert_msg(!strncmp(first, last + 1, strcspn(first, "\n")),
		      "device pointers changed: %.*s vs %s", (int)strcspn(first, "\n"), first, last + 1);
	for (p = w = out; *p;) {
		size_t n = strcspn(p, "\n");

		if (strncmp(p, "pointers", 8)) {
			memmove(w, p, n);
			w += n;
			*w++ = '\n';
		}
		p += n + (p[n] == '\n');
	}
	*w = 0;
	return out;
}

void assert_same_results(char *got, char *ref)
{
	char *a = results_of(got), *b = results_of(ref);

	ck_assert_msg(strstr(a, "step "), "the program printed no results: %s", a);
	ck_assert_str_eq(a, b);
}

int run_gmigctl(const char *const *argv, char *out, size_t outlen)
{
	char path[160];
	char *args[24];
	pid_t pid;
	int n = 0, rc;
	char *text;

	snprintf(path, sizeof(path), "%s/gmigctl.out", live ? live->dir : "/tmp");
	args[n++] = (char *)bin("GMIGCTL_BIN");
	for (int i = 1; argv[i] && n < 23; i++)
		args[n++] = (char *)argv[i];
	args[n] = NULL;
	pid = spawn(args, NULL, path, path);
	rc = rig_reap(pid, 90000);
	text = slurp_file(path);
	snprintf(out, outlen, "%s", text);
	free(text);
	unlink(path);
	return rc;
}
