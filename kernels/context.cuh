// kernels/context.cuh -- cuda::ContextState (stream, cuBLAS handle, caching allocator) behind Context<Cuda>.
//
// The caching allocator keeps freed blocks per size and hands them out again, so steady-state training makes no
// cudaMalloc/cudaFree calls. Reuse is safe without events because a context has a single stream: a block
// returned while kernels using it are still queued can only be handed to work queued after them.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "distill/cuda/api.hpp"
#include "launch.cuh"

namespace distill::cuda {

class CachingAllocator : public std::enable_shared_from_this<CachingAllocator> {
public:
  CachingAllocator(int device, cudaStream_t stream) : device_(device), stream_(stream) {}
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;
  ~CachingAllocator() { free_cached_locked(); }

  std::shared_ptr<void> allocate(std::size_t bytes) {
    const std::size_t size = round_size(bytes);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lk(m_);
      ++stats_.requests;
      // The smallest cached block that fits without wasting more than a quarter of it.
      auto it = cached_.lower_bound(size);
      if (it != cached_.end() && it->first <= size + size / 4) {
        p = it->second;
        const std::size_t got = it->first;
        cached_.erase(it);
        stats_.bytes_cached -= got;
        return hand_out_locked(p, got);
      }
    }
    cudaError_t err = cudaMalloc(&p, size);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      // Out of memory: give the cache back to the driver and retry once.
      DISTILL_CUDA_CHECK(cudaStreamSynchronize(stream_));
      {
        std::lock_guard<std::mutex> lk(m_);
        free_cached_locked();
      }
      err = cudaMalloc(&p, size);
      if (err != cudaSuccess) {
        (void)cudaGetLastError();
        std::lock_guard<std::mutex> lk(m_);
        DISTILL_FAIL("Context<Cuda>: cannot allocate ", bytes, " bytes on device ", device_, " (",
                     cudaGetErrorString(err), "); ", stats_.bytes_in_use, " bytes are in use by live tensors");
      }
    }
    std::lock_guard<std::mutex> lk(m_);
    ++stats_.device_allocations;
    return hand_out_locked(p, size);
  }

  /// Called from holders' deleters. After close(), blocks go straight back to the driver.
  void give_back(void* p, std::size_t size) noexcept {
    std::lock_guard<std::mutex> lk(m_);
    stats_.bytes_in_use -= size;
    if (closed_) {
      (void)cudaFree(p);
      return;
    }
    cached_.emplace(size, p);
    stats_.bytes_cached += size;
  }

  void release_cached() {
    std::lock_guard<std::mutex> lk(m_);
    free_cached_locked();
  }
  /// The owning context is going away: free the cache; blocks still held are freed when their holders die.
  void close() noexcept {
    std::lock_guard<std::mutex> lk(m_);
    free_cached_locked();
    closed_ = true;
  }
  AllocatorStats stats() const {
    std::lock_guard<std::mutex> lk(m_);
    return stats_;
  }

private:
  static std::size_t round_size(std::size_t bytes) {
    const std::size_t granule = bytes < (std::size_t(1) << 20) ? 512 : (std::size_t(1) << 20) / 8;
    return ((bytes == 0 ? 1 : bytes) + granule - 1) / granule * granule;
  }
  std::shared_ptr<void> hand_out_locked(void* p, std::size_t size) {
    stats_.bytes_in_use += size;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return std::shared_ptr<void>(p, [self = shared_from_this(), size](void* q) { self->give_back(q, size); });
  }
  void free_cached_locked() noexcept {
    for (auto& [size, p] : cached_) (void)cudaFree(p);
    cached_.clear();
    stats_.bytes_cached = 0;
  }

  int device_;
  cudaStream_t stream_;
  mutable std::mutex m_;
  std::multimap<std::size_t, void*> cached_;
  AllocatorStats stats_;
  bool closed_ = false;
};

class ContextState {
public:
  explicit ContextState(int device) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      // The usual causes, in words: no driver (or one older than this CUDA runtime), or no GPU.
      const std::string name = cudaGetErrorName(e);
      const char* cause = name == "cudaErrorNoDevice"            ? "no CUDA-capable GPU is present"
                          : name == "cudaErrorInsufficientDriver" ? "the NVIDIA driver is missing or older than "
                                                                    "this CUDA runtime needs"
                                                                  : "the CUDA runtime could not be initialised";
      DISTILL_FAIL("Context<Cuda>: no usable CUDA device: ", cause, " (", name, ": ", cudaGetErrorString(e), ")");
    }
    DISTILL_CHECK(count > 0, "Context<Cuda>: no usable CUDA device: no CUDA-capable GPU is present");
    DISTILL_CHECK(device >= 0 && device < count, "Context<Cuda>: device cuda:", device, " is absent: ", count,
                  " CUDA device(s) present (cuda:0", count > 1 ? " to cuda:" + std::to_string(count - 1) : std::string(),
                  ")");
    info_ = device_info(device);
    DISTILL_CUDA_CHECK(cudaSetDevice(device));
    DISTILL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    const cublasStatus_t st = cublasCreate(&cublas_);
    if (st != CUBLAS_STATUS_SUCCESS) {
      (void)cudaStreamDestroy(stream_);
      DISTILL_FAIL("Context<Cuda>: cublasCreate failed: ", cublasGetStatusName(st));
    }
    DISTILL_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    allocator_ = std::make_shared<CachingAllocator>(device, stream_);
  }
  ContextState(const ContextState&) = delete;
  ContextState& operator=(const ContextState&) = delete;
  ~ContextState() {
    (void)cudaSetDevice(info_.index);
    (void)cudaStreamSynchronize(stream_);
    allocator_->close();
    (void)cublasDestroy(cublas_);
    (void)cudaStreamDestroy(stream_);
  }

  /// Makes this context's device current for the calling host thread (cheap when it already is).
  void activate() const {
    int current = -1;
    if (cudaGetDevice(&current) != cudaSuccess || current != info_.index) DISTILL_CUDA_CHECK(cudaSetDevice(info_.index));
  }
  cudaStream_t stream() const noexcept { return stream_; }
  /// A launcher that needs only the stream takes cudaStream_t; the entry points pass the state itself
  /// (kernels/distill_cuda.cu), so launchers that need scratch or cuBLAS take ContextState& instead.
  operator cudaStream_t() const noexcept { return stream_; }  // NOLINT(google-explicit-constructor): on purpose
  cublasHandle_t cublas() const noexcept { return cublas_; }
  CachingAllocator& allocator() noexcept { return *allocator_; }
  const DeviceInfo& info() const noexcept { return info_; }

  /// Scratch memory for one call's temporaries (stream-ordered reuse makes an immediate give-back safe).
  template <class T>
  std::shared_ptr<void> scratch(std::size_t elements) {
    return allocator_->allocate(sizeof(T) * elements);
  }

private:
  DeviceInfo info_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::shared_ptr<CachingAllocator> allocator_;
};

}  // namespace distill::cuda
