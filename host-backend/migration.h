/*
 * The jobs gmigd runs against a guest as the source host: migrate, checkpoint, restore and
 * inventory. Each is a table of {state, event, action, next} over the same states and one
 * driver; any failure before the hand-over rolls back so that the programs run on the source
 * with nothing lost.
 *
 *   migrate:    CONNECT -> INVENTORY -> PEER -> PRECOPY (rounds) -> FREEZE -> FINAL -> RELEASE
 *               -> HANDOVER -> DONE;  failures before HANDOVER -> ROLLBACK -> ROLLED_BACK
 *   migrate of a guest under QEMU (vm.NAME.qmp, --qemu-uri): ... RELEASE -> UNPLUG (the GPU
 *               device leaves the VM) -> VM_MIGRATE (QEMU migrates the VM) -> HANDOVER -> DONE;
 *               failures before HANDOVER -> ROLLBACK -> RB_REPLUG (the same GPU back) -> ...
 *   checkpoint: CONNECT -> INVENTORY -> PRECOPY -> FREEZE -> FINAL -> THAW -> WRITE -> DONE
 *               (--stop: FINAL -> WRITE -> RELEASE -> DONE)
 *   restore:    LOAD -> CONNECT -> INVENTORY -> ATTACH -> RESTORE -> THAW -> DONE
 *   inventory:  CONNECT -> INVENTORY -> DONE
 */
#ifndef GMIG_HOST_MIGRATION_H
#define GMIG_HOST_MIGRATION_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmig/limits.h"

#include "addr.h"
#include "config.h"
#include "job.h"

struct gmigd;

enum mig_state {
	MS_START,
	MS_LOAD,	/* restore: reading and verifying the checkpoint file */
	MS_CONNECT,	/* opening or resuming the guest's session */
	MS_INVENTORY,	/* INV_REQUEST: the guest's GPUs and programs */
	MS_PEER,	/* the destination: connect, authenticate, announce the image */
	MS_PRECOPY,	/* pre-copy rounds while the programs run */
	MS_FREEZE,	/* FREEZE: every program to a safe point */
	MS_FINAL,	/* the final delta, frozen */
	MS_RELEASE,	/* the programs let go of their GPUs */
	MS_UNPLUG,	/* VM: device_del of the GPU until DEVICE_DELETED, object-del its memory */
	MS_VM_MIGRATE,	/* VM: QEMU migrates the VM, without its GPU, to the destination QEMU */
	MS_HANDOVER,	/* the destination attaches, restores and thaws */
	MS_WRITE,	/* checkpoint: writing the file */
	MS_ATTACH,	/* restore: the programs bind to GPUs */
	MS_RESTORE,	/* restore: the image goes into them */
	MS_THAW,	/* the programs go on */
	MS_ROLLBACK,	/* undoing: waiting for the guest and the step in flight */
	MS_RB_ABORT,	/* ABORT: the guest thaws on its GPUs */
	MS_RB_REPLUG,	/* VM: the same GPU device file plugged back into the source VM */
	MS_RB_ATTACH,	/* released: attach back to the source's GPUs */
	MS_RB_RESTORE,	/* restore the source's own copy of the image */
	MS_RB_THAW,
	MS_DONE,	/* terminal: success */
	MS_FAILED,	/* terminal: failed; the guest is as it was (or as the message says) */
	MS_ROLLED_BACK,	/* terminal: failed, and the programs run on the source again */
	MS_LOST,	/* terminal: failed, and the guest's state is not known */
	MS_COUNT
};

enum mig_event {
	ME_START,
	ME_OK,		/* the step in flight succeeded */
	ME_MORE,	/* the policy wants another round */
	ME_ENOUGH,	/* the policy stops pre-copy */
	ME_FAIL,	/* the step failed */
	ME_BUSY,	/* ABORT refused: the guest's GPUs are released */
	ME_GUEST_LOST,	/* the guest channel is gone and was not resumed in time */
	ME_PEER_LOST,	/* the destination went away or refused */
	ME_ABORT,	/* the operator's abort */
	ME_TIMEOUT,	/* the destination did not confirm in time */
	ME_DEST_STEP,	/* the destination attached, restored or thawed */
	ME_MIGRATED,	/* the programs run at the destination */
	ME_REFUSED,	/* the destination failed and let go of the guest */
	ME_PH_RUNNING,	/* rollback: the guest runs or is frozen on its GPUs */
	ME_PH_RELEASED,	/* rollback: the guest holds no GPU */
	ME_PH_ATTACHED,	/* rollback: the guest is attached, not thawed */
	ME_COUNT
};

enum mig_action {
	A_NONE,
	A_LOAD,
	A_CONNECT,
	A_INVENTORY,
	A_CHECK,	/* restore: the file fits the guest; choose by its phase */
	A_PEER,
	A_DECIDE,	/* the convergence policy */
	A_ROUND,
	A_FREEZE,
	A_FINAL,
	A_RELEASE,
	A_HANDOVER,
	A_UNPLUG,
	A_VM_MIGRATE,
	A_VM_CANCEL,	/* stop the VM step in flight; its end posts the failure */
	A_WRITE,
	A_ATTACH,
	A_RESTORE,
	A_THAW,
	A_NOTE,		/* record a destination step's time */
	A_ROLLBACK,	/* tell the destination, then choose by the guest's phase */
	A_RB_ABORT,
	A_RB_REPLUG,
	A_RB_ATTACH,
	A_RB_RESTORE,
	A_RB_THAW,
	A_DONE,
	A_FAIL,
	A_ROLLED_BACK,
	A_LOST,
	A_COUNT
};

extern const char *const mig_state_names[];
extern const char *const mig_event_names[];
extern const char *const mig_action_names[];

struct mig_row {
	enum mig_state state;
	enum mig_event event;
	enum mig_action action;
	enum mig_state next;
};

/* The table of a job kind (JOB_INCOMING has none here); @stop picks checkpoint --stop's. */
const struct mig_row *mig_table(enum job_kind kind, bool stop, unsigned int *count);
/* The migrate table of a guest under QEMU that gmigd drives through QMP. */
const struct mig_row *mig_table_vm(unsigned int *count);
/* The row of @table for @state and @event, or NULL when the event is not expected there. */
const struct mig_row *mig_row(const struct mig_row *table, unsigned int count,
			      enum mig_state state, enum mig_event event);
/* Whether a state ends the job. */
bool mig_state_terminal(enum mig_state s);

struct gpu_pair {
	uint32_t from, to;
};

struct mig_opts {
	enum job_kind kind;
	char guest[GMIG_ADDR_MAX + 1];		/* a configured name or an address */
	char to[JOB_TARGET_MAX];		/* migrate: the destination's HOST[:PORT] */
	char channel[GMIG_ADDR_MAX + 1];	/* migrate: the guest's address there; "": the same */
	char qemu_uri[JOB_TARGET_MAX];		/* migrate, VM: the destination QEMU's -incoming */
	char file[PATH_MAX];			/* checkpoint, restore: an absolute path */
	bool stop;				/* checkpoint: release instead of thaw */
	uint32_t max_rounds;
	uint32_t pause_target_ms;
	uint32_t freeze_deadline_ms;
	struct gpu_pair map[GMIG_GPUS_MAX];	/* GPU indices; unlisted GPUs map to themselves */
	unsigned int nmap;
};

/* Options with the daemon's defaults. */
void mig_opts_defaults(const struct gmigd *d, struct mig_opts *o, enum job_kind kind);

/*
 * Starts a job; it runs from the loop. The job, or NULL with a negative errno in *@err and a
 * sentence in @why (-EBUSY: a job holds the guest; -ENOENT: no such guest; -EINVAL: bad options).
 */
struct job *mig_start(struct gmigd *d, const struct mig_opts *o, int *err, char *why,
		      size_t whylen);

/* Parses "0:1,2:3" into @o's map. 0, or -EINVAL with a sentence. */
int mig_parse_map(const char *text, struct mig_opts *o, char *why, size_t whylen);

#endif
