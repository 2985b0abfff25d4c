/* The control socket: QGA-dialect JSON lines, the command table, deferred answers and status. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>

#include "gmig/qga.h"

#include "control.h"
#include "daemon.h"
#include "guest.h"
#include "job.h"
#include "log.h"
#include "migration.h"

struct ctlconn {
	TAILQ_ENTRY(ctlconn) entry;
	struct gmigd *d;
	struct bufferevent *bev;
	char peer[32];
	struct gmig_qga_lines lines;
	char *buf;			/* GMIG_QGA_LINE_BUF bytes for the assembler */
	bool deferred;			/* set by a handler during dispatch */
	char *pending;			/* the line whose answer comes later; input waits */
	size_t pending_len;
	struct job *waiting;		/* the job it waits for */
	struct event *kick;		/* reads input again once the answer is out */
	bool dead;
};

/* The dispatcher's context: the daemon, and the connection whose line is being handled. */
struct ctl_server {
	struct gmigd *d;
	struct ctlconn *cur;
	struct gmig_qga_dispatcher disp;
	unsigned int nconns;
	unsigned int seq;
};


static void conn_free(struct ctlconn *c);
static void conn_input(struct ctlconn *c);

/* --- arguments, checked with the wording of QEMU's input visitor --- */

static bool args_known(struct json_object *args, const char *const *names,
		       struct gmig_qga_error *err)
{
	json_object_object_foreach(args, key, val) {
		bool ok = false;

		(void)val;
		for (const char *const *n = names; *n; n++)
			ok |= !strcmp(key, *n);
		if (!ok) {
			gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "Parameter '%s' is unexpected",
					   key);
			return false;
		}
	}
	return true;
}

/* A string argument: 1 when present, 0 when absent (and optional), -1 after an error. */
static int arg_str(struct json_object *args, const char *name, bool required, char *out,
		   size_t len, struct gmig_qga_error *err)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(args, name, &v)) {
		if (!required)
			return 0;
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "Parameter '%s' is missing", name);
		return -1;
	}
	if (!json_object_is_type(v, json_type_string)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Invalid parameter type for '%s', expected: string", name);
		return -1;
	}
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) >= len || strlen(s) != (size_t)json_object_get_string_len(v)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Parameter '%s' is longer than %zu bytes or holds NUL", name, len - 1);
		return -1;
	}
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
					   "Parameter '%s' holds a control character", name);
			return -1;
		}
	}
	memcpy(out, s, strlen(s) + 1);
	return 1;
}

static int arg_u32(struct json_object *args, const char *name, uint32_t min, uint32_t max,
		   uint32_t *out, struct gmig_qga_error *err)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(args, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Invalid parameter type for '%s', expected: integer", name);
		return -1;
	}
	n = json_object_get_int64(v);
	if (n < min || n > max) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Parameter '%s' expects a value from %u to %u", name, min, max);
		return -1;
	}
	*out = (uint32_t)n;
	return 1;
}

static int arg_bool(struct json_object *args, const char *name, bool *out,
		    struct gmig_qga_error *err)
{
	struct json_object *v;

	if (!json_object_object_get_ex(args, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Invalid parameter type for '%s', expected: boolean", name);
		return -1;
	}
	*out = json_object_get_boolean(v);
	return 1;
}

/* The knobs every job that copies shares. */
static int policy_args(struct json_object *args, struct mig_opts *o, struct gmig_qga_error *err)
{
	if (arg_u32(args, "max-rounds", 0, 1000, &o->max_rounds, err) < 0 ||
	    arg_u32(args, "pause-target-ms", 1, 3600000, &o->pause_target_ms, err) < 0 ||
	    arg_u32(args, "freeze-deadline-ms", 1, 600000, &o->freeze_deadline_ms, err) < 0)
		return -1;
	return 0;
}

static int start_job(struct ctl_server *s, const struct mig_opts *o, struct json_object **ret,
		     struct gmig_qga_error *err)
{
	char why[JOB_ERROR_MAX];
	struct job *j;
	int rc = 0;

	if (s->d->stopping) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "gmigd is stopping");
		return -ESHUTDOWN;
	}
	j = mig_start(s->d, o, &rc, why, sizeof(why));
	if (!j) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "%s", why);
		return rc ? rc : -EIO;
	}
	*ret = json_object_new_object();
	if (*ret)
		jadd_int(*ret, "job", j->id);
	log_info(s->cur ? s->cur->peer : NULL, "%s %s: job %u", job_kind_names[o->kind], j->guest,
		 j->id);
	return 0;
}

static int cmd_migrate(void *ctx, struct json_object *args, struct json_object **ret,
		       struct gmig_qga_error *err)
{
	static const char *const names[] = { "guest", "to", "channel", "map", "max-rounds",
					     "pause-target-ms", "freeze-deadline-ms", "qemu-uri",
					     NULL };
	struct ctl_server *s = ctx;
	char map[512], why[160];
	struct mig_opts o;
	int rc;

	mig_opts_defaults(s->d, &o, JOB_MIGRATE);
	if (!args_known(args, names, err) ||
	    arg_str(args, "guest", true, o.guest, sizeof(o.guest), err) < 0 ||
	    arg_str(args, "to", true, o.to, sizeof(o.to), err) < 0 ||
	    arg_str(args, "channel", false, o.channel, sizeof(o.channel), err) < 0 ||
	    arg_str(args, "qemu-uri", false, o.qemu_uri, sizeof(o.qemu_uri), err) < 0 ||
	    (rc = arg_str(args, "map", false, map, sizeof(map), err)) < 0 ||
	    policy_args(args, &o, err))
		return -EINVAL;
	if (rc == 1 && mig_parse_map(map, &o, why, sizeof(why))) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "%s", why);
		return -EINVAL;
	}
	return start_job(s, &o, ret, err);
}

static int cmd_checkpoint(void *ctx, struct json_object *args, struct json_object **ret,
			  struct gmig_qga_error *err)
{
	static const char *const names[] = { "guest", "file", "stop", "max-rounds",
					     "pause-target-ms", "freeze-deadline-ms", NULL };
	struct ctl_server *s = ctx;
	struct mig_opts o;

	mig_opts_defaults(s->d, &o, JOB_CHECKPOINT);
	if (!args_known(args, names, err) ||
	    arg_str(args, "guest", true, o.guest, sizeof(o.guest), err) < 0 ||
	    arg_str(args, "file", true, o.file, sizeof(o.file), err) < 0 ||
	    arg_bool(args, "stop", &o.stop, err) < 0 || policy_args(args, &o, err))
		return -EINVAL;
	return start_job(s, &o, ret, err);
}

static int cmd_restore(void *ctx, struct json_object *args, struct json_object **ret,
		       struct gmig_qga_error *err)
{
	static const char *const names[] = { "guest", "file", "map", NULL };
	struct ctl_server *s = ctx;
	char map[512], why[160];
	struct mig_opts o;
	int rc;

	mig_opts_defaults(s->d, &o, JOB_RESTORE);
	if (!args_known(args, names, err) ||
	    arg_str(args, "guest", true, o.guest, sizeof(o.guest), err) < 0 ||
	    arg_str(args, "file", true, o.file, sizeof(o.file), err) < 0 ||
	    (rc = arg_str(args, "map", false, map, sizeof(map), err)) < 0)
		return -EINVAL;
	if (rc == 1 && mig_parse_map(map, &o, why, sizeof(why))) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "%s", why);
		return -EINVAL;
	}
	return start_job(s, &o, ret, err);
}

static int cmd_abort(void *ctx, struct json_object *args, struct json_object **ret,
		     struct gmig_qga_error *err)
{
	static const char *const names[] = { "job", NULL };
	struct ctl_server *s = ctx;
	struct job *j;
	uint32_t id = 0;
	int rc;

	(void)ret;
	if (!args_known(args, names, err) || arg_u32(args, "job", 1, UINT32_MAX, &id, err) < 0)
		return -EINVAL;
	if (!id) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "Parameter 'job' is missing");
		return -EINVAL;
	}
	j = job_find(s->d, id);
	if (!j) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "no job %u", id);
		return -ENOENT;
	}
	if (j->result != JR_RUNNING || !j->abort) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "job %u is %s; nothing to abort", id,
				   j->result == JR_RUNNING ? "not abortable" :
				   job_result_names[j->result]);
		return -EALREADY;
	}
	rc = j->abort(j->machine);
	if (rc) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "job %u cannot be aborted in state %s "
				   "(too late, or the step cannot be interrupted)", id, j->state);
		return rc;
	}
	return 0;
}

static int cmd_status(void *ctx, struct json_object *args, struct json_object **ret,
		      struct gmig_qga_error *err)
{
	static const char *const names[] = { "job", NULL };
	struct ctl_server *s = ctx;
	struct gmigd *d = s->d;
	struct json_object *o, *guests, *jobs;
	struct guest *g;
	struct job *j;
	uint32_t id = 0;

	if (!args_known(args, names, err) || arg_u32(args, "job", 1, UINT32_MAX, &id, err) < 0)
		return -EINVAL;
	if (id) {
		j = job_find(d, id);
		if (!j) {
			gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "no job %u", id);
			return -ENOENT;
		}
		*ret = job_status(j, true);
		return *ret ? 0 : -ENOMEM;
	}
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	jadd_str(o, "host", d->name);
	jadd_str(o, "version", GMIGD_VERSION);
	jadd_ms(o, "uptime_ms", now_us() - d->started_us);
	jadd_str(o, "peer_listen", d->peer_addr);
	jadd_int(o, "image_bytes", (int64_t)d->image_bytes);
	jadd_int(o, "image_cap", (int64_t)d->cfg.image_cap);
	guests = json_object_new_array();
	TAILQ_FOREACH(g, &d->guests, entry) {
		struct json_object *gj = json_object_new_object();

		if (!gj || !guests)
			continue;
		jadd_str(gj, "name", g->name);
		jadd_str(gj, "address", g->addr_text);
		json_object_object_add(gj, "session", json_object_new_boolean(g->have_session));
		jadd_str(gj, "channel", guest_state_names[g->state]);
		if (g->have_session)
			jadd_str(gj, "phase", gmig_phase_name(g->phase));
		json_object_array_add(guests, gj);
	}
	json_object_object_add(o, "guests", guests);
	jobs = json_object_new_array();
	TAILQ_FOREACH(j, &d->jobs, entry) {
		if (jobs)
			json_object_array_add(jobs, job_status(j, false));
	}
	json_object_object_add(o, "jobs", jobs);
	*ret = o;
	return 0;
}

/* The answer of a deferred command, once its job ended. */
static void answer_later(struct job *j, void *arg)
{
	struct ctlconn *c = arg;
	struct gmig_qga_request req;
	struct gmig_qga_error err;
	char *reply;
	size_t n;

	c->waiting = NULL;
	if (c->dead || !c->pending)
		return;
	/* The line parsed once already; this finds its id again for the reply. */
	gmig_qga_request_parse(&req, c->pending, c->pending_len, &err);
	if (j->result == JR_DONE && j->answer) {
		reply = gmig_qga_reply_return(&req, j->answer, &n);
	} else {
		gmig_qga_error_set(&err, GMIG_QGA_GENERIC_ERROR, "%s",
				   j->error[0] ? j->error : "failed");
		reply = gmig_qga_reply_error(&req, &err, &n);
	}
	gmig_qga_request_clear(&req);
	free(c->pending);
	c->pending = NULL;
	if (reply && c->bev)
		evbuffer_add(bufferevent_get_output(c->bev), reply, n);
	free(reply);
	/* Input waited for this answer; it is read from the loop, not from inside the job's end. */
	if (c->bev) {
		bufferevent_enable(c->bev, EV_READ);
		event_active(c->kick, EV_TIMEOUT, 0);
	}
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_input(arg);
}

static int cmd_inventory(void *ctx, struct json_object *args, struct json_object **ret,
			 struct gmig_qga_error *err)
{
	static const char *const names[] = { "guest", NULL };
	struct ctl_server *s = ctx;
	char why[JOB_ERROR_MAX];
	struct mig_opts o;
	struct job *j;
	int rc = 0;

	(void)ret;
	if (s->d->stopping) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "gmigd is stopping");
		return -ESHUTDOWN;
	}
	mig_opts_defaults(s->d, &o, JOB_INVENTORY);
	if (!args_known(args, names, err) ||
	    arg_str(args, "guest", true, o.guest, sizeof(o.guest), err) < 0)
		return -EINVAL;
	j = mig_start(s->d, &o, &rc, why, sizeof(why));
	if (!j) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "%s", why);
		return rc ? rc : -EIO;
	}
	j->on_end = answer_later;
	j->on_end_arg = s->cur;
	s->cur->waiting = j;
	s->cur->deferred = true;
	return 0;
}

static const struct gmig_qga_cmd ctl_cmds[] = {
	{ "migrate", 0, cmd_migrate },
	{ "checkpoint", 0, cmd_checkpoint },
	{ "restore", 0, cmd_restore },
	{ "abort", 0, cmd_abort },
	{ "status", 0, cmd_status },
	{ "inventory", 0, cmd_inventory },
};

/* --- connections --- */

static void conn_input(struct ctlconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (!c->dead && !c->pending && evbuffer_get_length(in)) {
		struct evbuffer_iovec v;
		const char *line;
		size_t used, len, n;
		char *reply;
		int rc;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		rc = gmig_qga_lines_feed(&c->lines, v.iov_base, v.iov_len, &used, &line, &len);
		if (rc == -EMSGSIZE) {
			reply = gmig_qga_reply_oversize(&n);
			if (reply)
				evbuffer_add(bufferevent_get_output(c->bev), reply, n);
			free(reply);
			log_rl(LV_WARN, c->peer, "request line over %u bytes dropped", GMIG_QGA_LINE_MAX);
		}
		if (rc != 1) {
			evbuffer_drain(in, used);
			continue;
		}
		c->deferred = false;
		c->d->ctl->cur = c;
		reply = gmig_qga_dispatch(&c->d->ctl->disp, line, len, &n);
		c->d->ctl->cur = NULL;
		if (c->deferred) {
			/* The answer comes when the job ends; nothing more is read until then. */
			free(reply);
			c->pending = malloc(len + 1);
			if (!c->pending) {
				evbuffer_drain(in, used);
				conn_free(c);
				return;
			}
			memcpy(c->pending, line, len);
			c->pending[len] = '\0';
			c->pending_len = len;
			evbuffer_drain(in, used);
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		evbuffer_drain(in, used);
		if (reply)
			evbuffer_add(bufferevent_get_output(c->bev), reply, n);
		else
			log_rl(LV_WARN, c->peer, "reply lost: out of memory");
		free(reply);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > CTL_OUT_MAX) {
			log_warn(c->peer, "it reads no replies; dropped");
			conn_free(c);
			return;
		}
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_input(arg);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

static void conn_free(struct ctlconn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->waiting && c->waiting->on_end_arg == c) {
		c->waiting->on_end = NULL;
		c->waiting->on_end_arg = NULL;
	}
	TAILQ_REMOVE(&c->d->ctls, c, entry);
	c->d->ctl->nconns--;
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->kick)
		event_free(c->kick);
	free(c->buf);
	free(c->pending);
	free(c);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct gmigd *d = arg;
	struct ctl_server *s = d->ctl;
	struct ctlconn *c;

	(void)lis;
	(void)sa;
	(void)socklen;
	if (s->nconns >= CTL_CONNS_MAX) {
		log_rl(LV_WARN, "control", "%u connections already; refused", s->nconns);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->d = d;
	snprintf(c->peer, sizeof(c->peer), "ctl#%u", ++s->seq);
	c->buf = malloc(GMIG_QGA_LINE_BUF);
	c->kick = event_new(d->base, -1, 0, kick_cb, c);
	c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->buf || !c->bev || !c->kick ||
	    gmig_qga_lines_init(&c->lines, c->buf, GMIG_QGA_LINE_BUF)) {
		if (c->bev)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->kick)
			event_free(c->kick);
		free(c->buf);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 1u << 20);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&d->ctls, c, entry);
	s->nconns++;
}

int unix_listen_fd(const char *path, mode_t mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX }, tmp = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)], *slash;
	int fd, rc, probe;

	if (strlen(path) + 4 >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.new", path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) && errno != EEXIST)
			return -errno;
	}
	/* A socket file a live server answers on is taken; one nobody answers on is stale. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	rc = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
	close(probe);
	if (!rc)
		return -EADDRINUSE;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/*
	 * Bound and listening under a temporary name, then renamed into place: a client that
	 * sees the path can connect at once.
	 */
	unlink(tmp.sun_path);
	if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) || chmod(tmp.sun_path, mode) ||
	    listen(fd, 16) || rename(tmp.sun_path, path)) {
		rc = -errno;
		unlink(tmp.sun_path);
		close(fd);
		return rc;
	}
	return fd;
}

int control_open(struct gmigd *d)
{
	struct ctl_server *s = calloc(1, sizeof(*s));
	int fd, rc;

	if (!s)
		return -ENOMEM;
	s->d = d;
	s->disp = (struct gmig_qga_dispatcher){
		.cmds = ctl_cmds, .ncmds = sizeof(ctl_cmds) / sizeof(ctl_cmds[0]),
		.version = GMIGD_VERSION, .ctx = s };
	d->ctl = s;
	rc = gmig_qga_dispatcher_check(&s->disp);
	if (rc)
		return rc;
	fd = unix_listen_fd(d->cfg.control_socket, d->cfg.control_mode);
	if (fd < 0) {
		log_error(NULL, "control socket %s: %s", d->cfg.control_socket, strerror(-fd));
		return fd;
	}
	d->ctl_lis = evconnlistener_new(d->base, accept_cb, d,
					LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!d->ctl_lis) {
		close(fd);
		unlink(d->cfg.control_socket);
		return -ENOMEM;
	}
	log_info(NULL, "control socket %s", d->cfg.control_socket);
	return 0;
}

void control_close(struct gmigd *d)
{
	struct ctlconn *c;

	while ((c = TAILQ_FIRST(&d->ctls)))
		conn_free(c);
	if (d->ctl_lis) {
		evconnlistener_free(d->ctl_lis);
		d->ctl_lis = NULL;
		unlink(d->cfg.control_socket);
	}
	free(d->ctl);
	d->ctl = NULL;
}
