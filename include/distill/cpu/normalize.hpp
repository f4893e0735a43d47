// distill/cpu/normalize.hpp -- CPU kernels of row-wise L2 normalisation (F.normalize), forward and backward.
//
// Raw kernels on contiguous row-major pointers; the autograd op is in ops/normalize.hpp (its Cuda kernels in
// kernels/normalize.cuh). One row per iteration, norms accumulated in double: bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <cmath>

#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"

namespace distill::cpu {

/// Row-wise y = x / max(||x||, eps) for x [B, D]; norms[b] = ||x_b|| (before clamping).
template <class T>
void l2_normalize_rows(int threads, const T* x, T* y, T* norms, index_t B, index_t D, double eps) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    const T* xr = x + b * D;
    T* yr = y + b * D;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (index_t d = 0; d < D; ++d) s += double(xr[d]) * double(xr[d]);
    const double n = std::sqrt(s);
    norms[b] = static_cast<T>(n);
    const T inv = static_cast<T>(1.0 / std::max(n, eps));
#pragma omp simd
    for (index_t d = 0; d < D; ++d) yr[d] = xr[d] * inv;
  }
}

/// Backward of l2_normalize_rows: dx += (dy - y * <y, dy>) / n where n = ||x|| > eps, else dx += dy / eps.
template <class T>
void l2_normalize_rows_backward(int threads, const T* y, const T* norms, const T* dy, T* dx, index_t B, index_t D,
                                double eps) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    const T* yr = y + b * D;
    const T* gr = dy + b * D;
    T* dr = dx + b * D;
    const double n = double(norms[b]);
    if (n > eps) {
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (index_t d = 0; d < D; ++d) s += double(yr[d]) * double(gr[d]);
      const T dot = static_cast<T>(s), inv = static_cast<T>(1.0 / n);
#pragma omp simd
      for (index_t d = 0; d < D; ++d) dr[d] += (gr[d] - yr[d] * dot) * inv;
    } else {
      const T inv = static_cast<T>(1.0 / eps);
#pragma omp simd
      for (index_t d = 0; d < D; ++d) dr[d] += gr[d] * inv;
    }
  }
}

}  // namespace distill::cpu
