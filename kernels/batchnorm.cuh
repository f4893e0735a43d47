// kernels/batchnorm.cuh -- BatchNorm1d over [B, C, L]: training and evaluation, forward and backward.
//
// One reduction group per channel reduces its B*L values (two passes for the variance: mean first, then squared
// deviations, in double), so statistics are deterministic and no float atomics are used. The group is a warp for
// channels of at most kBatchNormWarpMaxValues values (8 channels per block: small batches, and the SIMT emulator,
// which pays for every block barrier, run ~8x fewer thread wake-ups) and a 256-thread block above that. Evaluation
// forward is elementwise. PyTorch's semantics: biased variance normalises, the unbiased one updates running_var.
#pragma once

#include "distill/cuda/api.hpp"
#include "elementwise.cuh"

namespace distill::kernels {

inline constexpr int kBatchNormThreads = 256;

struct BatchNormDims {
  int batch, channels, length;
};

/// Offset of the e-th value (e in [0, B*L)) of channel c.
__device__ __forceinline__ index_t bn_offset(const BatchNormDims& d, int c, int e) {
  const int b = e / d.length;
  const int t = e - b * d.length;
  return (static_cast<index_t>(b) * d.channels + c) * d.length + t;
}

/// Channels up to this many values (B*L) are reduced by one warp each (8 channels per block, shuffles only, no
/// block barrier); larger ones by a whole 256-thread block each. A function of the shape only: deterministic.
inline constexpr int kBatchNormWarpMaxValues = 2048;

/// The reduction group of a channel: a warp (GROUP == kWarpSize) or the block (GROUP == kBatchNormThreads).
template <int GROUP>
__device__ __forceinline__ int bn_channel() {
  if constexpr (GROUP == kWarpSize)
    return static_cast<int>(blockIdx.x) * (kBatchNormThreads / kWarpSize) + static_cast<int>(threadIdx.x) / kWarpSize;
  else
    return static_cast<int>(blockIdx.x);
}
template <int GROUP>
__device__ __forceinline__ int bn_rank() {
  return static_cast<int>(threadIdx.x) % GROUP;
}
/// Sum over the group, the same value on every member (fixed order: deterministic).
template <int GROUP, class A>
__device__ __forceinline__ A bn_sum(A v) {
  if constexpr (GROUP == kWarpSize) return warp_sum(v);
  else return block_sum<GROUP>(v);
}

template <class T, int GROUP>
__global__ void __launch_bounds__(kBatchNormThreads)
    batch_norm_forward_train_kernel(BatchNormDims d, const T* __restrict__ x, const T* __restrict__ gamma,
                                    const T* __restrict__ beta, T* __restrict__ y, T* __restrict__ save_mean,
                                    T* __restrict__ save_invstd, T* __restrict__ running_mean,
                                    T* __restrict__ running_var, double momentum, double eps) {
  const int c = bn_channel<GROUP>();
  if (GROUP == kWarpSize && c >= d.channels) return;  // whole warps only: no block barrier in this variant
  const int r = bn_rank<GROUP>();
  const int n = d.batch * d.length;
  double s = 0;
  for (int e = r; e < n; e += GROUP) s += x[bn_offset(d, c, e)];
  const double mean = bn_sum<GROUP>(s) / n;
  double q = 0;
  for (int e = r; e < n; e += GROUP) {
    const double dev = static_cast<double>(x[bn_offset(d, c, e)]) - mean;
    q += dev * dev;
  }
  const double var = bn_sum<GROUP>(q) / n;
  const double invstd = 1.0 / device_sqrt(var + eps);
  const T scale = static_cast<T>(invstd * (gamma ? static_cast<double>(gamma[c]) : 1.0));
  const T shift = beta ? beta[c] : T(0);
  const T m = static_cast<T>(mean);
  for (int e = r; e < n; e += GROUP) {
    const index_t i = bn_offset(d, c, e);
    y[i] = (x[i] - m) * scale + shift;
  }
  if (r == 0) {
    save_mean[c] = m;
    save_invstd[c] = static_cast<T>(invstd);
    if (running_mean) running_mean[c] = static_cast<T>((1.0 - momentum) * running_mean[c] + momentum * mean);
    if (running_var)
      running_var[c] = static_cast<T>((1.0 - momentum) * running_var[c] + momentum * var * n / (n - 1.0));
  }
}

template <class T>
__global__ void batch_norm_forward_eval_kernel(BatchNormDims d, const T* __restrict__ x, const T* __restrict__ gamma,
                                               const T* __restrict__ beta, const T* __restrict__ running_mean,
                                               const T* __restrict__ running_var, T* __restrict__ y, double eps,
                                               index_t n) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const int c = static_cast<int>((i / d.length) % d.channels);
    const T invstd = static_cast<T>(1.0 / device_sqrt(static_cast<double>(running_var[c]) + eps));
    const T scale = gamma ? gamma[c] * invstd : invstd;
    y[i] = (x[i] - running_mean[c]) * scale + (beta ? beta[c] : T(0));
  }
}

/// TRAIN: statistics are the saved batch mean/invstd and dx carries the batch-statistics terms.
/// EVAL: mean_or_rm / invstd_or_rv are running_mean / running_var and dx = dy * gamma * invstd.
template <class T, bool TRAIN, int GROUP>
__global__ void __launch_bounds__(kBatchNormThreads)
    batch_norm_backward_kernel(BatchNormDims d, const T* __restrict__ x, const T* __restrict__ dy,
                               const T* __restrict__ gamma, const T* __restrict__ mean_or_rm,
                               const T* __restrict__ invstd_or_rv, double eps, T* __restrict__ dx,
                               T* __restrict__ dgamma, T* __restrict__ dbeta, int accumulate) {
  const int c = bn_channel<GROUP>();
  if (GROUP == kWarpSize && c >= d.channels) return;  // whole warps only: no block barrier in this variant
  const int r = bn_rank<GROUP>();
  const int n = d.batch * d.length;
  const double mean = mean_or_rm[c];
  const double invstd = TRAIN ? static_cast<double>(invstd_or_rv[c])
                              : 1.0 / device_sqrt(static_cast<double>(invstd_or_rv[c]) + eps);
  const bool need_sums = TRAIN ? (dx || dgamma || dbeta) : (dgamma || dbeta);
  double sum_dy = 0, sum_dy_xhat = 0;
  if (need_sums) {  // uniform across the group: every member takes the same branch
    double a = 0, b = 0;
    for (int e = r; e < n; e += GROUP) {
      const index_t i = bn_offset(d, c, e);
      const double g = dy[i];
      a += g;
      b += g * (static_cast<double>(x[i]) - mean);
    }
    sum_dy = bn_sum<GROUP>(a);
    sum_dy_xhat = bn_sum<GROUP>(b) * invstd;
  }
  if (r == 0) {
    if (dgamma) dgamma[c] = static_cast<T>(accumulate ? dgamma[c] + sum_dy_xhat : sum_dy_xhat);
    if (dbeta) dbeta[c] = static_cast<T>(accumulate ? dbeta[c] + sum_dy : sum_dy);
  }
  if (!dx) return;
  const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
  const T k = static_cast<T>(g * invstd);
  const T m = static_cast<T>(mean);
  const T mean_dy = static_cast<T>(TRAIN ? sum_dy / n : 0.0);
  const T xhat_coef = static_cast<T>(TRAIN ? sum_dy_xhat / n * invstd : 0.0);  // times (x - mean)
  for (int e = r; e < n; e += GROUP) {
    const index_t i = bn_offset(d, c, e);
    T v;
    if constexpr (TRAIN) v = k * (dy[i] - mean_dy - (x[i] - m) * xhat_coef);
    else v = k * dy[i];
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------
inline BatchNormDims batch_norm_dims(const char* what, index_t batch, index_t channels, index_t length) {
  DISTILL_CHECK(batch >= 1 && channels >= 1 && length >= 1, what, ": invalid shape [", batch, ", ", channels, ", ",
                length, "]: every extent must be >= 1");
  DISTILL_CHECK(batch * channels * length < (index_t(1) << 31), what, ": shape [", batch, ", ", channels, ", ", length,
                "] has more than 2^31 - 1 elements");
  DISTILL_CHECK(channels <= 2147483647, what, ": too many channels (", channels, ")");
  return BatchNormDims{static_cast<int>(batch), static_cast<int>(channels), static_cast<int>(length)};
}

/// The warp-per-channel grid: 8 channels per 256-thread block.
inline LaunchConfig bn_warp_grid(index_t channels, cudaStream_t s) {
  constexpr int per_block = kBatchNormThreads / kWarpSize;
  return LaunchConfig{dim3(static_cast<unsigned int>(ceil_div(channels, per_block))), dim3(kBatchNormThreads), 0, s};
}

template <class T>
void batch_norm_forward_train(cudaStream_t s, index_t batch, index_t channels, index_t length, const T* x,
                              const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd, T* running_mean,
                              T* running_var, double momentum, double eps) {
  const BatchNormDims d = batch_norm_dims("batch_norm_forward_train", batch, channels, length);
  DISTILL_CHECK(batch * length > 1, "batch_norm_forward_train: expected more than 1 value per channel in training, got "
                "input of shape [", batch, ", ", channels, ", ", length, "]");
  DISTILL_CHECK((running_mean == nullptr) == (running_var == nullptr),
                "batch_norm_forward_train: running_mean and running_var must both be given or both be null");
  if (batch * length <= kBatchNormWarpMaxValues)
    launch("batch_norm_forward_train_kernel<warp per channel>", batch_norm_forward_train_kernel<T, kWarpSize>,
           bn_warp_grid(channels, s), d, x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var,
           momentum, eps);
  else
    launch("batch_norm_forward_train_kernel<block per channel>", batch_norm_forward_train_kernel<T, kBatchNormThreads>,
           {dim3(static_cast<unsigned int>(channels)), dim3(kBatchNormThreads), 0, s}, d, x, gamma, beta, y, save_mean,
           save_invstd, running_mean, running_var, momentum, eps);
}

template <class T>
void batch_norm_forward_eval(cudaStream_t s, index_t batch, index_t channels, index_t length, const T* x,
                             const T* gamma, const T* beta, const T* running_mean, const T* running_var, T* y,
                             double eps) {
  const BatchNormDims d = batch_norm_dims("batch_norm_forward_eval", batch, channels, length);
  const index_t n = batch * channels * length;
  launch("batch_norm_forward_eval_kernel", batch_norm_forward_eval_kernel<T>,
         {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, d, x, gamma, beta, running_mean, running_var, y, eps,
         n);
}

template <class T>
void batch_norm_backward(cudaStream_t s, bool train, index_t batch, index_t channels, index_t length, const T* x,
                         const T* dy, const T* gamma, const T* mean_or_rm, const T* invstd_or_rv, double eps, T* dx,
                         T* dgamma, T* dbeta, bool accumulate) {
  const BatchNormDims d = batch_norm_dims(train ? "batch_norm_backward_train" : "batch_norm_backward_eval", batch,
                                          channels, length);
  if (!dx && !dgamma && !dbeta) return;
  const int acc = accumulate ? 1 : 0;
  if (batch * length <= kBatchNormWarpMaxValues) {
    const LaunchConfig cfg = bn_warp_grid(channels, s);
    if (train)
      launch("batch_norm_backward_kernel<train, warp per channel>", batch_norm_backward_kernel<T, true, kWarpSize>,
             cfg, d, x, dy, gamma, mean_or_rm, invstd_or_rv, eps, dx, dgamma, dbeta, acc);
    else
      launch("batch_norm_backward_kernel<eval, warp per channel>", batch_norm_backward_kernel<T, false, kWarpSize>,
             cfg, d, x, dy, gamma, mean_or_rm, invstd_or_rv, eps, dx, dgamma, dbeta, acc);
  } else {
    const LaunchConfig cfg{dim3(static_cast<unsigned int>(channels)), dim3(kBatchNormThreads), 0, s};
    if (train)
      launch("batch_norm_backward_kernel<train, block per channel>",
             batch_norm_backward_kernel<T, true, kBatchNormThreads>, cfg, d, x, dy, gamma, mean_or_rm, invstd_or_rv, eps,
             dx, dgamma, dbeta, acc);
    else
      launch("batch_norm_backward_kernel<eval, block per channel>",
             batch_norm_backward_kernel<T, false, kBatchNormThreads>, cfg, d, x, dy, gamma, mean_or_rm, invstd_or_rv,
             eps, dx, dgamma, dbeta, acc);
  }
}

// The entry points (cuda::BatchNormShape of cuda/api.hpp).
template <class T>
void batch_norm_forward_train(cudaStream_t s, const cuda::BatchNormShape& sh, const T* x, const T* gamma,
                              const T* beta, T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                              double momentum, double eps) {
  batch_norm_forward_train<T>(s, sh.batch, sh.channels, sh.length, x, gamma, beta, y, save_mean, save_invstd,
                              running_mean, running_var, momentum, eps);
}
template <class T>
void batch_norm_forward_eval(cudaStream_t s, const cuda::BatchNormShape& sh, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T* y, double eps) {
  batch_norm_forward_eval<T>(s, sh.batch, sh.channels, sh.length, x, gamma, beta, running_mean, running_var, y, eps);
}
template <class T>
void batch_norm_backward_train(cudaStream_t s, const cuda::BatchNormShape& sh, const T* x, const T* dy, const T* gamma,
                               const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta, bool accumulate) {
  batch_norm_backward<T>(s, true, sh.batch, sh.channels, sh.length, x, dy, gamma, save_mean, save_invstd, 0.0, dx,
                         dgamma, dbeta, accumulate);
}
template <class T>
void batch_norm_backward_eval(cudaStream_t s, const cuda::BatchNormShape& sh, const T* x, const T* dy, const T* gamma,
                              const T* running_mean, const T* running_var, double eps, T* dx, T* dgamma, T* dbeta,
                              bool accumulate) {
  batch_norm_backward<T>(s, false, sh.batch, sh.channels, sh.length, x, dy, gamma, running_mean, running_var, eps, dx,
                         dgamma, dbeta, accumulate);
}

}  // namespace distill::kernels
