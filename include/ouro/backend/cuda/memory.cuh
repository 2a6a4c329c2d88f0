// The CUDA backend's memory (issue #14): backend_memory<cuda> for tensor<T, cuda>,
// parameter_store<T, cuda> and every device_buffer, on one stream for the whole process.
//
// Blocks come from a caching allocator (core/buffer_cache.hpp's block_cache over cudaMalloc, every
// size cached: cudaMalloc and cudaFree synchronise the device and cost far more than a kernel).
// A freed block is reused by later work on the same stream, which runs after the work that last
// used it, so no event is needed (the argument of PyTorch's caching allocator). No managed memory:
// every host access is an explicit copy (copy_from_host, to_host), which waits for the stream.
#pragma once

#if !defined(__CUDACC__)
#error "ouro/backend/cuda/memory.cuh is for translation units compiled by nvcc (link ouro::cuda)"
#endif

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <new>
#include <string>

#include "ouro/core/backend.hpp"
#include "ouro/core/buffer_cache.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/memory.hpp"

namespace ouro {

namespace cuda_kernels {

// Throws ouro::error naming `what` and CUDA's message unless e is cudaSuccess.
inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) fail("cuda: ", what, " failed: ", cudaGetErrorString(e));
}

// "name (sm_XY, N MiB)" of the device this host thread uses, or an ouro::error that says why no
// GPU is usable (no driver, no device, a device the runtime cannot open), for programs that were
// asked to run on one (examples' --device cuda) to stop before any work with one clear line.
inline std::string require_device() {
    int devices = 0;
    const cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        fail("cuda: no usable GPU: cudaGetDeviceCount failed: ", cudaGetErrorString(e));
    }
    if (devices == 0) fail("cuda: no usable GPU: cudaGetDeviceCount found 0 devices");
    int device = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
    return std::string(p.name) + " (sm_" + std::to_string(p.major * 10 + p.minor) + ", " +
           std::to_string(p.totalGlobalMem >> 20) + " MiB)";
}

// The stream every op and copy runs on, from every host thread: CUDA's legacy default stream, one
// queue for the process. The block cache below is shared by all host threads and hands a freed
// block to the next allocation at once; that is safe only because the next use is queued behind
// the last one. With a stream per host thread (cudaStreamPerThread, used here until 2026-12-07) a
// block freed by one thread (a model copy of the latent extractor destroyed by the main thread,
// say) could be rewritten on another stream while the first stream's kernels still read it.
// Threads keep their own cuBLAS handles (a handle is not for concurrent use), all on this stream.
inline cudaStream_t stream() { return cudaStreamLegacy; }

// This host thread's cuBLAS handle, on stream(): made on first use, kept for the thread's life.
inline cublasHandle_t blas() {
    struct owner {
        cublasHandle_t handle = nullptr;
        owner() {
            if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS)
                fail("cuda: cublasCreate failed (no device, or out of memory)");
            if (cublasSetStream(handle, stream()) != CUBLAS_STATUS_SUCCESS) fail("cuda: cublasSetStream failed");
        }
        ~owner() { cublasDestroy(handle); }
    };
    thread_local owner o;
    return o.handle;
}

inline void check_blas(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS) fail("cuda: ", what, " failed: cuBLAS status ", static_cast<int>(s));
}

// Device memory for the cache: cudaMalloc's blocks are 256-byte aligned.
struct device_blocks {
    static constexpr std::size_t min_cached_bytes = 0;
    static constexpr std::size_t alignment = 256;
    static void* allocate(std::size_t bytes) {
        void* p = nullptr;
        if (cudaMalloc(&p, bytes) != cudaSuccess) {
            (void)cudaGetLastError();  // clear the sticky-free error state of a failed allocation
            throw std::bad_alloc();
        }
        return p;
    }
    static void deallocate(void* p) noexcept { (void)cudaFree(p); }
};

// The process's cache of device blocks (one device: the current one when first used).
class device_cache : public block_cache<device_blocks> {
public:
    static device_cache& instance() {
        static device_cache* cache = new device_cache();  // never destroyed, as buffer_cache
        return *cache;
    }

private:
    device_cache() = default;
};

}  // namespace cuda_kernels

template <>
struct backend_memory<cuda> {
    static void* allocate(std::size_t bytes) {
        try {
            return cuda_kernels::device_cache::instance().acquire(bytes == 0 ? 1 : bytes);
        } catch (const std::bad_alloc&) {
            fail("cuda: cannot allocate ", bytes,
                 " bytes of device memory (out of memory; cached blocks were freed first)");
        }
    }
    static void deallocate(void* p, std::size_t bytes) noexcept {
        cuda_kernels::device_cache::instance().release(p, bytes == 0 ? 1 : bytes);
    }
    static void zero(void* p, std::size_t bytes) {
        cuda_kernels::check(cudaMemsetAsync(p, 0, bytes, cuda_kernels::stream()), "cudaMemsetAsync");
    }
    static void copy(void* dst, const void* src, std::size_t bytes) {
        cuda_kernels::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_kernels::stream()),
                            "cudaMemcpyAsync (device to device)");
    }
    // Host to device: returns once the host buffer may be reused.
    static void copy_from_host(void* dst, const void* src, std::size_t bytes) {
        cuda_kernels::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_kernels::stream()),
                            "cudaMemcpyAsync (host to device)");
        cuda_kernels::check(cudaStreamSynchronize(cuda_kernels::stream()), "cudaStreamSynchronize");
    }
    // Device to host, after every op queued before it.
    static void copy_to_host(void* dst, const void* src, std::size_t bytes) {
        cuda_kernels::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_kernels::stream()),
                            "cudaMemcpyAsync (device to host)");
        cuda_kernels::check(cudaStreamSynchronize(cuda_kernels::stream()), "cudaStreamSynchronize");
    }
};
static_assert(device_backend<cuda>);

}  // namespace ouro
