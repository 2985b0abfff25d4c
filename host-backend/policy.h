/*
 * The convergence policy of pre-copy: after each round, another round or the freeze. Pure
 * arithmetic over the rounds so far, so that it can be tested row by row.
 */
#ifndef GMIG_HOST_POLICY_H
#define GMIG_HOST_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "gmig/message.h"

enum policy_verdict {
	PV_MORE,		/* run another round */
	PV_STOP_COPY,		/* max_rounds is 0: freeze first, then copy everything */
	PV_MAX_ROUNDS,		/* the bound on rounds is reached */
	PV_UNDER_TARGET,	/* the final delta is estimated to fit in the pause target */
	PV_NOT_SHRINKING,	/* the changed set stopped shrinking: more rounds will not help */
	PV_COUNT
};

extern const char *const policy_verdict_names[];

struct policy {
	uint32_t max_rounds;
	uint32_t pause_target_ms;
};

/* What the last round did, as its ROUND_END and our clock saw it. */
struct policy_round {
	uint64_t dirty;		/* chunks changed since its base */
	uint64_t bytes;		/* payload bytes it moved */
	uint64_t usecs;		/* its wall time at the host */
};

/*
 * The verdict after @nrounds rounds (the last is @rounds[nrounds - 1]); with 0 rounds, whether
 * to start pre-copy at all. *@est_ms gets the estimated final-delta time: the last round's bytes
 * at the best rate any round reached (0 when no round moved bytes).
 */
enum policy_verdict policy_decide(const struct policy *p, const struct policy_round *rounds,
				  uint32_t nrounds, uint64_t *est_ms);

/*
 * Whether a program may move from GPU @from to GPU @to of one inventory. The CUDA driver moves a
 * program only between GPUs of one chip, and gmig moves CUDA programs with it: two NVIDIA GPUs
 * of different models are refused (before pre-copy and the freeze); other backends move their
 * bytes themselves and may go anywhere with room.
 */
bool policy_gpus_compatible(const struct gmig_rec_gpu *from, const struct gmig_rec_gpu *to);

#endif
