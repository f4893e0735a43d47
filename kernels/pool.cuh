// kernels/pool.cuh -- global average pooling over time: [B, C, L] -> [B, C], forward and backward.
#pragma once

#include "elementwise.cuh"
#include "reduce.cuh"

namespace distill::kernels {

/// dx[b, c, t] (+)= dy[b, c] / L.
template <class T, bool ACCUMULATE>
__global__ void gap_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, index_t length, T inv_length,
                                    index_t n) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const T g = dy[i / length] * inv_length;
    if constexpr (ACCUMULATE) dx[i] += g;
    else dx[i] = g;
  }
}

template <class T>
void global_avg_pool_forward(cudaStream_t s, const T* x, T* y, index_t batch, index_t channels, index_t length) {
  DISTILL_CHECK(batch >= 0 && channels >= 0 && length >= 1, "global_avg_pool_forward: invalid shape [", batch, ", ",
                channels, ", ", length, "] (length must be >= 1)");
  sum_axis1<T>(s, x, batch * channels, length, y, 1.0 / static_cast<double>(length), false);
}

template <class T>
void global_avg_pool_backward(cudaStream_t s, const T* dy, T* dx, index_t batch, index_t channels, index_t length,
                              bool accumulate) {
  DISTILL_CHECK(batch >= 0 && channels >= 0 && length >= 1, "global_avg_pool_backward: invalid shape [", batch, ", ",
                channels, ", ", length, "] (length must be >= 1)");
  const index_t n = batch * channels * length;
  if (n == 0) return;
  const LaunchConfig cfg{elementwise_grid(n), dim3(kElementwiseThreads), 0, s};
  const T inv = T(1) / static_cast<T>(length);
  if (accumulate) launch("gap_backward_kernel<accumulate>", gap_backward_kernel<T, true>, cfg, dy, dx, length, inv, n);
  else launch("gap_backward_kernel", gap_backward_kernel<T, false>, cfg, dy, dx, length, inv, n);
}

}  // namespace distill::kernels
