// distill/cpu/batchnorm.hpp -- CPU kernels of batch normalisation (statistics, affine map, backward sums).
//
// Raw kernels on contiguous row-major pointers; the autograd op is in ops/batchnorm.hpp (its Cuda kernels in
// kernels/batchnorm.cuh). Layout: x is [B, C, L] (L = 1 for [B, C] inputs), channel c of sample b is
// the contiguous row x + (b*C + c)*L.
//
// Determinism: every reduction is done per row (one thread) and rows are combined in a fixed order, so results
// are bitwise identical for any thread count. Reductions accumulate in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"

namespace distill::cpu {

namespace detail {
/// Contiguous [c0, c1) range of `n` items for part `t` of `parts`.
inline void split_range(index_t n, int parts, int t, index_t& c0, index_t& c1) {
  const index_t per = (n + parts - 1) / parts;
  c0 = std::min<index_t>(n, t * per);
  c1 = std::min<index_t>(n, c0 + per);
}
}  // namespace detail

/// Per-channel mean and biased variance over the B*L values of each channel of x [B, C, L].
/// `mean` and `var` have C entries. Two-level: exact per-row mean and M2 (second pass over the row while it
/// is in cache), rows merged with Chan's formula, so large means do not cancel.
template <class T>
void batch_norm_stats(int threads, const T* x, index_t B, index_t C, index_t L, double* mean, double* var) {
  const double n = double(B) * double(L);
  if (L == 1) {
    // [B, C]: channels are contiguous within a row; each thread owns a range of channels and walks the batch.
    const int nt = static_cast<int>(std::clamp<index_t>(std::min(C / 16, B * C / 32768), 1, threads));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; ++t) {
      index_t c0, c1;
      detail::split_range(C, nt, t, c0, c1);
      for (index_t c = c0; c < c1; ++c) {
        mean[c] = 0;
        var[c] = 0;
      }
      for (index_t b = 0; b < B; ++b) {
        const T* xr = x + b * C;
#pragma omp simd
        for (index_t c = c0; c < c1; ++c) mean[c] += double(xr[c]);
      }
      for (index_t c = c0; c < c1; ++c) mean[c] /= n;
      for (index_t b = 0; b < B; ++b) {
        const T* xr = x + b * C;
#pragma omp simd
        for (index_t c = c0; c < c1; ++c) {
          const double d = double(xr[c]) - mean[c];
          var[c] += d * d;
        }
      }
      for (index_t c = c0; c < c1; ++c) var[c] /= n;
    }
    return;
  }
  const index_t rows = B * C;
  std::vector<double> rmean(static_cast<std::size_t>(rows)), rm2(static_cast<std::size_t>(rows));
  const int nt = static_cast<int>(std::clamp<index_t>(rows * L / 32768, 1, threads));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * L;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (index_t l = 0; l < L; ++l) s += double(xr[l]);
    const double m = s / double(L);
    double q = 0;
#pragma omp simd reduction(+ : q)
    for (index_t l = 0; l < L; ++l) {
      const double d = double(xr[l]) - m;
      q += d * d;
    }
    rmean[r] = m;
    rm2[r] = q;
  }
  for (index_t c = 0; c < C; ++c) {
    double s = 0;
    for (index_t b = 0; b < B; ++b) s += rmean[b * C + c];
    const double m = s / double(B);
    double q = 0;
    for (index_t b = 0; b < B; ++b) {
      const double d = rmean[b * C + c] - m;
      q += rm2[b * C + c] + double(L) * d * d;
    }
    mean[c] = m;
    var[c] = q / n;
  }
}

/// y = (x - shift[c]) * scale[c] + bias[c] for x, y [B, C, L]. y may alias x.
template <class T>
void channel_affine(int threads, const T* x, T* y, index_t B, index_t C, index_t L, const T* shift, const T* scale,
                    const T* bias) {
  if (L == 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (index_t b = 0; b < B; ++b) {
      const T* xr = x + b * C;
      T* yr = y + b * C;
#pragma omp simd
      for (index_t c = 0; c < C; ++c) yr[c] = (xr[c] - shift[c]) * scale[c] + bias[c];
    }
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t r = 0; r < B * C; ++r) {
    const index_t c = r % C;
    const T m = shift[c], a = scale[c], o = bias[c];
    const T* xr = x + r * L;
    T* yr = y + r * L;
#pragma omp simd
    for (index_t l = 0; l < L; ++l) yr[l] = (xr[l] - m) * a + o;
  }
}

/// Per-channel sums for the batch-norm backward: sum_dy[c] = sum dy, sum_dy_xmu[c] = sum dy * (x - mean[c]).
/// `x` may be null, then sum_dy_xmu is not computed.
template <class T>
void batch_norm_grad_sums(int threads, const T* x, const T* dy, index_t B, index_t C, index_t L, const T* mean,
                          double* sum_dy, double* sum_dy_xmu) {
  if (L == 1) {
    const int nt = static_cast<int>(std::clamp<index_t>(std::min(C / 16, B * C / 32768), 1, threads));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; ++t) {
      index_t c0, c1;
      detail::split_range(C, nt, t, c0, c1);
      for (index_t c = c0; c < c1; ++c) {
        sum_dy[c] = 0;
        if (x) sum_dy_xmu[c] = 0;
      }
      for (index_t b = 0; b < B; ++b) {
        const T* gr = dy + b * C;
        if (x) {
          const T* xr = x + b * C;
#pragma omp simd
          for (index_t c = c0; c < c1; ++c) {
            sum_dy[c] += double(gr[c]);
            sum_dy_xmu[c] += double(gr[c]) * (double(xr[c]) - double(mean[c]));
          }
        } else {
#pragma omp simd
          for (index_t c = c0; c < c1; ++c) sum_dy[c] += double(gr[c]);
        }
      }
    }
    return;
  }
  const index_t rows = B * C;
  std::vector<double> rs(static_cast<std::size_t>(rows)), rq(x ? static_cast<std::size_t>(rows) : 0);
  const int nt = static_cast<int>(std::clamp<index_t>(rows * L / 32768, 1, threads));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t r = 0; r < rows; ++r) {
    const T* gr = dy + r * L;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (index_t l = 0; l < L; ++l) s += double(gr[l]);
    rs[r] = s;
    if (x) {
      const T* xr = x + r * L;
      const double m = double(mean[r % C]);
      double q = 0;
#pragma omp simd reduction(+ : q)
      for (index_t l = 0; l < L; ++l) q += double(gr[l]) * (double(xr[l]) - m);
      rq[r] = q;
    }
  }
  for (index_t c = 0; c < C; ++c) {
    double s = 0, q = 0;
    for (index_t b = 0; b < B; ++b) {
      s += rs[b * C + c];
      if (x) q += rq[b * C + c];
    }
    sum_dy[c] = s;
    if (x) sum_dy_xmu[c] = q;
  }
}

/// dx += k_dy[c] * dy + k_x[c] * (x - mean[c]) + k_0[c]. With x == null only dx += k_dy[c] * dy (eval mode).
template <class T>
void batch_norm_input_grad(int threads, const T* x, const T* dy, T* dx, index_t B, index_t C, index_t L,
                           const T* mean, const T* k_dy, const T* k_x, const T* k_0) {
  if (L == 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (index_t b = 0; b < B; ++b) {
      const T* gr = dy + b * C;
      T* dr = dx + b * C;
      if (x) {
        const T* xr = x + b * C;
#pragma omp simd
        for (index_t c = 0; c < C; ++c) dr[c] += k_dy[c] * gr[c] + k_x[c] * (xr[c] - mean[c]) + k_0[c];
      } else {
#pragma omp simd
        for (index_t c = 0; c < C; ++c) dr[c] += k_dy[c] * gr[c];
      }
    }
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t r = 0; r < B * C; ++r) {
    const index_t c = r % C;
    const T* gr = dy + r * L;
    T* dr = dx + r * L;
    const T a = k_dy[c];
    if (x) {
      const T* xr = x + r * L;
      const T m = mean[c], kx = k_x[c], k0 = k_0[c];
#pragma omp simd
      for (index_t l = 0; l < L; ++l) dr[l] += a * gr[l] + kx * (xr[l] - m) + k0;
    } else {
#pragma omp simd
      for (index_t l = 0; l < L; ++l) dr[l] += a * gr[l];
    }
  }
}

}  // namespace distill::cpu
