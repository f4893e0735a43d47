// kernels/softmax.cuh -- softmax and log-softmax over the rows of [rows, cols], forward and backward side by side
// (one warp per row, kernels/rows.cuh; sums in double, row maxima for stability). Backward entry points take
// `accumulate` (dx += ... or dx = ...).
#pragma once

#include "rows.cuh"

namespace distill::kernels {

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
// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------

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
