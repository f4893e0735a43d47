// distill/cuda/device_ops.hpp -- DeviceOps<Cuda> (what the autograd engine needs) and host <-> device copies.
//
// snippet: fragment; given: Context<Cuda> cuda_ctx; Tensor<float, 2, Cpu> host_tensor({4, 3});
//   auto d = distill::to_device(cuda_ctx, host_tensor);   // Tensor<T, R, Cuda>
//   auto h = distill::to_host(cuda_ctx, d);               // Tensor<T, R, Cpu>; waits for the stream
#pragma once

#include <cstddef>

#include "distill/core/device_ops.hpp"
#include "distill/core/tensor.hpp"
#include "distill/cuda/api.hpp"
#include "distill/cuda/context.hpp"

namespace distill {

/// Copies a host tensor into new device memory of `ctx`.
template <class T, std::size_t R>
Tensor<T, R, Cuda> to_device(Context<Cuda>& ctx, const Tensor<T, R, Cpu>& host) {
  auto d = ctx.empty<T, R>(host.shape());
  if (host.numel()) cuda::copy_to_device(ctx, d.data(), host.data(), sizeof(T) * static_cast<std::size_t>(host.numel()));
  return d;
}

/// Copies a device tensor to a new host tensor (waits for the context's stream first).
template <class T, std::size_t R>
Tensor<T, R, Cpu> to_host(Context<Cuda>& ctx, const Tensor<T, R, Cuda>& dev) {
  Tensor<T, R, Cpu> h(dev.shape());
  if (dev.numel()) cuda::copy_to_host(ctx, h.data(), dev.data(), sizeof(T) * static_cast<std::size_t>(dev.numel()));
  return h;
}

/// Copies host values into an existing device tensor of the same shape.
template <class T, std::size_t R>
void copy_to_device(Context<Cuda>& ctx, Tensor<T, R, Cuda>& dst, const Tensor<T, R, Cpu>& src) {
  check_same_shape(dst.shape(), src.shape(), "copy_to_device");
  if (src.numel()) cuda::copy_to_device(ctx, dst.data(), src.data(), sizeof(T) * static_cast<std::size_t>(src.numel()));
}

template <>
struct DeviceOps<Cuda> {
  /// Tensors of this device live in device memory: host code reaches them only through copies on a context.
  static constexpr bool host_memory = false;

  template <class T, std::size_t R>
  static Tensor<T, R, Cuda> from_host(Context<Cuda>& ctx, Tensor<T, R, Cpu> host) {
    return to_device(ctx, host);
  }
  template <class T, std::size_t R>
  static Tensor<T, R, Cuda> zeros(Context<Cuda>& ctx, const Shape<R>& s) {
    return ctx.zeros<T, R>(s);
  }
  template <class T, std::size_t R>
  static void fill(Context<Cuda>& ctx, Tensor<T, R, Cuda>& t, T v) {
    static_assert(cuda::Storable<T>, "DeviceOps<Cuda>::fill supports float, double, int32_t and int64_t tensors.");
    cuda::fill<T>(ctx, t.data(), v, t.numel());
  }
  /// y += x (same shape).
  template <class T, std::size_t R>
  static void accumulate(Context<Cuda>& ctx, Tensor<T, R, Cuda>& y, const Tensor<T, R, Cuda>& x) {
    static_assert(cuda::Real<T>, "DeviceOps<Cuda>::accumulate supports float and double tensors.");
    check_same_shape(y.shape(), x.shape(), "gradient accumulation");
    cuda::axpy<T>(ctx, y.data(), x.data(), T(1), y.numel());
  }
  template <class T, std::size_t R>
  static Tensor<T, R, Cpu> to_host(Context<Cuda>& ctx, const Tensor<T, R, Cuda>& t) {
    return ::distill::to_host(ctx, t);
  }
  /// dst[0, n) = src[0, n) and x[0, n) *= a, in device memory (the collectives' packing and averaging).
  template <class T>
  static void copy(Context<Cuda>& ctx, T* dst, const T* src, index_t n) {
    if (n) cuda::copy_on_device(ctx, dst, src, sizeof(T) * static_cast<std::size_t>(n));
  }
  template <class T>
  static void scale(Context<Cuda>& ctx, T* x, T a, index_t n) {
    static_assert(cuda::Real<T>, "DeviceOps<Cuda>::scale supports float and double.");
    if (n) cuda::scale<T>(ctx, x, x, a, n);
  }
  /// Byte copies between whole buffers on ctx's stream (ctx must not be null). read_bytes waits for the stream;
  /// write_bytes may reuse host_src at once (pageable memory).
  static void write_bytes(Context<Cuda>* ctx, void* dst, const void* host_src, std::size_t bytes) {
    if (bytes) cuda::copy_to_device(*ctx, dst, host_src, bytes);
  }
  static void read_bytes(Context<Cuda>* ctx, void* host_dst, const void* src, std::size_t bytes) {
    if (bytes) cuda::copy_to_host(*ctx, host_dst, src, bytes);
  }
  static void copy_bytes(Context<Cuda>* ctx, void* dst, const void* src, std::size_t bytes) {
    if (bytes) cuda::copy_on_device(*ctx, dst, src, bytes);
  }
  /// Waits for everything enqueued on ctx's stream.
  static void synchronize(Context<Cuda>* ctx) { cuda::synchronize(*ctx); }
};

}  // namespace distill
