// distill/cuda/api.hpp -- host-visible entry points of the CUDA backend (plain C++: no CUDA types).
//
// Everything here is *defined* in one translation unit, kernels/distill_cuda.cu, which includes the kernel
// headers kernels/*.cuh. That TU is compiled either by nvcc (target distill::cuda, a real GPU) or by the host
// compiler against the SIMT emulator (target distill::cuda_emu: the same kernel source run on the CPU). A
// header-only consumer gets it through distill_add_cuda_library() (cmake/distillCuda.cmake, docs/cuda.md).
//
// Conventions
//   * Pointers are device pointers (memory from Context<Cuda>), row-major, contiguous, as on the CPU:
//     sequences [batch, channels, length], matrices [rows, cols], conv weights [Cout, Cin, K].
//   * Every call is enqueued on the context's stream and returns without waiting, except the copies to the host
//     and the *_to_host helpers, which wait for the stream. Results are deterministic: no float atomics;
//     reductions combine partials in a fixed order that depends only on the problem shape.
//   * `accumulate` selects out += result (autograd's convention for gradients) or out = result. With
//     accumulate == false an output is written without being read (NaN-poisoned outputs are fine).
//   * Shape preconditions are checked on the host before any launch and throw distill::Error naming the values;
//     a failed launch throws naming the kernel.
//   * Floating-point entry points exist for float and double (the `Real` concept); anything else fails to
//     compile with the concept's name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "distill/core/device.hpp"
#include "distill/core/shape.hpp"
#include "distill/problems/conv1d.hpp"
#include "distill/problems/kernels.hpp"

namespace distill {

template <class D>
class Context;

namespace cuda {

using ::distill::AdamConfig;  // problems/: the descriptors the Cpu backend takes too
using ::distill::Conv1dAlgo;
using ::distill::SgdConfig;
using ::distill::Trans;

/// Opaque per-context state: stream, cuBLAS handle, caching allocator (defined in kernels/context.cuh).
class ContextState;

/// Element types of the floating-point kernels.
template <class T>
concept Real = std::is_same_v<T, float> || std::is_same_v<T, double>;
/// Element types fill/copy support (labels and indices too).
template <class T>
concept Storable = Real<T> || std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t>;

// ------------------------------------------------------------------------------------------------------------
// Runtime, devices, contexts
// ------------------------------------------------------------------------------------------------------------
struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int sm_count = 0;
  std::size_t shared_memory_per_block = 0;
  std::size_t total_memory = 0;  // bytes of device memory (0 under the emulator, which uses host memory)
  bool emulated = false;         // true when this library is the SIMT emulation build
};
/// One line naming the device, for program headers and metrics: "cuda:0 NVIDIA H100 80GB HBM3 (79.1 GiB, compute
/// capability 9.0, 132 SMs)", or "cuda:0, emulated on the CPU by the SIMT emulator".
std::string describe(const DeviceInfo& info);

/// True in the emulation build (kernels run on the CPU), false in the nvcc build.
bool emulated() noexcept;
/// Number of usable devices: 0 when the driver or a GPU is missing (never throws); 1 under the emulator.
int device_count() noexcept;
/// Properties of `device`. Throws if it does not exist.
DeviceInfo device_info(int device);

/// Creates the state behind a Context<Cuda>: selects `device`, creates a non-blocking stream, a cuBLAS handle
/// bound to it (FP32 math, no TF32) and an empty caching allocator. Throws (naming the CUDA error) if unusable.
std::shared_ptr<ContextState> create_context_state(int device);
const DeviceInfo& info(const ContextState& state) noexcept;
/// Blocks until everything enqueued on the context's stream has finished; throws on an asynchronous error.
void synchronize(Context<Cuda>& ctx);

// ------------------------------------------------------------------------------------------------------------
// Memory: a per-context caching allocator (no cudaMalloc per call once warm). Blocks are reused in stream
// order, so a tensor freed while kernels that use it are still queued is safe to hand out again.
// ------------------------------------------------------------------------------------------------------------
/// `bytes` of device memory (256-byte aligned). The returned holder gives the block back to the cache.
std::shared_ptr<void> allocate(Context<Cuda>& ctx, std::size_t bytes);
/// Page-locked host memory (for staging frequent uploads). Freed with cudaFreeHost by the holder.
std::shared_ptr<void> allocate_pinned(std::size_t bytes);

struct AllocatorStats {
  std::size_t bytes_in_use = 0;     // handed out and not yet returned
  std::size_t bytes_cached = 0;     // returned, kept for reuse
  std::size_t peak_bytes_in_use = 0;
  std::size_t device_allocations = 0;  // cudaMalloc calls so far
  std::size_t requests = 0;            // allocate() calls so far
};
AllocatorStats allocator_stats(Context<Cuda>& ctx);
/// Frees the cached (unused) blocks (after synchronising the stream).
void release_cached_memory(Context<Cuda>& ctx);

/// An event recorded on the context's stream now (opaque; destroyed with the holder): it completes when the work
/// enqueued before it has finished.
std::shared_ptr<void> record_event(Context<Cuda>& ctx);
/// Blocks the calling host thread until `event` (from record_event) has completed.
void wait_event(const std::shared_ptr<void>& event);

/// Enqueues the copy on the context's stream. From pageable memory `host_src` may be reused at once; from pinned
/// memory (allocate_pinned) the copy runs asynchronously: keep the buffer until an event recorded after it is done.
void copy_to_device(Context<Cuda>& ctx, void* device_dst, const void* host_src, std::size_t bytes);
/// Waits for the stream, then for the copy.
void copy_to_host(Context<Cuda>& ctx, void* host_dst, const void* device_src, std::size_t bytes);
void copy_on_device(Context<Cuda>& ctx, void* device_dst, const void* device_src, std::size_t bytes);
void zero_bytes(Context<Cuda>& ctx, void* device_dst, std::size_t bytes);

// ------------------------------------------------------------------------------------------------------------
// Descriptors some entry points take (the others: Conv1dGeometry, Trans, SgdConfig, AdamConfig from problems/)
// ------------------------------------------------------------------------------------------------------------
/// S = scale * rows cols^T, never stored (kernels/contrastive_similarity.cuh: row-owner, flash-style, no atomics);
/// for the soft-KL form also Y = scale * teacher_rows teacher_cols^T. exclude_diagonal drops j == i (square only).
/// fixed_shift: |S| <= shift is known (unit rows), so no running maximum is needed.
template <Real T>
struct Similarity {
  const T* rows = nullptr;
  const T* cols = nullptr;
  index_t n_rows = 0, n_cols = 0, dim = 0;
  const T* teacher_rows = nullptr;
  const T* teacher_cols = nullptr;
  index_t teacher_dim = 0;
  double scale = 1;
  bool exclude_diagonal = false;
  bool fixed_shift = false;
  double shift = 0;
  int splits = 0;  // column ranges per row tile (a fixed-order combine merges them); 0 = by shape
};

/// The same similarity with rows and columns swapped (S^T), for the column-owner passes.
template <Real T>
Similarity<T> transposed(Similarity<T> s) {
  std::swap(s.rows, s.cols);
  std::swap(s.n_rows, s.n_cols);
  std::swap(s.teacher_rows, s.teacher_cols);
  return s;
}

/// Coefficients of the backward (double, device): row side (alpha_i and the row statistics) and column side.
struct SimilarityCoefficients {
  const double* row_coef = nullptr;
  const double* row_lse = nullptr;
  const double* row_teacher_lse = nullptr;
  const double* col_coef = nullptr;
  const double* col_lse = nullptr;
  const double* col_teacher_lse = nullptr;
};

struct BatchNormShape {
  index_t batch = 0, channels = 0, length = 1;
};

/// alpha * sum(x) copied to the host (waits for the stream).
template <Real T>
double sum_to_host(Context<Cuda>& ctx, const T* x, index_t n, T alpha = T(1));

// ------------------------------------------------------------------------------------------------------------
// The kernel entry points: one registration line each in cuda/entry_points.inc (documented there), declared here as
//   template <Real T> R name(Context<Cuda>& ctx, params...);
// ------------------------------------------------------------------------------------------------------------
#define DISTILL_UNPAREN(...) __VA_ARGS__
#define DISTILL_DEFAULT(value) = value
#define DISTILL_CUDA_REAL(R, name, params, args) template <Real T> R name(Context<Cuda>& ctx, DISTILL_UNPAREN params);
#define DISTILL_CUDA_STORABLE(R, name, params, args) \
  template <Storable T>                               \
  R name(Context<Cuda>& ctx, DISTILL_UNPAREN params);
#define DISTILL_CUDA_PLAIN(R, name, params, args) R name(Context<Cuda>& ctx, DISTILL_UNPAREN params);
#include "distill/cuda/entry_points.inc"
#undef DISTILL_CUDA_REAL
#undef DISTILL_CUDA_STORABLE
#undef DISTILL_CUDA_PLAIN
#undef DISTILL_DEFAULT

}  // namespace cuda
}  // namespace distill
