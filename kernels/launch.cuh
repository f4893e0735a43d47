// kernels/launch.cuh -- the one launch helper and the CUDA / cuBLAS error checks.
//
// Every kernel launch in distill goes through launch(): `kernel<<<grid, block, shared, stream>>>` under nvcc,
// simt::launch() under the emulator. It checks the launch and throws distill::Error naming the kernel and its
// configuration. Defining DISTILL_CUDA_SYNC_CHECK makes it also wait for the kernel, so an asynchronous fault
// is reported with the kernel's name (debug builds).
#pragma once

#include <cstddef>
#include <utility>

#include "common.cuh"
#include "distill/core/error.hpp"

/// Throws distill::Error naming the call and the CUDA error if `expr` does not return cudaSuccess.
#define DISTILL_CUDA_CHECK(expr)                                                                             \
  do {                                                                                                       \
    const cudaError_t distill_cuda_err_ = (expr);                                                            \
    if (distill_cuda_err_ != cudaSuccess)                                                                    \
      DISTILL_FAIL("CUDA call `", #expr, "` failed: ", cudaGetErrorName(distill_cuda_err_), " (",            \
                   cudaGetErrorString(distill_cuda_err_), ")");                                              \
  } while (0)

/// Throws distill::Error naming the call and the cuBLAS status if `expr` does not return CUBLAS_STATUS_SUCCESS.
#define DISTILL_CUBLAS_CHECK(expr)                                                                           \
  do {                                                                                                       \
    const cublasStatus_t distill_cublas_st_ = (expr);                                                        \
    if (distill_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                         \
      DISTILL_FAIL("cuBLAS call `", #expr, "` failed: ", cublasGetStatusName(distill_cublas_st_), " (",      \
                   cublasGetStatusString(distill_cublas_st_), ")");                                          \
  } while (0)

namespace distill::kernels {

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
};

/// Launches `kernel` with `cfg`, converting `args` to the kernel's parameter types. A grid with a zero
/// extent means "no work" and launches nothing. Throws naming `name` if the launch fails.
template <class... P, class... A>
void launch(const char* name, void (*kernel)(P...), const LaunchConfig& cfg, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: the argument count differs from the kernel's parameter count.");
  if (cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0) return;
#if defined(__CUDACC__)
  kernel<<<cfg.grid, cfg.block, cfg.shared_bytes, cfg.stream>>>(static_cast<P>(std::forward<A>(args))...);
  cudaError_t err = cudaGetLastError();
#else
  cudaError_t err = ::simt::launch(kernel, cfg.grid, cfg.block, cfg.shared_bytes, cfg.stream,
                                   static_cast<P>(std::forward<A>(args))...);
  if (err != cudaSuccess) (void)cudaGetLastError();  // consume it, as cudaGetLastError does after <<<>>>
#endif
#if defined(DISTILL_CUDA_SYNC_CHECK)
  if (err == cudaSuccess) err = cudaStreamSynchronize(cfg.stream);
#endif
  if (err != cudaSuccess)
    DISTILL_FAIL("CUDA kernel '", name, "' failed to launch (grid ", cfg.grid.x, "x", cfg.grid.y, "x", cfg.grid.z,
                 ", block ", cfg.block.x, "x", cfg.block.y, "x", cfg.block.z, ", ", cfg.shared_bytes,
                 " B dynamic shared memory): ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

}  // namespace distill::kernels
