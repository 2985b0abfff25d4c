/* The convergence policy of pre-copy: another round, or the freeze, and why. */
#include <stddef.h>

#include <string.h>

#include "policy.h"

const char *const policy_verdict_names[] = {
	[PV_MORE] = "more",
	[PV_STOP_COPY] = "stop-and-copy",
	[PV_MAX_ROUNDS] = "max-rounds",
	[PV_UNDER_TARGET] = "under-target",
	[PV_NOT_SHRINKING] = "not-shrinking",
};

enum policy_verdict policy_decide(const struct policy *p, const struct policy_round *rounds,
				  uint32_t nrounds, uint64_t *est_ms)
{
	const struct policy_round *last;
	double rate = 0;

	*est_ms = 0;
	if (!p->max_rounds)
		return PV_STOP_COPY;
	if (!nrounds)
		return PV_MORE;
	last = &rounds[nrounds - 1];
	/*
	 * The final round carries about what changed during the last one: the last round's bytes,
	 * moved at the best rate a round has reached (a small round's time is mostly the scan of
	 * the memory, which says little about the link).
	 */
	for (uint32_t i = 0; i < nrounds; i++) {
		double r;

		if (!rounds[i].usecs || !rounds[i].bytes)
			continue;
		r = (double)rounds[i].bytes / (double)rounds[i].usecs;
		if (r > rate)
			rate = r;
	}
	if (rate > 0)
		*est_ms = (uint64_t)((double)last->bytes / rate / 1000.0);
	if (nrounds >= p->max_rounds)
		return PV_MAX_ROUNDS;
	if (*est_ms <= p->pause_target_ms)
		return PV_UNDER_TARGET;
	if (nrounds >= 2 && last->dirty >= rounds[nrounds - 2].dirty)
		return PV_NOT_SHRINKING;
	return PV_MORE;
}

bool policy_gpus_compatible(const struct gmig_rec_gpu *from, const struct gmig_rec_gpu *to)
{
	if (from->backend != GMIG_BACKEND_CUDA && to->backend != GMIG_BACKEND_CUDA)
		return true;
	return from->backend == to->backend && !strcmp(from->model, to->model);
}
