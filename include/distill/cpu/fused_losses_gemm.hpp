// distill/cpu/fused_losses_gemm.hpp -- register-blocked tile products for the fused loss kernels
// (cpu/fused_losses.hpp).
//
// The fused contrastive losses multiply small tiles over and over: S_IJ = Z_I Z_J^T (K = embedding dim, ~128),
// then dZ_I += H_IJ Z_J and dZ_J += H_IJ^T Z_I (K = tile width). One routine covers all three:
//
//   C[m x n] (=|+=) alpha * sum_k a(r, k) * b(k, c)
//     a(r, k) = A[r * a_r + k * a_k]                      (row-major A: a_r = lda, a_k = 1; A^T: a_r = 1, a_k = lda)
//     b(k, c) = B[(c / panel_w) * panel_stride + k * ldb + c % panel_w]
//
// The B side is read as rows of `nr` contiguous elements: either a plain row-major matrix (panel_w >= n,
// ldb = row stride) or the packed transpose of the cpu/fused_losses.hpp embedding layout (panels of 16 columns,
// each [K x 16] contiguous, ldb = 16). n must be a multiple of 16 (callers pad their buffers).
//
// The micro-kernel keeps an MR x NR block of C in registers (AVX2 + FMA: 6 x 16 floats or 6 x 8 doubles in 12
// ymm accumulators) and broadcasts one A element per row and k, so neither A nor a plain B needs packing.
// At the portable level a loop nest with the same summation order per element is used. The product is compiled
// once per instruction-set level (cpu/fused_losses_gemm_isa.inl) and every entry point takes the level to run. The
// summation order of every C element is fixed (k ascending), so results do not depend on threads or call order.
#pragma once

#include <algorithm>
#include <cstddef>

#include "distill/core/isa_regions.hpp"
#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"

// The tile product, once per instruction-set level: tile::isa_portable, ::isa_avx2, ::isa_avx512.
#define DISTILL_ISA_BODY "distill/cpu/fused_losses_gemm_isa.inl"
#include "distill/core/isa_foreach.inl"

namespace distill::cpu::tile {

/// C[m x n] (=|+=) alpha * sum_{k < K} a(r, k) b(k, c) with the kernels of level `isa`; see the file comment for
/// the operand layouts. n % 16 == 0. With K == 0 the product is zero (C is set to 0, or left alone when
/// accumulating).
template <class T>
void mm(Isa isa, index_t m, index_t n, index_t K, const T* A, index_t a_r, index_t a_k, const T* B, index_t ldb,
        index_t panel_w, index_t panel_stride, T* C, index_t ldc, T alpha, bool accumulate) {
  DISTILL_ISA_CALL(isa, tile, mm<T>(m, n, K, A, a_r, a_k, B, ldb, panel_w, panel_stride, C, ldc, alpha, accumulate));
}

/// C (=|+=) alpha * A B for row-major A [m x K] (row stride lda) and B [K x n] (row stride ldb).
template <class T>
void mm_nn(Isa isa, index_t m, index_t n, index_t K, const T* A, index_t lda, const T* B, index_t ldb, T* C,
           index_t ldc, T alpha, bool accumulate) {
  mm<T>(isa, m, n, K, A, lda, 1, B, ldb, round_up(n, kColumnQuantum), 0, C, ldc, alpha, accumulate);
}

/// C (=|+=) alpha * A^T B for row-major A [K x m] (row stride lda) and B [K x n] (row stride ldb).
template <class T>
void mm_tn(Isa isa, index_t m, index_t n, index_t K, const T* A, index_t lda, const T* B, index_t ldb, T* C, index_t ldc,
           T alpha, bool accumulate) {
  mm<T>(isa, m, n, K, A, 1, lda, B, ldb, round_up(n, kColumnQuantum), 0, C, ldc, alpha, accumulate);
}

/// C (=|+=) alpha * A P^T where P is given as its packed transpose: panels of 16 rows of P, each stored as
/// [K x 16] contiguous (panel p holds rows 16p .. 16p+15 of P). A is row-major [m x K] with row stride lda.
template <class T>
void mm_packed(Isa isa, index_t m, index_t n, index_t K, const T* A, index_t lda, const T* Ppacked, T* C, index_t ldc,
               T alpha, bool accumulate) {
  mm<T>(isa, m, n, K, A, lda, 1, Ppacked, kColumnQuantum, kColumnQuantum, K * kColumnQuantum, C, ldc, alpha,
        accumulate);
}

}  // namespace distill::cpu::tile
