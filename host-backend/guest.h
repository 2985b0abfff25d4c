/*
 * One guest as gmigd knows it: its name and channel address, and the one session with its
 * gmig-agent, which survives the connection under it. A table of {state, event, action, next}
 * moves the channel between idle, connecting, saying HELLO, ready and waiting to retry; a
 * dropped channel is resumed with the session's token within the owner's window.
 *
 * A guest has at most one owner (a job) at a time; without one it never dials on its own.
 */
#ifndef GMIG_HOST_GUEST_H
#define GMIG_HOST_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "gmig/message.h"

#include "addr.h"
#include "config.h"

struct event;
struct gmigd;
struct link;

#define GUEST_RETRY_MS	200	/* a failed dial is tried again this often */
#define GUESTS_MAX	1024	/* guests one gmigd knows, configured, named by address or sent */

enum guest_state {
	GS_IDLE,	/* no connection */
	GS_CONNECTING,	/* dialing (and the hybrid vsock handshake) */
	GS_HELLO,	/* HELLO sent, waiting for WELCOME */
	GS_READY,	/* the session is on this connection */
	GS_RETRY,	/* the connection dropped; dialing again soon */
	GS_COUNT
};

enum guest_event {
	GE_OPEN,	/* the owner wants the session */
	GE_UP,		/* connected */
	GE_WELCOME,	/* the agent accepted the HELLO */
	GE_STALE,	/* the agent does not know our session: open a new one */
	GE_DOWN,	/* the connection dropped (or HELLO timed out) while owned */
	GE_DROP,	/* the connection dropped while nobody owns the guest */
	GE_TIMER,	/* time to dial again */
	GE_GIVE_UP,	/* the owner's window passed, or the agent refused us for good */
	GE_REDIAL,	/* the owner distrusts the connection: drop it and resume */
	GE_CLOSE,	/* the owner is done */
	GE_COUNT
};

enum guest_action {
	GA_NONE,
	GA_DIAL,
	GA_HELLO,
	GA_HELLO_NEW,
	GA_READY,
	GA_NOTIFY,	/* already ready: tell the owner again */
	GA_RETRY,	/* close, tell the owner, dial again after GUEST_RETRY_MS */
	GA_LOST,	/* close, tell the owner it is lost */
	GA_CLOSE,	/* close without a word (no BYE: the session stays resumable) */
	GA_COUNT
};

extern const char *const guest_state_names[];
extern const char *const guest_event_names[];
extern const char *const guest_action_names[];

struct guest_row {
	enum guest_state state;
	enum guest_event event;
	enum guest_action action;
	enum guest_state next;
};

#define GUEST_ANY	GS_COUNT	/* as a row's state: every state */

/* The row for @state and @event: an exact row first, then a GUEST_ANY one; NULL if none. */
const struct guest_row *guest_row(enum guest_state state, enum guest_event event);
const struct guest_row *guest_table(unsigned int *count);

/* What a guest's owner hears. Every callback comes from the loop, never from the owner's call. */
struct guest_owner_ops {
	/* The session is up: @resumed when the agent knew it; @phase is the agent's. */
	void (*ready)(void *ctx, bool resumed, uint8_t phase);
	/* A frame of the session (session id checked, repeats dropped). LINK_PAUSE stops input. */
	int (*frame)(void *ctx, const struct gmig_msg *m, const struct gmig_hdr *h);
	/* The connection dropped; the guest is dialing again within the window. */
	void (*down)(void *ctx, int err, const char *why);
	/* Given up: no connection, and none will be tried unless the owner asks. */
	void (*lost)(void *ctx, int err, const char *why);
	/* The output fell under the low watermark (see guest_set_low_water). */
	void (*drained)(void *ctx);
};

struct guest {
	TAILQ_ENTRY(guest) entry;
	struct gmigd *d;
	char name[GUEST_NAME_MAX + 1];
	char addr_text[GMIG_ADDR_MAX + 1];
	struct gaddr addr;
	char peer[96];			/* "guest vm1" for logs */
	bool from_config;

	enum guest_state state;
	struct link *link;
	struct event *timer;		/* retry; HELLO deadline */
	struct event *deferred;		/* runs GE_OPEN from the loop */
	uint64_t deadline_us;		/* give up after this; 0: no window running */
	uint32_t window_ms;
	int last_err;
	char last_why[160];
	size_t low_water;

	/* The session: valid while have_session. */
	bool have_session;
	uint64_t session;
	uint8_t token[GMIG_TOKEN_SIZE];
	uint16_t version;
	uint64_t caps;			/* agreed */
	uint64_t tx_seq, rx_last;
	uint8_t phase;			/* from the last WELCOME */
	bool hello_resume;		/* the HELLO in flight resumes */
	bool strict;			/* a session handed over: never open a new one instead */

	const struct guest_owner_ops *ops;
	void *ctx;
	bool paused;
};

/* A guest named @name at @a; NULL when out of memory. */
struct guest *guest_new(struct gmigd *d, const char *name, const struct gaddr *a, bool from_config);
void guest_free(struct guest *g);

/* Finds a guest by name, or makes one for an address; NULL with -errno in *@err and a sentence. */
struct guest *guest_lookup(struct gmigd *d, const char *name_or_addr, int *err, char *why,
			   size_t whylen);

/* How many guests the daemon knows. */
unsigned int guests_count(const struct gmigd *d);

/* Takes the guest for a job; -EBUSY when another has it. */
int guest_claim(struct guest *g, const struct guest_owner_ops *ops, void *ctx);
/* The job is done: the connection closes without BYE, the session stays resumable. */
void guest_unclaim(struct guest *g);

/* Open or resume the session; the owner hears ready, or lost after @window_ms. */
void guest_connect(struct guest *g, uint32_t window_ms);
/* Drop the connection and resume within @window_ms (a step timed out, or after a hand-over). */
void guest_redial(struct guest *g, uint32_t window_ms);
/* How long a drop may last before the owner hears lost. */
void guest_set_window(struct guest *g, uint32_t window_ms);

/* Sends one frame of the session. 0, -ENOTCONN when not ready, or the link's error. */
int guest_send(struct guest *g, const struct gmig_msg *m);
size_t guest_out_len(const struct guest *g);
/* The oldest fd the agent sent along with its frames (SHM), now the caller's; -1 if none. */
int guest_take_fd(struct guest *g);
void guest_set_low_water(struct guest *g, size_t bytes);
void guest_pause(struct guest *g);
void guest_resume(struct guest *g);
bool guest_is_ready(const struct guest *g);

/* The session now belongs to another host: forget it (no BYE). */
void guest_forget_session(struct guest *g);
/*
 * Resume a session handed over by another host. Until the owner lets go, a stale session is
 * not replaced by a new one (that would take the guest from under the other host): the owner
 * hears lost instead.
 */
void guest_adopt_session(struct guest *g, uint64_t session, const uint8_t token[GMIG_TOKEN_SIZE]);

#endif
