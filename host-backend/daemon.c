/* gmigd as one object: set-up as a ladder, the loop, and teardown as its mirror. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <lz4.h>
#include <sodium.h>

#include "addr.h"
#include "control.h"
#include "daemon.h"
#include "guest.h"
#include "incoming.h"
#include "job.h"
#include "link.h"
#include "log.h"

uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t gmigd_image_room(const struct gmigd *d)
{
	return d->image_bytes >= d->cfg.image_cap ? 0 : d->cfg.image_cap - d->image_bytes;
}

static unsigned int running_jobs(const struct gmigd *d)
{
	const struct job *j;
	unsigned int n = 0;

	TAILQ_FOREACH(j, &d->jobs, entry)
		n += j->result == JR_RUNNING;
	return n;
}

void gmigd_job_ended(struct gmigd *d)
{
	if (d->stopping && !running_jobs(d)) {
		log_info(NULL, "every job ended; stopping");
		event_base_loopexit(d->base, NULL);
	}
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gmigd *d = arg;

	(void)fd;
	(void)what;
	log_warn(NULL, "%u jobs still run after %u ms; stopping anyway", running_jobs(d),
		 SHUTDOWN_GRACE_MS);
	event_base_loopexit(d->base, NULL);
}

/*
 * SIGTERM or SIGINT: jobs that can still roll back are aborted and get SHUTDOWN_GRACE_MS to
 * finish, so that no guest is left frozen or without its GPUs; a second signal stops at once.
 */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv = { SHUTDOWN_GRACE_MS / 1000, (SHUTDOWN_GRACE_MS % 1000) * 1000 };
	struct gmigd *d = arg;
	struct job *j, *next;

	(void)what;
	if (sig == SIGHUP) {
		log_info(NULL, "SIGHUP: the configuration is read at start-up only; restart to change it");
		return;
	}
	if (d->stopping || !running_jobs(d)) {
		log_info(NULL, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		event_base_loopexit(d->base, NULL);
		return;
	}
	d->stopping = true;
	log_warn(NULL, "%s: %u jobs run; aborting them (a second signal stops at once)",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT", running_jobs(d));
	for (j = TAILQ_FIRST(&d->jobs); j; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->result == JR_RUNNING && j->abort)
			j->abort(j->machine);
	}
	evtimer_add(d->shutdown_timer, &tv);
}

static void peer_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
			   int socklen, void *arg)
{
	char peer[64];

	(void)lis;
	sockaddr_format(sa, (socklen_t)socklen, peer, sizeof(peer));
	incoming_accept(arg, fd, peer);
}

static int peer_open(struct gmigd *d)
{
	char host[ADDR_HOST_MAX], why[ADDR_ERR_MAX];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd;
	uint16_t port;
	int rc;

	if (hostport_parse_listen(d->cfg.peer_listen, host, sizeof(host), &port, why,
				  sizeof(why))) {
		log_error(NULL, "peer_listen: %s", why);
		return -EINVAL;
	}
	rc = hostport_sockaddr(host, port, 1, &ss, &len);
	if (rc) {
		log_error(NULL, "peer_listen %s: %s", d->cfg.peer_listen, strerror(-rc));
		return rc;
	}
	d->peer_lis = evconnlistener_new_bind(d->base, peer_accept_cb, d,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
					      LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&ss,
					      (int)len);
	if (!d->peer_lis) {
		rc = -errno;
		log_error(NULL, "peer_listen %s: %s", d->cfg.peer_listen, strerror(errno));
		return rc ? rc : -EADDRINUSE;
	}
	/* With port 0 the kernel picks one; status tells it. */
	fd = evconnlistener_get_fd(d->peer_lis);
	len = sizeof(ss);
	if (!getsockname(fd, (struct sockaddr *)&ss, &len))
		sockaddr_format((struct sockaddr *)&ss, len, d->peer_addr, sizeof(d->peer_addr));
	log_info(NULL, "taking migrations in on %s", d->peer_addr);
	return 0;
}

static void pick_name(struct gmigd *d)
{
	char host[256] = "";

	if (d->cfg.name[0]) {
		snprintf(d->name, sizeof(d->name), "%s", d->cfg.name);
		return;
	}
	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "gmigd");
	snprintf(d->name, sizeof(d->name), "%.32s", host);
	for (char *p = d->name; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
}

static int add_config_guests(struct gmigd *d)
{
	for (unsigned int i = 0; i < d->cfg.nguests; i++) {
		char why[ADDR_ERR_MAX];
		struct gaddr a;
		struct guest *g;

		if (addr_parse(d->cfg.guests[i].addr, &a, why, sizeof(why)))
			return -EINVAL;
		g = guest_new(d, d->cfg.guests[i].name, &a, true);
		if (!g)
			return -ENOMEM;
		TAILQ_INSERT_TAIL(&d->guests, g, entry);
	}
	return 0;
}

struct gmigd *gmigd_new(const struct gmigd_config *cfg)
{
	char why[256];
	struct gmigd *d = calloc(1, sizeof(*d));
	int rc;

	if (!d) {
		log_error(NULL, "out of memory");
		return NULL;
	}
	d->cfg = *cfg;
	d->started_us = now_us();
	TAILQ_INIT(&d->guests);
	TAILQ_INIT(&d->jobs);
	TAILQ_INIT(&d->ctls);
	TAILQ_INIT(&d->incomings);
	pick_name(d);

	if (sodium_init() < 0) {
		log_error(NULL, "libsodium did not initialise");
		goto out_free;
	}
	rc = auth_secret_load(&d->secret, cfg->peer_secret_file, why, sizeof(why));
	if (!rc) {
		d->have_secret = true;
	} else if (cfg->peer_listen[0]) {
		log_error(NULL, "%s (the peer link needs it; set peer_listen empty to run without)",
			  why);
		goto out_free;
	} else {
		log_info(NULL, "%s: this gmigd cannot migrate to a peer", why);
	}
	d->lz4_buf = malloc((size_t)LZ4_compressBound(GMIG_DATA_MAX));
	if (!d->lz4_buf) {
		log_error(NULL, "out of memory");
		goto out_secret;
	}
	d->base = event_base_new();
	if (!d->base) {
		log_error(NULL, "cannot make an event loop");
		goto out_lz4;
	}
	d->sig_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->sig_int = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, signal_cb, d);
	d->shutdown_timer = evtimer_new(d->base, shutdown_cb, d);
	if (!d->sig_term || !d->sig_int || !d->sig_hup || !d->shutdown_timer ||
	    evsignal_add(d->sig_term, NULL) ||
	    evsignal_add(d->sig_int, NULL) || evsignal_add(d->sig_hup, NULL)) {
		log_error(NULL, "cannot watch signals");
		goto out_signals;
	}
	if (add_config_guests(d)) {
		log_error(NULL, "cannot set up the configured guests");
		goto out_guests;
	}
	if (control_open(d))
		goto out_control;
	if (cfg->peer_listen[0] && peer_open(d))
		goto out_control;
	log_info(NULL, "gmigd %s on %s: %u guests configured, image cap %llu bytes", GMIGD_VERSION,
		 d->name, cfg->nguests, (unsigned long long)cfg->image_cap);
	return d;

out_control:
	control_close(d);
out_guests:
	while (!TAILQ_EMPTY(&d->guests)) {
		struct guest *g = TAILQ_FIRST(&d->guests);

		TAILQ_REMOVE(&d->guests, g, entry);
		guest_free(g);
	}
out_signals:
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->shutdown_timer)
		event_free(d->shutdown_timer);
	event_base_free(d->base);
out_lz4:
	free(d->lz4_buf);
out_secret:
	auth_secret_clear(&d->secret);
out_free:
	free(d);
	return NULL;
}

int gmigd_run(struct gmigd *d)
{
	return event_base_dispatch(d->base) < 0 ? 1 : 0;
}

void gmigd_free(struct gmigd *d)
{
	struct guest *g;

	if (!d)
		return;
	if (d->peer_lis)
		evconnlistener_free(d->peer_lis);
	control_close(d);
	incoming_free_all(d);
	job_free_all(d);
	while ((g = TAILQ_FIRST(&d->guests))) {
		TAILQ_REMOVE(&d->guests, g, entry);
		guest_free(g);
	}
	event_free(d->sig_term);
	event_free(d->sig_int);
	event_free(d->sig_hup);
	event_free(d->shutdown_timer);
	link_free_detached();
	/* Deferred frees (connections closing, machines ending) run before the loop goes. */
	event_base_loop(d->base, EVLOOP_NONBLOCK);
	event_base_free(d->base);
	free(d->lz4_buf);
	auth_secret_clear(&d->secret);
	free(d);
}
