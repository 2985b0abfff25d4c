/*
 * gmig-agent's JSON commands (the QGA dialect): each family lives in its own cmd-*.c with a
 * const descriptor; cmd.c holds the one registry and the argument checks they share.
 */
#ifndef GMIG_AGENT_CMD_H
#define GMIG_AGENT_CMD_H

#include <stdint.h>

#include "gmig/qga.h"

struct agent;
struct json_object;

extern const struct gmig_qga_cmd cmd_inventory_entry;	/* cmd-inventory.c */
extern const struct gmig_qga_cmd cmd_status_entry;	/* cmd-status.c */
extern const struct gmig_qga_cmd cmd_freeze_entry;	/* cmd-freeze.c */
extern const struct gmig_qga_cmd cmd_thaw_entry;	/* cmd-freeze.c */

/* Builds the dispatcher over the registry for @a. 0, or -ENOMEM / the table check's error. */
int cmd_init(struct agent *a);
void cmd_clear(struct agent *a);

/* The arguments hold only keys of the NULL-terminated @allowed, worded as QEMU words it. */
int cmd_args_only(struct json_object *args, const char *const *allowed,
		  struct gmig_qga_error *err);
/* A required integer argument in [@min, @max]. */
int cmd_arg_int(struct json_object *args, const char *name, int64_t min, int64_t max,
		int64_t *out, struct gmig_qga_error *err);
/* A JSON string of the lower-case phase name. */
struct json_object *cmd_phase_json(unsigned int phase);

#endif
