/* Check suite: the agent's state tables (session, client, migration): well formed, and the rows that matter. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "migration.h"
#include "session.h"

#define ANY	MIG_ANY
#define P(x)	GMIG_PHASE_##x
#define NPHASES	(GMIG_PHASE_MAX + 1)

START_TEST(test_names)
{
	for (int i = 0; i < SS_COUNT; i++)
		ck_assert_ptr_nonnull(sess_state_names[i]);
	for (int i = 0; i < SE_COUNT; i++)
		ck_assert_ptr_nonnull(sess_event_names[i]);
	for (int i = 0; i < SA_COUNT; i++)
		ck_assert_ptr_nonnull(sess_action_names[i]);
	for (int i = 0; i < CS_COUNT; i++)
		ck_assert_ptr_nonnull(client_state_names[i]);
	for (int i = 0; i < CE_COUNT; i++)
		ck_assert_ptr_nonnull(client_event_names[i]);
	for (int i = 0; i < CA_COUNT; i++)
		ck_assert_ptr_nonnull(client_action_names[i]);
	for (int i = 0; i < ME_COUNT; i++)
		ck_assert_ptr_nonnull(mig_event_names[i]);
	for (int i = 0; i < MA_COUNT; i++)
		ck_assert_ptr_nonnull(mig_action_names[i]);
	for (int i = 0; i < OP_COUNT; i++)
		ck_assert_ptr_nonnull(op_kind_names[i]);
}
END_TEST

/* No (state, event) twice, and every field in range: the driver's lookups are unambiguous. */
START_TEST(test_well_formed)
{
	const struct sess_row *st;
	const struct client_row *ct;
	const struct mig_row *mt;
	unsigned int n;

	st = session_table(&n);
	for (unsigned int i = 0; i < n; i++) {
		ck_assert(st[i].state < SS_COUNT && st[i].next < SS_COUNT);
		ck_assert(st[i].event < SE_COUNT && st[i].action < SA_COUNT);
		for (unsigned int j = 0; j < i; j++)
			ck_assert(st[i].state != st[j].state || st[i].event != st[j].event);
	}
	ct = client_table(&n);
	for (unsigned int i = 0; i < n; i++) {
		ck_assert(ct[i].state < CS_COUNT && ct[i].next < CS_COUNT);
		ck_assert(ct[i].event < CE_COUNT && ct[i].action < CA_COUNT);
		/* Nothing leaves the dead state. */
		ck_assert(ct[i].state != CS_DEAD);
		for (unsigned int j = 0; j < i; j++)
			ck_assert(ct[i].state != ct[j].state || ct[i].event != ct[j].event);
	}
	mt = mig_table(&n);
	for (unsigned int i = 0; i < n; i++) {
		ck_assert(mt[i].state < NPHASES || mt[i].state == ANY);
		ck_assert(mt[i].next < NPHASES || mt[i].next == ANY);
		ck_assert(mt[i].event < ME_COUNT && mt[i].action < MA_COUNT);
		for (unsigned int j = 0; j < i; j++)
			ck_assert_msg(mt[i].state != mt[j].state || mt[i].event != mt[j].event,
				      "rows %u and %u", j, i);
	}
}
END_TEST

/* Where a step starts, its outcomes have rows too: no step can finish into "not expected". */
START_TEST(test_steps_finish)
{
	static const struct { enum mig_action start; enum mig_event done, fail; } steps[] = {
		{ MA_INV, ME_INV_DONE, ME_INV_DONE },
		{ MA_ROUND, ME_ROUND_DONE, ME_ROUND_FAIL },
		{ MA_FREEZE, ME_FREEZE_DONE, ME_FREEZE_FAIL },
		{ MA_RELEASE, ME_RELEASE_DONE, ME_RELEASE_FAIL },
		{ MA_ATTACH, ME_ATTACH_DONE, ME_ATTACH_FAIL },
		{ MA_RESTORE_END, ME_RESTORE_DONE, ME_RESTORE_FAIL },
		{ MA_THAW, ME_THAW_DONE, ME_THAW_FAIL },
		{ MA_LOCAL_THAW, ME_THAW_DONE, ME_THAW_FAIL },
		{ MA_ABORT, ME_ABORT_DONE, ME_ABORT_FAIL },
	};
	const struct mig_row *mt;
	unsigned int n;

	mt = mig_table(&n);
	for (unsigned int i = 0; i < n; i++) {
		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			if (mt[i].action != steps[k].start)
				continue;
			for (int p = 0; p < NPHASES; p++) {
				uint8_t at;

				if (mt[i].state != ANY && mt[i].state != p)
					continue;
				at = mt[i].next == ANY ? (uint8_t)p : mt[i].next;
				ck_assert_msg(mig_row(at, steps[k].done) && mig_row(at, steps[k].fail),
					      "%s started in %s cannot finish",
					      mig_event_names[mt[i].event], gmig_phase_name(at));
			}
		}
	}
	/* Every request, the host's and the local ones, is known in every phase. */
	for (int ev = ME_INV; ev <= ME_ABORT; ev++) {
		bool somewhere = false;

		for (int p = 0; p < NPHASES; p++)
			somewhere |= mig_row((uint8_t)p, (enum mig_event)ev) != NULL;
		ck_assert_msg(somewhere, "%s has no row", mig_event_names[ev]);
	}
	for (int p = 0; p < NPHASES; p++) {
		ck_assert_ptr_nonnull(mig_row((uint8_t)p, ME_HOST_LOST));
		ck_assert_ptr_nonnull(mig_row((uint8_t)p, ME_RESUME_TIMEOUT));
		ck_assert_ptr_nonnull(mig_row((uint8_t)p, ME_SESSION_END));
	}
}
END_TEST

/* The rows the migration's rules rest on; NULL action: no row (refused as unexpected). */
static const struct mig_case {
	uint8_t state;
	enum mig_event ev;
	int action;		/* -1: no row */
	uint8_t next;
} mig_cases[] = {
	/* 1 */ { P(IDLE), ME_ROUND, MA_ROUND, P(PRECOPY) },
	/* 2 */ { P(FROZEN), ME_ROUND, MA_ROUND, P(FROZEN) },
	/* 3 */ { P(RELEASED), ME_ROUND, -1, 0 },
	/* 4 */ { P(PRECOPY), ME_FREEZE, MA_FREEZE, ANY },
	/* 5 */ { P(PRECOPY), ME_FREEZE_DONE, MA_ANSWER, P(FROZEN) },
	/* 6 */ { P(PRECOPY), ME_FREEZE_FAIL, MA_FREEZE_UNDO, ANY },
	/* 7 */ { P(FROZEN), ME_FREEZE, MA_REPLAY, ANY },
	/* 8 */ { P(IDLE), ME_RELEASE, -1, 0 },
	/* 9 */ { P(FROZEN), ME_RELEASE_DONE, MA_ANSWER, P(RELEASED) },
	/* 10 */ { P(RELEASED), ME_RELEASE, MA_REPLAY, ANY },
	/* 11 */ { P(FROZEN), ME_ATTACH, -1, 0 },
	/* 12 */ { P(RELEASED), ME_ATTACH_DONE, MA_ANSWER, P(ATTACHED) },
	/* 13 */ { P(RELEASED), ME_RESTORE_BEGIN, -1, 0 },
	/* 14 */ { P(ATTACHED), ME_RESTORE_DONE, MA_ANSWER, P(RESTORED) },
	/* 15 */ { P(RESTORED), ME_RESTORE_BEGIN, MA_RESTORE_BEGIN, P(ATTACHED) },
	/* 16 */ { P(RESTORED), ME_RESTORE_END, MA_REPLAY, ANY },
	/* 17 */ { P(RELEASED), ME_THAW, MA_REFUSE, ANY },
	/* 18 */ { P(ATTACHED), ME_THAW, MA_REFUSE, ANY },
	/* 19 */ { P(RESTORED), ME_THAW_DONE, MA_ANSWER, P(IDLE) },
	/* 20 */ { P(RELEASED), ME_ABORT, MA_REFUSE, ANY },
	/* 21 */ { P(RESTORED), ME_ABORT, MA_ABORT, ANY },
	/* 22 */ { P(FROZEN), ME_ABORT_DONE, MA_ANSWER, P(IDLE) },
	/* 23 */ { P(FROZEN), ME_RESUME_TIMEOUT, MA_LOCAL_THAW, ANY },
	/* 24 */ { P(RESTORED), ME_RESUME_TIMEOUT, MA_LOCAL_THAW, ANY },
	/* 25 */ { P(RELEASED), ME_RESUME_TIMEOUT, MA_STRANDED, ANY },
	/* 26 */ { P(PRECOPY), ME_RESUME_TIMEOUT, MA_FORGET, P(IDLE) },
	/* 27 */ { P(FROZEN), ME_SESSION_END, MA_LOCAL_THAW, ANY },
	/* 28 */ { P(ATTACHED), ME_HOST_LOST, MA_HOST_LOST, ANY },
	/* 29 */ { P(RESTORED), ME_INV, MA_INV, ANY },
	/* 30 */ { P(IDLE), ME_THAW, MA_THAW, ANY },
};

START_TEST(test_mig_rows)
{
	const struct mig_case *c = &mig_cases[_i];
	const struct mig_row *r = mig_row(c->state, c->ev);

	if (c->action < 0) {
		ck_assert_msg(!r, "row %d: %s in %s has a row", _i + 1, mig_event_names[c->ev],
			      gmig_phase_name(c->state));
		return;
	}
	ck_assert_msg(r, "row %d: no row", _i + 1);
	ck_assert_msg(r->action == (enum mig_action)c->action && r->next == c->next,
		      "row %d: %s -> %s", _i + 1, mig_action_names[r->action],
		      r->next == ANY ? "same" : gmig_phase_name(r->next));
}
END_TEST

static const struct client_case {
	enum client_state state;
	enum client_event ev;
	int action;
	enum client_state next;
} client_cases[] = {
	/* 1 */ { CS_NEW, CE_HELLO, CA_WELCOME, CS_READY },
	/* 2 */ { CS_NEW, CE_HELLO_HOLD, CA_HOLD, CS_HELD },
	/* 3 */ { CS_HELD, CE_UNHOLD, CA_WELCOME, CS_READY },
	/* 4 */ { CS_NEW, CE_HELLO_BAD, CA_REFUSE, CS_DEAD },
	/* 5 */ { CS_NEW, CE_TIMEOUT, CA_DROP, CS_DEAD },
	/* 6 */ { CS_READY, CE_VIOLATION, CA_REFUSE, CS_DEAD },
	/* 7 */ { CS_READY, CE_CLOSED, CA_DROP, CS_DEAD },
	/* 8 */ { CS_READY, CE_HELLO, -1, 0 },
	/* 9 */ { CS_READY, CE_TIMEOUT, -1, 0 },
	/* 10 */ { CS_HELD, CE_HELLO, -1, 0 },
};

START_TEST(test_client_rows)
{
	const struct client_case *c = &client_cases[_i];
	const struct client_row *r = client_row(c->state, c->ev);

	if (c->action < 0) {
		ck_assert_msg(!r, "row %d has a row", _i + 1);
		return;
	}
	ck_assert_msg(r && r->action == (enum client_action)c->action && r->next == c->next,
		      "row %d", _i + 1);
}
END_TEST

static Suite *tables_suite(void)
{
	Suite *s = suite_create("agent-tables");
	TCase *tc = tcase_create("tables");

	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_well_formed);
	tcase_add_test(tc, test_steps_finish);
	tcase_add_loop_test(tc, test_mig_rows, 0, sizeof(mig_cases) / sizeof(mig_cases[0]));
	tcase_add_loop_test(tc, test_client_rows, 0, sizeof(client_cases) / sizeof(client_cases[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tables_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
