/* gmig-freeze and gmig-thaw: the freeze family, the same steps a host's FREEZE and THAW start. */
#include <errno.h>

#include <json-c/json.h>

#include "agent.h"
#include "cmd.h"
#include "host.h"
#include "migration.h"

#define FREEZE_DEADLINE_MAX_MS	3600000		/* an hour: longer is surely a mistake */

static int cmd_freeze(void *ctx, struct json_object *args, struct json_object **ret,
		      struct gmig_qga_error *err)
{
	static const char *const allowed[] = { "deadline-ms", NULL };
	struct agent *a = ctx;
	int64_t deadline;
	int rc;

	(void)ret;
	rc = cmd_arg_int(args, "deadline-ms", 1, FREEZE_DEADLINE_MAX_MS, &deadline, err);
	if (!rc)
		rc = cmd_args_only(args, allowed, err);
	if (rc)
		return rc;
	/* Every client answers first; the reply goes out through host_json_answer(). */
	host_json_defer(a->json_conn);
	mig_json_request(a, a->json_conn, ME_FREEZE, (uint32_t)deadline);
	return 0;
}

static int cmd_thaw(void *ctx, struct json_object *args, struct json_object **ret,
		    struct gmig_qga_error *err)
{
	static const char *const allowed[] = { NULL };
	struct agent *a = ctx;
	int rc;

	(void)ret;
	rc = cmd_args_only(args, allowed, err);
	if (rc)
		return rc;
	host_json_defer(a->json_conn);
	mig_json_request(a, a->json_conn, ME_THAW, 0);
	return 0;
}

const struct gmig_qga_cmd cmd_freeze_entry = {
	.name = "gmig-freeze",
	.flags = GMIG_QGA_FROZEN_OK,
	.handler = cmd_freeze,
};

const struct gmig_qga_cmd cmd_thaw_entry = {
	.name = "gmig-thaw",
	.flags = GMIG_QGA_FROZEN_OK,
	.handler = cmd_thaw,
};
