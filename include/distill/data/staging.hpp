// distill/data/staging.hpp -- host batches onto the training device: BatchStager<D>.
//
// A training loop builds its batches on the host (gather, augmentations) and hands each to the stager of its
// device, so the same loop serves both devices:
//   * Cpu: the host tensor itself (moved, no copy);
//   * Cuda: the batch is copied into a page-locked (pinned) host buffer and from there to new device memory by an
//     asynchronous copy on the context's stream; the call returns as soon as the copy is enqueued. The buffers
//     form a ring (two by default): a buffer is refilled only after the event recorded behind its last copy has
//     completed, so the host can build batch n + 1 while batch n's copy and step are still queued.
//
// snippet: fragment; includes: distill/data/staging.hpp distill/autograd/var.hpp; given: Context<Cpu> ctx;
// Tensor<float, 3, Cpu> host_batch({8, 1, 64});
//   data::BatchStager<Cpu> stage{ctx};
//   auto x = constant(ctx, stage(std::move(host_batch)));   // Var<float, 3, Cpu>; on Cuda a device Var
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/backend/device_ops.hpp"
#include "distill/core/error.hpp"
#include "distill/core/tensor.hpp"

namespace distill::data {

template <class D>
class BatchStager;

/// The Cpu device: batches stay where they are.
template <>
class BatchStager<Cpu> {
public:
  explicit BatchStager(Context<Cpu>&, int = 2) {}
  template <class T, std::size_t R>
  Tensor<T, R, Cpu> operator()(Tensor<T, R, Cpu> host) const {
    return host;
  }
};

/// The Cuda device: pinned ring buffers, asynchronous uploads (see the file comment).
template <>
class BatchStager<Cuda> {
public:
  explicit BatchStager(Context<Cuda>& ctx, int slots = 2) : ctx_(&ctx), slots_(static_cast<std::size_t>(slots)) {
    DISTILL_CHECK(slots >= 1, "BatchStager: needs at least one staging buffer, got ", slots);
  }

  /// A device copy of `host` (contiguous), enqueued on the context's stream.
  template <class T, std::size_t R>
  Tensor<T, R, Cuda> operator()(const Tensor<T, R, Cpu>& host) {
    Slot& s = slots_[next_];
    next_ = (next_ + 1) % slots_.size();
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(host.numel());
    auto dev = ctx_->empty<T, R>(host.shape());
    if (bytes == 0) return dev;
    if (s.done) cuda::wait_event(s.done);  // the last copy out of this buffer has finished
    if (s.capacity < bytes) {
      s.buffer = cuda::allocate_pinned(bytes);
      s.capacity = bytes;
    }
    std::memcpy(s.buffer.get(), host.data(), bytes);
    cuda::copy_to_device(*ctx_, dev.data(), s.buffer.get(), bytes);
    s.done = cuda::record_event(*ctx_);
    return dev;
  }

private:
  struct Slot {
    std::shared_ptr<void> buffer;  // pinned host memory
    std::size_t capacity = 0;
    std::shared_ptr<void> done;    // event behind the last copy out of `buffer`
  };
  Context<Cuda>* ctx_;
  std::vector<Slot> slots_;
  std::size_t next_ = 0;
};

}  // namespace distill::data
