/* The agent's listening ends: vsock and unix host channels, the virtio-serial port, and unix socket set-up. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "agent.h"
#include "channel.h"
#include "host.h"
#include "log.h"

struct serial_port {
	struct agent *a;
	char path[CONFIG_PATH_MAX];
	int fd;				/* kept across the host's comings and goings */
	struct hconn *conn;
	struct event *retry;
	bool missing_reported;
	unsigned int hangups;		/* in a row, for quieter logs */
};

/* mkdir -p for the directory part of @path, mode 0755. */
static int make_parent(const char *path)
{
	char dir[PATH_MAX];
	char *p;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	p = strrchr(dir, '/');
	if (!p || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* A socket file nobody listens on is left over from a crash; a live one is someone's. */
static int clear_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (!rc)
		return -EADDRINUSE;
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return 0;
}

int unix_listen_fd(const char *path, mode_t mode)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	rc = make_parent(path);
	if (rc)
		return rc;
	rc = clear_stale(path, &sun);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		rc = -errno;
		goto out_close;
	}
	if (chmod(path, mode) || listen(fd, CHANNEL_BACKLOG)) {
		rc = -errno;
		goto out_unlink;
	}
	return fd;

out_unlink:
	unlink(path);
out_close:
	close(fd);
	return rc;
}

static void host_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
			   int salen, void *arg)
{
	struct agent *a = arg;
	char peer[CONFIG_PATH_MAX + 32];

	(void)lis;
	(void)salen;
	if (sa->sa_family == AF_VSOCK) {
		const struct sockaddr_vm *svm = (const struct sockaddr_vm *)sa;

		snprintf(peer, sizeof(peer), "host vsock:%u:%u", svm->svm_cid, svm->svm_port);
		hconn_new(a, fd, HC_VSOCK, peer, NULL);
	} else {
		snprintf(peer, sizeof(peer), "host unix#%d", (int)fd);
		hconn_new(a, fd, HC_UNIX, peer, NULL);
	}
}

static void host_accept_error_cb(struct evconnlistener *lis, void *arg)
{
	(void)lis;
	(void)arg;
	log_rl(LV_ERROR, NULL, "host channel: accept failed: %s",
	       evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static struct evconnlistener *listener_on(struct agent *a, int fd)
{
	struct evconnlistener *lis = evconnlistener_new(a->base, host_accept_cb, a,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);

	if (!lis) {
		close(fd);
		return NULL;
	}
	evconnlistener_set_error_cb(lis, host_accept_error_cb);
	return lis;
}

/* Listens on AF_VSOCK; a guest without vsock only loses this channel. */
static void vsock_open(struct agent *a)
{
	struct sockaddr_vm svm = {
		.svm_family = AF_VSOCK,
		.svm_port = a->cfg.vsock_port,
		.svm_cid = VMADDR_CID_ANY,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		log_warn(NULL, "vsock unavailable (%s); serving the other channels", strerror(errno));
		return;
	}
	if (bind(fd, (struct sockaddr *)&svm, sizeof(svm)) || listen(fd, CHANNEL_BACKLOG)) {
		log_warn(NULL, "vsock port %u: %s; serving the other channels", a->cfg.vsock_port,
			 strerror(errno));
		close(fd);
		return;
	}
	a->vsock_lis = listener_on(a, fd);
	if (a->vsock_lis)
		log_info(NULL, "host channel on vsock port %u", a->cfg.vsock_port);
}

static int unix_open(struct agent *a)
{
	int fd = unix_listen_fd(a->cfg.unix_path, (mode_t)a->cfg.unix_mode);

	if (fd < 0) {
		log_error(NULL, "host channel %s: %s", a->cfg.unix_path, strerror(-fd));
		return fd;
	}
	a->unix_lis = listener_on(a, fd);
	if (!a->unix_lis)
		return -ENOMEM;
	log_info(NULL, "host channel on unix socket %s", a->cfg.unix_path);
	return 0;
}

/* --- the virtio-serial port --- */

static void serial_retry_arm(struct serial_port *p)
{
	struct timeval tv = { SERIAL_RETRY_MS / 1000, (SERIAL_RETRY_MS % 1000) * 1000 };

	evtimer_add(p->retry, &tv);
}

/* Opens the port when closed, and serves it as a host connection. */
static void serial_attach(struct serial_port *p)
{
	char peer[CONFIG_PATH_MAX + 32];

	if (p->fd < 0) {
		p->fd = open(p->path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (p->fd < 0) {
			if (!p->missing_reported)
				log_warn(NULL, "serial port %s: %s; trying every %u ms", p->path,
					 strerror(errno), SERIAL_RETRY_MS);
			p->missing_reported = true;
			serial_retry_arm(p);
			return;
		}
		p->missing_reported = false;
		/* An emulated UART (isa-serial) would otherwise echo and translate bytes. */
		if (isatty(p->fd)) {
			struct termios t;

			if (!tcgetattr(p->fd, &t)) {
				cfmakeraw(&t);
				tcsetattr(p->fd, TCSANOW, &t);
			}
		}
		log_info(NULL, "host channel on serial port %s", p->path);
	}
	snprintf(peer, sizeof(peer), "host serial:%s", p->path);
	p->conn = hconn_new(p->a, p->fd, HC_SERIAL, peer, p);
	if (!p->conn)
		serial_retry_arm(p);
}

static void serial_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	serial_attach(arg);
}

void serial_conn_closed(struct serial_port *p, int err)
{
	p->conn = NULL;
	/*
	 * virtio-serial reports a host that closed its end as a hangup that lasts until it
	 * comes back: keep the port and look again later instead of spinning on it. Other
	 * errors reopen the port.
	 */
	if (err && p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (++p->hangups == 1)
		log_info(NULL, "serial port %s: the host side is closed; watching it", p->path);
	serial_retry_arm(p);
}

static int serial_open(struct agent *a)
{
	struct serial_port *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->a = a;
	p->fd = -1;
	snprintf(p->path, sizeof(p->path), "%s", a->cfg.serial);
	p->retry = evtimer_new(a->base, serial_retry_cb, p);
	if (!p->retry) {
		free(p);
		return -ENOMEM;
	}
	a->serial = p;
	serial_attach(p);
	return 0;
}

static void serial_close(struct agent *a)
{
	struct serial_port *p = a->serial;

	if (!p)
		return;
	event_free(p->retry);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
	a->serial = NULL;
}

int channel_open_all(struct agent *a)
{
	int rc;

	if (a->cfg.vsock_port)
		vsock_open(a);
	if (a->cfg.unix_path[0]) {
		rc = unix_open(a);
		if (rc)
			return rc;
	}
	if (a->cfg.serial[0]) {
		rc = serial_open(a);
		if (rc)
			return rc;
	}
	if (!a->vsock_lis && !a->unix_lis && !a->serial)
		log_warn(NULL, "no host channel is open: only clients are served");
	return 0;
}

void channel_close_all(struct agent *a)
{
	if (a->vsock_lis) {
		evconnlistener_free(a->vsock_lis);
		a->vsock_lis = NULL;
	}
	if (a->unix_lis) {
		evconnlistener_free(a->unix_lis);
		a->unix_lis = NULL;
		unlink(a->cfg.unix_path);
	}
	serial_close(a);
}
