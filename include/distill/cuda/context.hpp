// distill/cuda/context.hpp -- Context<Cuda>: the CPU context's state plus a stream, a cuBLAS handle and a
// caching allocator, all owned by one opaque cuda::ContextState (kernels/context.cuh).
//
// Plain C++: the CUDA types stay behind cuda/api.hpp, whose definitions live in kernels/distill_cuda.cu. Link a
// target built from that TU (distill::cuda on a GPU, distill::cuda_emu for the SIMT emulator on the CPU).
//
// snippet: fragment; includes: distill/cuda/device_ops.hpp
//   distill::Context<distill::Cuda> ctx{/*threads=*/2, /*seed=*/42};      // device 0
//   auto x = ctx.zeros<float, 3>({64, 1, 512});                          // device memory from the cache
//   auto h = distill::to_host(ctx, x);                                   // Tensor<float, 3, Cpu>
//
// Two contexts are independent (own stream, handle and cache). A context must outlive its tensors' *use*;
// device blocks released after the context is gone are freed directly.
#pragma once

#include <cstdint>
#include <memory>

#include "distill/core/context.hpp"
#include "distill/core/tensor.hpp"
#include "distill/cuda/api.hpp"

namespace distill {

template <>
class Context<Cuda> : public ContextBase {
public:
  using device_type = Cuda;

  /// `threads` and `seed` mean what they mean for Context<Cpu> (host-side work, RNG); `device` picks the GPU.
  explicit Context(int threads = 1, std::uint64_t seed = 0, int device = 0)
      : ContextBase(threads, seed), state_(cuda::create_context_state(device)) {}

  /// Uninitialised device tensor from the context's caching allocator.
  template <class T, std::size_t R>
  Tensor<T, R, Cuda> empty(const Shape<R>& s) {
    for (std::size_t i = 0; i < R; ++i)
      DISTILL_CHECK(s[i] >= 0, "Context<Cuda>::empty: negative extent in shape ", to_string(s));
    auto holder = cuda::allocate(*this, sizeof(T) * static_cast<std::size_t>(numel(s)));
    T* p = static_cast<T*>(holder.get());
    return Tensor<T, R, Cuda>(std::move(holder), p, s);
  }
  /// Zero-filled device tensor (an asynchronous memset on the context's stream).
  template <class T, std::size_t R>
  Tensor<T, R, Cuda> zeros(const Shape<R>& s) {
    auto t = empty<T, R>(s);
    cuda::zero_bytes(*this, t.data(), sizeof(T) * static_cast<std::size_t>(t.numel()));
    return t;
  }

  /// Waits for all work enqueued through this context.
  void synchronize() { cuda::synchronize(*this); }

  /// Ranks over device memory: NCCL (dist/nccl.hpp) for a world larger than one.
  void set_communicator(std::shared_ptr<Communicator> c) {
    set_communicator_base(std::move(c), CommMemory::device, "Cuda");
  }

  const cuda::DeviceInfo& device_info() const noexcept { return cuda::info(*state_); }
  int device() const noexcept { return device_info().index; }
  /// True when the kernels run on the SIMT emulator (CPU) rather than a GPU.
  bool emulated() const noexcept { return device_info().emulated; }
  cuda::AllocatorStats memory_stats() { return cuda::allocator_stats(*this); }

  /// The opaque state (stream, cuBLAS handle, allocator) for kernels/distill_cuda.cu.
  cuda::ContextState& state() const noexcept { return *state_; }

private:
  std::shared_ptr<cuda::ContextState> state_;
};

}  // namespace distill
