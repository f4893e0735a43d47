// kernels/rows.cuh -- row-wise kernels over [rows, cols]: softmax, log-softmax, L2 normalisation, forward and
// backward side by side.
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
template <class T, bool LOG>
__global__ void __launch_bounds__(kRowThreads)
    softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, index_t rows, index_t cols) {
  const index_t row = warp_row();
  if (row >= rows) return;
  const int lane = lane_id();
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  const T m = row_max(xr, cols, lane);
  const double s = row_sum_exp(xr, cols, m, lane);
  if constexpr (LOG) {
    const T lse = m + static_cast<T>(device_log(s));
    for (index_t j = lane; j < cols; j += kWarpSize) yr[j] = xr[j] - lse;
  } else {
    const T inv = static_cast<T>(1.0 / s);
    for (index_t j = lane; j < cols; j += kWarpSize) yr[j] = device_exp(xr[j] - m) * inv;
  }
}

/// From the forward output y. LOG: dx (+)= dy - exp(y) * sum(dy); else dx (+)= y * (dy - <y, dy>).
template <class T, bool LOG>
__global__ void __launch_bounds__(kRowThreads)
    softmax_rows_backward_kernel(const T* __restrict__ y, const T* __restrict__ dy, T* __restrict__ dx, index_t rows,
                                 index_t cols, int accumulate) {
  const index_t row = warp_row();
  if (row >= rows) return;
  const int lane = lane_id();
  const T* yr = y + row * cols;
  const T* gr = dy + row * cols;
  T* dr = dx + row * cols;
  double s = 0;
  for (index_t j = lane; j < cols; j += kWarpSize)
    s += LOG ? static_cast<double>(gr[j]) : static_cast<double>(yr[j]) * gr[j];
  const T r = static_cast<T>(warp_sum(s));
  for (index_t j = lane; j < cols; j += kWarpSize) {
    const T v = LOG ? gr[j] - device_exp(yr[j]) * r : yr[j] * (gr[j] - r);
    dr[j] = accumulate ? dr[j] + v : v;
  }
}

/// y = x / max(||x||, eps) per row; norms[row] = ||x|| (before the clamp).
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    l2_normalize_rows_kernel(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ norms, index_t rows,
                             index_t cols, double eps) {
  const index_t row = warp_row();
  if (row >= rows) return;
  const int lane = lane_id();
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  double s = 0;
  for (index_t j = lane; j < cols; j += kWarpSize) s += static_cast<double>(xr[j]) * xr[j];
  const double n = device_sqrt(warp_sum(s));
  if (lane == 0) norms[row] = static_cast<T>(n);
  const T inv = static_cast<T>(1.0 / (n > eps ? n : eps));
  for (index_t j = lane; j < cols; j += kWarpSize) yr[j] = xr[j] * inv;
}

/// dx (+)= (dy - y <y, dy>) / n for n = norms[row] > eps, else dy / eps (the clamp is constant there).
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    l2_normalize_rows_backward_kernel(const T* __restrict__ y, const T* __restrict__ norms, const T* __restrict__ dy,
                                      T* __restrict__ dx, index_t rows, index_t cols, double eps, int accumulate) {
  const index_t row = warp_row();
  if (row >= rows) return;
  const int lane = lane_id();
  const T* yr = y + row * cols;
  const T* gr = dy + row * cols;
  T* dr = dx + row * cols;
  const double n = static_cast<double>(norms[row]);
  if (n > eps) {  // uniform across the warp
    double s = 0;
    for (index_t j = lane; j < cols; j += kWarpSize) s += static_cast<double>(yr[j]) * gr[j];
    const T dot = static_cast<T>(warp_sum(s)), inv = static_cast<T>(1.0 / n);
    for (index_t j = lane; j < cols; j += kWarpSize) {
      const T v = (gr[j] - yr[j] * dot) * inv;
      dr[j] = accumulate ? dr[j] + v : v;
    }
  } else {
    const T inv = static_cast<T>(1.0 / eps);
    for (index_t j = lane; j < cols; j += kWarpSize) {
      const T v = gr[j] * inv;
      dr[j] = accumulate ? dr[j] + v : v;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------
/// One block per kRowsPerBlock rows; checks the extents.
inline LaunchConfig row_launch(const char* what, index_t rows, index_t cols, cudaStream_t s) {
  DISTILL_CHECK(rows >= 0 && cols >= 0, what, ": negative extent in [", rows, ", ", cols, "]");
  DISTILL_CHECK(ceil_div(rows, kRowsPerBlock) <= 2147483647, what, ": too many rows (", rows, ")");
  return LaunchConfig{dim3(static_cast<unsigned int>(ceil_div(rows, kRowsPerBlock))), dim3(kRowThreads), 0, s};
}

template <class T>
void softmax_rows(cudaStream_t s, const T* x, T* y, index_t rows, index_t cols, bool log) {
  const LaunchConfig cfg = row_launch(log ? "log_softmax_rows" : "softmax_rows", rows, cols, s);
  DISTILL_CHECK(rows == 0 || cols > 0, log ? "log_softmax_rows" : "softmax_rows", ": rows of [", rows, ", ", cols,
                "] are empty");
  if (log) launch("log_softmax_rows_kernel", softmax_rows_kernel<T, true>, cfg, x, y, rows, cols);
  else launch("softmax_rows_kernel", softmax_rows_kernel<T, false>, cfg, x, y, rows, cols);
}

template <class T>
void softmax_rows_backward(cudaStream_t s, const T* y, const T* dy, T* dx, index_t rows, index_t cols, bool log,
                           bool accumulate) {
  const LaunchConfig cfg = row_launch(log ? "log_softmax_rows_backward" : "softmax_rows_backward", rows, cols, s);
  if (log)
    launch("log_softmax_rows_backward_kernel", softmax_rows_backward_kernel<T, true>, cfg, y, dy, dx, rows, cols,
           accumulate ? 1 : 0);
  else
    launch("softmax_rows_backward_kernel", softmax_rows_backward_kernel<T, false>, cfg, y, dy, dx, rows, cols,
           accumulate ? 1 : 0);
}

template <class T>
void l2_normalize_rows(cudaStream_t s, const T* x, T* y, T* norms, index_t rows, index_t cols, double eps) {
  DISTILL_CHECK(eps > 0, "l2_normalize_rows: eps must be positive, got ", eps);
  launch("l2_normalize_rows_kernel", l2_normalize_rows_kernel<T>, row_launch("l2_normalize_rows", rows, cols, s), x, y,
         norms, rows, cols, eps);
}

template <class T>
void l2_normalize_rows_backward(cudaStream_t s, const T* y, const T* norms, const T* dy, T* dx, index_t rows,
                                index_t cols, double eps, bool accumulate) {
  DISTILL_CHECK(eps > 0, "l2_normalize_rows_backward: eps must be positive, got ", eps);
  launch("l2_normalize_rows_backward_kernel", l2_normalize_rows_backward_kernel<T>,
         row_launch("l2_normalize_rows_backward", rows, cols, s), y, norms, dy, dx, rows, cols, eps,
         accumulate ? 1 : 0);
}

// The entry points: softmax and log-softmax by name.
template <class T>
void softmax_rows(cudaStream_t s, const T* x, T* y, index_t rows, index_t cols) {
  softmax_rows<T>(s, x, y, rows, cols, false);
}
template <class T>
void log_softmax_rows(cudaStream_t s, const T* x, T* y, index_t rows, index_t cols) {
  softmax_rows<T>(s, x, y, rows, cols, true);
}
template <class T>
void softmax_rows_backward(cudaStream_t s, const T* y, const T* dy, T* dx, index_t rows, index_t cols,
                           bool accumulate) {
  softmax_rows_backward<T>(s, y, dy, dx, rows, cols, false, accumulate);
}
template <class T>
void log_softmax_rows_backward(cudaStream_t s, const T* y, const T* dy, T* dx, index_t rows, index_t cols,
                               bool accumulate) {
  softmax_rows_backward<T>(s, y, dy, dx, rows, cols, true, accumulate);
}

}  // namespace distill::kernels
