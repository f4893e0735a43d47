// distill/ops/reduce.hpp -- sum and mean of all elements (to a rank-0 Var): forward and backward, Cpu and Cuda.
#pragma once

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

/// Sum of all elements (scaled by `factor`, 1 for sum, 1/n for mean).
template <class T, std::size_t R, class D>
Var<T, 0, D> sum(const Var<T, R, D>& x, T factor = T(1)) {
  auto& ctx = x.ctx();
  Tensor<T, 0, D> out = ops_detail::empty<T, 0>(ctx, Shape<0>{});
  backend::sum(ctx, x.value().data(), x.numel(), out.data(), factor, false);  // in double, fixed order
  return autograd::make_result("sum", ctx, std::move(out),
      [x, factor](const Tensor<T, 0, D>& g) mutable {
        if (!x.requires_grad()) return;
        auto& gx = x.grad_buffer();
        backend::add_scalar(x.ctx(), gx.data(), g.data(), factor, gx.numel());  // g stays on the context's device
      },
      x);
}

/// Mean of all elements.
template <class T, std::size_t R, class D>
Var<T, 0, D> mean(const Var<T, R, D>& x) {
  DISTILL_CHECK(x.numel() > 0, "mean: empty tensor of shape ", to_string(x.shape()));
  return sum(x, T(1) / static_cast<T>(x.numel()));
}

}  // namespace distill
