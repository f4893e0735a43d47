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

namespace distill {

template <class D>
class Context;

namespace cuda {

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
// Elementwise and activations (n elements; y may alias x/a where noted)
// ------------------------------------------------------------------------------------------------------------
template <Storable T>
void fill(Context<Cuda>& ctx, T* y, T value, index_t n);
template <Real T>
void scale(Context<Cuda>& ctx, T* y, const T* x, T alpha, index_t n);  // y = alpha x (y may be x)
template <Real T>
void axpy(Context<Cuda>& ctx, T* y, const T* x, T alpha, index_t n);  // y += alpha x
template <Real T>
void add(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n);  // y = a + b
template <Real T>
void sub(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n);  // y = a - b
template <Real T>
void mul(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n);  // y = a * b
template <Real T>
void div(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n);  // y = a / b (y may be a or b)
template <Real T>
void accumulate_product(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n);  // y += a * b
template <Real T>
void relu_forward(Context<Cuda>& ctx, T* y, const T* x, index_t n);  // y = max(x, 0) (y may be x)
/// dx (+)= (y > 0) * dy, from the forward *output* y (the gradient at 0 is 0, as in PyTorch).
template <Real T>
void relu_backward(Context<Cuda>& ctx, T* dx, const T* y, const T* dy, index_t n, bool accumulate);
/// y[o, c, i] += bias[c] for y of shape [outer, channels, inner] (Linear: inner = 1).
template <Real T>
void add_bias(Context<Cuda>& ctx, T* y, const T* bias, index_t outer, index_t channels, index_t inner);
/// y[i] += alpha * scalar[0] for a device scalar (the backward of a sum to a rank-0 tensor).
template <Real T>
void add_scalar(Context<Cuda>& ctx, T* y, const T* scalar, T alpha, index_t n);

// ------------------------------------------------------------------------------------------------------------
// Reductions (deterministic; accumulated in double)
// ------------------------------------------------------------------------------------------------------------
/// *out (+)= alpha * sum(x[0..n)), out a device scalar. Two launches: fixed per-block partials, then one block.
template <Real T>
void sum(Context<Cuda>& ctx, const T* x, index_t n, T* out, T alpha, bool accumulate);
/// alpha * sum(x) copied to the host (waits for the stream).
template <Real T>
double sum_to_host(Context<Cuda>& ctx, const T* x, index_t n, T alpha = T(1));
/// out[j] (+)= alpha * sum_i x[i, j] for x [rows, cols]: reduce axis 0 (e.g. a Linear bias gradient).
template <Real T>
void sum_axis0(Context<Cuda>& ctx, const T* x, index_t rows, index_t cols, T* out, T alpha, bool accumulate);
/// out[i] (+)= alpha * sum_j x[i, j] for x [rows, cols]: reduce the last axis (one warp per row).
template <Real T>
void sum_axis1(Context<Cuda>& ctx, const T* x, index_t rows, index_t cols, T* out, T alpha, bool accumulate);

// ------------------------------------------------------------------------------------------------------------
// Row-wise over x [rows, cols] (one warp per row; sums in double): softmax, log-softmax, L2 normalisation
// ------------------------------------------------------------------------------------------------------------
/// y = softmax(x) per row (max-shifted). cols >= 1 unless rows == 0.
template <Real T>
void softmax_rows(Context<Cuda>& ctx, const T* x, T* y, index_t rows, index_t cols);
/// y = x - logsumexp(x) per row.
template <Real T>
void log_softmax_rows(Context<Cuda>& ctx, const T* x, T* y, index_t rows, index_t cols);
/// dx (+)= y * (dy - <y, dy>) per row, from the forward output y.
template <Real T>
void softmax_rows_backward(Context<Cuda>& ctx, const T* y, const T* dy, T* dx, index_t rows, index_t cols,
                           bool accumulate);
/// dx (+)= dy - exp(y) * sum(dy) per row, from the forward output y.
template <Real T>
void log_softmax_rows_backward(Context<Cuda>& ctx, const T* y, const T* dy, T* dx, index_t rows, index_t cols,
                               bool accumulate);
/// y = x / max(||x||, eps) per row; norms [rows] = ||x|| (PyTorch's F.normalize).
template <Real T>
void l2_normalize_rows(Context<Cuda>& ctx, const T* x, T* y, T* norms, index_t rows, index_t cols, double eps);
/// dx (+)= (dy - y <y, dy>) / norm where norm > eps, else dy / eps.
template <Real T>
void l2_normalize_rows_backward(Context<Cuda>& ctx, const T* y, const T* norms, const T* dy, T* dx, index_t rows,
                                index_t cols, double eps, bool accumulate);

// ------------------------------------------------------------------------------------------------------------
// Losses of the core ops (fused per row; the loss is a device scalar, the backward reads the upstream gradient
// `grad_out` from device memory, so nothing waits for the host)
// ------------------------------------------------------------------------------------------------------------
/// Cross-entropy of logits x [rows, cols] with hard labels (int32, in [0, cols), checked by the caller) or soft
/// targets p [rows, cols] (exactly one of them non-null): writes lse [rows] and *out = alpha * sum_r loss_r.
template <Real T>
void cross_entropy_forward(Context<Cuda>& ctx, const T* x, const std::int32_t* labels, const T* p, index_t rows,
                           index_t cols, T* lse, T* out, double alpha);
/// dx (+)= s (exp(x - lse) - onehot) [hard] or s (sum(p) exp(x - lse) - p) [soft]; dp (+)= -s (x - lse) [soft];
/// s = alpha * grad_out[0]. dx and dp may be null.
template <Real T>
void cross_entropy_backward(Context<Cuda>& ctx, const T* x, const std::int32_t* labels, const T* p, const T* lse,
                            const T* grad_out, T alpha, T* dx, T* dp, index_t rows, index_t cols, bool accumulate);
/// *out = alpha * sum (a - b)^2 over n elements (fixed per-block partials in double).
template <Real T>
void squared_error_sum(Context<Cuda>& ctx, const T* a, const T* b, index_t n, T* out, double alpha);
/// da += k g (a - b), db -= k g (a - b) with g = grad_out[0]; either may be null; da may equal db.
template <Real T>
void squared_error_backward(Context<Cuda>& ctx, const T* a, const T* b, const T* grad_out, T k, T* da, T* db,
                            index_t n);

// ------------------------------------------------------------------------------------------------------------
// Fused contrastive and distillation losses (docs/losses.md for the maths, docs/cuda.md for the kernels)
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
/// Per row i of S: lse [n_rows] = log sum_{allowed j} exp S_ij (-inf without an allowed column). Soft-KL form
/// also teacher_lse (of Y) and cross = sum_j softmax(Y_i)_j (Y_ij - S_ij). All double.
template <Real T>
void similarity_stats(Context<Cuda>& ctx, const Similarity<T>& s, double* lse, double* teacher_lse, double* cross);
/// Coefficients of the backward (double, device): row side (alpha_i and the row statistics) and column side.
struct SimilarityCoefficients {
  const double* row_coef = nullptr;
  const double* row_lse = nullptr;
  const double* row_teacher_lse = nullptr;
  const double* col_coef = nullptr;
  const double* col_lse = nullptr;
  const double* col_teacher_lse = nullptr;
};
/// grad_rows [n_rows, dim] (+)= alpha * W cols with, over the allowed (i, j),
///   W_ij = row_coef_i exp(S_ij - row_lse_i) + col_coef_j exp(S_ij - col_lse_j)                        (contrastive)
///   W_ij = row_coef_i (exp(S_ij - row_lse_i) - exp(Y_ij - row_teacher_lse_i)) + col_coef_j (...)      (soft KL)
template <Real T>
void similarity_backward(Context<Cuda>& ctx, const Similarity<T>& s, const SimilarityCoefficients& c, T alpha,
                         T* grad_rows, bool accumulate);

/// out [classes, dim] (double) = per-class sums of the rows of z (optionally weighted), members of class c at
/// members[offsets[c] .. offsets[c+1]) summed in that order.
template <Real T>
void class_sums(Context<Cuda>& ctx, const T* z, index_t dim, const std::int32_t* offsets, const std::int32_t* members,
                index_t classes, const double* row_weight, double* out);
/// ell_i = lse_i - scale a_i.(C_{cls_i} - b_i) / npos_i (0 if npos_i == 0), wl_i = (w_i or 1) ell_i.
template <Real T>
void contrastive_row_loss(Context<Cuda>& ctx, const T* a, const T* b, index_t n, index_t dim, const double* class_sums,
                          const std::int32_t* cls, const std::int32_t* npos, const double* lse, double scale,
                          const T* weights, double* ell, double* weighted_ell);
/// out_i = (grad_out[0] or 1) * c0 * (factor_i or 1) * (weights_i or 1).
template <Real T>
void row_coefficients(Context<Cuda>& ctx, const T* grad_out, double c0, const double* factor, const T* weights,
                      index_t n, double* out);
/// h_i += k g [(C ? beta_i (C_c - b_i) : 0) + (W ? W_c - beta_i a_i : 0)], c = cls_i, g = grad_out[0].
template <Real T>
void contrastive_positive_grad(Context<Cuda>& ctx, T* h, index_t n, index_t dim, const std::int32_t* cls,
                               const double* beta, const double* C, const T* b, const double* W, const T* a,
                               const T* grad_out, double k);
/// out_i = alpha a_i . b_i (double).
template <Real T>
void rows_dot(Context<Cuda>& ctx, const T* a, const T* b, index_t n, index_t dim, double alpha, double* out);
/// out_i = ca a_i + cb b_i + cc c_i (b, c may be null).
void combine_rows(Context<Cuda>& ctx, const double* a, double ca, const double* b, double cb, const double* c,
                  double cc, index_t n, double* out);
/// MoCo: lse_i = logaddexp(lse_neg_i, pos_i), ell_i = lse_i - pos_i.
void moco_rows(Context<Cuda>& ctx, const double* lse_neg, const double* pos, index_t n, double* lse, double* ell);
/// c_i = k g (exp(pos_i - lse_i) - 1): hq_i += c_i k_i, hk_i += c_i q_i (either may be null).
template <Real T>
void moco_positive_grad(Context<Cuda>& ctx, const T* q, const T* k, index_t n, index_t dim, const double* pos,
                        const double* lse, const T* grad_out, double coef, T* hq, T* hk);
/// kl_i = cross_i - lse_y_i + lse_x_i (0 where lse_x is -inf), wkl_i = (w_i or 1) kl_i.
template <Real T>
void soft_kl_rows(Context<Cuda>& ctx, const double* lse_x, const double* lse_y, const double* cross, const T* weights,
                  index_t n, double* kl, double* wkl);
/// y_i += c0 g x_i (x double).
template <Real T>
void add_scaled_rows(Context<Cuda>& ctx, T* y, const double* x, const T* grad_out, double c0, index_t n);
/// y (+)= alpha g x, g = grad_out[0] (y may be x when not accumulating).
template <Real T>
void axpy_scaled(Context<Cuda>& ctx, T* y, const T* x, const T* grad_out, T alpha, index_t n, bool accumulate);
/// *out = alpha * sum of n doubles, in order.
template <Real T>
void sum_doubles(Context<Cuda>& ctx, const double* x, index_t n, T* out, double alpha);
/// KD-KL per row of s, t [rows, cols] at inverse temperature inv_t: kl_rows (double); ds = grad_scale (q - p) and
/// dt = grad_scale p (log p - log q - KL) written in the same kernel (either may be null).
template <Real T>
void kd_kl(Context<Cuda>& ctx, const T* s, const T* t, index_t rows, index_t cols, double inv_t, double grad_scale,
           double* kl_rows, T* ds, T* dt);
/// rows_i = ||n(a_i) - n(b_i)||^2 (double; n = F.normalize with eps).
template <Real T>
void normalized_mse_forward(Context<Cuda>& ctx, const T* a, const T* b, index_t n, index_t dim, double eps,
                            double* rows);
/// da += d/da, db += d/db of g sum_i rows_i (either may be null).
template <Real T>
void normalized_mse_backward(Context<Cuda>& ctx, const T* a, const T* b, index_t n, index_t dim, double eps,
                             const T* grad_out, T* da, T* db);

// ------------------------------------------------------------------------------------------------------------
// Global average pooling over time: [B, C, L] -> [B, C]
// ------------------------------------------------------------------------------------------------------------
template <Real T>
void global_avg_pool_forward(Context<Cuda>& ctx, const T* x, T* y, index_t batch, index_t channels, index_t length);
/// dx[b, c, t] (+)= dy[b, c] / length.
template <Real T>
void global_avg_pool_backward(Context<Cuda>& ctx, const T* dy, T* dx, index_t batch, index_t channels,
                              index_t length, bool accumulate);

// ------------------------------------------------------------------------------------------------------------
// BatchNorm1d over x [B, C, L] (statistics per channel over B*L values; PyTorch's semantics)
// ------------------------------------------------------------------------------------------------------------
struct BatchNormShape {
  index_t batch = 0, channels = 0, length = 1;
};
/// Training: y = (x - mean) * invstd * gamma + beta with batch statistics (biased variance); writes
/// save_mean/save_invstd [C] for the backward; if running_mean/var are non-null, updates them with `momentum`
/// (running_var with the unbiased variance). gamma/beta may be null (1 and 0). Needs batch*length > 1.
template <Real T>
void batch_norm_forward_train(Context<Cuda>& ctx, const BatchNormShape& s, const T* x, const T* gamma,
                              const T* beta, T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                              double momentum, double eps);
/// Evaluation: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
template <Real T>
void batch_norm_forward_eval(Context<Cuda>& ctx, const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T* y, double eps);
/// Training backward from the saved statistics. Any of dx, dgamma, dbeta may be null (not computed).
template <Real T>
void batch_norm_backward_train(Context<Cuda>& ctx, const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                               const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta, bool accumulate);
/// Evaluation backward (running statistics are constants). Any of dx, dgamma, dbeta may be null.
template <Real T>
void batch_norm_backward_eval(Context<Cuda>& ctx, const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                              const T* running_mean, const T* running_var, double eps, T* dx, T* dgamma, T* dbeta,
                              bool accumulate);

// ------------------------------------------------------------------------------------------------------------
// conv1d, stride 1, zero padding, optional dilation: direct implicit GEMM on [B, C, L] (no im2col buffer)
//   y[b, o, t] = bias[o] + sum_{c, u} w[o, c, u] * x[b, c, t + u*dilation - pad_left],   t in [0, out_length)
// The geometry (PyTorch's 'same' rule for even k, 'valid') comes from problems/conv1d.hpp. batch == 0 is an
// empty no-op (grad-weight then writes zeros unless accumulating).
// ------------------------------------------------------------------------------------------------------------
struct Conv1dShape {
  index_t batch = 0, in_channels = 0, out_channels = 0, length = 0;
  index_t kernel = 1, dilation = 1, pad_left = 0, out_length = 0;
  /// pad_right implied by out_length: out_length = length + pad_left + pad_right - dilation*(kernel-1).
  index_t pad_right() const noexcept { return out_length - length - pad_left + dilation * (kernel - 1); }
};
/// The kernels' view of a Conv1dGeometry.
inline Conv1dShape conv1d_shape(const Conv1dGeometry& g) noexcept {
  return Conv1dShape{g.B, g.Cin, g.Cout, g.L, g.K, g.dilation, g.pad_left, g.Lout};
}
/// The shape for padding Same / Valid at stride 1 (throws like conv1d_geometry for impossible shapes).
inline Conv1dShape conv1d_shape(index_t batch, index_t in_channels, index_t out_channels, index_t length, index_t kernel,
                                Padding padding, index_t dilation = 1) {
  return conv1d_shape(conv1d_geometry(batch, in_channels, out_channels, length, kernel, Conv1dOptions{padding, dilation}));
}

/// Which forward kernel runs: Auto picks SmallCin for in_channels <= 4, General otherwise.
enum class Conv1dAlgo { Auto, General, SmallCin };

/// y (+)= conv1d(x, w) + bias. bias may be null.
template <Real T>
void conv1d_forward(Context<Cuda>& ctx, const Conv1dShape& s, const T* x, const T* w, const T* bias, T* y,
                    bool accumulate = false, Conv1dAlgo algo = Conv1dAlgo::Auto);
/// dx (+)= grad-input: the same implicit GEMM with transposed, flipped weights and mirrored padding.
template <Real T>
void conv1d_backward_input(Context<Cuda>& ctx, const Conv1dShape& s, const T* dy, const T* w, T* dx,
                           bool accumulate);
/// dw (+)= sum_{b,t} dy[b,o,t] x[b,c,t+u*d-pad], dbias (+)= sum_{b,t} dy[b,o,t]; either may be null.
/// Split-K over (batch, time tiles) into a workspace, then a fixed-order reduction (deterministic).
template <Real T>
void conv1d_backward_weight(Context<Cuda>& ctx, const Conv1dShape& s, const T* x, const T* dy, T* dw, T* dbias,
                            bool accumulate);

// ------------------------------------------------------------------------------------------------------------
// Optimizer steps (PyTorch's update rules; one elementwise launch per parameter tensor)
// ------------------------------------------------------------------------------------------------------------
struct SgdConfig {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;  // momentum buffer initialised to the gradient (PyTorch's first step), else updated
};
/// param -= lr * d, d from grad (+ weight_decay * param) through the momentum buffer (may be null if momentum 0).
template <Real T>
void sgd_step(Context<Cuda>& ctx, T* param, const T* grad, T* momentum_buffer, index_t n, const SgdConfig& c);

struct AdamConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled_weight_decay = false;  // true: AdamW
  std::int64_t step = 1;                // 1-based step count after this update (bias corrections)
};
/// Adam / AdamW in cpu::adam_update's order of operations. amsgrad: pass max_exp_avg_sq (else null).
template <Real T>
void adam_step(Context<Cuda>& ctx, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, index_t n,
               const AdamConfig& c, T* max_exp_avg_sq = nullptr);
/// target = momentum * target + (1 - momentum) * source (momentum encoders); momentum 0 copies exactly.
template <Real T>
void ema_update(Context<Cuda>& ctx, T* target, const T* source, index_t n, double momentum);

// ------------------------------------------------------------------------------------------------------------
// GEMM through cuBLAS, in distill's row-major terms (the column-major mapping lives in kernels/gemm.cuh):
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C, A stored [M, K] (or [K, M] if trans_a), B stored
//   [K, N] (or [N, K] if trans_b); lda/ldb/ldc are row strides (0 = contiguous). beta == 0: C is not read.
// ------------------------------------------------------------------------------------------------------------
enum class Trans { N, T };
template <Real T>
void gemm(Context<Cuda>& ctx, Trans trans_a, Trans trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          const T* B, T beta, T* C, index_t lda = 0, index_t ldb = 0, index_t ldc = 0);
/// `batch` independent GEMMs; matrix i starts at A + i*stride_a etc. (contiguous rows).
template <Real T>
void gemm_strided_batched(Context<Cuda>& ctx, Trans trans_a, Trans trans_b, index_t M, index_t N, index_t K, T alpha,
                          const T* A, index_t stride_a, const T* B, index_t stride_b, T beta, T* C, index_t stride_c,
                          index_t batch);

}  // namespace cuda
}  // namespace distill
