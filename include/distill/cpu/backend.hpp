// distill/cpu/backend.hpp -- the CPU backend's context-level entry points: the same names, parameters and meaning
// as the CUDA backend's (cuda/api.hpp), with Context<Cpu>& in place of Context<Cuda>&.
//
// ops/, losses/ and optim/ call a primitive once, unqualified through backend:: (backend/select.hpp), and overload
// resolution on the context picks cpu:: or cuda::. The elementwise and reduction entry points are written directly
// (cpu/elementwise.hpp, cpu/reduce.hpp); every function here is a thin adapter: it takes the thread count, the host
// pool and the ISA level from the context and runs the raw kernels of cpu/ (declared in cpu/api.hpp, each family in
// its own file). Pointers are host pointers; `accumulate` selects out += result or out = result, as on Cuda;
// a backward's upstream gradient `grad_out` is read from memory of the context's device (here: the host).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/core/error.hpp"
#include "distill/cpu/api.hpp"
#include "distill/cpu/elementwise.hpp"
#include "distill/cpu/exec.hpp"
#include "distill/cpu/reduce.hpp"
#include "distill/problems/conv1d.hpp"
#include "distill/problems/kernels.hpp"
#ifndef DISTILL_COMPILED  // the kernel bodies; in compiled mode they come from distill::compiled
#include "distill/cpu/conv1d.hpp"
#include "distill/cpu/cross_entropy.hpp"
#include "distill/cpu/gemm.hpp"
#include "distill/cpu/batchnorm.hpp"
#include "distill/cpu/normalize.hpp"
#include "distill/cpu/optim.hpp"
#include "distill/cpu/pool.hpp"
#include "distill/cpu/softmax.hpp"
#endif

namespace distill::cpu {

namespace entry {
/// dx[0, n) = 0 unless accumulating (the raw kernels of a backward always add).
template <class T>
void clear_unless(bool accumulate, T* dx, index_t n) {
  if (!accumulate && dx && n > 0) std::fill(dx, dx + n, T(0));
}
}  // namespace entry

// ---- row-wise: softmax, log-softmax, L2 normalisation (cpu/softmax.hpp, cpu/normalize.hpp) -----------------------------
template <class T>
void softmax_rows(Context<Cpu>& ctx, const T* x, T* y, index_t rows, index_t cols) {
  softmax_rows(threads_for(ctx, rows * cols), x, y, rows, cols);
}
template <class T>
void log_softmax_rows(Context<Cpu>& ctx, const T* x, T* y, index_t rows, index_t cols) {
  log_softmax_rows(threads_for(ctx, rows * cols), x, y, rows, cols);
}
template <class T>
void softmax_rows_backward(Context<Cpu>& ctx, const T* y, const T* dy, T* dx, index_t rows, index_t cols,
                           bool accumulate) {
  entry::clear_unless(accumulate, dx, rows * cols);
  softmax_rows_backward(threads_for(ctx, rows * cols), y, dy, dx, rows, cols);
}
template <class T>
void log_softmax_rows_backward(Context<Cpu>& ctx, const T* y, const T* dy, T* dx, index_t rows, index_t cols,
                               bool accumulate) {
  entry::clear_unless(accumulate, dx, rows * cols);
  log_softmax_rows_backward(threads_for(ctx, rows * cols), y, dy, dx, rows, cols);
}
template <class T>
void l2_normalize_rows(Context<Cpu>& ctx, const T* x, T* y, T* norms, index_t rows, index_t cols, double eps) {
  l2_normalize_rows(threads_for(ctx, rows * cols), x, y, norms, rows, cols, eps);
}
template <class T>
void l2_normalize_rows_backward(Context<Cpu>& ctx, const T* y, const T* norms, const T* dy, T* dx, index_t rows,
                                index_t cols, double eps, bool accumulate) {
  entry::clear_unless(accumulate, dx, rows * cols);
  l2_normalize_rows_backward(threads_for(ctx, rows * cols), y, norms, dy, dx, rows, cols, eps);
}

// ---- losses of the core ops (cpu/cross_entropy.hpp) ---------------------------------------------------------------
/// Cross-entropy of logits x [rows, cols] with hard labels or soft targets p (exactly one non-null): writes
/// lse [rows] and *out = alpha * sum_r loss_r (rows in order).
template <class T>
void cross_entropy_forward(Context<Cpu>& ctx, const T* x, const std::int32_t* labels, const T* p, index_t rows,
                           index_t cols, T* lse, T* out, double alpha) {
  const int nt = threads_for(ctx, rows * cols);
  logsumexp_rows(nt, x, lse, rows, cols);
  double s = 0;
  if (labels) {
    for (index_t b = 0; b < rows; ++b) s += double(lse[b]) - double(x[b * cols + labels[b]]);
  } else {
    std::vector<T> loss(static_cast<std::size_t>(rows));
    soft_xent_rows(nt, x, p, lse, loss.data(), rows, cols);
    s = ordered_sum(loss.data(), rows);
  }
  out[0] = static_cast<T>(s * alpha);
}
/// dx (+)= s (softmax - onehot) [hard] or s (sum(p) softmax - p) [soft]; dp (+)= -s log_softmax [soft];
/// s = alpha * grad_out[0]. dx and dp may be null.
template <class T>
void cross_entropy_backward(Context<Cpu>& ctx, const T* x, const std::int32_t* labels, const T* p, const T* lse,
                            const T* grad_out, T alpha, T* dx, T* dp, index_t rows, index_t cols, bool accumulate) {
  const int nt = threads_for(ctx, rows * cols);
  const T s = grad_out[0] * alpha;
  entry::clear_unless(accumulate, dx, rows * cols);
  entry::clear_unless(accumulate, dp, rows * cols);
  if (labels) {
    if (dx) hard_xent_backward(nt, x, lse, labels, s, dx, rows, cols);
  } else {
    soft_xent_backward(nt, x, p, lse, s, dx, dp, rows, cols);
  }
}
/// *out = alpha * sum (a - b)^2 over n elements.
template <class T>
void squared_error_sum(Context<Cpu>& ctx, const T* a, const T* b, index_t n, T* out, double alpha) {
  out[0] = static_cast<T>(alpha * squared_error_sum(threads_for(ctx, n), a, b, n));
}
/// da += k g (a - b), db -= k g (a - b) with g = grad_out[0]; either may be null.
template <class T>
void squared_error_backward(Context<Cpu>& ctx, const T* a, const T* b, const T* grad_out, T k, T* da, T* db,
                            index_t n) {
  squared_error_backward(threads_for(ctx, n), a, b, static_cast<T>(double(k) * double(grad_out[0])), da, db, n);
}

// ---- global average pooling over time: [B, C, L] -> [B, C] (cpu/pool.hpp) ------------------------------------------
template <class T>
void global_avg_pool_forward(Context<Cpu>& ctx, const T* x, T* y, index_t batch, index_t channels, index_t length) {
  mean_rows(threads_for(ctx, batch * channels * length), x, y, batch * channels, length);
}
template <class T>
void global_avg_pool_backward(Context<Cpu>& ctx, const T* dy, T* dx, index_t batch, index_t channels, index_t length,
                              bool accumulate) {
  entry::clear_unless(accumulate, dx, batch * channels * length);
  mean_rows_backward(threads_for(ctx, batch * channels * length), dy, dx, batch * channels, length);
}

// ---- conv1d (cpu/conv1d.hpp): the geometry of problems/conv1d.hpp -------------------------------------------------
/// y (+)= conv1d(x, w) + bias (bias may be null). `algo` chooses among the Cuda forward kernels; the CPU engine has
/// one (it is accepted so both backends take the same call).
template <class T>
void conv1d_forward(Context<Cpu>& ctx, const Conv1dGeometry& g, const T* x, const T* w, const T* bias, T* y,
                    bool accumulate, Conv1dAlgo algo = Conv1dAlgo::Auto) {
  (void)algo;
  if (g.B == 0) return;
  if (!accumulate) return conv1d_forward<T>(exec_of(ctx), g, x, w, bias, y);
  const index_t n = g.B * g.Cout * g.Lout;
  std::vector<T> tmp(static_cast<std::size_t>(n));
  conv1d_forward<T>(exec_of(ctx), g, x, w, bias, tmp.data());
  axpy(ctx, y, tmp.data(), T(1), n);
}
/// dx (+)= the gradient with respect to x.
template <class T>
void conv1d_backward_input(Context<Cpu>& ctx, const Conv1dGeometry& g, const T* dy, const T* w, T* dx,
                           bool accumulate) {
  entry::clear_unless(accumulate, dx, g.B * g.Cin * g.L);
  if (g.B > 0) conv1d_backward_input<T>(exec_of(ctx), g, dy, w, dx);
}
/// dw (+)= the gradient with respect to w, dbias (+)= sums of dy; either may be null.
template <class T>
void conv1d_backward_weight(Context<Cpu>& ctx, const Conv1dGeometry& g, const T* x, const T* dy, T* dw, T* dbias,
                            bool accumulate) {
  entry::clear_unless(accumulate, dw, g.Cout * g.Cin * g.K);
  entry::clear_unless(accumulate, dbias, g.Cout);
  if (g.B > 0 && (dw || dbias)) conv1d_backward_weight<T>(exec_of(ctx), g, x, dy, dw, dbias);
}

// ---- GEMM (cpu/gemm.hpp) -------------------------------------------------------------------------------------------
/// Row-major C[M, N] = alpha op(A) op(B) + beta C; lda/ldb/ldc are row strides and must be 0 (contiguous) here.
template <class T>
void gemm(Context<Cpu>& ctx, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, const T* B,
          T beta, T* C, index_t lda = 0, index_t ldb = 0, index_t ldc = 0) {
  DISTILL_CHECK(lda == 0 && ldb == 0 && ldc == 0, "gemm: the Cpu backend takes contiguous matrices only (lda ", lda,
                ", ldb ", ldb, ", ldc ", ldc, ")");
  gemm<T>(ctx.threads(), ta, tb, M, N, K, alpha, A, B, beta, C);
}

// ---- optimizer steps (cpu/optim.hpp: PyTorch's single-tensor formulas) ----------------------------------------------
template <class T>
void sgd_step(Context<Cpu>& ctx, T* param, const T* grad, T* momentum_buffer, index_t n, const SgdConfig& c) {
  sgd_update(param, grad, momentum_buffer, n, c, threads_for(ctx, n, 16384));
}
template <class T>
void adam_step(Context<Cpu>& ctx, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, index_t n, const AdamConfig& c,
               T* max_exp_avg_sq = nullptr) {
  DISTILL_CHECK(c.step >= 1, "adam_step: the step count is 1-based, got ", c.step);
  adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, c, threads_for(ctx, n, 16384));
}

}  // namespace distill::cpu
