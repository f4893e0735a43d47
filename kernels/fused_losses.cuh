// kernels/fused_losses.cuh -- the O(N D) and O(B K) parts of the fused contrastive and distillation losses (the O(N^2
// D) similarity passes are in contrastive_similarity.cuh): class sums, per-row losses, the positive-pair gradient
// terms, per-row coefficients that fold in the upstream gradient, MoCo's positive logit, the soft-KL row losses, KD-KL
// (one memory-bound kernel that writes the loss partials and the gradient in the forward pass) and the normalised MSE.
// Maths: docs/losses.md. Every reduction has a fixed order (deterministic); per-row values are double.
#pragma once

#include "reduce.cuh"
#include "rows.cuh"

namespace distill::kernels {

/// out[c, q] = sum over the members i of class c, in order, of (weight_i or 1) * z[i, q]. members are the rows of
/// each class, class c at members[offsets[c] .. offsets[c+1]). One thread per (class, column).
template <class T>
__global__ void class_sums_kernel(const T* __restrict__ z, index_t d, const std::int32_t* __restrict__ offsets,
                                  const std::int32_t* __restrict__ members, index_t classes,
                                  const double* __restrict__ weight, double* __restrict__ out) {
  for (index_t e = global_thread(); e < classes * d; e += grid_threads()) {
    const index_t c = e / d, q = e % d;
    double s = 0;
    for (std::int32_t m = offsets[c]; m < offsets[c + 1]; ++m) {
      const index_t i = members[m];
      s += (weight ? weight[i] : 1.0) * static_cast<double>(z[i * d + q]);
    }
    out[e] = s;
  }
}

/// The supervised-contrastive row loss for anchors a and contrast rows b (b == a for the self form):
///   ell_i = lse_i - scale * (a_i . (C_c - b_i)) / npos_i   (0 when npos_i == 0),  wl_i = w_i ell_i.
/// One warp per row.
template <class T>
__global__ void contrastive_row_loss_kernel(const T* __restrict__ a, const T* __restrict__ b, index_t n, index_t d,
                                            const double* __restrict__ csum, const std::int32_t* __restrict__ cls,
                                            const std::int32_t* __restrict__ npos, const double* __restrict__ lse,
                                            double scale, const T* __restrict__ w, double* __restrict__ ell,
                                            double* __restrict__ wl) {
  const index_t row = warp_row();
  if (row >= n) return;
  const int lane = lane_id();
  const T* ar = a + row * d;
  const T* br = b + row * d;
  const double* cr = csum + static_cast<index_t>(cls[row]) * d;
  double s = 0;
  for (index_t q = lane; q < d; q += kWarpSize) s += static_cast<double>(ar[q]) * (cr[q] - static_cast<double>(br[q]));
  s = warp_sum(s);
  if (lane == 0) {
    const double l = npos[row] > 0 ? lse[row] - scale * s / npos[row] : 0.0;
    ell[row] = l;
    wl[row] = (w ? static_cast<double>(w[row]) : 1.0) * l;
  }
}

/// out_i = (grad_out ? grad_out[0] : 1) * c0 * (factor ? factor_i : 1) * (w ? w_i : 1).
template <class T>
__global__ void row_coefficients_kernel(const T* __restrict__ grad_out, double c0, const double* __restrict__ factor,
                                        const T* __restrict__ w, index_t n, double* __restrict__ out) {
  const double g = grad_out ? static_cast<double>(grad_out[0]) : 1.0;
  for (index_t i = global_thread(); i < n; i += grid_threads())
    out[i] = g * c0 * (factor ? factor[i] : 1.0) * (w ? static_cast<double>(w[i]) : 1.0);
}

/// The positive-pair gradient terms of the supervised-contrastive losses, added to h [n, d]:
///   h_i += k g [ (C ? beta_i (C_c - b_i) : 0) + (W ? W_c - beta_i a_i : 0) ],  c = cls_i, g = grad_out[0].
/// self: a = b = z with both terms; cross anchors: C = class sums of b; cross contrast rows: W = weighted class sums
/// of a.
template <class T>
__global__ void contrastive_positive_grad_kernel(T* __restrict__ h, index_t n, index_t d,
                                                 const std::int32_t* __restrict__ cls, const double* __restrict__ beta,
                                                 const double* __restrict__ C, const T* __restrict__ b,
                                                 const double* __restrict__ W, const T* __restrict__ a,
                                                 const T* __restrict__ grad_out, double k) {
  const double kg = k * static_cast<double>(grad_out[0]);
  for (index_t e = global_thread(); e < n * d; e += grid_threads()) {
    const index_t i = e / d, q = e % d;
    const index_t c = cls[i];
    double v = 0;
    if (C) v += beta[i] * (C[c * d + q] - static_cast<double>(b[e]));
    if (W) v += W[c * d + q] - beta[i] * static_cast<double>(a[e]);
    h[e] += static_cast<T>(kg * v);
  }
}

/// out_i = alpha * a_i . b_i (double), one warp per row.
template <class T>
__global__ void rows_dot_kernel(const T* __restrict__ a, const T* __restrict__ b, index_t n, index_t d, double alpha,
                                double* __restrict__ out) {
  const index_t row = warp_row();
  if (row >= n) return;
  const int lane = lane_id();
  double s = 0;
  for (index_t q = lane; q < d; q += kWarpSize) s += static_cast<double>(a[row * d + q]) * b[row * d + q];
  s = warp_sum(s);
  if (lane == 0) out[row] = alpha * s;
}

/// out_i = ca a_i + cb b_i + cc c_i (any of b, c may be null).
template <class A>  // A = double (a template: a __global__ function in a header cannot be inline)
__global__ void combine_rows_kernel(const A* __restrict__ a, A ca, const A* __restrict__ b, A cb,
                                    const A* __restrict__ c, A cc, index_t n, A* __restrict__ out) {
  for (index_t i = global_thread(); i < n; i += grid_threads())
    out[i] = ca * a[i] + (b ? cb * b[i] : 0.0) + (c ? cc * c[i] : 0.0);
}

/// MoCo: lse_i = log(exp(lse_neg_i) + exp(pos_i)), ell_i = lse_i - pos_i.
template <class A>  // A = double
__global__ void moco_rows_kernel(const A* __restrict__ lse_neg, const A* __restrict__ pos, index_t n,
                                 A* __restrict__ lse, A* __restrict__ ell) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const double m = lse_neg[i] > pos[i] ? lse_neg[i] : pos[i];
    const double l = m + log(exp(lse_neg[i] - m) + exp(pos[i] - m));
    lse[i] = l;
    ell[i] = l - pos[i];
  }
}

/// MoCo's positive-logit gradient: c_i = k g (exp(pos_i - lse_i) - 1); hq_i += c_i kk_i, hk_i += c_i q_i (either null).
template <class T>
__global__ void moco_positive_grad_kernel(const T* __restrict__ q, const T* __restrict__ kk, index_t n, index_t d,
                                          const double* __restrict__ pos, const double* __restrict__ lse,
                                          const T* __restrict__ grad_out, double k, T* __restrict__ hq,
                                          T* __restrict__ hk) {
  const double kg = k * static_cast<double>(grad_out[0]);
  for (index_t e = global_thread(); e < n * d; e += grid_threads()) {
    const index_t i = e / d;
    const T c = static_cast<T>(kg * (exp(pos[i] - lse[i]) - 1.0));
    if (hq) hq[e] += c * kk[e];
    if (hk) hk[e] += c * q[e];
  }
}

/// Soft-KL rows: kl_i = cross_i - lse_y_i + lse_x_i (0 for a row without an allowed column), wkl_i = w_i kl_i.
template <class T>
__global__ void soft_kl_rows_kernel(const double* __restrict__ lse_x, const double* __restrict__ lse_y,
                                    const double* __restrict__ cross, const T* __restrict__ w, index_t n,
                                    double* __restrict__ kl, double* __restrict__ wkl) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const double v = lse_x[i] == -INFINITY ? 0.0 : cross[i] - lse_y[i] + lse_x[i];
    kl[i] = v;
    wkl[i] = (w ? static_cast<double>(w[i]) : 1.0) * v;
  }
}

/// y_i += c0 * g * x_i (double x; e.g. the weight gradient dL/dw_i = c0 g ell_i).
template <class T>
__global__ void add_scaled_rows_kernel(T* __restrict__ y, const double* __restrict__ x, const T* __restrict__ grad_out,
                                       double c0, index_t n) {
  const double s = c0 * static_cast<double>(grad_out[0]);
  for (index_t i = global_thread(); i < n; i += grid_threads()) y[i] += static_cast<T>(s * x[i]);
}

/// y (+)= alpha * g * x, g = grad_out[0]; with accumulate == false y = alpha * g * x (y may be x).
template <class T>
__global__ void axpy_scaled_kernel(T* y, const T* x, const T* __restrict__ grad_out, T alpha, index_t n,
                                   int accumulate) {
  const T s = alpha * grad_out[0];
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const T v = s * x[i];
    y[i] = accumulate ? y[i] + v : v;
  }
}

// ---------------------------------------------------------------------------------------------------------
// KD-KL: one block per row, three passes over the row (the second and third hit L1/L2): maxima of s and t;
// sum e^x, sum e^y, sum e^y (y - x); then ds = c (q - p) and dt = c p (log p - log q - KL) written in the forward.
// ---------------------------------------------------------------------------------------------------------
inline constexpr int kKdThreads = 128;

template <class A>
__device__ __forceinline__ A block_max(A v) {
  __shared__ A partial[kKdThreads / kWarpSize];
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize, warp = static_cast<int>(threadIdx.x) / kWarpSize;
  v = warp_max(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  A m = partial[0];
  for (int w = 1; w < kKdThreads / kWarpSize; ++w) m = partial[w] > m ? partial[w] : m;
  __syncthreads();
  return m;
}

/// The arithmetic follows cpu::fused::kd_kl_rows (maxima of the raw logits, (s - max) / T before exp, the cross term
/// from e^y (t - s)), so both devices round alike: e.g. a one-hot teacher's gradient is exactly 0 on both.
template <class T>
__global__ void __launch_bounds__(kKdThreads, 1)
    kd_kl_kernel(const T* __restrict__ s, const T* __restrict__ t, index_t cols, T inv_t, T grad_scale,
                 double* __restrict__ kl_rows, T* __restrict__ ds, T* __restrict__ dt) {
  const index_t row = blockIdx.x;
  const T* sr = s + row * cols;
  const T* tr = t + row * cols;
  T ms = static_cast<T>(-INFINITY), mt = static_cast<T>(-INFINITY);
  for (index_t j = threadIdx.x; j < cols; j += kKdThreads) {
    ms = sr[j] > ms ? sr[j] : ms;
    mt = tr[j] > mt ? tr[j] : mt;
  }
  ms = block_max(ms);
  mt = block_max(mt);
  double sx = 0, sy = 0, cr = 0;
  for (index_t j = threadIdx.x; j < cols; j += kKdThreads) {
    const T ey = device_exp((tr[j] - mt) * inv_t);
    sx += static_cast<double>(device_exp((sr[j] - ms) * inv_t));
    sy += static_cast<double>(ey);
    cr += static_cast<double>(ey * (tr[j] - sr[j]));
  }
  sx = block_sum<kKdThreads>(sx);
  sy = block_sum<kKdThreads>(sy);
  cr = block_sum<kKdThreads>(cr) * static_cast<double>(inv_t) / sy;
  const double lx = static_cast<double>(ms) * static_cast<double>(inv_t) + log(sx);
  const double ly = static_cast<double>(mt) * static_cast<double>(inv_t) + log(sy);
  const double kl = cr - ly + lx;
  if (threadIdx.x == 0) kl_rows[row] = kl;
  if (!ds && !dt) return;
  const T isx = static_cast<T>(1.0 / sx), isy = static_cast<T>(1.0 / sy), shift = static_cast<T>(ly - lx + kl);
  for (index_t j = threadIdx.x; j < cols; j += kKdThreads) {
    const T ey = device_exp((tr[j] - mt) * inv_t);
    if (ds) ds[row * cols + j] = grad_scale * (device_exp((sr[j] - ms) * inv_t) * isx - ey * isy);
    if (dt) dt[row * cols + j] = (grad_scale * isy) * ey * ((tr[j] - sr[j]) * inv_t - shift);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Normalised MSE: rows[i] = ||n(a_i) - n(b_i)||^2; backward h = 2 g (n(a) - n(b)) through each normalisation.
// ---------------------------------------------------------------------------------------------------------
/// Norm and inverse clamp of one row, on every lane.
template <class T>
__device__ __forceinline__ double row_norm(const T* x, index_t d, int lane) {
  double s = 0;
  for (index_t q = lane; q < d; q += kWarpSize) s += static_cast<double>(x[q]) * x[q];
  return device_sqrt(warp_sum(s));
}

template <class T>
__global__ void normalized_mse_forward_kernel(const T* __restrict__ a, const T* __restrict__ b, index_t n, index_t d,
                                              double eps, double* __restrict__ rows) {
  const index_t row = warp_row();
  if (row >= n) return;
  const int lane = lane_id();
  const T* ar = a + row * d;
  const T* br = b + row * d;
  const double na = row_norm(ar, d, lane), nb = row_norm(br, d, lane);
  const T ia = static_cast<T>(1.0 / (na > eps ? na : eps)), ib = static_cast<T>(1.0 / (nb > eps ? nb : eps));
  double s = 0;
  for (index_t q = lane; q < d; q += kWarpSize) {
    const double diff = static_cast<double>(ar[q] * ia) - static_cast<double>(br[q] * ib);
    s += diff * diff;
  }
  s = warp_sum(s);
  if (lane == 0) rows[row] = s;
}

/// Adds the gradient of a (da) and of b (db) (either null): with u = n(a), v = n(b), h = 2 g (u - v):
///   da += (h - u <u, h>) / ||a||  (h / eps when ||a|| <= eps),   db += (-h - v <v, -h>) / ||b||.
template <class T>
__global__ void normalized_mse_backward_kernel(const T* __restrict__ a, const T* __restrict__ b, index_t n, index_t d,
                                               double eps, const T* __restrict__ grad_out, T* __restrict__ da,
                                               T* __restrict__ db) {
  const index_t row = warp_row();
  if (row >= n) return;
  const int lane = lane_id();
  const T* ar = a + row * d;
  const T* br = b + row * d;
  const double na = row_norm(ar, d, lane), nb = row_norm(br, d, lane);
  const T ia = static_cast<T>(1.0 / (na > eps ? na : eps)), ib = static_cast<T>(1.0 / (nb > eps ? nb : eps));
  const T g2 = static_cast<T>(2) * grad_out[0];
  double uh = 0, vh = 0;  // <u, h>, <v, h>
  for (index_t q = lane; q < d; q += kWarpSize) {
    const T u = ar[q] * ia, v = br[q] * ib, h = g2 * (u - v);
    uh += static_cast<double>(u) * h;
    vh += static_cast<double>(v) * h;
  }
  uh = warp_sum(uh);
  vh = warp_sum(vh);
  for (index_t q = lane; q < d; q += kWarpSize) {
    const T u = ar[q] * ia, v = br[q] * ib, h = g2 * (u - v);
    if (da) da[row * d + q] += na > eps ? (h - u * static_cast<T>(uh)) * ia : h * ia;
    if (db) db[row * d + q] += nb > eps ? (-h + v * static_cast<T>(vh)) * ib : -h * ib;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------
inline LaunchConfig flat_launch(index_t n, cudaStream_t s) {
  return LaunchConfig{elementwise_grid(n), dim3(kElementwiseThreads), 0, s};
}

template <class T>
void class_sums(cudaStream_t s, const T* z, index_t d, const std::int32_t* offsets, const std::int32_t* members,
                index_t classes, const double* weight, double* out) {
  DISTILL_CHECK(d >= 1 && classes >= 0, "class_sums: invalid shape (", classes, " classes of width ", d, ")");
  if (classes == 0) return;
  launch("class_sums_kernel", class_sums_kernel<T>, flat_launch(classes * d, s), z, d, offsets, members, classes,
         weight, out);
}

template <class T>
void contrastive_row_loss(cudaStream_t s, const T* a, const T* b, index_t n, index_t d, const double* csum,
                          const std::int32_t* cls, const std::int32_t* npos, const double* lse, double scale,
                          const T* w, double* ell, double* wl) {
  launch("contrastive_row_loss_kernel", contrastive_row_loss_kernel<T>, row_launch("contrastive_row_loss", n, d, s), a,
         b, n, d, csum, cls, npos, lse, scale, w, ell, wl);
}

template <class T>
void row_coefficients(cudaStream_t s, const T* grad_out, double c0, const double* factor, const T* w, index_t n,
                      double* out) {
  if (n == 0) return;
  launch("row_coefficients_kernel", row_coefficients_kernel<T>, flat_launch(n, s), grad_out, c0, factor, w, n, out);
}

template <class T>
void contrastive_positive_grad(cudaStream_t s, T* h, index_t n, index_t d, const std::int32_t* cls,
                               const double* beta, const double* C, const T* b, const double* W, const T* a,
                               const T* grad_out, double k) {
  if (n * d == 0 || (!C && !W)) return;
  launch("contrastive_positive_grad_kernel", contrastive_positive_grad_kernel<T>, flat_launch(n * d, s), h, n, d, cls,
         beta, C, b, W, a, grad_out, k);
}

template <class T>
void rows_dot(cudaStream_t s, const T* a, const T* b, index_t n, index_t d, double alpha, double* out) {
  launch("rows_dot_kernel", rows_dot_kernel<T>, row_launch("rows_dot", n, d, s), a, b, n, d, alpha, out);
}

inline void combine_rows(cudaStream_t s, const double* a, double ca, const double* b, double cb, const double* c,
                         double cc, index_t n, double* out) {
  if (n == 0) return;
  launch("combine_rows_kernel", combine_rows_kernel<double>, flat_launch(n, s), a, ca, b, cb, c, cc, n, out);
}

inline void moco_rows(cudaStream_t s, const double* lse_neg, const double* pos, index_t n, double* lse, double* ell) {
  if (n == 0) return;
  launch("moco_rows_kernel", moco_rows_kernel<double>, flat_launch(n, s), lse_neg, pos, n, lse, ell);
}

template <class T>
void moco_positive_grad(cudaStream_t s, const T* q, const T* kk, index_t n, index_t d, const double* pos,
                        const double* lse, const T* grad_out, double k, T* hq, T* hk) {
  if (n * d == 0 || (!hq && !hk)) return;
  launch("moco_positive_grad_kernel", moco_positive_grad_kernel<T>, flat_launch(n * d, s), q, kk, n, d, pos, lse,
         grad_out, k, hq, hk);
}

template <class T>
void soft_kl_rows(cudaStream_t s, const double* lse_x, const double* lse_y, const double* cross, const T* w, index_t n,
                  double* kl, double* wkl) {
  if (n == 0) return;
  launch("soft_kl_rows_kernel", soft_kl_rows_kernel<T>, flat_launch(n, s), lse_x, lse_y, cross, w, n, kl, wkl);
}

template <class T>
void add_scaled_rows(cudaStream_t s, T* y, const double* x, const T* grad_out, double c0, index_t n) {
  if (n == 0) return;
  launch("add_scaled_rows_kernel", add_scaled_rows_kernel<T>, flat_launch(n, s), y, x, grad_out, c0, n);
}

template <class T>
void axpy_scaled(cudaStream_t s, T* y, const T* x, const T* grad_out, T alpha, index_t n, bool accumulate) {
  if (n == 0) return;
  launch("axpy_scaled_kernel", axpy_scaled_kernel<T>, flat_launch(n, s), y, x, grad_out, alpha, n,
         accumulate ? 1 : 0);
}

/// *out = alpha * sum of n doubles in order (one block; e.g. the batch mean of per-row losses).
template <class T>
void sum_doubles(cudaStream_t s, const double* x, index_t n, T* out, double alpha) {
  DISTILL_CHECK(n >= 0 && n <= 2147483647, "sum_doubles: invalid count ", n);
  launch("sum_final_kernel", sum_final_kernel<T>, {dim3(1), dim3(kReduceThreads), 0, s}, x, static_cast<int>(n), out,
         alpha, 0);
}

template <class T>
void kd_kl(cudaStream_t s, const T* st, const T* te, index_t rows, index_t cols, double inv_t, double grad_scale,
           double* kl_rows, T* ds, T* dt) {
  DISTILL_CHECK(rows >= 1 && cols >= 1 && rows <= 2147483647, "kd_kl: invalid logits [", rows, ", ", cols, "]");
  launch("kd_kl_kernel", kd_kl_kernel<T>, {dim3(static_cast<unsigned int>(rows)), dim3(kKdThreads), 0, s}, st, te, cols,
         static_cast<T>(inv_t), static_cast<T>(grad_scale), kl_rows, ds, dt);
}

template <class T>
void normalized_mse_forward(cudaStream_t s, const T* a, const T* b, index_t n, index_t d, double eps, double* rows) {
  launch("normalized_mse_forward_kernel", normalized_mse_forward_kernel<T>, row_launch("normalized_mse", n, d, s), a,
         b, n, d, eps, rows);
}

template <class T>
void normalized_mse_backward(cudaStream_t s, const T* a, const T* b, index_t n, index_t d, double eps,
                             const T* grad_out, T* da, T* db) {
  if (!da && !db) return;
  launch("normalized_mse_backward_kernel", normalized_mse_backward_kernel<T>,
         row_launch("normalized_mse_backward", n, d, s), a, b, n, d, eps, grad_out, da, db);
}

}  // namespace distill::kernels
