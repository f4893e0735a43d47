// distill/cpu/cross_entropy.hpp -- CPU kernels for cross-entropy (hard and soft targets) and squared error.
//
// Cross-entropy never materialises the softmax: the forward keeps one log-sum-exp per row, the backward
// recomputes p = exp(x - lse) while writing the logit gradient. Batch reductions go through per-row (or
// fixed-size chunk) partials summed in a fixed order in double: deterministic for any thread count.
#pragma once

#include "distill/cpu/eigen_core.hpp"
#include <algorithm>
#include <vector>

#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"
#include "distill/cpu/softmax.hpp"

namespace distill::cpu {

/// Sum of per-row values in order (double).
template <class T>
double ordered_sum(const T* v, index_t n) {
  double s = 0;
  for (index_t i = 0; i < n; ++i) s += double(v[i]);
  return s;
}

/// Soft-target cross-entropy per row: loss[b] = sum_k p[b,k] * (lse[b] - x[b,k]).
template <class T>
void soft_xent_rows(int threads, const T* x, const T* p, const T* lse, T* loss, index_t B, index_t K) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    ConstArrMap<T> xr(x + b * K, K), pr(p + b * K, K);
    loss[b] = (pr * (lse[b] - xr)).sum();
  }
}

/// Hard-label cross-entropy backward: dx[b, :] += s * (exp(x[b, :] - lse[b]) - onehot(label[b])).
template <class T>
void hard_xent_backward(int threads, const T* x, const T* lse, const int* labels, T s, T* dx, index_t B,
                        index_t K) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    ConstArrMap<T> xr(x + b * K, K);
    ArrMap<T> dr(dx + b * K, K);
    dr += s * (xr - lse[b]).exp();
    dr[labels[b]] -= s;
  }
}

/// Soft-target cross-entropy backward. Logits: dx += s * (sum(p_b) * exp(x - lse) - p). Targets (if dp):
/// dp += -s * (x - lse) = -s * log_softmax(x).
template <class T>
void soft_xent_backward(int threads, const T* x, const T* p, const T* lse, T s, T* dx, T* dp, index_t B,
                        index_t K) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    ConstArrMap<T> xr(x + b * K, K), pr(p + b * K, K);
    if (dx) {
      ArrMap<T> dr(dx + b * K, K);
      const T ps = pr.sum();
      dr += s * (ps * (xr - lse[b]).exp() - pr);
    }
    if (dp) {
      ArrMap<T> dq(dp + b * K, K);
      dq -= s * (xr - lse[b]);
    }
  }
}

/// sum((a - b)^2) over n elements, in double, by fixed chunks of 8192 combined in order.
template <class T>
double squared_error_sum(int threads, const T* a, const T* b, index_t n) {
  constexpr index_t chunk = 8192;
  const index_t chunks = (n + chunk - 1) / chunk;
  std::vector<double> part(static_cast<std::size_t>(chunks));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t c = 0; c < chunks; ++c) {
    const index_t e = std::min(n, (c + 1) * chunk);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (index_t i = c * chunk; i < e; ++i) {
      const double d = double(a[i]) - double(b[i]);
      s += d * d;
    }
    part[static_cast<std::size_t>(c)] = s;
  }
  return ordered_sum(part.data(), chunks);
}

/// da += k * (a - b) over n elements (da may be null); db -= k * (a - b) (db may be null).
template <class T>
void squared_error_backward(int threads, const T* a, const T* b, T k, T* da, T* db, index_t n) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t i = 0; i < n; ++i) {
    const T g = k * (a[i] - b[i]);
    if (da) da[i] += g;
    if (db) db[i] -= g;
  }
}

}  // namespace distill::cpu
