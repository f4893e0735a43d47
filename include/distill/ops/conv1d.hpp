// distill/ops/conv1d.hpp -- stride-1 conv1d (same / valid padding, dilation, optional bias): forward and backward.
//
//   x [B, Cin, L], w [Cout, Cin, K], bias [Cout] (an undefined Var means no bias) -> y [B, Cout, Lout]
//
// Padding::Same follows PyTorch (for even K the extra zero goes on the right: K = 8 pads 3 left, 4 right); a
// 1x1 convolution is K = 1. One Conv1dGeometry (problems/conv1d.hpp) goes unchanged to the backend of D: cpu/conv1d.hpp
// (results independent of ctx.threads()) or kernels/conv1d.cuh (direct implicit GEMM; grad-weight by a deterministic
// split-K).
#pragma once

#include <type_traits>
#include <utility>

#include "distill/autograd/var.hpp"
#include "distill/problems/conv1d.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

namespace ops_detail {

/// Checks the shapes of a conv1d call and returns its geometry; errors name the shapes at fault.
inline Conv1dGeometry conv1d_check(const Shape<3>& xs, const Shape<3>& ws, const Shape<1>* bias_shape,
                                   const Conv1dOptions& opt) {
  DISTILL_CHECK(xs[1] == ws[1], "conv1d: input ", to_string(xs), " has ", xs[1], " channels but weight ", to_string(ws),
                " expects ", ws[1]);
  if (bias_shape)
    DISTILL_CHECK((*bias_shape)[0] == ws[0], "conv1d: bias ", to_string(*bias_shape), " does not match weight ",
                  to_string(ws), " with ", ws[0], " output channels");
  DISTILL_CHECK(xs[2] >= 1 && ws[2] >= 1 && ws[0] >= 1 && ws[1] >= 1, "conv1d: empty input ", to_string(xs),
                " or weight ", to_string(ws));
  return conv1d_geometry(xs[0], xs[1], ws[0], xs[2], ws[2], opt);
}

}  // namespace ops_detail

/// y[b, o, t] = bias[o] + sum_{c, u} w[o, c, u] * x[b, c, t + u * dilation - pad_left] (zero outside [0, L)).
template <class T, class D>
Var<T, 3, D> conv1d(const Var<T, 3, D>& x, const Var<T, 3, D>& w, const Var<T, 1, D>& bias, Conv1dOptions opt = {}) {
  static_assert(std::is_floating_point_v<T>, "conv1d: the element type must be float or double.");
  const bool has_bias = bias.defined();
  const Conv1dGeometry g = ops_detail::conv1d_check(x.shape(), w.shape(), has_bias ? &bias.shape() : nullptr, opt);
  auto& ctx = x.ctx();
  Tensor<T, 3, D> y = ops_detail::empty<T, 3>(ctx, g.y_shape());
  backend::conv1d_forward(ctx, g, x.value().data(), w.value().data(), has_bias ? bias.value().data() : nullptr,
                          y.data(), false, Conv1dAlgo::Auto);
  auto backward = [x, w, bias, g, has_bias](const Tensor<T, 3, D>& gy) mutable {
    const bool gw = w.requires_grad(), gb = has_bias && bias.requires_grad();
    T* dw = gw ? w.grad_buffer().data() : nullptr;
    T* db = gb ? bias.grad_buffer().data() : nullptr;
    auto& c = x.ctx();
    if (x.requires_grad()) backend::conv1d_backward_input(c, g, gy.data(), w.value().data(), x.grad_buffer().data(), true);
    if (gw || gb) backend::conv1d_backward_weight(c, g, x.value().data(), gy.data(), dw, db, true);
  };
  if (has_bias) return autograd::make_result("conv1d", ctx, std::move(y), std::move(backward), x, w, bias);
  return autograd::make_result("conv1d", ctx, std::move(y), std::move(backward), x, w);
}

/// conv1d without bias.
template <class T, class D>
Var<T, 3, D> conv1d(const Var<T, 3, D>& x, const Var<T, 3, D>& w, Conv1dOptions opt = {}) {
  return conv1d(x, w, Var<T, 1, D>(), opt);
}

}  // namespace distill
