// distill/ops/linear.hpp -- linear (fully connected), matmul and matmul_nt: forward and backward as GEMMs.
//
// Every product goes through backend::gemm: cpu::gemm (Eigen inside our OpenMP panels) or, on the Cuda device,
// cuBLAS with the row-major mapping of kernels/gemm.cuh. Backward GEMMs accumulate straight into the gradient buffers (beta = 1),
// so no temporary is allocated for dA / dB / dW.
#pragma once

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"
#include "distill/ops/optional_inputs.hpp"

namespace distill {

namespace ops_detail {
/// Row-major C[M, N] = alpha op(A) op(B) + beta C on ctx's device (cpu::gemm or cuBLAS through cuda::gemm).
template <class T, class D>
void gemm(Context<D>& ctx, bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          const T* B, T beta, T* C) {
  backend::gemm(ctx, trans_a ? Trans::T : Trans::N, trans_b ? Trans::T : Trans::N, M, N, K, alpha, A, B, beta, C,
                index_t(0), index_t(0), index_t(0));
}
}  // namespace ops_detail

/// y = x w^T + b for x [B, In], w [Out, In] (PyTorch's layout), b [Out] or an undefined Var (no bias).
/// PyTorch: F.linear(x, w, b).
template <class T, class D>
Var<T, 2, D> linear(const Var<T, 2, D>& x, const Var<T, 2, D>& w, const Var<T, 1, D>& b = {}) {
  const index_t B = x.extent(0), In = x.extent(1), Out = w.extent(0);
  DISTILL_CHECK(w.extent(1) == In, "linear: the input ", to_string(x.shape()), " has ", In,
                " features but the weight ", to_string(w.shape()), " expects ", w.extent(1),
                " (weight layout is [out, in])");
  if (b.defined())
    DISTILL_CHECK(b.shape() == Shape<1>{Out}, "linear: the bias has shape ", to_string(b.shape()),
                  " but the weight ", to_string(w.shape()), " has ", Out, " outputs");
  auto& ctx = x.ctx();
  Tensor<T, 2, D> out = ops_detail::empty<T, 2>(ctx, Shape<2>{B, Out});
  ops_detail::gemm<T>(ctx, false, true, B, Out, In, T(1), x.value().data(), w.value().data(), T(0), out.data());
  if (b.defined()) backend::add_bias(ctx, out.data(), b.value().data(), B, Out, index_t(1));
  auto backward = [x, w, b, B, In, Out](const Tensor<T, 2, D>& g) mutable {
    auto& c = x.ctx();
    if (x.requires_grad())  // dx [B, In] += g [B, Out] * w [Out, In]
      ops_detail::gemm<T>(c, false, false, B, In, Out, T(1), g.data(), w.value().data(), T(1), x.grad_buffer().data());
    if (w.requires_grad())  // dw [Out, In] += g^T [Out, B] * x [B, In]
      ops_detail::gemm<T>(c, true, false, Out, In, B, T(1), g.data(), x.value().data(), T(1), w.grad_buffer().data());
    if (b.defined() && b.requires_grad())  // db [Out] += column sums of g (in double, rows in order)
      backend::sum_axis0(c, g.data(), B, Out, b.grad_buffer().data(), T(1), true);
  };
  return ops_detail::with_defined(b, [&](const auto&... bias) {
    return autograd::make_result("linear", ctx, std::move(out), std::move(backward), x, w, bias...);
  });
}

/// a [M, K] * b [K, N] -> [M, N]. PyTorch: a @ b.
template <class T, class D>
Var<T, 2, D> matmul(const Var<T, 2, D>& a, const Var<T, 2, D>& b) {
  const index_t M = a.extent(0), K = a.extent(1), N = b.extent(1);
  DISTILL_CHECK(b.extent(0) == K, "matmul: inner dimensions differ: ", to_string(a.shape()), " * ",
                to_string(b.shape()));
  auto& ctx = a.ctx();
  Tensor<T, 2, D> out = ops_detail::empty<T, 2>(ctx, Shape<2>{M, N});
  ops_detail::gemm<T>(ctx, false, false, M, N, K, T(1), a.value().data(), b.value().data(), T(0), out.data());
  return autograd::make_result("matmul", ctx, std::move(out),
      [a, b, M, K, N](const Tensor<T, 2, D>& g) mutable {
        if (a.requires_grad())  // da [M, K] += g [M, N] * b^T
          ops_detail::gemm<T>(a.ctx(), false, true, M, K, N, T(1), g.data(), b.value().data(), T(1),
                              a.grad_buffer().data());
        if (b.requires_grad())  // db [K, N] += a^T * g
          ops_detail::gemm<T>(a.ctx(), true, false, K, N, M, T(1), a.value().data(), g.data(), T(1),
                              b.grad_buffer().data());
      },
      a, b);
}

/// a [M, K] * b[N, K]^T -> [M, N]: the similarity matrix of two sets of row vectors. PyTorch: a @ b.T.
/// a and b may be the same Var (z z^T); both gradients then accumulate into it.
template <class T, class D>
Var<T, 2, D> matmul_nt(const Var<T, 2, D>& a, const Var<T, 2, D>& b) {
  const index_t M = a.extent(0), K = a.extent(1), N = b.extent(0);
  DISTILL_CHECK(b.extent(1) == K, "matmul_nt: row lengths differ: ", to_string(a.shape()), " * ",
                to_string(b.shape()), "^T");
  auto& ctx = a.ctx();
  Tensor<T, 2, D> out = ops_detail::empty<T, 2>(ctx, Shape<2>{M, N});
  ops_detail::gemm<T>(ctx, false, true, M, N, K, T(1), a.value().data(), b.value().data(), T(0), out.data());
  return autograd::make_result("matmul_nt", ctx, std::move(out),
      [a, b, M, K, N](const Tensor<T, 2, D>& g) mutable {
        if (a.requires_grad())  // da [M, K] += g [M, N] * b [N, K]
          ops_detail::gemm<T>(a.ctx(), false, false, M, K, N, T(1), g.data(), b.value().data(), T(1),
                              a.grad_buffer().data());
        if (b.requires_grad())  // db [N, K] += g^T [N, M] * a [M, K]
          ops_detail::gemm<T>(a.ctx(), true, false, N, K, M, T(1), g.data(), a.value().data(), T(1),
                              b.grad_buffer().data());
      },
      a, b);
}

}  // namespace distill
