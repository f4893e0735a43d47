// kernels/elementwise.cuh -- fill, scale, axpy, add/sub/mul/div, relu forward/backward, bias add, scalar broadcast.
//
// Gradient convention (llm.c's, stated once for every kernel family): backward kernels take `accumulate`;
// with it they add into the gradient buffer (autograd's +=), without it they write and never read it.
// All kernels here are grid-stride loops over 64-bit indices with 256-thread blocks.
#pragma once

#include "launch.cuh"

namespace distill::kernels {

inline constexpr int kElementwiseThreads = 256;
/// Grid for an n-element grid-stride loop: enough blocks to fill a GPU, no more than the work needs.
inline dim3 elementwise_grid(index_t n) {
  const index_t blocks = ceil_div(n, kElementwiseThreads);
  return dim3(static_cast<unsigned int>(min_of<index_t>(max_of<index_t>(blocks, 1), 4096)));
}
__device__ __forceinline__ index_t global_thread() {
  return static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ index_t grid_threads() { return static_cast<index_t>(gridDim.x) * blockDim.x; }

enum class BinaryOp { Add, Sub, Mul, Div, AccumulateProduct };
enum class UnaryOp { Scale, Axpy, Relu };

template <class T>
__global__ void fill_kernel(T* __restrict__ y, T value, index_t n) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) y[i] = value;
}

template <class T, UnaryOp OP>
__global__ void unary_kernel(T* y, const T* x, T alpha, index_t n) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const T v = x[i];
    if constexpr (OP == UnaryOp::Scale) y[i] = alpha * v;
    else if constexpr (OP == UnaryOp::Axpy) y[i] += alpha * v;
    else y[i] = v > T(0) ? v : T(0);
  }
}

template <class T, BinaryOp OP>
__global__ void binary_kernel(T* y, const T* a, const T* b, index_t n) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    if constexpr (OP == BinaryOp::Add) y[i] = a[i] + b[i];
    else if constexpr (OP == BinaryOp::Sub) y[i] = a[i] - b[i];
    else if constexpr (OP == BinaryOp::Mul) y[i] = a[i] * b[i];
    else if constexpr (OP == BinaryOp::Div) y[i] = a[i] / b[i];
    else y[i] += a[i] * b[i];
  }
}

template <class T, bool ACCUMULATE>
__global__ void relu_backward_kernel(T* __restrict__ dx, const T* __restrict__ y, const T* __restrict__ dy, index_t n) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const T g = y[i] > T(0) ? dy[i] : T(0);
    if constexpr (ACCUMULATE) dx[i] += g;
    else dx[i] = g;
  }
}

template <class T>
__global__ void add_bias_kernel(T* __restrict__ y, const T* __restrict__ bias, index_t channels, index_t inner,
                                index_t n) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) y[i] += bias[(i / inner) % channels];
}

/// y[i] += alpha * s[0]: a device scalar broadcast (the backward of a sum to a rank-0 tensor).
template <class T>
__global__ void add_scalar_kernel(T* __restrict__ y, const T* __restrict__ s, T alpha, index_t n) {
  const T v = alpha * s[0];
  for (index_t i = global_thread(); i < n; i += grid_threads()) y[i] += v;
}

// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------
template <class T>
void fill(cudaStream_t s, T* y, T value, index_t n) {
  DISTILL_CHECK(n >= 0, "fill: negative element count ", n);
  if (n == 0) return;
  launch("fill_kernel", fill_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, y, value, n);
}

template <class T, UnaryOp OP>
void unary(cudaStream_t s, const char* name, T* y, const T* x, T alpha, index_t n) {
  DISTILL_CHECK(n >= 0, name, ": negative element count ", n);
  if (n == 0) return;
  launch(name, unary_kernel<T, OP>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, y, x, alpha, n);
}

template <class T, BinaryOp OP>
void binary(cudaStream_t s, const char* name, T* y, const T* a, const T* b, index_t n) {
  DISTILL_CHECK(n >= 0, name, ": negative element count ", n);
  if (n == 0) return;
  launch(name, binary_kernel<T, OP>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, y, a, b, n);
}

template <class T>
void relu_backward(cudaStream_t s, T* dx, const T* y, const T* dy, index_t n, bool accumulate) {
  DISTILL_CHECK(n >= 0, "relu_backward: negative element count ", n);
  if (n == 0) return;
  const LaunchConfig cfg{elementwise_grid(n), dim3(kElementwiseThreads), 0, s};
  if (accumulate) launch("relu_backward_kernel<accumulate>", relu_backward_kernel<T, true>, cfg, dx, y, dy, n);
  else launch("relu_backward_kernel", relu_backward_kernel<T, false>, cfg, dx, y, dy, n);
}

template <class T>
void add_bias(cudaStream_t s, T* y, const T* bias, index_t outer, index_t channels, index_t inner) {
  DISTILL_CHECK(outer >= 0 && channels >= 0 && inner >= 0, "add_bias: negative extent in [", outer, ", ", channels,
                ", ", inner, "]");
  const index_t n = outer * channels * inner;
  if (n == 0) return;
  launch("add_bias_kernel", add_bias_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, y, bias,
         channels, inner, n);
}

template <class T>
void add_scalar(cudaStream_t s, T* y, const T* scalar, T alpha, index_t n) {
  DISTILL_CHECK(n >= 0, "add_scalar: negative element count ", n);
  if (n == 0) return;
  launch("add_scalar_kernel", add_scalar_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, y, scalar,
         alpha, n);
}

// The entry points of cuda/entry_points.inc that are one elementwise launch.
template <class T>
void scale(cudaStream_t s, T* y, const T* x, T alpha, index_t n) {
  unary<T, UnaryOp::Scale>(s, "scale_kernel", y, x, alpha, n);
}
template <class T>
void axpy(cudaStream_t s, T* y, const T* x, T alpha, index_t n) {
  unary<T, UnaryOp::Axpy>(s, "axpy_kernel", y, x, alpha, n);
}
template <class T>
void relu_forward(cudaStream_t s, T* y, const T* x, index_t n) {
  unary<T, UnaryOp::Relu>(s, "relu_forward_kernel", y, x, T(0), n);
}
template <class T>
void add(cudaStream_t s, T* y, const T* a, const T* b, index_t n) {
  binary<T, BinaryOp::Add>(s, "add_kernel", y, a, b, n);
}
template <class T>
void sub(cudaStream_t s, T* y, const T* a, const T* b, index_t n) {
  binary<T, BinaryOp::Sub>(s, "sub_kernel", y, a, b, n);
}
template <class T>
void mul(cudaStream_t s, T* y, const T* a, const T* b, index_t n) {
  binary<T, BinaryOp::Mul>(s, "mul_kernel", y, a, b, n);
}
template <class T>
void div(cudaStream_t s, T* y, const T* a, const T* b, index_t n) {
  binary<T, BinaryOp::Div>(s, "div_kernel", y, a, b, n);
}
template <class T>
void accumulate_product(cudaStream_t s, T* y, const T* a, const T* b, index_t n) {
  binary<T, BinaryOp::AccumulateProduct>(s, "accumulate_product_kernel", y, a, b, n);
}

}  // namespace distill::kernels
