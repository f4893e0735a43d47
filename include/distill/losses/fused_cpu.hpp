// distill/losses/fused_cpu.hpp -- the Cpu device side of the fused losses (cpu/fused_losses.hpp runs the tiles).
//
// The peer of losses/fused_cuda.hpp: the same function names, arguments, semantics and gradients (docs/losses.md),
// for Var<T, R, Cpu>. Each op saves the normalised rows in the tile layout (plus their packed transpose), the input
// norms and one log-sum-exp per row, never an N x N matrix; the backward recomputes the similarity tiles. The
// public functions in losses/contrastive.hpp and losses/distillation.hpp check shapes and hyper-parameters (the same
// messages on every device) and call engine:: (losses/fused.hpp), which resolves to these for the Cpu device.
#pragma once

#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/losses/detail.hpp"
#include "distill/ops/optional_inputs.hpp"

namespace distill::cpu_losses {

namespace detail = ::distill::losses::detail;

/// Shared state of the self-similarity losses (NT-Xent, supcon).
template <class T>
struct SelfState {
  cpu::fused::Emb<T> z;
  std::vector<double> lse, ell, w;  // per row: log-sum-exp, row loss, weight
  detail::Classes cls;
  std::vector<double> csum;         // class sums of z [C, dp]
  T scale{}, shift{};
  bool fixed = false;
};

template <class T>
struct CrossState {
  std::shared_ptr<cpu::fused::Emb<T>> a, b;
  std::vector<double> lse_r, lse_c, ell, w, diag;
  detail::Classes cls;
  std::vector<double> csum_b;
  T scale{}, shift{};
  bool fixed = false;
};

/// The state both cross losses start from: n(a) and n(b) in the tile layout (shared when a and b are one Var),
/// scale 1/tau, the exponent shift, and room for the row log-sum-exp.
template <class T>
std::shared_ptr<CrossState<T>> cross_state(const Var<T, 2, Cpu>& a, const Var<T, 2, Cpu>& b, double tau) {
  auto st = std::make_shared<CrossState<T>>();
  st->a = detail::emb_of(a, true);
  st->b = a.node() == b.node() ? st->a : detail::emb_of(b, true);
  st->scale = static_cast<T>(1.0 / tau);
  st->fixed = cpu::fused::fixed_shift_ok<T>(1.0 / tau);
  st->shift = st->scale;
  st->lse_r.resize(static_cast<std::size_t>(a.extent(0)));
  return st;
}

template <class T>
struct SoftKlState {
  std::shared_ptr<cpu::fused::Emb<T>> a, b, c, e;
  std::vector<double> lse_x, lse_y, kl, w;
  T scale{};
  cpu::fused::Mask mask = cpu::fused::Mask::none;
};

/// Supervised-contrastive row loss over [x1; x2] (x2 may be undefined): detail::self_contrastive's Cpu engine.
template <class T>
Var<T, 0, Cpu> self_contrastive(const char* op, const Var<T, 2, Cpu>& x1, const Var<T, 2, Cpu>& x2,
                                std::span<const index_t> class_of_row, std::span<const index_t> class_count,
                                double tau, const Var<T, 1, Cpu>& weights) {
  using D = Cpu;
  detail::Classes cls{std::vector<index_t>(class_of_row.begin(), class_of_row.end()),
                      std::vector<index_t>(class_count.begin(), class_count.end())};
  auto& ctx = x1.ctx();
  const int threads = ctx.threads();
  const cpu::fused::Exec ex = detail::exec_of(ctx);
  const index_t n1 = x1.extent(0), n2 = x2.defined() ? x2.extent(0) : 0, n = n1 + n2, d = x1.extent(1);
  auto st = std::make_shared<SelfState<T>>();
  st->z = cpu::fused::make_emb<T>(ex, {x1.value().data(), n1},
                                  {x2.defined() ? x2.value().data() : nullptr, n2}, d, true);
  st->scale = static_cast<T>(1.0 / tau);
  st->fixed = cpu::fused::fixed_shift_ok<T>(1.0 / tau);
  st->shift = st->scale;
  st->lse.resize(static_cast<std::size_t>(n));
  cpu::fused::self_lse<T>(ex, st->z, st->scale, st->fixed, st->shift, st->lse.data());
  st->cls = std::move(cls);
  st->csum = detail::class_sums(threads, st->z, st->cls);
  st->w = detail::row_weights(op, weights, n);
  st->ell.assign(static_cast<std::size_t>(n), 0.0);
  const index_t dp = st->z.dp;
#pragma omp parallel for num_threads(detail::row_threads(threads, n, d)) schedule(static)
  for (index_t i = 0; i < n; ++i) {
    const index_t c = st->cls.id[i], npos = st->cls.count[c] - 1;
    if (npos <= 0) continue;
    // sum_{j in P(i)} S_ij = scale * z_i . (C_c - z_i)
    const double pos =
        double(st->scale) * (detail::dot_row(st->z, i, st->csum.data() + c * dp) - detail::dot_rows(st->z, i, st->z, i));
    st->ell[i] = st->lse[i] - pos / double(npos);
  }
  double total = 0;
  for (index_t i = 0; i < n; ++i) total += st->w[i] * st->ell[i];
  auto backward = [st, x1, x2, weights, n, threads, ex](const Tensor<T, 0, D>& g_out) mutable {
    const double g = double(g_out[0]);
    const bool gx = x1.requires_grad() || (x2.defined() && x2.requires_grad());
    const index_t dp = st->z.dp;
    if (gx) {
      std::vector<double> a(static_cast<std::size_t>(n), 0.0), beta(static_cast<std::size_t>(n), 0.0);
      for (index_t i = 0; i < n; ++i) {
        const index_t npos = st->cls.count[st->cls.id[i]] - 1;
        if (npos <= 0) continue;
        a[i] = g * st->w[i] / double(n);
        beta[i] = st->w[i] / double(npos);
      }
      Tensor<T, 1> h = detail::grad_layout(ex, st->z);
      cpu::fused::self_backward<T>(ex, st->z, st->scale, st->fixed, st->shift, st->lse.data(), a.data(),
                                   h.data());
      // Positive part: -(scale g / n) [beta_i (C_c - z_i) + W_c - beta_i z_i], W_c = sum_{class c} beta_j z_j.
      const std::vector<double> W = detail::class_sums(threads, st->z, st->cls, beta.data());
      const double k = -double(st->scale) * g / double(n);
#pragma omp parallel for num_threads(detail::row_threads(threads, n, st->z.d)) schedule(static)
      for (index_t i = 0; i < n; ++i) {
        const index_t c = st->cls.id[i];
        const double* C = st->csum.data() + c * dp;
        const double* Wc = W.data() + c * dp;
        const T* zi = st->z.row(i);
        T* hi = h.data() + i * dp;
        for (index_t q = 0; q < st->z.d; ++q)
          hi[q] += static_cast<T>(k * (beta[i] * (C[q] - 2.0 * double(zi[q])) + Wc[q]));
      }
      detail::scatter_rows(x1, st->z, h, 0);
      if (x2.defined()) detail::scatter_rows(x2, st->z, h, x1.extent(0));
    }
    if (weights.defined() && weights.requires_grad()) {
      T* dw = weights.grad_buffer().data();
      for (index_t i = 0; i < n; ++i) dw[i] += static_cast<T>(g * st->ell[i] / double(n));
    }
  };
  auto out = detail::scalar<T, D>(total / double(n));
  const Var<T, 2, D>& second = x2.defined() ? x2 : x1;
  return ops_detail::with_defined(weights, [&](const auto&... w) {
    return autograd::make_result(op, ctx, std::move(out), std::move(backward), x1, second, w...);
  });
}

/// Cross-network supervised-contrastive loss (losses::supcon_cross): the Cpu engine.
template <class T>
Var<T, 0, Cpu> supcon_cross(const Var<T, 2, Cpu>& a, const Var<T, 2, Cpu>& b, std::span<const index_t> class_of_row,
                            std::span<const index_t> class_count, double tau, const Var<T, 1, Cpu>& weights) {
  using D = Cpu;
  auto& ctx = a.ctx();
  const int threads = ctx.threads();
  const cpu::fused::Exec ex = detail::exec_of(ctx);
  const index_t n = a.extent(0);
  auto st = cross_state(a, b, tau);
  cpu::fused::cross_lse<T>(ex, *st->a, *st->b, st->scale, st->fixed, st->shift, cpu::fused::Mask::diagonal,
                           st->lse_r.data(), nullptr);
  st->cls = detail::Classes{std::vector<index_t>(class_of_row.begin(), class_of_row.end()),
                           std::vector<index_t>(class_count.begin(), class_count.end())};
  st->csum_b = detail::class_sums(threads, *st->b, st->cls);
  st->w = detail::row_weights("supcon_cross", weights, n);
  st->ell.assign(static_cast<std::size_t>(n), 0.0);
  const index_t dp = st->a->dp;
  for (index_t i = 0; i < n; ++i) {
    const index_t c = st->cls.id[i], npos = st->cls.count[c] - 1;
    if (npos <= 0) continue;
    const double pos = double(st->scale) * (detail::dot_row(*st->a, i, st->csum_b.data() + c * dp) -
                                            detail::dot_rows(*st->a, i, *st->b, i));
    st->ell[i] = st->lse_r[i] - pos / double(npos);
  }
  double total = 0;
  for (index_t i = 0; i < n; ++i) total += st->w[i] * st->ell[i];
  auto backward = [st, a, b, weights, n, threads, ex](const Tensor<T, 0, D>& g_out) mutable {
    const double g = double(g_out[0]);
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    const auto& A = *st->a;
    const auto& Bm = *st->b;
    const index_t dp = A.dp;
    if (ga || gb) {
      std::vector<double> coef(static_cast<std::size_t>(n), 0.0), beta(static_cast<std::size_t>(n), 0.0);
      for (index_t i = 0; i < n; ++i) {
        const index_t npos = st->cls.count[st->cls.id[i]] - 1;
        if (npos <= 0) continue;
        coef[i] = g * st->w[i] / double(n);
        beta[i] = st->w[i] / double(npos);
      }
      Tensor<T, 1> ha, hb;
      if (ga) ha = detail::grad_layout(ex, A);
      if (gb) hb = detail::grad_layout(ex, Bm);
      cpu::fused::cross_backward<T>(ex, A, Bm, st->scale, st->fixed, st->shift, cpu::fused::Mask::diagonal,
                                    st->lse_r.data(), coef.data(), nullptr, nullptr, ga ? ha.data() : nullptr,
                                    gb ? hb.data() : nullptr);
      const double k = -double(st->scale) * g / double(n);
      if (ga)  // dA_i += k beta_i (CB_c - b_i)
        for (index_t i = 0; i < n; ++i) {
          const double* C = st->csum_b.data() + st->cls.id[i] * dp;
          const T* bi = Bm.row(i);
          T* hi = ha.data() + i * dp;
          for (index_t q = 0; q < A.d; ++q) hi[q] += static_cast<T>(k * beta[i] * (C[q] - double(bi[q])));
        }
      if (gb) {  // dB_j += k (WA_c - beta_j a_j), WA_c = sum_{class c} beta_i a_i
        const std::vector<double> WA = detail::class_sums(threads, A, st->cls, beta.data());
        for (index_t j = 0; j < n; ++j) {
          const double* Wc = WA.data() + st->cls.id[j] * dp;
          const T* aj = A.row(j);
          T* hj = hb.data() + j * dp;
          for (index_t q = 0; q < A.d; ++q) hj[q] += static_cast<T>(k * (Wc[q] - beta[j] * double(aj[q])));
        }
      }
      if (ga) detail::scatter_rows(a, A, ha, 0);
      if (gb) detail::scatter_rows(b, Bm, hb, 0);
    }
    if (weights.defined() && weights.requires_grad()) {
      T* dw = weights.grad_buffer().data();
      for (index_t i = 0; i < n; ++i) dw[i] += static_cast<T>(g * st->ell[i] / double(n));
    }
  };
  auto out = detail::scalar<T, D>(total / double(n));
  return ops_detail::with_defined(weights, [&](const auto&... w) {
    return autograd::make_result("supcon_cross", ctx, std::move(out), std::move(backward), a, b, w...);
  });
}

/// CLIP-style cross-view InfoNCE (losses::info_nce_cross): the Cpu engine.
template <class T>
Var<T, 0, Cpu> info_nce_cross(const Var<T, 2, Cpu>& a, const Var<T, 2, Cpu>& b, double tau) {
  using D = Cpu;
  auto& ctx = a.ctx();
  const int threads = ctx.threads();
  const cpu::fused::Exec ex = detail::exec_of(ctx);
  const index_t n = a.extent(0);
  auto st = cross_state(a, b, tau);
  st->lse_c.resize(static_cast<std::size_t>(n));
  cpu::fused::cross_lse<T>(ex, *st->a, *st->b, st->scale, st->fixed, st->shift, cpu::fused::Mask::none,
                           st->lse_r.data(), st->lse_c.data());
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    const double sii = double(st->scale) * detail::dot_rows(*st->a, i, *st->b, i);
    total += (st->lse_r[i] - sii) + (st->lse_c[i] - sii);
  }
  auto backward = [st, a, b, n, threads, ex](const Tensor<T, 0, D>& g_out) mutable {
    const double g = double(g_out[0]);
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    if (!ga && !gb) return;
    const auto& A = *st->a;
    const auto& Bm = *st->b;
    const index_t dp = A.dp;
    std::vector<double> coef(static_cast<std::size_t>(n), g / (2.0 * double(n)));
    Tensor<T, 1> ha, hb;
    if (ga) ha = detail::grad_layout(ex, A);
    if (gb) hb = detail::grad_layout(ex, Bm);
    cpu::fused::cross_backward<T>(ex, A, Bm, st->scale, st->fixed, st->shift, cpu::fused::Mask::none,
                                  st->lse_r.data(), coef.data(), st->lse_c.data(), coef.data(),
                                  ga ? ha.data() : nullptr, gb ? hb.data() : nullptr);
    // Positive pairs: dS_ii = -(g / N) (from both the row and the column term).
    const T k = static_cast<T>(-double(st->scale) * g / double(n));
    for (index_t i = 0; i < n; ++i)
      for (index_t q = 0; q < A.d; ++q) {
        if (ga) ha.data()[i * dp + q] += k * Bm.row(i)[q];
        if (gb) hb.data()[i * dp + q] += k * A.row(i)[q];
      }
    if (ga) detail::scatter_rows(a, A, ha, 0);
    if (gb) detail::scatter_rows(b, Bm, hb, 0);
  };
  return autograd::make_result("info_nce_cross", ctx, detail::scalar<T, D>(total / (2.0 * double(n))),
                               std::move(backward), a, b);
}

/// MoCo InfoNCE against given negatives (losses::moco_info_nce): the Cpu engine.
template <class T>
Var<T, 0, Cpu> moco_info_nce(const Var<T, 2, Cpu>& q, const Var<T, 2, Cpu>& k, const Tensor<T, 2, Cpu>& negatives,
                             double tau) {
  using D = Cpu;
  auto& ctx = q.ctx();
  const int threads = ctx.threads();
  const cpu::fused::Exec ex = detail::exec_of(ctx);
  const index_t B = q.extent(0), K = negatives.extent(0), d = q.extent(1);
  auto st = std::make_shared<CrossState<T>>();
  st->a = detail::emb_of(q, true);
  auto kk = detail::emb_of(k, true);
  st->b = std::make_shared<cpu::fused::Emb<T>>(
      cpu::fused::make_emb<T>(ex, {negatives.data(), K}, {nullptr, 0}, d, false));
  // Logit bound: |q.neg| <= max ||neg|| and |q.k| <= 1, so a fixed shift works whenever the range allows it.
  double max_norm = 1.0;
  for (index_t j = 0; j < K; ++j) max_norm = std::max(max_norm, std::sqrt(detail::dot_rows(*st->b, j, *st->b, j)));
  st->scale = static_cast<T>(1.0 / tau);
  st->fixed = cpu::fused::fixed_shift_ok<T>(max_norm / tau);
  st->shift = static_cast<T>(max_norm / tau);
  std::vector<double> lse_neg(static_cast<std::size_t>(B));
  cpu::fused::cross_lse<T>(ex, *st->a, *st->b, st->scale, st->fixed, st->shift, cpu::fused::Mask::none,
                           lse_neg.data(), nullptr);
  st->lse_r.resize(static_cast<std::size_t>(B));
  st->diag.resize(static_cast<std::size_t>(B));
  double total = 0;
  for (index_t i = 0; i < B; ++i) {
    st->diag[i] = double(st->scale) * detail::dot_rows(*st->a, i, *kk, i);
    st->lse_r[i] = detail::log_add_exp(lse_neg[i], st->diag[i]);
    total += st->lse_r[i] - st->diag[i];
  }
  auto backward = [st, kk, q, k, B, threads, ex](const Tensor<T, 0, D>& g_out) mutable {
    const double g = double(g_out[0]);
    const bool gq = q.requires_grad(), gk = k.requires_grad();
    if (!gq && !gk) return;
    const auto& A = *st->a;
    const index_t dp = A.dp;
    Tensor<T, 1> hq, hk;
    if (gq) {
      hq = detail::grad_layout(ex, A);
      std::vector<double> coef(static_cast<std::size_t>(B), g / double(B));
      cpu::fused::cross_backward<T>(ex, A, *st->b, st->scale, st->fixed, st->shift, cpu::fused::Mask::none,
                                    st->lse_r.data(), coef.data(), nullptr, nullptr, hq.data(), nullptr);
    }
    if (gk) hk = detail::grad_layout(ex, *kk);
    for (index_t i = 0; i < B; ++i) {
      // dlogit_0 = (P_i0 - 1) g / B
      const T c = static_cast<T>(double(st->scale) * (std::exp(st->diag[i] - st->lse_r[i]) - 1.0) * g / double(B));
      for (index_t x = 0; x < A.d; ++x) {
        if (gq) hq.data()[i * dp + x] += c * kk->row(i)[x];
        if (gk) hk.data()[i * dp + x] += c * A.row(i)[x];
      }
    }
    if (gq) detail::scatter_rows(q, A, hq, 0);
    if (gk) detail::scatter_rows(k, *kk, hk, 0);
  };
  return autograd::make_result("moco_info_nce", ctx, detail::scalar<T, D>(total / double(B)), std::move(backward),
                               q, k);
}

/// Soft contrastive KL between similarity distributions (losses::soft_contrastive_kl): the Cpu engine.
template <class T>
Var<T, 0, Cpu> soft_contrastive_kl(const Var<T, 2, Cpu>& sr, const Var<T, 2, Cpu>& sc, const Var<T, 2, Cpu>& tr,
                                   const Var<T, 2, Cpu>& tc, double tau, double temperature, bool exclude_diagonal,
                                   const Var<T, 1, Cpu>& weights) {
  using D = Cpu;
  const char* op = "soft_contrastive_kl";
  auto& ctx = sr.ctx();
  const int threads = ctx.threads();
  const cpu::fused::Exec ex = detail::exec_of(ctx);
  const index_t n = sr.extent(0);
  auto st = std::make_shared<SoftKlState<T>>();
  // Normalise each distinct input once (the same Var may appear in several roles).
  std::vector<std::pair<const Node*, std::shared_ptr<cpu::fused::Emb<T>>>> seen;
  auto emb = [&](const Var<T, 2, D>& x) {
    for (auto& [node, e] : seen)
      if (node == x.node().get()) return e;
    auto e = detail::emb_of(x, true);
    seen.emplace_back(x.node().get(), e);
    return e;
  };
  st->a = emb(sr);
  st->b = emb(sc);
  st->c = emb(tr);
  st->e = emb(tc);
  st->scale = static_cast<T>(1.0 / (tau * temperature));
  st->mask = exclude_diagonal ? cpu::fused::Mask::diagonal : cpu::fused::Mask::none;
  const bool fixed = cpu::fused::fixed_shift_ok<T>(1.0 / (tau * temperature));
  st->lse_x.resize(static_cast<std::size_t>(n));
  st->lse_y.resize(static_cast<std::size_t>(n));
  std::vector<double> cross(static_cast<std::size_t>(n));
  cpu::fused::softkl_forward<T>(ex, *st->a, *st->b, *st->c, *st->e, st->scale, fixed, st->mask,
                                st->lse_x.data(), st->lse_y.data(), cross.data());
  st->w = detail::row_weights(op, weights, n);
  st->kl.assign(static_cast<std::size_t>(n), 0.0);
  const double T2 = temperature * temperature;
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    if (st->lse_x[i] == -std::numeric_limits<double>::infinity()) continue;
    st->kl[i] = cross[i] - st->lse_y[i] + st->lse_x[i];
    total += st->w[i] * st->kl[i];
  }
  auto backward = [st, sr, sc, weights, n, T2, threads, ex](const Tensor<T, 0, D>& g_out) mutable {
    const double g = double(g_out[0]);
    const bool ga = sr.requires_grad(), gb = sc.requires_grad();
    const bool same = st->a == st->b;
    if (ga || gb) {
      std::vector<double> coef(static_cast<std::size_t>(n));
      for (index_t i = 0; i < n; ++i) coef[i] = g * T2 * st->w[i] / double(n);
      Tensor<T, 1> ha, hb;
      if (ga) ha = detail::grad_layout(ex, *st->a);
      if (gb && !(same && ga)) hb = detail::grad_layout(ex, *st->b);
      T* pa = ga ? ha.data() : nullptr;
      T* pb = gb ? (same && ga ? ha.data() : hb.data()) : nullptr;
      cpu::fused::softkl_backward<T>(ex, *st->a, *st->b, *st->c, *st->e, st->scale, st->mask,
                                     st->lse_x.data(), st->lse_y.data(), coef.data(), pa, pb);
      if (ga) detail::scatter_rows(sr, *st->a, ha, 0);
      if (gb && !(same && ga)) detail::scatter_rows(sc, *st->b, hb, 0);
    }
    if (weights.defined() && weights.requires_grad()) {
      T* dw = weights.grad_buffer().data();
      for (index_t i = 0; i < n; ++i) dw[i] += static_cast<T>(g * T2 * st->kl[i] / double(n));
    }
  };
  auto out = detail::scalar<T, D>(T2 * total / double(n));
  return ops_detail::with_defined(weights, [&](const auto&... w) {
    return autograd::make_result(op, ctx, std::move(out), std::move(backward), sr, sc, w...);
  });
}

/// Hinton KD on logits (losses::kd_kl): the Cpu engine (the gradient is computed in the forward pass).
template <class T>
Var<T, 0, Cpu> kd_kl(const Var<T, 2, Cpu>& student, const Var<T, 2, Cpu>& teacher, double temperature,
                     bool teacher_grad) {
  using D = Cpu;
  auto& ctx = student.ctx();
  const index_t B = student.extent(0), K = student.extent(1);
  const bool want_s = ctx.grad_enabled() && student.requires_grad();
  const bool want_t = ctx.grad_enabled() && teacher_grad && teacher.requires_grad();
  Tensor<T, 2, D> ds, dt;
  if (want_s) ds = Tensor<T, 2, D>(student.shape());
  if (want_t) dt = Tensor<T, 2, D>(teacher.shape());
  std::vector<double> kl(static_cast<std::size_t>(B));
  cpu::fused::kd_kl_rows<T>(detail::exec_of(ctx), B, K, student.value().data(), teacher.value().data(),
                            static_cast<T>(1.0 / temperature), kl.data(), want_s ? ds.data() : nullptr,
                            want_t ? dt.data() : nullptr, static_cast<T>(temperature / double(B)));
  auto out = detail::scalar<T, D>(temperature * temperature * detail::ordered_sum(kl) / double(B));
  // The saved gradients become the inputs' gradients without a copy when those have none yet; a later backward
  // through a retained graph then recomputes them from the logits.
  auto backward = [student, teacher, ds, dt, want_s, want_t, temperature, valid = true](
                      const Tensor<T, 0, D>& g) mutable {
    const index_t B = student.extent(0), K = student.extent(1);
    if (!valid) {
      if (want_s) ds = Tensor<T, 2, D>(student.shape());
      if (want_t) dt = Tensor<T, 2, D>(teacher.shape());
      std::vector<double> kl(static_cast<std::size_t>(B));
      cpu::fused::kd_kl_rows<T>(detail::exec_of(student.ctx()), B, K, student.value().data(), teacher.value().data(),
                                static_cast<T>(1.0 / temperature), kl.data(), want_s ? ds.data() : nullptr,
                                want_t ? dt.data() : nullptr, static_cast<T>(temperature / double(B)));
      valid = true;
    }
    bool handed = false;
    if (want_s && student.requires_grad()) handed |= detail::give_grad(student, ds, g[0]);
    if (want_t && teacher.requires_grad()) handed |= detail::give_grad(teacher, dt, g[0]);
    if (handed) valid = false;
  };
  if (teacher_grad) return autograd::make_result("kd_kl", ctx, std::move(out), std::move(backward), student, teacher);
  return autograd::make_result("kd_kl", ctx, std::move(out), std::move(backward), student);
}

/// sum_i ||n(a_i) - n(b_i)||^2 (losses::normalized_mse_sum): the Cpu engine.
template <class T>
Var<T, 0, Cpu> normalized_mse_sum(const Var<T, 2, Cpu>& a, const Var<T, 2, Cpu>& b) {
  using D = Cpu;
  auto& ctx = a.ctx();
  const index_t n = a.extent(0), d = a.extent(1);
  std::vector<double> rows(static_cast<std::size_t>(n));
  cpu::fused::normalized_mse_rows<T>(ctx.threads(), n, d, a.value().data(), b.value().data(), rows.data(), nullptr,
                                     nullptr, T(0));
  auto backward = [a, b, n, d](const Tensor<T, 0, D>& g) mutable {
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    if (!ga && !gb) return;
    std::vector<double> tmp(static_cast<std::size_t>(n));
    T* da = ga ? a.grad_buffer().data() : nullptr;
    T* db = gb ? b.grad_buffer().data() : nullptr;
    if (da && da == db) {  // the same Var on both sides: n(a) - n(a) = 0, gradient 0
      return;
    }
    cpu::fused::normalized_mse_rows<T>(a.ctx().threads(), n, d, a.value().data(), b.value().data(), tmp.data(), da,
                                       db, g[0]);
  };
  return autograd::make_result("normalized_mse_sum", ctx, detail::scalar<T, D>(detail::ordered_sum(rows)),
                               std::move(backward), a, b);
}

}  // namespace distill::cpu_losses
