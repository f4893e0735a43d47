// distill/losses/mcl.hpp -- the mutual contrastive objective of MCL (Yang et al., AAAI 2022) and the weighted pair
// contrast of L-MCL (Yang et al., TPAMI 2023), composed from the fused losses (docs/mcl.md, docs/losses.md):
//
//   v_a = Embed_a(...) [B, 128] for the M networks of a cohort (raw rows; every loss L2-normalises inside),
//   S_ab = n(v_a) n(v_b)^T / tau, positives P(i) = {j != i : y_j = y_i}:
//   VCL  = sum_a       supcon(v_a)                                 (denominator: every k != i)
//   ICL  = sum_{a<b}   supcon_cross(v_a, v_b) + supcon_cross(v_b, v_a)   (the same-index pair i == j excluded
//                                                                          from positives and denominator)
//   sVCL = sum_{a!=b}  KL_T(S_aa || sg S_bb)                       (all B columns, diagonal included)
//   sICL = sum_{a<b}   KL_T(S_ab || sg S_ba) + KL_T(S_ba || sg S_ab)  (all B columns)
//   L    = alpha VCL + gamma sVCL + beta ICL + lambda sICL.
// Anchors without a positive contribute 0 to VCL / ICL (they still count in the 1/B mean).
#pragma once

#include <span>
#include <vector>

#include "distill/losses/contrastive.hpp"
#include "distill/losses/distillation.hpp"
#include "distill/ops/elementwise.hpp"

namespace distill::losses {

/// Weights and temperatures of the MCL terms (defaults: the MCL paper's CIFAR recipe).
struct MclWeights {
  double tau = 0.07;         // contrastive temperature
  double temperature = 3.0;  // KL temperature T of the soft terms
  double alpha = 0.1;        // VCL
  double gamma = 1.0;        // soft VCL
  double beta = 0.1;         // ICL
  double lambda = 1.0;       // soft ICL
};

/// The four terms (unweighted sums) and the weighted total.
template <class T, class D>
struct MclTerms {
  Var<T, 0, D> total;
  Var<T, 0, D> vcl, icl, soft_vcl, soft_icl;
};

namespace detail {
template <class T, class D>
void accumulate(Var<T, 0, D>& acc, const Var<T, 0, D>& x) {
  acc = acc.defined() ? add(acc, x) : x;
}
template <class T, class D>
Var<T, 0, D> weighted_total(MclTerms<T, D>& t, const MclWeights& w) {
  Var<T, 0, D> total;
  const std::pair<const Var<T, 0, D>*, double> parts[] = {
      {&t.vcl, w.alpha}, {&t.soft_vcl, w.gamma}, {&t.icl, w.beta}, {&t.soft_icl, w.lambda}};
  for (const auto& [v, k] : parts)
    if (v->defined() && k != 0) accumulate(total, scale(*v, static_cast<T>(k)));
  return total;
}
}  // namespace detail

/// MCL over a cohort's embeddings v[0..M) (each [B, d], same B), with labels [B]. M >= 2.
template <class T, class D>
MclTerms<T, D> mcl_terms(std::span<const Var<T, 2, D>> v, std::span<const int> labels, const MclWeights& w = {}) {
  const std::size_t M = v.size();
  DISTILL_CHECK(M >= 2, "mcl_terms: a cohort of ", M, " networks (mutual learning needs at least 2)");
  for (std::size_t a = 1; a < M; ++a)
    check_same_shape(v[0].shape(), v[a].shape(), "mcl_terms: the embeddings of networks 0 and a");
  MclTerms<T, D> t;
  for (std::size_t a = 0; a < M; ++a) {
    detail::accumulate(t.vcl, supcon(v[a], labels, w.tau));
    for (std::size_t b = 0; b < M; ++b)
      if (b != a)  // the teacher rows (v_b, v_b) never receive a gradient from soft_contrastive_kl
        detail::accumulate(t.soft_vcl, soft_contrastive_kl(v[a], v[a], v[b], v[b], w.tau, w.temperature));
    for (std::size_t b = a + 1; b < M; ++b) {
      detail::accumulate(t.icl, add(supcon_cross(v[a], v[b], labels, w.tau), supcon_cross(v[b], v[a], labels, w.tau)));
      detail::accumulate(t.soft_icl, add(soft_contrastive_kl(v[a], v[b], v[b], v[a], w.tau, w.temperature),
                                         soft_contrastive_kl(v[b], v[a], v[a], v[b], w.tau, w.temperature)));
    }
  }
  t.total = detail::weighted_total(t, w);
  return t;
}

/// L-MCL's pair contrast between two exits' embeddings e1, e2 [B, d] with per-anchor weights `weights` [B] (may
/// require grad: the meta step differentiates the loss with respect to them):
///   VCL  = supcon_w(e1) + supcon_w(e2),            ICL  = supcon_cross_w(e1, e2) + supcon_cross_w(e2, e1),
///   sVCL = KL_w(S_11 || sg S_22) + KL_w(S_22 || sg S_11),  sICL = KL_w(S_12 || sg S_21) + KL_w(S_21 || sg S_12),
/// where _w multiplies anchor row i's loss by weights_i. The stop-gradient teacher similarities are built from t1,
/// t2 when given (the meta step evaluates them at the unperturbed parameters), else from e1, e2.
template <class T, class D>
MclTerms<T, D> pair_contrast(const Var<T, 2, D>& e1, const Var<T, 2, D>& e2, std::span<const int> labels,
                             const Var<T, 1, D>& weights, const MclWeights& w = {}, const Var<T, 2, D>& t1_ = {},
                             const Var<T, 2, D>& t2_ = {}) {
  check_same_shape(e1.shape(), e2.shape(), "pair_contrast: the two exits' embeddings");
  // Teacher roles: soft_contrastive_kl never sends them a gradient.
  const Var<T, 2, D>& t1 = t1_.defined() ? t1_ : e1;
  const Var<T, 2, D>& t2 = t2_.defined() ? t2_ : e2;
  MclTerms<T, D> t;
  t.vcl = add(supcon(e1, labels, w.tau, weights), supcon(e2, labels, w.tau, weights));
  t.icl = add(supcon_cross(e1, e2, labels, w.tau, weights), supcon_cross(e2, e1, labels, w.tau, weights));
  t.soft_vcl = add(soft_contrastive_kl(e1, e1, t2, t2, w.tau, w.temperature, Diagonal::include, weights),
                   soft_contrastive_kl(e2, e2, t1, t1, w.tau, w.temperature, Diagonal::include, weights));
  t.soft_icl = add(soft_contrastive_kl(e1, e2, t2, t1, w.tau, w.temperature, Diagonal::include, weights),
                   soft_contrastive_kl(e2, e1, t1, t2, w.tau, w.temperature, Diagonal::include, weights));
  t.total = detail::weighted_total(t, w);
  return t;
}

}  // namespace distill::losses
