/* gmig-inventory: the guest's GPUs and the GPU programs the agent serves, from what it knows now. */
#include <errno.h>
#include <stdio.h>

#include <json-c/json.h>

#include "agent.h"
#include "client.h"
#include "cmd.h"
#include "inventory.h"

static struct json_object *gpu_json(const struct gmig_rec_gpu *g)
{
	struct json_object *o = json_object_new_object();
	char uuid[40];
	const uint8_t *u = g->uuid;

	if (!o)
		return NULL;
	snprintf(uuid, sizeof(uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
	json_object_object_add(o, "index", json_object_new_int64(g->index));
	json_object_object_add(o, "vendor", json_object_new_int64(g->vendor));
	json_object_object_add(o, "device", json_object_new_int64(g->device));
	json_object_object_add(o, "mem-bytes", json_object_new_uint64(g->mem_bytes));
	json_object_object_add(o, "uuid", json_object_new_string(uuid));
	json_object_object_add(o, "pci", json_object_new_string(g->pci));
	json_object_object_add(o, "model", json_object_new_string(g->model));
	json_object_object_add(o, "backend", json_object_new_string(gmig_backend_name(g->backend)));
	return o;
}

static struct json_object *client_json(const struct client *c)
{
	struct json_object *o = json_object_new_object();
	struct gmig_tail t = { c->regions, c->regions_len };
	uint32_t n = gmig_rec_count(&t, GMIG_REC_region_SIZE);
	uint64_t bytes = 0;

	if (!o)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		struct gmig_rec_region r;

		gmig_rec_get_region(&t, i, &r);
		bytes += r.size;
	}
	json_object_object_add(o, "pid", json_object_new_int64(c->pid));
	json_object_object_add(o, "name", json_object_new_string(c->name));
	json_object_object_add(o, "state", json_object_new_string(client_state_names[c->state]));
	if (c->has_inv) {
		json_object_object_add(o, "gpu", json_object_new_int64(c->gpu));
		json_object_object_add(o, "regions", json_object_new_int64(n));
		json_object_object_add(o, "region-bytes", json_object_new_uint64(bytes));
	}
	return o;
}

static int cmd_inventory(void *ctx, struct json_object *args, struct json_object **ret,
			 struct gmig_qga_error *err)
{
	static const char *const allowed[] = { NULL };
	static struct gmig_rec_gpu gpus[GMIG_GPUS_MAX];
	struct agent *a = ctx;
	struct json_object *o, *gl, *cl;
	const struct client *c;
	unsigned int n;
	int rc;

	rc = cmd_args_only(args, allowed, err);
	if (rc)
		return rc;
	o = json_object_new_object();
	gl = json_object_new_array();
	cl = json_object_new_array();
	if (!o || !gl || !cl)
		goto out_put;
	n = inventory_gpus(&a->cfg, gpus, GMIG_GPUS_MAX);
	for (unsigned int i = 0; i < n; i++) {
		struct json_object *g = gpu_json(&gpus[i]);

		if (!g || json_object_array_add(gl, g)) {
			json_object_put(g);
			goto out_put;
		}
	}
	TAILQ_FOREACH(c, &a->clients, link) {
		struct json_object *cj;

		if (c->state != CS_READY && c->state != CS_HELD)
			continue;
		cj = client_json(c);
		if (!cj || json_object_array_add(cl, cj)) {
			json_object_put(cj);
			goto out_put;
		}
	}
	json_object_object_add(o, "gpus", gl);
	json_object_object_add(o, "clients", cl);
	*ret = o;
	return 0;

out_put:
	json_object_put(o);
	json_object_put(gl);
	json_object_put(cl);
	return -ENOMEM;
}

const struct gmig_qga_cmd cmd_inventory_entry = {
	.name = "gmig-inventory",
	.flags = GMIG_QGA_FROZEN_OK,
	.handler = cmd_inventory,
};
