// distill/ops/reduce.hpp -- sum and mean of all elements (to a rank-0 Var): forward and backward, Cpu and Cuda.
#pragma once

#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

namespace ops_detail {
/// Deterministic sum in double: fixed chunking, per-thread partials combined in order.
template <class T, std::size_t R>
double sum_all(Context<Cpu>& ctx, const Tensor<T, R, Cpu>& x) {
  const index_t n = x.numel();
  const T* p = x.data();
  const int nt = threads_for(ctx, n);
  std::vector<double> partial(static_cast<std::size_t>(nt), 0.0);
  const index_t per = (n + nt - 1) / std::max(nt, 1);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) {
    double s = 0;
    const index_t e = std::min(n, (t + 1) * per);
    for (index_t i = t * per; i < e; ++i) s += double(p[i]);
    partial[t] = s;
  }
  double s = 0;
  for (int t = 0; t < nt; ++t) s += partial[t];
  return s;
}
}  // namespace ops_detail

/// Sum of all elements (scaled by `factor`, 1 for sum, 1/n for mean).
template <class T, std::size_t R, class D>
Var<T, 0, D> sum(const Var<T, R, D>& x, T factor = T(1)) {
  auto& ctx = x.ctx();
  Tensor<T, 0, D> out = ops_detail::empty<T, 0>(ctx, Shape<0>{});
  if constexpr (ops_detail::is_cuda<D>)
    cuda::sum<T>(ctx, x.value().data(), x.numel(), out.data(), factor, false);  // in double, fixed order
  else
    out[0] = static_cast<T>(factor * ops_detail::sum_all(ctx, x.value()));
  return autograd::make_result("sum", ctx, std::move(out),
      [x, factor](const Tensor<T, 0, D>& g) mutable {
        if (!x.requires_grad()) return;
        auto& gx = x.grad_buffer();
        const index_t n = gx.numel();
        if constexpr (ops_detail::is_cuda<D>) {
          cuda::add_scalar<T>(x.ctx(), gx.data(), g.data(), factor, n);  // g stays on the device
        } else {
          const T v = g[0] * factor;
          T* p = gx.data();
          for (index_t i = 0; i < n; ++i) p[i] += v;
        }
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
