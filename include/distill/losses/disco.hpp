// distill/losses/disco.hpp -- the DisCo objective (Gao et al., "DisCo: Remedy Self-supervised Learning on
// Lightweight Models with Distilled Contrastive Learning", ECCV 2022), composed from the fused losses.
//
// snippet: synopsis (the objective in mathematical notation; docs/disco.md shows the calls)
//   L = L_con + w * sum_i ( ||n(t1_i) - n(q1_i)||^2 + ||n(t2_i) - n(q2_i)||^2 ),      w = 32 / B by default
//
//   q1 = S(x1), q2 = S(x2)   the student's query embeddings of the two views (gradients flow)
//   k  = S_m(x2)             the student's momentum (key) encoder on view 2 (no gradient)
//   t1 = T(x1), t2 = T(x2)   the frozen teacher on the same two views (detached here in any case)
//   L_con = MoCo-v2 InfoNCE of q1 with positive k against the queue's negatives, tau = 0.2, mean over the batch;
//           or, without a queue (tiny training sets), the in-batch NT-Xent of (q1, q2) (SimCLR negatives).
//
// The balance w: the reference implementation adds a batch-mean cross-entropy to an MSE summed (not averaged) over
// the 32 samples each of its 8 GPUs holds, and data parallelism averages the 8 gradients. Its effective objective is
// CE_mean + 32 * mean_i(sum over dims and both views), so on one device with a batch of B the summed term is scaled by
// 32 / B (disco_balance). The same function without a teacher (t1, t2 undefined) is the plain MoCo-v2 / SimCLR loss
// of the student-alone baseline and of the teacher's own pre-training.
#pragma once

#include "distill/losses/contrastive.hpp"
#include "distill/losses/distillation.hpp"
#include "distill/ops/elementwise.hpp"

namespace distill::losses {

/// DisCo's weight of the summed distillation term for a device batch of `batch` samples: 32 / batch.
inline double disco_balance(index_t batch) {
  DISTILL_CHECK(batch >= 1, "disco_balance: batch must be >= 1, got ", batch);
  return 32.0 / double(batch);
}

struct DiscoLossOptions {
  double tau = 0.2;      // InfoNCE / NT-Xent temperature
  double balance = 0;    // weight of the summed distillation term; 0: disco_balance(B)
  double weight_con = 1; // weight of L_con (0 reproduces the reference's --only-mse)
};

/// The value and its parts (the parts as plain numbers, for logging).
template <class T, class D>
struct DiscoLossParts {
  Var<T, 0, D> total;
  double contrastive = 0;   // L_con
  double distillation = 0;  // the summed distillation term before weighting (0 without a teacher)
  double balance = 0;       // the weight that was applied to it
};

/// DisCo's loss. `negatives` [K, D] (a queue's contents, unit rows) are used when `k` is defined (MoCo mode);
/// with `k` undefined L_con is nt_xent(q1, q2, tau) (in-batch mode, q2 required). t1, t2 undefined: no
/// distillation term (q2 is then only needed in in-batch mode).
template <class T, class D>
DiscoLossParts<T, D> disco_loss(const Var<T, 2, D>& q1, const Var<T, 2, D>& q2, const Var<T, 2, D>& k,
                                const Tensor<T, 2, D>& negatives, const Var<T, 2, D>& t1, const Var<T, 2, D>& t2,
                                const DiscoLossOptions& opt = {}) {
  DISTILL_CHECK(q1.defined(), "disco_loss: the view-1 queries q1 are required");
  DISTILL_CHECK(k.defined() || q2.defined(), "disco_loss: in-batch mode (no key k) needs the view-2 queries q2");
  DISTILL_CHECK(t1.defined() == t2.defined(), "disco_loss: pass both teacher embeddings t1 and t2, or neither");
  DISTILL_CHECK(!t1.defined() || q2.defined(), "disco_loss: the distillation term needs the view-2 queries q2");
  DISTILL_CHECK(opt.balance >= 0 && opt.weight_con >= 0, "disco_loss: balance and weight_con must be >= 0, got ",
                opt.balance, " and ", opt.weight_con);
  DiscoLossParts<T, D> out;
  Var<T, 0, D> con = k.defined() ? moco_info_nce(q1, k, negatives, opt.tau) : nt_xent(q1, q2, opt.tau);
  out.contrastive = item(con);
  out.total = opt.weight_con == 1 ? con : scale(con, static_cast<T>(opt.weight_con));
  if (t1.defined()) {
    check_same_shape(q1.shape(), t1.shape(), "disco_loss: student q1 and teacher t1 embeddings");
    check_same_shape(q2.shape(), t2.shape(), "disco_loss: student q2 and teacher t2 embeddings");
    auto dis = add(normalized_mse_sum(q1, t1.detach()), normalized_mse_sum(q2, t2.detach()));
    out.balance = opt.balance > 0 ? opt.balance : disco_balance(q1.extent(0));
    out.distillation = item(dis);
    out.total = add(out.total, scale(dis, static_cast<T>(out.balance)));
  }
  return out;
}

/// The same with a queue of negatives (MoCo mode; the query width is checked against the queue even while empty).
template <class T, class D>
DiscoLossParts<T, D> disco_loss(const Var<T, 2, D>& q1, const Var<T, 2, D>& q2, const Var<T, 2, D>& k,
                                const Queue<T, D>& queue, const Var<T, 2, D>& t1, const Var<T, 2, D>& t2,
                                const DiscoLossOptions& opt = {}) {
  DISTILL_CHECK(q1.extent(1) == queue.dim(), "disco_loss: queries of shape ", to_string(q1.shape()),
                " for a queue of dim ", queue.dim(), " (", queue.size(), " keys filled)");
  DISTILL_CHECK(k.defined(), "disco_loss: MoCo mode (a queue) needs the keys k");
  return disco_loss(q1, q2, k, queue.contents(), t1, t2, opt);
}

}  // namespace distill::losses
