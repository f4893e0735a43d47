// distill/ops/pool.hpp -- global average pooling over time and flatten: forward and backward, every device.
#pragma once

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

/// Mean over the time axis: x [B, C, L] -> [B, C] (PyTorch: x.mean(dim=2), AdaptiveAvgPool1d(1) + squeeze).
template <class T, class D>
Var<T, 2, D> global_avg_pool(const Var<T, 3, D>& x) {
  const auto& s = x.shape();
  DISTILL_CHECK(s[2] > 0, "global_avg_pool: the input ", to_string(s), " has no time steps to average");
  auto& ctx = x.ctx();
  const index_t Bn = s[0], C = s[1], L = s[2];
  Tensor<T, 2, D> out = ops_detail::empty<T, 2>(ctx, Shape<2>{s[0], s[1]});
  backend::global_avg_pool_forward(ctx, x.value().data(), out.data(), Bn, C, L);
  return autograd::make_result("global_avg_pool", ctx, std::move(out),
      [x, Bn, C, L](const Tensor<T, 2, D>& g) mutable {
        if (!x.requires_grad()) return;
        backend::global_avg_pool_backward(x.ctx(), g.data(), x.grad_buffer().data(), Bn, C, L, true);
      },
      x);
}

/// x [B, C, L] -> [B, C*L] (PyTorch: x.flatten(1)). The value is a view sharing x's storage (no copy).
template <class T, class D>
Var<T, 2, D> flatten(const Var<T, 3, D>& x) {
  const auto& s = x.shape();
  auto& ctx = x.ctx();
  Tensor<T, 2, D> out = x.value().reshape(Shape<2>{s[0], s[1] * s[2]});
  return autograd::make_result("flatten", ctx, std::move(out),
      [x](const Tensor<T, 2, D>& g) mutable {
        if (!x.requires_grad()) return;
        auto& gx = x.grad_buffer();
        auto g3 = g.reshape(gx.shape());
        DeviceOps<D>::accumulate(x.ctx(), gx, g3);
      },
      x);
}

}  // namespace distill
