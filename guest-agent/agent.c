/* gmig-agent as one object: set-up and teardown of the loop, listeners and signals, and its run. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "agent.h"
#include "channel.h"
#include "client.h"
#include "cmd.h"
#include "fault.h"
#include "host.h"
#include "kmod.h"
#include "log.h"
#include "migration.h"
#include "op.h"
#include "pump.h"

#define STOP_FLUSH_MS	1000	/* on the way out, THAWs to frozen clients get this long */

uint64_t agent_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void agent_error(struct agent *a, const char *peer, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->last_error, sizeof(a->last_error), fmt, ap);
	va_end(ap);
	log_warn(peer, "%s", a->last_error);
}

static void resume_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;

	(void)fd;
	(void)what;
	if (a->session.state == SS_ATTACHED)
		return;
	log_warn(NULL, "no host resumed within %u ms", a->cfg.resume_timeout_ms);
	mig_fsm(a, ME_RESUME_TIMEOUT, NULL);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct agent *a = arg;
	struct timeval tv = { STOP_FLUSH_MS / 1000, (STOP_FLUSH_MS % 1000) * 1000 };

	(void)what;
	log_info(NULL, "signal %d: stopping", (int)sig);
	/* Programs must not stay frozen behind an agent that is gone. */
	if (a->phase == GMIG_PHASE_FROZEN || a->phase == GMIG_PHASE_RESTORED) {
		mig_fsm(a, ME_SESSION_END, NULL);
		event_base_loopexit(a->base, &tv);
		return;
	}
	event_base_loopexit(a->base, NULL);
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	log_info(NULL, "SIGHUP ignored: the configuration is read at start only");
}

struct agent *agent_new(const struct agent_config *cfg)
{
	struct agent *a = calloc(1, sizeof(*a));

	if (!a) {
		log_error(NULL, "out of memory");
		return NULL;
	}
	a->cfg = *cfg;
	a->pending_local = -1;
	a->phase = GMIG_PHASE_IDLE;
	TAILQ_INIT(&a->clients);
	TAILQ_INIT(&a->hconns);
	log_set_level((enum log_level)cfg->log_level);
	if (getenv(FAULT_ENV)) {
		/* The tests' hook: the n-th allocation or output point fails, once. */
		fault_arm((unsigned int)strtoul(getenv(FAULT_ENV), NULL, 10));
		log_warn(NULL, "fault injection armed: point %s fails (%s; for tests)",
			 getenv(FAULT_ENV), FAULT_ENV);
	}
	/* A peer that vanishes mid-write is an error return, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);

	a->base = event_base_new();
	if (!a->base)
		goto out_free;
	a->scratch = malloc(GMIG_DATA_MAX);
	a->resume_timer = evtimer_new(a->base, resume_timeout_cb, a);
	a->sig_term = evsignal_new(a->base, SIGTERM, stop_cb, a);
	a->sig_int = evsignal_new(a->base, SIGINT, stop_cb, a);
	a->sig_hup = evsignal_new(a->base, SIGHUP, hup_cb, a);
	if (!a->scratch || !a->resume_timer || !a->sig_term || !a->sig_int || !a->sig_hup)
		goto out_free_events;
	if (event_add(a->sig_term, NULL) || event_add(a->sig_int, NULL) ||
	    event_add(a->sig_hup, NULL))
		goto out_free_events;
	if (cmd_init(a))
		goto out_clear_cmds;
	if (client_listen(a))
		goto out_clear_cmds;
	if (channel_open_all(a))
		goto out_close_listeners;
	/* Optional: without gmig.ko the agent runs on memfd staging and socket events alone. */
	kmod_start(a);
	log_info(NULL, "gmig-agent %s ready", GMIG_AGENT_VERSION);
	return a;

out_close_listeners:
	/* A channel that failed may follow others that opened. */
	channel_close_all(a);
	client_unlisten(a);
out_clear_cmds:
	cmd_clear(a);
out_free_events:
	if (a->sig_hup)
		event_free(a->sig_hup);
	if (a->sig_int)
		event_free(a->sig_int);
	if (a->sig_term)
		event_free(a->sig_term);
	if (a->resume_timer)
		event_free(a->resume_timer);
	free(a->scratch);
	event_base_free(a->base);
out_free:
	free(a);
	log_error(NULL, "cannot start");
	return NULL;
}

int agent_run(struct agent *a)
{
	int rc = event_base_dispatch(a->base);

	if (rc < 0)
		log_error(NULL, "the event loop failed");
	return rc < 0 ? 1 : 0;
}

void agent_free(struct agent *a)
{
	if (!a)
		return;
	log_debug(NULL, "stopped after %u fault points", fault_passed());
	op_free(a->op);
	a->op = NULL;
	hconn_free_all(a);
	client_free_all(a);
	kmod_stop();
	channel_close_all(a);
	client_unlisten(a);
	mig_clear(a);
	restore_reset(a);
	cmd_clear(a);
	event_free(a->sig_hup);
	event_free(a->sig_int);
	event_free(a->sig_term);
	event_free(a->resume_timer);
	free(a->scratch);
	event_base_free(a->base);
	free(a);
}
