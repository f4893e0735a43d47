// kernels/common.cuh -- what every kernel header includes: the CUDA runtime (nvcc) or the SIMT emulator (host
// compiler, DISTILL_SIMT_EMULATION), plus small device helpers shared by the kernel families.
//
// Rules for code in kernels/ (it must compile under both): no Eigen, fmt or Catch2; device code uses only the
// emulated subset documented in kernels/simt/emulator.hpp and docs/cuda.md; every launch goes through
// kernels/launch.cuh; dynamic shared memory through DISTILL_DYNAMIC_SHARED.
#pragma once

#if defined(__CUDACC__)
#include <cublas_v2.h>
#include <cuda_runtime.h>
#elif defined(DISTILL_SIMT_EMULATION)
#include "simt/emulator.hpp"
#else
#error "kernels/*.cuh: compile with nvcc, or with a host compiler and DISTILL_SIMT_EMULATION defined (emulation)."
#endif

#include <cmath>
#include <cstdint>
#include <type_traits>

/// DISTILL_DYNAMIC_SHARED(T, name): `T* name` pointing at the block's dynamic shared memory (16-byte aligned).
#if defined(__CUDACC__)
#define DISTILL_DYNAMIC_SHARED(T, name)                                                                      \
  extern __shared__ __align__(16) unsigned char distill_dynamic_shared_[];                                   \
  T* name = reinterpret_cast<T*>(distill_dynamic_shared_)
#else
#define DISTILL_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::simt::dynamic_shared_memory())
#endif

/// DISTILL_UNROLL: `#pragma unroll` for nvcc; nothing for host compilers (which warn about unknown pragmas).
#if defined(__CUDACC__)
#define DISTILL_UNROLL _Pragma("unroll")
#else
#define DISTILL_UNROLL
#endif

namespace distill::kernels {

using index_t = std::int64_t;
inline constexpr int kWarpSize = 32;
inline constexpr unsigned int kFullMask = 0xFFFFFFFFu;

__host__ __device__ __forceinline__ constexpr index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
template <class T>
__host__ __device__ __forceinline__ constexpr T min_of(T a, T b) {
  return a < b ? a : b;
}
template <class T>
__host__ __device__ __forceinline__ constexpr T max_of(T a, T b) {
  return a < b ? b : a;
}

__device__ __forceinline__ float device_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double device_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float device_rsqrt(float x) { return rsqrtf(x); }
__device__ __forceinline__ double device_rsqrt(double x) { return rsqrt(x); }

__device__ __forceinline__ float device_exp(float x) { return expf(x); }
__device__ __forceinline__ double device_exp(double x) { return exp(x); }
__device__ __forceinline__ float device_log(float x) { return logf(x); }
__device__ __forceinline__ double device_log(double x) { return log(x); }

/// Elements of T per 16 bytes: shared-memory rows padded to a multiple of this allow vector loads.
template <class T>
inline constexpr int kVecElems = static_cast<int>(16 / sizeof(T));

/// n rounded up to a multiple of kVecElems<T> (keeps the next shared-memory region 16-byte aligned).
template <class T>
__host__ __device__ __forceinline__ constexpr int align_to_vec(int n) {
  return (n + kVecElems<T> - 1) / kVecElems<T> * kVecElems<T>;
}

/// r[0..N) = p[0..N) from 16-byte-aligned memory: float4 / double2 vector loads under nvcc (one shared-memory
/// wavefront per 16 bytes when the warp broadcasts). The emulator checks the alignment a GPU would fault on.
template <int N, class T>
__device__ __forceinline__ void load_aligned(T (&r)[N], const T* p) {
#if defined(__CUDACC__)
  if constexpr (std::is_same_v<T, float> && N % 4 == 0) {
    DISTILL_UNROLL
    for (int i = 0; i < N / 4; ++i) {
      const float4 v = reinterpret_cast<const float4*>(p)[i];
      r[4 * i] = v.x;
      r[4 * i + 1] = v.y;
      r[4 * i + 2] = v.z;
      r[4 * i + 3] = v.w;
    }
  } else if constexpr (std::is_same_v<T, double> && N % 2 == 0) {
    DISTILL_UNROLL
    for (int i = 0; i < N / 2; ++i) {
      const double2 v = reinterpret_cast<const double2*>(p)[i];
      r[2 * i] = v.x;
      r[2 * i + 1] = v.y;
    }
  } else {
    DISTILL_UNROLL
    for (int i = 0; i < N; ++i) r[i] = p[i];
  }
#else
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) ::simt::detail::misuse("load_aligned: address not 16-byte aligned");
  for (int i = 0; i < N; ++i) r[i] = p[i];
#endif
}

/// Sum over the 32 lanes of a warp; every lane gets the same (bitwise identical) result.
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

/// Maximum over the 32 lanes of a warp; every lane gets the same result.
template <class A>
__device__ __forceinline__ A warp_max(A v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const A o = __shfl_xor_sync(kFullMask, v, offset);
    v = o > v ? o : v;
  }
  return v;
}

/// Deterministic block-wide sum for a block of THREADS threads (a multiple of 32, one-dimensional); every
/// thread gets the result. Contains __syncthreads: all threads of the block must call it.
template <int THREADS, class A>
__device__ __forceinline__ A block_sum(A v) {
  static_assert(THREADS % kWarpSize == 0 && THREADS <= 1024, "block_sum: THREADS must be a multiple of 32, at most 1024.");
  __shared__ A partial[THREADS / kWarpSize];
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  A total = A(0);
  for (int w = 0; w < THREADS / kWarpSize; ++w) total += partial[w];  // fixed order, every thread alike
  __syncthreads();  // `partial` may be reused by the next call
  return total;
}

}  // namespace distill::kernels
