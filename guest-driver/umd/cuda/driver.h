/*
 * The real CUDA driver as libgmig reaches it: entry points resolved once in
 * libcuda.so.1 itself, never through libgmig's own wrappers, and the map
 * from each wrapped entry point's real address to its wrapper.
 */
#ifndef GMIG_UMD_CUDA_DRIVER_H
#define GMIG_UMD_CUDA_DRIVER_H

#include <cuda.h>
#include <cudaTypedefs.h>
#include <stdbool.h>
#include <stddef.h>

/* ABIs cudaTypedefs.h keeps to the driver's own build (__CUDA_API_VERSION_INTERNAL). */
typedef CUresult (CUDAAPI *GMIG_PFN_cuStreamBeginCapture_v10000)(CUstream hStream);
typedef CUresult (CUDAAPI *GMIG_PFN_cuStreamBeginCapture_v10000_ptsz)(CUstream hStream);

#include "wraps.h"

#define GMIG_HIDDEN	__attribute__((visibility("hidden")))

#define GMIG_CUDA_FIELD_C(name, pfn)		pfn r_##name;
#define GMIG_CUDA_FIELD_G(name, pfn, params, args)	pfn r_##name;

/* NULL where the driver lacks an entry point. */
struct gmig_cuda_driver {
	GMIG_CUDA_WRAPS(GMIG_CUDA_FIELD_C, GMIG_CUDA_FIELD_G)
	GMIG_CUDA_USES(GMIG_CUDA_FIELD_C)
	GMIG_CUDA_CKPT(GMIG_CUDA_FIELD_C)
};

/* One wrapped entry point: its exported name, libgmig's wrapper, the real one's slot. */
struct gmig_cuda_wrap {
	const char *name;
	void *wrapper;
	size_t slot;		/* offset of its pointer in struct gmig_cuda_driver */
};

extern struct gmig_cuda_driver gmig_cu GMIG_HIDDEN;

/*
 * The wrappers (wrap.c), each declared with its PFN type: a definition
 * whose prototype differs from the variant's ABI does not compile.
 */
#define GMIG_CUDA_DECL_C(name, pfn)		extern GMIG_HIDDEN __typeof__(*(pfn)0) w_##name;
#define GMIG_CUDA_DECL_G(name, pfn, params, args)	extern GMIG_HIDDEN __typeof__(*(pfn)0) w_##name;
GMIG_CUDA_WRAPS(GMIG_CUDA_DECL_C, GMIG_CUDA_DECL_G)

/*
 * Resolves the driver once libcuda.so.1 is loaded (it never loads it);
 * true once gmig_cu is filled. Safe to call from any wrapper, and from a
 * dlsym the driver makes while being resolved (then false).
 */
bool gmig_cuda_resolve(void) GMIG_HIDDEN;
/* Whether GMIG_DISABLE=1: every wrapper and look-up passes straight through. */
bool gmig_cuda_disabled(void) GMIG_HIDDEN;
/* The wrapper for a real entry point's address, or p itself for one not wrapped. */
void *gmig_cuda_wrapper_for(void *p) GMIG_HIDDEN;
/* The driver's name of a result, for logs. */
const char *gmig_cuda_err(CUresult r) GMIG_HIDDEN;

#endif
