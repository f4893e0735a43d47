// distill/losses/contrastive.hpp -- fused contrastive losses: NT-Xent, CLIP-style InfoNCE, MoCo InfoNCE,
// supervised contrastive (MCL's VCL) and its cross-network form (MCL's ICL).
//
// Every loss takes raw embeddings [N, D] and L2-normalises them inside (F.normalize semantics, eps = 1e-12), so
// similarities are cosines divided by tau; the MoCo negatives are used as given (losses::Queue stores unit rows).
// Each is one autograd op: the forward saves the normalised rows (plus their packed transpose), the input norms
// and one log-sum-exp per row, never an N x N matrix; the backward recomputes the similarity tiles. Formulas, masks
// and gradients: docs/losses.md. Results are rank-0 Vars. The functions here check their inputs (the same messages
// on every device) and call engine:: (losses/fused.hpp): losses/fused_cpu.hpp (tiles of cpu/fused_losses.hpp) or
// losses/fused_cuda.hpp (flash-style kernels, kernels/contrastive_similarity.cuh; docs/cuda.md).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/losses/detail.hpp"
#include "distill/losses/fused.hpp"
#include "distill/losses/queue.hpp"

namespace distill::losses {

namespace detail {

/// The supervised-contrastive row loss over the rows of [x1; x2] (x2 may be undefined), positives = same class
/// and not the same row, denominator = every other row. L = (1/n) sum_i w_i l_i; rows without a positive
/// contribute 0. NT-Xent is the special case class(i) = i mod B.
template <class T, class D>
Var<T, 0, D> self_contrastive(const char* op, const Var<T, 2, D>& x1, const Var<T, 2, D>& x2, Classes cls,
                              double tau, const Var<T, 1, D>& weights) {
  return engine::self_contrastive<T>(op, x1, x2, cls.id, cls.count, tau, weights);
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
  const detail::Classes cls = detail::compact_labels(labels);
  return engine::supcon_cross<T>(a, b, cls.id, cls.count, tau, weights);
}

/// CLIP-style cross-view InfoNCE of paired rows a, b [N, D] (cosine similarity inside):
///   S = n(a) n(b)^T / tau,  L = (1/2N) sum_i [lse_j S_ij - S_ii] + (1/2N) sum_j [lse_i S_ij - S_jj].
template <class T, class D>
Var<T, 0, D> info_nce_cross(const Var<T, 2, D>& a, const Var<T, 2, D>& b, double tau) {
  check_same_shape(a.shape(), b.shape(), "info_nce_cross: the paired embeddings a and b");
  DISTILL_CHECK(a.extent(0) >= 1, "info_nce_cross: embeddings of shape ", to_string(a.shape()), " have no rows");
  detail::check_embeddings("info_nce_cross", "a", a);
  detail::check_temperature("info_nce_cross", "tau", tau);
  return engine::info_nce_cross<T>(a, b, tau);
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
  return engine::moco_info_nce<T>(q, k, negatives, tau);
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
