/*
 * A fault-injecting proxy for the host tests: it forwards a stream socket (unix or TCP) frame
 * by frame, and when a frame of a chosen type passes in a chosen direction it can run a hook
 * (kill a daemon), cut the connection before or after the frame, and refuse new connections
 * for a while.
 */
#ifndef GMIG_TEST_PROXY_H
#define GMIG_TEST_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum proxy_dir { PX_TO_SERVER, PX_TO_CLIENT };
enum proxy_act { PX_NOTHING, PX_CUT_BEFORE, PX_CUT_AFTER };

struct proxy_rule {
	uint16_t type;			/* frame type that triggers; 0: none */
	enum proxy_dir dir;
	unsigned int nth;		/* the nth such frame (1 = the first) */
	enum proxy_act act;
	void (*hook)(void *arg);	/* run when it triggers, before the frame goes on */
	void *arg;
	/* When it triggers, may change the frame in place (same length) before it goes on. */
	void (*rewrite)(uint8_t *frame, size_t len);
	unsigned int refuse_ms;		/* after a cut, new connections are closed this long */
};

struct proxy;

/* Listens on the unix socket @path and forwards to the unix socket @target. */
struct proxy *proxy_unix(const char *path, const char *target, const struct proxy_rule *rule);
/* Listens on 127.0.0.1 (its port in *@port) and forwards to 127.0.0.1:@target_port. */
struct proxy *proxy_tcp(uint16_t target_port, uint16_t *port, const struct proxy_rule *rule);
/* Whether the rule fired. */
bool proxy_fired(struct proxy *p);
/* Stops it and closes every connection. */
void proxy_free(struct proxy *p);

#endif
