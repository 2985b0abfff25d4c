/*
 * GPU test 3 (driver API, linked against libcuda): its own context from cuCtxCreate, a
 * module loaded from an embedded fatbin with cuModuleLoadData, a module global read with
 * cuModuleGetGlobal, cuMemAlloc memory, a stream and cuLaunchKernel.
 *
 *   gmig-gpu-drvapi [--steps 60] [--step-ms 100] [--mib 128]
 */
#include "gputest.h"
#include "drvkern.fatbin.h"

#define BLOCKS	512
#define THREADS	256

int main(int argc, char **argv)
{
	long steps = gt_opt(argc, argv, "--steps", 60), step_ms = gt_opt(argc, argv, "--step-ms", 100);
	long n = gt_opt(argc, argv, "--mib", 128) * 131072;
	CUdeviceptr v, dig, global;
	unsigned long long h_dig, launches;
	size_t global_size;
	CUfunction f_step, f_digest;
	CUmodule mod;
	CUcontext ctx;
	CUstream st;
	CUdevice dev;
	CUuuid u;

	gt_start();
	GT_DRV(cuInit(0));
	GT_DRV(cuDeviceGet(&dev, 0));
	GT_DRV(cuCtxCreate(&ctx, NULL, 0, dev));
	GT_DRV(cuCtxGetDevice(&dev));
	GT_DRV(cuDeviceGetUuid(&u, dev));
	gt_print_uuid("start", &u);
	GT_DRV(cuModuleLoadData(&mod, gmig_drvkern_fatbin));
	GT_DRV(cuModuleGetFunction(&f_step, mod, "k_step"));
	GT_DRV(cuModuleGetFunction(&f_digest, mod, "k_digest"));
	GT_DRV(cuModuleGetGlobal(&global, &global_size, mod, "g_launches"));
	GT_DRV(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
	GT_DRV(cuMemAlloc(&v, (size_t)n * 8));
	GT_DRV(cuMemAlloc(&dig, 8));
	GT_DRV(cuMemsetD32(v, 0x1234567u, (size_t)n * 2));
	GT_DRV(cuCtxSynchronize());

	gt_print_ptr("start", "v", (void *)v);
	gt_print_ptr("start", "global", (void *)global);
	gt_print_ptr("start", "module", mod);
	printf("ready\n");

	for (long s = 0; s < steps; s++) {
		uint64_t step = (uint64_t)s;
		void *step_args[] = { &v, &n, &step };
		void *digest_args[] = { &dig, &v, &n };

		GT_DRV(cuLaunchKernel(f_step, BLOCKS, 1, 1, THREADS, 1, 1, 0, st, step_args, NULL));
		GT_DRV(cuMemsetD32Async(dig, 0, 2, st));
		GT_DRV(cuLaunchKernel(f_digest, BLOCKS, 1, 1, THREADS, 1, 1, 0, st, digest_args, NULL));
		GT_DRV(cuMemcpyDtoHAsync(&h_dig, dig, sizeof(h_dig), st));
		GT_DRV(cuStreamSynchronize(st));
		printf("step %ld digest %016llx\n", s, h_dig);
		gt_sleep_ms(step_ms);
	}
	GT_DRV(cuMemcpyDtoH(&launches, global, sizeof(launches)));
	printf("launches %llu\n", launches);

	gt_print_ptr("end", "v", (void *)v);
	gt_print_ptr("end", "global", (void *)global);
	gt_print_ptr("end", "module", mod);
	GT_DRV(cuCtxGetDevice(&dev));
	GT_DRV(cuDeviceGetUuid(&u, dev));
	gt_print_uuid("end", &u);
	GT_DRV(cuMemFree(v));
	GT_DRV(cuMemFree(dig));
	GT_DRV(cuModuleUnload(mod));
	GT_DRV(cuCtxDestroy(ctx));
	return 0;
}
