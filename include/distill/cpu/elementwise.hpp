// distill/cpu/elementwise.hpp -- the CPU elementwise entry points (fill, scale, axpy, add, sub, mul, div,
// accumulate_product, relu forward / backward, bias and scalar adds): Context<Cpu>& first, the names and parameters of
// the Cuda ones (kernels/elementwise.cuh through cuda/entry_points.inc). The autograd ops are in ops/elementwise.hpp.
#pragma once

#include "distill/core/context.hpp"
#include "distill/core/shape.hpp"
#include "distill/cpu/exec.hpp"

namespace distill::cpu {

// One elementwise pass `body` over i in [0, n) with the threads worth using (cpu::threads_for(ctx, n): the entry
// point's `ctx` and `n`). The loop is written out in each entry point (no lambda), so the compiler vectorises it
// inside the OpenMP region as it did the ops' own loops.
#define DISTILL_CPU_ELEMENTWISE(body)                                            \
  _Pragma("omp parallel for num_threads(threads_for(ctx, n)) schedule(static)") \
  for (index_t i = 0; i < n; ++i) body

// ---- elementwise and activations -------------------------------------------------------------------------------
template <class T>
void fill(Context<Cpu>& ctx, T* y, T value, index_t n) {
  T* __restrict yp = y;
  DISTILL_CPU_ELEMENTWISE(yp[i] = value;)
}
/// y = alpha x (y may be x).
template <class T>
void scale(Context<Cpu>& ctx, T* y, const T* x, T alpha, index_t n) {
  DISTILL_CPU_ELEMENTWISE(y[i] = alpha * x[i];)
}
/// y += alpha x.
template <class T>
void axpy(Context<Cpu>& ctx, T* __restrict y, const T* __restrict x, T alpha, index_t n) {
  DISTILL_CPU_ELEMENTWISE(y[i] += alpha * x[i];)
}
template <class T>
void add(Context<Cpu>& ctx, T* y, const T* a, const T* b, index_t n) {
  DISTILL_CPU_ELEMENTWISE(y[i] = a[i] + b[i];)
}
template <class T>
void sub(Context<Cpu>& ctx, T* y, const T* a, const T* b, index_t n) {
  DISTILL_CPU_ELEMENTWISE(y[i] = a[i] - b[i];)
}
template <class T>
void mul(Context<Cpu>& ctx, T* y, const T* a, const T* b, index_t n) {
  DISTILL_CPU_ELEMENTWISE(y[i] = a[i] * b[i];)
}
/// y = a / b (y may be a or b).
template <class T>
void div(Context<Cpu>& ctx, T* y, const T* a, const T* b, index_t n) {
  DISTILL_CPU_ELEMENTWISE(y[i] = a[i] / b[i];)
}
/// y += a * b.
template <class T>
void accumulate_product(Context<Cpu>& ctx, T* __restrict y, const T* a, const T* b, index_t n) {
  DISTILL_CPU_ELEMENTWISE(y[i] += a[i] * b[i];)
}
/// y = max(x, 0) (y may be x).
template <class T>
void relu_forward(Context<Cpu>& ctx, T* y, const T* x, index_t n) {
  DISTILL_CPU_ELEMENTWISE(y[i] = x[i] > T(0) ? x[i] : T(0);)
}
/// dx (+)= (y > 0) * dy, from the forward output y.
template <class T>
void relu_backward(Context<Cpu>& ctx, T* __restrict dx, const T* y, const T* dy, index_t n, bool accumulate) {
  if (accumulate) {
    DISTILL_CPU_ELEMENTWISE(dx[i] += y[i] > T(0) ? dy[i] : T(0);)
  } else {
    DISTILL_CPU_ELEMENTWISE(dx[i] = y[i] > T(0) ? dy[i] : T(0);)
  }
}
/// y[o, c, i] += bias[c] for y of shape [outer, channels, inner].
template <class T>
void add_bias(Context<Cpu>& ctx, T* y, const T* bias, index_t outer, index_t channels, index_t inner) {
  if (inner == 1) {  // [rows, channels]: a Linear's output
#pragma omp parallel for num_threads(threads_for(ctx, outer * channels)) schedule(static)
    for (index_t o = 0; o < outer; ++o) {
      T* row = y + o * channels;
#pragma omp simd
      for (index_t c = 0; c < channels; ++c) row[c] += bias[c];
    }
    return;
  }
#pragma omp parallel for num_threads(threads_for(ctx, outer * channels * inner)) schedule(static)
  for (index_t o = 0; o < outer; ++o) {
    T* row = y + o * channels * inner;
    for (index_t c = 0; c < channels; ++c) {
      const T b = bias[c];
#pragma omp simd
      for (index_t i = 0; i < inner; ++i) row[c * inner + i] += b;
    }
  }
}
/// y[i] += alpha * scalar[0] (the backward of a sum to a rank-0 tensor).
template <class T>
void add_scalar(Context<Cpu>&, T* y, const T* scalar, T alpha, index_t n) {
  const T v = scalar[0] * alpha;
  for (index_t i = 0; i < n; ++i) y[i] += v;
}

}  // namespace distill::cpu

#undef DISTILL_CPU_ELEMENTWISE
