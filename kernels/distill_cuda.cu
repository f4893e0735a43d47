// kernels/distill_cuda.cu -- the one translation unit that defines distill/cuda/api.hpp.
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
#include "pooling.cuh"
#include "reduce.cuh"
#include "rows.cuh"
#include "contrastive_similarity.cuh"

namespace distill::cuda {

namespace {
ContextState& active(Context<Cuda>& ctx) {
  ContextState& s = ctx.state();
  s.activate();
  return s;
}
kernels::GemmTrans to_kernels(Trans t) { return t == Trans::N ? kernels::GemmTrans::N : kernels::GemmTrans::T; }
kernels::ConvProblem to_problem(const Conv1dShape& s) {
  return kernels::ConvProblem{s.batch,  s.in_channels, s.out_channels, s.length,
                              s.kernel, s.dilation,    s.pad_left,     s.out_length};
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

// ---- elementwise ---------------------------------------------------------------------------------------------
template <Storable T>
void fill(Context<Cuda>& ctx, T* y, T value, index_t n) {
  kernels::fill<T>(active(ctx).stream(), y, value, n);
}
template <Real T>
void scale(Context<Cuda>& ctx, T* y, const T* x, T alpha, index_t n) {
  kernels::unary<T, kernels::UnaryOp::Scale>(active(ctx).stream(), "scale_kernel", y, x, alpha, n);
}
template <Real T>
void axpy(Context<Cuda>& ctx, T* y, const T* x, T alpha, index_t n) {
  kernels::unary<T, kernels::UnaryOp::Axpy>(active(ctx).stream(), "axpy_kernel", y, x, alpha, n);
}
template <Real T>
void relu_forward(Context<Cuda>& ctx, T* y, const T* x, index_t n) {
  kernels::unary<T, kernels::UnaryOp::Relu>(active(ctx).stream(), "relu_forward_kernel", y, x, T(0), n);
}
template <Real T>
void add(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n) {
  kernels::binary<T, kernels::BinaryOp::Add>(active(ctx).stream(), "add_kernel", y, a, b, n);
}
template <Real T>
void sub(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n) {
  kernels::binary<T, kernels::BinaryOp::Sub>(active(ctx).stream(), "sub_kernel", y, a, b, n);
}
template <Real T>
void mul(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n) {
  kernels::binary<T, kernels::BinaryOp::Mul>(active(ctx).stream(), "mul_kernel", y, a, b, n);
}
template <Real T>
void div(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n) {
  kernels::binary<T, kernels::BinaryOp::Div>(active(ctx).stream(), "div_kernel", y, a, b, n);
}
template <Real T>
void accumulate_product(Context<Cuda>& ctx, T* y, const T* a, const T* b, index_t n) {
  kernels::binary<T, kernels::BinaryOp::AccumulateProduct>(active(ctx).stream(), "accumulate_product_kernel", y, a, b,
                                                           n);
}
template <Real T>
void relu_backward(Context<Cuda>& ctx, T* dx, const T* y, const T* dy, index_t n, bool accumulate) {
  kernels::relu_backward<T>(active(ctx).stream(), dx, y, dy, n, accumulate);
}
template <Real T>
void add_bias(Context<Cuda>& ctx, T* y, const T* bias, index_t outer, index_t channels, index_t inner) {
  kernels::add_bias<T>(active(ctx).stream(), y, bias, outer, channels, inner);
}

template <Real T>
void add_scalar(Context<Cuda>& ctx, T* y, const T* scalar, T alpha, index_t n) {
  kernels::add_scalar<T>(active(ctx).stream(), y, scalar, alpha, n);
}

// ---- row-wise: softmax, log-softmax, L2 normalisation -----------------------------------------------------
template <Real T>
void softmax_rows(Context<Cuda>& ctx, const T* x, T* y, index_t rows, index_t cols) {
  kernels::softmax_rows<T>(active(ctx).stream(), x, y, rows, cols, false);
}
template <Real T>
void log_softmax_rows(Context<Cuda>& ctx, const T* x, T* y, index_t rows, index_t cols) {
  kernels::softmax_rows<T>(active(ctx).stream(), x, y, rows, cols, true);
}
template <Real T>
void softmax_rows_backward(Context<Cuda>& ctx, const T* y, const T* dy, T* dx, index_t rows, index_t cols,
                           bool accumulate) {
  kernels::softmax_rows_backward<T>(active(ctx).stream(), y, dy, dx, rows, cols, false, accumulate);
}
template <Real T>
void log_softmax_rows_backward(Context<Cuda>& ctx, const T* y, const T* dy, T* dx, index_t rows, index_t cols,
                               bool accumulate) {
  kernels::softmax_rows_backward<T>(active(ctx).stream(), y, dy, dx, rows, cols, true, accumulate);
}
template <Real T>
void l2_normalize_rows(Context<Cuda>& ctx, const T* x, T* y, T* norms, index_t rows, index_t cols, double eps) {
  kernels::l2_normalize_rows<T>(active(ctx).stream(), x, y, norms, rows, cols, eps);
}
template <Real T>
void l2_normalize_rows_backward(Context<Cuda>& ctx, const T* y, const T* norms, const T* dy, T* dx, index_t rows,
                                index_t cols, double eps, bool accumulate) {
  kernels::l2_normalize_rows_backward<T>(active(ctx).stream(), y, norms, dy, dx, rows, cols, eps, accumulate);
}

// ---- losses of the core ops ----------------------------------------------------------------------------------
template <Real T>
void cross_entropy_forward(Context<Cuda>& ctx, const T* x, const std::int32_t* labels, const T* p, index_t rows,
                           index_t cols, T* lse, T* out, double alpha) {
  ContextState& s = active(ctx);
  auto row_loss = s.scratch<double>(static_cast<std::size_t>(rows > 0 ? rows : 1));
  kernels::cross_entropy_forward<T>(s.stream(), x, labels, p, rows, cols, lse, out, alpha,
                                    static_cast<double*>(row_loss.get()));
}
template <Real T>
void cross_entropy_backward(Context<Cuda>& ctx, const T* x, const std::int32_t* labels, const T* p, const T* lse,
                            const T* grad_out, T alpha, T* dx, T* dp, index_t rows, index_t cols, bool accumulate) {
  kernels::cross_entropy_backward<T>(active(ctx).stream(), x, labels, p, lse, grad_out, alpha, dx, dp, rows, cols,
                                     accumulate);
}
template <Real T>
void squared_error_sum(Context<Cuda>& ctx, const T* a, const T* b, index_t n, T* out, double alpha) {
  ContextState& s = active(ctx);
  auto partials = s.scratch<double>(static_cast<std::size_t>(kernels::sum_partial_blocks(n)));
  kernels::squared_error_sum<T>(s.stream(), a, b, n, out, alpha, static_cast<double*>(partials.get()));
}
template <Real T>
void squared_error_backward(Context<Cuda>& ctx, const T* a, const T* b, const T* grad_out, T k, T* da, T* db,
                            index_t n) {
  kernels::squared_error_backward<T>(active(ctx).stream(), a, b, grad_out, k, da, db, n, true);
}

// ---- fused contrastive / distillation losses --------------------------------------------------------------
namespace {
template <class T>
kernels::SimArgs<T> sim_args(const Similarity<T>& s) {
  return kernels::SimArgs<T>{s.rows,         s.cols,        s.n_rows,
                             s.n_cols,       s.dim,         s.teacher_rows,
                             s.teacher_cols, s.teacher_dim, static_cast<T>(s.scale),
                             s.exclude_diagonal ? 1 : 0,    s.fixed_shift ? 1 : 0, static_cast<T>(s.shift)};
}
}  // namespace

template <Real T>
void similarity_stats(Context<Cuda>& ctx, const Similarity<T>& s, double* lse, double* teacher_lse, double* cross) {
  ContextState& st = active(ctx);
  const kernels::SimPlan plan = kernels::sim_plan<T>(s.n_rows, s.n_cols, s.splits);
  const int per = s.teacher_rows ? kernels::kSimStats<true> : kernels::kSimStats<false>;
  auto part = st.scratch<double>(static_cast<std::size_t>(plan.splits * (s.n_rows > 0 ? s.n_rows : 1) * per));
  kernels::sim_forward<T>(st.stream(), sim_args(s), plan, static_cast<double*>(part.get()), lse, teacher_lse, cross);
}
template <Real T>
void similarity_backward(Context<Cuda>& ctx, const Similarity<T>& s, const SimilarityCoefficients& c, T alpha,
                         T* grad_rows, bool accumulate) {
  ContextState& st = active(ctx);
  const kernels::SimPlan plan = kernels::sim_plan<T>(s.n_rows, s.n_cols, s.splits);
  auto part = st.scratch<T>(static_cast<std::size_t>(plan.splits * (s.n_rows > 0 ? s.n_rows : 1) * s.dim));
  const kernels::SimCoef cf{c.row_coef, c.row_lse, c.row_teacher_lse, c.col_coef, c.col_lse, c.col_teacher_lse};
  kernels::sim_backward<T>(st.stream(), sim_args(s), cf, plan, static_cast<T*>(part.get()), alpha, grad_rows,
                           accumulate);
}
template <Real T>
void class_sums(Context<Cuda>& ctx, const T* z, index_t dim, const std::int32_t* offsets, const std::int32_t* members,
                index_t classes, const double* row_weight, double* out) {
  kernels::class_sums<T>(active(ctx).stream(), z, dim, offsets, members, classes, row_weight, out);
}
template <Real T>
void contrastive_row_loss(Context<Cuda>& ctx, const T* a, const T* b, index_t n, index_t dim, const double* csum,
                          const std::int32_t* cls, const std::int32_t* npos, const double* lse, double scale,
                          const T* weights, double* ell, double* weighted_ell) {
  kernels::contrastive_row_loss<T>(active(ctx).stream(), a, b, n, dim, csum, cls, npos, lse, scale, weights, ell,
                                   weighted_ell);
}
template <Real T>
void row_coefficients(Context<Cuda>& ctx, const T* grad_out, double c0, const double* factor, const T* weights,
                      index_t n, double* out) {
  kernels::row_coefficients<T>(active(ctx).stream(), grad_out, c0, factor, weights, n, out);
}
template <Real T>
void contrastive_positive_grad(Context<Cuda>& ctx, T* h, index_t n, index_t dim, const std::int32_t* cls,
                               const double* beta, const double* C, const T* b, const double* W, const T* a,
                               const T* grad_out, double k) {
  kernels::contrastive_positive_grad<T>(active(ctx).stream(), h, n, dim, cls, beta, C, b, W, a, grad_out, k);
}
template <Real T>
void rows_dot(Context<Cuda>& ctx, const T* a, const T* b, index_t n, index_t dim, double alpha, double* out) {
  kernels::rows_dot<T>(active(ctx).stream(), a, b, n, dim, alpha, out);
}
void combine_rows(Context<Cuda>& ctx, const double* a, double ca, const double* b, double cb, const double* c,
                  double cc, index_t n, double* out) {
  kernels::combine_rows(active(ctx).stream(), a, ca, b, cb, c, cc, n, out);
}
void moco_rows(Context<Cuda>& ctx, const double* lse_neg, const double* pos, index_t n, double* lse, double* ell) {
  kernels::moco_rows(active(ctx).stream(), lse_neg, pos, n, lse, ell);
}
template <Real T>
void moco_positive_grad(Context<Cuda>& ctx, const T* q, const T* k, index_t n, index_t dim, const double* pos,
                        const double* lse, const T* grad_out, double coef, T* hq, T* hk) {
  kernels::moco_positive_grad<T>(active(ctx).stream(), q, k, n, dim, pos, lse, grad_out, coef, hq, hk);
}
template <Real T>
void soft_kl_rows(Context<Cuda>& ctx, const double* lse_x, const double* lse_y, const double* cross, const T* weights,
                  index_t n, double* kl, double* wkl) {
  kernels::soft_kl_rows<T>(active(ctx).stream(), lse_x, lse_y, cross, weights, n, kl, wkl);
}
template <Real T>
void add_scaled_rows(Context<Cuda>& ctx, T* y, const double* x, const T* grad_out, double c0, index_t n) {
  kernels::add_scaled_rows<T>(active(ctx).stream(), y, x, grad_out, c0, n);
}
template <Real T>
void axpy_scaled(Context<Cuda>& ctx, T* y, const T* x, const T* grad_out, T alpha, index_t n, bool accumulate) {
  kernels::axpy_scaled<T>(active(ctx).stream(), y, x, grad_out, alpha, n, accumulate);
}
template <Real T>
void sum_doubles(Context<Cuda>& ctx, const double* x, index_t n, T* out, double alpha) {
  kernels::sum_doubles<T>(active(ctx).stream(), x, n, out, alpha);
}
template <Real T>
void kd_kl(Context<Cuda>& ctx, const T* s, const T* t, index_t rows, index_t cols, double inv_t, double grad_scale,
           double* kl_rows, T* ds, T* dt) {
  kernels::kd_kl<T>(active(ctx).stream(), s, t, rows, cols, inv_t, grad_scale, kl_rows, ds, dt);
}
template <Real T>
void normalized_mse_forward(Context<Cuda>& ctx, const T* a, const T* b, index_t n, index_t dim, double eps,
                            double* rows) {
  kernels::normalized_mse_forward<T>(active(ctx).stream(), a, b, n, dim, eps, rows);
}
template <Real T>
void normalized_mse_backward(Context<Cuda>& ctx, const T* a, const T* b, index_t n, index_t dim, double eps,
                             const T* grad_out, T* da, T* db) {
  kernels::normalized_mse_backward<T>(active(ctx).stream(), a, b, n, dim, eps, grad_out, da, db);
}

// ---- reductions ----------------------------------------------------------------------------------------------
template <Real T>
void sum(Context<Cuda>& ctx, const T* x, index_t n, T* out, T alpha, bool accumulate) {
  ContextState& s = active(ctx);
  auto partials = s.scratch<double>(static_cast<std::size_t>(kernels::sum_partial_blocks(n)));
  kernels::sum<T>(s.stream(), x, n, out, static_cast<double>(alpha), accumulate, static_cast<double*>(partials.get()));
}
template <Real T>
double sum_to_host(Context<Cuda>& ctx, const T* x, index_t n, T alpha) {
  auto out = allocate(ctx, sizeof(T));
  sum<T>(ctx, x, n, static_cast<T*>(out.get()), alpha, false);
  T host{};
  copy_to_host(ctx, &host, out.get(), sizeof(T));
  return static_cast<double>(host);
}
template <Real T>
void sum_axis0(Context<Cuda>& ctx, const T* x, index_t rows, index_t cols, T* out, T alpha, bool accumulate) {
  kernels::sum_axis0<T>(active(ctx).stream(), x, rows, cols, out, static_cast<double>(alpha), accumulate);
}
template <Real T>
void sum_axis1(Context<Cuda>& ctx, const T* x, index_t rows, index_t cols, T* out, T alpha, bool accumulate) {
  kernels::sum_axis1<T>(active(ctx).stream(), x, rows, cols, out, static_cast<double>(alpha), accumulate);
}

// ---- pooling -------------------------------------------------------------------------------------------------
template <Real T>
void global_avg_pool_forward(Context<Cuda>& ctx, const T* x, T* y, index_t batch, index_t channels, index_t length) {
  kernels::global_avg_pool_forward<T>(active(ctx).stream(), x, y, batch, channels, length);
}
template <Real T>
void global_avg_pool_backward(Context<Cuda>& ctx, const T* dy, T* dx, index_t batch, index_t channels, index_t length,
                              bool accumulate) {
  kernels::global_avg_pool_backward<T>(active(ctx).stream(), dy, dx, batch, channels, length, accumulate);
}

// ---- batch norm ----------------------------------------------------------------------------------------------
template <Real T>
void batch_norm_forward_train(Context<Cuda>& ctx, const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                              T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var, double momentum,
                              double eps) {
  kernels::batch_norm_forward_train<T>(active(ctx).stream(), s.batch, s.channels, s.length, x, gamma, beta, y,
                                       save_mean, save_invstd, running_mean, running_var, momentum, eps);
}
template <Real T>
void batch_norm_forward_eval(Context<Cuda>& ctx, const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T* y, double eps) {
  kernels::batch_norm_forward_eval<T>(active(ctx).stream(), s.batch, s.channels, s.length, x, gamma, beta,
                                      running_mean, running_var, y, eps);
}
template <Real T>
void batch_norm_backward_train(Context<Cuda>& ctx, const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                               const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta, bool accumulate) {
  kernels::batch_norm_backward<T>(active(ctx).stream(), true, s.batch, s.channels, s.length, x, dy, gamma, save_mean,
                                  save_invstd, 0.0, dx, dgamma, dbeta, accumulate);
}
template <Real T>
void batch_norm_backward_eval(Context<Cuda>& ctx, const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                              const T* running_mean, const T* running_var, double eps, T* dx, T* dgamma, T* dbeta,
                              bool accumulate) {
  kernels::batch_norm_backward<T>(active(ctx).stream(), false, s.batch, s.channels, s.length, x, dy, gamma,
                                  running_mean, running_var, eps, dx, dgamma, dbeta, accumulate);
}

// ---- conv1d --------------------------------------------------------------------------------------------------
template <Real T>
void conv1d_forward(Context<Cuda>& ctx, const Conv1dShape& s, const T* x, const T* w, const T* bias, T* y,
                    bool accumulate, Conv1dAlgo algo) {
  const bool small = algo == Conv1dAlgo::SmallCin || (algo == Conv1dAlgo::Auto && s.in_channels <= 4);
  if (s.batch == 0) return;
  kernels::conv1d_forward<T>(active(ctx).stream(), to_problem(s), x, w, bias, y, accumulate, small);
}
template <Real T>
void conv1d_backward_input(Context<Cuda>& ctx, const Conv1dShape& s, const T* dy, const T* w, T* dx, bool accumulate) {
  if (s.batch == 0) return;
  kernels::conv1d_backward_input<T>(active(ctx).stream(), to_problem(s), dy, w, dx, accumulate);
}
template <Real T>
void conv1d_backward_weight(Context<Cuda>& ctx, const Conv1dShape& s, const T* x, const T* dy, T* dw, T* dbias,
                            bool accumulate) {
  if (s.batch == 0) {  // no terms: the gradient is zero
    if (!accumulate && dw) zero_bytes(ctx, dw, sizeof(T) * static_cast<std::size_t>(s.out_channels * s.in_channels * s.kernel));
    if (!accumulate && dbias) zero_bytes(ctx, dbias, sizeof(T) * static_cast<std::size_t>(s.out_channels));
    return;
  }
  const kernels::ConvProblem p = to_problem(s);
  const kernels::WgradPlan plan = kernels::wgrad_plan<T>(p);
  if (!dw && !dbias) return;
  ContextState& st = active(ctx);
  auto workspace = st.scratch<T>(plan.workspace_elements());
  kernels::conv1d_backward_weight<T>(st.stream(), p, plan, x, dy, dw, dbias, accumulate, static_cast<T*>(workspace.get()));
}

// ---- optimizers ----------------------------------------------------------------------------------------------
template <Real T>
void sgd_step(Context<Cuda>& ctx, T* param, const T* grad, T* momentum_buffer, index_t n, const SgdConfig& c) {
  kernels::sgd_step<T>(active(ctx).stream(), param, grad, momentum_buffer, n, c.lr, c.momentum, c.dampening,
                       c.weight_decay, c.nesterov, c.first_step);
}
template <Real T>
void adam_step(Context<Cuda>& ctx, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, index_t n, const AdamConfig& c,
               T* max_exp_avg_sq) {
  kernels::adam_step<T>(active(ctx).stream(), param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, c.lr, c.beta1,
                        c.beta2, c.eps, c.weight_decay, c.decoupled_weight_decay, static_cast<long long>(c.step));
}
template <Real T>
void ema_update(Context<Cuda>& ctx, T* target, const T* source, index_t n, double momentum) {
  kernels::ema_update<T>(active(ctx).stream(), target, source, n, momentum);
}

// ---- GEMM ----------------------------------------------------------------------------------------------------
template <Real T>
void gemm(Context<Cuda>& ctx, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, const T* B,
          T beta, T* C, index_t lda, index_t ldb, index_t ldc) {
  kernels::gemm<T>(active(ctx).cublas(), to_kernels(ta), to_kernels(tb), M, N, K, alpha, A, B, beta, C, lda, ldb, ldc);
}
template <Real T>
void gemm_strided_batched(Context<Cuda>& ctx, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A,
                          index_t stride_a, const T* B, index_t stride_b, T beta, T* C, index_t stride_c,
                          index_t batch) {
  kernels::gemm_strided_batched<T>(active(ctx).cublas(), to_kernels(ta), to_kernels(tb), M, N, K, alpha, A, stride_a, B,
                                   stride_b, beta, C, stride_c, batch);
}

// ---- explicit instantiations ---------------------------------------------------------------------------------
#define DISTILL_CUDA_INSTANTIATE_STORABLE(T) template void fill<T>(Context<Cuda>&, T*, T, index_t);
DISTILL_CUDA_INSTANTIATE_STORABLE(float)
DISTILL_CUDA_INSTANTIATE_STORABLE(double)
DISTILL_CUDA_INSTANTIATE_STORABLE(std::int32_t)
DISTILL_CUDA_INSTANTIATE_STORABLE(std::int64_t)
#undef DISTILL_CUDA_INSTANTIATE_STORABLE

#define DISTILL_CUDA_INSTANTIATE_REAL(T)                                                                              \
  template void scale<T>(Context<Cuda>&, T*, const T*, T, index_t);                                                   \
  template void axpy<T>(Context<Cuda>&, T*, const T*, T, index_t);                                                    \
  template void add<T>(Context<Cuda>&, T*, const T*, const T*, index_t);                                              \
  template void sub<T>(Context<Cuda>&, T*, const T*, const T*, index_t);                                              \
  template void mul<T>(Context<Cuda>&, T*, const T*, const T*, index_t);                                              \
  template void div<T>(Context<Cuda>&, T*, const T*, const T*, index_t);                                              \
  template void accumulate_product<T>(Context<Cuda>&, T*, const T*, const T*, index_t);                               \
  template void relu_forward<T>(Context<Cuda>&, T*, const T*, index_t);                                               \
  template void relu_backward<T>(Context<Cuda>&, T*, const T*, const T*, index_t, bool);                              \
  template void add_bias<T>(Context<Cuda>&, T*, const T*, index_t, index_t, index_t);                                 \
  template void sum<T>(Context<Cuda>&, const T*, index_t, T*, T, bool);                                               \
  template double sum_to_host<T>(Context<Cuda>&, const T*, index_t, T);                                               \
  template void sum_axis0<T>(Context<Cuda>&, const T*, index_t, index_t, T*, T, bool);                                \
  template void sum_axis1<T>(Context<Cuda>&, const T*, index_t, index_t, T*, T, bool);                                \
  template void global_avg_pool_forward<T>(Context<Cuda>&, const T*, T*, index_t, index_t, index_t);                  \
  template void global_avg_pool_backward<T>(Context<Cuda>&, const T*, T*, index_t, index_t, index_t, bool);           \
  template void batch_norm_forward_train<T>(Context<Cuda>&, const BatchNormShape&, const T*, const T*, const T*, T*,   \
                                            T*, T*, T*, T*, double, double);                                          \
  template void batch_norm_forward_eval<T>(Context<Cuda>&, const BatchNormShape&, const T*, const T*, const T*,        \
                                           const T*, const T*, T*, double);                                           \
  template void batch_norm_backward_train<T>(Context<Cuda>&, const BatchNormShape&, const T*, const T*, const T*,      \
                                             const T*, const T*, T*, T*, T*, bool);                                   \
  template void batch_norm_backward_eval<T>(Context<Cuda>&, const BatchNormShape&, const T*, const T*, const T*,       \
                                            const T*, const T*, double, T*, T*, T*, bool);                            \
  template void conv1d_forward<T>(Context<Cuda>&, const Conv1dShape&, const T*, const T*, const T*, T*, bool,          \
                                  Conv1dAlgo);                                                                        \
  template void conv1d_backward_input<T>(Context<Cuda>&, const Conv1dShape&, const T*, const T*, T*, bool);           \
  template void conv1d_backward_weight<T>(Context<Cuda>&, const Conv1dShape&, const T*, const T*, T*, T*, bool);      \
  template void sgd_step<T>(Context<Cuda>&, T*, const T*, T*, index_t, const SgdConfig&);                              \
  template void adam_step<T>(Context<Cuda>&, T*, const T*, T*, T*, index_t, const AdamConfig&, T*);                    \
  template void ema_update<T>(Context<Cuda>&, T*, const T*, index_t, double);                                          \
  template void add_scalar<T>(Context<Cuda>&, T*, const T*, T, index_t);                                              \
  template void softmax_rows<T>(Context<Cuda>&, const T*, T*, index_t, index_t);                                      \
  template void log_softmax_rows<T>(Context<Cuda>&, const T*, T*, index_t, index_t);                                  \
  template void softmax_rows_backward<T>(Context<Cuda>&, const T*, const T*, T*, index_t, index_t, bool);             \
  template void log_softmax_rows_backward<T>(Context<Cuda>&, const T*, const T*, T*, index_t, index_t, bool);         \
  template void l2_normalize_rows<T>(Context<Cuda>&, const T*, T*, T*, index_t, index_t, double);                     \
  template void l2_normalize_rows_backward<T>(Context<Cuda>&, const T*, const T*, const T*, T*, index_t, index_t,     \
                                              double, bool);                                                          \
  template void cross_entropy_forward<T>(Context<Cuda>&, const T*, const std::int32_t*, const T*, index_t, index_t,   \
                                         T*, T*, double);                                                             \
  template void cross_entropy_backward<T>(Context<Cuda>&, const T*, const std::int32_t*, const T*, const T*,          \
                                          const T*, T, T*, T*, index_t, index_t, bool);                               \
  template void squared_error_sum<T>(Context<Cuda>&, const T*, const T*, index_t, T*, double);                        \
  template void squared_error_backward<T>(Context<Cuda>&, const T*, const T*, const T*, T, T*, T*, index_t);          \
  template void similarity_stats<T>(Context<Cuda>&, const Similarity<T>&, double*, double*, double*);                \
  template void similarity_backward<T>(Context<Cuda>&, const Similarity<T>&, const SimilarityCoefficients&, T, T*,     \
                                       bool);                                                                         \
  template void class_sums<T>(Context<Cuda>&, const T*, index_t, const std::int32_t*, const std::int32_t*, index_t,    \
                              const double*, double*);                                                                \
  template void contrastive_row_loss<T>(Context<Cuda>&, const T*, const T*, index_t, index_t, const double*,           \
                                        const std::int32_t*, const std::int32_t*, const double*, double, const T*,    \
                                        double*, double*);                                                            \
  template void row_coefficients<T>(Context<Cuda>&, const T*, double, const double*, const T*, index_t, double*);      \
  template void contrastive_positive_grad<T>(Context<Cuda>&, T*, index_t, index_t, const std::int32_t*,                \
                                             const double*, const double*, const T*, const double*, const T*,         \
                                             const T*, double);                                                       \
  template void rows_dot<T>(Context<Cuda>&, const T*, const T*, index_t, index_t, double, double*);                    \
  template void moco_positive_grad<T>(Context<Cuda>&, const T*, const T*, index_t, index_t, const double*,             \
                                      const double*, const T*, double, T*, T*);                                       \
  template void soft_kl_rows<T>(Context<Cuda>&, const double*, const double*, const double*, const T*, index_t,        \
                                double*, double*);                                                                    \
  template void add_scaled_rows<T>(Context<Cuda>&, T*, const double*, const T*, double, index_t);                      \
  template void axpy_scaled<T>(Context<Cuda>&, T*, const T*, const T*, T, index_t, bool);                              \
  template void sum_doubles<T>(Context<Cuda>&, const double*, index_t, T*, double);                                    \
  template void kd_kl<T>(Context<Cuda>&, const T*, const T*, index_t, index_t, double, double, double*, T*, T*);         \
  template void normalized_mse_forward<T>(Context<Cuda>&, const T*, const T*, index_t, index_t, double, double*);      \
  template void normalized_mse_backward<T>(Context<Cuda>&, const T*, const T*, index_t, index_t, double, const T*,     \
                                           T*, T*);                                                                   \
  template void gemm<T>(Context<Cuda>&, Trans, Trans, index_t, index_t, index_t, T, const T*, const T*, T, T*,         \
                        index_t, index_t, index_t);                                                                   \
  template void gemm_strided_batched<T>(Context<Cuda>&, Trans, Trans, index_t, index_t, index_t, T, const T*, index_t, \
                                        const T*, index_t, T, T*, index_t, index_t);
DISTILL_CUDA_INSTANTIATE_REAL(float)
DISTILL_CUDA_INSTANTIATE_REAL(double)
#undef DISTILL_CUDA_INSTANTIATE_REAL

}  // namespace distill::cuda
