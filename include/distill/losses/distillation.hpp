// distill/losses/distillation.hpp -- fused distillation losses: soft contrastive KL between similarity
// distributions (DCRLS self-distillation, MCL soft VCL / ICL, L-MCL weights), KD-KL on logits, and the
// sum-reduced MSE between L2-normalised embeddings (DisCo). Maths and gradients: docs/losses.md. On the Cuda device
// the same checks run, then distill/losses/fused_cuda.hpp (docs/cuda.md).
#pragma once

#include <cmath>
#include <memory>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/losses/fused_cuda.hpp"
#include "distill/losses/detail.hpp"

namespace distill::losses {

/// Whether the i == j entry of a similarity row takes part in the softmax.
enum class Diagonal { include, exclude };

namespace detail {
template <class T>
struct SoftKlState {
  std::shared_ptr<cpu::fused::Emb<T>> a, b, c, e;
  std::vector<double> lse_x, lse_y, kl, w;
  T scale{};
  cpu::fused::Mask mask = cpu::fused::Mask::none;
};
}  // namespace detail

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
  if constexpr (std::is_same_v<D, Cuda>) {
    return cuda_losses::soft_contrastive_kl<T>(sr, sc, tr, tc, tau, temperature, diagonal == Diagonal::exclude,
                                               weights);
  } else {
    auto& ctx = sr.ctx();
    const int threads = ctx.threads();
    const cpu::fused::Exec ex = detail::exec_of(ctx);
    const index_t n = sr.extent(0);
    auto st = std::make_shared<detail::SoftKlState<T>>();
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
    st->mask = diagonal == Diagonal::exclude ? cpu::fused::Mask::diagonal : cpu::fused::Mask::none;
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
  if constexpr (std::is_same_v<D, Cuda>) {
    return cuda_losses::kd_kl<T>(student, teacher, temperature, teacher_grad);
  } else {
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
}

/// DisCo's distillation term: sum_i ||n(a_i) - n(b_i)||^2 over rows of a, b [N, D] (PyTorch:
/// F.mse_loss(F.normalize(a), F.normalize(b), reduction='sum')); both sides receive gradients if they require
/// them (detach the teacher).
template <class T, class D>
Var<T, 0, D> normalized_mse_sum(const Var<T, 2, D>& a, const Var<T, 2, D>& b) {
  check_same_shape(a.shape(), b.shape(), "normalized_mse_sum: a and b");
  if constexpr (std::is_same_v<D, Cuda>) {
    return cuda_losses::normalized_mse_sum<T>(a, b);
  } else {
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
}

}  // namespace distill::losses
