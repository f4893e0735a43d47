// kernels/distill_cuda.cu -- the one translation unit that defines distill/cuda/api.hpp: the runtime (devices,
// contexts, memory, events, copies) by hand, and every kernel entry point of distill/cuda/entry_points.inc by its
// registration line (a wrapper that calls the launcher kernels::name<T>, and the float / double instantiations).
//
// Real build:      nvcc compiles this file (CMake target distill::cuda, option DISTILL_CUDA=ON).
// Emulation build: the host compiler compiles it with DISTILL_SIMT_EMULATION defined (target distill::cuda_emu),
//                  through a one-line .cpp wrapper that includes it, so the SIMT emulator runs the same kernels.
// A header-only consumer compiles it once, through distill_add_cuda_library() (cmake/distillCuda.cmake).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "distill/cuda/api.hpp"
#include "distill/cuda/context.hpp"

#include "batchnorm.cuh"
#include "context.cuh"
#include "conv1d.cuh"
#include "elementwise.cuh"
#include "gemm.cuh"
#include "launch.cuh"
#include "cross_entropy.cuh"
#include "fused_losses.cuh"
#include "optim.cuh"
#include "pool.cuh"
#include "reduce.cuh"
#include "normalize.cuh"
#include "rows.cuh"
#include "softmax.cuh"
#include "contrastive_similarity.cuh"

namespace distill::cuda {

namespace {
ContextState& active(Context<Cuda>& ctx) {
  ContextState& s = ctx.state();
  s.activate();
  return s;
}
}  // namespace

// ---- runtime -------------------------------------------------------------------------------------------------
bool emulated() noexcept {
#if defined(DISTILL_SIMT_EMULATION)
  return true;
#else
  return false;
#endif
}

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

DeviceInfo device_info(int device) {
  const int count = device_count();
  DISTILL_CHECK(device >= 0 && device < count, "device_info: device ", device, " requested but ", count,
                " CUDA device(s) are present");
  DeviceInfo info;
  info.index = device;
  info.emulated = emulated();
  int smem = 0;
  DISTILL_CUDA_CHECK(cudaDeviceGetAttribute(&info.major, cudaDevAttrComputeCapabilityMajor, device));
  DISTILL_CUDA_CHECK(cudaDeviceGetAttribute(&info.minor, cudaDevAttrComputeCapabilityMinor, device));
  DISTILL_CUDA_CHECK(cudaDeviceGetAttribute(&info.sm_count, cudaDevAttrMultiProcessorCount, device));
  DISTILL_CUDA_CHECK(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlock, device));
  info.shared_memory_per_block = static_cast<std::size_t>(smem);
#if defined(DISTILL_SIMT_EMULATION)
  info.name = ::simt::kEmulatedDeviceName;
#else
  cudaDeviceProp prop{};
  DISTILL_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  info.name = prop.name;
  info.total_memory = prop.totalGlobalMem;
#endif
  return info;
}

std::string describe(const DeviceInfo& info) {
  char buf[160];
  if (info.emulated) {
    std::snprintf(buf, sizeof buf, "cuda:%d, emulated on the CPU by the SIMT emulator", info.index);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "cuda:%d ", info.index);
  std::string s(buf);
  s += info.name;
  std::snprintf(buf, sizeof buf, " (%.1f GiB, compute capability %d.%d, %d SMs)",
                double(info.total_memory) / double(1ull << 30), info.major, info.minor, info.sm_count);
  return s + buf;
}

std::shared_ptr<ContextState> create_context_state(int device) { return std::make_shared<ContextState>(device); }
const DeviceInfo& info(const ContextState& state) noexcept { return state.info(); }

void synchronize(Context<Cuda>& ctx) { DISTILL_CUDA_CHECK(cudaStreamSynchronize(active(ctx).stream())); }

// ---- memory --------------------------------------------------------------------------------------------------
std::shared_ptr<void> allocate(Context<Cuda>& ctx, std::size_t bytes) { return active(ctx).allocator().allocate(bytes); }

std::shared_ptr<void> allocate_pinned(std::size_t bytes) {
  void* p = nullptr;
  DISTILL_CUDA_CHECK(cudaMallocHost(&p, bytes == 0 ? 1 : bytes));
  return std::shared_ptr<void>(p, [](void* q) { (void)cudaFreeHost(q); });
}

std::shared_ptr<void> record_event(Context<Cuda>& ctx) {
  ContextState& s = active(ctx);
  cudaEvent_t e = nullptr;
  DISTILL_CUDA_CHECK(cudaEventCreate(&e));
  const cudaError_t r = cudaEventRecord(e, s.stream());
  if (r != cudaSuccess) {
    (void)cudaEventDestroy(e);
    DISTILL_CUDA_CHECK(r);
  }
  return std::shared_ptr<void>(static_cast<void*>(e), [](void* q) { (void)cudaEventDestroy(static_cast<cudaEvent_t>(q)); });
}
void wait_event(const std::shared_ptr<void>& event) {
  DISTILL_CHECK(event != nullptr, "wait_event: no event (record one with record_event)");
  DISTILL_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event.get())));
}

AllocatorStats allocator_stats(Context<Cuda>& ctx) { return ctx.state().allocator().stats(); }

void release_cached_memory(Context<Cuda>& ctx) {
  ContextState& s = active(ctx);
  DISTILL_CUDA_CHECK(cudaStreamSynchronize(s.stream()));
  s.allocator().release_cached();
}

void copy_to_device(Context<Cuda>& ctx, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  // From pageable memory the copy is staged before the call returns, so `src` may be reused immediately.
  DISTILL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, active(ctx).stream()));
}
void copy_to_host(Context<Cuda>& ctx, void* dst, const void* src, std::size_t bytes) {
  ContextState& s = active(ctx);
  if (bytes) DISTILL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s.stream()));
  DISTILL_CUDA_CHECK(cudaStreamSynchronize(s.stream()));
}
void copy_on_device(Context<Cuda>& ctx, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  DISTILL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, active(ctx).stream()));
}
void zero_bytes(Context<Cuda>& ctx, void* dst, std::size_t bytes) {
  if (bytes == 0) return;
  DISTILL_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, active(ctx).stream()));
}

// ---- the kernel entry points: one wrapper per line of distill/cuda/entry_points.inc ------------------------------
#define DISTILL_DEFAULT(value)
#define DISTILL_CUDA_REAL(R, name, params, args)                  \
  template <Real T>                                               \
  R name(Context<Cuda>& ctx, DISTILL_UNPAREN params) {            \
    return kernels::name<T>(active(ctx), DISTILL_UNPAREN args);   \
  }
#define DISTILL_CUDA_STORABLE(R, name, params, args)              \
  template <Storable T>                                           \
  R name(Context<Cuda>& ctx, DISTILL_UNPAREN params) {            \
    return kernels::name<T>(active(ctx), DISTILL_UNPAREN args);   \
  }
#define DISTILL_CUDA_PLAIN(R, name, params, args)                 \
  R name(Context<Cuda>& ctx, DISTILL_UNPAREN params) {            \
    return kernels::name(active(ctx), DISTILL_UNPAREN args);      \
  }
#include "distill/cuda/entry_points.inc"
#undef DISTILL_CUDA_REAL
#undef DISTILL_CUDA_STORABLE
#undef DISTILL_CUDA_PLAIN

template <Real T>
double sum_to_host(Context<Cuda>& ctx, const T* x, index_t n, T alpha) {
  auto out = allocate(ctx, sizeof(T));
  sum<T>(ctx, x, n, static_cast<T*>(out.get()), alpha, false);
  T host{};
  copy_to_host(ctx, &host, out.get(), sizeof(T));
  return static_cast<double>(host);
}
template double sum_to_host<float>(Context<Cuda>&, const float*, index_t, float);
template double sum_to_host<double>(Context<Cuda>&, const double*, index_t, double);

// ---- explicit instantiations: the registration lines again, with T spelled as each element type -----------------
// (T is a macro below, so the parameter lists of entry_points.inc become the instantiations' parameter lists.)
#define DISTILL_CUDA_REAL(R, name, params, args) template R name<T>(Context<Cuda> & ctx, DISTILL_UNPAREN params);
#define DISTILL_CUDA_STORABLE(R, name, params, args) template R name<T>(Context<Cuda> & ctx, DISTILL_UNPAREN params);
#define DISTILL_CUDA_PLAIN(R, name, params, args)
#define T float
#include "distill/cuda/entry_points.inc"
#undef T
#define T double
#include "distill/cuda/entry_points.inc"
#undef T
#undef DISTILL_CUDA_REAL
#define DISTILL_CUDA_REAL(R, name, params, args)
#define T std::int32_t
#include "distill/cuda/entry_points.inc"
#undef T
#define T std::int64_t
#include "distill/cuda/entry_points.inc"
#undef T
#undef DISTILL_CUDA_REAL
#undef DISTILL_CUDA_STORABLE
#undef DISTILL_CUDA_PLAIN
#undef DISTILL_DEFAULT

}  // namespace distill::cuda
