/* Entry points for bench/ to time the CUDA backend's device work on a GPU. */
#include <errno.h>

#include "bench.h"
#include "clock.h"
#include "interpose.h"

#define EXPORTED	__attribute__((visibility("default")))

/* The core, holding its device; the caller unlocks. */
static struct gmig_umd *held(void)
{
	struct gmig_umd *u = gmig_cuda_umd();

	if (!u)
		return NULL;
	pthread_mutex_lock(&u->lock);
	if (!u->dev) {
		pthread_mutex_unlock(&u->lock);
		return NULL;
	}
	return u;
}

EXPORTED int gmig_cuda_bench_fingerprint(uint64_t va, uint64_t len, uint32_t chunk, unsigned iters,
					 uint64_t *out, double *seconds)
{
	struct gmig_umd *u = held();
	uint64_t t0;
	int err = 0;

	if (!u)
		return -ENODEV;
	t0 = gmig_now_us();
	for (unsigned i = 0; i < iters && !err; i++)
		err = u->be->ops->fingerprint(u->dev, va, len, chunk, out);
	*seconds = (double)(gmig_now_us() - t0) / 1e6;
	pthread_mutex_unlock(&u->lock);
	return err;
}

EXPORTED int gmig_cuda_bench_read(uint64_t va, uint64_t len, void *dst, int pin, unsigned iters,
				  double *seconds)
{
	struct gmig_umd *u = held();
	uint64_t t0;
	int err = 0;

	if (!u)
		return -ENODEV;
	if (pin)
		err = gmig_umd_host_register(u, dst, len);
	t0 = gmig_now_us();
	for (unsigned i = 0; i < iters && !err; i++)
		err = u->be->ops->read(u->dev, va, dst, len);
	*seconds = (double)(gmig_now_us() - t0) / 1e6;
	if (pin)
		gmig_umd_host_unregister(u, dst, len);
	pthread_mutex_unlock(&u->lock);
	return err;
}
