/* libgmig's process-wide state under a CUDA program: started at the first cuInit, seen by every wrapper. */
#ifndef GMIG_UMD_CUDA_INTERPOSE_H
#define GMIG_UMD_CUDA_INTERPOSE_H

#include "cudabe.h"
#include "driver.h"
#include "link.h"
#include "umd.h"

/*
 * Starts the core, the backend and the link once, after the driver's own
 * cuInit succeeded, unless GMIG_DISABLE=1 or GMIG_BACKEND=sim. A failure
 * is logged (GMIG_LOG=debug) and leaves every wrapper a pass-through.
 */
void gmig_cuda_start(void) GMIG_HIDDEN;

/* The gate while the core runs, else NULL: the wrappers' fast path. */
struct gmig_gate *gmig_cuda_gate(void) GMIG_HIDDEN;
/* The backend and core while they run, else NULL. */
struct gmig_cudabe *gmig_cuda_be(void) GMIG_HIDDEN;
struct gmig_umd *gmig_cuda_umd(void) GMIG_HIDDEN;
/* Stops what gmig_cuda_start started (the device is given back, not checkpointed); for tests. */
void gmig_cuda_shutdown(void) GMIG_HIDDEN;

#endif
