/* Optional debug output of libgmig: a library never writes to stdout, so this goes to stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"

bool gmig_log_debug_on;

void gmig_log_debug(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (!gmig_log_debug_on)
		return;
	n = snprintf(line, sizeof(line), "libgmig[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
