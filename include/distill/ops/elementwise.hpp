// distill/ops/elementwise.hpp -- add, sub, mul, scale, relu: forward and backward side by side, Cpu and Cuda.
#pragma once

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

/// a + b (same shape; the residual add of a ResNet block).
template <class T, std::size_t R, class D>
Var<T, R, D> add(const Var<T, R, D>& a, const Var<T, R, D>& b) {
  check_same_shape(a.shape(), b.shape(), "add");
  auto& ctx = a.ctx();
  Tensor<T, R, D> out;
  if constexpr (ops_detail::is_cuda<D>) {
    out = ops_detail::empty<T, R>(ctx, a.shape());
    cuda::add<T>(ctx, out.data(), a.value().data(), b.value().data(), out.numel());
  } else {
    out = ops_detail::map2(ctx, a.value(), b.value(), [](T x, T y) { return x + y; });
  }
  return autograd::make_result("add", ctx, std::move(out),
      [a, b](const Tensor<T, R, D>& g) mutable {
        if (a.requires_grad()) DeviceOps<D>::accumulate(a.ctx(), a.grad_buffer(), g);
        if (b.requires_grad()) DeviceOps<D>::accumulate(b.ctx(), b.grad_buffer(), g);
      },
      a, b);
}

/// a - b (same shape).
template <class T, std::size_t R, class D>
Var<T, R, D> sub(const Var<T, R, D>& a, const Var<T, R, D>& b) {
  check_same_shape(a.shape(), b.shape(), "sub");
  auto& ctx = a.ctx();
  Tensor<T, R, D> out;
  if constexpr (ops_detail::is_cuda<D>) {
    out = ops_detail::empty<T, R>(ctx, a.shape());
    cuda::sub<T>(ctx, out.data(), a.value().data(), b.value().data(), out.numel());
  } else {
    out = ops_detail::map2(ctx, a.value(), b.value(), [](T x, T y) { return x - y; });
  }
  return autograd::make_result("sub", ctx, std::move(out),
      [a, b](const Tensor<T, R, D>& g) mutable {
        if (a.requires_grad()) DeviceOps<D>::accumulate(a.ctx(), a.grad_buffer(), g);
        if (b.requires_grad()) ops_detail::axpy(b.ctx(), b.grad_buffer(), g, T(-1));
      },
      a, b);
}

/// a * b elementwise (same shape).
template <class T, std::size_t R, class D>
Var<T, R, D> mul(const Var<T, R, D>& a, const Var<T, R, D>& b) {
  check_same_shape(a.shape(), b.shape(), "mul");
  auto& ctx = a.ctx();
  Tensor<T, R, D> out;
  if constexpr (ops_detail::is_cuda<D>) {
    out = ops_detail::empty<T, R>(ctx, a.shape());
    cuda::mul<T>(ctx, out.data(), a.value().data(), b.value().data(), out.numel());
  } else {
    out = ops_detail::map2(ctx, a.value(), b.value(), [](T x, T y) { return x * y; });
  }
  return autograd::make_result("mul", ctx, std::move(out),
      [a, b](const Tensor<T, R, D>& g) mutable {
        if (a.requires_grad()) ops_detail::accumulate_product(a.ctx(), a.grad_buffer(), g, b.value());
        if (b.requires_grad()) ops_detail::accumulate_product(b.ctx(), b.grad_buffer(), g, a.value());
      },
      a, b);
}

/// s * a for a scalar s.
template <class T, std::size_t R, class D>
Var<T, R, D> scale(const Var<T, R, D>& a, T s) {
  auto& ctx = a.ctx();
  Tensor<T, R, D> out;
  if constexpr (ops_detail::is_cuda<D>) {
    out = ops_detail::empty<T, R>(ctx, a.shape());
    cuda::scale<T>(ctx, out.data(), a.value().data(), s, out.numel());
  } else {
    out = ops_detail::map1(ctx, a.value(), [s](T x) { return s * x; });
  }
  return autograd::make_result("scale", ctx, std::move(out),
      [a, s](const Tensor<T, R, D>& g) mutable {
        if (a.requires_grad()) ops_detail::axpy(a.ctx(), a.grad_buffer(), g, s);
      },
      a);
}

/// max(x, 0). The gradient at exactly 0 is 0 (PyTorch's convention).
template <class T, std::size_t R, class D>
Var<T, R, D> relu(const Var<T, R, D>& x) {
  auto& ctx = x.ctx();
  Tensor<T, R, D> out;
  if constexpr (ops_detail::is_cuda<D>) {
    out = ops_detail::empty<T, R>(ctx, x.shape());
    cuda::relu_forward<T>(ctx, out.data(), x.value().data(), out.numel());
  } else {
    out = ops_detail::map1(ctx, x.value(), [](T v) { return v > T(0) ? v : T(0); });
  }
  Tensor<T, R, D> y = out;  // saved: relu's backward needs only the output
  return autograd::make_result("relu", ctx, std::move(out),
      [x, y](const Tensor<T, R, D>& g) mutable {
        if (!x.requires_grad()) return;
        auto& gx = x.grad_buffer();
        const index_t n = g.numel();
        if constexpr (ops_detail::is_cuda<D>) {
          cuda::relu_backward<T>(x.ctx(), gx.data(), y.data(), g.data(), n, true);
        } else {
          T* __restrict gp = gx.data();
          const T* __restrict gy = g.data();
          const T* __restrict yp = y.data();
#pragma omp parallel for num_threads(ops_detail::threads_for(x.ctx(), n)) schedule(static)
          for (index_t i = 0; i < n; ++i) gp[i] += yp[i] > T(0) ? gy[i] : T(0);
        }
      },
      x);
}

template <class T, std::size_t R, class D>
Var<T, R, D> operator+(const Var<T, R, D>& a, const Var<T, R, D>& b) { return add(a, b); }
template <class T, std::size_t R, class D>
Var<T, R, D> operator-(const Var<T, R, D>& a, const Var<T, R, D>& b) { return sub(a, b); }
template <class T, std::size_t R, class D>
Var<T, R, D> operator*(const Var<T, R, D>& a, const Var<T, R, D>& b) { return mul(a, b); }
template <class T, std::size_t R, class D>
Var<T, R, D> operator*(T s, const Var<T, R, D>& a) { return scale(a, s); }

}  // namespace distill
