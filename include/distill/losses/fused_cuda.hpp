// distill/losses/fused_cuda.hpp -- the Cuda device side of the fused losses (distill::losses dispatches here).
//
// Same semantics, arguments and gradients as the Cpu implementation (docs/losses.md); the kernels are in
// kernels/contrastive_similarity.cuh (the O(N^2 D) passes: flash-style, row-owner, similarity tiles recomputed, no
// N x N buffer, no atomics, column splits merged in a fixed order) and kernels/fused_losses.cuh (the O(N D) parts).
// Saved between forward and backward: the normalised rows, their norms and per-row statistics (double), all in device
// memory. The loss value stays on the device; the backward reads the upstream gradient there too, so a training
// step never waits for the host. Labels arrive on the host and are uploaded once per call.
//
// The functions take already-validated inputs: the public functions in distill/losses/*.hpp check shapes and
// hyper-parameters (with the same messages on every device) and then call these for Var<T, 2, Cuda>.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/cuda/api.hpp"
#include "distill/cuda/device_ops.hpp"
#include "distill/ops/optional_inputs.hpp"
#include "distill/problems/similarity.hpp"

namespace distill::cuda_losses {

using problems::fixed_shift_ok;  // problems/similarity.hpp: the same choices as the Cpu engines
using problems::kNormEps;

/// Labels compacted to classes 0..C-1 (order of first appearance) on the host, then uploaded: per row its class and
/// positive count (class size - 1), and the class members (CSR) for deterministic class sums.
struct DeviceClasses {
  index_t classes = 0;
  Tensor<std::int32_t, 1, Cuda> cls, npos, offsets, members;
  Tensor<double, 1, Cuda> has_pos, inv_npos;  // [n]: 1 / 0, and 1 / npos (0 without positives)
};

inline Tensor<std::int32_t, 1, Cuda> upload_ints(Context<Cuda>& ctx, const std::vector<std::int32_t>& v) {
  auto t = ctx.empty<std::int32_t, 1>(Shape<1>{static_cast<index_t>(std::max<std::size_t>(v.size(), 1))});
  if (!v.empty()) cuda::copy_to_device(ctx, t.data(), v.data(), sizeof(std::int32_t) * v.size());
  return t;
}
inline Tensor<double, 1, Cuda> upload_doubles(Context<Cuda>& ctx, const std::vector<double>& v) {
  auto t = ctx.empty<double, 1>(Shape<1>{static_cast<index_t>(std::max<std::size_t>(v.size(), 1))});
  if (!v.empty()) cuda::copy_to_device(ctx, t.data(), v.data(), sizeof(double) * v.size());
  return t;
}
inline Tensor<double, 1, Cuda> doubles(Context<Cuda>& ctx, index_t n) {
  return ctx.empty<double, 1>(Shape<1>{std::max<index_t>(n, 1)});
}

/// From per-row class ids in 0..C-1 and the class sizes.
inline DeviceClasses upload_classes(Context<Cuda>& ctx, std::span<const index_t> class_of_row,
                                    std::span<const index_t> class_count) {
  DeviceClasses dc;
  const auto n = class_of_row.size();
  dc.classes = static_cast<index_t>(class_count.size());
  std::vector<std::int32_t> cls(n), npos(n), offsets(class_count.size() + 1, 0), members(n);
  std::vector<double> has_pos(n), inv_npos(n);
  for (std::size_t c = 0; c < class_count.size(); ++c)
    offsets[c + 1] = offsets[c] + static_cast<std::int32_t>(class_count[c]);
  std::vector<std::int32_t> fill(offsets.begin(), offsets.end() - 1);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<std::size_t>(class_of_row[i]);
    cls[i] = static_cast<std::int32_t>(c);
    npos[i] = static_cast<std::int32_t>(class_count[c] - 1);
    has_pos[i] = npos[i] > 0 ? 1.0 : 0.0;
    inv_npos[i] = npos[i] > 0 ? 1.0 / npos[i] : 0.0;
    members[static_cast<std::size_t>(fill[c]++)] = static_cast<std::int32_t>(i);
  }
  dc.cls = upload_ints(ctx, cls);
  dc.npos = upload_ints(ctx, npos);
  dc.offsets = upload_ints(ctx, offsets);
  dc.members = upload_ints(ctx, members);
  dc.has_pos = upload_doubles(ctx, has_pos);
  dc.inv_npos = upload_doubles(ctx, inv_npos);
  return dc;
}

/// Normalised rows of x written to z (row stride d) and their norms (F.normalize).
template <class T>
void normalize_into(const Var<T, 2, Cuda>& x, T* z, T* norms) {
  if (x.extent(0) == 0) return;
  cuda::l2_normalize_rows<T>(x.ctx(), x.value().data(), z, norms, x.extent(0), x.extent(1), kNormEps);
}

/// Normalised copy of x: [n, d] rows and [n] norms.
template <class T>
struct Unit {
  Tensor<T, 2, Cuda> z;
  Tensor<T, 1, Cuda> norms;
};
template <class T>
std::shared_ptr<Unit<T>> unit_of(const Var<T, 2, Cuda>& x) {
  auto& ctx = x.ctx();
  auto u = std::make_shared<Unit<T>>();
  u->z = ctx.template empty<T, 2>(x.shape());
  u->norms = ctx.template empty<T, 1>(Shape<1>{x.extent(0)});
  normalize_into(x, u->z.data(), u->norms.data());
  return u;
}

/// Sends rows [r0, r0 + rows of v) of h [*, d] through the normalisation backward into v's gradient.
template <class T>
void scatter_rows(const Var<T, 2, Cuda>& v, const T* z, const T* norms, const T* h, index_t r0) {
  if (!v.requires_grad() || v.extent(0) == 0) return;
  const index_t d = v.extent(1);
  cuda::l2_normalize_rows_backward<T>(v.ctx(), z + r0 * d, norms + r0, h + r0 * d, v.grad_buffer().data(),
                                      v.extent(0), d, kNormEps, true);
}

template <class T>
Tensor<T, 0, Cuda> scalar_from(Context<Cuda>& ctx, const Tensor<double, 1, Cuda>& rows, index_t n, double alpha) {
  auto out = ctx.empty<T, 0>(Shape<0>{});
  cuda::sum_doubles<T>(ctx, rows.data(), n, out.data(), alpha);
  return out;
}

// ================================================================================================================
// Self-similarity: supervised-contrastive rows over [x1; x2] (NT-Xent: class(i) = i mod B)
// ================================================================================================================
template <class T>
Var<T, 0, Cuda> self_contrastive(const char* op, const Var<T, 2, Cuda>& x1, const Var<T, 2, Cuda>& x2,
                                 std::span<const index_t> class_of_row, std::span<const index_t> class_count,
                                 double tau, const Var<T, 1, Cuda>& weights) {
  auto& ctx = x1.ctx();
  const index_t n1 = x1.extent(0), n2 = x2.defined() ? x2.extent(0) : 0, n = n1 + n2, d = x1.extent(1);
  struct State {
    Tensor<T, 2, Cuda> z;
    Tensor<T, 1, Cuda> norms;
    Tensor<double, 1, Cuda> lse, ell, csum;
    DeviceClasses cls;
    cuda::Similarity<T> sim;
  };
  auto st = std::make_shared<State>();
  st->z = ctx.template empty<T, 2>(Shape<2>{n, d});
  st->norms = ctx.template empty<T, 1>(Shape<1>{n});
  normalize_into(x1, st->z.data(), st->norms.data());
  if (n2) normalize_into(x2, st->z.data() + n1 * d, st->norms.data() + n1);
  const double s = 1.0 / tau;
  st->sim = cuda::Similarity<T>{st->z.data(), st->z.data(), n, n, d, nullptr, nullptr, 0, s, true,
                                fixed_shift_ok<T>(s), s, 0};
  st->lse = doubles(ctx, n);
  cuda::similarity_stats<T>(ctx, st->sim, st->lse.data(), nullptr, nullptr);
  st->cls = upload_classes(ctx, class_of_row, class_count);
  st->csum = doubles(ctx, st->cls.classes * d);
  cuda::class_sums<T>(ctx, st->z.data(), d, st->cls.offsets.data(), st->cls.members.data(), st->cls.classes, nullptr,
                      st->csum.data());
  st->ell = doubles(ctx, n);
  auto wl = doubles(ctx, n);
  const T* w = weights.defined() ? weights.value().data() : nullptr;
  cuda::contrastive_row_loss<T>(ctx, st->z.data(), st->z.data(), n, d, st->csum.data(), st->cls.cls.data(),
                                st->cls.npos.data(), st->lse.data(), s, w, st->ell.data(), wl.data());
  auto out = scalar_from<T>(ctx, wl, n, 1.0 / double(n));
  auto backward = [st, x1, x2, weights, n, n1, d, s](const Tensor<T, 0, Cuda>& g) mutable {
    auto& c = x1.ctx();
    const T* w = weights.defined() ? weights.value().data() : nullptr;
    const bool gx = x1.requires_grad() || (x2.defined() && x2.requires_grad());
    if (gx) {
      auto a = doubles(c, n), beta = doubles(c, n);
      cuda::row_coefficients<T>(c, g.data(), 1.0 / double(n), st->cls.has_pos.data(), w, n, a.data());
      cuda::row_coefficients<T>(c, nullptr, 1.0, st->cls.inv_npos.data(), w, n, beta.data());
      auto h = c.template empty<T, 2>(Shape<2>{n, d});
      cuda::SimilarityCoefficients cf;
      cf.row_coef = cf.col_coef = a.data();
      cf.row_lse = cf.col_lse = st->lse.data();
      cuda::similarity_backward<T>(c, st->sim, cf, static_cast<T>(s), h.data(), false);
      // Positive part: -(s g / n) [beta_i (C_c - z_i) + W_c - beta_i z_i], W_c = sum_{class c} beta_j z_j.
      auto W = doubles(c, st->cls.classes * d);
      cuda::class_sums<T>(c, st->z.data(), d, st->cls.offsets.data(), st->cls.members.data(), st->cls.classes,
                          beta.data(), W.data());
      cuda::contrastive_positive_grad<T>(c, h.data(), n, d, st->cls.cls.data(), beta.data(), st->csum.data(),
                                         st->z.data(), W.data(), st->z.data(), g.data(), -s / double(n));
      scatter_rows(x1, st->z.data(), st->norms.data(), h.data(), 0);
      if (x2.defined()) scatter_rows(x2, st->z.data(), st->norms.data(), h.data(), n1);
    }
    if (weights.defined() && weights.requires_grad())
      cuda::add_scaled_rows<T>(c, weights.grad_buffer().data(), st->ell.data(), g.data(), 1.0 / double(n), n);
  };
  const Var<T, 2, Cuda>& second = x2.defined() ? x2 : x1;
  return ops_detail::with_defined(weights, [&](const auto&... wv) {
    return autograd::make_result(op, ctx, std::move(out), std::move(backward), x1, second, wv...);
  });
}

// ================================================================================================================
// Cross-network supervised contrastive (ICL): S = n(a) n(b)^T / tau, the same-index pair excluded
// ================================================================================================================
template <class T>
Var<T, 0, Cuda> supcon_cross(const Var<T, 2, Cuda>& a, const Var<T, 2, Cuda>& b, std::span<const index_t> class_of_row,
                             std::span<const index_t> class_count, double tau, const Var<T, 1, Cuda>& weights) {
  auto& ctx = a.ctx();
  const index_t n = a.extent(0), d = a.extent(1);
  struct State {
    std::shared_ptr<Unit<T>> a, b;
    Tensor<double, 1, Cuda> lse, ell, csum_b;
    DeviceClasses cls;
    cuda::Similarity<T> sim;
  };
  auto st = std::make_shared<State>();
  st->a = unit_of(a);
  st->b = a.node() == b.node() ? st->a : unit_of(b);
  const double s = 1.0 / tau;
  st->sim = cuda::Similarity<T>{st->a->z.data(), st->b->z.data(), n, n, d, nullptr, nullptr, 0, s, true,
                                fixed_shift_ok<T>(s), s, 0};
  st->lse = doubles(ctx, n);
  cuda::similarity_stats<T>(ctx, st->sim, st->lse.data(), nullptr, nullptr);
  st->cls = upload_classes(ctx, class_of_row, class_count);
  st->csum_b = doubles(ctx, st->cls.classes * d);
  cuda::class_sums<T>(ctx, st->b->z.data(), d, st->cls.offsets.data(), st->cls.members.data(), st->cls.classes,
                      nullptr, st->csum_b.data());
  st->ell = doubles(ctx, n);
  auto wl = doubles(ctx, n);
  const T* w = weights.defined() ? weights.value().data() : nullptr;
  cuda::contrastive_row_loss<T>(ctx, st->a->z.data(), st->b->z.data(), n, d, st->csum_b.data(), st->cls.cls.data(),
                                st->cls.npos.data(), st->lse.data(), s, w, st->ell.data(), wl.data());
  auto out = scalar_from<T>(ctx, wl, n, 1.0 / double(n));
  auto backward = [st, a, b, weights, n, d, s](const Tensor<T, 0, Cuda>& g) mutable {
    auto& c = a.ctx();
    const T* w = weights.defined() ? weights.value().data() : nullptr;
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    if (ga || gb) {
      auto coef = doubles(c, n), beta = doubles(c, n);
      cuda::row_coefficients<T>(c, g.data(), 1.0 / double(n), st->cls.has_pos.data(), w, n, coef.data());
      cuda::row_coefficients<T>(c, nullptr, 1.0, st->cls.inv_npos.data(), w, n, beta.data());
      const double k = -s / double(n);
      if (ga) {  // dA_i = s sum_j G_ij b_j + k g beta_i (CB_c - b_i)
        auto ha = c.template empty<T, 2>(Shape<2>{n, d});
        cuda::SimilarityCoefficients cf;
        cf.row_coef = coef.data();
        cf.row_lse = st->lse.data();
        cuda::similarity_backward<T>(c, st->sim, cf, static_cast<T>(s), ha.data(), false);
        cuda::contrastive_positive_grad<T>(c, ha.data(), n, d, st->cls.cls.data(), beta.data(), st->csum_b.data(),
                                           st->b->z.data(), nullptr, nullptr, g.data(), k);
        scatter_rows(a, st->a->z.data(), st->a->norms.data(), ha.data(), 0);
      }
      if (gb) {  // dB_j = s sum_i G_ij a_i + k g (WA_c - beta_j a_j)
        auto hb = c.template empty<T, 2>(Shape<2>{n, d});
        cuda::SimilarityCoefficients cf;
        cf.col_coef = coef.data();
        cf.col_lse = st->lse.data();
        cuda::similarity_backward<T>(c, cuda::transposed(st->sim), cf, static_cast<T>(s), hb.data(), false);
        auto WA = doubles(c, st->cls.classes * d);
        cuda::class_sums<T>(c, st->a->z.data(), d, st->cls.offsets.data(), st->cls.members.data(), st->cls.classes,
                            beta.data(), WA.data());
        cuda::contrastive_positive_grad<T>(c, hb.data(), n, d, st->cls.cls.data(), beta.data(), nullptr, nullptr,
                                           WA.data(), st->a->z.data(), g.data(), k);
        scatter_rows(b, st->b->z.data(), st->b->norms.data(), hb.data(), 0);
      }
    }
    if (weights.defined() && weights.requires_grad())
      cuda::add_scaled_rows<T>(c, weights.grad_buffer().data(), st->ell.data(), g.data(), 1.0 / double(n), n);
  };
  return ops_detail::with_defined(weights, [&](const auto&... wv) {
    return autograd::make_result("supcon_cross", ctx, std::move(out), std::move(backward), a, b, wv...);
  });
}

// ================================================================================================================
// CLIP-style InfoNCE: rows and columns of S = n(a) n(b)^T / tau
// ================================================================================================================
template <class T>
Var<T, 0, Cuda> info_nce_cross(const Var<T, 2, Cuda>& a, const Var<T, 2, Cuda>& b, double tau) {
  auto& ctx = a.ctx();
  const index_t n = a.extent(0), d = a.extent(1);
  struct State {
    std::shared_ptr<Unit<T>> a, b;
    Tensor<double, 1, Cuda> lse_r, lse_c;
    cuda::Similarity<T> sim;
  };
  auto st = std::make_shared<State>();
  st->a = unit_of(a);
  st->b = a.node() == b.node() ? st->a : unit_of(b);
  const double s = 1.0 / tau;
  st->sim = cuda::Similarity<T>{st->a->z.data(), st->b->z.data(), n, n, d, nullptr, nullptr, 0, s, false,
                                fixed_shift_ok<T>(s), s, 0};
  st->lse_r = doubles(ctx, n);
  st->lse_c = doubles(ctx, n);
  cuda::similarity_stats<T>(ctx, st->sim, st->lse_r.data(), nullptr, nullptr);
  cuda::similarity_stats<T>(ctx, cuda::transposed(st->sim), st->lse_c.data(), nullptr, nullptr);
  auto diag = doubles(ctx, n), rows = doubles(ctx, n);
  cuda::rows_dot<T>(ctx, st->a->z.data(), st->b->z.data(), n, d, s, diag.data());
  cuda::combine_rows(ctx, st->lse_r.data(), 1.0, st->lse_c.data(), 1.0, diag.data(), -2.0, n, rows.data());
  auto out = scalar_from<T>(ctx, rows, n, 1.0 / (2.0 * double(n)));
  auto backward = [st, a, b, n, d, s](const Tensor<T, 0, Cuda>& g) mutable {
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    if (!ga && !gb) return;
    auto& c = a.ctx();
    auto coef = doubles(c, n);
    cuda::row_coefficients<T>(c, g.data(), 1.0 / (2.0 * double(n)), nullptr, nullptr, n, coef.data());
    const T k = static_cast<T>(-s / double(n));  // positive pairs: dS_ii = -(g / N)
    if (ga) {
      auto ha = c.template empty<T, 2>(Shape<2>{n, d});
      cuda::SimilarityCoefficients cf{coef.data(), st->lse_r.data(), nullptr, coef.data(), st->lse_c.data(), nullptr};
      cuda::similarity_backward<T>(c, st->sim, cf, static_cast<T>(s), ha.data(), false);
      cuda::axpy_scaled<T>(c, ha.data(), st->b->z.data(), g.data(), k, n * d, true);
      scatter_rows(a, st->a->z.data(), st->a->norms.data(), ha.data(), 0);
    }
    if (gb) {
      auto hb = c.template empty<T, 2>(Shape<2>{n, d});
      cuda::SimilarityCoefficients cf{coef.data(), st->lse_c.data(), nullptr, coef.data(), st->lse_r.data(), nullptr};
      cuda::similarity_backward<T>(c, cuda::transposed(st->sim), cf, static_cast<T>(s), hb.data(), false);
      cuda::axpy_scaled<T>(c, hb.data(), st->a->z.data(), g.data(), k, n * d, true);
      scatter_rows(b, st->b->z.data(), st->b->norms.data(), hb.data(), 0);
    }
  };
  return autograd::make_result("info_nce_cross", ctx, std::move(out), std::move(backward), a, b);
}

// ================================================================================================================
// MoCo InfoNCE: q and k normalised, negatives [K, D] used as given (copied: enqueueing before backward is safe)
// ================================================================================================================
template <class T>
Var<T, 0, Cuda> moco_info_nce(const Var<T, 2, Cuda>& q, const Var<T, 2, Cuda>& k, const Tensor<T, 2, Cuda>& negatives,
                              double tau) {
  auto& ctx = q.ctx();
  const index_t B = q.extent(0), K = negatives.extent(0), d = q.extent(1);
  struct State {
    std::shared_ptr<Unit<T>> q, k;
    Tensor<T, 2, Cuda> neg;
    Tensor<double, 1, Cuda> pos, lse;
    cuda::Similarity<T> sim;
  };
  auto st = std::make_shared<State>();
  st->q = unit_of(q);
  st->k = unit_of(k);
  st->neg = ctx.template empty<T, 2>(Shape<2>{K, d});
  if (K) cuda::copy_on_device(ctx, st->neg.data(), negatives.data(), sizeof(T) * static_cast<std::size_t>(K * d));
  const double s = 1.0 / tau;
  // The negatives are not normalised here, so their logits have no a-priori bound: online maximum.
  st->sim = cuda::Similarity<T>{st->q->z.data(), st->neg.data(), B, K, d, nullptr, nullptr, 0, s, false, false, 0.0, 0};
  auto lse_neg = doubles(ctx, B), ell = doubles(ctx, B);
  cuda::similarity_stats<T>(ctx, st->sim, lse_neg.data(), nullptr, nullptr);
  st->pos = doubles(ctx, B);
  st->lse = doubles(ctx, B);
  cuda::rows_dot<T>(ctx, st->q->z.data(), st->k->z.data(), B, d, s, st->pos.data());
  cuda::moco_rows(ctx, lse_neg.data(), st->pos.data(), B, st->lse.data(), ell.data());
  auto out = scalar_from<T>(ctx, ell, B, 1.0 / double(B));
  auto backward = [st, q, k, B, d, s](const Tensor<T, 0, Cuda>& g) mutable {
    const bool gq = q.requires_grad(), gk = k.requires_grad();
    if (!gq && !gk) return;
    auto& c = q.ctx();
    Tensor<T, 2, Cuda> hq, hk;
    if (gq) {
      hq = c.template empty<T, 2>(Shape<2>{B, d});
      auto coef = doubles(c, B);
      cuda::row_coefficients<T>(c, g.data(), 1.0 / double(B), nullptr, nullptr, B, coef.data());
      cuda::SimilarityCoefficients cf;
      cf.row_coef = coef.data();
      cf.row_lse = st->lse.data();
      cuda::similarity_backward<T>(c, st->sim, cf, static_cast<T>(s), hq.data(), false);
    }
    if (gk) hk = c.template zeros<T, 2>(Shape<2>{B, d});
    cuda::moco_positive_grad<T>(c, st->q->z.data(), st->k->z.data(), B, d, st->pos.data(), st->lse.data(), g.data(),
                                s / double(B), gq ? hq.data() : nullptr, gk ? hk.data() : nullptr);
    if (gq) scatter_rows(q, st->q->z.data(), st->q->norms.data(), hq.data(), 0);
    if (gk) scatter_rows(k, st->k->z.data(), st->k->norms.data(), hk.data(), 0);
  };
  return autograd::make_result("moco_info_nce", ctx, std::move(out), std::move(backward), q, k);
}

// ================================================================================================================
// Soft contrastive KL_T: student X = n(sr) n(sc)^T / (tau T), stop-gradient teacher Y = n(tr) n(tc)^T / (tau T)
// ================================================================================================================
template <class T>
Var<T, 0, Cuda> soft_contrastive_kl(const Var<T, 2, Cuda>& sr, const Var<T, 2, Cuda>& sc, const Var<T, 2, Cuda>& tr,
                                    const Var<T, 2, Cuda>& tc, double tau, double temperature, bool exclude_diagonal,
                                    const Var<T, 1, Cuda>& weights) {
  auto& ctx = sr.ctx();
  const index_t n = sr.extent(0), nc = sc.extent(0);
  struct State {
    std::shared_ptr<Unit<T>> a, b, c, e;
    Tensor<double, 1, Cuda> lse_x, lse_y, kl;
    cuda::Similarity<T> sim;
  };
  auto st = std::make_shared<State>();
  // Normalise each distinct input once (the same Var may appear in several roles).
  std::vector<std::pair<const Node*, std::shared_ptr<Unit<T>>>> seen;
  auto unit = [&](const Var<T, 2, Cuda>& x) {
    for (auto& [node, u] : seen)
      if (node == x.node().get()) return u;
    auto u = unit_of(x);
    seen.emplace_back(x.node().get(), u);
    return u;
  };
  st->a = unit(sr);
  st->b = unit(sc);
  st->c = unit(tr);
  st->e = unit(tc);
  const double s = 1.0 / (tau * temperature);
  st->sim = cuda::Similarity<T>{st->a->z.data(), st->b->z.data(), n, nc, sr.extent(1), st->c->z.data(),
                                st->e->z.data(), tr.extent(1), s, exclude_diagonal, fixed_shift_ok<T>(s), s, 0};
  st->lse_x = doubles(ctx, n);
  st->lse_y = doubles(ctx, n);
  auto cross = doubles(ctx, n), wkl = doubles(ctx, n);
  cuda::similarity_stats<T>(ctx, st->sim, st->lse_x.data(), st->lse_y.data(), cross.data());
  st->kl = doubles(ctx, n);
  const T* w = weights.defined() ? weights.value().data() : nullptr;
  cuda::soft_kl_rows<T>(ctx, st->lse_x.data(), st->lse_y.data(), cross.data(), w, n, st->kl.data(), wkl.data());
  const double T2 = temperature * temperature;
  auto out = scalar_from<T>(ctx, wkl, n, T2 / double(n));
  auto backward = [st, sr, sc, weights, n, nc, s, T2](const Tensor<T, 0, Cuda>& g) mutable {
    auto& c = sr.ctx();
    const T* w = weights.defined() ? weights.value().data() : nullptr;
    const bool ga = sr.requires_grad(), gb = sc.requires_grad();
    if (ga || gb) {
      auto coef = doubles(c, n);
      cuda::row_coefficients<T>(c, g.data(), T2 / double(n), nullptr, w, n, coef.data());
      if (ga) {
        auto ha = c.template empty<T, 2>(Shape<2>{n, sr.extent(1)});
        cuda::SimilarityCoefficients cf;
        cf.row_coef = coef.data();
        cf.row_lse = st->lse_x.data();
        cf.row_teacher_lse = st->lse_y.data();
        cuda::similarity_backward<T>(c, st->sim, cf, static_cast<T>(s), ha.data(), false);
        scatter_rows(sr, st->a->z.data(), st->a->norms.data(), ha.data(), 0);
      }
      if (gb) {
        auto hb = c.template empty<T, 2>(Shape<2>{nc, sc.extent(1)});
        cuda::SimilarityCoefficients cf;
        cf.col_coef = coef.data();
        cf.col_lse = st->lse_x.data();
        cf.col_teacher_lse = st->lse_y.data();
        cuda::similarity_backward<T>(c, cuda::transposed(st->sim), cf, static_cast<T>(s), hb.data(), false);
        scatter_rows(sc, st->b->z.data(), st->b->norms.data(), hb.data(), 0);
      }
    }
    if (weights.defined() && weights.requires_grad())
      cuda::add_scaled_rows<T>(c, weights.grad_buffer().data(), st->kl.data(), g.data(), T2 / double(n), n);
  };
  return ops_detail::with_defined(weights, [&](const auto&... wv) {
    return autograd::make_result("soft_contrastive_kl", ctx, std::move(out), std::move(backward), sr, sc, wv...);
  });
}

// ================================================================================================================
// KD-KL on logits: the gradient is written in the forward (one kernel); backward scales it by g
// ================================================================================================================
/// v.grad += g * src; when v has no gradient yet, src (scaled by g in place) becomes it (no copy, no zero fill).
template <class T>
bool give_grad(const Var<T, 2, Cuda>& v, Tensor<T, 2, Cuda>& src, const Tensor<T, 0, Cuda>& g) {
  auto& c = v.ctx();
  if (v.has_grad()) {
    cuda::axpy_scaled<T>(c, v.grad_buffer().data(), src.data(), g.data(), T(1), src.numel(), true);
    return false;
  }
  cuda::axpy_scaled<T>(c, src.data(), src.data(), g.data(), T(1), src.numel(), false);
  v.node()->grad = src;
  src = Tensor<T, 2, Cuda>();
  return true;
}

template <class T>
Var<T, 0, Cuda> kd_kl(const Var<T, 2, Cuda>& student, const Var<T, 2, Cuda>& teacher, double temperature,
                      bool teacher_grad) {
  auto& ctx = student.ctx();
  const index_t B = student.extent(0), K = student.extent(1);
  const bool want_s = ctx.grad_enabled() && student.requires_grad();
  const bool want_t = ctx.grad_enabled() && teacher_grad && teacher.requires_grad();
  Tensor<T, 2, Cuda> ds, dt;
  if (want_s) ds = ctx.template empty<T, 2>(student.shape());
  if (want_t) dt = ctx.template empty<T, 2>(teacher.shape());
  auto kl = doubles(ctx, B);
  cuda::kd_kl<T>(ctx, student.value().data(), teacher.value().data(), B, K, 1.0 / temperature, temperature / double(B),
                 kl.data(), want_s ? ds.data() : nullptr, want_t ? dt.data() : nullptr);
  auto out = scalar_from<T>(ctx, kl, B, temperature * temperature / double(B));
  // As on the Cpu: the saved gradients are handed over when the inputs have none yet; a later backward through a
  // retained graph recomputes them from the logits.
  auto backward = [student, teacher, ds, dt, want_s, want_t, temperature, B, K,
                   valid = true](const Tensor<T, 0, Cuda>& g) mutable {
    auto& c = student.ctx();
    if (!valid) {
      if (want_s) ds = c.template empty<T, 2>(student.shape());
      if (want_t) dt = c.template empty<T, 2>(teacher.shape());
      auto kl2 = doubles(c, B);
      cuda::kd_kl<T>(c, student.value().data(), teacher.value().data(), B, K, 1.0 / temperature,
                     temperature / double(B), kl2.data(), want_s ? ds.data() : nullptr, want_t ? dt.data() : nullptr);
      valid = true;
    }
    bool handed = false;
    if (want_s && student.requires_grad()) handed |= give_grad(student, ds, g);
    if (want_t && teacher.requires_grad()) handed |= give_grad(teacher, dt, g);
    if (handed) valid = false;
  };
  if (teacher_grad) return autograd::make_result("kd_kl", ctx, std::move(out), std::move(backward), student, teacher);
  return autograd::make_result("kd_kl", ctx, std::move(out), std::move(backward), student);
}

// ================================================================================================================
// DisCo: sum_i ||n(a_i) - n(b_i)||^2
// ================================================================================================================
template <class T>
Var<T, 0, Cuda> normalized_mse_sum(const Var<T, 2, Cuda>& a, const Var<T, 2, Cuda>& b) {
  auto& ctx = a.ctx();
  const index_t n = a.extent(0), d = a.extent(1);
  auto rows = doubles(ctx, n);
  cuda::normalized_mse_forward<T>(ctx, a.value().data(), b.value().data(), n, d, kNormEps, rows.data());
  auto out = scalar_from<T>(ctx, rows, n, 1.0);
  auto backward = [a, b, n, d](const Tensor<T, 0, Cuda>& g) mutable {
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    if (!ga && !gb) return;
    T* da = ga ? a.grad_buffer().data() : nullptr;
    T* db = gb ? b.grad_buffer().data() : nullptr;
    if (da && da == db) return;  // the same Var on both sides: n(a) - n(a) = 0, gradient 0
    cuda::normalized_mse_backward<T>(a.ctx(), a.value().data(), b.value().data(), n, d, kNormEps, g.data(), da, db);
  };
  return autograd::make_result("normalized_mse_sum", ctx, std::move(out), std::move(backward), a, b);
}

}  // namespace distill::cuda_losses
