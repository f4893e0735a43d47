// kernels/gemm.cuh -- cuBLAS GEMM in distill's row-major terms. The row-major/column-major mapping, once:
//
//   cuBLAS is column-major: a buffer holding a row-major R x C matrix X (row stride ld) *is*, to cuBLAS, the
//   column-major C x R matrix X^T with leading dimension ld. We want row-major C = op(A) op(B) (M x N). Its
//   buffer is, to cuBLAS, C^T (N x M), and C^T = op(B)^T op(A)^T. The buffer of B is B^T to cuBLAS, so
//   op(B)^T is "B's buffer, transposed iff we transpose B", and likewise for A. Hence
//
//     row-major  C[M,N] = op_a(A) * op_b(B)
//     ==  cublas<t>gemm(handle, op_b, op_a, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc)
//
//   with the SAME transpose flags, the operands swapped, M and N swapped, and every ld being the row-major row
//   stride (A: K if not transposed, else M; B: N if not transposed, else K; C: N). No data is moved.
//
// The cuBLAS handle is created with the default math mode (no TF32) and bound to the context's stream.
#pragma once

#include <climits>

#include "context.cuh"
#include "distill/problems/kernels.hpp"
#include "launch.cuh"

namespace distill::kernels {


inline cublasOperation_t to_cublas(Trans t) { return t == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T; }

inline cublasStatus_t cublas_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float* alpha, const float* A, int lda, const float* B, int ldb,
                                  const float* beta, float* C, int ldc) {
  return cublasSgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t cublas_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const double* alpha, const double* A, int lda, const double* B, int ldb,
                                  const double* beta, double* C, int ldc) {
  return cublasDgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t cublas_gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                  int n, int k, const float* alpha, const float* A, int lda,
                                                  long long sa, const float* B, int ldb, long long sb,
                                                  const float* beta, float* C, int ldc, long long sc, int batch) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}
inline cublasStatus_t cublas_gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                  int n, int k, const double* alpha, const double* A, int lda,
                                                  long long sa, const double* B, int ldb, long long sb,
                                                  const double* beta, double* C, int ldc, long long sc, int batch) {
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}

struct RowMajorGemm {
  index_t M, N, K, lda, ldb, ldc;
};

/// Checks extents and leading dimensions (row strides; 0 = contiguous) and fills in the defaults.
inline RowMajorGemm row_major_gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, index_t lda,
                                   index_t ldb, index_t ldc) {
  DISTILL_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative extent (M ", M, ", N ", N, ", K ", K, ")");
  DISTILL_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, "gemm: extent above cuBLAS's int range (M ", M, ", N ",
                N, ", K ", K, ")");
  const index_t a_cols = ta == Trans::N ? K : M, b_cols = tb == Trans::N ? N : K;
  RowMajorGemm g{M, N, K, lda ? lda : a_cols, ldb ? ldb : b_cols, ldc ? ldc : N};
  if (g.lda < 1) g.lda = 1;
  if (g.ldb < 1) g.ldb = 1;
  if (g.ldc < 1) g.ldc = 1;
  DISTILL_CHECK(g.lda >= a_cols && g.ldb >= b_cols && g.ldc >= N, "gemm: row strides lda ", g.lda, ", ldb ", g.ldb,
                ", ldc ", g.ldc, " are smaller than the rows they step over (", a_cols, ", ", b_cols, ", ", N, ")");
  DISTILL_CHECK(g.lda <= INT_MAX && g.ldb <= INT_MAX && g.ldc <= INT_MAX, "gemm: row stride above cuBLAS's int range");
  return g;
}

/// Row-major C[M,N] = alpha op_a(A) op_b(B) + beta C (C not read when beta == 0).
template <class T>
void gemm(cublasHandle_t h, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A,
          const T* B, T beta, T* C, index_t lda, index_t ldb, index_t ldc) {
  const RowMajorGemm g = row_major_gemm(ta, tb, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  DISTILL_CUBLAS_CHECK(cublas_gemm(h, to_cublas(tb), to_cublas(ta), static_cast<int>(N), static_cast<int>(M),
                                   static_cast<int>(K), &alpha, B, static_cast<int>(g.ldb), A, static_cast<int>(g.lda),
                                   &beta, C, static_cast<int>(g.ldc)));
}

template <class T>
void gemm_strided_batched(cublasHandle_t h, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha,
                          const T* A, index_t stride_a, const T* B, index_t stride_b, T beta, T* C, index_t stride_c,
                          index_t batch) {
  const RowMajorGemm g = row_major_gemm(ta, tb, M, N, K, 0, 0, 0);
  DISTILL_CHECK(batch >= 0 && batch <= INT_MAX, "gemm_strided_batched: invalid batch count ", batch);
  DISTILL_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= M * N, "gemm_strided_batched: invalid strides (A ",
                stride_a, ", B ", stride_b, ", C ", stride_c, " for a ", M, "x", N, " result)");
  if (M == 0 || N == 0 || batch == 0) return;
  DISTILL_CUBLAS_CHECK(cublas_gemm_strided_batched(
      h, to_cublas(tb), to_cublas(ta), static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, B,
      static_cast<int>(g.ldb), stride_b, A, static_cast<int>(g.lda), stride_a, &beta, C, static_cast<int>(g.ldc),
      stride_c, static_cast<int>(batch)));
}

// The entry points: the context's cuBLAS handle (bound to its stream).
template <class T>
void gemm(cuda::ContextState& st, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, const T* B,
          T beta, T* C, index_t lda, index_t ldb, index_t ldc) {
  gemm<T>(st.cublas(), ta, tb, M, N, K, alpha, A, B, beta, C, lda, ldb, ldc);
}
template <class T>
void gemm_strided_batched(cuda::ContextState& st, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha,
                          const T* A, index_t stride_a, const T* B, index_t stride_b, T beta, T* C, index_t stride_c,
                          index_t batch) {
  gemm_strided_batched<T>(st.cublas(), ta, tb, M, N, K, alpha, A, stride_a, B, stride_b, beta, C, stride_c, batch);
}

}  // namespace distill::kernels
