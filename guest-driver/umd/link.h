/*
 * The client link: a thread that connects to gmig-agent's unix socket (and
 * retries every second), speaks the framed protocol in the client role and
 * drives the client core through a migration.
 */
#ifndef GMIG_UMD_LINK_H
#define GMIG_UMD_LINK_H

#include "umd.h"

#define GMIG_LINK_RETRY_MS		1000	/* between connection attempts */
#define GMIG_LINK_SLOT_WAIT_MS		30000	/* longest wait for a SLOT_FREE: then the agent is stuck */
#define GMIG_LINK_SEND_TIMEOUT_MS	30000	/* longest a send may block, for the same reason */
#define GMIG_LINK_ERRORS_HELD		8	/* ERROR frames kept while no session is up */

struct gmig_link;

/* Starts the link thread; name is the program's name for the agent. */
int gmig_link_start(struct gmig_link **l, struct gmig_umd *u, const char *path, const char *name);
/*
 * Ends the session and the thread. A program frozen on a device it still
 * holds is thawed; one that was released stays frozen. Accepts NULL.
 */
void gmig_link_stop(struct gmig_link *l);

/* The phase the link has the client in (enum gmig_phase); for tests and logs. */
int gmig_link_phase(struct gmig_link *l);

#endif
