/* gmig.ko from the agent's side: registration, pinned staging, client deaths and the barrier. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <event2/event.h>

#include "uapi/gmig.h"

#include "agent.h"
#include "client.h"
#include "kmod.h"
#include "log.h"
#include "staging.h"

#define PEER	"gmig.ko"

static struct {
	int fd;			/* registered as AGENT; -1 without the module */
	struct agent *a;
	struct event *ev;	/* the fd polls readable: client events, a barrier outcome */
	bool freezing;		/* we closed the barrier and have not logged its outcome */
} km = { .fd = -1 };

int kmod_active(void)
{
	return km.fd >= 0;
}

static int kmod_events(struct gmig_kmd_client_event *ev, uint32_t cap, uint32_t *flags)
{
	struct gmig_kmd_client_events req = { .size = sizeof(req), .count = cap,
					  .events = (uintptr_t)ev };

	if (ioctl(km.fd, GMIG_IOC_CLIENT_EVENTS, &req))
		return -errno;
	*flags = req.flags;
	return (int)req.count;
}

/* A client's file in the kernel went away: the process died or closed it. */
static void kmod_client_gone(const struct gmig_kmd_client_event *e)
{
	struct client *c = e->pid ? client_by_pid(km.a, (pid_t)e->pid) : NULL;

	if (!c || c->state == CS_DEAD)
		return;
	log_info(c->peer, "gone, says %s", PEER);
	client_fsm(c, CE_CLOSED);
}

static void kmod_barrier_outcome(void)
{
	struct gmig_kmd_freeze_status st = { .size = sizeof(st) };

	if (!km.freezing || ioctl(km.fd, GMIG_IOC_FREEZE_STATUS, &st) || st.result == -EINPROGRESS)
		return;
	km.freezing = false;
	if (st.result)
		log_warn(PEER, "barrier deadline passed: %u of %u clients acked", st.acked,
			 st.clients);
	else
		log_info(PEER, "barrier closed: %u clients acked, %u gone", st.acked, st.gone);
}

static void kmod_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gmig_kmd_client_event ev[32];
	uint32_t flags = 0;
	int n;

	(void)fd;
	(void)what;
	(void)arg;
	do {
		n = kmod_events(ev, 32, &flags);
		if (n < 0) {
			log_rl(LV_WARN, PEER, "reading client events: %s", strerror(-n));
			break;
		}
		if (flags & GMIG_KMD_EVENTS_LOST)
			log_rl(LV_WARN, PEER, "client events were lost");
		for (int i = 0; i < n; i++) {
			if (ev[i].kind == GMIG_KMD_EVENT_GONE)
				kmod_client_gone(&ev[i]);
			else
				log_debug(PEER, "client %u (%.16s) registered", ev[i].pid, ev[i].comm);
		}
	} while (n == 32);
	kmod_barrier_outcome();
}

int kmod_start(struct agent *a)
{
	const char *path = getenv(KMOD_DEVICE_ENV);
	struct gmig_kmd_version v = { .size = sizeof(v) };
	struct gmig_kmd_register r = { .size = sizeof(r), .role = GMIG_KMD_ROLE_AGENT };
	int rc;

	kmod_stop();
	if (!path || !*path)
		path = GMIG_KMD_DEVICE;
	if (!strcmp(path, "none"))
		return -ENODEV;
	km.fd = open(path, O_RDWR | O_CLOEXEC);
	if (km.fd < 0) {
		rc = -errno;
		log_info(PEER, "not used (%s: %s); staging is plain shared memory", path,
			 strerror(-rc));
		return rc;
	}
	if (ioctl(km.fd, GMIG_IOC_VERSION, &v) || v.abi != GMIG_KMD_ABI_VERSION) {
		rc = v.abi ? -EPROTO : -errno;
		log_warn(PEER, "not used: ABI %u, this agent speaks %u", v.abi, GMIG_KMD_ABI_VERSION);
		goto out_close;
	}
	if (ioctl(km.fd, GMIG_IOC_REGISTER, &r)) {
		rc = -errno;
		log_warn(PEER, "not used: cannot register as the agent: %s%s", strerror(-rc),
			 rc == -EBUSY ? " (another agent is)" : "");
		goto out_close;
	}
	km.a = a;
	km.ev = event_new(a->base, km.fd, EV_READ | EV_PERSIST, kmod_cb, NULL);
	if (!km.ev || event_add(km.ev, NULL)) {
		rc = -ENOMEM;
		goto out_free_event;
	}
	log_info(PEER, "registered as the agent: pinned staging, kernel client registry");
	return 0;

out_free_event:
	if (km.ev)
		event_free(km.ev);
	km.ev = NULL;
out_close:
	close(km.fd);
	km.fd = -1;
	return rc;
}

void kmod_stop(void)
{
	if (km.ev)
		event_free(km.ev);
	if (km.fd >= 0)
		close(km.fd);	/* the module reopens a barrier we left closed */
	km.ev = NULL;
	km.fd = -1;
	km.a = NULL;
	km.freezing = false;
}

int kmod_staging_create(uint64_t bytes)
{
	struct gmig_kmd_staging_create c = { .size = sizeof(c), .flags = GMIG_KMD_STAGING_CLOEXEC,
					 .bytes = bytes };

	if (km.fd < 0)
		return -ENODEV;
	if (ioctl(km.fd, GMIG_IOC_STAGING_CREATE, &c))
		return -errno;
	return c.fd;
}

int kmod_staging_phys(int fd, struct staging_phys **out, uint32_t *n)
{
	struct gmig_kmd_staging_phys req = { .size = sizeof(req) };
	struct gmig_kmd_phys_range *r;
	struct staging_phys *p;

	/* Ask for the count first; the ranges of a buffer never change. */
	if (!ioctl(fd, GMIG_IOC_STAGING_PHYS, &req))
		return -EPROTO;		/* a buffer has at least one range */
	if (errno != ENOSPC)
		return -errno;
	r = calloc(req.count, sizeof(*r));
	p = calloc(req.count, sizeof(*p));
	if (!r || !p) {
		free(r);
		free(p);
		return -ENOMEM;
	}
	req.ranges = (uintptr_t)r;
	if (ioctl(fd, GMIG_IOC_STAGING_PHYS, &req)) {
		int rc = -errno;

		free(r);
		free(p);
		return rc;
	}
	for (uint32_t i = 0; i < req.count; i++) {
		p[i].gpa = r[i].gpa;
		p[i].len = r[i].len;
	}
	free(r);
	*out = p;
	*n = req.count;
	return 0;
}

static int kmod_op(unsigned long cmd)
{
	struct gmig_kmd_op op = { .size = sizeof(op) };

	return ioctl(km.fd, cmd, &op) ? -errno : 0;
}

void kmod_freeze(uint32_t deadline_ms)
{
	struct gmig_kmd_freeze f = { .size = sizeof(f), .deadline_ms = deadline_ms };

	if (km.fd < 0)
		return;
	if (!f.deadline_ms)
		f.deadline_ms = 1;
	if (f.deadline_ms > GMIG_KMD_DEADLINE_MAX_MS)
		f.deadline_ms = GMIG_KMD_DEADLINE_MAX_MS;
	/* A freeze asked again (a new session) closes the barrier anew. */
	if (ioctl(km.fd, GMIG_IOC_FREEZE, &f) &&
	    (errno != EBUSY || kmod_op(GMIG_IOC_THAW) || ioctl(km.fd, GMIG_IOC_FREEZE, &f))) {
		log_rl(LV_WARN, PEER, "cannot close the barrier: %s", strerror(errno));
		return;
	}
	km.freezing = true;
}

void kmod_thaw(void)
{
	if (km.fd < 0)
		return;
	km.freezing = false;
	if (kmod_op(GMIG_IOC_THAW) == 0)
		log_debug(PEER, "barrier open");
}
