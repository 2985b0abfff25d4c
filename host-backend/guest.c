/* A guest's channel and its one session with gmig-agent: the channel table, HELLO, resume and frames. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "gmig/version.h"

#include "daemon.h"
#include "guest.h"
#include "link.h"
#include "log.h"

#define GUEST_QUEUE	8	/* events posted while one is being handled */

const char *const guest_state_names[] = {
	[GS_IDLE] = "idle",
	[GS_CONNECTING] = "connecting",
	[GS_HELLO] = "hello",
	[GS_READY] = "ready",
	[GS_RETRY] = "retry",
};

const char *const guest_event_names[] = {
	[GE_OPEN] = "open",
	[GE_UP] = "up",
	[GE_WELCOME] = "welcome",
	[GE_STALE] = "stale",
	[GE_DOWN] = "down",
	[GE_DROP] = "drop",
	[GE_TIMER] = "timer",
	[GE_GIVE_UP] = "give-up",
	[GE_REDIAL] = "redial",
	[GE_CLOSE] = "close",
};

const char *const guest_action_names[] = {
	[GA_NONE] = "none",
	[GA_DIAL] = "dial",
	[GA_HELLO] = "hello",
	[GA_HELLO_NEW] = "hello-new",
	[GA_READY] = "ready",
	[GA_NOTIFY] = "notify",
	[GA_RETRY] = "retry",
	[GA_LOST] = "lost",
	[GA_CLOSE] = "close",
};

static const struct guest_row guest_tbl[] = {
	/* state	event		action		next */
	{ GS_IDLE,	GE_OPEN,	GA_DIAL,	GS_CONNECTING },
	{ GS_READY,	GE_OPEN,	GA_NOTIFY,	GS_READY },
	{ GS_CONNECTING, GE_OPEN,	GA_NONE,	GS_CONNECTING },
	{ GS_HELLO,	GE_OPEN,	GA_NONE,	GS_HELLO },
	{ GS_RETRY,	GE_OPEN,	GA_NONE,	GS_RETRY },
	{ GS_CONNECTING, GE_UP,		GA_HELLO,	GS_HELLO },
	{ GS_HELLO,	GE_WELCOME,	GA_READY,	GS_READY },
	{ GS_HELLO,	GE_STALE,	GA_HELLO_NEW,	GS_HELLO },
	{ GS_CONNECTING, GE_DOWN,	GA_RETRY,	GS_RETRY },
	{ GS_HELLO,	GE_DOWN,	GA_RETRY,	GS_RETRY },
	{ GS_READY,	GE_DOWN,	GA_RETRY,	GS_RETRY },
	{ GS_READY,	GE_REDIAL,	GA_RETRY,	GS_RETRY },
	{ GS_HELLO,	GE_REDIAL,	GA_RETRY,	GS_RETRY },
	{ GS_CONNECTING, GE_REDIAL,	GA_RETRY,	GS_RETRY },
	{ GS_IDLE,	GE_REDIAL,	GA_DIAL,	GS_CONNECTING },
	{ GS_RETRY,	GE_TIMER,	GA_DIAL,	GS_CONNECTING },
	{ GS_RETRY,	GE_GIVE_UP,	GA_LOST,	GS_IDLE },
	{ GS_CONNECTING, GE_GIVE_UP,	GA_LOST,	GS_IDLE },
	{ GS_HELLO,	GE_GIVE_UP,	GA_LOST,	GS_IDLE },
	{ GUEST_ANY,	GE_DROP,	GA_CLOSE,	GS_IDLE },
	{ GUEST_ANY,	GE_CLOSE,	GA_CLOSE,	GS_IDLE },
};

#define NROWS	(sizeof(guest_tbl) / sizeof(guest_tbl[0]))

const struct guest_row *guest_table(unsigned int *count)
{
	*count = NROWS;
	return guest_tbl;
}

const struct guest_row *guest_row(enum guest_state state, enum guest_event event)
{
	const struct guest_row *any = NULL;

	for (size_t i = 0; i < NROWS; i++) {
		if (guest_tbl[i].event != event)
			continue;
		if (guest_tbl[i].state == state)
			return &guest_tbl[i];
		if (guest_tbl[i].state == GUEST_ANY)
			any = &guest_tbl[i];
	}
	return any;
}

static void guest_fsm(struct guest *g, enum guest_event ev);

/* --- the link's callbacks --- */

static void on_up(void *ctx)
{
	guest_fsm(ctx, GE_UP);
}

static void on_down(void *ctx, int err, const char *why)
{
	struct guest *g = ctx;

	g->last_err = err ? err : -ECONNRESET;
	snprintf(g->last_why, sizeof(g->last_why), "%s", why);
	/* The link is dead; the actions free it. */
	guest_fsm(g, g->ops ? GE_DOWN : GE_DROP);
}

static void on_drained(void *ctx)
{
	struct guest *g = ctx;

	if (g->state == GS_READY && g->ops && g->ops->drained)
		g->ops->drained(g->ctx);
}

static int hello_answer(struct guest *g, const struct gmig_msg *m)
{
	const struct gmig_welcome *w = &m->u.welcome;

	if (m->type == GMIG_MSG_ERROR) {
		g->last_err = m->u.error.code;
		snprintf(g->last_why, sizeof(g->last_why), "the agent refused HELLO: %.*s",
			 (int)m->u.error.tail.len, (const char *)m->u.error.tail.ptr);
		if (m->u.error.code == -ESTALE && g->hello_resume && !g->strict) {
			log_warn(g->peer, "session %016llx unknown to the agent: opening a new one",
				 (unsigned long long)g->session);
			guest_fsm(g, GE_STALE);
		} else {
			log_error(g->peer, "%s", g->last_why);
			guest_fsm(g, GE_GIVE_UP);
		}
		return LINK_CONTINUE;
	}
	if (m->type != GMIG_MSG_WELCOME) {
		log_rl(LV_WARN, g->peer, "%s before WELCOME; ignored", gmig_msg_name(m->type));
		return LINK_CONTINUE;
	}
	if (w->role != GMIG_ROLE_AGENT || w->version < GMIG_VERSION_MIN ||
	    w->version > GMIG_VERSION_MAX) {
		g->last_err = -EPROTO;
		snprintf(g->last_why, sizeof(g->last_why), "WELCOME from a %s speaking version %u",
			 gmig_role_name(w->role), w->version);
		log_error(g->peer, "%s", g->last_why);
		guest_fsm(g, GE_GIVE_UP);
		return LINK_CONTINUE;
	}
	if (!g->hello_resume || !w->resumed || w->session != g->session) {
		/* A new session: the agent numbers its frames from 1 again. */
		g->rx_last = 0;
		g->hello_resume = false;
	} else if (w->last_seq > g->tx_seq) {
		/* Another host spoke in this session: number after what the agent has seen. */
		g->tx_seq = w->last_seq;
	}
	g->have_session = true;
	g->session = w->session;
	memcpy(g->token, w->token, sizeof(g->token));
	g->version = w->version;
	g->caps = w->caps;
	g->phase = w->phase;
	link_set_versions(g->link, (uint8_t)w->version, (uint8_t)w->version);
	guest_fsm(g, GE_WELCOME);
	return LINK_CONTINUE;
}

static int on_frame(void *ctx, const struct gmig_frame *f)
{
	struct guest *g = ctx;
	struct gmig_msg m;
	char text[128];
	int rc = gmig_msg_decode(f, &m);

	if (rc) {
		/* The agent is not trusted: a message that does not decode ends the connection. */
		snprintf(text, sizeof(text), "bad %s from the agent: %s", gmig_msg_name(f->hdr.type),
			 gmig_proto_strerror(rc));
		log_rl(LV_WARN, g->peer, "%s", text);
		link_refuse(g->link, rc, f->hdr.type, f->hdr.seq, text);
		return LINK_PAUSE;
	}
	if (g->state == GS_HELLO)
		return hello_answer(g, &m);
	if (g->state != GS_READY)
		return LINK_CONTINUE;
	if (f->hdr.session != g->session) {
		snprintf(text, sizeof(text), "%s of session %016llx, not ours",
			 gmig_msg_name(m.type), (unsigned long long)f->hdr.session);
		log_rl(LV_WARN, g->peer, "%s", text);
		link_refuse(g->link, -EPROTO, f->hdr.type, f->hdr.seq, text);
		return LINK_PAUSE;
	}
	if (f->hdr.seq <= g->rx_last) {
		log_rl(LV_DEBUG, g->peer, "%s seq %llu seen already; dropped", gmig_msg_name(m.type),
		       (unsigned long long)f->hdr.seq);
		return LINK_CONTINUE;
	}
	g->rx_last = f->hdr.seq;
	if (m.type == GMIG_MSG_PING) {
		m.type = GMIG_MSG_PONG;
		guest_send(g, &m);
		return LINK_CONTINUE;
	}
	if (m.type == GMIG_MSG_PONG)
		return LINK_CONTINUE;
	if (!g->ops || !g->ops->frame) {
		log_rl(LV_DEBUG, g->peer, "%s with no job to take it; ignored", gmig_msg_name(m.type));
		return LINK_CONTINUE;
	}
	return g->ops->frame(g->ctx, &m, &f->hdr);
}

static const struct link_ops guest_link_ops = {
	.up = on_up,
	.frame = on_frame,
	.down = on_down,
	.drained = on_drained,
};

/* --- actions --- */

static void arm(struct event *ev, uint32_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

static void drop_link(struct guest *g)
{
	link_free(g->link);
	g->link = NULL;
	evtimer_del(g->timer);
}

static void act_dial(struct guest *g)
{
	drop_link(g);
	g->link = link_connect(g->d->base, &g->addr, g->peer, g->d->cfg.connect_timeout_ms,
			       &guest_link_ops, g);
	if (!g->link) {
		g->last_err = -errno;
		snprintf(g->last_why, sizeof(g->last_why), "cannot connect to %.100s: %s", g->addr_text,
			 strerror(errno));
		log_rl(LV_DEBUG, g->peer, "%s", g->last_why);
		guest_fsm(g, GE_DOWN);
		return;
	}
	if (g->paused)
		link_pause(g->link);
	if (g->low_water)
		link_set_low_water(g->link, g->low_water);
}

static void send_hello(struct guest *g, bool resume)
{
	struct gmig_hdr h = { .version = GMIG_VERSION_MIN, .seq = ++g->tx_seq };
	struct gmig_msg m = { .type = GMIG_MSG_HELLO, .u.hello = {
		.min_version = GMIG_VERSION_MIN, .max_version = GMIG_VERSION_MAX,
		.role = GMIG_ROLE_HOST, .caps = GMIG_CAP_LZ4 } };
	const struct config_vm *vm = config_vm(&g->d->cfg, g->name);
	int rc;

	/* With the guest's RAM at hand, the agent may name pinned staging instead of copying. */
	if (vm && vm->ram[0] && !access(vm->ram, R_OK))
		m.u.hello.caps |= GMIG_CAP_PHYS;
	/* An agent on this machine may hand over its clients' staging fds. */
	if (g->d->cfg.guest_shm && g->addr.kind == ADDR_UNIX && link_is_unix(g->link))
		m.u.hello.caps |= GMIG_CAP_SHM;
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "%s", g->d->name);
	g->hello_resume = resume && g->have_session;
	if (g->hello_resume) {
		h.session = g->session;
		m.u.hello.session = g->session;
		memcpy(m.u.hello.token, g->token, sizeof(g->token));
	}
	rc = link_send(g->link, &h, &m);
	if (rc) {
		g->last_err = rc;
		snprintf(g->last_why, sizeof(g->last_why), "HELLO not sent: %s", strerror(-rc));
		guest_fsm(g, GE_DOWN);
		return;
	}
	/* The WELCOME must come within the connect timeout, or the connection is dropped. */
	arm(g->timer, g->d->cfg.connect_timeout_ms);
	log_debug(g->peer, "HELLO (%s)", g->hello_resume ? "resume" : "new session");
}

static void act_retry(struct guest *g, bool was_ready)
{
	uint64_t now = now_us();

	drop_link(g);
	if (!g->deadline_us)
		g->deadline_us = now + (uint64_t)g->window_ms * 1000;
	if (was_ready)
		log_warn(g->peer, "channel lost (%s); resuming within %u ms", g->last_why,
			 g->window_ms);
	arm(g->timer, GUEST_RETRY_MS);
	if (was_ready && g->ops && g->ops->down)
		g->ops->down(g->ctx, g->last_err, g->last_why);
}

static void act_lost(struct guest *g)
{
	drop_link(g);
	g->deadline_us = 0;
	log_warn(g->peer, "given up: %s", g->last_why[0] ? g->last_why : "unreachable");
	if (g->ops && g->ops->lost)
		g->ops->lost(g->ctx, g->last_err ? g->last_err : -EHOSTUNREACH, g->last_why);
}

static void act_ready(struct guest *g)
{
	evtimer_del(g->timer);
	g->deadline_us = 0;
	log_info(g->peer, "session %016llx %s, phase %s", (unsigned long long)g->session,
		 g->hello_resume ? "resumed" : "opened", gmig_phase_name(g->phase));
	if (g->ops && g->ops->ready)
		g->ops->ready(g->ctx, g->hello_resume, g->phase);
}

/* The one driver: events posted while one runs wait their turn, so actions never nest. */
static void guest_fsm(struct guest *g, enum guest_event ev)
{
	static struct { struct guest *g; enum guest_event ev; } queue[GUEST_QUEUE];
	static unsigned int head, tail;
	static bool running;

	if (running) {
		if (tail - head == GUEST_QUEUE) {
			log_error(g->peer, "event queue full; %s dropped", guest_event_names[ev]);
			return;
		}
		queue[tail++ % GUEST_QUEUE] = (typeof(queue[0])){ g, ev };
		return;
	}
	running = true;
	for (;;) {
		const struct guest_row *row = guest_row(g->state, ev);
		enum guest_state from = g->state;

		if (!row) {
			log_rl(LV_DEBUG, g->peer, "%s not expected in state %s; ignored",
			       guest_event_names[ev], guest_state_names[g->state]);
		} else {
			g->state = row->next;
			log_debug(g->peer, "%s --%s/%s--> %s", guest_state_names[from],
				  guest_event_names[ev], guest_action_names[row->action],
				  guest_state_names[row->next]);
			switch (row->action) {
			case GA_NONE:
				break;
			case GA_DIAL:
				if (from == GS_IDLE)
					g->deadline_us = now_us() + (uint64_t)g->window_ms * 1000;
				act_dial(g);
				break;
			case GA_HELLO:
				send_hello(g, true);
				break;
			case GA_HELLO_NEW:
				g->have_session = false;
				send_hello(g, false);
				break;
			case GA_READY:
				act_ready(g);
				break;
			case GA_NOTIFY:
				if (g->ops && g->ops->ready)
					g->ops->ready(g->ctx, true, g->phase);
				break;
			case GA_RETRY:
				act_retry(g, from == GS_READY);
				break;
			case GA_LOST:
				act_lost(g);
				break;
			case GA_CLOSE:
				drop_link(g);
				g->deadline_us = 0;
				break;
			case GA_COUNT:
				break;
			}
		}
		if (head == tail)
			break;
		g = queue[head % GUEST_QUEUE].g;
		ev = queue[head % GUEST_QUEUE].ev;
		head++;
	}
	running = false;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct guest *g = arg;

	(void)fd;
	(void)what;
	if (g->state == GS_HELLO) {
		g->last_err = -ETIMEDOUT;
		snprintf(g->last_why, sizeof(g->last_why), "no WELCOME within %u ms",
			 g->d->cfg.connect_timeout_ms);
		guest_fsm(g, g->ops ? GE_DOWN : GE_DROP);
	} else if (g->state == GS_RETRY) {
		guest_fsm(g, now_us() >= g->deadline_us ? GE_GIVE_UP : GE_TIMER);
	}
}

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct guest *g = arg;

	(void)fd;
	(void)what;
	if (g->ops)
		guest_fsm(g, GE_OPEN);
}

/* --- the owner's side --- */

struct guest *guest_new(struct gmigd *d, const char *name, const struct gaddr *a, bool from_config)
{
	struct guest *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->d = d;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->addr = *a;
	addr_format(a, g->addr_text, sizeof(g->addr_text));
	snprintf(g->peer, sizeof(g->peer), "guest %s", name);
	g->from_config = from_config;
	g->window_ms = d->cfg.guest_resume_ms;
	g->timer = evtimer_new(d->base, timer_cb, g);
	g->deferred = event_new(d->base, -1, 0, deferred_cb, g);
	if (!g->timer || !g->deferred) {
		guest_free(g);
		return NULL;
	}
	return g;
}

void guest_free(struct guest *g)
{
	if (!g)
		return;
	link_free(g->link);
	if (g->timer)
		event_free(g->timer);
	if (g->deferred)
		event_free(g->deferred);
	free(g);
}

unsigned int guests_count(const struct gmigd *d)
{
	const struct guest *g;
	unsigned int n = 0;

	TAILQ_FOREACH(g, &d->guests, entry)
		n++;
	return n;
}

/* A name for a guest known only by its address: the address itself when it fits. */
static void adhoc_name(const char *addr, char *name, size_t len)
{
	uint32_t h = 2166136261u;

	if (strlen(addr) <= GUEST_NAME_MAX && guest_name_ok(addr)) {
		snprintf(name, len, "%s", addr);
		return;
	}
	for (const char *p = addr; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	/* The end of an address tells more than its kind: "host.sock-1234abcd". */
	snprintf(name, len, "%.14s-%08x", strlen(addr) > 14 ? addr + strlen(addr) - 14 : addr, h);
	for (char *p = name; *p; p++) {
		if (!guest_name_ok((char[]){ *p, 0 }))
			*p = '_';
	}
}

struct guest *guest_lookup(struct gmigd *d, const char *name_or_addr, int *err, char *why,
			   size_t whylen)
{
	char name[GUEST_NAME_MAX + 1], canon[GMIG_ADDR_MAX + 1];
	const char *conf;
	struct gaddr a;
	struct guest *g;

	TAILQ_FOREACH(g, &d->guests, entry) {
		if (!strcmp(g->name, name_or_addr))
			return g;
	}
	conf = config_guest(&d->cfg, name_or_addr);
	if (!conf && !strchr(name_or_addr, ':')) {
		*err = -ENOENT;
		snprintf(why, whylen, "no guest named '%s' in the config, and it is not an address",
			 name_or_addr);
		return NULL;
	}
	if (addr_parse(conf ? conf : name_or_addr, &a, why, whylen)) {
		*err = -EINVAL;
		return NULL;
	}
	addr_format(&a, canon, sizeof(canon));
	TAILQ_FOREACH(g, &d->guests, entry) {
		if (!strcmp(g->addr_text, canon))
			return g;
	}
	if (guests_count(d) >= GUESTS_MAX) {
		*err = -ENOSPC;
		snprintf(why, whylen, "gmigd knows %d guests already", GUESTS_MAX);
		return NULL;
	}
	if (conf)
		snprintf(name, sizeof(name), "%s", name_or_addr);
	else
		adhoc_name(canon, name, sizeof(name));
	g = guest_new(d, name, &a, conf != NULL);
	if (!g) {
		*err = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	TAILQ_INSERT_TAIL(&d->guests, g, entry);
	return g;
}

int guest_claim(struct guest *g, const struct guest_owner_ops *ops, void *ctx)
{
	if (g->ops)
		return -EBUSY;
	g->ops = ops;
	g->ctx = ctx;
	g->paused = false;
	g->low_water = 0;
	g->window_ms = g->d->cfg.guest_resume_ms;
	return 0;
}

void guest_unclaim(struct guest *g)
{
	g->strict = false;
	g->ops = NULL;
	g->ctx = NULL;
	g->paused = false;
	g->low_water = 0;
	event_del(g->deferred);
	guest_fsm(g, GE_CLOSE);
}

void guest_connect(struct guest *g, uint32_t window_ms)
{
	g->window_ms = window_ms;
	event_active(g->deferred, EV_TIMEOUT, 0);
}

void guest_redial(struct guest *g, uint32_t window_ms)
{
	g->window_ms = window_ms;
	g->deadline_us = 0;
	g->last_err = -ECONNRESET;
	snprintf(g->last_why, sizeof(g->last_why), "redialed by the job");
	guest_fsm(g, GE_REDIAL);
}

void guest_set_window(struct guest *g, uint32_t window_ms)
{
	g->window_ms = window_ms;
	if (g->deadline_us)
		g->deadline_us = now_us() + (uint64_t)window_ms * 1000;
}

int guest_send(struct guest *g, const struct gmig_msg *m)
{
	struct gmig_hdr h = { .version = (uint8_t)g->version, .session = g->session };

	if (g->state != GS_READY)
		return -ENOTCONN;
	h.seq = ++g->tx_seq;
	return link_send(g->link, &h, m);
}

int guest_take_fd(struct guest *g)
{
	return g->state == GS_READY ? link_take_fd(g->link) : -1;
}

size_t guest_out_len(const struct guest *g)
{
	return g->state == GS_READY ? link_out_len(g->link) : 0;
}

void guest_set_low_water(struct guest *g, size_t bytes)
{
	g->low_water = bytes;
	if (g->link)
		link_set_low_water(g->link, bytes);
}

void guest_pause(struct guest *g)
{
	g->paused = true;
	link_pause(g->link);
}

void guest_resume(struct guest *g)
{
	g->paused = false;
	link_resume(g->link);
}

bool guest_is_ready(const struct guest *g)
{
	return g->state == GS_READY;
}

void guest_forget_session(struct guest *g)
{
	g->have_session = false;
	g->session = 0;
	memset(g->token, 0, sizeof(g->token));
	g->tx_seq = 0;
	g->rx_last = 0;
}

void guest_adopt_session(struct guest *g, uint64_t session, const uint8_t token[GMIG_TOKEN_SIZE])
{
	g->have_session = true;
	g->strict = true;
	g->session = session;
	memcpy(g->token, token, sizeof(g->token));
	g->rx_last = 0;
}
