// distill/core/host_pool.hpp -- the caching host allocator a Context<Cpu> owns.
//
// Every op output, gradient buffer and scratch tensor of a training step has the same size as in the previous
// step. Served by malloc, large blocks come from fresh mmap'd pages and every step pays the kernel's page faults
// and zeroing again (measured: ~7% of a DCRLS step, ~3-5% of a fused NT-Xent forward + backward). HostPool keeps
// freed blocks of >= kMinBytes in per-size-class free lists and hands them out again:
//   * size classes: quarter octaves (a block is at most 19% larger than asked), 64-byte aligned;
//   * the cache is bounded (max_cached bytes; beyond that a freed block goes back to the system);
//   * a tensor's deleter holds a shared_ptr to the pool, so a tensor may outlive its context safely;
//   * thread-safe (one mutex; allocations are per op, not per element);
//   * under AddressSanitizer the pool is off by default, so that use-after-free stays detectable.
// Small blocks go straight to aligned_alloc: glibc's free lists already serve them without page faults.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "distill/core/tensor.hpp"

namespace distill {

class HostPool : public std::enable_shared_from_this<HostPool> {
public:
  static constexpr std::size_t kMinBytes = std::size_t(64) << 10;  // 64 KiB: below this glibc does well

#if defined(__SANITIZE_ADDRESS__)
  static constexpr bool kDefaultEnabled = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  static constexpr bool kDefaultEnabled = false;
#else
  static constexpr bool kDefaultEnabled = true;
#endif
#else
  static constexpr bool kDefaultEnabled = true;
#endif

  explicit HostPool(bool enabled = kDefaultEnabled, std::size_t max_cached = std::size_t(1) << 30)
      : enabled_(enabled), max_cached_(max_cached) {}
  HostPool(const HostPool&) = delete;
  HostPool& operator=(const HostPool&) = delete;
  ~HostPool() { release(); }

  /// The size class of a request: the smallest quarter-octave step >= bytes, a multiple of 64.
  static std::size_t size_class(std::size_t bytes) {
    if (bytes <= kMinBytes) return round64(bytes);
    std::size_t p = kMinBytes;
    while (p * 2 < bytes) p *= 2;  // p < bytes <= 2p
    const std::size_t step = p / 4;
    return ((bytes - p + step - 1) / step) * step + p;
  }

  /// A 64-byte-aligned block of at least `bytes`; freed into this pool when the last owner lets go.
  std::shared_ptr<void> allocate(std::size_t bytes) {
    if (bytes == 0) return std::shared_ptr<void>();
    std::lock_guard<std::mutex> lock(mu_);
    if (!enabled_ || bytes < kMinBytes) return detail::host_allocate(bytes);
    const std::size_t cls = size_class(bytes);
    void* p = nullptr;
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      cached_ -= cls;
      ++hits_;
    } else {
      p = std::aligned_alloc(kAlignment, cls);
      if (!p) {
        release_locked();  // give the cache back and try once more
        p = std::aligned_alloc(kAlignment, cls);
        if (!p) throw std::bad_alloc();
      }
      ++misses_;
    }
    std::shared_ptr<HostPool> self = shared_from_this();
    return std::shared_ptr<void>(p, [self, cls](void* q) { self->give_back(q, cls); });
  }

  /// An uninitialised Cpu tensor: from the cache when it is >= kMinBytes, else from plain aligned allocation.
  template <class T, std::size_t R>
  Tensor<T, R, Cpu> tensor(const Shape<R>& s) {
    for (std::size_t i = 0; i < R; ++i) DISTILL_CHECK(s[i] >= 0, "negative extent in shape ", to_string(s));
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(numel(s));
    if (bytes < kMinBytes) return Tensor<T, R, Cpu>(s);
    std::shared_ptr<void> block = allocate(bytes);
    T* data = static_cast<T*>(block.get());
    return Tensor<T, R, Cpu>(std::move(block), data, s);
  }

  /// Returns every cached block to the system (live tensors are not affected).
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    release_locked();
  }
  /// Turns caching on or off; turning it off releases the cache.
  void set_enabled(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    enabled_ = on;
    if (!on) release_locked();
  }
  bool enabled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return enabled_;
  }
  /// Bytes held in free lists, and how many pool-sized requests were served from them / from the system.
  std::size_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }
  std::size_t hits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return hits_;
  }
  std::size_t misses() const {
    std::lock_guard<std::mutex> lock(mu_);
    return misses_;
  }

private:
  static std::size_t round64(std::size_t b) { return ((b + kAlignment - 1) / kAlignment) * kAlignment; }

  void give_back(void* p, std::size_t cls) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!enabled_ || cached_ + cls > max_cached_) {
      std::free(p);
      return;
    }
    free_[cls].push_back(p);
    cached_ += cls;
  }
  void release_locked() {
    for (auto& [cls, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_ = 0;
  }

  mutable std::mutex mu_;
  bool enabled_;
  std::size_t max_cached_;
  std::size_t cached_ = 0, hits_ = 0, misses_ = 0;
  std::map<std::size_t, std::vector<void*>> free_;
};

}  // namespace distill
