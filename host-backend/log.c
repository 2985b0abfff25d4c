/* Leveled logging to stderr for gmigd, with journald priority prefixes when systemd reads it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

const char *const log_level_names[] = {
	[LV_ERROR] = "error",
	[LV_WARN] = "warn",
	[LV_INFO] = "info",
	[LV_DEBUG] = "debug",
};

/* syslog priorities, for the "<N>" prefix journald understands on a stream. */
static const int level_prio[] = {
	[LV_ERROR] = 3,
	[LV_WARN] = 4,
	[LV_INFO] = 6,
	[LV_DEBUG] = 7,
};

static enum log_level cur_level = LV_INFO;

void log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

int log_level_parse(const char *name)
{
	for (int i = LV_ERROR; i <= LV_DEBUG; i++) {
		if (!strcmp(name, log_level_names[i]))
			return i;
	}
	return -EINVAL;
}

bool log_enabled(enum log_level level)
{
	return level <= cur_level;
}

void log_msg(enum log_level level, const char *peer, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* journald sets JOURNAL_STREAM for a service's stderr; it then takes the level from "<N>". */
	if (getenv("JOURNAL_STREAM"))
		fprintf(stderr, "<%d>%s%s%s\n", level_prio[level], peer ? peer : "",
			peer ? ": " : "", text);
	else
		fprintf(stderr, "gmigd: %s: %s%s%s\n", log_level_names[level],
			peer ? peer : "", peer ? ": " : "", text);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool log_ratelimit_ok(struct log_ratelimit *rl, unsigned int *missed)
{
	uint64_t now = now_ms();

	*missed = 0;
	if (!rl->start_ms || now - rl->start_ms >= LOG_RL_INTERVAL_MS) {
		*missed = rl->missed;
		rl->start_ms = now;
		rl->count = 0;
		rl->missed = 0;
	}
	if (rl->count >= LOG_RL_BURST) {
		rl->missed++;
		return false;
	}
	rl->count++;
	return true;
}
