/*
 * The wrappers: what libgmig does at each wrapped driver entry point, and
 * the exported symbols that lead programs linked against libcuda to them.
 * With the core off (GMIG_DISABLE=1, before cuInit, a failed start) every
 * wrapper is a plain call of the driver.
 */
#include <errno.h>
#include <string.h>

#include "interpose.h"

#define NOT_THERE	CUDA_ERROR_NOT_FOUND	/* the driver lacks the entry point */

/* --- work submission: the gate, nothing else --- */

#define GATED(name, pfn, params, args)						\
	CUresult w_##name params							\
	{									\
		struct gmig_gate *g;						\
		CUresult r;							\
										\
		if (!gmig_cuda_resolve() || !gmig_cu.r_##name)			\
			return NOT_THERE;					\
		g = gmig_cuda_gate();						\
		if (!g)								\
			return gmig_cu.r_##name args;				\
		gmig_gate_enter(g);						\
		r = gmig_cu.r_##name args;					\
		gmig_gate_leave(g);						\
		return r;							\
	}
#define SKIP_C(name, pfn)
GMIG_CUDA_WRAPS(SKIP_C, GATED)

/* The real entry point, or the caller gets NOT_THERE. */
#define REAL(name)								\
	do {									\
		if (!gmig_cuda_resolve() || !gmig_cu.r_##name)			\
			return NOT_THERE;					\
	} while (0)

/* --- entry --- */

CUresult w_cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
	CUresult r;

	REAL(cuGetProcAddress);
	r = gmig_cu.r_cuGetProcAddress(symbol, pfn, cudaVersion, flags);
	if (r == CUDA_SUCCESS && pfn && !gmig_cuda_disabled())
		*pfn = gmig_cuda_wrapper_for(*pfn);
	return r;
}

CUresult w_cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
			       CUdriverProcAddressQueryResult *symbolStatus)
{
	CUresult r;

	REAL(cuGetProcAddress_v2);
	r = gmig_cu.r_cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, symbolStatus);
	if (r == CUDA_SUCCESS && pfn && !gmig_cuda_disabled())
		*pfn = gmig_cuda_wrapper_for(*pfn);
	return r;
}

CUresult w_cuInit(unsigned int Flags)
{
	CUresult r;

	REAL(cuInit);
	r = gmig_cu.r_cuInit(Flags);
	if (r == CUDA_SUCCESS && !gmig_cuda_disabled())
		gmig_cuda_start();
	return r;
}

/* --- identity: after a move the driver still reports the old GPU's PCI address --- */

CUresult w_cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
	struct gmig_cudabe *cb;
	CUresult r;

	REAL(cuDeviceGetPCIBusId);
	r = gmig_cu.r_cuDeviceGetPCIBusId(pciBusId, len, dev);
	cb = gmig_cuda_be();
	if (r == CUDA_SUCCESS && cb)
		gmig_cudabe_busid(cb, dev, pciBusId, len);
	return r;
}

CUresult w_cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
	struct gmig_cudabe *cb;
	CUresult r;

	REAL(cuDeviceGetAttribute);
	r = gmig_cu.r_cuDeviceGetAttribute(pi, attrib, dev);
	cb = gmig_cuda_be();
	if (r == CUDA_SUCCESS && cb)
		gmig_cudabe_pci_attr(cb, dev, attrib, pi);
	return r;
}

/* --- memory: cuMemAlloc is served from the arena, at addresses that survive a move --- */

/*
 * Serves an allocation from the arena when the calling thread's context is
 * on the arena's GPU; CUDA_ERROR_NOT_SUPPORTED when the driver must serve
 * it instead (core off, another GPU). Decided inside the gate, so never
 * while the program is released.
 */
static CUresult arena_alloc(CUdeviceptr *dptr, size_t bytes)
{
	struct gmig_gate *g = gmig_cuda_gate();
	struct gmig_cudabe *cb = gmig_cuda_be();
	struct gmig_umd *u = gmig_cuda_umd();
	CUresult r = CUDA_ERROR_NOT_SUPPORTED;
	uint64_t va;
	CUdevice d;
	int err;

	if (!g || !cb || !u || !gmig_cu.r_cuCtxGetDevice)
		return r;
	gmig_gate_enter(g);
	/* The arena's granules are on one GPU: a context on another gets the driver's memory. */
	if (gmig_cu.r_cuCtxGetDevice(&d) == CUDA_SUCCESS && d == atomic_load(&cb->ordinal)) {
		err = gmig_arena_alloc(&u->arena, bytes, &va);
		r = !err ? CUDA_SUCCESS : err == -ENOMEM ? CUDA_ERROR_OUT_OF_MEMORY :
		    err == -EINVAL ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_UNKNOWN;
		if (!err)
			*dptr = va;
	}
	gmig_gate_leave(g);
	return r;
}

CUresult w_cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
	CUresult r = CUDA_ERROR_NOT_SUPPORTED;

	REAL(cuMemAlloc_v2);
	if (dptr && bytesize)
		r = arena_alloc(dptr, bytesize);
	return r == CUDA_ERROR_NOT_SUPPORTED ? gmig_cu.r_cuMemAlloc_v2(dptr, bytesize) : r;
}

/* Rows of a pitched allocation start at this alignment (the driver's texture pitch alignment on current GPUs). */
#define PITCH_ALIGN	512u

CUresult w_cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
			      unsigned int ElementSizeBytes)
{
	CUresult r = CUDA_ERROR_NOT_SUPPORTED;
	size_t pitch;

	REAL(cuMemAllocPitch_v2);
	if (dptr && pPitch && WidthInBytes && Height && WidthInBytes <= SIZE_MAX - PITCH_ALIGN &&
	    (ElementSizeBytes == 4 || ElementSizeBytes == 8 || ElementSizeBytes == 16)) {
		pitch = (WidthInBytes + PITCH_ALIGN - 1) / PITCH_ALIGN * PITCH_ALIGN;
		if (Height > SIZE_MAX / pitch)
			return CUDA_ERROR_OUT_OF_MEMORY;
		r = arena_alloc(dptr, pitch * Height);
		if (r == CUDA_SUCCESS)
			*pPitch = pitch;
	}
	if (r == CUDA_ERROR_NOT_SUPPORTED)
		return gmig_cu.r_cuMemAllocPitch_v2(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
	return r;
}

/* The core when va lies in the arena's reservation, else NULL. */
static struct gmig_umd *arena_of(CUdeviceptr va)
{
	struct gmig_umd *u = gmig_cuda_umd();

	return u && va >= u->arena.va && va - u->arena.va < u->arena.size ? u : NULL;
}

CUresult w_cuMemFree_v2(CUdeviceptr dptr)
{
	struct gmig_umd *u;
	int err;

	REAL(cuMemFree_v2);
	u = arena_of(dptr);
	if (!u)
		return gmig_cu.r_cuMemFree_v2(dptr);
	/* As the driver's free does: work queued before it may still use the memory. */
	if (gmig_cu.r_cuCtxSynchronize)
		gmig_cu.r_cuCtxSynchronize();
	gmig_gate_enter(&u->gate);
	err = gmig_arena_free(&u->arena, dptr);
	gmig_gate_leave(&u->gate);
	return err ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

CUresult w_cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
	struct gmig_umd *u;
	uint64_t base, size;

	REAL(cuMemGetAddressRange_v2);
	u = arena_of(dptr);
	if (!u)
		return gmig_cu.r_cuMemGetAddressRange_v2(pbase, psize, dptr);
	if (gmig_arena_find(&u->arena, dptr, &base, &size))
		return CUDA_ERROR_NOT_FOUND;
	if (pbase)
		*pbase = base;
	if (psize)
		*psize = size;
	return CUDA_SUCCESS;
}

/* --- streams: tracked for drains and for the frozen blob; made and ended at safe points --- */

/* Runs call inside the gate when the core is on; its result in r. */
#define AT_SAFE_POINT(r, call)							\
	do {									\
		struct gmig_gate *g_ = gmig_cuda_gate();			\
										\
		if (g_)								\
			gmig_gate_enter(g_);					\
		r = call;							\
		if (g_)								\
			gmig_gate_leave(g_);					\
	} while (0)

static void stream_made(CUresult r, CUstream *ph)
{
	struct gmig_cudabe *cb = gmig_cuda_be();

	if (r == CUDA_SUCCESS && cb && ph)
		gmig_cudabe_stream_add(cb, *ph);
}

CUresult w_cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
	CUresult r;

	REAL(cuStreamCreate);
	AT_SAFE_POINT(r, gmig_cu.r_cuStreamCreate(phStream, Flags));
	stream_made(r, phStream);
	return r;
}

CUresult w_cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority)
{
	CUresult r;

	REAL(cuStreamCreateWithPriority);
	AT_SAFE_POINT(r, gmig_cu.r_cuStreamCreateWithPriority(phStream, flags, priority));
	stream_made(r, phStream);
	return r;
}

CUresult w_cuStreamDestroy_v2(CUstream hStream)
{
	struct gmig_cudabe *cb;
	CUresult r;

	REAL(cuStreamDestroy_v2);
	AT_SAFE_POINT(r, gmig_cu.r_cuStreamDestroy_v2(hStream));
	cb = gmig_cuda_be();
	if (r == CUDA_SUCCESS && cb) {
		gmig_cudabe_stream_del(cb, hStream);
		gmig_cudabe_capture(cb, hStream, false);
	}
	return r;
}

/* --- stream capture: a freeze is refused while one is open --- */

static CUresult captured(CUresult r, CUstream s, bool open)
{
	struct gmig_cudabe *cb = gmig_cuda_be();

	if (cb && (r == CUDA_SUCCESS || !open))
		gmig_cudabe_capture(cb, s, open);
	return r;
}

#define BEGIN_CAPTURE(name, params, call, stream)				\
	CUresult w_##name params						\
	{									\
		CUresult r;							\
										\
		REAL(name);							\
		AT_SAFE_POINT(r, call);						\
		return captured(r, stream, true);				\
	}

BEGIN_CAPTURE(cuStreamBeginCapture, (CUstream hStream),
	      gmig_cu.r_cuStreamBeginCapture(hStream), hStream)
BEGIN_CAPTURE(cuStreamBeginCapture_ptsz, (CUstream hStream),
	      gmig_cu.r_cuStreamBeginCapture_ptsz(hStream), hStream)
BEGIN_CAPTURE(cuStreamBeginCapture_v2, (CUstream hStream, CUstreamCaptureMode mode),
	      gmig_cu.r_cuStreamBeginCapture_v2(hStream, mode), hStream)
BEGIN_CAPTURE(cuStreamBeginCapture_v2_ptsz, (CUstream hStream, CUstreamCaptureMode mode),
	      gmig_cu.r_cuStreamBeginCapture_v2_ptsz(hStream, mode), hStream)
BEGIN_CAPTURE(cuStreamBeginCaptureToGraph,
	      (CUstream hStream, CUgraph hGraph, const CUgraphNode *dependencies,
	       const CUgraphEdgeData *dependencyData, size_t numDependencies, CUstreamCaptureMode mode),
	      gmig_cu.r_cuStreamBeginCaptureToGraph(hStream, hGraph, dependencies, dependencyData,
						    numDependencies, mode), hStream)
BEGIN_CAPTURE(cuStreamBeginCaptureToGraph_ptsz,
	      (CUstream hStream, CUgraph hGraph, const CUgraphNode *dependencies,
	       const CUgraphEdgeData *dependencyData, size_t numDependencies, CUstreamCaptureMode mode),
	      gmig_cu.r_cuStreamBeginCaptureToGraph_ptsz(hStream, hGraph, dependencies, dependencyData,
							 numDependencies, mode), hStream)

/* Ending a capture is no submission: it never waits at the gate. */
CUresult w_cuStreamEndCapture(CUstream hStream, CUgraph *phGraph)
{
	REAL(cuStreamEndCapture);
	return captured(gmig_cu.r_cuStreamEndCapture(hStream, phGraph), hStream, false);
}

CUresult w_cuStreamEndCapture_ptsz(CUstream hStream, CUgraph *phGraph)
{
	REAL(cuStreamEndCapture_ptsz);
	return captured(gmig_cu.r_cuStreamEndCapture_ptsz(hStream, phGraph), hStream, false);
}

/*
 * (Every macro here spells name with # or ## only: cuda.h defines some
 * entry point names as macros, which must not expand.)
 *
 * The exported symbols: a program linked against libcuda with libgmig
 * preloaded binds these. The assembler name is the driver's (cuda.h
 * turns some names into macros, so they are never spelled out in C).
 */
#define EXPORT_C(name, pfn)							\
	extern __typeof__(w_##name) gmig_export_##name __asm__(#name)		\
		__attribute__((alias("w_" #name), visibility("default")));
#define EXPORT_G(name, pfn, params, args)					\
	extern __typeof__(w_##name) gmig_export_##name __asm__(#name)		\
		__attribute__((alias("w_" #name), visibility("default")));
GMIG_CUDA_WRAPS(EXPORT_C, EXPORT_G)
