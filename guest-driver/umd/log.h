/* Optional debug output of libgmig: stderr only, and only when GMIG_LOG=debug. */
#ifndef GMIG_UMD_LOG_H
#define GMIG_UMD_LOG_H

#include <stdbool.h>

/* Set once at start-up, before any thread of libgmig runs; read-only afterwards. */
extern bool gmig_log_debug_on;

void gmig_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
