/* A blocking QMP client with deadlines: greeting, capabilities, commands with ids, kept events. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gmig/limits.h"

#include "qmp.h"

struct qmp {
	int fd;
	char *buf;			/* bytes read and not yet parsed */
	size_t len;
	uint64_t next_id;
	struct json_object *events[GMIG_QMP_EVENTS_MAX];	/* oldest first */
	unsigned int nevents;
	char why[QMP_WHY_MAX];
};

static const struct {
	const char *cls;
	int err;
} classes[] = {
	{ "CommandNotFound", -ENOSYS },
	{ "DeviceNotFound", -ENODEV },
	{ "DeviceNotActive", -ENODEV },
	{ "KVMMissingCap", -EOPNOTSUPP },
	{ "GenericError", -EREMOTEIO },
};

int qmp_class_errno(const char *cls)
{
	for (size_t i = 0; cls && i < sizeof(classes) / sizeof(classes[0]); i++) {
		if (!strcmp(classes[i].cls, cls))
			return classes[i].err;
	}
	return -EREMOTEIO;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int left_ms(uint64_t deadline)
{
	uint64_t now = mono_ms();

	return now >= deadline ? 0 : (int)(deadline - now > 3600000 ? 3600000 : deadline - now);
}

static int fail(struct qmp *q, int err, const char *what)
{
	snprintf(q->why, sizeof(q->why), "%s: %s", what, strerror(-err));
	return err;
}

/* Writes all of @text and a newline before @deadline. */
static int send_all(struct qmp *q, const char *text, uint64_t deadline)
{
	size_t len = strlen(text), off = 0;
	char nl = '\n';

	while (off <= len) {
		const char *p = off < len ? text + off : &nl;
		size_t n = off < len ? len - off : 1;
		struct pollfd pfd = { q->fd, POLLOUT, 0 };
		ssize_t w;
		int rc;

		rc = poll(&pfd, 1, left_ms(deadline));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return fail(q, -errno, "QMP write");
		if (rc == 0)
			return fail(q, -ETIMEDOUT, "QMP write");
		w = send(q->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			return fail(q, errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno,
				    "QMP write");
		off += (size_t)w;
	}
	return 0;
}

/* The next JSON object QEMU sent, read before @deadline. */
static int read_msg(struct qmp *q, uint64_t deadline, struct json_object **out)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		struct pollfd pfd = { q->fd, POLLIN, 0 };
		ssize_t r;
		int rc;

		if (nl) {
			size_t n = (size_t)(nl - q->buf);
			struct json_object *o;
			bool empty;

			*nl = '\0';
			if (n && q->buf[n - 1] == '\r')
				q->buf[n - 1] = '\0';
			empty = !q->buf[0];
			o = empty ? NULL : json_tokener_parse(q->buf);
			memmove(q->buf, nl + 1, q->len - n - 1);
			q->len -= n + 1;
			if (empty)
				continue;
			if (!o || !json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				snprintf(q->why, sizeof(q->why), "QMP: a line that is not a JSON object");
				return -EPROTO;
			}
			*out = o;
			return 0;
		}
		if (q->len == GMIG_QMP_LINE_MAX) {
			snprintf(q->why, sizeof(q->why), "QMP: a line longer than %u bytes",
				 GMIG_QMP_LINE_MAX);
			return -EPROTO;
		}
		rc = poll(&pfd, 1, left_ms(deadline));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return fail(q, -errno, "QMP read");
		if (rc == 0)
			return fail(q, -ETIMEDOUT, "QMP read");
		r = read(q->fd, q->buf + q->len, GMIG_QMP_LINE_MAX - q->len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return fail(q, errno == ECONNRESET ? -EPIPE : -errno, "QMP read");
		if (r == 0) {
			snprintf(q->why, sizeof(q->why), "QEMU closed the QMP socket");
			return -EPIPE;
		}
		q->len += (size_t)r;
	}
}

static void keep_event(struct qmp *q, struct json_object *ev)
{
	if (q->nevents == GMIG_QMP_EVENTS_MAX) {
		json_object_put(q->events[0]);
		memmove(q->events, q->events + 1, (GMIG_QMP_EVENTS_MAX - 1) * sizeof(q->events[0]));
		q->nevents--;
	}
	q->events[q->nevents++] = ev;
}

static const char *str_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int qmp_open(const char *path, uint32_t timeout_ms, struct qmp **out, char *why, size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = mono_ms() + timeout_ms;
	struct json_object *greeting = NULL, *v;
	struct qmp *q;
	int rc = -ENOMEM;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, whylen, "QMP socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	q = calloc(1, sizeof(*q));
	if (!q)
		goto out_nomem;
	q->buf = malloc(GMIG_QMP_LINE_MAX + 1);
	if (!q->buf)
		goto out_free_q;
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (q->fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "QMP socket: %s", strerror(-rc));
		goto out_free_buf;
	}
	/* A unix connect never waits for the server: it succeeds or fails at once. */
	if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		snprintf(why, whylen, "QMP %s: %s", path, strerror(-rc));
		goto out_close;
	}
	rc = read_msg(q, deadline, &greeting);
	if (rc)
		goto out_why;
	if (!json_object_object_get_ex(greeting, "QMP", &v)) {
		rc = -EPROTO;
		snprintf(q->why, sizeof(q->why), "QMP: the greeting has no \"QMP\" member");
		goto out_why;
	}
	json_object_put(greeting);
	greeting = NULL;
	rc = qmp_execute(q, "qmp_capabilities", NULL, NULL, left_ms(deadline));
	if (rc)
		goto out_why;
	*out = q;
	return 0;

out_why:
	json_object_put(greeting);
	snprintf(why, whylen, "QMP %s: %s", path, q->why);
out_close:
	close(q->fd);
out_free_buf:
	free(q->buf);
out_free_q:
	free(q);
	if (rc == -ENOMEM)
		snprintf(why, whylen, "out of memory");
	return rc;
out_nomem:
	snprintf(why, whylen, "out of memory");
	return -ENOMEM;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	for (unsigned int i = 0; i < q->nevents; i++)
		json_object_put(q->events[i]);
	close(q->fd);
	free(q->buf);
	free(q);
}

int qmp_execute(struct qmp *q, const char *cmd, struct json_object *args,
		struct json_object **ret, uint32_t timeout_ms)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	struct json_object *req = json_object_new_object(), *msg, *v, *err;
	char id[32];
	int rc;

	if (ret)
		*ret = NULL;
	if (!req) {
		json_object_put(args);
		return -ENOMEM;
	}
	snprintf(id, sizeof(id), "gmig-%llu", (unsigned long long)++q->next_id);
	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	json_object_object_add(req, "id", json_object_new_string(id));
	rc = send_all(q, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), deadline);
	json_object_put(req);
	if (rc)
		return rc;
	for (;;) {
		const char *rid;

		rc = read_msg(q, deadline, &msg);
		if (rc)
			return rc;
		if (json_object_object_get_ex(msg, "event", NULL)) {
			keep_event(q, msg);
			continue;
		}
		rid = str_of(msg, "id");
		if (json_object_object_get_ex(msg, "error", &err) && (!rid || !strcmp(rid, id))) {
			/* No id: QEMU could not read our request at all; it is still ours. */
			const char *cls = str_of(err, "class"), *desc = str_of(err, "desc");

			snprintf(q->why, sizeof(q->why), "%s: %s: %s", cmd, cls ? cls : "Error",
				 desc ? desc : "(no description)");
			rc = qmp_class_errno(cls);
			json_object_put(msg);
			return rc;
		}
		if (!rid || strcmp(rid, id) || !json_object_object_get_ex(msg, "return", &v)) {
			json_object_put(msg);	/* a late answer to a request that timed out */
			continue;
		}
		if (ret)
			*ret = json_object_get(v);
		json_object_put(msg);
		return 0;
	}
}

/* Whether the kept or read event @ev is the one waited for. */
static bool event_matches(struct json_object *ev, const char *name, const char *key,
			  const char *value)
{
	struct json_object *data = NULL;
	const char *n = str_of(ev, "event"), *v;

	if (!n || strcmp(n, name))
		return false;
	if (!key)
		return true;
	json_object_object_get_ex(ev, "data", &data);
	v = str_of(data, key);
	return v && !strcmp(v, value);
}

static void give_data(struct json_object *ev, struct json_object **data)
{
	struct json_object *d = NULL;

	if (data) {
		json_object_object_get_ex(ev, "data", &d);
		*data = d ? json_object_get(d) : NULL;
	}
	json_object_put(ev);
}

int qmp_wait_event(struct qmp *q, const char *name, const char *key, const char *value,
		   uint32_t timeout_ms, struct json_object **data)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	struct json_object *msg;
	int rc;

	if (data)
		*data = NULL;
	for (unsigned int i = 0; i < q->nevents; i++) {
		if (!event_matches(q->events[i], name, key, value))
			continue;
		msg = q->events[i];
		memmove(q->events + i, q->events + i + 1,
			(q->nevents - i - 1) * sizeof(q->events[0]));
		q->nevents--;
		give_data(msg, data);
		return 0;
	}
	for (;;) {
		rc = read_msg(q, deadline, &msg);
		if (rc == -ETIMEDOUT)
			snprintf(q->why, sizeof(q->why), "no %s event within %u ms", name, timeout_ms);
		if (rc)
			return rc;
		if (event_matches(msg, name, key, value)) {
			give_data(msg, data);
			return 0;
		}
		if (json_object_object_get_ex(msg, "event", NULL))
			keep_event(q, msg);
		else
			json_object_put(msg);
	}
}

const char *qmp_why(const struct qmp *q)
{
	return q->why;
}
