/* libgmig's process-wide state behind the gsim API, for tests inside the tree (not exported). */
#ifndef GMIG_UMD_SIMAPI_H
#define GMIG_UMD_SIMAPI_H

#include "link.h"
#include "umd.h"

/* The client core once started (gsim_init), else NULL. */
struct gmig_umd *gmig_sim_umd(void);
/* The link, NULL when GMIG_DISABLE=1 or not started. */
struct gmig_link *gmig_sim_link(void);
/*
 * Stops everything gsim_init started, in reverse: the link (thawing a frozen
 * program that holds its device), the streams once their work is done, the
 * arena (granules go back to the device), the device. The next call starts
 * afresh, reading the environment again.
 */
void gmig_sim_shutdown(void);

#endif
