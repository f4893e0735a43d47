// kernels/simt/emulator.hpp -- run distill's CUDA kernels on the CPU with CUDA's execution semantics.
//
// The kernel headers in kernels/ compile either with nvcc (real GPU) or with the host compiler against this
// header (DISTILL_SIMT_EMULATION defined). Emulation runs the *same kernel source*, so tests on a machine
// without a GPU exercise the exact code a GPU runs, and ThreadSanitizer sees every missing barrier.
//
// Execution model
//   * A launch runs synchronously in the calling thread's order; launches are serialised process-wide.
//   * The grid's blocks run one after another. Each block's threads are real threads from a pool that is
//     reused across blocks and launches (thread i of every block is pool worker i).
//   * threadIdx / blockIdx / blockDim / gridDim are thread_local variables set by the launcher.
//   * __syncthreads() is a barrier over the block's threads. A thread that returns from the kernel drops out
//     of the block's (and its warp's) barriers, as exited threads do on the hardware.
//   * Warps are groups of 32 consecutive linear thread ids. __shfl_*_sync, __ballot_sync, __any_sync,
//     __all_sync and __syncwarp go through a per-warp barrier and a double-buffered 32-slot exchange, so
//     threads of a warp are *not* in lockstep: code relying on implicit warp synchrony fails here (as it may
//     on Volta and newer GPUs). Every live lane of the warp must take part: the mask must name them all.
//   * `__shared__` maps to a function-local `static`: one copy shared by the running block (blocks never
//     overlap). Dynamic shared memory (DISTILL_DYNAMIC_SHARED in kernels/common.cuh) is a per-launch buffer,
//     filled with 0xFF bytes (float/double NaN) before every block, so a read of shared memory that no thread of
//     the block wrote produces NaN instead of a lucky value.
//   * Atomics are std::atomic_ref operations; __threadfence() is a sequentially consistent fence.
//   * Device memory is host memory (cudaMalloc = aligned malloc); memcpy/memset/stream/event calls run
//     synchronously; events read a steady clock.
//   * cuBLAS: cublasSgemm / cublasDgemm (+ StridedBatched) with cuBLAS's column-major semantics, its argument
//     checks and its beta == 0 rule (C is then written without being read).
//
// Not emulated (documented in docs/cuda.md): races *between* blocks (blocks never overlap), memory
// coalescing, bank conflicts, occupancy and timing, `__constant__`, textures, cooperative groups, clusters,
// inline PTX (mma/wgmma), warp-level partial masks, `__syncthreads_count/and/or`.
#pragma once

#if defined(__CUDACC__)
#error "kernels/simt/emulator.hpp is the host-compiler emulation of CUDA; nvcc builds use the CUDA runtime."
#endif

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <memory>
#include <mutex>
#include <semaphore>
#include <set>
#include <thread>
#include <type_traits>
#include <vector>

// ------------------------------------------------------------------------------------------------------------
// Qualifiers
// ------------------------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __launch_bounds__(...)

// ------------------------------------------------------------------------------------------------------------
// Built-in vector types and index variables
// ------------------------------------------------------------------------------------------------------------
struct uint3 {
  unsigned int x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
inline constexpr int warpSize = 32;

// ------------------------------------------------------------------------------------------------------------
// Runtime API subset: errors, memory, streams, events, device queries
// ------------------------------------------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrClockRate = 13,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
};
inline constexpr unsigned int cudaStreamDefault = 0x0;
inline constexpr unsigned int cudaStreamNonBlocking = 0x1;

struct CUstream_st {
  unsigned int flags = 0;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point when{};
  bool recorded = false;
};
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;

namespace simt {

/// Properties the emulated device reports (an sm_80-like device with 8 SMs).
inline constexpr int kEmulatedSmCount = 8;
inline constexpr int kEmulatedMajor = 8;
inline constexpr int kEmulatedMinor = 0;
inline constexpr std::size_t kMaxDynamicShared = 48 * 1024;  // CUDA's default per-launch limit without opt-in
inline constexpr const char* kEmulatedDeviceName = "SIMT emulator (host CPU)";

namespace detail {

inline cudaError_t& last_error() {
  static thread_local cudaError_t e = cudaSuccess;
  return e;
}
inline cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) last_error() = e;
  return e;
}

/// Every live emulated device allocation (so cudaFree and copies can reject foreign pointers).
struct Allocations {
  std::mutex m;
  std::set<const void*> live;
};
/// Never destroyed: contexts with static storage duration free their cached blocks at exit, possibly after the
/// destructors of function-local statics created later than them have run.
inline Allocations& allocations() {
  static Allocations* a = new Allocations;
  return *a;
}

// --------------------------------------------------------------------------------------------------------
// A barrier whose participant count can drop (exited threads) and be reset between blocks. Arrivals are
// serialised by a mutex (happens-before from every arriving thread to the completing one); waiters wait on
// an atomic generation counter written with release order by the completing thread.
// --------------------------------------------------------------------------------------------------------
class Barrier {
public:
  void reset(int participants) {
    expected_ = participants;
    arrived_ = 0;
  }
  template <class Completion>
  void arrive_and_wait(Completion&& on_complete) {
    std::unique_lock<std::mutex> lk(m_);
    const unsigned g = gen_.load(std::memory_order_relaxed);
    if (++arrived_ >= expected_) {
      on_complete();
      complete_locked(g);
      lk.unlock();
      gen_.notify_all();
      return;
    }
    lk.unlock();
    for (unsigned v = gen_.load(std::memory_order_acquire); v == g; v = gen_.load(std::memory_order_acquire))
      gen_.wait(g, std::memory_order_acquire);
  }
  void arrive_and_wait() {
    arrive_and_wait([] {});
  }
  void arrive_and_drop() {
    std::unique_lock<std::mutex> lk(m_);
    --expected_;
    if (arrived_ > 0 && arrived_ >= expected_) {
      complete_locked(gen_.load(std::memory_order_relaxed));
      lk.unlock();
      gen_.notify_all();
    }
  }

private:
  void complete_locked(unsigned g) {
    arrived_ = 0;
    gen_.store(g + 1, std::memory_order_release);
  }
  std::mutex m_;
  int expected_ = 0;
  int arrived_ = 0;
  std::atomic<unsigned> gen_{0};
};

struct Warp {
  Barrier bar;
  std::uint64_t slots[2][32] = {};
  unsigned int present = 0;  // lanes that exist in this warp (bit i = lane i)
};

/// 16-byte units of dynamic shared memory (so the buffer is 16-byte aligned, like the GPU's).
struct alignas(16) SharedChunk {
  unsigned char bytes[16];
};

struct Block {
  Barrier bar;
  Barrier end;  // all threads, never dropped: separates consecutive blocks
  std::vector<Warp> warps;
  std::vector<SharedChunk> dynamic_shared;
  void poison_shared() {
    if (!dynamic_shared.empty()) std::memset(dynamic_shared.data(), 0xFF, dynamic_shared.size() * sizeof(SharedChunk));
  }
};

struct ThreadState {
  Block* block = nullptr;
  Warp* warp = nullptr;
  int lane = 0;
  unsigned int exchanges = 0;  // parity selects the exchange buffer
};
inline thread_local ThreadState tstate;

[[noreturn]] inline void misuse(const char* what) {
  std::fprintf(stderr, "SIMT emulator: %s\n", what);
  std::abort();
}

// --------------------------------------------------------------------------------------------------------
// The thread pool: worker i runs thread i of every block of a launch.
// --------------------------------------------------------------------------------------------------------
struct Job {
  void (*invoke)(const void*) = nullptr;
  const void* closure = nullptr;
  dim3 grid, block;
  int threads = 0;
  std::size_t shared_bytes = 0;
  Block* state = nullptr;
  std::latch* done = nullptr;
};

inline void unflatten(unsigned long long i, const dim3& d, uint3& out) {
  out.x = static_cast<unsigned int>(i % d.x);
  out.y = static_cast<unsigned int>((i / d.x) % d.y);
  out.z = static_cast<unsigned int>(i / (static_cast<unsigned long long>(d.x) * d.y));
}

inline void run_thread(const Job& job, int t) {
  Block& blk = *job.state;
  blockDim = job.block;
  gridDim = job.grid;
  unflatten(static_cast<unsigned long long>(t), job.block, threadIdx);
  tstate.block = &blk;
  tstate.warp = &blk.warps[static_cast<std::size_t>(t / 32)];
  tstate.lane = t % 32;
  const unsigned long long blocks = static_cast<unsigned long long>(job.grid.x) * job.grid.y * job.grid.z;
  for (unsigned long long b = 0; b < blocks; ++b) {
    unflatten(b, job.grid, blockIdx);
    tstate.exchanges = 0;
    job.invoke(job.closure);
    // The thread has returned from the kernel: it no longer takes part in __syncthreads or warp operations.
    blk.bar.arrive_and_drop();
    tstate.warp->bar.arrive_and_drop();
    blk.end.arrive_and_wait([&] {
      // Last thread of the block: re-arm the block's barriers and poison dynamic shared memory.
      blk.bar.reset(job.threads);
      for (auto& w : blk.warps) w.bar.reset(std::popcount(w.present));
      blk.poison_shared();
    });
  }
  tstate = ThreadState{};
}

class Pool {
public:
  static Pool& instance() {
    static Pool p;
    return p;
  }
  ~Pool() {
    stopping_ = true;
    for (auto& w : workers_) w->wake.release();
    for (auto& w : workers_) w->thread.join();
  }
  /// Runs `job` on workers [0, job.threads) and waits for them. Callers hold launch_mutex().
  void run(const Job& job) {
    grow(job.threads);
    std::latch done(job.threads);
    Job j = job;
    j.done = &done;
    for (int i = 0; i < job.threads; ++i) {
      workers_[static_cast<std::size_t>(i)]->job = j;
      workers_[static_cast<std::size_t>(i)]->wake.release();
    }
    done.wait();
  }
  std::mutex& launch_mutex() { return launch_mutex_; }

private:
  struct Worker {
    std::binary_semaphore wake{0};
    Job job;
    std::thread thread;
  };
  void grow(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      auto w = std::make_unique<Worker>();
      const int id = static_cast<int>(workers_.size());
      Worker* raw = w.get();
      raw->thread = std::thread([this, raw, id] { loop(raw, id); });
      workers_.push_back(std::move(w));
    }
  }
  void loop(Worker* self, int id) {
    for (;;) {
      self->wake.acquire();
      if (stopping_) return;
      run_thread(self->job, id);
      self->job.done->count_down();
    }
  }
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stopping_{false};
  std::mutex launch_mutex_;
};

template <class T>
inline constexpr bool exchangeable_v = std::is_trivially_copyable_v<T> && sizeof(T) <= 8;

inline void check_mask(unsigned int mask, const Warp& w, const char* op) {
  if ((mask & w.present) != w.present) {
    std::fprintf(stderr, "SIMT emulator: %s with mask 0x%08x, but the warp's lanes are 0x%08x\n", op, mask,
                 w.present);
    misuse("partial-warp masks are outside the emulated subset: every lane of the warp must take part");
  }
}

/// Write `v` into this lane's slot, wait for the warp, return the slot of `src` (own value if src < 0 or absent).
template <class T>
T exchange(unsigned int mask, T v, int src, const char* op) {
  static_assert(exchangeable_v<T>, "SIMT emulator: shuffled values must be trivially copyable and at most 8 bytes.");
  ThreadState& ts = tstate;
  if (!ts.warp) misuse("warp intrinsic called outside a kernel");
  Warp& w = *ts.warp;
  check_mask(mask, w, op);
  const unsigned p = ts.exchanges++ & 1u;
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slots[p][ts.lane] = bits;
  w.bar.arrive_and_wait();
  if (src < 0 || src >= 32 || !((w.present >> src) & 1u)) return v;
  T r;
  std::memcpy(&r, &w.slots[p][src], sizeof(T));
  return r;
}

}  // namespace detail

/// Launches `kernel` with CUDA semantics. Returns cudaErrorInvalidConfiguration for a configuration a GPU
/// rejects (as cudaGetLastError would after `<<<>>>`); the launch is then not run.
template <class... P, class... A>
cudaError_t launch(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t,
                   A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "SIMT launch: argument count differs from the kernel's.");
  const unsigned long long threads = static_cast<unsigned long long>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u ||
      shared_bytes > kMaxDynamicShared)
    return detail::set_error(cudaErrorInvalidConfiguration);

  // Kernel parameters are copies, as on the device.
  auto call = [&] { kernel(static_cast<P>(args)...); };
  using Call = decltype(call);

  detail::Pool& pool = detail::Pool::instance();
  std::lock_guard<std::mutex> lock(pool.launch_mutex());
  detail::Block state;
  state.bar.reset(static_cast<int>(threads));
  state.end.reset(static_cast<int>(threads));
  state.warps = std::vector<detail::Warp>(static_cast<std::size_t>((threads + 31) / 32));
  for (std::size_t w = 0; w < state.warps.size(); ++w) {
    const unsigned long long lanes = std::min<unsigned long long>(32, threads - w * 32);
    state.warps[w].present = lanes == 32 ? 0xFFFFFFFFu : ((1u << lanes) - 1u);
    state.warps[w].bar.reset(static_cast<int>(lanes));
  }
  state.dynamic_shared.resize((shared_bytes + sizeof(detail::SharedChunk) - 1) / sizeof(detail::SharedChunk));
  state.poison_shared();

  detail::Job job;
  job.invoke = [](const void* c) { (*static_cast<const Call*>(c))(); };
  job.closure = &call;
  job.grid = grid;
  job.block = block;
  job.threads = static_cast<int>(threads);
  job.shared_bytes = shared_bytes;
  job.state = &state;
  pool.run(job);
  return cudaSuccess;
}

/// Base of the running block's dynamic shared memory (16-byte aligned; see DISTILL_DYNAMIC_SHARED).
inline void* dynamic_shared_memory() {
  detail::Block* b = detail::tstate.block;
  if (!b) detail::misuse("dynamic shared memory used outside a kernel");
  return b->dynamic_shared.data();
}

}  // namespace simt

// ------------------------------------------------------------------------------------------------------------
// Device-side intrinsics
// ------------------------------------------------------------------------------------------------------------
inline void __syncthreads() {
  simt::detail::Block* b = simt::detail::tstate.block;
  if (!b) simt::detail::misuse("__syncthreads() called outside a kernel");
  b->bar.arrive_and_wait();
}
inline void __syncwarp(unsigned int mask = 0xFFFFFFFFu) {
  simt::detail::Warp* w = simt::detail::tstate.warp;
  if (!w) simt::detail::misuse("__syncwarp() called outside a kernel");
  simt::detail::check_mask(mask, *w, "__syncwarp");
  w->bar.arrive_and_wait();
}
inline unsigned int __activemask() { return simt::detail::tstate.warp ? simt::detail::tstate.warp->present : 0u; }

template <class T>
T __shfl_sync(unsigned int mask, T v, int src_lane, int width = warpSize) {
  const int lane = simt::detail::tstate.lane;
  const int base = lane & ~(width - 1);
  return simt::detail::exchange(mask, v, base + (src_lane & (width - 1)), "__shfl_sync");
}
template <class T>
T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = warpSize) {
  const int lane = simt::detail::tstate.lane;
  const int src = lane ^ lane_mask;
  const int base = lane & ~(width - 1);
  return simt::detail::exchange(mask, v, (src >= base && src < base + width) ? src : lane, "__shfl_xor_sync");
}
template <class T>
T __shfl_down_sync(unsigned int mask, T v, unsigned int delta, int width = warpSize) {
  const int lane = simt::detail::tstate.lane;
  const int src = lane + static_cast<int>(delta);
  const int base = lane & ~(width - 1);
  return simt::detail::exchange(mask, v, src < base + width ? src : lane, "__shfl_down_sync");
}
template <class T>
T __shfl_up_sync(unsigned int mask, T v, unsigned int delta, int width = warpSize) {
  const int lane = simt::detail::tstate.lane;
  const int src = lane - static_cast<int>(delta);
  const int base = lane & ~(width - 1);
  return simt::detail::exchange(mask, v, src >= base ? src : lane, "__shfl_up_sync");
}
inline unsigned int __ballot_sync(unsigned int mask, int predicate) {
  using namespace simt::detail;
  ThreadState& ts = tstate;
  if (!ts.warp) misuse("__ballot_sync called outside a kernel");
  Warp& w = *ts.warp;
  check_mask(mask, w, "__ballot_sync");
  const unsigned p = ts.exchanges++ & 1u;
  w.slots[p][ts.lane] = predicate != 0 ? 1u : 0u;
  w.bar.arrive_and_wait();
  unsigned int bits = 0;
  for (int l = 0; l < 32; ++l)
    if (((w.present >> l) & 1u) && w.slots[p][l]) bits |= 1u << l;
  return bits & mask;
}
inline int __any_sync(unsigned int mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned int mask, int predicate) {
  return __ballot_sync(mask, predicate) == (mask & simt::detail::tstate.warp->present);
}

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class T>
T atomicAdd(T* address, T v) {
  return std::atomic_ref<T>(*address).fetch_add(v);
}
template <class T>
T atomicSub(T* address, T v) {
  return std::atomic_ref<T>(*address).fetch_sub(v);
}
template <class T>
T atomicExch(T* address, T v) {
  return std::atomic_ref<T>(*address).exchange(v);
}
template <class T>
T atomicCAS(T* address, T compare, T v) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, v);
  return compare;
}
template <class T>
T atomicMax(T* address, T v) {
  std::atomic_ref<T> r(*address);
  T old = r.load();
  while (old < v && !r.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T>
T atomicMin(T* address, T v) {
  std::atomic_ref<T> r(*address);
  T old = r.load();
  while (old > v && !r.compare_exchange_weak(old, v)) {
  }
  return old;
}

template <class T>
T __ldg(const T* p) {
  return *p;
}

// Single-precision math functions the CUDA headers declare in the global namespace.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
// expf, sqrtf, fmaxf, fmaf, ... come from <cmath>/<math.h> in the global namespace, as in CUDA.

// ------------------------------------------------------------------------------------------------------------
// Host-side runtime functions
// ------------------------------------------------------------------------------------------------------------
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
  }
  return "unknown error";
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = simt::detail::last_error();
  simt::detail::last_error() = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return simt::detail::last_error(); }

inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : simt::detail::set_error(cudaErrorInvalidDevice); }
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int device) {
  if (device != 0) return simt::detail::set_error(cudaErrorInvalidDevice);
  switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = static_cast<int>(simt::kMaxDynamicShared); break;
    case cudaDevAttrClockRate: *v = 1000000; break;
    case cudaDevAttrMultiProcessorCount: *v = simt::kEmulatedSmCount; break;
    case cudaDevAttrComputeCapabilityMajor: *v = simt::kEmulatedMajor; break;
    case cudaDevAttrComputeCapabilityMinor: *v = simt::kEmulatedMinor; break;
    default: return simt::detail::set_error(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

inline cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  const std::size_t rounded = ((std::max<std::size_t>(bytes, 1) + 255) / 256) * 256;
  *p = std::aligned_alloc(256, rounded);
  if (!*p) return simt::detail::set_error(cudaErrorMemoryAllocation);
  auto& a = simt::detail::allocations();
  std::lock_guard<std::mutex> lk(a.m);
  a.live.insert(*p);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  auto& a = simt::detail::allocations();
  {
    std::lock_guard<std::mutex> lk(a.m);
    if (a.live.erase(p) == 0) return simt::detail::set_error(cudaErrorInvalidDevicePointer);
  }
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMallocHost(void** p, std::size_t bytes) {
  *p = std::aligned_alloc(256, ((std::max<std::size_t>(bytes, 1) + 255) / 256) * 256);
  return *p ? cudaSuccess : simt::detail::set_error(cudaErrorMemoryAllocation);
}
inline cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind) {
  if (bytes && (!dst || !src)) return simt::detail::set_error(cudaErrorInvalidValue);
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t = nullptr) {
  return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemset(void* dst, int value, std::size_t bytes) {
  if (bytes && !dst) return simt::detail::set_error(cudaErrorInvalidValue);
  if (bytes) std::memset(dst, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t = nullptr) {
  return cudaMemset(dst, value, bytes);
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
  *s = new CUstream_st{flags};
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{};
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
  e->when = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a->recorded || !b->recorded) return simt::detail::set_error(cudaErrorInvalidValue);
  *ms = std::chrono::duration<float, std::milli>(b->when - a->when).count();
  return cudaSuccess;
}

// ------------------------------------------------------------------------------------------------------------
// cuBLAS stand-in: the calls distill uses, with cuBLAS's column-major semantics and argument checks.
// ------------------------------------------------------------------------------------------------------------
enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };
struct cublasContext {
  cudaStream_t stream = nullptr;
};
using cublasHandle_t = cublasContext*;

inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new cublasContext{};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
inline const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
inline const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
  }
  return "unknown status";
}

namespace simt::detail {
/// Column-major C(m x n) = alpha * op(A) * op(B) + beta * C, as cuBLAS defines gemm (C not read if beta == 0).
template <class T>
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const T* alpha, const T* A, int lda, const T* B, int ldb, const T* beta, T* C, int ldc) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool tA = ta != CUBLAS_OP_N, tB = tb != CUBLAS_OP_N;
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, tA ? k : m) || ldb < std::max(1, tB ? n : k) ||
      ldc < std::max(1, m) || !alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const T a = *alpha, b = *beta;
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      T acc = T(0);
      if (a != T(0))
        for (int p = 0; p < k; ++p) {
          const T av = tA ? A[p + static_cast<std::size_t>(i) * lda] : A[i + static_cast<std::size_t>(p) * lda];
          const T bv = tB ? B[j + static_cast<std::size_t>(p) * ldb] : B[p + static_cast<std::size_t>(j) * ldb];
          acc += av * bv;
        }
      T& c = C[i + static_cast<std::size_t>(j) * ldc];
      c = (b == T(0)) ? a * acc : a * acc + b * c;
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}
template <class T>
cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                    int k, const T* alpha, const T* A, int lda, long long sA, const T* B, int ldb,
                                    long long sB, const T* beta, T* C, int ldc, long long sC, int batch) {
  if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  for (int i = 0; i < batch; ++i) {
    const cublasStatus_t s = gemm(h, ta, tb, m, n, k, alpha, A + i * sA, lda, B + i * sB, ldb, beta, C + i * sC, ldc);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace simt::detail

inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float* alpha, const float* A, int lda, const float* B, int ldb,
                                  const float* beta, float* C, int ldc) {
  return simt::detail::gemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t cublasDgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const double* alpha, const double* A, int lda, const double* B, int ldb,
                                  const double* beta, double* C, int ldc) {
  return simt::detail::gemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const float* alpha, const float* A, int lda,
                                                long long sA, const float* B, int ldb, long long sB,
                                                const float* beta, float* C, int ldc, long long sC, int batch) {
  return simt::detail::gemm_strided_batched(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
inline cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const double* alpha, const double* A, int lda,
                                                long long sA, const double* B, int ldb, long long sB,
                                                const double* beta, double* C, int ldc, long long sC, int batch) {
  return simt::detail::gemm_strided_batched(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
