/*
 * Jobs: what gmigctl asked gmigd to do (migrate, checkpoint, restore, inventory) and what a
 * peer asked (an incoming migration), each with an id, its progress, every transition with its
 * time, and at the end a result and a JSON report. Finished jobs are kept for status.
 */
#ifndef GMIG_HOST_JOB_H
#define GMIG_HOST_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config.h"

struct gmigd;
struct json_object;

#define JOB_ERROR_MAX	256
#define JOB_TARGET_MAX	160

enum job_kind { JOB_MIGRATE, JOB_CHECKPOINT, JOB_RESTORE, JOB_INVENTORY, JOB_INCOMING, JOB_KIND_COUNT };

enum job_result {
	JR_RUNNING,
	JR_DONE,		/* it did what was asked */
	JR_ROLLED_BACK,		/* it failed, and the programs run on the source as before */
	JR_FAILED,		/* it failed before it touched the guest, or the guest was left as it was */
	JR_IN_DOUBT,		/* it failed and the guest's state is not known: look at it */
	JR_COUNT
};

extern const char *const job_kind_names[];
extern const char *const job_result_names[];

struct job_round {
	uint32_t round, base;
	bool final;			/* the round after the freeze */
	uint64_t chunks, dirty, zero;	/* from ROUND_END */
	uint64_t bytes;			/* device payload bytes, from ROUND_END */
	uint64_t wire_bytes;		/* bytes this round put on the peer link */
	uint64_t usecs;			/* wall time at this host */
};

struct job;
typedef void job_end_fn(struct job *j, void *arg);

struct job {
	TAILQ_ENTRY(job) entry;
	struct gmigd *d;
	uint32_t id;
	enum job_kind kind;
	enum job_result result;
	char guest[GUEST_NAME_MAX + 1];
	char target[JOB_TARGET_MAX];	/* destination, file, or the peer an image came from */
	const char *state;		/* the machine's state, for status */
	int err;
	char error[JOB_ERROR_MAX];
	uint64_t started_us, ended_us;

	/* Progress of the step in flight. */
	uint32_t round;
	uint64_t done_bytes, total_bytes;

	struct job_round *rounds;
	uint32_t nrounds;
	struct json_object *transitions;	/* [{"at_ms", "from", "event", "to"}] */
	struct json_object *report;		/* set when the job ends */
	struct json_object *answer;		/* inventory: the inventory */

	/* The machine running the job; NULL once it ended. */
	void *machine;
	int (*abort)(void *machine);		/* the operator's abort; -EBUSY when not now */
	void (*destroy)(void *machine);		/* daemon exit: stop and free the machine */
	job_end_fn *on_end;			/* a control connection waiting for the end */
	void *on_end_arg;
};

/* A new running job, listed in the daemon; NULL when out of memory. */
struct job *job_new(struct gmigd *d, enum job_kind kind, const char *guest, const char *target);
struct job *job_find(struct gmigd *d, uint32_t id);
/* The running job that holds @guest, or NULL. */
struct job *job_running_on(struct gmigd *d, const char *guest);

/* Logs a transition and records it with its time since the job started. */
void job_transition(struct job *j, const char *from, const char *event, const char *action,
		    const char *to);

/* Appends a round to the report; its slot, or NULL when out of memory. */
struct job_round *job_add_round(struct job *j);

/*
 * Ends the job: @report is taken (may be NULL), the machine is detached, waiters are told, and
 * old finished jobs beyond jobs_kept are dropped.
 */
void job_end(struct job *j, enum job_result result, int err, const char *error,
	     struct json_object *report);

/* Status of one job: id, kind, guest, state, progress; with the report once it ended. */
struct json_object *job_status(const struct job *j, bool with_report);

/* Frees every job (daemon exit). */
void job_free_all(struct gmigd *d);

/* json helpers for reports */
void jadd_int(struct json_object *o, const char *key, int64_t v);
void jadd_str(struct json_object *o, const char *key, const char *v);
void jadd_ms(struct json_object *o, const char *key, uint64_t usecs);
void jadd_rate(struct json_object *o, const char *key, uint64_t bytes, uint64_t usecs);

#endif
