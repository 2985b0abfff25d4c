/* Jobs: ids, progress, transitions with their times, results and reports, kept for status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "daemon.h"
#include "job.h"
#include "log.h"

const char *const job_kind_names[] = {
	[JOB_MIGRATE] = "migrate",
	[JOB_CHECKPOINT] = "checkpoint",
	[JOB_RESTORE] = "restore",
	[JOB_INVENTORY] = "inventory",
	[JOB_INCOMING] = "incoming",
};

const char *const job_result_names[] = {
	[JR_RUNNING] = "running",
	[JR_DONE] = "done",
	[JR_ROLLED_BACK] = "rolled-back",
	[JR_FAILED] = "failed",
	[JR_IN_DOUBT] = "in-doubt",
};

void jadd_int(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

void jadd_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v ? v : ""));
}

/* A number written as @text exactly, so that reports do not print 677.19600000000003. */
static void jadd_fixed(struct json_object *o, const char *key, double v, const char *text)
{
	json_object_object_add(o, key, json_object_new_double_s(v, text));
}

void jadd_ms(struct json_object *o, const char *key, uint64_t usecs)
{
	char text[32];

	/* Milliseconds with three decimals: a pause of 2.345 ms is worth its microseconds. */
	snprintf(text, sizeof(text), "%llu.%03llu", (unsigned long long)(usecs / 1000),
		 (unsigned long long)(usecs % 1000));
	jadd_fixed(o, key, (double)usecs / 1000.0, text);
}

void jadd_rate(struct json_object *o, const char *key, uint64_t bytes, uint64_t usecs)
{
	double mbps = usecs ? (double)bytes / (double)usecs : 0.0;	/* bytes/us = MB/s */
	char text[32];

	snprintf(text, sizeof(text), "%.1f", mbps);
	jadd_fixed(o, key, mbps, text);
}

static void job_free(struct job *j)
{
	json_object_put(j->transitions);
	json_object_put(j->report);
	json_object_put(j->answer);
	free(j->rounds);
	free(j);
}

struct job *job_new(struct gmigd *d, enum job_kind kind, const char *guest, const char *target)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->transitions = json_object_new_array();
	if (!j->transitions) {
		free(j);
		return NULL;
	}
	j->d = d;
	j->id = ++d->job_ids;
	j->kind = kind;
	j->result = JR_RUNNING;
	j->state = "start";
	snprintf(j->guest, sizeof(j->guest), "%s", guest ? guest : "");
	snprintf(j->target, sizeof(j->target), "%s", target ? target : "");
	j->started_us = now_us();
	TAILQ_INSERT_TAIL(&d->jobs, j, entry);
	return j;
}

struct job *job_find(struct gmigd *d, uint32_t id)
{
	struct job *j;

	TAILQ_FOREACH(j, &d->jobs, entry) {
		if (j->id == id)
			return j;
	}
	return NULL;
}

struct job *job_running_on(struct gmigd *d, const char *guest)
{
	struct job *j;

	TAILQ_FOREACH(j, &d->jobs, entry) {
		if (j->result == JR_RUNNING && !strcmp(j->guest, guest))
			return j;
	}
	return NULL;
}

void job_transition(struct job *j, const char *from, const char *event, const char *action,
		    const char *to)
{
	uint64_t at = now_us() - j->started_us;
	struct json_object *t = json_object_new_object();
	char peer[48];

	snprintf(peer, sizeof(peer), "job %u %s", j->id, job_kind_names[j->kind]);
	log_info(peer, "%s --%s/%s--> %s at %llu.%03llu ms", from, event, action, to,
		 (unsigned long long)(at / 1000), (unsigned long long)(at % 1000));
	j->state = to;
	if (!t)
		return;
	jadd_ms(t, "at_ms", at);
	jadd_str(t, "from", from);
	jadd_str(t, "event", event);
	jadd_str(t, "to", to);
	json_object_array_add(j->transitions, t);
}

struct job_round *job_add_round(struct job *j)
{
	struct job_round *r = realloc(j->rounds, (j->nrounds + 1) * sizeof(*r));

	if (!r)
		return NULL;
	j->rounds = r;
	r = &j->rounds[j->nrounds++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* Keeps at most jobs_kept finished jobs, dropping the oldest. */
static void prune(struct gmigd *d)
{
	unsigned int finished = 0;
	struct job *j, *next;

	TAILQ_FOREACH(j, &d->jobs, entry)
		finished += j->result != JR_RUNNING;
	for (j = TAILQ_FIRST(&d->jobs); j && finished > d->cfg.jobs_kept; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->result == JR_RUNNING || j->on_end)
			continue;
		TAILQ_REMOVE(&d->jobs, j, entry);
		job_free(j);
		finished--;
	}
}

void job_end(struct job *j, enum job_result result, int err, const char *error,
	     struct json_object *report)
{
	char peer[48];
	job_end_fn *fn = j->on_end;

	snprintf(peer, sizeof(peer), "job %u %s", j->id, job_kind_names[j->kind]);
	j->result = result;
	j->err = err;
	snprintf(j->error, sizeof(j->error), "%s", error ? error : "");
	j->ended_us = now_us();
	json_object_put(j->report);
	j->report = report;
	j->machine = NULL;
	j->abort = NULL;
	j->destroy = NULL;
	if (result == JR_DONE)
		log_info(peer, "%s: done in %llu ms", j->guest,
			 (unsigned long long)((j->ended_us - j->started_us) / 1000));
	else
		log_warn(peer, "%s: %s: %s", j->guest, job_result_names[result], j->error);
	j->on_end = NULL;
	if (fn)
		fn(j, j->on_end_arg);
	prune(j->d);
	gmigd_job_ended(j->d);
}

struct json_object *job_status(const struct job *j, bool with_report)
{
	struct json_object *o = json_object_new_object(), *p;
	uint64_t end = j->result == JR_RUNNING ? now_us() : j->ended_us;

	if (!o)
		return NULL;
	jadd_int(o, "job", j->id);
	jadd_str(o, "kind", job_kind_names[j->kind]);
	jadd_str(o, "guest", j->guest);
	if (j->target[0])
		jadd_str(o, "target", j->target);
	jadd_str(o, "state", j->state);
	jadd_str(o, "result", job_result_names[j->result]);
	jadd_ms(o, "elapsed_ms", end - j->started_us);
	if (j->result == JR_RUNNING) {
		p = json_object_new_object();
		if (p) {
			jadd_int(p, "round", j->round);
			jadd_int(p, "done_bytes", (int64_t)j->done_bytes);
			jadd_int(p, "total_bytes", (int64_t)j->total_bytes);
			json_object_object_add(o, "progress", p);
		}
	} else if (j->err || j->error[0]) {
		jadd_int(o, "errno", -j->err);
		jadd_str(o, "error", j->error);
	}
	if (with_report && j->report)
		json_object_object_add(o, "report", json_object_get(j->report));
	if (with_report && j->answer)
		json_object_object_add(o, "inventory", json_object_get(j->answer));
	return o;
}

void job_free_all(struct gmigd *d)
{
	struct job *j;

	/* Machines still running stop first; they may end their jobs as they go. */
	TAILQ_FOREACH(j, &d->jobs, entry) {
		if (j->machine && j->destroy) {
			void (*destroy)(void *) = j->destroy;
			void *machine = j->machine;

			j->machine = NULL;
			j->destroy = NULL;
			j->on_end = NULL;
			destroy(machine);
		}
	}
	while ((j = TAILQ_FIRST(&d->jobs))) {
		TAILQ_REMOVE(&d->jobs, j, entry);
		job_free(j);
	}
}
