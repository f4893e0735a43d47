// kernels/cross_entropy.cuh -- cross-entropy (hard labels, soft targets) and squared error, forward and backward.
//
// Cross-entropy is fused per row (one warp per row, as in rows.cuh): the forward computes the row's
// log-sum-exp and its loss in one pass over the logits and keeps only lse [rows] for the backward, which
// recomputes p = exp(x - lse) while writing the gradient: no softmax matrix is stored. Per-row losses go to a
// double workspace and are summed by one block in a fixed order (sum_final_kernel), so the batch mean is
// deterministic. The backward reads the upstream gradient from device memory (a rank-0 tensor): the host never
// waits for it.
//   hard:  loss_r = lse_r - x[r, label_r];           dx (+)= s * (exp(x - lse) - onehot(label))
//   soft:  loss_r = sum_k p[r,k] (lse_r - x[r,k]);   dx (+)= s * (sum(p_r) exp(x - lse) - p),  dp (+)= -s (x - lse)
//   with s = alpha * grad_out (alpha = 1 / rows for the batch mean).
// Squared error: sum (a - b)^2 by fixed per-block partials (reduce.cuh's scheme); backward da (+)= k g (a - b),
// db (-)= k g (a - b) with g the upstream gradient (device scalar).
#pragma once

#include "reduce.cuh"
#include "rows.cuh"

namespace distill::kernels {

/// Writes lse[row] and row_loss[row] (double). SOFT: targets p; else labels.
template <class T, bool SOFT>
__global__ void __launch_bounds__(kRowThreads)
    cross_entropy_forward_kernel(const T* __restrict__ x, const std::int32_t* __restrict__ labels,
                                 const T* __restrict__ p, index_t rows, index_t cols, T* __restrict__ lse_out,
                                 double* __restrict__ row_loss) {
  const index_t row = warp_row();
  if (row >= rows) return;
  const int lane = lane_id();
  const T* xr = x + row * cols;
  const T m = row_max(xr, cols, lane);
  const T lse = m + static_cast<T>(device_log(row_sum_exp(xr, cols, m, lane)));
  double loss;
  if constexpr (SOFT) {
    const T* pr = p + row * cols;
    double s = 0;
    for (index_t j = lane; j < cols; j += kWarpSize) s += static_cast<double>(pr[j] * (lse - xr[j]));
    loss = warp_sum(s);
  } else {
    loss = static_cast<double>(lse) - static_cast<double>(xr[labels[row]]);
  }
  if (lane == 0) {
    lse_out[row] = lse;
    row_loss[row] = loss;
  }
}

/// (No __launch_bounds__: with it ptxas 13 caps the double hard-label variant at 40 registers on sm_90 and spills.)
template <class T, bool SOFT>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ x, const std::int32_t* __restrict__ labels,
                                  const T* __restrict__ p, const T* __restrict__ lse, const T* __restrict__ grad_out,
                                  T alpha, T* __restrict__ dx, T* __restrict__ dp, index_t rows, index_t cols,
                                  int accumulate) {
  const index_t row = warp_row();
  if (row >= rows) return;
  const int lane = lane_id();
  const T* xr = x + row * cols;
  const T s = alpha * grad_out[0];
  const T l = lse[row];
  if constexpr (SOFT) {
    const T* pr = p + row * cols;
    if (dx) {  // uniform across the grid
      double ps = 0;
      for (index_t j = lane; j < cols; j += kWarpSize) ps += static_cast<double>(pr[j]);
      const T psum = static_cast<T>(warp_sum(ps));
      T* dr = dx + row * cols;
      for (index_t j = lane; j < cols; j += kWarpSize) {
        const T v = s * (psum * device_exp(xr[j] - l) - pr[j]);
        dr[j] = accumulate ? dr[j] + v : v;
      }
    }
    if (dp) {
      T* qr = dp + row * cols;
      for (index_t j = lane; j < cols; j += kWarpSize) {
        const T v = -s * (xr[j] - l);
        qr[j] = accumulate ? qr[j] + v : v;
      }
    }
  } else {
    const index_t label = labels[row];
    T* dr = dx + row * cols;
    for (index_t j = lane; j < cols; j += kWarpSize) {
      T v = s * device_exp(xr[j] - l);
      if (j == label) v -= s;
      dr[j] = accumulate ? dr[j] + v : v;
    }
  }
}

/// Per-block partial sums of (a - b)^2 in double (the first stage of sum(), reduce.cuh).
template <class T>
__global__ void __launch_bounds__(kReduceThreads) squared_diff_partials_kernel(const T* __restrict__ a,
                                                                               const T* __restrict__ b, index_t n,
                                                                               double* __restrict__ partials) {
  double acc = 0;
  const index_t stride = static_cast<index_t>(gridDim.x) * kReduceThreads;
  for (index_t i = static_cast<index_t>(blockIdx.x) * kReduceThreads + threadIdx.x; i < n; i += stride) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    acc += d * d;
  }
  acc = block_sum<kReduceThreads>(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

/// da (+)= k g (a - b), db (-)= k g (a - b); either may be null, and they may be the same buffer.
template <class T>
__global__ void squared_error_backward_kernel(const T* a, const T* b, const T* __restrict__ grad_out, T k, T* da,
                                              T* db, index_t n, int accumulate) {
  const T kg = k * grad_out[0];
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const T g = kg * (a[i] - b[i]);
    if (da) da[i] = accumulate ? da[i] + g : g;
    if (db) db[i] = accumulate ? db[i] - g : -g;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------
/// Cross-entropy forward: lse [rows], and *out (+)= alpha * sum_r loss_r. `labels` (hard) or `p` (soft) is used;
/// `row_loss` is a workspace of `rows` doubles.
template <class T>
void cross_entropy_forward(cudaStream_t s, const T* x, const std::int32_t* labels, const T* p, index_t rows,
                           index_t cols, T* lse, T* out, double alpha, double* row_loss) {
  DISTILL_CHECK(rows >= 1 && cols >= 1, "cross_entropy_forward: logits [", rows, ", ", cols, "] are empty");
  DISTILL_CHECK(rows <= 2147483647, "cross_entropy_forward: too many rows (", rows, ")");
  DISTILL_CHECK((labels == nullptr) != (p == nullptr),
                "cross_entropy_forward: pass either hard labels or soft targets, not both and not neither");
  const LaunchConfig cfg = row_launch("cross_entropy_forward", rows, cols, s);
  if (p) launch("cross_entropy_forward_kernel<soft>", cross_entropy_forward_kernel<T, true>, cfg, x, labels, p, rows,
                cols, lse, row_loss);
  else launch("cross_entropy_forward_kernel<hard>", cross_entropy_forward_kernel<T, false>, cfg, x, labels, p, rows,
              cols, lse, row_loss);
  launch("sum_final_kernel", sum_final_kernel<T>, {dim3(1), dim3(kReduceThreads), 0, s}, row_loss,
         static_cast<int>(rows), out, alpha, 0);
}

template <class T>
void cross_entropy_backward(cudaStream_t s, const T* x, const std::int32_t* labels, const T* p, const T* lse,
                            const T* grad_out, T alpha, T* dx, T* dp, index_t rows, index_t cols, bool accumulate) {
  DISTILL_CHECK((labels == nullptr) != (p == nullptr),
                "cross_entropy_backward: pass either hard labels or soft targets, not both and not neither");
  DISTILL_CHECK(p || !dp, "cross_entropy_backward: a target gradient needs soft targets");
  if (!dx && !dp) return;
  const LaunchConfig cfg = row_launch("cross_entropy_backward", rows, cols, s);
  if (p)
    launch("cross_entropy_backward_kernel<soft>", cross_entropy_backward_kernel<T, true>, cfg, x, labels, p, lse,
           grad_out, alpha, dx, dp, rows, cols, accumulate ? 1 : 0);
  else
    launch("cross_entropy_backward_kernel<hard>", cross_entropy_backward_kernel<T, false>, cfg, x, labels, p, lse,
           grad_out, alpha, dx, dp, rows, cols, accumulate ? 1 : 0);
}

/// *out = alpha * sum (a - b)^2; `partials` holds sum_partial_blocks(n) doubles.
template <class T>
void squared_error_sum(cudaStream_t s, const T* a, const T* b, index_t n, T* out, double alpha, double* partials) {
  DISTILL_CHECK(n >= 0, "squared_error_sum: negative element count ", n);
  const int blocks = sum_partial_blocks(n);
  if (n > 0)
    launch("squared_diff_partials_kernel", squared_diff_partials_kernel<T>, {dim3(blocks), dim3(kReduceThreads), 0, s},
           a, b, n, partials);
  launch("sum_final_kernel", sum_final_kernel<T>, {dim3(1), dim3(kReduceThreads), 0, s}, partials, n > 0 ? blocks : 0,
         out, alpha, 0);
}

template <class T>
void squared_error_backward(cudaStream_t s, const T* a, const T* b, const T* grad_out, T k, T* da, T* db, index_t n,
                            bool accumulate) {
  DISTILL_CHECK(n >= 0, "squared_error_backward: negative element count ", n);
  if (n == 0 || (!da && !db)) return;
  launch("squared_error_backward_kernel", squared_error_backward_kernel<T>,
         {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, a, b, grad_out, k, da, db, n, accumulate ? 1 : 0);
}

// The entry points, with their scratch from the context.
template <class T>
void cross_entropy_forward(cuda::ContextState& st, const T* x, const std::int32_t* labels, const T* p, index_t rows,
                           index_t cols, T* lse, T* out, double alpha) {
  auto row_loss = st.scratch<double>(static_cast<std::size_t>(rows > 0 ? rows : 1));
  cross_entropy_forward<T>(st.stream(), x, labels, p, rows, cols, lse, out, alpha, static_cast<double*>(row_loss.get()));
}
template <class T>
void squared_error_sum(cuda::ContextState& st, const T* a, const T* b, index_t n, T* out, double alpha) {
  auto partials = st.scratch<double>(static_cast<std::size_t>(sum_partial_blocks(n)));
  squared_error_sum<T>(st.stream(), a, b, n, out, alpha, static_cast<double*>(partials.get()));
}
template <class T>
void squared_error_backward(cudaStream_t s, const T* a, const T* b, const T* grad_out, T k, T* da, T* db, index_t n) {
  squared_error_backward<T>(s, a, b, grad_out, k, da, db, n, true);
}

}  // namespace distill::kernels
