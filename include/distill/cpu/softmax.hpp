// distill/cpu/softmax.hpp -- CPU kernels for row-wise softmax, log-softmax and log-sum-exp over [B, K].
//
// Every row is max-shifted before exponentiation (exp(x - max) <= 1), so logits of +-1e4 give no overflow and
// no NaN. Rows are independent: one row per OpenMP iteration, no cross-thread reduction, deterministic for any
// thread count. Exponentials and row sums use Eigen's vectorised array expressions.
#pragma once

#include "distill/cpu/eigen_core.hpp"
#include <cmath>

#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"

namespace distill::cpu {

template <class T>
using ArrMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstArrMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

/// log(sum(exp(x_row))) of one row of length K >= 1, max-shifted.
template <class T>
T row_logsumexp(const T* x, index_t K) {
  ConstArrMap<T> xr(x, K);
  const T m = xr.maxCoeff();
  const T s = (xr - m).exp().sum();
  return m + std::log(s);
}

/// lse[b] = log sum_k exp(x[b, k]) for x [B, K], K >= 1.
template <class T>
void logsumexp_rows(int threads, const T* x, T* lse, index_t B, index_t K) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) lse[b] = row_logsumexp(x + b * K, K);
}

/// y = softmax(x) row-wise for x, y [B, K], K >= 1.
template <class T>
void softmax_rows(int threads, const T* x, T* y, index_t B, index_t K) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    ConstArrMap<T> xr(x + b * K, K);
    ArrMap<T> yr(y + b * K, K);
    const T m = xr.maxCoeff();
    yr = (xr - m).exp();
    yr *= T(1) / yr.sum();
  }
}

/// y = log_softmax(x) = x - logsumexp(x) row-wise for x, y [B, K], K >= 1.
template <class T>
void log_softmax_rows(int threads, const T* x, T* y, index_t B, index_t K) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    ConstArrMap<T> xr(x + b * K, K);
    ArrMap<T> yr(y + b * K, K);
    yr = xr - row_logsumexp(x + b * K, K);
  }
}

/// Softmax backward from its output y: dx += y * (dy - <y, dy>) row-wise.
template <class T>
void softmax_rows_backward(int threads, const T* y, const T* dy, T* dx, index_t B, index_t K) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    ConstArrMap<T> yr(y + b * K, K), gr(dy + b * K, K);
    ArrMap<T> dr(dx + b * K, K);
    const T dot = (yr * gr).sum();
    dr += yr * (gr - dot);
  }
}

/// Log-softmax backward from its output y: dx += dy - exp(y) * sum(dy) row-wise.
template <class T>
void log_softmax_rows_backward(int threads, const T* y, const T* dy, T* dx, index_t B, index_t K) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t b = 0; b < B; ++b) {
    ConstArrMap<T> yr(y + b * K, K), gr(dy + b * K, K);
    ArrMap<T> dr(dx + b * K, K);
    const T s = gr.sum();
    dr += gr - yr.exp() * s;
  }
}

}  // namespace distill::cpu
