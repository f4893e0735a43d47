// distill/cpu/gemm.hpp -- the CPU GEMM of linear / matmul (Eigen inside our OpenMP panels) and the Eigen maps over
// distill storage.
//
// Only host-compiled code includes this header (never nvcc-compiled code). Threads: distill's ops own them.
// gemm() splits the output into column panels, one per thread of the context, and calls Eigen inside the
// OpenMP region, where Eigen runs single-threaded. Results are deterministic for a fixed thread count.
#pragma once

#include "distill/cpu/eigen_core.hpp"
#include <algorithm>

#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"

namespace distill::cpu {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatMap = Eigen::Map<RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstMatMap = Eigen::Map<const RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using VecMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstVecMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;

/// Row-major rows x cols matrix at p with leading dimension ld (>= cols).
template <class T>
MatMap<T> mat(T* p, index_t rows, index_t cols, index_t ld = -1) {
  return MatMap<T>(p, rows, cols, Eigen::OuterStride<>(ld < 0 ? cols : ld));
}
template <class T>
ConstMatMap<T> mat(const T* p, index_t rows, index_t cols, index_t ld = -1) {
  return ConstMatMap<T>(p, rows, cols, Eigen::OuterStride<>(ld < 0 ? cols : ld));
}

/// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C. A is stored [M,K] (or [K,M] when
/// ta == T), B is stored [K,N] (or [N,K]). Parallel over column panels of C with `threads` threads.
template <class T>
void gemm(int threads, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, const T* B,
          T beta, T* C) {
  if (M == 0 || N == 0) return;
  auto body = [&](index_t n0, index_t n1) {
    auto c = mat(C, M, N).middleCols(n0, n1 - n0);
    if (K == 0) {
      if (beta == T(0)) c.setZero(); else c *= beta;
      return;
    }
    auto run = [&](const auto& a, const auto& b) {
      if (beta == T(0)) c.noalias() = alpha * (a * b);
      else {
        if (beta != T(1)) c *= beta;
        c.noalias() += alpha * (a * b);
      }
    };
    auto a_n = mat(A, M, K);
    auto a_t = mat(A, K, M);
    auto b_n = mat(B, K, N).middleCols(n0, n1 - n0);
    auto b_t = mat(B, N, K).middleRows(n0, n1 - n0);
    if (ta == Trans::N && tb == Trans::N) run(a_n, b_n);
    else if (ta == Trans::N) run(a_n, b_t.transpose());
    else if (tb == Trans::N) run(a_t.transpose(), b_n);
    else run(a_t.transpose(), b_t.transpose());
  };
  const double flops = 2.0 * double(M) * double(N) * double(K);
  int nt = (threads > 1 && flops > 2e5 && N >= 16) ? threads : 1;
  if (nt == 1) {
    body(0, N);
    return;
  }
  // Panels of C's columns, aligned to 8 for the SIMD kernels.
  const index_t per = ((N + nt - 1) / nt + 7) / 8 * 8;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) {
    const index_t n0 = std::min<index_t>(N, t * per), n1 = std::min<index_t>(N, n0 + per);
    if (n1 > n0) body(n0, n1);
  }
}

}  // namespace distill::cpu
