/*
 * The QMP client: against a scripted fake server (greeting, replies matched by id, events kept
 * while a reply is awaited, errors mapped to errno with QEMU's desc, malformed and hostile
 * servers, silence, hang-ups) and against a real `qemu-system-x86_64 -M none`.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gmig/limits.h"
#include "hostutil.h"
#include "qmp.h"

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n"
#define OK "{\"return\": {}, \"id\": \"%ID%\"}\r\n"
#define SILENT "SILENT"		/* read the request, answer nothing */
#define CLOSE "CLOSE"		/* read the request, hang up */
#define HUGE "HUGE"		/* a line past GMIG_QMP_LINE_MAX */

/* What the fake server says: the greeting, then one answer per request read. */
struct script {
	const char *greeting;
	const char *answers[6];
};

struct fake {
	char dir[256], path[300];
	int lfd;
	pthread_t th;
	const struct script *sc;
};

static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, 1);

		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return (int)n;
}

static void write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t w = send(fd, s, len, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

/* Writes @tmpl with %ID% replaced by the request's id. */
static void answer(int fd, const char *tmpl, const char *req)
{
	struct json_object *o = json_tokener_parse(req), *v;
	const char *id = o && json_object_object_get_ex(o, "id", &v) ? json_object_get_string(v) : "";
	char out[1024];
	const char *p = strstr(tmpl, "%ID%");

	if (p)
		snprintf(out, sizeof(out), "%.*s%s%s", (int)(p - tmpl), tmpl, id, p + 4);
	else
		snprintf(out, sizeof(out), "%s", tmpl);
	write_all(fd, out, strlen(out));
	json_object_put(o);
}

static void *serve(void *arg)
{
	struct fake *f = arg;
	char req[4096];
	int fd = accept(f->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (f->sc->greeting)
		write_all(fd, f->sc->greeting, strlen(f->sc->greeting));
	for (int i = 0; i < 6 && f->sc->answers[i]; i++) {
		const char *a = f->sc->answers[i];

		if (read_line(fd, req, sizeof(req)) < 0)
			break;
		if (!strcmp(a, CLOSE)) {
			close(fd);
			return NULL;
		}
		if (!strcmp(a, SILENT))
			continue;
		if (!strcmp(a, HUGE)) {
			char *big = malloc(GMIG_QMP_LINE_MAX + 16);

			memset(big, ' ', GMIG_QMP_LINE_MAX + 16);
			big[0] = '{';
			write_all(fd, big, GMIG_QMP_LINE_MAX + 16);
			free(big);
			continue;
		}
		answer(fd, a, req);
	}
	/* Keep the connection until the client hangs up (a SILENT answer must stay silent). */
	while (read_line(fd, req, sizeof(req)) >= 0)
		;
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, const struct script *sc)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *dir = hu_tmpdir();

	snprintf(f->dir, sizeof(f->dir), "%s", dir);
	free(dir);
	snprintf(f->path, sizeof(f->path), "%s/qmp.sock", f->dir);
	ck_assert_uint_lt(strlen(f->path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
	f->sc = sc;
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->lfd, 0);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->lfd, 1), 0);
	ck_assert_int_eq(pthread_create(&f->th, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
	/* The client closed its end; the server thread sees EOF and ends. */
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->th, NULL);
	close(f->lfd);
	hu_rmtree(f->dir);
}

/* Opening: the handshake, and servers that get it wrong. */
static const struct {
	struct script sc;
	int rc;
	const char *why;
} open_rows[] = {
	/* 0 */ { { GREETING, { OK } }, 0, "" },
	/* 1 */ { { "{\"hello\": 1}\r\n", { OK } }, -EPROTO, "greeting" },
	/* 2 */ { { "not json at all\r\n", { OK } }, -EPROTO, "not a JSON object" },
	/* 3 */ { { "[1, 2]\r\n", { OK } }, -EPROTO, "not a JSON object" },
	/* 4 */ { { NULL, { OK } }, -ETIMEDOUT, "timed out" },
	/* 5 */ { { GREETING, { SILENT } }, -ETIMEDOUT, "timed out" },
	/* 6 */ { { GREETING, { CLOSE } }, -EPIPE, "closed" },
	/* 7 */ { { GREETING, { "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no caps\"},"
			       " \"id\": \"%ID%\"}\r\n" } }, -EREMOTEIO, "no caps" },
	/* 8 */ { { GREETING, { HUGE } }, -EPROTO, "longer than" },
	/* 9: empty lines and a stale reply before ours are skipped */
	{ { "\r\n\n" GREETING, { "{\"return\": {}, \"id\": \"old\"}\r\n\r\n" OK } }, 0, "" },
};

START_TEST(test_open)
{
	struct fake f;
	struct qmp *q = NULL;
	char why[256] = "";
	int rc;

	fake_start(&f, &open_rows[_i].sc);
	rc = qmp_open(f.path, 300, &q, why, sizeof(why));
	ck_assert_msg(rc == open_rows[_i].rc, "row %d: rc %d (%s)", _i, rc, why);
	if (rc)
		ck_assert_msg(strstr(why, open_rows[_i].why), "row %d: '%s' lacks '%s'", _i, why,
			      open_rows[_i].why);
	qmp_close(q);
	fake_stop(&f);
}
END_TEST

/* Commands after the handshake: replies, errors by class, events meanwhile. */
static const struct {
	const char *answer;
	int rc;
	const char *why;	/* part of qmp_why(), or of the return's JSON */
} exec_rows[] = {
	/* 10 */ { "{\"return\": {\"status\": \"running\"}, \"id\": \"%ID%\"}\r\n", 0, "running" },
	/* 11 */ { "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}, \"id\": "
		   "\"%ID%\"}\r\n", -ENOSYS, "CommandNotFound: nope" },
	/* 12 */ { "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'x' not "
		   "found\"}, \"id\": \"%ID%\"}\r\n", -ENODEV, "Device 'x' not found" },
	/* 13 */ { "{\"error\": {\"class\": \"KVMMissingCap\", \"desc\": \"k\"}, \"id\": "
		   "\"%ID%\"}\r\n", -EOPNOTSUPP, "KVMMissingCap" },
	/* 14 */ { "{\"error\": {\"class\": \"SomethingNew\", \"desc\": \"d\"}, \"id\": "
		   "\"%ID%\"}\r\n", -EREMOTEIO, "SomethingNew: d" },
	/* 15: an error without an id (QEMU could not read the request) is ours */
	{ "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n",
	  -EREMOTEIO, "JSON parse error" },
	/* 16: events before the reply are kept; the reply still comes */
	{ "{\"event\": \"STOP\"}\r\n{\"return\": [1], \"id\": \"%ID%\"}\r\n", 0, "[ 1 ]" },
	/* 17 */ { "{\"return\": 1, \"id\": \"%ID%\"}\r\n{\"return\": 2}\r\n", 0, "1" },
	/* 18 */ { SILENT, -ETIMEDOUT, "timed out" },
	/* 19 */ { CLOSE, -EPIPE, "closed" },
	/* 20 */ { "{\"return\" 1}\r\n", -EPROTO, "not a JSON object" },
};

START_TEST(test_execute)
{
	struct script sc = { GREETING, { OK, exec_rows[_i].answer } };
	struct json_object *ret = NULL;
	struct fake f;
	struct qmp *q;
	char why[256];
	int rc;

	fake_start(&f, &sc);
	ck_assert_int_eq(qmp_open(f.path, 1000, &q, why, sizeof(why)), 0);
	rc = qmp_execute(q, "query-status", NULL, &ret, 300);
	ck_assert_msg(rc == exec_rows[_i].rc, "row %d: rc %d (%s)", _i + 10, rc, qmp_why(q));
	if (rc)
		ck_assert_msg(strstr(qmp_why(q), exec_rows[_i].why), "row %d: '%s'", _i + 10,
			      qmp_why(q));
	else
		ck_assert_msg(strstr(json_object_to_json_string(ret), exec_rows[_i].why),
			      "row %d: %s", _i + 10, json_object_to_json_string(ret));
	json_object_put(ret);
	qmp_close(q);
	fake_stop(&f);
}
END_TEST

/* 21: events: kept ones first, matched by name and a data key; others stay for later. */
START_TEST(test_events)
{
	static const struct script sc = { GREETING, { OK,
		"{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"other\", \"path\": \"/a\"}}\r\n"
		"{\"event\": \"MIGRATION\", \"data\": {\"status\": \"setup\"}}\r\n"
		"{\"return\": {}, \"id\": \"%ID%\"}\r\n"
		"{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"gpu0\", \"path\": \"/b\"}}\r\n",
		NULL } };
	struct json_object *data = NULL, *v;
	struct fake f;
	struct qmp *q;
	char why[256];

	fake_start(&f, &sc);
	ck_assert_int_eq(qmp_open(f.path, 1000, &q, why, sizeof(why)), 0);
	ck_assert_int_eq(qmp_execute(q, "device_del", NULL, NULL, 1000), 0);
	/* The one for gpu0 came after the reply: read from the wire, past the kept ones. */
	ck_assert_int_eq(qmp_wait_event(q, "DEVICE_DELETED", "device", "gpu0", 1000, &data), 0);
	ck_assert(json_object_object_get_ex(data, "path", &v));
	ck_assert_str_eq(json_object_get_string(v), "/b");
	json_object_put(data);
	/* Kept while the reply was awaited. */
	ck_assert_int_eq(qmp_wait_event(q, "MIGRATION", "status", "setup", 100, &data), 0);
	json_object_put(data);
	ck_assert_int_eq(qmp_wait_event(q, "DEVICE_DELETED", "device", "other", 100, NULL), 0);
	/* Each is taken once. */
	ck_assert_int_eq(qmp_wait_event(q, "MIGRATION", NULL, NULL, 100, NULL), -ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(qmp_why(q), "no MIGRATION event"));
	qmp_close(q);
	fake_stop(&f);
}
END_TEST

/* 22: a path too long for a unix socket, and a socket nobody listens on. */
START_TEST(test_paths)
{
	char path[200], why[256];
	struct qmp *q;

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	ck_assert_int_eq(qmp_open(path, 100, &q, why, sizeof(why)), -ENAMETOOLONG);
	ck_assert_int_eq(qmp_open("/nonexistent/qmp.sock", 100, &q, why, sizeof(why)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(why, "/nonexistent/qmp.sock"));
	ck_assert_int_eq(qmp_class_errno(NULL), -EREMOTEIO);
}
END_TEST

/* 23: a real QEMU: handshake, a command, errors with QEMU's words, quit. */
START_TEST(test_real_qemu)
{
	const char *bin = getenv("GMIG_QEMU") ? getenv("GMIG_QEMU") : "qemu-system-x86_64";
	struct json_object *ret = NULL, *args, *v;
	char *dir = hu_tmpdir(), path[300], arg[340], why[256];
	struct qmp *q = NULL;
	pid_t pid;
	int rc = -1, status;

	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", path);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execlp(bin, bin, "-M", "none", "-nodefaults", "-display", "none", "-S", "-qmp", arg,
		       (char *)NULL);
		_exit(127);
	}
	/* QEMU makes the socket once it is up; try for up to 10 s. */
	for (int i = 0; i < 200 && rc; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			hu_rmtree(dir);
			free(dir);
			if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
				fprintf(stderr, "SKIPPED: %s is not installed\n", bin);
				return;
			}
			ck_abort_msg("QEMU exited early");
		}
		rc = qmp_open(path, 2000, &q, why, sizeof(why));
		if (rc)
			usleep(50000);
	}
	ck_assert_msg(rc == 0, "%s", why);
	ck_assert_int_eq(qmp_execute(q, "query-status", NULL, &ret, 5000), 0);
	ck_assert(json_object_object_get_ex(ret, "status", &v));
	ck_assert_str_eq(json_object_get_string(v), "prelaunch");
	json_object_put(ret);
	ck_assert_int_eq(qmp_execute(q, "no-such-command", NULL, NULL, 5000), -ENOSYS);
	ck_assert_ptr_nonnull(strstr(qmp_why(q), "CommandNotFound"));
	args = json_object_new_object();
	json_object_object_add(args, "id", json_object_new_string("gpu0"));
	rc = qmp_execute(q, "device_del", args, NULL, 5000);
	ck_assert_msg(rc == -ENODEV || rc == -EREMOTEIO, "device_del: %d %s", rc, qmp_why(q));
	ck_assert_ptr_nonnull(strstr(qmp_why(q), "gpu0"));
	ck_assert_int_eq(qmp_execute(q, "quit", NULL, NULL, 5000), 0);
	qmp_close(q);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	hu_rmtree(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-qmp");
	TCase *tc = tcase_create("qmp");
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	tcase_add_loop_test(tc, test_open, 0, (int)(sizeof(open_rows) / sizeof(open_rows[0])));
	tcase_add_loop_test(tc, test_execute, 0, (int)(sizeof(exec_rows) / sizeof(exec_rows[0])));
	tcase_add_test(tc, test_events);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_real_qemu);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
