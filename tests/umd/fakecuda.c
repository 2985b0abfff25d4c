/*
 * A fake CUDA driver for libgmig's tests where no GPU is: built as
 * libcuda.so.1 in the test directory, two "GPUs" whose memory is a memfd
 * each, VMM calls over host mappings, copies as memcpy, the fingerprint
 * kernel run as XXH3 on the CPU, and a checkpoint API that moves mappings
 * between the two and, like the real one, leaves the PCI bus id stale.
 * Device pointers are host addresses. Environment: FAKECUDA_NO_CKPT=1
 * hides the checkpoint API, FAKECUDA_CHIP1=name makes GPU 1 another chip.
 */
#include <cuda.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

/* Per-thread variants cuda.h declares only for programs built for them. */
CUresult cuEventRecord_ptsz(CUevent e, CUstream s);
CUresult cuStreamBeginCapture_v2_ptsz(CUstream s, CUstreamCaptureMode m);
CUresult cuStreamEndCapture_ptsz(CUstream s, CUgraph *g);
CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
			     unsigned bz, unsigned shm, CUstream s, void **params, void **extra);

#define NDEV		2
#define DEV_MEM		(64ull << 20)
#define GRAN		(2ull << 20)
#define NGRAN		(DEV_MEM / GRAN)
#define FP_KERNEL	"gmig_xxh3_chunks"

#define API	__attribute__((visibility("default")))

struct fdev {
	char name[64];
	CUuuid uuid;
	int memfd;
	uint8_t used[NGRAN];
};

struct fctx {
	int ordinal;
};

struct fstream {
	struct fctx *ctx;
	int capturing;
};

struct falloc {
	int phys;
	uint64_t off, size;
	uintptr_t va;		/* mapped here, 0 if not */
	struct falloc *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fdev phys[NDEV];
static int ord2phys[NDEV] = { 0, 1 };
static struct fctx ctxs[NDEV] = { { 0 }, { 1 } };
static struct falloc *allocs;
static int inited, ckpt_state, restores;
static int fp_kernel_tag, lib_tag;
static __thread struct fctx *cur;
static __thread struct fctx *stack[8];
static __thread int depth;

/*
 * Stream capture in the global mode, as the driver enforces it: while one is
 * open, a potentially unsafe call from another thread that has not switched
 * to the relaxed mode invalidates it (the capture's EndCapture then fails).
 */
static __thread CUstreamCaptureMode capture_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
static pthread_t global_owner;
static int global_open, global_broken;

static CUresult unsafe_call(void)
{
	if (!__atomic_load_n(&global_open, __ATOMIC_SEQ_CST) ||
	    capture_mode == CU_STREAM_CAPTURE_MODE_RELAXED || pthread_equal(pthread_self(), global_owner))
		return CUDA_SUCCESS;
	__atomic_store_n(&global_broken, 1, __ATOMIC_SEQ_CST);
	return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

API CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
	CUstreamCaptureMode old = capture_mode;

	capture_mode = *mode;
	*mode = old;
	return CUDA_SUCCESS;
}

static void setup(void)
{
	const char *chip1 = getenv("FAKECUDA_CHIP1");

	if (inited)
		return;
	for (int i = 0; i < NDEV; i++) {
		strcpy(phys[i].name, i == 1 && chip1 ? chip1 : "Fake GPU H0");
		for (int k = 0; k < 16; k++)
			phys[i].uuid.bytes[k] = (char)(0x10 * (i + 1) + k);
		phys[i].memfd = memfd_create("fakegpu", 0);
		if (phys[i].memfd < 0 || ftruncate(phys[i].memfd, DEV_MEM))
			abort();
	}
	inited = 1;
}

/* --- entry --- */

API CUresult cuInit(unsigned int flags)
{
	(void)flags;
	pthread_mutex_lock(&lock);
	setup();
	pthread_mutex_unlock(&lock);
	return CUDA_SUCCESS;
}

API CUresult cuDriverGetVersion(int *v)
{
	*v = 13000;
	return CUDA_SUCCESS;
}

API CUresult cuGetErrorName(CUresult r, const char **s)
{
	*s = r == CUDA_SUCCESS ? "CUDA_SUCCESS" : "CUDA_ERROR_FAKE";
	return CUDA_SUCCESS;
}

/* --- devices: identity follows the GPU, the PCI bus id stays with the ordinal (as the real driver) --- */

API CUresult cuDeviceGetCount(int *n)
{
	*n = NDEV;
	return CUDA_SUCCESS;
}

API CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
	if (ordinal < 0 || ordinal >= NDEV)
		return CUDA_ERROR_INVALID_DEVICE;
	*d = ordinal;
	return CUDA_SUCCESS;
}

API CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d)
{
	if (d < 0 || d >= NDEV)
		return CUDA_ERROR_INVALID_DEVICE;
	*u = phys[ord2phys[d]].uuid;
	return CUDA_SUCCESS;
}

API CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
	if (d < 0 || d >= NDEV || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	strncpy(name, phys[ord2phys[d]].name, (size_t)len - 1);
	name[len - 1] = '\0';
	return CUDA_SUCCESS;
}

API CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d)
{
	if (d < 0 || d >= NDEV || len < 13)
		return CUDA_ERROR_INVALID_VALUE;
	strcpy(id, d == 0 ? "0000:00:0A.0" : "0000:00:0B.0");
	return CUDA_SUCCESS;
}

API CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice d)
{
	if (d < 0 || d >= NDEV)
		return CUDA_ERROR_INVALID_DEVICE;
	switch (a) {
	case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID:
		*v = 0;
		break;
	case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID:
		*v = 0;
		break;
	case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID:
		*v = d == 0 ? 10 : 11;
		break;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
		*v = 9;
		break;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
		*v = 0;
		break;
	default:
		*v = 1;
	}
	return CUDA_SUCCESS;
}

API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d)
{
	(void)d;
	*bytes = DEV_MEM;
	return CUDA_SUCCESS;
}

/* --- contexts --- */

API CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d)
{
	if (d < 0 || d >= NDEV)
		return CUDA_ERROR_INVALID_DEVICE;
	*c = (CUcontext)&ctxs[d];
	return CUDA_SUCCESS;
}

API CUresult cuCtxSetCurrent(CUcontext c)
{
	cur = (struct fctx *)c;
	return CUDA_SUCCESS;
}

API CUresult cuCtxGetCurrent(CUcontext *c)
{
	*c = (CUcontext)cur;
	return CUDA_SUCCESS;
}

API CUresult cuCtxPushCurrent_v2(CUcontext c)
{
	if (depth == 8)
		return CUDA_ERROR_INVALID_VALUE;
	stack[depth++] = cur;
	cur = (struct fctx *)c;
	return CUDA_SUCCESS;
}

API CUresult cuCtxPopCurrent_v2(CUcontext *c)
{
	if (!depth)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (c)
		*c = (CUcontext)cur;
	cur = stack[--depth];
	return CUDA_SUCCESS;
}

API CUresult cuCtxGetDevice(CUdevice *d)
{
	if (!cur)
		return CUDA_ERROR_INVALID_CONTEXT;
	*d = cur->ordinal;
	return CUDA_SUCCESS;
}

API CUresult cuCtxSynchronize(void)
{
	return CUDA_SUCCESS;
}

/* --- memory the driver allocates itself --- */

API CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n)
{
	if (unsafe_call())
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	void *m;

	if (!cur)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!n)
		return CUDA_ERROR_INVALID_VALUE;
	m = aligned_alloc(256, (n + 255) & ~(size_t)255);
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*p = (uintptr_t)m;
	return CUDA_SUCCESS;
}

API CUresult cuMemAllocPitch_v2(CUdeviceptr *p, size_t *pitch, size_t w, size_t h, unsigned int e)
{
	(void)e;
	*pitch = (w + 511) & ~(size_t)511;
	return cuMemAlloc_v2(p, *pitch * h);
}

API CUresult cuMemFree_v2(CUdeviceptr p)
{
	free((void *)p);
	return CUDA_SUCCESS;
}

API CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr p)
{
	(void)base;
	(void)size;
	(void)p;
	return CUDA_ERROR_NOT_FOUND;
}

API CUresult cuMemAllocHost_v2(void **p, size_t n)
{
	*p = malloc(n);
	return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

API CUresult cuMemFreeHost(void *p)
{
	free(p);
	return CUDA_SUCCESS;
}

API CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned int flags)
{
	if (unsafe_call())
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	(void)p;
	(void)n;
	(void)flags;
	return CUDA_SUCCESS;
}

API CUresult cuMemHostUnregister(void *p)
{
	(void)p;
	return CUDA_SUCCESS;
}

/* --- virtual memory management over host mappings --- */

API CUresult cuMemGetAllocationGranularity(size_t *g, const CUmemAllocationProp *prop,
					    CUmemAllocationGranularity_flags o)
{
	(void)prop;
	(void)o;
	*g = GRAN;
	return CUDA_SUCCESS;
}

API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t align, CUdeviceptr addr,
				 unsigned long long flags)
{
	uint8_t *p, *start;

	(void)addr;
	(void)flags;
	if (!align)
		align = GRAN;
	p = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return CUDA_ERROR_OUT_OF_MEMORY;
	start = (uint8_t *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (start > p)
		munmap(p, (size_t)(start - p));
	munmap(start + size, align - (size_t)(start - p));
	*ptr = (uintptr_t)start;
	return CUDA_SUCCESS;
}

API CUresult cuMemAddressFree(CUdeviceptr p, size_t size)
{
	munmap((void *)p, size);
	return CUDA_SUCCESS;
}

API CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size, const CUmemAllocationProp *prop,
			 unsigned long long flags)
{
	uint64_t need = size / GRAN;
	struct falloc *a;
	struct fdev *d;

	(void)flags;
	if (!size || size % GRAN || prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
	    prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE || prop->location.id < 0 ||
	    prop->location.id >= NDEV)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&lock);
	d = &phys[ord2phys[prop->location.id]];
	for (uint64_t g = 0; g + need <= NGRAN; g++) {
		uint64_t k = 0;

		while (k < need && !d->used[g + k])
			k++;
		if (k < need)
			continue;
		memset(&d->used[g], 1, need);
		a = calloc(1, sizeof(*a));
		a->phys = ord2phys[prop->location.id];
		a->off = g * GRAN;
		a->size = size;
		a->next = allocs;
		allocs = a;
		*h = (uintptr_t)a;
		pthread_mutex_unlock(&lock);
		return CUDA_SUCCESS;
	}
	pthread_mutex_unlock(&lock);
	return CUDA_ERROR_OUT_OF_MEMORY;
}

API CUresult cuMemRelease(CUmemGenericAllocationHandle h)
{
	struct falloc *a = (struct falloc *)h, **pp;

	pthread_mutex_lock(&lock);
	for (pp = &allocs; *pp && *pp != a; pp = &(*pp)->next)
		;
	if (!*pp) {
		pthread_mutex_unlock(&lock);
		return CUDA_ERROR_INVALID_VALUE;
	}
	*pp = a->next;
	memset(&phys[a->phys].used[a->off / GRAN], 0, a->size / GRAN);
	pthread_mutex_unlock(&lock);
	free(a);
	return CUDA_SUCCESS;
}

/* Maps a at va, inaccessible until cuMemSetAccess, as the real driver. Under the lock. */
static int map_at(struct falloc *a, uintptr_t va)
{
	if (mmap((void *)va, a->size, PROT_NONE, MAP_SHARED | MAP_FIXED, phys[a->phys].memfd,
		 (off_t)a->off) == MAP_FAILED)
		return -errno;
	a->va = va;
	return 0;
}

API CUresult cuMemMap(CUdeviceptr va, size_t size, size_t off, CUmemGenericAllocationHandle h,
		      unsigned long long flags)
{
	struct falloc *a = (struct falloc *)h;
	CUresult r = CUDA_SUCCESS;

	(void)flags;
	if (off || size != a->size || va % GRAN)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&lock);
	if (a->va || map_at(a, va))
		r = CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_unlock(&lock);
	return r;
}

API CUresult cuMemSetAccess(CUdeviceptr va, size_t size, const CUmemAccessDesc *desc, size_t count)
{
	if (count != 1 || desc->flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
		return CUDA_ERROR_INVALID_VALUE;
	return mprotect((void *)va, size, PROT_READ | PROT_WRITE) ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

API CUresult cuMemUnmap(CUdeviceptr va, size_t size)
{
	pthread_mutex_lock(&lock);
	for (struct falloc *a = allocs; a; a = a->next)
		if (a->va == va)
			a->va = 0;
	pthread_mutex_unlock(&lock);
	if (mmap((void *)va, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		 -1, 0) == MAP_FAILED)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

/* --- copies: device pointers are host addresses --- */

API CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n)
{
	memcpy((void *)d, s, n);
	return CUDA_SUCCESS;
}

API CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n)
{
	if (unsafe_call())
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	memcpy(d, (const void *)s, n);
	return CUDA_SUCCESS;
}

API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, CUstream st)
{
	(void)st;
	return cuMemcpyHtoD_v2(d, s, n);
}

API CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, CUstream st)
{
	(void)st;
	return cuMemcpyDtoH_v2(d, s, n);
}

API CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n)
{
	memset((void *)d, v, n);
	return CUDA_SUCCESS;
}

API CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream st)
{
	(void)st;
	return cuMemsetD8_v2(d, v, n);
}

/* --- streams, events, capture --- */

API CUresult cuStreamCreate(CUstream *s, unsigned int flags)
{
	struct fstream *f;

	(void)flags;
	if (!cur)
		return CUDA_ERROR_INVALID_CONTEXT;
	f = calloc(1, sizeof(*f));
	f->ctx = cur;
	*s = (CUstream)f;
	return CUDA_SUCCESS;
}

API CUresult cuStreamCreateWithPriority(CUstream *s, unsigned int flags, int prio)
{
	(void)prio;
	return cuStreamCreate(s, flags);
}

API CUresult cuStreamDestroy_v2(CUstream s)
{
	free(s);
	return CUDA_SUCCESS;
}

API CUresult cuStreamGetCtx(CUstream s, CUcontext *c)
{
	*c = (CUcontext)((struct fstream *)s)->ctx;
	return CUDA_SUCCESS;
}

API CUresult cuStreamSynchronize(CUstream s)
{
	if (unsafe_call())
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	(void)s;
	return CUDA_SUCCESS;
}

API CUresult cuStreamQuery(CUstream s)
{
	(void)s;
	return CUDA_SUCCESS;
}

API CUresult cuEventCreate(CUevent *e, unsigned int flags)
{
	(void)flags;
	*e = (CUevent)malloc(8);
	return CUDA_SUCCESS;
}

API CUresult cuEventRecord(CUevent e, CUstream s)
{
	(void)e;
	(void)s;
	return cur ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

API CUresult cuEventRecord_ptsz(CUevent e, CUstream s)
{
	return cuEventRecord(e, s);
}

API CUresult cuEventQuery(CUevent e)
{
	(void)e;
	return CUDA_SUCCESS;
}

API CUresult cuEventDestroy_v2(CUevent e)
{
	free(e);
	return CUDA_SUCCESS;
}

static CUresult begin(CUstream s)
{
	struct fstream *f = (struct fstream *)s;

	if (!f || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD || f->capturing)
		return CUDA_ERROR_ILLEGAL_STATE;
	f->capturing = 1;
	return CUDA_SUCCESS;
}

static CUresult end(CUstream s, CUgraph *g)
{
	struct fstream *f = (struct fstream *)s;

	if (!f || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD || !f->capturing)
		return CUDA_ERROR_ILLEGAL_STATE;
	if (f->capturing == 2) {
		__atomic_store_n(&global_open, 0, __ATOMIC_SEQ_CST);
		if (global_broken) {
			f->capturing = 0;
			return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
		}
	}
	f->capturing = 0;
	*g = (CUgraph)f;
	return CUDA_SUCCESS;
}

API CUresult cuStreamBeginCapture_v2(CUstream s, CUstreamCaptureMode m)
{
	CUresult r = begin(s);

	if (r == CUDA_SUCCESS && m == CU_STREAM_CAPTURE_MODE_GLOBAL) {
		((struct fstream *)s)->capturing = 2;
		global_owner = pthread_self();
		global_broken = 0;
		__atomic_store_n(&global_open, 1, __ATOMIC_SEQ_CST);
	}
	return r;
}

API CUresult cuStreamBeginCapture_v2_ptsz(CUstream s, CUstreamCaptureMode m)
{
	(void)m;
	return begin(s);
}

API CUresult cuStreamEndCapture(CUstream s, CUgraph *g)
{
	return end(s, g);
}

API CUresult cuStreamEndCapture_ptsz(CUstream s, CUgraph *g)
{
	return end(s, g);
}

/* --- code: the fingerprint kernel runs here; any other "kernel" is a host function of the params --- */

API CUresult cuLibraryLoadData(CUlibrary *lib, const void *code, CUjit_option *jo, void **jv, unsigned int njo,
			       CUlibraryOption *lo, void **lv, unsigned int nlo)
{
	(void)jo;
	(void)jv;
	(void)njo;
	(void)lo;
	(void)lv;
	(void)nlo;
	/* A fatbin starts with its magic. */
	if (!code || *(const uint32_t *)code != 0xBA55ED50u)
		return CUDA_ERROR_INVALID_IMAGE;
	*lib = (CUlibrary)&lib_tag;
	return CUDA_SUCCESS;
}

API CUresult cuLibraryGetKernel(CUkernel *k, CUlibrary lib, const char *name)
{
	if (lib != (CUlibrary)&lib_tag || strcmp(name, FP_KERNEL))
		return CUDA_ERROR_NOT_FOUND;
	*k = (CUkernel)&fp_kernel_tag;
	return CUDA_SUCCESS;
}

static CUresult launch(CUfunction f, void **params)
{
	if (f == (CUfunction)&fp_kernel_tag) {
		const uint8_t *base = *(const uint8_t **)params[0];
		uint64_t len = *(uint64_t *)params[1], k = *(uint64_t *)params[3];
		uint32_t chunk = *(uint32_t *)params[2];
		uint64_t *out = *(uint64_t **)params[4];

		for (uint64_t c = 0; c < k; c++) {
			uint64_t n = len - c * chunk < chunk ? len - c * chunk : chunk;

			out[c] = n > 240 ? XXH3_64bits(base + c * chunk, n) : 0;
		}
		return CUDA_SUCCESS;
	}
	((void (*)(void **))(void *)f)(params);
	return CUDA_SUCCESS;
}

API CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
			    unsigned bz, unsigned shm, CUstream s, void **params, void **extra)
{
	if (unsafe_call())
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	(void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)shm, (void)s, (void)extra;
	return launch(f, params);
}

API CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
				 unsigned by, unsigned bz, unsigned shm, CUstream s, void **params, void **extra)
{
	(void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)shm, (void)s, (void)extra;
	return launch(f, params);
}

/* --- the checkpoint API: Restore moves every mapping to the GPU its ordinal is paired with --- */

API CUresult cuCheckpointProcessLock(int pid, CUcheckpointLockArgs *args)
{
	(void)args;
	if (pid != getpid() || ckpt_state != CU_PROCESS_STATE_RUNNING)
		return CUDA_ERROR_ILLEGAL_STATE;
	ckpt_state = CU_PROCESS_STATE_LOCKED;
	return CUDA_SUCCESS;
}

API CUresult cuCheckpointProcessCheckpoint(int pid, CUcheckpointCheckpointArgs *args)
{
	(void)args;
	if (pid != getpid() || ckpt_state != CU_PROCESS_STATE_LOCKED)
		return CUDA_ERROR_ILLEGAL_STATE;
	ckpt_state = CU_PROCESS_STATE_CHECKPOINTED;
	return CUDA_SUCCESS;
}

static int phys_of_uuid(const CUuuid *u)
{
	for (int i = 0; i < NDEV; i++)
		if (!memcmp(phys[i].uuid.bytes, u->bytes, 16))
			return i;
	return -1;
}

/* Moves a live mapping's bytes to GPU to. Under the lock. */
static int move_alloc(struct falloc *a, int to)
{
	struct fdev *d = &phys[to];
	uint64_t need = a->size / GRAN;

	for (uint64_t g = 0; g + need <= NGRAN; g++) {
		uint64_t k = 0;
		void *old;

		while (k < need && !d->used[g + k])
			k++;
		if (k < need)
			continue;
		memset(&d->used[g], 1, need);
		memset(&phys[a->phys].used[a->off / GRAN], 0, need);
		if (pwrite(d->memfd, (void *)a->va, a->size, (off_t)(g * GRAN)) != (ssize_t)a->size)
			return -EIO;
		old = (void *)a->va;
		a->phys = to;
		a->off = g * GRAN;
		if (map_at(a, (uintptr_t)old) || mprotect(old, a->size, PROT_READ | PROT_WRITE))
			return -EIO;
		return 0;
	}
	return -ENOMEM;
}

API CUresult cuCheckpointProcessRestore(int pid, CUcheckpointRestoreArgs *args)
{
	int to[NDEV];

	if (pid != getpid() || ckpt_state != CU_PROCESS_STATE_CHECKPOINTED)
		return CUDA_ERROR_ILLEGAL_STATE;
	for (int p = 0; p < NDEV; p++)
		to[p] = p;
	if (args && args->gpuPairsCount) {
		int seen_old[NDEV] = { 0 }, seen_new[NDEV] = { 0 };

		/* Every checkpointed GPU, a permutation: a single pair is refused, as by the real driver. */
		if (args->gpuPairsCount != NDEV)
			return CUDA_ERROR_INVALID_VALUE;
		for (unsigned i = 0; i < args->gpuPairsCount; i++) {
			int o = phys_of_uuid(&args->gpuPairs[i].oldUuid), n = phys_of_uuid(&args->gpuPairs[i].newUuid);

			if (o < 0 || n < 0 || seen_old[o]++ || seen_new[n]++)
				return CUDA_ERROR_INVALID_VALUE;
			if (strcmp(phys[o].name, phys[n].name))
				return CUDA_ERROR_INVALID_DEVICE;
			to[o] = n;
		}
	}
	pthread_mutex_lock(&lock);
	for (struct falloc *a = allocs; a; a = a->next)
		if (a->va && to[a->phys] != a->phys && move_alloc(a, to[a->phys])) {
			pthread_mutex_unlock(&lock);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
	for (int o = 0; o < NDEV; o++)
		ord2phys[o] = to[ord2phys[o]];
	restores++;
	pthread_mutex_unlock(&lock);
	ckpt_state = CU_PROCESS_STATE_LOCKED;
	return CUDA_SUCCESS;
}

API CUresult cuCheckpointProcessUnlock(int pid, CUcheckpointUnlockArgs *args)
{
	(void)args;
	if (pid != getpid() || ckpt_state != CU_PROCESS_STATE_LOCKED)
		return CUDA_ERROR_ILLEGAL_STATE;
	ckpt_state = CU_PROCESS_STATE_RUNNING;
	return CUDA_SUCCESS;
}

API CUresult cuCheckpointProcessGetState(int pid, CUprocessState *s)
{
	(void)pid;
	*s = (CUprocessState)ckpt_state;
	return CUDA_SUCCESS;
}

/* --- cuGetProcAddress: a name (and the per-thread flag) to an exported variant --- */

#define PROCS(P)								\
	P(cuInit, cuInit, NULL)							\
	P(cuGetProcAddress, cuGetProcAddress_v2, NULL)				\
	P(cuDeviceGet, cuDeviceGet, NULL)					\
	P(cuDeviceGetCount, cuDeviceGetCount, NULL)				\
	P(cuDeviceGetUuid, cuDeviceGetUuid_v2, NULL)				\
	P(cuDeviceGetPCIBusId, cuDeviceGetPCIBusId, NULL)			\
	P(cuDeviceGetAttribute, cuDeviceGetAttribute, NULL)			\
	P(cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRetain, NULL)		\
	P(cuCtxSetCurrent, cuCtxSetCurrent, NULL)				\
	P(cuCtxGetDevice, cuCtxGetDevice, NULL)					\
	P(cuMemAlloc, cuMemAlloc_v2, NULL)					\
	P(cuMemAllocPitch, cuMemAllocPitch_v2, NULL)				\
	P(cuMemFree, cuMemFree_v2, NULL)					\
	P(cuMemGetAddressRange, cuMemGetAddressRange_v2, NULL)			\
	P(cuMemcpyHtoD, cuMemcpyHtoD_v2, NULL)					\
	P(cuMemcpyDtoH, cuMemcpyDtoH_v2, NULL)					\
	P(cuStreamCreate, cuStreamCreate, NULL)					\
	P(cuStreamDestroy, cuStreamDestroy_v2, NULL)				\
	P(cuStreamBeginCapture, cuStreamBeginCapture_v2, cuStreamBeginCapture_v2_ptsz)	\
	P(cuStreamEndCapture, cuStreamEndCapture, cuStreamEndCapture_ptsz)	\
	P(cuEventRecord, cuEventRecord, cuEventRecord_ptsz)			\
	P(cuLaunchKernel, cuLaunchKernel, cuLaunchKernel_ptsz)			\
	P(cuCheckpointProcessLock, cuCheckpointProcessLock, NULL)		\
	P(cuCheckpointProcessCheckpoint, cuCheckpointProcessCheckpoint, NULL)	\
	P(cuCheckpointProcessRestore, cuCheckpointProcessRestore, NULL)		\
	P(cuCheckpointProcessUnlock, cuCheckpointProcessUnlock, NULL)		\
	P(cuCheckpointProcessGetState, cuCheckpointProcessGetState, NULL)

API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int ver, cuuint64_t flags,
				 CUdriverProcAddressQueryResult *status);

static const struct proc {
	const char *name;
	void *legacy, *ptds;
} procs[] = {
#define ROW(name, legacy, ptds)	{ #name, (void *)legacy, (void *)ptds },
	PROCS(ROW)
};

/* For the tests: this library's own cuGetProcAddress_v2, which fake GPU a mapping is on (-1 none), restores run. */
API void *fakecuda_real_gpa(void);
API int fakecuda_phys_of(uintptr_t va);
API int fakecuda_restores(void);

API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int ver, cuuint64_t flags,
				 CUdriverProcAddressQueryResult *status)
{
	bool no_ckpt = getenv("FAKECUDA_NO_CKPT") && !strncmp(symbol, "cuCheckpoint", 12);

	(void)ver;
	for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]) && !no_ckpt; i++) {
		if (strcmp(procs[i].name, symbol))
			continue;
		*pfn = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && procs[i].ptds ?
			procs[i].ptds : procs[i].legacy;
		if (status)
			*status = CU_GET_PROC_ADDRESS_SUCCESS;
		return CUDA_SUCCESS;
	}
	*pfn = NULL;
	if (status)
		*status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
	return CUDA_ERROR_NOT_FOUND;
}

/* The 4-argument version 1, exported under its own name. */
API CUresult fake_cuGetProcAddress_v1(const char *symbol, void **pfn, int ver, cuuint64_t flags)
	__asm__("cuGetProcAddress");
API CUresult fake_cuGetProcAddress_v1(const char *symbol, void **pfn, int ver, cuuint64_t flags)
{
	return cuGetProcAddress_v2(symbol, pfn, ver, flags, NULL);
}

void *fakecuda_real_gpa(void)
{
	return (void *)cuGetProcAddress_v2;
}

int fakecuda_phys_of(uintptr_t va);
API int fakecuda_restores(void);

int fakecuda_phys_of(uintptr_t va)
{
	int p = -1;

	pthread_mutex_lock(&lock);
	for (struct falloc *a = allocs; a; a = a->next)
		if (a->va && va >= a->va && va < a->va + a->size)
			p = a->phys;
	pthread_mutex_unlock(&lock);
	return p;
}

int fakecuda_restores(void)
{
	return restores;
}
