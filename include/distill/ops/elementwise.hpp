// distill/ops/elementwise.hpp -- add, sub, mul, div, scale, affine, relu: forward and backward side by side, for
// every device (the kernels: backend:: -> cpu/backend.hpp, cuda/api.hpp); and the arithmetic operators.
//
// Operators: Var (+ - * /) Var of one type and shape; -Var; and any arithmetic scalar (double, float, int, ...) on
// either side of + - * / with a Var<float> or Var<double>: `0.5 * loss`, `loss / 2`, `1 - v`, `lambda * loss`. The
// scalar is converted to the Var's element type first (a double lambda becomes a float for a Var<float>).
//   v * s, s * v -> scale(v, s)           v + s, s + v -> affine(v, 1, s)      s - v -> affine(v, -1, s)
//   v / s        -> scale(v, 1 / s)       v - s        -> affine(v, 1, -s)     s / v -> div(s filled like v, v)
// (v / s multiplies by the reciprocal, rounded to T: within one rounding of the true quotient, exact for powers
// of two.)
#pragma once

#include <concepts>
#include <type_traits>

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

namespace ops_detail {
enum class Binary { Add, Sub, Mul, Div };

/// The forward of an elementwise binary op of two same-shape Vars: the shape check naming the op, then the
/// backend's kernel.
template <Binary OP, class T, std::size_t R, class D>
Tensor<T, R, D> binary_forward(const char* op, const Var<T, R, D>& a, const Var<T, R, D>& b) {
  check_same_shape(a.shape(), b.shape(), op);
  auto& ctx = a.ctx();
  Tensor<T, R, D> out = empty<T, R>(ctx, a.shape());
  T* y = out.data();
  const T* x = a.value().data();
  const T* z = b.value().data();
  const index_t n = out.numel();
  if constexpr (OP == Binary::Add) backend::add(ctx, y, x, z, n);
  else if constexpr (OP == Binary::Sub) backend::sub(ctx, y, x, z, n);
  else if constexpr (OP == Binary::Mul) backend::mul(ctx, y, x, z, n);
  else backend::div(ctx, y, x, z, n);
  return out;
}

/// y += s * x for same-shape tensors of ctx's device.
template <class T, std::size_t R, class D>
void axpy(Context<D>& ctx, Tensor<T, R, D>& y, const Tensor<T, R, D>& x, T s) {
  check_same_shape(y.shape(), x.shape(), "axpy");
  backend::axpy(ctx, y.data(), x.data(), s, y.numel());
}
}  // namespace ops_detail

/// a + b (same shape; the residual add of a ResNet block).
template <class T, std::size_t R, class D>
Var<T, R, D> add(const Var<T, R, D>& a, const Var<T, R, D>& b) {
  auto& ctx = a.ctx();
  Tensor<T, R, D> out = ops_detail::binary_forward<ops_detail::Binary::Add>("add", a, b);
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
  auto& ctx = a.ctx();
  Tensor<T, R, D> out = ops_detail::binary_forward<ops_detail::Binary::Sub>("sub", a, b);
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
  auto& ctx = a.ctx();
  Tensor<T, R, D> out = ops_detail::binary_forward<ops_detail::Binary::Mul>("mul", a, b);
  return autograd::make_result("mul", ctx, std::move(out),
      [a, b](const Tensor<T, R, D>& g) mutable {
        const index_t n = g.numel();
        if (a.requires_grad()) backend::accumulate_product(a.ctx(), a.grad_buffer().data(), g.data(), b.value().data(), n);
        if (b.requires_grad()) backend::accumulate_product(b.ctx(), b.grad_buffer().data(), g.data(), a.value().data(), n);
      },
      a, b);
}

/// a / b elementwise (same shape). Gradients: da = g / b, db = -g a / b^2 = -g y / b (y the output).
template <class T, std::size_t R, class D>
Var<T, R, D> div(const Var<T, R, D>& a, const Var<T, R, D>& b) {
  auto& ctx = a.ctx();
  Tensor<T, R, D> out = ops_detail::binary_forward<ops_detail::Binary::Div>("div", a, b);
  Tensor<T, R, D> y = out;  // saved: db needs the quotient
  return autograd::make_result("div", ctx, std::move(out),
      [a, b, y](const Tensor<T, R, D>& g) mutable {
        const index_t n = g.numel();
        auto& c = b.ctx();
        Tensor<T, R, D> q = ops_detail::empty<T, R>(c, g.shape());
        backend::div(c, q.data(), g.data(), b.value().data(), n);  // q = g / b
        if (a.requires_grad()) DeviceOps<D>::accumulate(a.ctx(), a.grad_buffer(), q);
        if (b.requires_grad()) {
          backend::mul(c, q.data(), q.data(), y.data(), n);  // q = g y / b
          ops_detail::axpy(c, b.grad_buffer(), q, T(-1));
        }
      },
      a, b);
}

/// s * a for a scalar s.
template <class T, std::size_t R, class D>
Var<T, R, D> scale(const Var<T, R, D>& a, T s) {
  auto& ctx = a.ctx();
  Tensor<T, R, D> out = ops_detail::empty<T, R>(ctx, a.shape());
  backend::scale(ctx, out.data(), a.value().data(), s, out.numel());
  return autograd::make_result("scale", ctx, std::move(out),
      [a, s](const Tensor<T, R, D>& g) mutable {
        if (a.requires_grad()) ops_detail::axpy(a.ctx(), a.grad_buffer(), g, s);
      },
      a);
}

/// alpha * a + beta for scalars alpha, beta (the scalar + and - of the operators). Gradient: da = alpha g.
template <class T, std::size_t R, class D>
Var<T, R, D> affine(const Var<T, R, D>& a, T alpha, T beta) {
  auto& ctx = a.ctx();
  Tensor<T, R, D> out = ops_detail::empty<T, R>(ctx, a.shape());
  backend::fill(ctx, out.data(), beta, out.numel());
  backend::axpy(ctx, out.data(), a.value().data(), alpha, out.numel());  // beta + alpha a
  return autograd::make_result("affine", ctx, std::move(out),
      [a, alpha](const Tensor<T, R, D>& g) mutable {
        if (a.requires_grad()) ops_detail::axpy(a.ctx(), a.grad_buffer(), g, alpha);
      },
      a);
}

/// max(x, 0). The gradient at exactly 0 is 0 (PyTorch's convention).
template <class T, std::size_t R, class D>
Var<T, R, D> relu(const Var<T, R, D>& x) {
  auto& ctx = x.ctx();
  Tensor<T, R, D> out = ops_detail::empty<T, R>(ctx, x.shape());
  backend::relu_forward(ctx, out.data(), x.value().data(), out.numel());
  Tensor<T, R, D> y = out;  // saved: relu's backward needs only the output
  return autograd::make_result("relu", ctx, std::move(out),
      [x, y](const Tensor<T, R, D>& g) mutable {
        if (!x.requires_grad()) return;
        backend::relu_backward(x.ctx(), x.grad_buffer().data(), y.data(), g.data(), g.numel(), true);
      },
      x);
}

/// An arithmetic scalar that combines with a Var in + - * / (bool excluded).
template <class S>
concept Scalar = std::is_arithmetic_v<S> && !std::same_as<S, bool>;

template <class T, std::size_t R, class D>
Var<T, R, D> operator+(const Var<T, R, D>& a, const Var<T, R, D>& b) { return add(a, b); }
template <class T, std::size_t R, class D>
Var<T, R, D> operator-(const Var<T, R, D>& a, const Var<T, R, D>& b) { return sub(a, b); }
template <class T, std::size_t R, class D>
Var<T, R, D> operator*(const Var<T, R, D>& a, const Var<T, R, D>& b) { return mul(a, b); }
template <class T, std::size_t R, class D>
Var<T, R, D> operator/(const Var<T, R, D>& a, const Var<T, R, D>& b) { return div(a, b); }
template <class T, std::size_t R, class D>
Var<T, R, D> operator-(const Var<T, R, D>& a) { return scale(a, T(-1)); }

template <class T, std::size_t R, class D, Scalar S>
Var<T, R, D> operator*(S s, const Var<T, R, D>& a) { return scale(a, static_cast<T>(s)); }
template <class T, std::size_t R, class D, Scalar S>
Var<T, R, D> operator*(const Var<T, R, D>& a, S s) { return scale(a, static_cast<T>(s)); }
template <class T, std::size_t R, class D, Scalar S>
Var<T, R, D> operator/(const Var<T, R, D>& a, S s) {
  return scale(a, static_cast<T>(1.0 / static_cast<double>(s)));
}
template <class T, std::size_t R, class D, Scalar S>
Var<T, R, D> operator/(S s, const Var<T, R, D>& a) {
  auto numerator = DeviceOps<D>::template zeros<T, R>(a.ctx(), a.shape());
  DeviceOps<D>::fill(a.ctx(), numerator, static_cast<T>(s));
  return div(Var<T, R, D>(a.ctx(), std::move(numerator)), a);
}
template <class T, std::size_t R, class D, Scalar S>
Var<T, R, D> operator+(const Var<T, R, D>& a, S s) { return affine(a, T(1), static_cast<T>(s)); }
template <class T, std::size_t R, class D, Scalar S>
Var<T, R, D> operator+(S s, const Var<T, R, D>& a) { return affine(a, T(1), static_cast<T>(s)); }
template <class T, std::size_t R, class D, Scalar S>
Var<T, R, D> operator-(const Var<T, R, D>& a, S s) { return affine(a, T(1), -static_cast<T>(s)); }
template <class T, std::size_t R, class D, Scalar S>
Var<T, R, D> operator-(S s, const Var<T, R, D>& a) { return affine(a, T(-1), static_cast<T>(s)); }

}  // namespace distill
