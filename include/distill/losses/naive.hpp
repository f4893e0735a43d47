// distill/losses/naive.hpp -- every fused loss composed from the core's autograd ops (l2_normalize, matmul_nt,
// log_softmax, softmax, cross_entropy, mse, mul, sub, sum, ...): the oracle of the tests and the "naive"
// baseline of benchmarks/bench_losses.cpp. These materialise the N x N similarity matrix (and an N x N mask
// constant), exactly what the fused versions avoid; the maths is the same (docs/losses.md).
//
// Excluded entries (the diagonal) are masked by adding kMasked, a large negative finite number: its softmax
// weight is exactly 0 and, unlike -inf, 0 * (masked log-probability) stays 0.
// Per-row weights enter as constants (the naive versions give no gradient to `weights`).
#pragma once

#include <span>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/losses/distillation.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/linear.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/ops/normalize.hpp"
#include "distill/ops/reduce.hpp"
#include "distill/ops/shape_ops.hpp"
#include "distill/ops/softmax.hpp"

namespace distill::losses::naive {

inline constexpr double kMasked = -1e9;

namespace detail {
/// Constant [rows, cols] matrix with f(i, j) entries.
template <class T, class D, class F>
Var<T, 2, D> constant_matrix(Context<D>& ctx, index_t rows, index_t cols, F f) {
  Tensor<T, 2, D> m(Shape<2>{rows, cols});
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) m(i, j) = static_cast<T>(f(i, j));
  return constant(ctx, std::move(m));
}
template <class T, class D>
Var<T, 2, D> masked_diagonal(Context<D>& ctx, index_t n) {
  return constant_matrix<T, D>(ctx, n, n, [](index_t i, index_t j) { return i == j ? kMasked : 0.0; });
}
/// sum_ij M_ij * logp_ij with the supervised-contrastive weights M_ij = -w_i [j in P(i)] / (|P(i)| N).
template <class T, class D>
Var<T, 0, D> positive_mean(const Var<T, 2, D>& logp, std::span<const int> labels, const std::vector<double>& w) {
  const index_t n = logp.extent(0);
  std::vector<double> npos(static_cast<std::size_t>(n), 0.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) npos[i] += (j != i && labels[j] == labels[i]) ? 1.0 : 0.0;
  auto M = constant_matrix<T, D>(logp.ctx(), n, n, [&](index_t i, index_t j) {
    return (j != i && labels[j] == labels[i]) ? -w[i] / (npos[i] * double(n)) : 0.0;
  });
  return sum(mul(logp, M));
}
template <class T, class D>
std::vector<double> weights_or_ones(const Var<T, 1, D>& w, index_t n) {
  std::vector<double> out(static_cast<std::size_t>(n), 1.0);
  if (w.defined())
    for (index_t i = 0; i < n; ++i) out[i] = double(w.value()[i]);
  return out;
}
}  // namespace detail

template <class T, class D>
Var<T, 0, D> nt_xent(const Var<T, 2, D>& z1, const Var<T, 2, D>& z2, double tau) {
  const index_t B = z1.extent(0), M = 2 * B;
  auto Z = l2_normalize(concat0(z1, z2));
  auto S = add(scale(matmul_nt(Z, Z), static_cast<T>(1.0 / tau)), detail::masked_diagonal<T, D>(z1.ctx(), M));
  std::vector<int> target(static_cast<std::size_t>(M));
  for (index_t i = 0; i < M; ++i) target[i] = static_cast<int>((i + B) % M);
  return cross_entropy(S, target);
}

template <class T, class D>
Var<T, 0, D> supcon(const Var<T, 2, D>& z, std::span<const int> labels, double tau,
                    const Var<T, 1, D>& weights = {}) {
  const index_t n = z.extent(0);
  auto Z = l2_normalize(z);
  auto S = add(scale(matmul_nt(Z, Z), static_cast<T>(1.0 / tau)), detail::masked_diagonal<T, D>(z.ctx(), n));
  return detail::positive_mean(log_softmax(S), labels, detail::weights_or_ones(weights, n));
}

template <class T, class D>
Var<T, 0, D> supcon_cross(const Var<T, 2, D>& a, const Var<T, 2, D>& b, std::span<const int> labels, double tau,
                          const Var<T, 1, D>& weights = {}) {
  const index_t n = a.extent(0);
  auto S = add(scale(matmul_nt(l2_normalize(a), l2_normalize(b)), static_cast<T>(1.0 / tau)),
               detail::masked_diagonal<T, D>(a.ctx(), n));
  return detail::positive_mean(log_softmax(S), labels, detail::weights_or_ones(weights, n));
}

template <class T, class D>
Var<T, 0, D> info_nce_cross(const Var<T, 2, D>& a, const Var<T, 2, D>& b, double tau) {
  const index_t n = a.extent(0);
  auto A = l2_normalize(a);
  auto Bn = l2_normalize(b);
  const T s = static_cast<T>(1.0 / tau);
  std::vector<int> target(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) target[i] = static_cast<int>(i);
  auto rows = cross_entropy(scale(matmul_nt(A, Bn), s), target);
  auto cols = cross_entropy(scale(matmul_nt(Bn, A), s), target);
  return scale(add(rows, cols), T(0.5));
}

/// logits [B, B + K] = q_hat [k_hat; negatives]^T / tau with the off-diagonal key columns masked: column i of the
/// first block is q_i's positive, the K queue columns follow.
template <class T, class D>
Var<T, 0, D> moco_info_nce(const Var<T, 2, D>& q, const Var<T, 2, D>& k, const Tensor<T, 2, D>& negatives,
                           double tau) {
  const index_t B = q.extent(0), K = negatives.extent(0);
  auto& ctx = q.ctx();
  auto keys = concat0(l2_normalize(k), constant(ctx, negatives.clone()));
  auto S = add(scale(matmul_nt(l2_normalize(q), keys), static_cast<T>(1.0 / tau)),
               detail::constant_matrix<T, D>(ctx, B, B + K,
                                             [B](index_t i, index_t j) { return j < B && j != i ? kMasked : 0.0; }));
  std::vector<int> target(static_cast<std::size_t>(B));
  for (index_t i = 0; i < B; ++i) target[i] = static_cast<int>(i);
  return cross_entropy(S, target);
}

template <class T, class D>
Var<T, 0, D> soft_contrastive_kl(const Var<T, 2, D>& sr, const Var<T, 2, D>& sc, const Var<T, 2, D>& tr,
                                 const Var<T, 2, D>& tc, double tau, double temperature,
                                 Diagonal diagonal = Diagonal::include, const Var<T, 1, D>& weights = {}) {
  auto& ctx = sr.ctx();
  const index_t n = sr.extent(0), nc = sc.extent(0);
  const T s = static_cast<T>(1.0 / (tau * temperature));
  auto mask = detail::constant_matrix<T, D>(ctx, n, nc, [&](index_t i, index_t j) {
    return diagonal == Diagonal::exclude && i == j ? kMasked : 0.0;
  });
  auto X = add(scale(matmul_nt(l2_normalize(sr), l2_normalize(sc)), s), mask);
  auto Y = add(scale(matmul_nt(l2_normalize(tr.detach()), l2_normalize(tc.detach())), s), mask);
  auto kl = mul(softmax(Y), sub(log_softmax(Y), log_softmax(X)));
  const std::vector<double> w = detail::weights_or_ones(weights, n);
  const double T2 = temperature * temperature;
  auto W = detail::constant_matrix<T, D>(ctx, n, nc, [&](index_t i, index_t) { return T2 * w[i] / double(n); });
  return sum(mul(kl, W));
}

template <class T, class D>
Var<T, 0, D> kd_kl(const Var<T, 2, D>& student, const Var<T, 2, D>& teacher, double temperature,
                   bool teacher_grad = false) {
  const index_t B = student.extent(0);
  const T inv = static_cast<T>(1.0 / temperature);
  auto x = scale(student, inv);
  auto y = scale(teacher_grad ? teacher : teacher.detach(), inv);
  auto kl = mul(softmax(y), sub(log_softmax(y), log_softmax(x)));
  return sum(kl, static_cast<T>(temperature * temperature / double(B)));
}

template <class T, class D>
Var<T, 0, D> normalized_mse_sum(const Var<T, 2, D>& a, const Var<T, 2, D>& b) {
  return mse(l2_normalize(a), l2_normalize(b), Reduction::Sum);
}

}  // namespace distill::losses::naive
