// kernels/rows.cuh -- what the row-wise kernels over [rows, cols] share (softmax.cuh, normalize.cuh,
// cross_entropy.cuh, the fused losses): one warp per row, its reductions and the launch configuration.
//
// One warp owns one row: lanes stride over the columns (coalesced), reduce with butterflies (warp_sum /
// warp_max: every lane gets the bitwise same value), then write the row. A 256-thread block holds 8 rows; a warp
// past the last row returns as a whole (no block barrier in these kernels, so that is safe). Sums accumulate in
// double; a lane's partial covers a fixed column set and the butterfly order is fixed, so results are
// deterministic. Row maxima make softmax / log-softmax stable for logits of +-1e4 (exp(x - max) <= 1).
// Backward entry points take `accumulate` (dx += ... or dx = ..., see elementwise.cuh).
#pragma once

#include "elementwise.cuh"

namespace distill::kernels {

inline constexpr int kRowThreads = 256;
inline constexpr int kRowsPerBlock = kRowThreads / kWarpSize;

/// The row this thread's warp owns (may be >= rows: the warp then returns).
__device__ __forceinline__ index_t warp_row() {
  return static_cast<index_t>(blockIdx.x) * kRowsPerBlock + static_cast<index_t>(threadIdx.x) / kWarpSize;
}
__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x) % kWarpSize; }

/// max over the row, on every lane of the warp.
template <class T>
__device__ __forceinline__ T row_max(const T* __restrict__ xr, index_t cols, int lane) {
  T m = static_cast<T>(-INFINITY);
  for (index_t j = lane; j < cols; j += kWarpSize) m = xr[j] > m ? xr[j] : m;
  return warp_max(m);
}
/// sum_j exp(x_j - m) in double, on every lane of the warp.
template <class T>
__device__ __forceinline__ double row_sum_exp(const T* __restrict__ xr, index_t cols, T m, int lane) {
  double s = 0;
  for (index_t j = lane; j < cols; j += kWarpSize) s += static_cast<double>(device_exp(xr[j] - m));
  return warp_sum(s);
}

/// LOG: y = x - logsumexp(x); else y = exp(x - max) / sum(exp(x - max)).
// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------
/// One block per kRowsPerBlock rows; checks the extents.
inline LaunchConfig row_launch(const char* what, index_t rows, index_t cols, cudaStream_t s) {
  DISTILL_CHECK(rows >= 0 && cols >= 0, what, ": negative extent in [", rows, ", ", cols, "]");
  DISTILL_CHECK(ceil_div(rows, kRowsPerBlock) <= 2147483647, what, ": too many rows (", rows, ")");
  return LaunchConfig{dim3(static_cast<unsigned int>(ceil_div(rows, kRowsPerBlock))), dim3(kRowThreads), 0, s};
}

}  // namespace distill::kernels
