/* Check suite: whole migrations through the real gmig-agent, a fake host and fake clients. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define REGION_SIZE	(256u << 10)
#define CHUNKS		(REGION_SIZE / TL_CHUNK)

/* Zero chunks of @nregions regions of one client in round @epoch. */
static uint64_t zero_chunks(uint32_t nregions, uint32_t epoch)
{
	uint64_t n = 0;

	for (uint32_t r = 1; r <= nregions; r++)
		for (uint32_t c = 0; c < CHUNKS; c++)
			n += pat_zero_chunk(r, c, epoch);
	return n;
}

/* The phases a whole migration goes through, one client set, with every check on the way. */
START_TEST(test_full_migration)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc[2];
	struct image im = { 0 };
	struct gmig_welcome w;
	struct gmig_round_end end;
	struct gmig_msg m;
	char reply[4096];
	uint64_t zero;

	harness_start(&h, NULL);
	for (int i = 0; i < 2; i++)
		fclient_start(&fc[i], &h, FC_NORMAL, 2, REGION_SIZE);
	for (int i = 0; i < 2; i++)
		ck_assert(fc_wait(&fc[i].sh->welcomed, 1, TL_TIMEOUT_MS));
	ck_assert_int_eq(fc[0].sh->slots, 2);
	ck_assert_int_eq(fc[0].sh->slot_size, 16 << 10);

	fhost_open(&fh, &h);
	fhost_hello(&fh, false, &w);
	ck_assert_uint_eq(w.resumed, 0);
	ck_assert_uint_eq(w.phase, GMIG_PHASE_IDLE);
	ck_assert_uint_eq(w.caps, GMIG_CAP_LZ4);
	ck_assert_uint_eq(host_inventory(&fh, &im), 2);
	ck_assert_uint_eq(im.n, 4);

	/* Pre-copy: every byte the host gets is the byte a client staged. */
	for (uint32_t r = 1; r <= 2; r++) {
		host_round(&fh, &im, r, r - 1, &end);
		zero = 2 * zero_chunks(2, r);
		ck_assert_uint_eq(end.chunks, 2 * 2 * CHUNKS);
		ck_assert_uint_eq(end.zero, zero);
		ck_assert_uint_eq(end.bytes, (2 * 2 * CHUNKS - zero) * TL_CHUNK);
		ck_assert(image_whole(&im, r));
	}

	host_freeze(&fh, 2000);
	for (uint32_t i = 0; i < 2; i++) {
		fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
		ck_assert_uint_eq(m.u.frozen.index, i);
		ck_assert_uint_eq(m.u.frozen.count, 2);
		ck_assert(m.u.frozen.pid == (uint32_t)fc[0].pid || m.u.frozen.pid == (uint32_t)fc[1].pid);
		ck_assert_uint_eq(m.u.frozen.tail.len, 10);
		ck_assert_mem_eq(m.u.frozen.tail.ptr, "state-blob", 10);
	}
	host_round(&fh, &im, 3, 2, &end);
	ck_assert(image_whole(&im, 3));
	host_simple(&fh, GMIG_MSG_RELEASE);
	fhost_expect(&fh, &m, GMIG_MSG_RELEASED);
	ck_assert_uint_eq(m.u.clients.clients, 2);

	/* The VM migrates: the channel resets and the host comes back with its token. */
	fhost_reconnect(&fh, &h);
	fhost_hello(&fh, true, &w);
	ck_assert_uint_eq(w.resumed, 1);
	ck_assert_uint_eq(w.phase, GMIG_PHASE_RELEASED);
	ck_assert_uint_eq(w.last_seq, fh.seq - 1);

	host_attach(&fh);
	fhost_expect(&fh, &m, GMIG_MSG_ATTACHED);
	ck_assert_uint_eq(m.u.clients.clients, 2);
	host_restore(&fh, &im, true);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(fc[i].sh->restored_ok, 1);
		ck_assert_uint_eq(fc[i].sh->restore_bytes, 2 * REGION_SIZE);
	}
	host_simple(&fh, GMIG_MSG_THAW);
	fhost_expect(&fh, &m, GMIG_MSG_THAWED);
	ck_assert_uint_eq(m.u.clients.clients, 2);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(fc[i].sh->freezes, 1);
		ck_assert_int_eq(fc[i].sh->releases, 1);
		ck_assert_int_eq(fc[i].sh->attaches, 1);
		ck_assert_int_eq(fc[i].sh->thaws, 1);
		ck_assert_int_eq(fc[i].sh->frozen, 0);
	}
	fhost_json(&fh, "{\"execute\":\"gmig-status\"}", reply, sizeof(reply));
	ck_assert_ptr_nonnull(strstr(reply, "\"phase\":\"idle\""));
	ck_assert_ptr_nonnull(strstr(reply, "\"round\":3"));
	ck_assert_ptr_nonnull(strstr(reply, "\"bytes-restored\":1048576"));

	for (int i = 0; i < 2; i++)
		fclient_stop(&fc[i]);
	fhost_close(&fh);
	image_free(&im);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* More bytes than the host buffer and the slots hold, with a host that reads late. */
START_TEST(test_slow_host)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	struct image im = { 0 };
	struct gmig_round_end end;
	struct gmig_msg m = { .type = GMIG_MSG_ROUND_BEGIN };
	char reply[1024];

	harness_start(&h, "host_buffer = 64K");
	fclient_start(&fc, &h, FC_NORMAL, 4, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	host_inventory(&fh, &im);
	m.u.round_begin.round = 1;
	fhost_send(&fh, &m);
	/* The agent must stop giving slots back, not buffer the whole round. */
	usleep(300 * 1000);
	for (;;) {
		ck_assert_int_eq(fhost_recv(&fh, &m, TL_TIMEOUT_MS), 0);
		if (m.type == GMIG_MSG_ROUND_END)
			break;
		ck_assert_uint_eq(m.type, GMIG_MSG_REGION_DATA);
		image_take(&im, &m.u.region_data);
	}
	end = m.u.round_end;
	ck_assert_uint_eq(end.chunks, 4 * CHUNKS);
	ck_assert(image_whole(&im, 1));
	/* Meanwhile the agent answered JSON at once. */
	fhost_json(&fh, "{\"execute\":\"guest-ping\"}", reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{}}");
	host_round(&fh, &im, 2, 1, NULL);
	ck_assert(image_whole(&im, 2));

	fclient_stop(&fc);
	fhost_close(&fh);
	image_free(&im);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A repeated step gets the same answer, and the clients do not do it twice. */
START_TEST(test_repeats)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	struct gmig_msg m;
	uint32_t pid;

	harness_start(&h, NULL);
	fclient_start(&fc, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);

	host_simple(&fh, GMIG_MSG_THAW);	/* thawing what runs: THAWED, nothing else */
	fhost_expect(&fh, &m, GMIG_MSG_THAWED);
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	pid = m.u.frozen.pid;
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	ck_assert_uint_eq(m.u.frozen.pid, pid);
	ck_assert_mem_eq(m.u.frozen.tail.ptr, "state-blob", 10);
	host_simple(&fh, GMIG_MSG_RELEASE);
	fhost_expect(&fh, &m, GMIG_MSG_RELEASED);
	host_simple(&fh, GMIG_MSG_RELEASE);
	fhost_expect(&fh, &m, GMIG_MSG_RELEASED);
	ck_assert_uint_eq(m.u.clients.clients, 1);
	host_attach(&fh);
	fhost_expect(&fh, &m, GMIG_MSG_ATTACHED);
	host_attach(&fh);
	fhost_expect(&fh, &m, GMIG_MSG_ATTACHED);
	ck_assert_int_eq(fc.sh->freezes, 1);
	ck_assert_int_eq(fc.sh->releases, 1);
	ck_assert_int_eq(fc.sh->attaches, 1);

	fclient_stop(&fc);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* ABORT rolls a frozen guest back; after release it is refused until attach and restore. */
START_TEST(test_abort)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	struct image im = { 0 };
	struct gmig_msg m;

	harness_start(&h, NULL);
	fclient_start(&fc, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_hello(&fh, false, NULL);
	host_inventory(&fh, &im);
	host_round(&fh, &im, 1, 0, NULL);
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);

	m = (struct gmig_msg){ .type = GMIG_MSG_ABORT };
	fhost_send(&fh, &m);
	fhost_expect(&fh, &m, GMIG_MSG_ABORTED);
	ck_assert_uint_eq(m.u.rollback.phase, GMIG_PHASE_FROZEN);
	ck_assert_uint_eq(m.u.rollback.clients, 1);
	ck_assert_int_eq(fc.sh->frozen, 0);
	ck_assert_int_eq(fc.sh->aborts, 1);

	/* Again, up to release: now ABORT and THAW must wait for attach and restore. */
	host_freeze(&fh, 1000);
	fhost_expect(&fh, &m, GMIG_MSG_FROZEN);
	host_simple(&fh, GMIG_MSG_RELEASE);
	fhost_expect(&fh, &m, GMIG_MSG_RELEASED);
	m = (struct gmig_msg){ .type = GMIG_MSG_ABORT };
	fhost_send(&fh, &m);
	fhost_expect(&fh, &m, GMIG_MSG_ERROR);
	ck_assert_int_eq(m.u.error.code, -EBUSY);
	ck_assert_uint_eq(m.u.error.ref_type, GMIG_MSG_ABORT);
	ck_assert_uint_eq(m.u.error.ref_seq, fh.seq);
	host_simple(&fh, GMIG_MSG_THAW);
	fhost_expect(&fh, &m, GMIG_MSG_ERROR);
	ck_assert_int_eq(m.u.error.code, -EBUSY);
	host_attach(&fh);
	fhost_expect(&fh, &m, GMIG_MSG_ATTACHED);
	host_restore(&fh, &im, false);
	m = (struct gmig_msg){ .type = GMIG_MSG_ABORT };
	fhost_send(&fh, &m);
	fhost_expect(&fh, &m, GMIG_MSG_ABORTED);
	ck_assert_uint_eq(m.u.rollback.phase, GMIG_PHASE_RESTORED);
	ck_assert_int_eq(fc.sh->frozen, 0);

	fclient_stop(&fc);
	fhost_close(&fh);
	image_free(&im);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

static Suite *migrate_suite(void)
{
	Suite *s = suite_create("agent-migrate");
	TCase *tc = tcase_create("migrate");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_full_migration);
	tcase_add_test(tc, test_slow_host);
	tcase_add_test(tc, test_repeats);
	tcase_add_test(tc, test_abort);
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(migrate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
