/*
 * The CUDA backend. Arena granules are VMM allocations mapped at the arena's
 * fixed addresses; everything else the program has on the GPU (cudart's
 * contexts, modules, pools, streams) moves with the driver's checkpoint,
 * which release and attach call on the process's own pid from the link
 * thread. Every driver call goes through the real entry points (gmig_cu).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "clock.h"
#include "cudabe.h"
#include "driver.h"
#include "log.h"
#include "gmig/message.h"

/* The fingerprint kernel, embedded by the build (fingerprint.cu through bin2c). */
#include "fingerprint.fatbin.h"

#define FP_KERNEL	"gmig_xxh3_chunks"
#define FP_THREADS	256			/* 8 warps, 8 chunks per thread block */

struct gmig_bdev {
	struct gmig_cudabe *cb;
	int ordinal;
	int gpu;			/* its index in cb->gpus */
	CUcontext ctx;			/* the device's primary context */
	CUstream streams[GMIG_CUDA_STREAMS];
	CUdeviceptr fp_out;		/* GMIG_CUDA_FP_CHUNKS prints */
	uint64_t *fp_host;
};

/* Logs a failed driver call by name (GMIG_LOG=debug) and says whether it failed. */
static bool failed(CUresult r, const char *call)
{
	if (r == CUDA_SUCCESS)
		return false;
	gmig_log_debug("cuda: %s failed: %s (%d)", call, gmig_cuda_err(r), (int)r);
	return true;
}

#define CU(call)	failed(gmig_cu.r_##call, #call)

static struct gmig_cudabe *cudabe(struct gmig_be *be)
{
	return be->priv;
}

static int find_gpu(const struct gmig_cudabe *cb, const uint8_t *uuid)
{
	for (int i = 0; i < cb->ngpus; i++)
		if (!memcmp(cb->gpus[i].uuid, uuid, GMIG_UUID_SIZE))
			return i;
	return -1;
}

/* The ordinal that is on the GPU uuid now; -1 if none. Under the lock. */
static int ordinal_of(const struct gmig_cudabe *cb, const uint8_t *uuid)
{
	for (int o = 0; o < cb->ngpus; o++)
		if (!memcmp(cb->now[o], uuid, GMIG_UUID_SIZE))
			return o;
	return -1;
}

/* The PCI device id of a GPU, from sysfs; 0 if it cannot be read. */
static uint16_t pci_device_id(const char *pci)
{
	char path[128];
	unsigned v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", pci);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%x", &v) != 1)
		v = 0;
	fclose(f);
	return (uint16_t)v;
}

static int describe(struct gmig_cuda_gpu *g, int ordinal)
{
	CUdevice d;
	CUuuid u;
	size_t mem;

	if (CU(cuDeviceGet(&d, ordinal)) || CU(cuDeviceGetUuid_v2(&u, d)) ||
	    CU(cuDeviceGetName(g->name, sizeof(g->name), d)) ||
	    CU(cuDeviceGetPCIBusId(g->busid, sizeof(g->busid), d)) ||
	    CU(cuDeviceTotalMem_v2(&mem, d)) ||
	    CU(cuDeviceGetAttribute(&g->domain, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, d)) ||
	    CU(cuDeviceGetAttribute(&g->bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, d)) ||
	    CU(cuDeviceGetAttribute(&g->slot, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, d)) ||
	    CU(cuDeviceGetAttribute(&g->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d)) ||
	    CU(cuDeviceGetAttribute(&g->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d)))
		return -EIO;
	memcpy(g->uuid, u.bytes, GMIG_UUID_SIZE);
	g->mem = mem;
	for (size_t i = 0; i < sizeof(g->pci) - 1 && g->busid[i]; i++)
		g->pci[i] = (char)tolower((unsigned char)g->busid[i]);
	g->pci_device = pci_device_id(g->pci);
	return 0;
}

/* Refreshes ordinal -> GPU after the driver moved the process. */
static int refresh_now(struct gmig_cudabe *cb)
{
	int err = 0;

	pthread_mutex_lock(&cb->lock);
	for (int o = 0; o < cb->ngpus; o++) {
		CUdevice d;
		CUuuid u;

		if (CU(cuDeviceGet(&d, o)) || CU(cuDeviceGetUuid_v2(&u, d))) {
			err = -EIO;
			continue;
		}
		memcpy(cb->now[o], u.bytes, GMIG_UUID_SIZE);
	}
	pthread_mutex_unlock(&cb->lock);
	return err;
}

/* --- enumeration --- */

static void to_info(const struct gmig_cuda_gpu *g, struct gmig_bdev_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->uuid, g->uuid, sizeof(out->uuid));
	snprintf(out->name, sizeof(out->name), "%s", g->name);
	snprintf(out->model, sizeof(out->model), "%s", g->name);
	snprintf(out->pci, sizeof(out->pci), "%s", g->pci);
	out->vendor = 0x10de;
	out->device = g->pci_device;
	out->mem_bytes = g->mem;
}

/* From the identities recorded at start: the driver may hold the process (checkpointed) now. */
static int cuda_enumerate(struct gmig_be *be, struct gmig_bdev_info *out, int max)
{
	struct gmig_cudabe *cb = cudabe(be);
	int n = cb->ngpus < max ? cb->ngpus : max;

	for (int i = 0; i < n; i++)
		to_info(&cb->gpus[cb->order[i]], &out[i]);
	return n;
}

static void cuda_info(const struct gmig_bdev *dev, struct gmig_bdev_info *info)
{
	to_info(&dev->cb->gpus[dev->gpu], info);
}

bool gmig_cudabe_can_move(void)
{
	return gmig_cu.r_cuCheckpointProcessLock && gmig_cu.r_cuCheckpointProcessCheckpoint &&
	       gmig_cu.r_cuCheckpointProcessRestore && gmig_cu.r_cuCheckpointProcessUnlock;
}

/* --- attach and release --- */

/*
 * libgmig's own device work (fingerprints, copies, events) runs while the
 * program may hold a stream capture open in the global mode, which would
 * make those calls invalidate the capture: the threads that do it interact
 * with captures in the relaxed mode, set once per thread.
 */
static void relax(void)
{
	static _Thread_local bool relaxed;
	CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;

	if (relaxed || !gmig_cu.r_cuThreadExchangeStreamCaptureMode)
		return;
	relaxed = !CU(cuThreadExchangeStreamCaptureMode(&mode));
}

static bool push(const struct gmig_bdev *dev)
{
	relax();
	return !CU(cuCtxPushCurrent_v2(dev->ctx));
}

static void pop(void)
{
	CUcontext c;

	CU(cuCtxPopCurrent_v2(&c));
}

/* Gives the device's private resources back; the context stays (the program's too). */
static void dev_free(struct gmig_bdev *dev)
{
	if (!dev)
		return;
	if (dev->ctx && push(dev)) {
		for (int i = 0; i < GMIG_CUDA_STREAMS; i++)
			if (dev->streams[i])
				CU(cuStreamDestroy_v2(dev->streams[i]));
		if (dev->fp_out)
			CU(cuMemFree_v2(dev->fp_out));
		if (dev->fp_host)
			CU(cuMemFreeHost(dev->fp_host));
		pop();
	}
	free(dev);
}

static int dev_open(struct gmig_cudabe *cb, int ordinal, struct gmig_bdev **devp)
{
	struct gmig_bdev *dev = calloc(1, sizeof(*dev));
	CUdevice d;
	CUuuid u;
	int err = -EIO;

	if (!dev)
		return -ENOMEM;
	dev->cb = cb;
	dev->ordinal = ordinal;
	if (CU(cuDeviceGet(&d, ordinal)) || CU(cuDeviceGetUuid_v2(&u, d)))
		goto out_free;
	dev->gpu = find_gpu(cb, (const uint8_t *)u.bytes);
	if (dev->gpu < 0)
		goto out_free;
	/* One reference per ordinal, kept: the program's primary context is this one. */
	pthread_mutex_lock(&cb->lock);
	if (!cb->primary[ordinal])
		CU(cuDevicePrimaryCtxRetain(&cb->primary[ordinal], d));
	dev->ctx = cb->primary[ordinal];
	pthread_mutex_unlock(&cb->lock);
	if (!dev->ctx)
		goto out_free;
	if (!push(dev))
		goto out_free;
	for (int i = 0; i < GMIG_CUDA_STREAMS; i++)
		if (CU(cuStreamCreate(&dev->streams[i], CU_STREAM_NON_BLOCKING)))
			goto out_pop;
	if (CU(cuMemAlloc_v2(&dev->fp_out, GMIG_CUDA_FP_CHUNKS * sizeof(uint64_t))) ||
	    CU(cuMemAllocHost_v2((void **)&dev->fp_host, GMIG_CUDA_FP_CHUNKS * sizeof(uint64_t))))
		goto out_pop;
	if (!cb->lib && (CU(cuLibraryLoadData(&cb->lib, gmig_fingerprint_fatbin, NULL, NULL, 0, NULL,
					      NULL, 0)) ||
			 CU(cuLibraryGetKernel(&cb->kern, cb->lib, FP_KERNEL)))) {
		cb->lib = NULL;
		goto out_pop;
	}
	pop();
	*devp = dev;
	return 0;

out_pop:
	pop();
out_free:
	dev_free(dev);
	return err;
}

/*
 * Brings the process back from the driver onto target: Restore with every
 * visible GPU paired (the target with the GPU it was on, each other with
 * itself; no pairs to go back where it was), then Unlock.
 */
static int restore_onto(struct gmig_cudabe *cb, const uint8_t *target)
{
	CUcheckpointGpuPair pairs[GMIG_GPUS_MAX];
	CUcheckpointRestoreArgs args;
	CUcheckpointUnlockArgs unlock;
	const uint8_t *from = cb->released;
	unsigned n = 0;
	int pid = getpid();

	memset(&args, 0, sizeof(args));
	memset(&unlock, 0, sizeof(unlock));
	if (memcmp(from, target, GMIG_UUID_SIZE)) {
		pthread_mutex_lock(&cb->lock);
		for (int o = 0; o < cb->ngpus; o++) {
			const uint8_t *u = cb->now[o], *to = u;

			if (!memcmp(u, from, GMIG_UUID_SIZE))
				to = target;
			else if (!memcmp(u, target, GMIG_UUID_SIZE))
				to = from;
			memcpy(pairs[n].oldUuid.bytes, u, GMIG_UUID_SIZE);
			memcpy(pairs[n].newUuid.bytes, to, GMIG_UUID_SIZE);
			n++;
		}
		pthread_mutex_unlock(&cb->lock);
		args.gpuPairs = pairs;
		args.gpuPairsCount = n;
	}
	if (CU(cuCheckpointProcessRestore(pid, &args)))
		return -EIO;
	if (CU(cuCheckpointProcessUnlock(pid, &unlock)))
		return -EIO;
	cb->checkpointed = false;
	return refresh_now(cb);
}

static int cuda_attach(struct gmig_be *be, const uint8_t *uuid, struct gmig_bdev **devp)
{
	struct gmig_cudabe *cb = cudabe(be);
	int ordinal, err, from, to;

	if (!uuid) {
		/* The program's first device. */
		ordinal = 0;
	} else {
		to = find_gpu(cb, uuid);
		if (to < 0)
			return -ENODEV;
		from = find_gpu(cb, cb->released);
		/* The driver restores onto the same chip only: say so before it is asked. */
		if (from >= 0 && (strcmp(cb->gpus[from].name, cb->gpus[to].name) ||
				  cb->gpus[from].cc_major != cb->gpus[to].cc_major ||
				  cb->gpus[from].cc_minor != cb->gpus[to].cc_minor)) {
			gmig_log_debug("cuda: cannot move from %s to %s: another chip",
				       cb->gpus[from].name, cb->gpus[to].name);
			return -EXDEV;
		}
		if (cb->checkpointed) {
			err = restore_onto(cb, uuid);
			if (err)
				return err;
		} else if (from >= 0 && from != to) {
			/* The checkpoint failed at release: the rest of the program is still on the old GPU. */
			gmig_log_debug("cuda: the process was not checkpointed; it can only go back");
			return -EIO;
		}
		pthread_mutex_lock(&cb->lock);
		ordinal = ordinal_of(cb, uuid);
		pthread_mutex_unlock(&cb->lock);
		if (ordinal < 0)
			return -ENODEV;
	}
	err = dev_open(cb, ordinal, devp);
	if (!err)
		atomic_store(&cb->ordinal, ordinal);
	return err;
}

static void cuda_release(struct gmig_bdev *dev)
{
	struct gmig_cudabe *cb;
	CUcheckpointLockArgs lock;
	CUcheckpointCheckpointArgs ckpt;
	CUcheckpointUnlockArgs unlock;
	int pid = getpid();

	if (!dev)
		return;
	cb = dev->cb;
	atomic_store(&cb->ordinal, -1);
	memcpy(cb->released, cb->gpus[dev->gpu].uuid, GMIG_UUID_SIZE);
	dev_free(dev);
	if (cb->closing)
		return;
	if (!gmig_cudabe_can_move()) {
		gmig_log_debug("cuda: the driver has no checkpoint API; the process keeps its GPU");
		return;
	}
	memset(&lock, 0, sizeof(lock));
	memset(&ckpt, 0, sizeof(ckpt));
	memset(&unlock, 0, sizeof(unlock));
	lock.timeoutMs = GMIG_CUDA_LOCK_TIMEOUT_MS;
	if (CU(cuCheckpointProcessLock(pid, &lock)))
		return;
	if (CU(cuCheckpointProcessCheckpoint(pid, &ckpt))) {
		CU(cuCheckpointProcessUnlock(pid, &unlock));
		return;
	}
	cb->checkpointed = true;
}

/* --- memory --- */

static int cuda_reserve(struct gmig_be *be, uint64_t size, uint64_t *va)
{
	CUdeviceptr p = 0;

	(void)be;
	if (!size || size % GMIG_CUDA_GRANULE)
		return -EINVAL;
	if (CU(cuMemAddressReserve(&p, size, GMIG_CUDA_GRANULE, 0, 0)))
		return -ENOMEM;
	if (!p || p % GMIG_CUDA_GRANULE) {
		CU(cuMemAddressFree(p, size));
		return -ENOMEM;
	}
	*va = p;
	return 0;
}

static void cuda_unreserve(struct gmig_be *be, uint64_t va, uint64_t size)
{
	(void)be;
	CU(cuMemAddressFree(va, size));
}

static int cuda_map(struct gmig_bdev *dev, uint64_t va, uint64_t *handle)
{
	CUmemAllocationProp prop;
	CUmemAccessDesc access;
	CUmemGenericAllocationHandle h;
	CUresult r;

	memset(&prop, 0, sizeof(prop));
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = dev->ordinal;
	r = gmig_cu.r_cuMemCreate(&h, GMIG_CUDA_GRANULE, &prop, 0);
	if (r == CUDA_ERROR_OUT_OF_MEMORY)
		return -ENOSPC;
	if (failed(r, "cuMemCreate"))
		return -EIO;
	if (CU(cuMemMap(va, GMIG_CUDA_GRANULE, 0, h, 0)))
		goto out_release;
	memset(&access, 0, sizeof(access));
	access.location = prop.location;
	access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	if (CU(cuMemSetAccess(va, GMIG_CUDA_GRANULE, &access, 1)))
		goto out_unmap;
	*handle = h;
	return 0;

out_unmap:
	CU(cuMemUnmap(va, GMIG_CUDA_GRANULE));
out_release:
	CU(cuMemRelease(h));
	return -EIO;
}

static int cuda_unmap(struct gmig_bdev *dev, uint64_t va, uint64_t handle)
{
	int err = 0;

	(void)dev;
	if (CU(cuMemUnmap(va, GMIG_CUDA_GRANULE)))
		err = -EIO;
	if (CU(cuMemRelease(handle)))
		err = -EIO;
	return err;
}

/* --- safe points --- */

struct drain_ev {
	CUcontext ctx;
	CUstream s;
	CUevent e;
};

/* Records an event on s in ctx; false if it could not be. */
static bool mark(struct drain_ev *d)
{
	bool ok;

	relax();
	if (CU(cuCtxPushCurrent_v2(d->ctx)))
		return false;
	ok = !CU(cuEventCreate(&d->e, CU_EVENT_DISABLE_TIMING)) &&
	     !CU(cuEventRecord(d->e, d->s));
	if (!ok && d->e) {
		CU(cuEventDestroy_v2(d->e));
		d->e = NULL;
	}
	pop();
	return ok;
}

/*
 * An event on the legacy stream of each context (it waits for every
 * blocking stream, per-thread default streams included) and on each
 * stream the program created; then polls them until done or deadline.
 */
static int cuda_drain(struct gmig_bdev *dev, const struct timespec *deadline)
{
	struct gmig_cudabe *cb = dev->cb;
	struct drain_ev *ev;
	uint32_t n = 0, nctx = 1, cap;
	int err = 0;

	if (!gmig_cudabe_can_move()) {
		gmig_log_debug("cuda: the driver has no checkpoint API (cuCheckpointProcess*): no freeze");
		return -EOPNOTSUPP;
	}
	pthread_mutex_lock(&cb->lock);
	if (cb->ncaptures || cb->captures_lost) {
		pthread_mutex_unlock(&cb->lock);
		/* Said always, not only with GMIG_LOG=debug: the program's owner must know why. */
		fprintf(stderr, "gmig: freeze refused: a CUDA stream capture is open; "
			"the program runs on and the migration can be retried once it ends\n");
		return -EBUSY;
	}
	cap = cb->nstreams + GMIG_CUDA_CTXS_MAX;
	ev = calloc(cap, sizeof(*ev));
	if (!ev) {
		pthread_mutex_unlock(&cb->lock);
		return -ENOMEM;
	}
	ev[n++] = (struct drain_ev){ dev->ctx, CU_STREAM_LEGACY, NULL };
	for (uint32_t i = 0; i < cb->nstreams; i++) {
		bool seen = false;

		for (uint32_t k = 0; k < n && !seen; k++)
			seen = ev[k].s == CU_STREAM_LEGACY && ev[k].ctx == cb->streams[i].ctx;
		if (!seen && nctx < GMIG_CUDA_CTXS_MAX) {
			ev[n++] = (struct drain_ev){ cb->streams[i].ctx, CU_STREAM_LEGACY, NULL };
			nctx++;
		}
		ev[n++] = (struct drain_ev){ cb->streams[i].ctx, cb->streams[i].s, NULL };
	}
	pthread_mutex_unlock(&cb->lock);

	for (uint32_t i = 0; i < n; i++)
		mark(&ev[i]);
	for (;;) {
		bool busy = false;

		for (uint32_t i = 0; i < n; i++) {
			CUresult r;

			if (!ev[i].e)
				continue;
			r = gmig_cu.r_cuEventQuery(ev[i].e);
			if (r == CUDA_ERROR_NOT_READY) {
				busy = true;
				continue;
			}
			failed(r, "cuEventQuery");
			CU(cuEventDestroy_v2(ev[i].e));
			ev[i].e = NULL;
		}
		if (!busy)
			break;
		if (!gmig_ms_until(deadline)) {
			err = -ETIMEDOUT;
			break;
		}
		usleep(GMIG_CUDA_DRAIN_POLL_US);
	}
	for (uint32_t i = 0; i < n; i++)
		if (ev[i].e)
			CU(cuEventDestroy_v2(ev[i].e));
	free(ev);
	return err;
}

static int cuda_queues(struct gmig_bdev *dev, struct gmig_queue *out, uint32_t max)
{
	struct gmig_cudabe *cb = dev->cb;
	uint32_t n;

	pthread_mutex_lock(&cb->lock);
	n = cb->nstreams < max ? cb->nstreams : max;
	for (uint32_t i = 0; i < n; i++)
		out[i] = (struct gmig_queue){ cb->streams[i].id, 0 };
	pthread_mutex_unlock(&cb->lock);
	return (int)n;
}

/* --- transfers --- */

/* Copies len bytes between host and device, spread over the private streams in pieces. */
static int transfer(struct gmig_bdev *dev, uint64_t va, void *host, size_t len, bool to_host)
{
	size_t pieces = len / GMIG_CUDA_PIECE_MIN, piece, off = 0;
	int err = 0;

	if (pieces > GMIG_CUDA_STREAMS)
		pieces = GMIG_CUDA_STREAMS;
	if (!pieces)
		pieces = 1;
	piece = ((len + pieces - 1) / pieces + 4095) & ~(size_t)4095;
	if (!push(dev))
		return -EIO;
	for (size_t i = 0; off < len && !err; i++) {
		size_t n = len - off < piece ? len - off : piece;
		CUresult r = to_host ?
			gmig_cu.r_cuMemcpyDtoHAsync_v2((char *)host + off, va + off, n, dev->streams[i]) :
			gmig_cu.r_cuMemcpyHtoDAsync_v2(va + off, (char *)host + off, n, dev->streams[i]);

		if (failed(r, to_host ? "cuMemcpyDtoHAsync_v2" : "cuMemcpyHtoDAsync_v2"))
			err = -EIO;
		off += n;
	}
	for (size_t i = 0; i < pieces; i++)
		if (CU(cuStreamSynchronize(dev->streams[i])))
			err = -EIO;
	pop();
	return err;
}

static int cuda_read(struct gmig_bdev *dev, uint64_t va, void *dst, size_t len)
{
	return len ? transfer(dev, va, dst, len, true) : 0;
}

static int cuda_write(struct gmig_bdev *dev, uint64_t va, const void *src, size_t len)
{
	int err = 0;

	if (!len)
		return 0;
	if (src)
		return transfer(dev, va, (void *)src, len, false);
	if (!push(dev))
		return -EIO;
	if (CU(cuMemsetD8Async(va, 0, len, dev->streams[0])) || CU(cuStreamSynchronize(dev->streams[0])))
		err = -EIO;
	pop();
	return err;
}

/* --- fingerprints --- */

/* Prints of chunks [0, k) of [va, va + len) from the kernel; short ones are left for the CPU. */
static int fp_launch(struct gmig_bdev *dev, uint64_t va, uint64_t len, uint32_t chunk, uint64_t k)
{
	CUstream s = dev->streams[0];
	void *args[] = { &va, &len, &chunk, &k, &dev->fp_out };
	unsigned blocks = (unsigned)((k * 32 + FP_THREADS - 1) / FP_THREADS);

	if (CU(cuLaunchKernel((CUfunction)dev->cb->kern, blocks, 1, 1, FP_THREADS, 1, 1, 0, s, args, NULL)) ||
	    CU(cuMemcpyDtoHAsync_v2(dev->fp_host, dev->fp_out, k * sizeof(uint64_t), s)) ||
	    CU(cuStreamSynchronize(s)))
		return -EIO;
	return 0;
}

static int cuda_fingerprint(struct gmig_bdev *dev, uint64_t va, uint64_t len, uint32_t chunk,
			    uint64_t *out)
{
	uint64_t nchunks = (len + chunk - 1) / chunk;
	int err = 0;

	if (!chunk)
		return -EINVAL;
	if (!push(dev))
		return -EIO;
	for (uint64_t c0 = 0; c0 < nchunks && !err; c0 += GMIG_CUDA_FP_CHUNKS) {
		uint64_t k = nchunks - c0 < GMIG_CUDA_FP_CHUNKS ? nchunks - c0 : GMIG_CUDA_FP_CHUNKS;
		uint64_t l = len - c0 * chunk < k * chunk ? len - c0 * chunk : k * chunk;

		err = fp_launch(dev, va + c0 * chunk, l, chunk, k);
		if (!err)
			memcpy(out + c0, dev->fp_host, k * sizeof(uint64_t));
	}
	pop();
	/* A last chunk too short for the kernel's path: copied and hashed here. */
	if (!err && len % chunk && len % chunk <= 240) {
		uint8_t tail[240];
		uint64_t n = len % chunk;

		err = cuda_read(dev, va + len - n, tail, n);
		if (!err)
			out[nchunks - 1] = XXH3_64bits(tail, n);
	}
	return err;
}

/* --- host memory the link shares with the agent --- */

static int cuda_host_register(struct gmig_be *be, void *p, size_t n)
{
	struct gmig_cudabe *cb = cudabe(be);
	int err = -ENOSPC;

	int o = atomic_load(&cb->ordinal);
	CUcontext c;

	/* Registration acts in the current context; PORTABLE makes it good for every one. */
	pthread_mutex_lock(&cb->lock);
	if (o < 0 || !cb->primary[o]) {
		err = -ENODEV;
	} else if (cb->npinned < GMIG_CUDA_PINNED_MAX) {
		relax();
		err = CU(cuCtxPushCurrent_v2(cb->primary[o])) ? -EIO : 0;
		if (!err) {
			err = CU(cuMemHostRegister_v2(p, n, CU_MEMHOSTREGISTER_PORTABLE)) ? -EIO : 0;
			CU(cuCtxPopCurrent_v2(&c));
		}
		if (!err)
			cb->pinned[cb->npinned++] = (__typeof__(cb->pinned[0])){ p, n };
	}
	pthread_mutex_unlock(&cb->lock);
	return err;
}

static void cuda_host_unregister(struct gmig_be *be, void *p, size_t n)
{
	struct gmig_cudabe *cb = cudabe(be);
	int o = atomic_load(&cb->ordinal);
	CUcontext c;

	pthread_mutex_lock(&cb->lock);
	for (uint32_t i = 0; i < cb->npinned; i++) {
		if (cb->pinned[i].p != p || cb->pinned[i].n != n)
			continue;
		/* While released the driver holds the process and would block: the range stays pinned. */
		if (o >= 0 && cb->primary[o] && !CU(cuCtxPushCurrent_v2(cb->primary[o]))) {
			CU(cuMemHostUnregister(p));
			CU(cuCtxPopCurrent_v2(&c));
		}
		cb->pinned[i] = cb->pinned[--cb->npinned];
		break;
	}
	pthread_mutex_unlock(&cb->lock);
}

static const struct gmig_backend_ops cuda_ops = {
	.name = "cuda",
	.kind = GMIG_BACKEND_CUDA,
	.granule = GMIG_CUDA_GRANULE,
	.enumerate = cuda_enumerate,
	.attach = cuda_attach,
	.release = cuda_release,
	.info = cuda_info,
	.reserve = cuda_reserve,
	.unreserve = cuda_unreserve,
	.map = cuda_map,
	.unmap = cuda_unmap,
	.drain = cuda_drain,
	.queues = cuda_queues,
	.fingerprint = cuda_fingerprint,
	.read = cuda_read,
	.write = cuda_write,
	.host_register = cuda_host_register,
	.host_unregister = cuda_host_unregister,
};

/* --- what the wrappers tell --- */

void gmig_cudabe_stream_add(struct gmig_cudabe *cb, CUstream s)
{
	CUcontext ctx = NULL;

	if (CU(cuStreamGetCtx(s, &ctx)))
		return;
	pthread_mutex_lock(&cb->lock);
	if (cb->nstreams == cb->capstreams) {
		uint32_t cap = cb->capstreams ? cb->capstreams * 2 : 64;
		struct gmig_cuda_stream *v = realloc(cb->streams, cap * sizeof(*v));

		if (!v) {
			pthread_mutex_unlock(&cb->lock);
			return;
		}
		cb->streams = v;
		cb->capstreams = cap;
	}
	cb->streams[cb->nstreams++] = (struct gmig_cuda_stream){ s, ctx, ++cb->next_id };
	pthread_mutex_unlock(&cb->lock);
}

void gmig_cudabe_stream_del(struct gmig_cudabe *cb, CUstream s)
{
	pthread_mutex_lock(&cb->lock);
	for (uint32_t i = 0; i < cb->nstreams; i++) {
		if (cb->streams[i].s != s)
			continue;
		memmove(&cb->streams[i], &cb->streams[i + 1], (cb->nstreams - i - 1) * sizeof(cb->streams[0]));
		cb->nstreams--;
		break;
	}
	pthread_mutex_unlock(&cb->lock);
}

void gmig_cudabe_capture(struct gmig_cudabe *cb, CUstream s, bool open)
{
	pthread_mutex_lock(&cb->lock);
	if (open) {
		if (cb->ncaptures < GMIG_CUDA_CAPTURES_MAX)
			cb->captures[cb->ncaptures++] = s;
		else
			cb->captures_lost = true;
	} else {
		for (uint32_t i = 0; i < cb->ncaptures; i++) {
			if (cb->captures[i] == s) {
				cb->captures[i] = cb->captures[--cb->ncaptures];
				break;
			}
		}
		if (!cb->ncaptures)
			cb->captures_lost = false;
	}
	pthread_mutex_unlock(&cb->lock);
}

/* The GPU ordinal is on now, as recorded at start; NULL when it is not known. */
static const struct gmig_cuda_gpu *gpu_now(struct gmig_cudabe *cb, int ordinal)
{
	int g = -1;

	if (ordinal < 0 || ordinal >= cb->ngpus)
		return NULL;
	pthread_mutex_lock(&cb->lock);
	g = find_gpu(cb, cb->now[ordinal]);
	pthread_mutex_unlock(&cb->lock);
	return g < 0 ? NULL : &cb->gpus[g];
}

bool gmig_cudabe_busid(struct gmig_cudabe *cb, int ordinal, char *out, int len)
{
	const struct gmig_cuda_gpu *g = gpu_now(cb, ordinal);

	if (!g || len <= 0)
		return false;
	snprintf(out, (size_t)len, "%s", g->busid);
	return true;
}

bool gmig_cudabe_pci_attr(struct gmig_cudabe *cb, int ordinal, CUdevice_attribute a, int *v)
{
	const struct gmig_cuda_gpu *g = gpu_now(cb, ordinal);

	if (!g)
		return false;
	switch (a) {
	case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID:
		*v = g->domain;
		return true;
	case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID:
		*v = g->bus;
		return true;
	case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID:
		*v = g->slot;
		return true;
	default:
		return false;
	}
}

/* --- set-up --- */

static int by_pci(struct gmig_cudabe *cb, int a, int b)
{
	return strcmp(cb->gpus[a].pci, cb->gpus[b].pci);
}

int gmig_cudabe_init(struct gmig_cudabe *cb)
{
	int n = 0, err;

	memset(cb, 0, sizeof(*cb));
	cb->be.ops = &cuda_ops;
	cb->be.priv = cb;
	atomic_init(&cb->ordinal, -1);
	if (!gmig_cu.r_cuDeviceGetCount || CU(cuDeviceGetCount(&n)))
		return -EIO;
	if (n <= 0)
		return -ENODEV;
	cb->ngpus = n < GMIG_GPUS_MAX ? n : GMIG_GPUS_MAX;
	for (int o = 0; o < cb->ngpus; o++) {
		err = describe(&cb->gpus[o], o);
		if (err)
			return err;
		memcpy(cb->now[o], cb->gpus[o].uuid, GMIG_UUID_SIZE);
		cb->order[o] = o;
	}
	/* The agent numbers GPUs by PCI address: so does the enumeration, so indexes agree. */
	for (int i = 1; i < cb->ngpus; i++)
		for (int j = i; j > 0 && by_pci(cb, cb->order[j - 1], cb->order[j]) > 0; j--) {
			int t = cb->order[j];

			cb->order[j] = cb->order[j - 1];
			cb->order[j - 1] = t;
		}
	pthread_mutex_init(&cb->lock, NULL);
	return 0;
}

void gmig_cudabe_fini(struct gmig_cudabe *cb)
{
	if (!cb->be.ops)
		return;
	free(cb->streams);
	pthread_mutex_destroy(&cb->lock);
	memset(cb, 0, sizeof(*cb));
}
