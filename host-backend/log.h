/* Leveled logging to stderr for gmigd: each line names its level and its peer; hot paths rate-limit. */
#ifndef GMIG_HOST_LOG_H
#define GMIG_HOST_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LV_ERROR, LV_WARN, LV_INFO, LV_DEBUG };

/* The level names, as the config file and --log-level spell them. */
extern const char *const log_level_names[];

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* The level for @name; -EINVAL when it is not one of log_level_names. */
int log_level_parse(const char *name);
bool log_enabled(enum log_level level);

/* One line: "gmigd: <level>: <peer>: <message>"; @peer may be NULL for the daemon itself. */
void log_msg(enum log_level level, const char *peer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A rate limit for one call site: at most LOG_RL_BURST lines per LOG_RL_INTERVAL_MS;
 * the number suppressed is reported with the next line that passes.
 */
#define LOG_RL_INTERVAL_MS	5000
#define LOG_RL_BURST		10

struct log_ratelimit {
	uint64_t start_ms;
	unsigned int count;
	unsigned int missed;
};

/* True when a line may go out now; @missed gets the lines suppressed since the last one. */
bool log_ratelimit_ok(struct log_ratelimit *rl, unsigned int *missed);

#define log_rl(level, peer, ...)						\
	do {									\
		static struct log_ratelimit log_rl__;				\
		unsigned int log_missed__;					\
		if (log_enabled(level) && log_ratelimit_ok(&log_rl__, &log_missed__)) { \
			if (log_missed__)					\
				log_msg(level, peer, "(%u similar messages suppressed)", \
					log_missed__);				\
			log_msg(level, peer, __VA_ARGS__);			\
		}								\
	} while (0)

#define log_error(peer, ...)	log_msg(LV_ERROR, peer, __VA_ARGS__)
#define log_warn(peer, ...)	log_msg(LV_WARN, peer, __VA_ARGS__)
#define log_info(peer, ...)	log_msg(LV_INFO, peer, __VA_ARGS__)
#define log_debug(peer, ...)	log_msg(LV_DEBUG, peer, __VA_ARGS__)

#endif
