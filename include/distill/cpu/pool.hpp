// distill/cpu/pool.hpp -- CPU kernels for global average pooling over time.
#pragma once

#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"

namespace distill::cpu {

/// y[r] = mean_l x[r, l] for `rows` contiguous rows of length L >= 1 (x [B, C, L] -> y [B, C]).
template <class T>
void mean_rows(int threads, const T* x, T* y, index_t rows, index_t L) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * L;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (index_t l = 0; l < L; ++l) s += double(xr[l]);
    y[r] = static_cast<T>(s / double(L));
  }
}

/// dx[r, l] += dy[r] / L.
template <class T>
void mean_rows_backward(int threads, const T* dy, T* dx, index_t rows, index_t L) {
  const T inv = T(1) / static_cast<T>(L);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t r = 0; r < rows; ++r) {
    const T g = dy[r] * inv;
    T* dr = dx + r * L;
#pragma omp simd
    for (index_t l = 0; l < L; ++l) dr[l] += g;
  }
}

}  // namespace distill::cpu
