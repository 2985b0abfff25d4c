/* Check suite: the host session: HELLO classification, the session table, resume and sequence rules. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "session.h"

static struct gmig_hello hello(uint8_t role, uint16_t vmin, uint16_t vmax, uint64_t session,
			       const uint8_t *token)
{
	struct gmig_hello h = { .min_version = vmin, .max_version = vmax, .role = role,
				.caps = GMIG_CAP_LZ4 | GMIG_CAP_PHYS, .session = session };

	if (token)
		memcpy(h.token, token, GMIG_TOKEN_SIZE);
	memcpy(h.name, "gmigd", 6);
	return h;
}

/* A session opened by a fresh HELLO, in state @state. */
static void opened(struct session *s, enum sess_state state)
{
	struct gmig_hello h = hello(GMIG_ROLE_HOST, 1, 1, 0, NULL);
	const struct sess_row *row;

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(session_fsm(s, SE_HELLO_NEW, &h, 1, &row), 0);
	if (state == SS_DETACHED)
		ck_assert_int_eq(session_fsm(s, SE_LOST, NULL, 0, &row), 0);
	ck_assert_int_eq(s->state, state);
}

enum who { W_NEW, W_RIGHT, W_BAD_TOKEN, W_BAD_ID };

static const struct classify_row {
	enum sess_state state;
	enum who who;
	uint8_t role;
	uint16_t vmin, vmax;
	int rc;
	enum sess_event ev;
} classify_rows[] = {
	/* 1 */ { SS_NONE, W_NEW, GMIG_ROLE_HOST, 1, 1, 0, SE_HELLO_NEW },
	/* 2 */ { SS_NONE, W_NEW, GMIG_ROLE_HOST, 1, 9, 0, SE_HELLO_NEW },
	/* 3 */ { SS_NONE, W_NEW, GMIG_ROLE_CLIENT, 1, 1, -EPROTO, 0 },
	/* 4 */ { SS_NONE, W_NEW, GMIG_ROLE_PEER, 1, 1, -EPROTO, 0 },
	/* 5 */ { SS_NONE, W_NEW, GMIG_ROLE_HOST, 2, 3, -EPROTONOSUPPORT, 0 },
	/* 6 */ { SS_NONE, W_NEW, GMIG_ROLE_HOST, 0, 0, -EPROTO, 0 },
	/* 7 */ { SS_ATTACHED, W_RIGHT, GMIG_ROLE_HOST, 1, 1, 0, SE_HELLO_RESUME },
	/* 8 */ { SS_DETACHED, W_RIGHT, GMIG_ROLE_HOST, 1, 1, 0, SE_HELLO_RESUME },
	/* 9 */ { SS_DETACHED, W_BAD_TOKEN, GMIG_ROLE_HOST, 1, 1, -ESTALE, 0 },
	/* 10 */ { SS_DETACHED, W_BAD_ID, GMIG_ROLE_HOST, 1, 1, -ESTALE, 0 },
	/* 11 */ { SS_NONE, W_BAD_ID, GMIG_ROLE_HOST, 1, 1, -ESTALE, 0 },
	/* 12 */ { SS_ATTACHED, W_NEW, GMIG_ROLE_HOST, 1, 1, 0, SE_HELLO_NEW },
};

START_TEST(test_classify)
{
	const struct classify_row *row = &classify_rows[_i];
	struct session s;
	struct gmig_hello h;
	uint8_t token[GMIG_TOKEN_SIZE];
	enum sess_event ev = SE_COUNT;
	uint16_t v = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	if (row->state != SS_NONE)
		opened(&s, row->state);
	memcpy(token, s.token, sizeof(token));
	switch (row->who) {
	case W_NEW:
		h = hello(row->role, row->vmin, row->vmax, 0, NULL);
		break;
	case W_RIGHT:
		h = hello(row->role, row->vmin, row->vmax, s.id, token);
		break;
	case W_BAD_TOKEN:
		token[GMIG_TOKEN_SIZE - 1] ^= 1;
		h = hello(row->role, row->vmin, row->vmax, s.id, token);
		break;
	case W_BAD_ID:
		token[0] |= 1;
		h = hello(row->role, row->vmin, row->vmax, s.id + 1, token);
		break;
	}
	rc = session_classify(&s, &h, &v, &ev);
	ck_assert_msg(rc == row->rc, "row %d: %d", _i + 1, rc);
	if (!rc) {
		ck_assert_int_eq(ev, row->ev);
		ck_assert_uint_eq(v, 1);
	}
}
END_TEST

static const struct fsm_row {
	enum sess_state state;
	enum sess_event ev;
	int rc;
	enum sess_action action;
	enum sess_state next;
	bool new_id;		/* a new id and token */
} fsm_rows[] = {
	/* 1 */ { SS_NONE, SE_HELLO_NEW, 0, SA_OPEN, SS_ATTACHED, true },
	/* 2 */ { SS_ATTACHED, SE_HELLO_NEW, 0, SA_REPLACE, SS_ATTACHED, true },
	/* 3 */ { SS_DETACHED, SE_HELLO_NEW, 0, SA_REPLACE, SS_ATTACHED, true },
	/* 4 */ { SS_ATTACHED, SE_HELLO_RESUME, 0, SA_TAKEOVER, SS_ATTACHED, false },
	/* 5 */ { SS_DETACHED, SE_HELLO_RESUME, 0, SA_RESUME, SS_ATTACHED, false },
	/* 6 */ { SS_ATTACHED, SE_LOST, 0, SA_DETACH, SS_DETACHED, false },
	/* 7 */ { SS_ATTACHED, SE_BYE, 0, SA_CLOSE, SS_NONE, false },
	/* 8 */ { SS_NONE, SE_LOST, -EINVAL, 0, SS_NONE, false },
	/* 9 */ { SS_DETACHED, SE_LOST, -EINVAL, 0, SS_DETACHED, false },
	/* 10 */ { SS_NONE, SE_HELLO_RESUME, -EINVAL, 0, SS_NONE, false },
	/* 11 */ { SS_DETACHED, SE_BYE, -EINVAL, 0, SS_DETACHED, false },
};

START_TEST(test_fsm)
{
	const struct fsm_row *row = &fsm_rows[_i];
	struct gmig_hello h = hello(GMIG_ROLE_HOST, 1, 1, 0, NULL);
	const struct sess_row *r = NULL;
	struct session s;
	uint64_t id;
	uint8_t token[GMIG_TOKEN_SIZE];
	uint32_t gen;
	int rc;

	memset(&s, 0, sizeof(s));
	if (row->state != SS_NONE)
		opened(&s, row->state);
	id = s.id;
	gen = s.gen;
	memcpy(token, s.token, sizeof(token));
	s.rx_last = 17;
	rc = session_fsm(&s, row->ev, &h, 1, &r);
	ck_assert_msg(rc == row->rc, "row %d: %d", _i + 1, rc);
	ck_assert_int_eq(s.state, row->next);
	if (rc)
		return;
	ck_assert_int_eq(r->action, row->action);
	if (row->new_id) {
		ck_assert_uint_ne(s.id, 0);
		ck_assert_uint_ne(s.id, id);
		ck_assert(memcmp(s.token, token, sizeof(token)));
		ck_assert_uint_eq(s.rx_last, 0);
		ck_assert_uint_eq(s.caps, GMIG_CAP_LZ4 | GMIG_CAP_PHYS);	/* what both offer */
	} else if (row->next != SS_NONE) {
		ck_assert_uint_eq(s.id, id);
		ck_assert_mem_eq(s.token, token, sizeof(token));
		ck_assert_uint_eq(s.rx_last, 17);
	} else {
		ck_assert_uint_eq(s.id, 0);
	}
	/* Each attach is a new generation, and the first frame after it may skip ahead. */
	if (row->next == SS_ATTACHED) {
		ck_assert_uint_eq(s.gen, gen + 1);
		ck_assert(s.rx_resync);
	}
}
END_TEST

/* Sequence numbers in: taken, duplicates dropped, gaps refused; skipping only after a HELLO. */
START_TEST(test_rx_seq)
{
	static const struct { uint64_t seq; int rc; uint64_t last; } steps[] = {
		/* 1 */ { 5, 0, 5 },		/* the first after HELLO may skip ahead */
		/* 2 */ { 6, 0, 6 },
		/* 3 */ { 6, 1, 6 },
		/* 4 */ { 2, 1, 6 },
		/* 5 */ { 8, -EPROTO, 6 },
		/* 6 */ { 7, 0, 7 },
	};
	struct session s;

	opened(&s, SS_ATTACHED);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		ck_assert_msg(session_rx_seq(&s, steps[i].seq) == steps[i].rc, "step %zu", i + 1);
		ck_assert_uint_eq(s.rx_last, steps[i].last);
	}
	/* A resume: the host's next frame may skip what the drop took. */
	s.rx_resync = true;
	ck_assert_int_eq(session_rx_seq(&s, 7), 1);
	ck_assert_int_eq(session_rx_seq(&s, 20), 0);
	ck_assert_int_eq(session_rx_seq(&s, 22), -EPROTO);
}
END_TEST

START_TEST(test_welcome)
{
	struct session s;
	struct gmig_welcome w;

	opened(&s, SS_ATTACHED);
	session_welcome(&s, false, 9, GMIG_PHASE_IDLE, &w);
	ck_assert_uint_eq(w.role, GMIG_ROLE_AGENT);
	ck_assert_uint_eq(w.session, s.id);
	ck_assert_mem_eq(w.token, s.token, GMIG_TOKEN_SIZE);
	ck_assert_uint_eq(w.resumed, 0);
	ck_assert_uint_eq(w.last_seq, 0);	/* only a resume tells it */
	session_welcome(&s, true, 9, GMIG_PHASE_RELEASED, &w);
	ck_assert_uint_eq(w.resumed, 1);
	ck_assert_uint_eq(w.last_seq, 9);
	ck_assert_uint_eq(w.phase, GMIG_PHASE_RELEASED);
	ck_assert_uint_eq(w.version, 1);
}
END_TEST

static Suite *session_suite(void)
{
	Suite *s = suite_create("agent-session");
	TCase *tc = tcase_create("session");

	tcase_add_loop_test(tc, test_classify, 0, sizeof(classify_rows) / sizeof(classify_rows[0]));
	tcase_add_loop_test(tc, test_fsm, 0, sizeof(fsm_rows) / sizeof(fsm_rows[0]));
	tcase_add_test(tc, test_rx_seq);
	tcase_add_test(tc, test_welcome);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(session_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
