/* The agent's one session with the host: HELLO classification, the session table, resume and sequence rules. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>

#include "gmig/version.h"

#include "log.h"
#include "session.h"

const char *const sess_state_names[] = {
	[SS_NONE] = "none",
	[SS_ATTACHED] = "attached",
	[SS_DETACHED] = "detached",
};

const char *const sess_event_names[] = {
	[SE_HELLO_NEW] = "hello-new",
	[SE_HELLO_RESUME] = "hello-resume",
	[SE_LOST] = "lost",
	[SE_BYE] = "bye",
};

const char *const sess_action_names[] = {
	[SA_OPEN] = "open",
	[SA_REPLACE] = "replace",
	[SA_TAKEOVER] = "takeover",
	[SA_RESUME] = "resume",
	[SA_DETACH] = "detach",
	[SA_CLOSE] = "close",
};

static const struct sess_row sess_table[] = {
	/* state	event			action		next */
	{ SS_NONE,	SE_HELLO_NEW,		SA_OPEN,	SS_ATTACHED },
	{ SS_ATTACHED,	SE_HELLO_NEW,		SA_REPLACE,	SS_ATTACHED },
	{ SS_DETACHED,	SE_HELLO_NEW,		SA_REPLACE,	SS_ATTACHED },
	{ SS_ATTACHED,	SE_HELLO_RESUME,	SA_TAKEOVER,	SS_ATTACHED },
	{ SS_DETACHED,	SE_HELLO_RESUME,	SA_RESUME,	SS_ATTACHED },
	{ SS_ATTACHED,	SE_LOST,		SA_DETACH,	SS_DETACHED },
	{ SS_ATTACHED,	SE_BYE,			SA_CLOSE,	SS_NONE },
};

#define NROWS	(sizeof(sess_table) / sizeof(sess_table[0]))

const struct sess_row *session_table(unsigned int *count)
{
	*count = NROWS;
	return sess_table;
}

const struct sess_row *session_row(enum sess_state state, enum sess_event event)
{
	for (size_t i = 0; i < NROWS; i++) {
		if (sess_table[i].state == state && sess_table[i].event == event)
			return &sess_table[i];
	}
	return NULL;
}

int session_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Compares tokens in constant time, so a guesser learns nothing from the timing. */
static bool token_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t diff = 0;

	for (int i = 0; i < GMIG_TOKEN_SIZE; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

int session_classify(const struct session *s, const struct gmig_hello *h, uint16_t *version,
		     enum sess_event *ev)
{
	int rc;

	if (h->role != GMIG_ROLE_HOST)
		return -EPROTO;
	rc = gmig_version_agree(GMIG_VERSION_MIN, GMIG_VERSION_MAX, h->min_version,
				h->max_version, version);
	if (rc)
		return rc == -EINVAL ? -EPROTO : rc;
	if (!h->session) {
		*ev = SE_HELLO_NEW;
		return 0;
	}
	if (s->state == SS_NONE || h->session != s->id || !token_equal(h->token, s->token))
		return -ESTALE;
	/* A resumed session keeps the version it agreed on. */
	if (*version != s->version)
		return -ESTALE;
	*ev = SE_HELLO_RESUME;
	return 0;
}

static int session_open(struct session *s, const struct gmig_hello *h, uint16_t version)
{
	uint64_t id = 0;
	uint8_t token[GMIG_TOKEN_SIZE];
	int rc;

	while (!id) {
		rc = session_random(&id, sizeof(id));
		if (rc)
			return rc;
	}
	rc = session_random(token, sizeof(token));
	if (rc)
		return rc;
	s->id = id;
	memcpy(s->token, token, sizeof(token));
	s->version = version;
	s->caps = h->caps & SESSION_CAPS;
	s->rx_last = 0;
	s->tx_seq = 0;
	return 0;
}

int session_fsm(struct session *s, enum sess_event ev, const struct gmig_hello *h,
		uint16_t version, const struct sess_row **row)
{
	const struct sess_row *r = session_row(s->state, ev);
	int rc;

	if (!r)
		return -EINVAL;
	switch (r->action) {
	case SA_OPEN:
	case SA_REPLACE:
		rc = session_open(s, h, version);
		if (rc)
			return rc;
		break;
	case SA_TAKEOVER:
	case SA_RESUME:
		break;
	case SA_DETACH:
	case SA_CLOSE:
		break;
	case SA_COUNT:
		return -EINVAL;
	}
	if (r->next == SS_ATTACHED) {
		s->gen++;
		s->rx_resync = true;
		text_safe(s->host, sizeof(s->host), h->name, strlen(h->name));
	}
	if (r->next == SS_NONE) {
		s->id = 0;
		memset(s->token, 0, sizeof(s->token));
	}
	s->state = r->next;
	*row = r;
	return 0;
}

void session_welcome(const struct session *s, bool resumed, uint64_t last_seq, uint8_t phase,
		     struct gmig_welcome *w)
{
	memset(w, 0, sizeof(*w));
	w->version = s->version;
	w->role = GMIG_ROLE_AGENT;
	w->caps = s->caps;
	w->session = s->id;
	memcpy(w->token, s->token, sizeof(w->token));
	w->resumed = resumed;
	w->phase = phase;
	w->last_seq = resumed ? last_seq : 0;
}

int session_rx_seq(struct session *s, uint64_t seq)
{
	/*
	 * After a HELLO the host may have numbered frames that never arrived (the drop took
	 * them, or the HELLO itself took a number): the first frame may skip ahead. Past it
	 * the stream is a byte stream and a gap means a broken peer.
	 */
	if (seq <= s->rx_last)
		return 1;
	if (!s->rx_resync && seq != s->rx_last + 1)
		return -EPROTO;
	s->rx_resync = false;
	s->rx_last = seq;
	return 0;
}
