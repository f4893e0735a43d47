// distill/losses/distillation.hpp -- fused distillation losses: soft contrastive KL between similarity
// distributions (DCRLS self-distillation, MCL soft VCL / ICL, L-MCL weights), KD-KL on logits, and the
// sum-reduced MSE between L2-normalised embeddings (DisCo). Maths and gradients: docs/losses.md. The checks run here
// (the same on every device), then engine:: (losses/fused.hpp): losses/fused_cpu.hpp or losses/fused_cuda.hpp.
#pragma once

#include <cmath>
#include <memory>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/losses/detail.hpp"
#include "distill/losses/fused.hpp"

namespace distill::losses {

/// Whether the i == j entry of a similarity row takes part in the softmax.
enum class Diagonal { include, exclude };


/// Soft contrastive KL_T between a student and a teacher similarity distribution, row by row:
///   X = n(sr) n(sc)^T / (tau T)   (student, [N, Nc], gradients flow into sr and sc)
///   Y = n(tr) n(tc)^T / (tau T)   (teacher, same shape, stop-gradient: tr and tc never receive a gradient)
///   L = (T^2 / N) sum_i w_i KL(softmax(Y_i) || softmax(X_i)),  softmax over the columns allowed by `diagonal`
/// (Diagonal::exclude drops j == i and needs N == Nc). Uses:
///   DCRLS self-distillation:  sr = sc = concat0(z1_b, z2_b), tr = tc = concat0(z1_K, z2_K), Diagonal::exclude
///   MCL soft VCL:             (v_a, v_a) vs (v_b, v_b);   soft ICL: (v_a, v_b) vs (v_b, v_a)
///   L-MCL:                    `weights` [N] per anchor row (may require grad: dL/dw_i = T^2 KL_i / N).
/// Rows with no allowed column contribute 0. The teacher may use a different embedding width than the student.
template <class T, class D>
Var<T, 0, D> soft_contrastive_kl(const Var<T, 2, D>& sr, const Var<T, 2, D>& sc, const Var<T, 2, D>& tr,
                                 const Var<T, 2, D>& tc, double tau, double temperature,
                                 Diagonal diagonal = Diagonal::include, const Var<T, 1, D>& weights = {}) {
  const char* op = "soft_contrastive_kl";
  detail::check_temperature(op, "tau", tau);
  detail::check_temperature(op, "temperature", temperature);
  detail::check_temperature(op, "tau * temperature", tau * temperature);  // the similarities are divided by both
  DISTILL_CHECK(std::isfinite(static_cast<float>(temperature * temperature)), op, ": temperature = ", temperature,
                " makes the T^2 loss scale overflow single precision");
  DISTILL_CHECK(sr.extent(1) == sc.extent(1) && sr.extent(1) > 0, op, ": student rows ", to_string(sr.shape()),
                " and student columns ", to_string(sc.shape()), " must share one embedding width >= 1");
  DISTILL_CHECK(tr.extent(1) == tc.extent(1) && tr.extent(1) > 0, op, ": teacher rows ", to_string(tr.shape()),
                " and teacher columns ", to_string(tc.shape()), " must share one embedding width >= 1");
  DISTILL_CHECK(sr.extent(0) == tr.extent(0) && sc.extent(0) == tc.extent(0), op, ": the student similarity ",
                to_string(sr.shape()), " x ", to_string(sc.shape()), "^T and the teacher similarity ",
                to_string(tr.shape()), " x ", to_string(tc.shape()), "^T have different shapes");
  DISTILL_CHECK(sr.extent(0) >= 1 && sc.extent(0) >= 1, op, ": empty similarity (", to_string(sr.shape()), " x ",
                to_string(sc.shape()), "^T)");
  DISTILL_CHECK(diagonal == Diagonal::include || sr.extent(0) == sc.extent(0), op,
                ": Diagonal::exclude needs a square similarity, got ", to_string(sr.shape()), " x ",
                to_string(sc.shape()), "^T");
  return engine::soft_contrastive_kl<T>(sr, sc, tr, tc, tau, temperature, diagonal == Diagonal::exclude, weights);
}

/// Hinton KD on logits s, t [B, K] with temperature T (PyTorch: F.kl_div(F.log_softmax(s/T, 1),
/// F.softmax(t/T, 1), reduction='batchmean') * T^2):
///   L = (T^2 / B) sum_i sum_j p_ij (log p_ij - log q_ij),  q = softmax(s/T), p = softmax(t/T).
/// dL/ds = (T / B)(q - p). The teacher is detached unless teacher_grad (then dL/dt = (T / B) p (log p - log q - KL_i)).
/// The gradient is computed in the forward pass (one read of s and t); backward only scales it.
template <class T, class D>
Var<T, 0, D> kd_kl(const Var<T, 2, D>& student, const Var<T, 2, D>& teacher, double temperature,
                   bool teacher_grad = false) {
  check_same_shape(student.shape(), teacher.shape(), "kd_kl: student and teacher logits");
  DISTILL_CHECK(student.extent(0) >= 1 && student.extent(1) >= 1, "kd_kl: logits of shape ",
                to_string(student.shape()), " are empty");
  detail::check_temperature("kd_kl", "temperature", temperature);
  return engine::kd_kl<T>(student, teacher, temperature, teacher_grad);
}

/// DisCo's distillation term: sum_i ||n(a_i) - n(b_i)||^2 over rows of a, b [N, D] (PyTorch:
/// F.mse_loss(F.normalize(a), F.normalize(b), reduction='sum')); both sides receive gradients if they require
/// them (detach the teacher).
template <class T, class D>
Var<T, 0, D> normalized_mse_sum(const Var<T, 2, D>& a, const Var<T, 2, D>& b) {
  check_same_shape(a.shape(), b.shape(), "normalized_mse_sum: a and b");
  return engine::normalized_mse_sum<T>(a, b);
}

}  // namespace distill::losses
