// distill/ops/shape_ops.hpp -- concat0, split0, slice0 along the batch axis: forward and backward, Cpu and Cuda.
//
// Used to stack two augmented views [A; B] through one encoder and split the result again. split0 / slice0
// return views sharing the input's storage (no copy); concat0 copies. Gradients are added into the matching
// rows of the input's gradient.
#pragma once

#include <utility>

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

namespace ops_detail {
/// Elements per row along axis 0.
template <std::size_t R>
index_t row_elems(const Shape<R>& s) {
  index_t n = 1;
  for (std::size_t i = 1; i < R; ++i) n *= s[i];
  return n;
}
/// dst[0, n) += src[0, n) on ctx's device.
template <class T, class D>
void add_into(Context<D>& ctx, T* dst, const T* src, index_t n) {
  backend::axpy(ctx, dst, src, T(1), n);
}
}  // namespace ops_detail

/// [a; b]: concatenation along axis 0 (PyTorch: torch.cat([a, b], dim=0)). The other extents must match.
template <class T, std::size_t R, class D>
Var<T, R, D> concat0(const Var<T, R, D>& a, const Var<T, R, D>& b) {
  static_assert(R >= 1, "concat0: rank-0 Vars have no axis 0 to concatenate along.");
  const auto& sa = a.shape();
  const auto& sb = b.shape();
  for (std::size_t i = 1; i < R; ++i)
    DISTILL_CHECK(sa[i] == sb[i], "concat0: shapes ", to_string(sa), " and ", to_string(sb), " differ in axis ", i,
                  " (only axis 0 may differ)");
  auto& ctx = a.ctx();
  Shape<R> so = sa;
  so[0] = sa[0] + sb[0];
  Tensor<T, R, D> out = ops_detail::empty<T, R>(ctx, so);
  const index_t na = a.numel(), nb = b.numel();
  const std::size_t bytes_a = sizeof(T) * static_cast<std::size_t>(na);
  const std::size_t bytes_b = sizeof(T) * static_cast<std::size_t>(nb);
  DeviceOps<D>::copy_bytes(&ctx, out.data(), a.value().data(), bytes_a);
  DeviceOps<D>::copy_bytes(&ctx, out.data() + na, b.value().data(), bytes_b);
  return autograd::make_result("concat0", ctx, std::move(out),
      [a, b, na, nb](const Tensor<T, R, D>& g) mutable {
        if (a.requires_grad()) ops_detail::add_into(a.ctx(), a.grad_buffer().data(), g.data(), na);
        if (b.requires_grad()) ops_detail::add_into(b.ctx(), b.grad_buffer().data(), g.data() + na, nb);
      },
      a, b);
}

/// Rows [begin, begin + count) of x along axis 0 (PyTorch: x[begin:begin+count]). The value is a view of x.
template <class T, std::size_t R, class D>
Var<T, R, D> slice0(const Var<T, R, D>& x, index_t begin, index_t count) {
  static_assert(R >= 1, "slice0: rank-0 Vars have no axis 0 to slice.");
  DISTILL_CHECK(begin >= 0 && count >= 0 && begin + count <= x.extent(0), "slice0: rows [", begin, ", ",
                begin + count, ") are out of range for a Var of shape ", to_string(x.shape()));
  auto& ctx = x.ctx();
  Tensor<T, R, D> out = x.value().slice0(begin, count);
  const index_t off = begin * ops_detail::row_elems(x.shape()), n = out.numel();
  return autograd::make_result("slice0", ctx, std::move(out),
      [x, off, n](const Tensor<T, R, D>& g) mutable {
        if (!x.requires_grad()) return;
        ops_detail::add_into(x.ctx(), x.grad_buffer().data() + off, g.data(), n);
      },
      x);
}

/// Splits x along axis 0 into rows [0, n0) and [n0, end) (PyTorch: torch.split(x, [n0, B - n0])).
template <class T, std::size_t R, class D>
std::pair<Var<T, R, D>, Var<T, R, D>> split0(const Var<T, R, D>& x, index_t n0) {
  DISTILL_CHECK(n0 >= 0 && n0 <= x.extent(0), "split0: cannot split a Var of shape ", to_string(x.shape()),
                " after row ", n0);
  return {slice0(x, 0, n0), slice0(x, n0, x.extent(0) - n0)};
}

}  // namespace distill
