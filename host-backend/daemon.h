/*
 * gmigd as one object: the event loop, the settings and the peer secret, the guests it knows,
 * its jobs, the control socket and the peer listener. Private to host-backend/.
 */
#ifndef GMIG_HOST_DAEMON_H
#define GMIG_HOST_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "auth.h"
#include "config.h"

struct event;
struct event_base;
struct evconnlistener;
struct guest;
struct job;
struct ctlconn;
struct incoming;
struct ctl_server;

#define GMIGD_VERSION	"0.1.0"
#define SHUTDOWN_GRACE_MS	20000	/* SIGTERM: running jobs get this long to roll back */

struct gmigd {
	struct event_base *base;
	struct gmigd_config cfg;
	struct auth_secret secret;
	bool have_secret;
	char name[GUEST_NAME_MAX + 1];		/* this host in HELLO and logs */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *shutdown_timer;
	bool stopping;				/* SIGTERM: no new work; exit once jobs end */
	struct evconnlistener *ctl_lis, *peer_lis;
	char peer_addr[64];			/* where the peer listener is bound */
	TAILQ_HEAD(, guest) guests;
	TAILQ_HEAD(, job) jobs;			/* running and finished, oldest first */
	struct ctl_server *ctl;			/* control socket state */
	TAILQ_HEAD(, ctlconn) ctls;
	TAILQ_HEAD(, incoming) incomings;
	uint32_t job_ids;
	uint64_t image_bytes;			/* bytes of every image held now */
	uint64_t started_us;
	uint8_t *lz4_buf;			/* LZ4_compressBound(GMIG_DATA_MAX) bytes */
};

/*
 * Sets up the loop, the control socket, the peer listener and the signals from @cfg (copied).
 * NULL with a message logged when a required part cannot be set up.
 */
struct gmigd *gmigd_new(const struct gmigd_config *cfg);
/* Runs until SIGTERM or SIGINT; 0, or 1 when the loop failed. */
int gmigd_run(struct gmigd *d);
/* Closes everything and frees; NULL is fine. */
void gmigd_free(struct gmigd *d);

/* Monotonic microseconds. */
uint64_t now_us(void);

/* A job ended: a daemon stopping exits once none runs. */
void gmigd_job_ended(struct gmigd *d);

/* Bytes an image may still take under image_cap. */
uint64_t gmigd_image_room(const struct gmigd *d);

#endif
