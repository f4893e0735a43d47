// distill/losses/queue.hpp -- losses::Queue: the FIFO buffer of negative keys of MoCo / DisCo / MCL.
#pragma once

#include <algorithm>
#include <cmath>

#include "distill/core/error.hpp"
#include "distill/core/rng.hpp"
#include "distill/core/tensor.hpp"
#include "distill/backend/device_ops.hpp"

namespace distill::losses {

/// A fixed-capacity FIFO of key rows [capacity, dim]. enqueue() L2-normalises each row (as MoCo's queue holds
/// normalised keys; already normalised keys are unchanged up to rounding) and writes it over the oldest slot
/// once the queue is full. contents() is a view of the filled slots in storage order: the order does not
/// matter to a loss (a softmax over a set), and no copy is made. ordered() copies them oldest first.
/// Queue<T, Cuda> keeps its rows in device memory (constructed from a Context<Cuda>, which it uses for enqueue());
/// a Cpu queue is built with or without its context (the device-generic constructors take one on every device).
template <class T, class D = Cpu>
class Queue {
  static_assert(std::is_floating_point_v<T>, "losses::Queue<T>: T must be float or double.");

public:
  Queue() = default;
  /// An empty queue (size() == 0) for keys of length `dim`.
  Queue(index_t capacity, index_t dim)
    requires std::is_same_v<D, Cpu>
      : buf_(Shape<2>{capacity, dim}) {
    DISTILL_CHECK(capacity >= 1 && dim >= 1, "Queue: capacity and dim must be >= 1, got capacity ", capacity,
                  " and dim ", dim);
  }
  /// A full queue of random unit keys (MoCo's initialisation: normalised N(0, 1) rows).
  static Queue random(index_t capacity, index_t dim, CounterRng& rng)
    requires std::is_same_v<D, Cpu>
  {
    Queue q(capacity, dim);
    q.enqueue(normal_rows(capacity, dim, rng));
    return q;
  }

  /// An empty queue of device D (size() == 0) for keys of length `dim`; `ctx` must outlive it (a device queue
  /// enqueues and copies on it).
  Queue(Context<D>& ctx, index_t capacity, index_t dim) : ctx_(&ctx) {
    DISTILL_CHECK(capacity >= 1 && dim >= 1, "Queue: capacity and dim must be >= 1, got capacity ", capacity,
                  " and dim ", dim);
    buf_ = DeviceOps<D>::template zeros<T, 2>(ctx, Shape<2>{capacity, dim});
  }
  /// A full queue of device D of random unit keys, the same draws on every device (drawn on the host).
  static Queue random(Context<D>& ctx, index_t capacity, index_t dim, CounterRng& rng) {
    Queue q(ctx, capacity, dim);
    q.enqueue(DeviceOps<D>::from_host(ctx, normal_rows(capacity, dim, rng)));
    return q;
  }

  index_t capacity() const noexcept { return buf_.extent(0); }
  index_t dim() const noexcept { return buf_.extent(1); }
  index_t size() const noexcept { return size_; }
  bool full() const noexcept { return size_ == capacity(); }
  /// Slot the next enqueued row is written to (the oldest row once the queue is full).
  index_t head() const noexcept { return head_; }

  /// Appends the rows of keys [B, dim] (normalised), overwriting the oldest rows when full. If B exceeds the
  /// capacity only the last `capacity` rows are kept.
  void enqueue(const Tensor<T, 2, D>& keys)
    requires std::is_same_v<D, Cpu>
  {
    DISTILL_CHECK(buf_.defined(), "Queue::enqueue: the queue was default-constructed (no capacity)");
    DISTILL_CHECK(keys.extent(1) == dim(), "Queue::enqueue: keys of shape ", to_string(keys.shape()),
                  " for a queue of dim ", dim(), " (expected [B, ", dim(), "])");
    const index_t B = keys.extent(0), d = dim(), first = std::max<index_t>(0, B - capacity());
    for (index_t r = first; r < B; ++r) {
      const T* x = keys.data() + r * d;
      double ss = 0;
      for (index_t k = 0; k < d; ++k) ss += double(x[k]) * double(x[k]);
      const T inv = static_cast<T>(1.0 / std::max(std::sqrt(ss), 1e-12));
      T* out = buf_.data() + head_ * d;
      for (index_t k = 0; k < d; ++k) out[k] = x[k] * inv;
      head_ = (head_ + 1) % capacity();
      size_ = std::min(size_ + 1, capacity());
    }
  }

  /// Device queue: the same, rows normalised on the device (l2_normalize_rows into the ring's slots).
  void enqueue(const Tensor<T, 2, D>& keys)
    requires std::is_same_v<D, Cuda>
  {
    DISTILL_CHECK(buf_.defined(), "Queue::enqueue: the queue was default-constructed (no capacity)");
    DISTILL_CHECK(keys.extent(1) == dim(), "Queue::enqueue: keys of shape ", to_string(keys.shape()),
                  " for a queue of dim ", dim(), " (expected [B, ", dim(), "])");
    const index_t B = keys.extent(0), d = dim(), first = std::max<index_t>(0, B - capacity());
    auto norms = ctx_->template empty<T, 1>(Shape<1>{std::max<index_t>(B - first, 1)});
    for (index_t r = first; r < B;) {  // at most two contiguous runs: up to the end of the ring, then from slot 0
      const index_t run = std::min(B - r, capacity() - head_);
      cuda::l2_normalize_rows<T>(*ctx_, keys.data() + r * d, buf_.data() + head_ * d, norms.data(), run, d, 1e-12);
      r += run;
      head_ = (head_ + run) % capacity();
      size_ = std::min(size_ + run, capacity());
    }
  }

  /// The ring's storage [capacity, dim] (every slot, filled or not) and its position: what a training state saves
  /// (io::TrainState::add_queue) so that a resumed run continues with the same keys in the same slots.
  Tensor<T, 2, D>& storage() noexcept { return buf_; }
  /// The context a device queue copies with (training states save and restore its storage through it).
  Context<Cuda>& context() const
    requires std::is_same_v<D, Cuda>
  {
    return *ctx_;
  }
  /// Restores the position saved with storage(); refuses one this queue cannot have.
  void set_position(index_t size, index_t head) {
    DISTILL_CHECK(size >= 0 && size <= capacity() && head >= 0 && (head < capacity() || capacity() == 0) &&
                      (size == capacity() || head == size),
                  "Queue::set_position: size ", size, " and head ", head, " are not a position of a queue of capacity ",
                  capacity());
    size_ = size;
    head_ = head;
  }

  /// The filled slots [size, dim], in storage order, sharing the queue's storage.
  Tensor<T, 2, D> contents() const { return buf_.slice0(0, size_); }

  /// A copy of the filled rows, oldest first.
  Tensor<T, 2, D> ordered() const
    requires std::is_same_v<D, Cuda>
  {
    auto out = ctx_->template empty<T, 2>(Shape<2>{size_, dim()});
    const index_t start = full() ? head_ : 0, tail = size_ - (capacity() - start) > 0 ? size_ - (capacity() - start) : 0;
    const std::size_t row = sizeof(T) * static_cast<std::size_t>(dim());
    cuda::copy_on_device(*ctx_, out.data(), buf_.data() + start * dim(), row * static_cast<std::size_t>(size_ - tail));
    cuda::copy_on_device(*ctx_, out.data() + (size_ - tail) * dim(), buf_.data(), row * static_cast<std::size_t>(tail));
    return out;
  }
  Tensor<T, 2, D> ordered() const
    requires std::is_same_v<D, Cpu>
  {
    Tensor<T, 2, D> out(Shape<2>{size_, dim()});
    const index_t start = full() ? head_ : 0;
    for (index_t r = 0; r < size_; ++r)
      std::copy_n(buf_.data() + ((start + r) % capacity()) * dim(), dim(), out.data() + r * dim());
    return out;
  }

private:
  /// [capacity, dim] N(0, 1) draws on the host (random() normalises them as it enqueues them).
  static Tensor<T, 2, Cpu> normal_rows(index_t capacity, index_t dim, CounterRng& rng) {
    Tensor<T, 2, Cpu> keys(Shape<2>{capacity, dim});
    for (auto& v : keys) v = static_cast<T>(rng.normal());
    return keys;
  }

  Tensor<T, 2, D> buf_;
  Context<D>* ctx_ = nullptr;  // null for a Cpu queue built without a context
  index_t size_ = 0;
  index_t head_ = 0;
};

}  // namespace distill::losses
