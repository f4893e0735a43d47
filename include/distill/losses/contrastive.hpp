// distill/losses/contrastive.hpp -- fused contrastive losses: NT-Xent, CLIP-style InfoNCE, MoCo InfoNCE,
// supervised contrastive (MCL's VCL) and its cross-network form (MCL's ICL).
//
// Every loss takes raw embeddings [N, D] and L2-normalises them inside (F.normalize semantics, eps = 1e-12), so
// similarities are cosines divided by tau; the MoCo negatives are used as given (losses::Queue stores unit rows).
// Each is one autograd op: the forward saves the normalised rows (plus their packed transpose), the input norms
// and one log-sum-exp per row, never an N x N matrix; the backward recomputes the similarity tiles
// (cpu/fused_losses.hpp). Formulas, masks and gradients: docs/losses.md. Results are rank-0 Vars. On the Cuda device
// the same checks run, then distill/losses/fused_cuda.hpp (flash-style kernels, kernels/contrastive_similarity.cuh;
// docs/cuda.md).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/losses/fused_cuda.hpp"
#include "distill/losses/detail.hpp"
#include "distill/losses/queue.hpp"

namespace distill::losses {

namespace detail {

/// Shared state of the self-similarity losses (NT-Xent, supcon).
template <class T>
struct SelfState {
  cpu::fused::Emb<T> z;
  std::vector<double> lse, ell, w;  // per row: log-sum-exp, row loss, weight
  Classes cls;
  std::vector<double> csum;         // class sums of z [C, dp]
  T scale{}, shift{};
  bool fixed = false;
};

/// The supervised-contrastive row loss over the rows of [x1; x2] (x2 may be undefined), positives = same class
/// and not the same row, denominator = every other row. L = (1/n) sum_i w_i l_i; rows without a positive
/// contribute 0. NT-Xent is the special case class(i) = i mod B.
template <class T, class D>
Var<T, 0, D> self_contrastive(const char* op, const Var<T, 2, D>& x1, const Var<T, 2, D>& x2, Classes cls,
                              double tau, const Var<T, 1, D>& weights) {
  if constexpr (std::is_same_v<D, Cuda>) {
    // The Cuda device: include/distill/losses/fused_cuda.hpp (flash-style kernels, kernels/contrastive_similarity.cuh).
    return cuda_losses::self_contrastive<T>(op, x1, x2, cls.id, cls.count, tau, weights);
  } else {
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
    st->csum = class_sums(threads, st->z, st->cls);
    st->w = row_weights(op, weights, n);
    st->ell.assign(static_cast<std::size_t>(n), 0.0);
    const index_t dp = st->z.dp;
#pragma omp parallel for num_threads(row_threads(threads, n, d)) schedule(static)
    for (index_t i = 0; i < n; ++i) {
      const index_t c = st->cls.id[i], npos = st->cls.count[c] - 1;
      if (npos <= 0) continue;
      // sum_{j in P(i)} S_ij = scale * z_i . (C_c - z_i)
      const double pos =
          double(st->scale) * (dot_row(st->z, i, st->csum.data() + c * dp) - dot_rows(st->z, i, st->z, i));
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
        Tensor<T, 1> h = grad_layout(ex, st->z);
        cpu::fused::self_backward<T>(ex, st->z, st->scale, st->fixed, st->shift, st->lse.data(), a.data(),
                                     h.data());
        // Positive part: -(scale g / n) [beta_i (C_c - z_i) + W_c - beta_i z_i], W_c = sum_{class c} beta_j z_j.
        const std::vector<double> W = class_sums(threads, st->z, st->cls, beta.data());
        const double k = -double(st->scale) * g / double(n);
#pragma omp parallel for num_threads(row_threads(threads, n, st->z.d)) schedule(static)
        for (index_t i = 0; i < n; ++i) {
          const index_t c = st->cls.id[i];
          const double* C = st->csum.data() + c * dp;
          const double* Wc = W.data() + c * dp;
          const T* zi = st->z.row(i);
          T* hi = h.data() + i * dp;
          for (index_t q = 0; q < st->z.d; ++q)
            hi[q] += static_cast<T>(k * (beta[i] * (C[q] - 2.0 * double(zi[q])) + Wc[q]));
        }
        scatter_rows(x1, st->z, h, 0);
        if (x2.defined()) scatter_rows(x2, st->z, h, x1.extent(0));
      }
      if (weights.defined() && weights.requires_grad()) {
        T* dw = weights.grad_buffer().data();
        for (index_t i = 0; i < n; ++i) dw[i] += static_cast<T>(g * st->ell[i] / double(n));
      }
    };
    auto out = scalar<T, D>(total / double(n));
    const Var<T, 2, D>& second = x2.defined() ? x2 : x1;
    return ops_detail::with_defined(weights, [&](const auto&... w) {
      return autograd::make_result(op, ctx, std::move(out), std::move(backward), x1, second, w...);
    });
  }
}

}  // namespace detail

/// NT-Xent / SimCLR loss of two views z1, z2 [B, D] (raw embeddings; cosine similarity inside):
///   Z = [n(z1); n(z2)], S = Z Z^T / tau, l_i = -S_{i,p(i)} + log sum_{k != i} exp S_ik, p(i) = (i + B) mod 2B,
///   L = (1/2B) sum_i l_i.
/// The same Var may be passed twice. B = 1 gives 0 (the positive is the only candidate).
template <class T, class D>
Var<T, 0, D> nt_xent(const Var<T, 2, D>& z1, const Var<T, 2, D>& z2, double tau) {
  check_same_shape(z1.shape(), z2.shape(), "nt_xent: the two views z1 and z2");
  DISTILL_CHECK(z1.extent(0) >= 1, "nt_xent: views of shape ", to_string(z1.shape()), " have no rows");
  detail::check_embeddings("nt_xent", "z1", z1);
  detail::check_temperature("nt_xent", "tau", tau);
  const index_t B = z1.extent(0);
  detail::Classes cls;
  cls.id.resize(static_cast<std::size_t>(2 * B));
  for (index_t i = 0; i < 2 * B; ++i) cls.id[i] = i % B;
  cls.count.assign(static_cast<std::size_t>(B), 2);
  return detail::self_contrastive("nt_xent", z1, z2, std::move(cls), tau, Var<T, 1, D>{});
}

/// Supervised-contrastive row loss (MCL's VCL; SupCon's "all" form) over the rows of z [N, D]:
///   S = n(z) n(z)^T / tau, P(i) = {j != i : y_j = y_i},
///   l_i = -(1/|P(i)|) sum_{j in P(i)} (S_ij - log sum_{k != i} exp S_ik),  L = (1/N) sum_i w_i l_i.
/// Anchors without a positive contribute 0 (they still count in N). `weights` [N] (optional) may require grad
/// (dL/dw_i = l_i / N). For two views stack them first (concat0) and pass labels for all 2B rows.
template <class T, class D>
Var<T, 0, D> supcon(const Var<T, 2, D>& z, std::span<const int> labels, double tau,
                    const Var<T, 1, D>& weights = {}) {
  DISTILL_CHECK(index_t(labels.size()) == z.extent(0), "supcon: ", labels.size(), " labels for embeddings of shape ",
                to_string(z.shape()), " (expected one label per row)");
  DISTILL_CHECK(z.extent(0) >= 1, "supcon: embeddings of shape ", to_string(z.shape()), " have no rows");
  detail::check_embeddings("supcon", "z", z);
  detail::check_temperature("supcon", "tau", tau);
  return detail::self_contrastive("supcon", z, Var<T, 2, D>{}, detail::compact_labels(labels), tau, weights);
}

namespace detail {
template <class T>
struct CrossState {
  std::shared_ptr<cpu::fused::Emb<T>> a, b;
  std::vector<double> lse_r, lse_c, ell, w, diag;
  Classes cls;
  std::vector<double> csum_b;
  T scale{}, shift{};
  bool fixed = false;
};

/// The state both cross losses start from: n(a) and n(b) in the tile layout (shared when a and b are one Var),
/// scale 1/tau, the exponent shift, and room for the row log-sum-exp.
template <class T, class D>
std::shared_ptr<CrossState<T>> cross_state(const Var<T, 2, D>& a, const Var<T, 2, D>& b, double tau) {
  auto st = std::make_shared<CrossState<T>>();
  st->a = emb_of(a, true);
  st->b = a.node() == b.node() ? st->a : emb_of(b, true);
  st->scale = static_cast<T>(1.0 / tau);
  st->fixed = cpu::fused::fixed_shift_ok<T>(1.0 / tau);
  st->shift = st->scale;
  st->lse_r.resize(static_cast<std::size_t>(a.extent(0)));
  return st;
}

}  // namespace detail

/// Cross-network supervised-contrastive loss (MCL's ICL, anchors from one network, contrast rows from another):
///   S = n(a) n(b)^T / tau  [N, N],  P(i) = {j != i : y_j = y_i},  denominator over k != i (the same-index
///   cross-network pair is excluded from both), l_i as in supcon,  L = (1/N) sum_i w_i l_i.
/// Gradients flow into a and b (either may be detached by the caller).
template <class T, class D>
Var<T, 0, D> supcon_cross(const Var<T, 2, D>& a, const Var<T, 2, D>& b, std::span<const int> labels, double tau,
                          const Var<T, 1, D>& weights = {}) {
  check_same_shape(a.shape(), b.shape(), "supcon_cross: anchors a and contrast rows b");
  DISTILL_CHECK(index_t(labels.size()) == a.extent(0), "supcon_cross: ", labels.size(),
                " labels for embeddings of shape ", to_string(a.shape()), " (expected one label per row)");
  DISTILL_CHECK(a.extent(0) >= 1, "supcon_cross: embeddings of shape ", to_string(a.shape()), " have no rows");
  detail::check_embeddings("supcon_cross", "a", a);
  detail::check_temperature("supcon_cross", "tau", tau);
  if constexpr (std::is_same_v<D, Cuda>) {
    const detail::Classes cls = detail::compact_labels(labels);
    return cuda_losses::supcon_cross<T>(a, b, cls.id, cls.count, tau, weights);
  } else {
    auto& ctx = a.ctx();
    const int threads = ctx.threads();
    const cpu::fused::Exec ex = detail::exec_of(ctx);
    const index_t n = a.extent(0);
    auto st = detail::cross_state(a, b, tau);
    cpu::fused::cross_lse<T>(ex, *st->a, *st->b, st->scale, st->fixed, st->shift, cpu::fused::Mask::diagonal,
                             st->lse_r.data(), nullptr);
    st->cls = detail::compact_labels(labels);
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
}

/// CLIP-style cross-view InfoNCE of paired rows a, b [N, D] (cosine similarity inside):
///   S = n(a) n(b)^T / tau,  L = (1/2N) sum_i [lse_j S_ij - S_ii] + (1/2N) sum_j [lse_i S_ij - S_jj].
template <class T, class D>
Var<T, 0, D> info_nce_cross(const Var<T, 2, D>& a, const Var<T, 2, D>& b, double tau) {
  check_same_shape(a.shape(), b.shape(), "info_nce_cross: the paired embeddings a and b");
  DISTILL_CHECK(a.extent(0) >= 1, "info_nce_cross: embeddings of shape ", to_string(a.shape()), " have no rows");
  detail::check_embeddings("info_nce_cross", "a", a);
  detail::check_temperature("info_nce_cross", "tau", tau);
  if constexpr (std::is_same_v<D, Cuda>) {
    return cuda_losses::info_nce_cross<T>(a, b, tau);
  } else {
    auto& ctx = a.ctx();
    const int threads = ctx.threads();
    const cpu::fused::Exec ex = detail::exec_of(ctx);
    const index_t n = a.extent(0);
    auto st = detail::cross_state(a, b, tau);
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
}

/// MoCo InfoNCE: query q [B, D] and positive key k [B, D] (both L2-normalised inside) against negatives [K, D]
/// used as given (a losses::Queue holds unit rows):
///   logits_i = [q_i.k_i, q_i.neg_1, ..., q_i.neg_K] / tau,  L = (1/B) sum_i CE(logits_i, 0).
/// k normally comes from a momentum encoder without gradient; if it requires grad it receives one. K may be 0.
template <class T, class D>
Var<T, 0, D> moco_info_nce(const Var<T, 2, D>& q, const Var<T, 2, D>& k, const Tensor<T, 2, D>& negatives,
                           double tau) {
  check_same_shape(q.shape(), k.shape(), "moco_info_nce: query q and positive key k");
  DISTILL_CHECK(q.extent(0) >= 1, "moco_info_nce: queries of shape ", to_string(q.shape()), " have no rows");
  detail::check_embeddings("moco_info_nce", "q", q);
  DISTILL_CHECK(negatives.extent(0) == 0 || negatives.extent(1) == q.extent(1), "moco_info_nce: negatives of shape ",
                to_string(negatives.shape()), " for queries of shape ", to_string(q.shape()),
                " (expected [K, ", q.extent(1), "])");
  detail::check_temperature("moco_info_nce", "tau", tau);
  if constexpr (std::is_same_v<D, Cuda>) {
    return cuda_losses::moco_info_nce<T>(q, k, negatives, tau);
  } else {
    auto& ctx = q.ctx();
    const int threads = ctx.threads();
    const cpu::fused::Exec ex = detail::exec_of(ctx);
    const index_t B = q.extent(0), K = negatives.extent(0), d = q.extent(1);
    auto st = std::make_shared<detail::CrossState<T>>();
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
}

/// MoCo InfoNCE against the current contents of a queue (no copy of the queue is kept by the caller's side;
/// the op copies the negatives into its tile layout, so enqueueing before backward() is safe). The query width must
/// equal the queue's dim even while the queue is empty.
template <class T, class D>
Var<T, 0, D> moco_info_nce(const Var<T, 2, D>& q, const Var<T, 2, D>& k, const Queue<T, D>& queue, double tau) {
  // The width is checked against the queue's declared dim, so a mismatch fails on the first step (empty queue) too.
  DISTILL_CHECK(q.extent(1) == queue.dim(), "moco_info_nce: queries of shape ", to_string(q.shape()),
                " for a queue of dim ", queue.dim(), " (", queue.size(), " keys filled)");
  return moco_info_nce(q, k, queue.contents(), tau);
}

}  // namespace distill::losses
