// distill/ops/detail.hpp -- small helpers shared by op implementations (not public API).
//
// Device dispatch: an op is written once per device inside `if constexpr (is_cuda<D>) { ... } else { ... }`: the Cuda
// branch calls distill::cuda (cuda/api.hpp, defined in kernels/distill_cuda.cu), the Cpu branch the cpu/ kernels.
// A discarded Cuda branch references nothing, so TUs that only use Cpu never need the CUDA library.
#pragma once

#include <algorithm>
#include <type_traits>

#include "distill/core/context.hpp"
#include "distill/backend/device_ops.hpp"
#include "distill/core/tensor.hpp"

namespace distill::ops_detail {

/// True for the Cuda device (the dispatch condition of every op).
template <class D>
inline constexpr bool is_cuda = std::is_same_v<D, Cuda>;

/// An uninitialised tensor on ctx's device.
template <class T, std::size_t R, class D>
Tensor<T, R, D> empty(Context<D>& ctx, const Shape<R>& s) {
  return ctx.template empty<T, R>(s);
}

/// Threads worth using for a loop of n cheap elements: 1 below ~32k elements (thread start-up dominates).
inline int threads_for(const ContextBase& ctx, index_t n, index_t grain = 32768) {
  return static_cast<int>(std::clamp<index_t>(n / grain, 1, ctx.threads()));
}

template <class T, std::size_t R, class F>
Tensor<T, R, Cpu> map1(Context<Cpu>& ctx, const Tensor<T, R, Cpu>& a, F f) {
  Tensor<T, R, Cpu> out = ctx.template empty<T, R>(a.shape());
  const index_t n = a.numel();
  const T* __restrict ap = a.data();
  T* __restrict op = out.data();
#pragma omp parallel for num_threads(threads_for(ctx, n)) schedule(static)
  for (index_t i = 0; i < n; ++i) op[i] = f(ap[i]);
  return out;
}

template <class T, std::size_t R, class F>
Tensor<T, R, Cpu> map2(Context<Cpu>& ctx, const Tensor<T, R, Cpu>& a, const Tensor<T, R, Cpu>& b, F f) {
  Tensor<T, R, Cpu> out = ctx.template empty<T, R>(a.shape());
  const index_t n = a.numel();
  const T* __restrict ap = a.data();
  const T* __restrict bp = b.data();
  T* __restrict op = out.data();
#pragma omp parallel for num_threads(threads_for(ctx, n)) schedule(static)
  for (index_t i = 0; i < n; ++i) op[i] = f(ap[i], bp[i]);
  return out;
}

/// y += s * x
template <class T, std::size_t R>
void axpy(Context<Cpu>& ctx, Tensor<T, R, Cpu>& y, const Tensor<T, R, Cpu>& x, T s) {
  check_same_shape(y.shape(), x.shape(), "axpy");
  const index_t n = y.numel();
  T* __restrict yp = y.data();
  const T* __restrict xp = x.data();
#pragma omp parallel for num_threads(threads_for(ctx, n)) schedule(static)
  for (index_t i = 0; i < n; ++i) yp[i] += s * xp[i];
}

/// y += g * x (elementwise)
template <class T, std::size_t R>
void accumulate_product(Context<Cpu>& ctx, Tensor<T, R, Cpu>& y, const Tensor<T, R, Cpu>& g,
                        const Tensor<T, R, Cpu>& x) {
  const index_t n = y.numel();
  T* __restrict yp = y.data();
  const T* __restrict gp = g.data();
  const T* __restrict xp = x.data();
#pragma omp parallel for num_threads(threads_for(ctx, n)) schedule(static)
  for (index_t i = 0; i < n; ++i) yp[i] += gp[i] * xp[i];
}

/// y += s * x (device).
template <class T, std::size_t R>
void axpy(Context<Cuda>& ctx, Tensor<T, R, Cuda>& y, const Tensor<T, R, Cuda>& x, T s) {
  check_same_shape(y.shape(), x.shape(), "axpy");
  cuda::axpy<T>(ctx, y.data(), x.data(), s, y.numel());
}

/// y += g * x elementwise (device).
template <class T, std::size_t R>
void accumulate_product(Context<Cuda>& ctx, Tensor<T, R, Cuda>& y, const Tensor<T, R, Cuda>& g,
                        const Tensor<T, R, Cuda>& x) {
  cuda::accumulate_product<T>(ctx, y.data(), g.data(), x.data(), y.numel());
}

}  // namespace distill::ops_detail
