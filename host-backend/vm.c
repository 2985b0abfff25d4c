/* The guest's QEMU through QMP: GPU hot-unplug and hot-plug, the VM's migration, an arrival. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "qmp.h"
#include "vm.h"

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int open_or_why(const char *path, const struct vm_timeouts *t, struct qmp **q, char *why,
		       size_t whylen)
{
	return qmp_open(path, t->qmp_ms, q, why, whylen);
}

/* The reply of qom-get for @path's @prop; NULL with -errno in *@rc. */
static struct json_object *qom_get(struct qmp *q, const struct vm_timeouts *t, const char *path,
				   const char *prop, int *rc)
{
	struct json_object *args = json_object_new_object(), *ret = NULL;

	json_object_object_add(args, "path", json_object_new_string(path));
	json_object_object_add(args, "property", json_object_new_string(prop));
	*rc = qmp_execute(q, "qom-get", args, &ret, t->qmp_ms);
	return *rc ? NULL : ret;
}

static uint64_t num_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	return (uint64_t)json_object_get_int64(v);
}

static bool exists(struct qmp *q, const struct vm_timeouts *t, const char *path)
{
	struct json_object *args = json_object_new_object(), *ret = NULL;
	bool found;

	json_object_object_add(args, "path", json_object_new_string(path));
	found = qmp_execute(q, "qom-list", args, &ret, t->qmp_ms) == 0;
	json_object_put(ret);
	return found;
}

/* Reads the device's memory backend: its id, file, size and sharing. */
static int read_gpu(struct qmp *q, const struct vm_timeouts *t, struct vm_gpu *gpu, char *why,
		    size_t whylen)
{
	char path[CONFIG_VM_ID_MAX + 64];
	struct json_object *v;
	const char *s, *base;
	int rc;

	snprintf(path, sizeof(path), "/machine/peripheral/%s", gpu->id);
	v = qom_get(q, t, path, "memdev", &rc);
	if (!v) {
		snprintf(why, whylen, "GPU device %s: %s", gpu->id, qmp_why(q));
		return rc == -EREMOTEIO ? -ENODEV : rc;
	}
	s = json_object_get_string(v);
	base = s ? strrchr(s, '/') : NULL;
	if (!base || !base[1] || strlen(base + 1) >= sizeof(gpu->mem_id)) {
		snprintf(why, whylen, "GPU device %s has no memory backend (is it ivshmem-plain?)",
			 gpu->id);
		json_object_put(v);
		return -ENODEV;
	}
	snprintf(gpu->mem_id, sizeof(gpu->mem_id), "%s", base + 1);
	json_object_put(v);
	snprintf(path, sizeof(path), "/objects/%s", gpu->mem_id);
	v = qom_get(q, t, path, "mem-path", &rc);
	if (!v || !json_object_get_string(v)[0]) {
		snprintf(why, whylen, "GPU memory %s is not a memory-backend-file: %s", gpu->mem_id,
			 v ? "no mem-path" : qmp_why(q));
		json_object_put(v);
		return v ? -EINVAL : rc;
	}
	snprintf(gpu->mem_path, sizeof(gpu->mem_path), "%s", json_object_get_string(v));
	json_object_put(v);
	v = qom_get(q, t, path, "size", &rc);
	if (!v) {
		snprintf(why, whylen, "GPU memory %s: %s", gpu->mem_id, qmp_why(q));
		return rc;
	}
	gpu->size = (uint64_t)json_object_get_int64(v);
	json_object_put(v);
	v = qom_get(q, t, path, "share", &rc);
	gpu->share = v && json_object_get_boolean(v);
	json_object_put(v);
	return 0;
}

/* Whether QEMU still holds a RAM block of the memory backend @mem_id ("0000:00:04.0/gpumem"). */
static int ramblock_held(struct qmp *q, const struct vm_timeouts *t, const char *mem_id)
{
	struct json_object *args = json_object_new_object(), *ret = NULL;
	const char *text, *p;
	size_t n = strlen(mem_id);
	int rc, held = 0;

	json_object_object_add(args, "command-line", json_object_new_string("info ramblock"));
	rc = qmp_execute(q, "human-monitor-command", args, &ret, t->qmp_ms);
	if (rc)
		return rc;
	text = json_object_get_string(ret);
	for (p = text ? strstr(text, mem_id) : NULL; p; p = strstr(p + 1, mem_id)) {
		if (p > text && p[-1] == '/' && (p[n] == ' ' || p[n] == '\r' || p[n] == '\n' ||
						 !p[n]))
			held = 1;
	}
	json_object_put(ret);
	return held;
}

int vm_unplug(const char *qmp, const struct vm_timeouts *t, struct vm_gpu *gpu, char *why,
	      size_t whylen)
{
	struct json_object *args;
	struct qmp *q;
	int rc;

	rc = open_or_why(qmp, t, &q, why, whylen);
	if (rc)
		return rc;
	rc = read_gpu(q, t, gpu, why, whylen);
	if (rc)
		goto out_close;
	args = json_object_new_object();
	json_object_object_add(args, "id", json_object_new_string(gpu->id));
	rc = qmp_execute(q, "device_del", args, NULL, t->qmp_ms);
	if (rc) {
		snprintf(why, whylen, "%s", qmp_why(q));
		goto out_close;
	}
	rc = qmp_wait_event(q, "DEVICE_DELETED", "device", gpu->id, t->unplug_ms, NULL);
	if (rc) {
		snprintf(why, whylen, "GPU device %s: the guest did not release it: %s", gpu->id,
			 qmp_why(q));
		goto out_close;
	}
	args = json_object_new_object();
	json_object_object_add(args, "id", json_object_new_string(gpu->mem_id));
	rc = qmp_execute(q, "object-del", args, NULL, t->qmp_ms);
	if (rc) {
		snprintf(why, whylen, "%s", qmp_why(q));
		goto out_close;
	}
	/*
	 * QEMU frees the RAM block after an RCU grace period; a migration started before that
	 * would send it, and the destination (without the GPU) would refuse the stream.
	 */
	for (uint64_t deadline = mono_us() + (uint64_t)t->unplug_ms * 1000;;) {
		rc = ramblock_held(q, t, gpu->mem_id);
		if (rc <= 0)
			break;
		if (mono_us() > deadline) {
			snprintf(why, whylen, "GPU memory %s: QEMU still holds its RAM block after "
				 "%u ms", gpu->mem_id, t->unplug_ms);
			rc = -ETIMEDOUT;
			break;
		}
		sleep_ms(VM_POLL_MS / 4);
	}
	if (rc < 0 && rc != -ETIMEDOUT)
		snprintf(why, whylen, "%s", qmp_why(q));
out_close:
	qmp_close(q);
	return rc;
}

int vm_plug(const char *qmp, const struct vm_timeouts *t, const struct vm_gpu *gpu, char *why,
	    size_t whylen)
{
	char path[CONFIG_VM_ID_MAX + 64];
	struct json_object *args;
	struct qmp *q;
	int rc;

	rc = open_or_why(qmp, t, &q, why, whylen);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "/objects/%s", gpu->mem_id);
	if (!exists(q, t, path)) {
		args = json_object_new_object();
		json_object_object_add(args, "qom-type", json_object_new_string("memory-backend-file"));
		json_object_object_add(args, "id", json_object_new_string(gpu->mem_id));
		json_object_object_add(args, "mem-path", json_object_new_string(gpu->mem_path));
		json_object_object_add(args, "size", json_object_new_int64((int64_t)gpu->size));
		json_object_object_add(args, "share", json_object_new_boolean(1));
		rc = qmp_execute(q, "object-add", args, NULL, t->qmp_ms);
		if (rc) {
			snprintf(why, whylen, "%s", qmp_why(q));
			goto out_close;
		}
	}
	snprintf(path, sizeof(path), "/machine/peripheral/%s", gpu->id);
	if (!exists(q, t, path)) {
		args = json_object_new_object();
		json_object_object_add(args, "driver", json_object_new_string("ivshmem-plain"));
		json_object_object_add(args, "memdev", json_object_new_string(gpu->mem_id));
		json_object_object_add(args, "id", json_object_new_string(gpu->id));
		rc = qmp_execute(q, "device_add", args, NULL, t->qmp_ms);
		if (rc)
			snprintf(why, whylen, "%s", qmp_why(q));
	}
out_close:
	qmp_close(q);
	return rc;
}

static void read_stats(struct json_object *info, struct vm_migrate_stats *st)
{
	struct json_object *v, *ram = NULL;

	if (json_object_object_get_ex(info, "status", &v))
		snprintf(st->status, sizeof(st->status), "%s", json_object_get_string(v));
	st->total_ms = num_of(info, "total-time");
	st->downtime_ms = num_of(info, "downtime");
	st->setup_ms = num_of(info, "setup-time");
	json_object_object_get_ex(info, "ram", &ram);
	st->ram_transferred = num_of(ram, "transferred");
	st->ram_total = num_of(ram, "total");
}

int vm_migrate(const char *qmp, const char *uri, const struct vm_timeouts *t,
	       atomic_bool *cancel, struct vm_migrate_stats *st, char *why, size_t whylen)
{
	uint64_t start = mono_us(), deadline = start + (uint64_t)t->migrate_ms * 1000;
	struct json_object *args, *info = NULL;
	struct qmp *q;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = open_or_why(qmp, t, &q, why, whylen);
	if (rc)
		return rc;
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	rc = qmp_execute(q, "migrate", args, NULL, t->qmp_ms);
	if (rc) {
		snprintf(why, whylen, "%s", qmp_why(q));
		goto out_close;
	}
	for (;;) {
		rc = qmp_execute(q, "query-migrate", NULL, &info, t->qmp_ms);
		if (rc) {
			snprintf(why, whylen, "%s", qmp_why(q));
			goto out_close;
		}
		read_stats(info, st);
		if (!strcmp(st->status, "completed")) {
			rc = 0;
			break;
		}
		if (!strcmp(st->status, "failed")) {
			struct json_object *e;

			snprintf(why, whylen, "QEMU's migration failed: %s",
				 json_object_object_get_ex(info, "error-desc", &e) ?
				 json_object_get_string(e) : "no reason given");
			rc = -EREMOTEIO;
			break;
		}
		if (!strcmp(st->status, "cancelled")) {
			snprintf(why, whylen, "QEMU's migration was cancelled");
			rc = -ECANCELED;
			break;
		}
		if (mono_us() > deadline || (cancel && atomic_load(cancel))) {
			rc = mono_us() > deadline ? -ETIMEDOUT : -ECANCELED;
			snprintf(why, whylen, "QEMU's migration %s (%s after %llu ms); cancelled",
				 rc == -ETIMEDOUT ? "took too long" : "was stopped", st->status,
				 (unsigned long long)((mono_us() - start) / 1000));
			qmp_execute(q, "migrate_cancel", NULL, NULL, t->qmp_ms);
			break;
		}
		json_object_put(info);
		info = NULL;
		sleep_ms(VM_POLL_MS);
	}
out_close:
	json_object_put(info);
	st->usecs = mono_us() - start;
	qmp_close(q);
	return rc;
}

int vm_wait_running(const char *qmp, const struct vm_timeouts *t, char *why, size_t whylen)
{
	uint64_t deadline = mono_us() + (uint64_t)t->migrate_ms * 1000;
	struct json_object *info = NULL, *v;
	struct qmp *q;
	int rc;

	rc = open_or_why(qmp, t, &q, why, whylen);
	if (rc)
		return rc;
	for (;;) {
		const char *status = "";

		rc = qmp_execute(q, "query-status", NULL, &info, t->qmp_ms);
		if (rc) {
			snprintf(why, whylen, "%s", qmp_why(q));
			break;
		}
		if (json_object_object_get_ex(info, "status", &v))
			status = json_object_get_string(v);
		if (!strcmp(status, "running"))
			break;
		if (mono_us() > deadline) {
			snprintf(why, whylen, "the VM is still '%s' after %u ms", status,
				 t->migrate_ms);
			rc = -ETIMEDOUT;
			break;
		}
		json_object_put(info);
		info = NULL;
		sleep_ms(VM_POLL_MS);
	}
	json_object_put(info);
	qmp_close(q);
	return rc;
}

int vm_gpu_from_file(const char *id, const char *path, struct vm_gpu *gpu, char *why,
		     size_t whylen)
{
	struct stat st;

	memset(gpu, 0, sizeof(*gpu));
	if (stat(path, &st)) {
		int rc = -errno;

		snprintf(why, whylen, "GPU file %s: %s", path, strerror(-rc));
		return rc;
	}
	if (!S_ISREG(st.st_mode) || !st.st_size) {
		snprintf(why, whylen, "GPU file %s is not a device file", path);
		return -EINVAL;
	}
	snprintf(gpu->id, sizeof(gpu->id), "%s", id);
	snprintf(gpu->mem_id, sizeof(gpu->mem_id), "%.*s-mem", CONFIG_VM_ID_MAX - 5, id);
	snprintf(gpu->mem_path, sizeof(gpu->mem_path), "%s", path);
	gpu->size = (uint64_t)st.st_size;
	gpu->share = true;
	return 0;
}
