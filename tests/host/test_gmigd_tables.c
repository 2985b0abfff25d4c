/*
 * The state tables of gmigd: source jobs, the guest channel and the destination. Their shape
 * is the safety argument: every failure before the hand-over rolls back, nothing leaves a
 * terminal state, no state is a dead end, and a peer that has not proved the secret gets
 * nothing but a refusal.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"
#include "incoming.h"
#include "migration.h"

static const struct {
	enum job_kind kind;
	bool stop;
} plans[] = {
	/* 0 */ { JOB_MIGRATE, false },
	/* 1 */ { JOB_CHECKPOINT, false },
	/* 2 */ { JOB_CHECKPOINT, true },
	/* 3 */ { JOB_RESTORE, false },
	/* 4 */ { JOB_INVENTORY, false },
};

/* Names for every value, so that logs and reports never print NULL. */
START_TEST(test_names)
{
	for (int i = 0; i < MS_COUNT; i++)
		ck_assert_ptr_nonnull(mig_state_names[i]);
	for (int i = 0; i < ME_COUNT; i++)
		ck_assert_ptr_nonnull(mig_event_names[i]);
	for (int i = 0; i < A_COUNT; i++)
		ck_assert_ptr_nonnull(mig_action_names[i]);
	for (int i = 0; i < GS_COUNT; i++)
		ck_assert_ptr_nonnull(guest_state_names[i]);
	for (int i = 0; i < GE_COUNT; i++)
		ck_assert_ptr_nonnull(guest_event_names[i]);
	for (int i = 0; i < GA_COUNT; i++)
		ck_assert_ptr_nonnull(guest_action_names[i]);
	for (int i = 0; i < IS_COUNT; i++)
		ck_assert_ptr_nonnull(in_state_names[i]);
	for (int i = 0; i < IE_COUNT; i++)
		ck_assert_ptr_nonnull(in_event_names[i]);
	for (int i = 0; i < IA_COUNT; i++)
		ck_assert_ptr_nonnull(in_action_names[i]);
}
END_TEST

/* Each plan: one row per (state, event), none out of a terminal state, no dead end, DONE reachable. */
START_TEST(test_plan_shape)
{
	unsigned int n;
	const struct mig_row *t = mig_table(plans[_i].kind, plans[_i].stop, &n);
	bool reach[MS_COUNT] = { false }, grew = true;

	ck_assert_ptr_nonnull(t);
	for (unsigned int i = 0; i < n; i++) {
		ck_assert_msg(!mig_state_terminal(t[i].state), "plan %d: a row leaves %s", _i,
			      mig_state_names[t[i].state]);
		for (unsigned int k = i + 1; k < n; k++)
			ck_assert_msg(t[i].state != t[k].state || t[i].event != t[k].event,
				      "plan %d: %s/%s twice", _i, mig_state_names[t[i].state],
				      mig_event_names[t[i].event]);
		ck_assert_ptr_eq(mig_row(t, n, t[i].state, t[i].event), &t[i]);
	}
	/* Every state a row enters either ends the job or has a way on. */
	for (unsigned int i = 0; i < n; i++) {
		bool out = mig_state_terminal(t[i].next);

		for (unsigned int k = 0; k < n && !out; k++)
			out = t[k].state == t[i].next;
		ck_assert_msg(out, "plan %d: %s is a dead end", _i, mig_state_names[t[i].next]);
	}
	reach[MS_START] = true;
	while (grew) {
		grew = false;
		for (unsigned int i = 0; i < n; i++) {
			if (reach[t[i].state] && !reach[t[i].next])
				reach[t[i].next] = grew = true;
		}
	}
	ck_assert(reach[MS_DONE]);
	ck_assert(reach[MS_FAILED]);
}
END_TEST

/*
 * A VM's migration: one row per (state, event); failures up to QEMU's migration roll back
 * and plug the GPU back in before the attach; a QMP step in flight is cancelled, not
 * abandoned; after QEMU's migration a failing destination leaves the guest in doubt.
 */
START_TEST(test_migrate_vm)
{
	static const enum mig_event stops[] = { ME_GUEST_LOST, ME_PEER_LOST, ME_ABORT };
	unsigned int n;
	const struct mig_row *t = mig_table_vm(&n);
	bool reach[MS_COUNT] = { false }, grew = true;

	for (unsigned int i = 0; i < n; i++) {
		ck_assert(!mig_state_terminal(t[i].state));
		ck_assert_ptr_eq(mig_row(t, n, t[i].state, t[i].event), &t[i]);
	}
	ck_assert_int_eq(mig_row(t, n, MS_RELEASE, ME_OK)->next, MS_UNPLUG);
	ck_assert_int_eq(mig_row(t, n, MS_UNPLUG, ME_OK)->next, MS_VM_MIGRATE);
	ck_assert_int_eq(mig_row(t, n, MS_VM_MIGRATE, ME_OK)->next, MS_HANDOVER);
	ck_assert_int_eq(mig_row(t, n, MS_UNPLUG, ME_FAIL)->next, MS_ROLLBACK);
	ck_assert_int_eq(mig_row(t, n, MS_VM_MIGRATE, ME_FAIL)->next, MS_ROLLBACK);
	for (size_t e = 0; e < sizeof(stops) / sizeof(stops[0]); e++) {
		ck_assert_int_eq(mig_row(t, n, MS_UNPLUG, stops[e])->next, MS_UNPLUG);
		ck_assert_int_eq(mig_row(t, n, MS_VM_MIGRATE, stops[e])->next, MS_VM_MIGRATE);
	}
	ck_assert_int_eq(mig_row(t, n, MS_UNPLUG, ME_ABORT)->action, A_VM_CANCEL);
	ck_assert_int_eq(mig_row(t, n, MS_ROLLBACK, ME_PH_RELEASED)->next, MS_RB_REPLUG);
	ck_assert_int_eq(mig_row(t, n, MS_RB_ABORT, ME_BUSY)->next, MS_RB_REPLUG);
	ck_assert_int_eq(mig_row(t, n, MS_RB_REPLUG, ME_OK)->next, MS_RB_ATTACH);
	ck_assert_int_eq(mig_row(t, n, MS_HANDOVER, ME_REFUSED)->next, MS_LOST);
	ck_assert_int_eq(mig_row(t, n, MS_HANDOVER, ME_PEER_LOST)->next, MS_LOST);
	reach[MS_START] = true;
	while (grew) {
		grew = false;
		for (unsigned int i = 0; i < n; i++) {
			if (reach[t[i].state] && !reach[t[i].next])
				reach[t[i].next] = grew = true;
		}
	}
	ck_assert(reach[MS_DONE] && reach[MS_ROLLED_BACK] && reach[MS_RB_REPLUG]);
	/* The plain table never touches QEMU. */
	t = mig_table(JOB_MIGRATE, false, &n);
	for (unsigned int i = 0; i < n; i++)
		ck_assert(t[i].next != MS_UNPLUG && t[i].next != MS_RB_REPLUG);
}
END_TEST

/* A migration: every failure between the first touch of the guest and the hand-over rolls back. */
START_TEST(test_migrate_rolls_back)
{
	static const enum mig_state touched[] = { MS_PRECOPY, MS_FREEZE, MS_FINAL, MS_RELEASE };
	static const enum mig_event failures[] = { ME_FAIL, ME_GUEST_LOST, ME_PEER_LOST, ME_ABORT };
	unsigned int n;
	const struct mig_row *t = mig_table(JOB_MIGRATE, false, &n), *r;

	for (size_t s = 0; s < sizeof(touched) / sizeof(touched[0]); s++) {
		for (size_t e = 0; e < sizeof(failures) / sizeof(failures[0]); e++) {
			r = mig_row(t, n, touched[s], failures[e]);
			ck_assert_msg(r && r->next == MS_ROLLBACK && r->action == A_ROLLBACK,
				      "%s/%s does not roll back", mig_state_names[touched[s]],
				      mig_event_names[failures[e]]);
		}
	}
	/* After the hand-over: only a destination that let go or died gives the guest back. */
	ck_assert_int_eq(mig_row(t, n, MS_HANDOVER, ME_REFUSED)->next, MS_ROLLBACK);
	ck_assert_int_eq(mig_row(t, n, MS_HANDOVER, ME_PEER_LOST)->next, MS_ROLLBACK);
	ck_assert_int_eq(mig_row(t, n, MS_HANDOVER, ME_TIMEOUT)->next, MS_LOST);
	ck_assert_ptr_null(mig_row(t, n, MS_HANDOVER, ME_ABORT));
	ck_assert_ptr_null(mig_row(t, n, MS_HANDOVER, ME_GUEST_LOST));
	/* Nothing touched yet: a failure just ends the job. */
	ck_assert_int_eq(mig_row(t, n, MS_PEER, ME_PEER_LOST)->next, MS_FAILED);
	ck_assert_int_eq(mig_row(t, n, MS_CONNECT, ME_GUEST_LOST)->next, MS_FAILED);
	/* Undoing follows the guest's phase, and ends rolled back or in doubt, never done... */
	ck_assert_int_eq(mig_row(t, n, MS_ROLLBACK, ME_PH_RUNNING)->next, MS_RB_ABORT);
	ck_assert_int_eq(mig_row(t, n, MS_ROLLBACK, ME_PH_RELEASED)->next, MS_RB_ATTACH);
	ck_assert_int_eq(mig_row(t, n, MS_ROLLBACK, ME_PH_ATTACHED)->next, MS_RB_RESTORE);
	ck_assert_int_eq(mig_row(t, n, MS_RB_ABORT, ME_BUSY)->next, MS_RB_ATTACH);
	for (unsigned int i = 0; i < n; i++) {
		if (t[i].state >= MS_ROLLBACK && t[i].state <= MS_RB_THAW && t[i].next == MS_DONE)
			ck_assert_msg(t[i].event == ME_MIGRATED, "%s reaches DONE on %s",
				      mig_state_names[t[i].state], mig_event_names[t[i].event]);
		/* ... and is not interrupted by another abort. */
		if (t[i].state >= MS_ROLLBACK && t[i].state <= MS_RB_THAW)
			ck_assert_int_ne(t[i].event, ME_ABORT);
	}
}
END_TEST

/* checkpoint --stop: the programs let go of their GPUs only after the file is written. */
START_TEST(test_checkpoint_order)
{
	unsigned int n;
	const struct mig_row *t = mig_table(JOB_CHECKPOINT, true, &n);

	ck_assert_int_eq(mig_row(t, n, MS_FINAL, ME_OK)->next, MS_WRITE);
	ck_assert_int_eq(mig_row(t, n, MS_WRITE, ME_OK)->next, MS_RELEASE);
	ck_assert_int_eq(mig_row(t, n, MS_WRITE, ME_FAIL)->next, MS_ROLLBACK);
	t = mig_table(JOB_CHECKPOINT, false, &n);
	ck_assert_int_eq(mig_row(t, n, MS_FINAL, ME_OK)->next, MS_THAW);
	ck_assert_int_eq(mig_row(t, n, MS_THAW, ME_OK)->next, MS_WRITE);
	/* A restore reads the whole file before it touches the guest. */
	t = mig_table(JOB_RESTORE, false, &n);
	ck_assert_int_eq(mig_row(t, n, MS_START, ME_START)->next, MS_LOAD);
	ck_assert_int_eq(mig_row(t, n, MS_LOAD, ME_FAIL)->next, MS_FAILED);
	ck_assert_int_eq(mig_row(t, n, MS_LOAD, ME_OK)->next, MS_CONNECT);
	ck_assert_ptr_null(mig_table(JOB_INCOMING, false, &n));
}
END_TEST

START_TEST(test_guest_table)
{
	unsigned int n;
	const struct guest_row *t = guest_table(&n);

	for (unsigned int i = 0; i < n; i++)
		for (unsigned int k = i + 1; k < n; k++)
			ck_assert(t[i].state != t[k].state || t[i].event != t[k].event);
	/* The owner can always let go, and a drop without an owner never dials. */
	for (int s = 0; s < GS_COUNT; s++) {
		ck_assert_int_eq(guest_row((enum guest_state)s, GE_CLOSE)->next, GS_IDLE);
		ck_assert_int_eq(guest_row((enum guest_state)s, GE_DROP)->action, GA_CLOSE);
	}
	/* A drop while owned is retried, and only the owner's window ends the retries. */
	ck_assert_int_eq(guest_row(GS_READY, GE_DOWN)->next, GS_RETRY);
	ck_assert_int_eq(guest_row(GS_RETRY, GE_TIMER)->next, GS_CONNECTING);
	ck_assert_int_eq(guest_row(GS_RETRY, GE_GIVE_UP)->action, GA_LOST);
	ck_assert_int_eq(guest_row(GS_HELLO, GE_STALE)->action, GA_HELLO_NEW);
	ck_assert_ptr_null(guest_row(GS_IDLE, GE_WELCOME));
}
END_TEST

START_TEST(test_incoming_table)
{
	unsigned int n;
	const struct in_row *t = in_table(&n);

	for (unsigned int i = 0; i < n; i++)
		for (unsigned int k = i + 1; k < n; k++)
			ck_assert(t[i].state != t[k].state || t[i].event != t[k].event);
	/* Junk is refused in every state. */
	for (int s = 0; s < IS_COUNT; s++)
		ck_assert_int_eq(in_row((enum in_state)s, IE_JUNK)->action, IA_REFUSE);
	/* Before the proof, only HELLO then AUTH lead on; a wrong MAC is refused. */
	for (unsigned int i = 0; i < n; i++) {
		if (t[i].state == IS_HELLO && t[i].next != IS_FAILED)
			ck_assert_int_eq(t[i].event, IE_HELLO);
		if (t[i].state == IS_AUTH && t[i].next != IS_FAILED)
			ck_assert_int_eq(t[i].event, IE_AUTH);
	}
	ck_assert_int_eq(in_row(IS_AUTH, IE_BAD_AUTH)->action, IA_REFUSE);
	ck_assert_int_eq(in_row(IS_IMAGE, IE_DATA)->action, IA_REFUSE);
	/* Until the guest is attached here, a failure gives it back; after, we finish it. */
	ck_assert_int_eq(in_row(IS_CONNECT, IE_PEER_LOST)->action, IA_GIVE_BACK);
	ck_assert_int_eq(in_row(IS_ATTACH, IE_FAIL)->action, IA_GIVE_BACK);
	ck_assert_int_eq(in_row(IS_RESTORE, IE_PEER_LOST)->next, IS_RESTORE);
	ck_assert_int_eq(in_row(IS_STREAM, IE_PEER_LOST)->action, IA_DISCARD);
	ck_assert_ptr_null(in_row(IS_DONE, IE_OK));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmigd-tables");
	TCase *tc = tcase_create("tables");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_names);
	tcase_add_loop_test(tc, test_plan_shape, 0, (int)(sizeof(plans) / sizeof(plans[0])));
	tcase_add_test(tc, test_migrate_rolls_back);
	tcase_add_test(tc, test_migrate_vm);
	tcase_add_test(tc, test_checkpoint_order);
	tcase_add_test(tc, test_guest_table);
	tcase_add_test(tc, test_incoming_table);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
