/* gmig-status: where the migration stands: phase, session, round, bytes moved, last error. */
#include <errno.h>
#include <stdio.h>

#include <json-c/json.h>

#include "agent.h"
#include "client.h"
#include "cmd.h"
#include "op.h"

static int cmd_status(void *ctx, struct json_object *args, struct json_object **ret,
		      struct gmig_qga_error *err)
{
	static const char *const allowed[] = { NULL };
	struct agent *a = ctx;
	struct json_object *o, *sess = NULL;
	const struct client *c;
	unsigned int ready = 0, held = 0;
	char id[20];
	int rc;

	rc = cmd_args_only(args, allowed, err);
	if (rc)
		return rc;
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	TAILQ_FOREACH(c, &a->clients, link) {
		ready += c->state == CS_READY;
		held += c->state == CS_HELD;
	}
	if (a->session.state != SS_NONE) {
		sess = json_object_new_object();
		if (!sess) {
			json_object_put(o);
			return -ENOMEM;
		}
		snprintf(id, sizeof(id), "%016llx", (unsigned long long)a->session.id);
		json_object_object_add(sess, "id", json_object_new_string(id));
		json_object_object_add(sess, "state",
				       json_object_new_string(sess_state_names[a->session.state]));
		json_object_object_add(sess, "host", json_object_new_string(a->session.host));
	}
	json_object_object_add(o, "phase", cmd_phase_json(a->phase));
	json_object_object_add(o, "session", sess);
	json_object_object_add(o, "step",
			       a->op ? json_object_new_string(op_kind_names[a->op->kind]) : NULL);
	json_object_object_add(o, "round", json_object_new_int64(a->round));
	json_object_object_add(o, "bytes-sent", json_object_new_uint64(a->bytes_sent));
	json_object_object_add(o, "bytes-restored", json_object_new_uint64(a->bytes_restored));
	json_object_object_add(o, "bytes-restored-by-reference",
			       json_object_new_uint64(a->bytes_restored_ref));
	json_object_object_add(o, "clients", json_object_new_int64(ready));
	json_object_object_add(o, "held", json_object_new_int64(held));
	json_object_object_add(o, "last-error",
			       a->last_error[0] ? json_object_new_string(a->last_error) : NULL);
	*ret = o;
	return 0;
}

const struct gmig_qga_cmd cmd_status_entry = {
	.name = "gmig-status",
	.flags = GMIG_QGA_FROZEN_OK,
	.handler = cmd_status,
};
