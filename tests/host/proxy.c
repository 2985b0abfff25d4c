/* A frame-aware fault-injecting proxy: two threads per connection, cuts and hooks on a frame type. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gmig/limits.h"
#include "proxy.h"

#define PX_BUF		(GMIG_HDR_SIZE + GMIG_PAYLOAD_MAX + 65536)
#define PX_CONNS	16

struct pconn {
	struct proxy *p;
	int fd[2];			/* [0] the client side, [1] the server side */
	atomic_int refs;
};

struct proxy {
	int lfd;
	struct sockaddr_storage target;
	socklen_t tlen;
	struct proxy_rule rule;
	pthread_t acceptor;
	pthread_mutex_t mu;		/* guards conns, seen, fired, refuse_until */
	struct pconn *conns[PX_CONNS];
	unsigned int seen;
	bool fired;
	uint64_t refuse_until;
	atomic_bool stop;
	char path[108];
};

struct pump {
	struct pconn *c;
	enum proxy_dir dir;
};

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void conn_put(struct pconn *c)
{
	struct proxy *p = c->p;

	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < PX_CONNS; i++) {
		if (p->conns[i] == c)
			p->conns[i] = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	close(c->fd[0]);
	close(c->fd[1]);
	free(c);
}

static void cut(struct pconn *c)
{
	shutdown(c->fd[0], SHUT_RDWR);
	shutdown(c->fd[1], SHUT_RDWR);
}

static bool write_all(int fd, const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		b += w;
		n -= (size_t)w;
	}
	return true;
}

/* What the rule says about a frame of @type going @dir: PX_NOTHING, or its act. */
static enum proxy_act check_rule(struct proxy *p, uint8_t *frame, size_t len, uint16_t type,
				 enum proxy_dir dir)
{
	enum proxy_act act = PX_NOTHING;
	bool hook = false, rewrite = false;

	pthread_mutex_lock(&p->mu);
	if (!p->fired && p->rule.type == type && p->rule.dir == dir &&
	    ++p->seen >= (p->rule.nth ? p->rule.nth : 1)) {
		p->fired = true;
		act = p->rule.act;
		hook = p->rule.hook != NULL;
		rewrite = p->rule.rewrite != NULL;
		if (act != PX_NOTHING)
			p->refuse_until = ms_now() + p->rule.refuse_ms;
	}
	pthread_mutex_unlock(&p->mu);
	if (hook)
		p->rule.hook(p->rule.arg);
	if (rewrite)
		p->rule.rewrite(frame, len);
	return act;
}

static void *pump_main(void *arg)
{
	struct pump *pm = arg;
	struct pconn *c = pm->c;
	int in = pm->dir == PX_TO_SERVER ? c->fd[0] : c->fd[1];
	int out = pm->dir == PX_TO_SERVER ? c->fd[1] : c->fd[0];
	uint8_t *buf = malloc(PX_BUF);
	size_t len = 0;

	while (buf) {
		ssize_t n = recv(in, buf + len, PX_BUF - len, 0);
		size_t off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		/* Whole frames go on one by one; a partial one waits for the rest. */
		while (len - off >= GMIG_HDR_SIZE) {
			uint8_t *h = buf + off;
			uint32_t plen = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 |
					(uint32_t)h[11] << 24;
			uint16_t type = (uint16_t)(h[6] | h[7] << 8);
			size_t flen = GMIG_HDR_SIZE + (size_t)plen;
			enum proxy_act act;

			if (plen > GMIG_PAYLOAD_MAX) {
				/* Not a frame: pass the rest through unparsed. */
				if (!write_all(out, h, len - off))
					goto out;
				off = len;
				break;
			}
			if (len - off < flen)
				break;
			act = check_rule(c->p, buf + off, flen, type, pm->dir);
			if (act == PX_CUT_BEFORE) {
				cut(c);
				goto out;
			}
			if (!write_all(out, h, flen))
				goto out;
			off += flen;
			if (act == PX_CUT_AFTER) {
				cut(c);
				goto out;
			}
		}
		memmove(buf, buf + off, len - off);
		len -= off;
	}
out:
	free(buf);
	/* One side ended: the other learns it as a peer would. */
	shutdown(out, SHUT_WR);
	shutdown(in, SHUT_RD);
	conn_put(c);
	free(pm);
	return NULL;
}

static void start_pumps(struct proxy *p, int client)
{
	struct pconn *c = calloc(1, sizeof(*c));
	pthread_t th;
	int server, slot = -1;

	if (!c) {
		close(client);
		return;
	}
	server = socket(p->target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (server < 0 || connect(server, (struct sockaddr *)&p->target, p->tlen)) {
		if (server >= 0)
			close(server);
		close(client);
		free(c);
		return;
	}
	c->p = p;
	c->fd[0] = client;
	c->fd[1] = server;
	atomic_store(&c->refs, 2);
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < PX_CONNS && slot < 0; i++) {
		if (!p->conns[i])
			slot = i;
	}
	if (slot >= 0)
		p->conns[slot] = c;
	pthread_mutex_unlock(&p->mu);
	for (int d = 0; d < 2; d++) {
		struct pump *pm = malloc(sizeof(*pm));

		*pm = (struct pump){ c, (enum proxy_dir)d };
		if (pthread_create(&th, NULL, pump_main, pm)) {
			free(pm);
			cut(c);
			conn_put(c);
			continue;
		}
		pthread_detach(th);
	}
}

static void *accept_main(void *arg)
{
	struct proxy *p = arg;

	while (!atomic_load(&p->stop)) {
		struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };
		bool refuse;
		int fd;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&p->mu);
		refuse = ms_now() < p->refuse_until;
		pthread_mutex_unlock(&p->mu);
		if (refuse) {
			close(fd);
			continue;
		}
		start_pumps(p, fd);
	}
	return NULL;
}

static struct proxy *proxy_start(struct proxy *p, const struct proxy_rule *rule)
{
	pthread_mutex_init(&p->mu, NULL);
	if (rule)
		p->rule = *rule;
	if (listen(p->lfd, 8) || pthread_create(&p->acceptor, NULL, accept_main, p)) {
		close(p->lfd);
		free(p);
		return NULL;
	}
	return p;
}

struct proxy *proxy_unix(const char *path, const char *target, const struct proxy_rule *rule)
{
	struct proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sockaddr_un *t;

	if (!p)
		return NULL;
	t = (struct sockaddr_un *)&p->target;
	t->sun_family = AF_UNIX;
	snprintf(t->sun_path, sizeof(t->sun_path), "%s", target);
	p->tlen = sizeof(*t);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (p->lfd >= 0)
			close(p->lfd);
		free(p);
		return NULL;
	}
	return proxy_start(p, rule);
}

struct proxy *proxy_tcp(uint16_t target_port, uint16_t *port, const struct proxy_rule *rule)
{
	struct proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in *t;
	socklen_t len = sizeof(sa);

	if (!p)
		return NULL;
	t = (struct sockaddr_in *)&p->target;
	*t = sa;
	t->sin_port = htons(target_port);
	p->tlen = sizeof(*t);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(p->lfd, (struct sockaddr *)&sa, &len)) {
		if (p->lfd >= 0)
			close(p->lfd);
		free(p);
		return NULL;
	}
	*port = ntohs(sa.sin_port);
	return proxy_start(p, rule);
}

bool proxy_fired(struct proxy *p)
{
	bool f;

	pthread_mutex_lock(&p->mu);
	f = p->fired;
	pthread_mutex_unlock(&p->mu);
	return f;
}

void proxy_free(struct proxy *p)
{
	bool busy = true;

	if (!p)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->acceptor, NULL);
	close(p->lfd);
	if (p->path[0])
		unlink(p->path);
	/* The pumps end once their sockets are shut; they free their connections themselves. */
	for (int tries = 0; busy && tries < 500; tries++) {
		busy = false;
		pthread_mutex_lock(&p->mu);
		for (int i = 0; i < PX_CONNS; i++) {
			if (p->conns[i]) {
				cut(p->conns[i]);
				busy = true;
			}
		}
		pthread_mutex_unlock(&p->mu);
		if (busy)
			usleep(10000);
	}
	if (!busy) {
		pthread_mutex_destroy(&p->mu);
		free(p);
	}
}
