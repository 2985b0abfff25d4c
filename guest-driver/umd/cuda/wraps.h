/*
 * The driver entry points libgmig wraps, in one list: name (the exported,
 * versioned symbol), PFN type (cudaTypedefs.h, the ABI of that variant),
 * and for the gated ones the parameters and arguments. Names, wrappers,
 * the address map, the exported aliases and the tests derive from it.
 * Generated once from cudaTypedefs.h of CUDA 13.0; the PFN checks in
 * wrap.c keep it honest.
 */
#ifndef GMIG_UMD_CUDA_WRAPS_H
#define GMIG_UMD_CUDA_WRAPS_H

/*
 * C(name, pfn): a wrapper written in wrap.c (entry, identity, memory,
 * streams, capture). G(name, pfn, params, args): work submission; the
 * wrapper passes the gate and calls the driver.
 */
#define GMIG_CUDA_WRAPS(C, G)\
	C(cuGetProcAddress, PFN_cuGetProcAddress_v11030)\
	C(cuGetProcAddress_v2, PFN_cuGetProcAddress_v12000)\
	C(cuInit, PFN_cuInit_v2000)\
	C(cuDeviceGetPCIBusId, PFN_cuDeviceGetPCIBusId_v4010)\
	C(cuDeviceGetAttribute, PFN_cuDeviceGetAttribute_v2000)\
	C(cuMemAlloc_v2, PFN_cuMemAlloc_v3020)\
	C(cuMemAllocPitch_v2, PFN_cuMemAllocPitch_v3020)\
	C(cuMemFree_v2, PFN_cuMemFree_v3020)\
	C(cuMemGetAddressRange_v2, PFN_cuMemGetAddressRange_v3020)\
	C(cuStreamCreate, PFN_cuStreamCreate_v2000)\
	C(cuStreamCreateWithPriority, PFN_cuStreamCreateWithPriority_v5050)\
	C(cuStreamDestroy_v2, PFN_cuStreamDestroy_v4000)\
	C(cuStreamBeginCapture, GMIG_PFN_cuStreamBeginCapture_v10000)\
	C(cuStreamBeginCapture_ptsz, GMIG_PFN_cuStreamBeginCapture_v10000_ptsz)\
	C(cuStreamBeginCapture_v2, PFN_cuStreamBeginCapture_v10010)\
	C(cuStreamBeginCapture_v2_ptsz, PFN_cuStreamBeginCapture_v10010_ptsz)\
	C(cuStreamBeginCaptureToGraph, PFN_cuStreamBeginCaptureToGraph_v12030)\
	C(cuStreamBeginCaptureToGraph_ptsz, PFN_cuStreamBeginCaptureToGraph_v12030_ptsz)\
	C(cuStreamEndCapture, PFN_cuStreamEndCapture_v10000)\
	C(cuStreamEndCapture_ptsz, PFN_cuStreamEndCapture_v10000_ptsz)\
	G(cuLaunchKernel, PFN_cuLaunchKernel_v4000, (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra), (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, extra))\
	G(cuLaunchKernel_ptsz, PFN_cuLaunchKernel_v7000_ptsz, (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra), (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, extra))\
	G(cuLaunchKernelEx, PFN_cuLaunchKernelEx_v11060, (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra), (config, f, kernelParams, extra))\
	G(cuLaunchKernelEx_ptsz, PFN_cuLaunchKernelEx_v11060_ptsz, (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra), (config, f, kernelParams, extra))\
	G(cuLaunchCooperativeKernel, PFN_cuLaunchCooperativeKernel_v9000, (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream, void **kernelParams), (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams))\
	G(cuLaunchCooperativeKernel_ptsz, PFN_cuLaunchCooperativeKernel_v9000_ptsz, (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream, void **kernelParams), (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams))\
	G(cuLaunchHostFunc, PFN_cuLaunchHostFunc_v10000, (CUstream hStream, CUhostFn fn, void *userData), (hStream, fn, userData))\
	G(cuLaunchHostFunc_ptsz, PFN_cuLaunchHostFunc_v10000_ptsz, (CUstream hStream, CUhostFn fn, void *userData), (hStream, fn, userData))\
	G(cuGraphLaunch, PFN_cuGraphLaunch_v10000, (CUgraphExec hGraph, CUstream hStream), (hGraph, hStream))\
	G(cuGraphLaunch_ptsz, PFN_cuGraphLaunch_v10000_ptsz, (CUgraphExec hGraphExec, CUstream hStream), (hGraphExec, hStream))\
	G(cuEventRecord, PFN_cuEventRecord_v2000, (CUevent hEvent, CUstream hStream), (hEvent, hStream))\
	G(cuEventRecord_ptsz, PFN_cuEventRecord_v7000_ptsz, (CUevent hEvent, CUstream hStream), (hEvent, hStream))\
	G(cuEventRecordWithFlags, PFN_cuEventRecordWithFlags_v11010, (CUevent hEvent, CUstream hStream, unsigned int flags), (hEvent, hStream, flags))\
	G(cuEventRecordWithFlags_ptsz, PFN_cuEventRecordWithFlags_v11010_ptsz, (CUevent hEvent, CUstream hStream, unsigned int flags), (hEvent, hStream, flags))\
	G(cuStreamWaitEvent, PFN_cuStreamWaitEvent_v3020, (CUstream hStream, CUevent hEvent, unsigned int Flags), (hStream, hEvent, Flags))\
	G(cuStreamWaitEvent_ptsz, PFN_cuStreamWaitEvent_v7000_ptsz, (CUstream hStream, CUevent hEvent, unsigned int Flags), (hStream, hEvent, Flags))\
	G(cuMemcpy, PFN_cuMemcpy_v4000, (CUdeviceptr_v2 dst, CUdeviceptr_v2 src, size_t ByteCount), (dst, src, ByteCount))\
	G(cuMemcpy_ptds, PFN_cuMemcpy_v7000_ptds, (CUdeviceptr_v2 dst, CUdeviceptr_v2 src, size_t ByteCount), (dst, src, ByteCount))\
	G(cuMemcpyAsync, PFN_cuMemcpyAsync_v4000, (CUdeviceptr_v2 dst, CUdeviceptr_v2 src, size_t ByteCount, CUstream hStream), (dst, src, ByteCount, hStream))\
	G(cuMemcpyAsync_ptsz, PFN_cuMemcpyAsync_v7000_ptsz, (CUdeviceptr_v2 dst, CUdeviceptr_v2 src, size_t ByteCount, CUstream hStream), (dst, src, ByteCount, hStream))\
	G(cuMemcpyPeer, PFN_cuMemcpyPeer_v4000, (CUdeviceptr_v2 dstDevice, CUcontext dstContext, CUdeviceptr_v2 srcDevice, CUcontext srcContext, size_t ByteCount), (dstDevice, dstContext, srcDevice, srcContext, ByteCount))\
	G(cuMemcpyPeer_ptds, PFN_cuMemcpyPeer_v7000_ptds, (CUdeviceptr_v2 dstDevice, CUcontext dstContext, CUdeviceptr_v2 srcDevice, CUcontext srcContext, size_t ByteCount), (dstDevice, dstContext, srcDevice, srcContext, ByteCount))\
	G(cuMemcpyPeerAsync, PFN_cuMemcpyPeerAsync_v4000, (CUdeviceptr_v2 dstDevice, CUcontext dstContext, CUdeviceptr_v2 srcDevice, CUcontext srcContext, size_t ByteCount, CUstream hStream), (dstDevice, dstContext, srcDevice, srcContext, ByteCount, hStream))\
	G(cuMemcpyPeerAsync_ptsz, PFN_cuMemcpyPeerAsync_v7000_ptsz, (CUdeviceptr_v2 dstDevice, CUcontext dstContext, CUdeviceptr_v2 srcDevice, CUcontext srcContext, size_t ByteCount, CUstream hStream), (dstDevice, dstContext, srcDevice, srcContext, ByteCount, hStream))\
	G(cuMemcpyHtoD_v2, PFN_cuMemcpyHtoD_v3020, (CUdeviceptr_v2 dstDevice, const void *srcHost, size_t ByteCount), (dstDevice, srcHost, ByteCount))\
	G(cuMemcpyHtoD_v2_ptds, PFN_cuMemcpyHtoD_v7000_ptds, (CUdeviceptr_v2 dstDevice, const void *srcHost, size_t ByteCount), (dstDevice, srcHost, ByteCount))\
	G(cuMemcpyHtoDAsync_v2, PFN_cuMemcpyHtoDAsync_v3020, (CUdeviceptr_v2 dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream), (dstDevice, srcHost, ByteCount, hStream))\
	G(cuMemcpyHtoDAsync_v2_ptsz, PFN_cuMemcpyHtoDAsync_v7000_ptsz, (CUdeviceptr_v2 dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream), (dstDevice, srcHost, ByteCount, hStream))\
	G(cuMemcpyDtoH_v2, PFN_cuMemcpyDtoH_v3020, (void *dstHost, CUdeviceptr_v2 srcDevice, size_t ByteCount), (dstHost, srcDevice, ByteCount))\
	G(cuMemcpyDtoH_v2_ptds, PFN_cuMemcpyDtoH_v7000_ptds, (void *dstHost, CUdeviceptr_v2 srcDevice, size_t ByteCount), (dstHost, srcDevice, ByteCount))\
	G(cuMemcpyDtoHAsync_v2, PFN_cuMemcpyDtoHAsync_v3020, (void *dstHost, CUdeviceptr_v2 srcDevice, size_t ByteCount, CUstream hStream), (dstHost, srcDevice, ByteCount, hStream))\
	G(cuMemcpyDtoHAsync_v2_ptsz, PFN_cuMemcpyDtoHAsync_v7000_ptsz, (void *dstHost, CUdeviceptr_v2 srcDevice, size_t ByteCount, CUstream hStream), (dstHost, srcDevice, ByteCount, hStream))\
	G(cuMemcpyDtoD_v2, PFN_cuMemcpyDtoD_v3020, (CUdeviceptr_v2 dstDevice, CUdeviceptr_v2 srcDevice, size_t ByteCount), (dstDevice, srcDevice, ByteCount))\
	G(cuMemcpyDtoD_v2_ptds, PFN_cuMemcpyDtoD_v7000_ptds, (CUdeviceptr_v2 dstDevice, CUdeviceptr_v2 srcDevice, size_t ByteCount), (dstDevice, srcDevice, ByteCount))\
	G(cuMemcpyDtoDAsync_v2, PFN_cuMemcpyDtoDAsync_v3020, (CUdeviceptr_v2 dstDevice, CUdeviceptr_v2 srcDevice, size_t ByteCount, CUstream hStream), (dstDevice, srcDevice, ByteCount, hStream))\
	G(cuMemcpyDtoDAsync_v2_ptsz, PFN_cuMemcpyDtoDAsync_v7000_ptsz, (CUdeviceptr_v2 dstDevice, CUdeviceptr_v2 srcDevice, size_t ByteCount, CUstream hStream), (dstDevice, srcDevice, ByteCount, hStream))\
	G(cuMemcpy2D_v2, PFN_cuMemcpy2D_v3020, (const CUDA_MEMCPY2D_v2 *pCopy), (pCopy))\
	G(cuMemcpy2D_v2_ptds, PFN_cuMemcpy2D_v7000_ptds, (const CUDA_MEMCPY2D_v2 *pCopy), (pCopy))\
	G(cuMemcpy2DUnaligned_v2, PFN_cuMemcpy2DUnaligned_v3020, (const CUDA_MEMCPY2D_v2 *pCopy), (pCopy))\
	G(cuMemcpy2DUnaligned_v2_ptds, PFN_cuMemcpy2DUnaligned_v7000_ptds, (const CUDA_MEMCPY2D_v2 *pCopy), (pCopy))\
	G(cuMemcpy3D_v2, PFN_cuMemcpy3D_v3020, (const CUDA_MEMCPY3D_v2 *pCopy), (pCopy))\
	G(cuMemcpy3D_v2_ptds, PFN_cuMemcpy3D_v7000_ptds, (const CUDA_MEMCPY3D_v2 *pCopy), (pCopy))\
	G(cuMemcpy2DAsync_v2, PFN_cuMemcpy2DAsync_v3020, (const CUDA_MEMCPY2D_v2 *pCopy, CUstream hStream), (pCopy, hStream))\
	G(cuMemcpy2DAsync_v2_ptsz, PFN_cuMemcpy2DAsync_v7000_ptsz, (const CUDA_MEMCPY2D_v2 *pCopy, CUstream hStream), (pCopy, hStream))\
	G(cuMemcpy3DAsync_v2, PFN_cuMemcpy3DAsync_v3020, (const CUDA_MEMCPY3D_v2 *pCopy, CUstream hStream), (pCopy, hStream))\
	G(cuMemcpy3DAsync_v2_ptsz, PFN_cuMemcpy3DAsync_v7000_ptsz, (const CUDA_MEMCPY3D_v2 *pCopy, CUstream hStream), (pCopy, hStream))\
	G(cuMemsetD8_v2, PFN_cuMemsetD8_v3020, (CUdeviceptr_v2 dstDevice, unsigned char uc, size_t N), (dstDevice, uc, N))\
	G(cuMemsetD8_v2_ptds, PFN_cuMemsetD8_v7000_ptds, (CUdeviceptr_v2 dstDevice, unsigned char uc, size_t N), (dstDevice, uc, N))\
	G(cuMemsetD8Async, PFN_cuMemsetD8Async_v3020, (CUdeviceptr_v2 dstDevice, unsigned char uc, size_t N, CUstream hStream), (dstDevice, uc, N, hStream))\
	G(cuMemsetD8Async_ptsz, PFN_cuMemsetD8Async_v7000_ptsz, (CUdeviceptr_v2 dstDevice, unsigned char uc, size_t N, CUstream hStream), (dstDevice, uc, N, hStream))\
	G(cuMemsetD16_v2, PFN_cuMemsetD16_v3020, (CUdeviceptr_v2 dstDevice, unsigned short us, size_t N), (dstDevice, us, N))\
	G(cuMemsetD16_v2_ptds, PFN_cuMemsetD16_v7000_ptds, (CUdeviceptr_v2 dstDevice, unsigned short us, size_t N), (dstDevice, us, N))\
	G(cuMemsetD16Async, PFN_cuMemsetD16Async_v3020, (CUdeviceptr_v2 dstDevice, unsigned short us, size_t N, CUstream hStream), (dstDevice, us, N, hStream))\
	G(cuMemsetD16Async_ptsz, PFN_cuMemsetD16Async_v7000_ptsz, (CUdeviceptr_v2 dstDevice, unsigned short us, size_t N, CUstream hStream), (dstDevice, us, N, hStream))\
	G(cuMemsetD32_v2, PFN_cuMemsetD32_v3020, (CUdeviceptr_v2 dstDevice, unsigned int ui, size_t N), (dstDevice, ui, N))\
	G(cuMemsetD32_v2_ptds, PFN_cuMemsetD32_v7000_ptds, (CUdeviceptr_v2 dstDevice, unsigned int ui, size_t N), (dstDevice, ui, N))\
	G(cuMemsetD32Async, PFN_cuMemsetD32Async_v3020, (CUdeviceptr_v2 dstDevice, unsigned int ui, size_t N, CUstream hStream), (dstDevice, ui, N, hStream))\
	G(cuMemsetD32Async_ptsz, PFN_cuMemsetD32Async_v7000_ptsz, (CUdeviceptr_v2 dstDevice, unsigned int ui, size_t N, CUstream hStream), (dstDevice, ui, N, hStream))\
	G(cuMemsetD2D8_v2, PFN_cuMemsetD2D8_v3020, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned char uc, size_t Width, size_t Height), (dstDevice, dstPitch, uc, Width, Height))\
	G(cuMemsetD2D8_v2_ptds, PFN_cuMemsetD2D8_v7000_ptds, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned char uc, size_t Width, size_t Height), (dstDevice, dstPitch, uc, Width, Height))\
	G(cuMemsetD2D8Async, PFN_cuMemsetD2D8Async_v3020, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned char uc, size_t Width, size_t Height, CUstream hStream), (dstDevice, dstPitch, uc, Width, Height, hStream))\
	G(cuMemsetD2D8Async_ptsz, PFN_cuMemsetD2D8Async_v7000_ptsz, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned char uc, size_t Width, size_t Height, CUstream hStream), (dstDevice, dstPitch, uc, Width, Height, hStream))\
	G(cuMemsetD2D16_v2, PFN_cuMemsetD2D16_v3020, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned short us, size_t Width, size_t Height), (dstDevice, dstPitch, us, Width, Height))\
	G(cuMemsetD2D16_v2_ptds, PFN_cuMemsetD2D16_v7000_ptds, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned short us, size_t Width, size_t Height), (dstDevice, dstPitch, us, Width, Height))\
	G(cuMemsetD2D16Async, PFN_cuMemsetD2D16Async_v3020, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned short us, size_t Width, size_t Height, CUstream hStream), (dstDevice, dstPitch, us, Width, Height, hStream))\
	G(cuMemsetD2D16Async_ptsz, PFN_cuMemsetD2D16Async_v7000_ptsz, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned short us, size_t Width, size_t Height, CUstream hStream), (dstDevice, dstPitch, us, Width, Height, hStream))\
	G(cuMemsetD2D32_v2, PFN_cuMemsetD2D32_v3020, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned int ui, size_t Width, size_t Height), (dstDevice, dstPitch, ui, Width, Height))\
	G(cuMemsetD2D32_v2_ptds, PFN_cuMemsetD2D32_v7000_ptds, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned int ui, size_t Width, size_t Height), (dstDevice, dstPitch, ui, Width, Height))\
	G(cuMemsetD2D32Async, PFN_cuMemsetD2D32Async_v3020, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned int ui, size_t Width, size_t Height, CUstream hStream), (dstDevice, dstPitch, ui, Width, Height, hStream))\
	G(cuMemsetD2D32Async_ptsz, PFN_cuMemsetD2D32Async_v7000_ptsz, (CUdeviceptr_v2 dstDevice, size_t dstPitch, unsigned int ui, size_t Width, size_t Height, CUstream hStream), (dstDevice, dstPitch, ui, Width, Height, hStream))

/* Driver entry points libgmig calls itself and never wraps: U(name, pfn). */
#define GMIG_CUDA_USES(U)\
	U(cuDeviceGet, PFN_cuDeviceGet_v2000)\
	U(cuDeviceGetCount, PFN_cuDeviceGetCount_v2000)\
	U(cuDeviceGetUuid_v2, PFN_cuDeviceGetUuid_v11040)\
	U(cuDeviceGetName, PFN_cuDeviceGetName_v2000)\
	U(cuDeviceTotalMem_v2, PFN_cuDeviceTotalMem_v3020)\
	U(cuDevicePrimaryCtxRetain, PFN_cuDevicePrimaryCtxRetain_v7000)\
	U(cuCtxSetCurrent, PFN_cuCtxSetCurrent_v4000)\
	U(cuCtxGetCurrent, PFN_cuCtxGetCurrent_v4000)\
	U(cuCtxGetDevice, PFN_cuCtxGetDevice_v2000)\
	U(cuCtxSynchronize, PFN_cuCtxSynchronize_v2000)\
	U(cuStreamGetCtx, PFN_cuStreamGetCtx_v9020)\
	U(cuStreamSynchronize, PFN_cuStreamSynchronize_v2000)\
	U(cuEventCreate, PFN_cuEventCreate_v2000)\
	U(cuEventQuery, PFN_cuEventQuery_v2000)\
	U(cuEventDestroy_v2, PFN_cuEventDestroy_v4000)\
	U(cuMemGetAllocationGranularity, PFN_cuMemGetAllocationGranularity_v10020)\
	U(cuMemAddressReserve, PFN_cuMemAddressReserve_v10020)\
	U(cuMemAddressFree, PFN_cuMemAddressFree_v10020)\
	U(cuMemCreate, PFN_cuMemCreate_v10020)\
	U(cuMemMap, PFN_cuMemMap_v10020)\
	U(cuMemUnmap, PFN_cuMemUnmap_v10020)\
	U(cuMemSetAccess, PFN_cuMemSetAccess_v10020)\
	U(cuMemRelease, PFN_cuMemRelease_v10020)\
	U(cuMemHostRegister_v2, PFN_cuMemHostRegister_v6050)\
	U(cuMemHostUnregister, PFN_cuMemHostUnregister_v4000)\
	U(cuMemAllocHost_v2, PFN_cuMemAllocHost_v3020)\
	U(cuMemFreeHost, PFN_cuMemFreeHost_v2000)\
	U(cuLibraryLoadData, PFN_cuLibraryLoadData_v12000)\
	U(cuLibraryGetKernel, PFN_cuLibraryGetKernel_v12000)\
	U(cuCtxPushCurrent_v2, PFN_cuCtxPushCurrent_v4000)\
	U(cuCtxPopCurrent_v2, PFN_cuCtxPopCurrent_v4000)\
	U(cuThreadExchangeStreamCaptureMode, PFN_cuThreadExchangeStreamCaptureMode_v10010)\
	U(cuGetErrorName, PFN_cuGetErrorName_v6000)

/* The checkpoint entry points, looked up with cuGetProcAddress; NULL on a driver without them. */
#define GMIG_CUDA_CKPT(K)\
	K(cuCheckpointProcessLock, PFN_cuCheckpointProcessLock_v12080)\
	K(cuCheckpointProcessCheckpoint, PFN_cuCheckpointProcessCheckpoint_v12080)\
	K(cuCheckpointProcessRestore, PFN_cuCheckpointProcessRestore_v12080)\
	K(cuCheckpointProcessUnlock, PFN_cuCheckpointProcessUnlock_v12080)\
	K(cuCheckpointProcessGetState, PFN_cuCheckpointProcessGetState_v12080)

#endif
