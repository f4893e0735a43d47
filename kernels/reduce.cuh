// kernels/reduce.cuh -- deterministic reductions: sum of all elements, sums along axis 0 and along the last axis.
//
// Determinism: every partial is computed by a fixed thread over a fixed index set, and partials are combined
// in a fixed order (warp butterflies then warps in order); the block count depends only on the problem shape.
// Accumulation is in double for float and double inputs alike.
#pragma once

#include "context.cuh"
#include "launch.cuh"

namespace distill::kernels {

inline constexpr int kReduceThreads = 256;

/// Blocks of the first stage of sum(): one per 16 Ki elements, at most 256.
inline int sum_partial_blocks(index_t n) {
  return static_cast<int>(min_of<index_t>(max_of<index_t>(ceil_div(n, 16 * 1024), 1), 256));
}

template <class T>
__global__ void __launch_bounds__(kReduceThreads) sum_partials_kernel(const T* __restrict__ x, index_t n,
                                                                      double* __restrict__ partials) {
  double acc = 0;
  const index_t stride = static_cast<index_t>(gridDim.x) * kReduceThreads;
  for (index_t i = static_cast<index_t>(blockIdx.x) * kReduceThreads + threadIdx.x; i < n; i += stride) acc += x[i];
  acc = block_sum<kReduceThreads>(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

template <class T>
__global__ void __launch_bounds__(kReduceThreads) sum_final_kernel(const double* __restrict__ partials, int count,
                                                                   T* __restrict__ out, double alpha, int accumulate) {
  double acc = 0;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += kReduceThreads) acc += partials[i];
  acc = block_sum<kReduceThreads>(acc);
  if (threadIdx.x == 0) {
    const T v = static_cast<T>(alpha * acc);
    *out = accumulate ? *out + v : v;
  }
}

/// out[j] (+)= alpha * sum_i x[i, j]; thread j walks the rows in order (coalesced across j).
template <class T>
__global__ void __launch_bounds__(kReduceThreads) sum_axis0_kernel(const T* __restrict__ x, index_t rows, index_t cols,
                                                                   T* __restrict__ out, double alpha, int accumulate) {
  const index_t j = static_cast<index_t>(blockIdx.x) * kReduceThreads + threadIdx.x;
  if (j >= cols) return;
  double acc = 0;
  for (index_t i = 0; i < rows; ++i) acc += x[i * cols + j];
  const T v = static_cast<T>(alpha * acc);
  out[j] = accumulate ? out[j] + v : v;
}

/// out[i] (+)= alpha * sum_j x[i, j]; one warp per row (lanes stride over the row, then a butterfly).
template <class T>
__global__ void __launch_bounds__(kReduceThreads) sum_axis1_kernel(const T* __restrict__ x, index_t rows, index_t cols,
                                                                   T* __restrict__ out, double alpha, int accumulate) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const index_t row = static_cast<index_t>(blockIdx.x) * (kReduceThreads / kWarpSize) + threadIdx.x / kWarpSize;
  // Warps past the last row still take part in the shuffles below with zeros (no early exit before them).
  double acc = 0;
  if (row < rows)
    for (index_t j = lane; j < cols; j += kWarpSize) acc += x[row * cols + j];
  acc = warp_sum(acc);
  if (row < rows && lane == 0) {
    const T v = static_cast<T>(alpha * acc);
    out[row] = accumulate ? out[row] + v : v;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------
/// *out (+)= alpha * sum(x); `partials` holds sum_partial_blocks(n) doubles of scratch.
template <class T>
void sum(cudaStream_t s, const T* x, index_t n, T* out, double alpha, bool accumulate, double* partials) {
  DISTILL_CHECK(n >= 0, "sum: negative element count ", n);
  const int blocks = sum_partial_blocks(n);
  if (n > 0)
    launch("sum_partials_kernel", sum_partials_kernel<T>, {dim3(blocks), dim3(kReduceThreads), 0, s}, x, n, partials);
  launch("sum_final_kernel", sum_final_kernel<T>, {dim3(1), dim3(kReduceThreads), 0, s}, partials, n > 0 ? blocks : 0,
         out, alpha, accumulate ? 1 : 0);
}

template <class T>
void sum_axis0(cudaStream_t s, const T* x, index_t rows, index_t cols, T* out, double alpha, bool accumulate) {
  DISTILL_CHECK(rows >= 0 && cols >= 0, "sum_axis0: negative extent in [", rows, ", ", cols, "]");
  launch("sum_axis0_kernel", sum_axis0_kernel<T>,
         {dim3(static_cast<unsigned int>(ceil_div(cols, kReduceThreads))), dim3(kReduceThreads), 0, s}, x, rows, cols,
         out, alpha, accumulate ? 1 : 0);
}

template <class T>
void sum_axis1(cudaStream_t s, const T* x, index_t rows, index_t cols, T* out, double alpha, bool accumulate) {
  DISTILL_CHECK(rows >= 0 && cols >= 0, "sum_axis1: negative extent in [", rows, ", ", cols, "]");
  constexpr int rows_per_block = kReduceThreads / kWarpSize;
  DISTILL_CHECK(ceil_div(rows, rows_per_block) <= 2147483647, "sum_axis1: too many rows (", rows, ")");
  launch("sum_axis1_kernel", sum_axis1_kernel<T>,
         {dim3(static_cast<unsigned int>(ceil_div(rows, rows_per_block))), dim3(kReduceThreads), 0, s}, x, rows, cols,
         out, alpha, accumulate ? 1 : 0);
}

/// The entry point: *out (+)= alpha * sum(x), the partials in the context's scratch memory.
template <class T>
void sum(cuda::ContextState& st, const T* x, index_t n, T* out, T alpha, bool accumulate) {
  auto partials = st.scratch<double>(static_cast<std::size_t>(sum_partial_blocks(n)));
  sum<T>(st.stream(), x, n, out, static_cast<double>(alpha), accumulate, static_cast<double*>(partials.get()));
}

}  // namespace distill::kernels
