/*
 * The CUDA backend: device memory in 2 MiB VMM granules at fixed addresses,
 * fingerprints by a kernel, copies on private streams, and the move itself
 * by the driver's checkpoint API on the process's own pid.
 */
#ifndef GMIG_UMD_CUDA_CUDABE_H
#define GMIG_UMD_CUDA_CUDABE_H

#include <cuda.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "backend.h"
#include "gmig/limits.h"

#define GMIG_CUDA_GRANULE		(2ull << 20)	/* VMM granule on the Hopper GPUs measured */
#define GMIG_CUDA_STREAMS		4		/* private streams a transfer is spread over */
#define GMIG_CUDA_PIECE_MIN		(1u << 20)	/* smallest piece of a spread transfer */
#define GMIG_CUDA_FP_CHUNKS		65536		/* chunk prints per kernel launch: 4 GiB of 64 KiB chunks */
#define GMIG_CUDA_LOCK_TIMEOUT_MS	10000		/* cuCheckpointProcessLock's own deadline */
#define GMIG_CUDA_DRAIN_POLL_US		100		/* between event queries while draining */
#define GMIG_CUDA_CAPTURES_MAX		256		/* stream captures open at once that are tracked */
#define GMIG_CUDA_CTXS_MAX		64		/* contexts whose legacy stream a drain covers */
#define GMIG_CUDA_PINNED_MAX		8		/* host ranges registered for transfers */

/* A GPU as the driver described it at start, when its identity was right. */
struct gmig_cuda_gpu {
	uint8_t uuid[GMIG_UUID_SIZE];
	char name[64];
	char busid[32];		/* as cuDeviceGetPCIBusId wrote it */
	char pci[17];		/* the same, lower case, as the agent's inventory spells it */
	int domain, bus, slot;	/* CU_DEVICE_ATTRIBUTE_PCI_{DOMAIN,BUS,DEVICE}_ID */
	int cc_major, cc_minor;
	uint16_t pci_device;	/* PCI device id from sysfs, 0 if unknown */
	uint64_t mem;
};

struct gmig_cuda_stream {
	CUstream s;
	CUcontext ctx;
	uint32_t id;
};

struct gmig_cudabe {
	struct gmig_be be;		/* be.priv points back here */
	int ngpus;
	struct gmig_cuda_gpu gpus[GMIG_GPUS_MAX];	/* by ordinal at start; fixed */
	int order[GMIG_GPUS_MAX];	/* enumeration position -> ordinal at start (PCI order) */
	CUlibrary lib;			/* the fingerprint kernel's, loaded once */
	CUkernel kern;

	pthread_mutex_t lock;		/* protects everything below but the link-thread fields */
	uint8_t now[GMIG_GPUS_MAX][GMIG_UUID_SIZE];	/* ordinal -> the GPU it is on now */
	CUcontext primary[GMIG_GPUS_MAX];	/* by ordinal: retained once, kept for the process's life */
	struct gmig_cuda_stream *streams;	/* the program's streams, in id order */
	uint32_t nstreams, capstreams, next_id;
	CUstream captures[GMIG_CUDA_CAPTURES_MAX];	/* streams with a capture open */
	uint32_t ncaptures;
	bool captures_lost;		/* more captures than tracked: refuse freezes */
	struct { void *p; size_t n; } pinned[GMIG_CUDA_PINNED_MAX];
	uint32_t npinned;

	atomic_int ordinal;		/* the arena's device, -1 while released */

	/* The link thread's alone: */
	bool checkpointed;		/* the driver holds the process (Lock + Checkpoint done) */
	bool closing;			/* shutting down: release gives the device back without a checkpoint */
	uint8_t released[GMIG_UUID_SIZE];	/* the GPU of the last release */
};

/*
 * Reads every GPU's identity through the real driver (cuInit done), loads
 * nothing yet. -ENODEV without a GPU, -EIO when the driver fails.
 */
int gmig_cudabe_init(struct gmig_cudabe *cb);
void gmig_cudabe_fini(struct gmig_cudabe *cb);

/* The program's streams and captures, as the wrappers see them come and go. */
void gmig_cudabe_stream_add(struct gmig_cudabe *cb, CUstream s);
void gmig_cudabe_stream_del(struct gmig_cudabe *cb, CUstream s);
void gmig_cudabe_capture(struct gmig_cudabe *cb, CUstream s, bool open);

/* The PCI identity of the GPU an ordinal is on now; false to let the driver answer. */
bool gmig_cudabe_busid(struct gmig_cudabe *cb, int ordinal, char *out, int len);
bool gmig_cudabe_pci_attr(struct gmig_cudabe *cb, int ordinal, CUdevice_attribute a, int *v);

/* Whether the checkpoint entry points are all there. */
bool gmig_cudabe_can_move(void);

#endif
