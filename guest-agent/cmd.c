/* The registry of gmig-agent's JSON commands and the argument checks the command families share. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gmig/message.h"

#include "agent.h"
#include "cmd.h"

/* Every command family, once; policy (such as "allowed while frozen") is in each descriptor. */
static const struct gmig_qga_cmd *const cmd_table[] = {
	&cmd_inventory_entry,
	&cmd_status_entry,
	&cmd_freeze_entry,
	&cmd_thaw_entry,
};

#define NCMDS	(sizeof(cmd_table) / sizeof(cmd_table[0]))

int cmd_init(struct agent *a)
{
	a->qga_cmds = calloc(NCMDS, sizeof(*a->qga_cmds));
	if (!a->qga_cmds)
		return -ENOMEM;
	for (size_t i = 0; i < NCMDS; i++)
		a->qga_cmds[i] = *cmd_table[i];
	a->qga = (struct gmig_qga_dispatcher){
		.cmds = a->qga_cmds,
		.ncmds = NCMDS,
		.version = GMIG_AGENT_VERSION,
		.ctx = a,
	};
	return gmig_qga_dispatcher_check(&a->qga);
}

void cmd_clear(struct agent *a)
{
	free(a->qga_cmds);
	a->qga_cmds = NULL;
}

int cmd_args_only(struct json_object *args, const char *const *allowed,
		  struct gmig_qga_error *err)
{
	json_object_object_foreach(args, key, val) {
		const char *const *k;

		(void)val;
		for (k = allowed; *k && strcmp(*k, key); k++)
			;
		if (!*k) {
			gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "Parameter '%s' is unexpected",
					   key);
			return -EINVAL;
		}
	}
	return 0;
}

int cmd_arg_int(struct json_object *args, const char *name, int64_t min, int64_t max,
		int64_t *out, struct gmig_qga_error *err)
{
	struct json_object *val;
	int64_t v;

	if (!json_object_object_get_ex(args, name, &val)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR, "Parameter '%s' is missing", name);
		return -EINVAL;
	}
	if (!json_object_is_type(val, json_type_int)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Invalid parameter type for '%s', expected: integer", name);
		return -EINVAL;
	}
	v = json_object_get_int64(val);
	/* json-c keeps integers up to UINT64_MAX; get_int64 clamps those to INT64_MAX. */
	if (v < min || v > max || (v == INT64_MAX && json_object_get_uint64(val) != INT64_MAX)) {
		gmig_qga_error_set(err, GMIG_QGA_GENERIC_ERROR,
				   "Parameter '%s' expects a value in [%lld, %lld]", name,
				   (long long)min, (long long)max);
		return -ERANGE;
	}
	*out = v;
	return 0;
}

struct json_object *cmd_phase_json(unsigned int phase)
{
	const char *name = gmig_phase_name(phase);
	char lower[32];
	size_t i;

	for (i = 0; name[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	lower[i] = '\0';
	return json_object_new_string(lower);
}
