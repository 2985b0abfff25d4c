/*
 * Runtime-API helpers for the test programs built with nvcc (static cudart): checked calls
 * and the current GPU's UUID, read from the driver through cudart's entry-point query so
 * the program itself links no libcuda.
 */
#ifndef GMIG_GPUTEST_RT_CUH
#define GMIG_GPUTEST_RT_CUH

#include <cuda_runtime.h>

#include "gputest.h"

#define GT_RT(call) gt_rt_check((call), #call, __FILE__, __LINE__)
#define GT_LAUNCHED() GT_RT(cudaGetLastError())

static inline void gt_rt_check(cudaError_t e, const char *what, const char *file, int line)
{
	if (e == cudaSuccess)
		return;
	fprintf(stderr, "%s:%d: %s: %s (%d)\n", file, line, what, cudaGetErrorString(e), (int)e);
	exit(1);
}

/*
 * The UUID of the GPU under the current context. cudart's device properties may be cached
 * from before a migration; cuDeviceGetUuid asks the driver each time.
 */
static inline void gt_print_rt_uuid(const char *when)
{
	CUresult (*ctx_get_device)(CUdevice *) = NULL;
	CUresult (*get_uuid)(CUuuid *, CUdevice) = NULL;
	cudaDriverEntryPointQueryResult q;
	CUdevice dev;
	CUuuid u;

	/* The versions pick these prototypes: 13.0 has a cuCtxGetDevice_v2 taking a context. */
	GT_RT(cudaGetDriverEntryPointByVersion("cuCtxGetDevice", (void **)&ctx_get_device, 12000,
					      cudaEnableDefault, &q));
	GT_RT(cudaGetDriverEntryPointByVersion("cuDeviceGetUuid", (void **)&get_uuid, 12000,
					      cudaEnableDefault, &q));
	if (!ctx_get_device || !get_uuid) {
		fprintf(stderr, "the driver lacks cuCtxGetDevice or cuDeviceGetUuid\n");
		exit(1);
	}
	GT_DRV(ctx_get_device(&dev));
	GT_DRV(get_uuid(&u, dev));
	gt_print_uuid(when, &u);
}

#endif
