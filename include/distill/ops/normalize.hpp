// distill/ops/normalize.hpp -- row-wise L2 normalisation: forward and backward side by side, every device.
#pragma once

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

/// y[b] = x[b] / max(||x[b]||_2, eps) for x [B, D] (PyTorch: F.normalize(x, p=2, dim=1, eps=eps)).
/// Backward: (dy - y <y, dy>) / ||x|| for rows with ||x|| > eps; dy / eps for rows at or below eps (the
/// clamp is constant there), as in PyTorch.
template <class T, class D>
Var<T, 2, D> l2_normalize(const Var<T, 2, D>& x, double eps = 1e-12) {
  DISTILL_CHECK(eps > 0, "l2_normalize: eps must be positive, got ", eps);
  auto& ctx = x.ctx();
  const index_t B = x.extent(0), Dm = x.extent(1);
  Tensor<T, 2, D> out = ops_detail::empty<T, 2>(ctx, x.shape());
  Tensor<T, 1, D> norms = ops_detail::empty<T, 1>(ctx, Shape<1>{B});
  backend::l2_normalize_rows(ctx, x.value().data(), out.data(), norms.data(), B, Dm, eps);
  Tensor<T, 2, D> y = out;  // saved: the backward needs the output and the norms only
  return autograd::make_result("l2_normalize", ctx, std::move(out),
      [x, y, norms, eps, B, Dm](const Tensor<T, 2, D>& g) mutable {
        if (!x.requires_grad()) return;
        backend::l2_normalize_rows_backward(x.ctx(), y.data(), norms.data(), g.data(), x.grad_buffer().data(), B, Dm,
                                            eps, true);
      },
      x);
}

}  // namespace distill
