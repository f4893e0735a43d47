// distill/ops/softmax.hpp -- row-wise softmax and log_softmax over [B, K]: forward and backward, every device.
//
// Both are max-shifted (stable for logits of +-1e4). The backward needs only the output:
//   softmax:      dx = y * (dy - <y, dy>)
//   log_softmax:  dx = dy - exp(y) * sum(dy)
#pragma once

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

/// softmax over each row of x [B, K] (PyTorch: F.softmax(x, dim=1)).
template <class T, class D>
Var<T, 2, D> softmax(const Var<T, 2, D>& x) {
  DISTILL_CHECK(x.extent(1) > 0, "softmax: rows of the input ", to_string(x.shape()), " are empty");
  auto& ctx = x.ctx();
  const index_t B = x.extent(0), K = x.extent(1);
  Tensor<T, 2, D> out = ops_detail::empty<T, 2>(ctx, x.shape());
  backend::softmax_rows(ctx, x.value().data(), out.data(), B, K);
  Tensor<T, 2, D> y = out;
  return autograd::make_result("softmax", ctx, std::move(out),
      [x, y, B, K](const Tensor<T, 2, D>& g) mutable {
        if (!x.requires_grad()) return;
        backend::softmax_rows_backward(x.ctx(), y.data(), g.data(), x.grad_buffer().data(), B, K, true);
      },
      x);
}

/// log_softmax over each row of x [B, K] (PyTorch: F.log_softmax(x, dim=1)).
template <class T, class D>
Var<T, 2, D> log_softmax(const Var<T, 2, D>& x) {
  DISTILL_CHECK(x.extent(1) > 0, "log_softmax: rows of the input ", to_string(x.shape()), " are empty");
  auto& ctx = x.ctx();
  const index_t B = x.extent(0), K = x.extent(1);
  Tensor<T, 2, D> out = ops_detail::empty<T, 2>(ctx, x.shape());
  backend::log_softmax_rows(ctx, x.value().data(), out.data(), B, K);
  Tensor<T, 2, D> y = out;
  return autograd::make_result("log_softmax", ctx, std::move(out),
      [x, y, B, K](const Tensor<T, 2, D>& g) mutable {
        if (!x.requires_grad()) return;
        backend::log_softmax_rows_backward(x.ctx(), y.data(), g.data(), x.grad_buffer().data(), B, K, true);
      },
      x);
}

}  // namespace distill
