/*
 * The simulated GPU's programming interface: a tiny CUDA for programs that
 * must run where no GPU can be (tests, demos, CI). Device memory lives in a
 * simulated device (see simdev.h) mapped at fixed device virtual addresses;
 * kernels are C functions run by worker threads, one per stream, in order.
 * Every call is a safe point of libgmig: while a migration has the program
 * frozen, calls block, and after a move to another device every device
 * pointer is still valid.
 *
 * Errors are negative errno values; gsim_strerror() names them.
 */
#ifndef GMIG_SIM_H
#define GMIG_SIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gsim_stream *gsim_stream_t;	/* NULL is the default stream */

/*
 * A kernel: runs once per block, block in [0, nblocks), on its stream's
 * worker thread. args is the launch's private copy of the arguments.
 */
typedef void (*gsim_kernel_fn)(uint32_t block, uint32_t nblocks, void *args);

enum gsim_copy {
	GSIM_HOST_TO_DEVICE,
	GSIM_DEVICE_TO_HOST,
	GSIM_DEVICE_TO_DEVICE,
};

struct gsim_device_info {
	char name[64];
	char model[64];
	uint8_t uuid[16];
	uint64_t mem_bytes;
	char path[256];		/* the device file */
};

/*
 * Attaches to the device named by $GMIG_SIM_DEVICE (a path), else the first
 * device in $GMIG_SIM_DIR (default /dev/shm), and starts libgmig's link to
 * the guest agent ($GMIG_AGENT_SOCKET, default /run/gmig/agent.sock) unless
 * $GMIG_DISABLE=1. Every other call initialises on first use; calling this
 * first only makes the error visible early. -ENODEV when no device exists.
 */
int gsim_init(void);
int gsim_device_info(struct gsim_device_info *info);

/* Device memory, 256-byte aligned; the address never changes while allocated. */
int gsim_malloc(void **dptr, size_t size);
int gsim_free(void *dptr);

/* Ordered on the default stream and synchronous, like cudaMemcpy. */
int gsim_memcpy(void *dst, const void *src, size_t n, enum gsim_copy kind);
int gsim_memset(void *dptr, int value, size_t n);
/* Ordered on stream s; host memory must stay valid until the stream syncs. */
int gsim_memcpy_async(void *dst, const void *src, size_t n, enum gsim_copy kind,
		      gsim_stream_t s);

int gsim_stream_create(gsim_stream_t *s);
int gsim_stream_destroy(gsim_stream_t s);
int gsim_stream_synchronize(gsim_stream_t s);
int gsim_device_synchronize(void);

/* Queues fn on stream s; args_size bytes of args are copied (at most 4096). */
int gsim_launch(gsim_kernel_fn fn, uint32_t nblocks, const void *args, size_t args_size,
		gsim_stream_t s);

const char *gsim_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
