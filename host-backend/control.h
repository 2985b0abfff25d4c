/*
 * The control socket gmigctl talks to: newline-delimited JSON in the QGA dialect. Commands:
 * migrate, checkpoint, restore, abort, status, inventory. Long jobs answer with a job id at
 * once; status tells their progress and, once they end, their report. inventory answers when
 * the guest has.
 */
#ifndef GMIG_HOST_CONTROL_H
#define GMIG_HOST_CONTROL_H

#include <sys/types.h>

struct gmigd;

#define CTL_CONNS_MAX	32		/* control connections at once */
#define CTL_OUT_MAX	(16u << 20)	/* a client that reads nothing is dropped past this */

/*
 * Binds a listening unix socket at @path with permissions @mode, creating its directory
 * (0755) when missing and replacing a stale socket file (one nobody answers on). The
 * descriptor, or -errno (-EADDRINUSE when a live server holds the path).
 */
int unix_listen_fd(const char *path, mode_t mode);

/* Opens the control socket. 0 or -errno (logged). */
int control_open(struct gmigd *d);
/* Closes it and every connection. */
void control_close(struct gmigd *d);

#endif
