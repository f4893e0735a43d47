// kernels/normalize.cuh -- L2 normalisation of the rows of [rows, cols] (F.normalize), forward and backward side by
// side (one warp per row, kernels/rows.cuh; norms in double).
#pragma once

#include "rows.cuh"

namespace distill::kernels {

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

}  // namespace distill::kernels
