// distill/cpu/device_ops.hpp -- DeviceOps<Cpu> (core/device_ops.hpp) and the Cpu device's to_device / to_host.
#pragma once

#include <cstring>

#include "distill/core/context.hpp"
#include "distill/core/device_ops.hpp"
#include "distill/core/tensor.hpp"

namespace distill {

template <>
struct DeviceOps<Cpu> {
  /// Tensors of this device live in host memory: host code reads and writes them, and copies need no context.
  static constexpr bool host_memory = true;

  template <class T, std::size_t R>
  static Tensor<T, R, Cpu> from_host(Context<Cpu>&, Tensor<T, R, Cpu> host) {
    return host;
  }
  template <class T, std::size_t R>
  static Tensor<T, R, Cpu> zeros(Context<Cpu>& ctx, const Shape<R>& s) {
    return ctx.zeros<T, R>(s);
  }
  template <class T, std::size_t R>
  static void fill(Context<Cpu>&, Tensor<T, R, Cpu>& t, T v) {
    t.fill(v);
  }
  /// y += x (same shape).
  template <class T, std::size_t R>
  static void accumulate(Context<Cpu>&, Tensor<T, R, Cpu>& y, const Tensor<T, R, Cpu>& x) {
    check_same_shape(y.shape(), x.shape(), "gradient accumulation");
    T* __restrict yp = y.data();
    const T* __restrict xp = x.data();
    const index_t n = y.numel();
    for (index_t i = 0; i < n; ++i) yp[i] += xp[i];
  }
  template <class T, std::size_t R>
  static Tensor<T, R, Cpu> to_host(Context<Cpu>&, const Tensor<T, R, Cpu>& t) {
    return t.clone();
  }
  /// dst[0, n) = src[0, n) and x[0, n) *= a (the collectives' packing and averaging).
  template <class T>
  static void copy(Context<Cpu>&, T* dst, const T* src, index_t n) {
    if (n) std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(n));
  }
  template <class T>
  static void scale(Context<Cpu>&, T* x, T a, index_t n) {
    for (index_t i = 0; i < n; ++i) x[i] *= a;
  }
  /// Byte copies between whole buffers (the context may be null: host memory needs none). copy_bytes may overlap.
  static void write_bytes(Context<Cpu>*, void* dst, const void* host_src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, host_src, bytes);
  }
  static void read_bytes(Context<Cpu>*, void* host_dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(host_dst, src, bytes);
  }
  static void copy_bytes(Context<Cpu>*, void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memmove(dst, src, bytes);
  }
  static void synchronize(Context<Cpu>*) {}
};

/// Device-generic code can move tensors with to_device / to_host whatever its device: on the Cpu device both are
/// plain copies (like the Cuda versions, the result never shares storage with the argument).
template <class T, std::size_t R>
Tensor<T, R, Cpu> to_device(Context<Cpu>&, const Tensor<T, R, Cpu>& host) {
  return host.clone();
}
template <class T, std::size_t R>
Tensor<T, R, Cpu> to_host(Context<Cpu>&, const Tensor<T, R, Cpu>& t) {
  return t.clone();
}
/// Copies host values into an existing tensor of the same shape (the Cuda version uploads them).
template <class T, std::size_t R>
void copy_to_device(Context<Cpu>&, Tensor<T, R, Cpu>& dst, const Tensor<T, R, Cpu>& src) {
  check_same_shape(dst.shape(), src.shape(), "copy_to_device");
  if (src.numel()) std::memcpy(dst.data(), src.data(), sizeof(T) * static_cast<std::size_t>(src.numel()));
}

}  // namespace distill
