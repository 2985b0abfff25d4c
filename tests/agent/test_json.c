/* Check suite: gmig-agent's QGA-style JSON commands, built-in and gmig-*, and the GPU inventory. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "gmig/simdev.h"

#include "testlib.h"

#define REGION_SIZE	(128u << 10)

START_TEST(test_builtins)
{
	struct harness h;
	struct fhost fh;
	char reply[4096];
	size_t n;

	harness_start(&h, NULL);
	fhost_open(&fh, &h);
	fhost_json(&fh, "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":123456789}}", reply,
		   sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":123456789}");
	/* guest-sync-delimited: a client resets the parser with 0xFF; the reply starts with it. */
	n = fhost_json(&fh, "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":5}}",
		       reply, sizeof(reply));
	ck_assert_uint_eq(n, strlen("\xff{\"return\":5}"));
	ck_assert_str_eq(reply, "\xff{\"return\":5}");
	fhost_json(&fh, "{\"execute\":\"guest-ping\"}", reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{}}");
	fhost_json(&fh, "{\"execute\":\"guest-info\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"version\":\"0.1.0\""), "%s", reply);
	for (const char *const *c = (const char *const[]){ "guest-sync", "guest-sync-delimited",
		"guest-ping", "guest-info", "gmig-inventory", "gmig-status", "gmig-freeze",
		"gmig-thaw", NULL }; *c; c++) {
		char want[96];

		snprintf(want, sizeof(want), "{\"name\":\"%s\",\"enabled\":true", *c);
		ck_assert_msg(strstr(reply, want), "%s missing from %s", *c, reply);
	}
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* A fake sysfs PCI device: class, vendor, device. */
static void fake_pci(struct harness *h, const char *bdf, const char *cls, const char *vendor,
		     const char *device)
{
	char dir[256];

	snprintf(dir, sizeof(dir), "%s/bus", h->sys_dir);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/bus/pci", h->sys_dir);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/bus/pci/devices", h->sys_dir);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/bus/pci/devices/%s", h->sys_dir, bdf);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	put_file(dir, "class", cls);
	put_file(dir, "vendor", vendor);
	put_file(dir, "device", device);
}

/* Simulated GPUs first, then PCI display controllers; clients with their regions. */
START_TEST(test_inventory)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	struct gmig_msg m;
	struct gmig_rec_gpu g;
	char path[256], reply[8192], want[256];

	harness_start(&h, NULL);
	snprintf(path, sizeof(path), "%s/" GMIG_SIMDEV_PREFIX "0", h.sim_dir);
	ck_assert_int_eq(gmig_simdev_create(path, 4u << 20, "sim0"), 0);
	fake_pci(&h, "0000:65:00.0", "0x030200\n", "0x10de\n", "0x2335\n");
	fake_pci(&h, "0000:00:1f.0", "0x060100\n", "0x8086\n", "0x1234\n");	/* a bridge */
	fake_pci(&h, "0000:03:00.0", "0x030000\n", "0x1002\n", "0x744c\n");

	fclient_start(&fc, &h, FC_NORMAL, 2, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_json(&fh, "{\"execute\":\"gmig-inventory\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "{\"index\":0,\"vendor\":0,\"device\":0,\"mem-bytes\":4194304,"),
		      "%s", reply);
	ck_assert_msg(strstr(reply, "\"model\":\"gmig simulated GPU\",\"backend\":\"SIM\""), "%s", reply);
	ck_assert_msg(strstr(reply, "\"vendor\":4318,\"device\":9013,\"mem-bytes\":0"), "%s", reply);
	ck_assert_msg(strstr(reply, "\"pci\":\"0000:65:00.0\",\"model\":\"PCI 10de:2335\","
			     "\"backend\":\"CUDA\""), "%s", reply);
	ck_assert_msg(strstr(reply, "\"pci\":\"0000:03:00.0\",\"model\":\"PCI 1002:744c\","
			     "\"backend\":\"DRM\""), "%s", reply);
	ck_assert_msg(!strstr(reply, "0000:00:1f.0"), "a bridge listed: %s", reply);
	snprintf(want, sizeof(want), "{\"pid\":%d,\"name\":\"fake-0\",\"state\":\"ready\",\"gpu\":0,"
		 "\"regions\":2,\"region-bytes\":%u}", (int)fc.pid, 2 * REGION_SIZE);
	ck_assert_msg(strstr(reply, want), "%s not in %s", want, reply);

	/* The host gets the same GPUs in INV_GPUS. */
	fhost_hello(&fh, false, NULL);
	host_simple(&fh, GMIG_MSG_INV_REQUEST);
	fhost_expect(&fh, &m, GMIG_MSG_INV_GPUS);
	ck_assert_uint_eq(m.u.inv_gpus.clients, 1);
	ck_assert_uint_eq(gmig_rec_count(&m.u.inv_gpus.tail, GMIG_REC_gpu_SIZE), 3);
	gmig_rec_get_gpu(&m.u.inv_gpus.tail, 0, &g);
	ck_assert_uint_eq(g.backend, GMIG_BACKEND_SIM);
	ck_assert_uint_eq(g.mem_bytes, 4u << 20);
	gmig_rec_get_gpu(&m.u.inv_gpus.tail, 1, &g);
	ck_assert_uint_eq(g.index, 1);
	ck_assert_uint_eq(g.backend, GMIG_BACKEND_DRM);
	gmig_rec_get_gpu(&m.u.inv_gpus.tail, 2, &g);
	ck_assert_str_eq(g.pci, "0000:65:00.0");
	ck_assert_uint_eq(g.vendor, 0x10de);
	fhost_expect(&fh, &m, GMIG_MSG_INV_CLIENT);
	ck_assert_uint_eq(m.u.inv_client.pid, (uint32_t)fc.pid);
	ck_assert_uint_eq(gmig_rec_count(&m.u.inv_client.tail, GMIG_REC_region_SIZE), 2);

	fclient_stop(&fc);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* gmig-freeze and gmig-thaw drive the same steps as the host's FREEZE and THAW. */
START_TEST(test_freeze_thaw)
{
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	char reply[4096];

	harness_start(&h, NULL);
	fclient_start(&fc, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_json(&fh, "{\"execute\":\"gmig-freeze\",\"arguments\":{\"deadline-ms\":1000},\"id\":3}",
		   reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{\"clients\":1},\"id\":3}");
	ck_assert_int_eq(fc.sh->frozen, 1);
	fhost_json(&fh, "{\"execute\":\"gmig-status\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"phase\":\"frozen\""), "%s", reply);
	/* Frozen already: the same answer, and the client is not asked again. */
	fhost_json(&fh, "{\"execute\":\"gmig-freeze\",\"arguments\":{\"deadline-ms\":1000}}", reply,
		   sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{\"clients\":1}}");
	ck_assert_int_eq(fc.sh->freezes, 1);
	fhost_json(&fh, "{\"execute\":\"gmig-thaw\",\"id\":\"t\"}", reply, sizeof(reply));
	ck_assert_str_eq(reply, "{\"return\":{\"clients\":1},\"id\":\"t\"}");
	ck_assert_int_eq(fc.sh->frozen, 0);
	fhost_json(&fh, "{\"execute\":\"gmig-status\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"phase\":\"idle\""), "%s", reply);

	fclient_stop(&fc);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A JSON freeze that a client cannot meet answers an error by its deadline. */
START_TEST(test_freeze_fails)
{
	struct harness h;
	struct fhost fh;
	struct fclient stuck;
	char reply[4096];

	harness_start(&h, NULL);
	fclient_start(&stuck, &h, FC_STUCK_FREEZE, 1, REGION_SIZE);
	ck_assert(fc_wait(&stuck.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_json(&fh, "{\"execute\":\"gmig-freeze\",\"arguments\":{\"deadline-ms\":200}}", reply,
		   sizeof(reply));
	ck_assert_msg(strstr(reply, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"freeze: pid"),
		      "%s", reply);
	fhost_json(&fh, "{\"execute\":\"gmig-status\"}", reply, sizeof(reply));
	ck_assert_msg(strstr(reply, "\"phase\":\"idle\""), "%s", reply);
	ck_assert(fc_wait(&stuck.sh->thaws, 1, TL_TIMEOUT_MS));
	fclient_stop(&stuck);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

/* A peer that sends, then shuts down its writing (as socat does), still gets every answer. */
START_TEST(test_half_close)
{
	static const char req[] = "{\"execute\":\"gmig-freeze\",\"arguments\":{\"deadline-ms\":1000}}\n"
				  "{\"execute\":\"gmig-thaw\"}\n{\"execute\":\"guest-ping\"}\n";
	struct harness h;
	struct fhost fh;
	struct fclient fc;
	char reply[1024];

	harness_start(&h, NULL);
	fclient_start(&fc, &h, FC_NORMAL, 1, REGION_SIZE);
	ck_assert(fc_wait(&fc.sh->welcomed, 1, TL_TIMEOUT_MS));
	fhost_open(&fh, &h);
	fhost_send_raw(&fh, req, sizeof(req) - 1);
	ck_assert_int_eq(shutdown(fh.fd, SHUT_WR), 0);
	fhost_json_read(&fh, reply, sizeof(reply), TL_TIMEOUT_MS);
	ck_assert_str_eq(reply, "{\"return\":{\"clients\":1}}");
	fhost_json_read(&fh, reply, sizeof(reply), TL_TIMEOUT_MS);
	ck_assert_str_eq(reply, "{\"return\":{\"clients\":1}}");
	fhost_json_read(&fh, reply, sizeof(reply), TL_TIMEOUT_MS);
	ck_assert_str_eq(reply, "{\"return\":{}}");
	ck_assert(fhost_closed(&fh, TL_TIMEOUT_MS));
	ck_assert_int_eq(fc.sh->freezes, 1);
	ck_assert_int_eq(fc.sh->thaws, 1);
	fclient_stop(&fc);
	fhost_close(&fh);
	ck_assert_int_eq(harness_stop(&h), 0);
}
END_TEST

static Suite *json_suite(void)
{
	Suite *s = suite_create("agent-json");
	TCase *tc = tcase_create("json");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_builtins);
	tcase_add_test(tc, test_inventory);
	tcase_add_test(tc, test_freeze_thaw);
	tcase_add_test(tc, test_freeze_fails);
	tcase_add_test(tc, test_half_close);
	tcase_add_unchecked_fixture(tc, NULL, harness_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(json_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
