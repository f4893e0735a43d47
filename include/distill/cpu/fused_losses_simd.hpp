// distill/cpu/fused_losses_simd.hpp -- the exponential of the fused loss kernels: dst[j] = exp(src[j] - shift).
//
// float at the avx2 and avx512 levels (core/isa.hpp; cpu/fused_losses_simd_isa.inl): an 8-wide expf (Cody-Waite
// reduction by ln 2 in two parts, the classic degree-6 minimax polynomial of Cephes' expf for e^r on
// [-ln2/2, ln2/2], exponent inserted as 2^n), about 1 ulp, exact 0 below the normal range (x < -87.33) and clamped at x = 88.3 (e^88.3 = 2.2e38) above. It is ~5x faster than
// Eigen's generic packet exp, which matters: the fused InfoNCE evaluates M^2 exponentials per forward + backward.
// The loop walks indices in blocks of 8 from 0 and the tail goes through the same vector code on a padded copy,
// so every element gets the same formula wherever the buffers live (determinism).
// double, and the portable level: Eigen's array exp on the whole row. Every entry point takes the level to run.
#pragma once

#include <cmath>
#include <type_traits>

#include "distill/core/isa_regions.hpp"
#include "distill/core/shape.hpp"
#include "distill/cpu/eigen_core.hpp"

namespace distill::cpu::simd {

namespace generic {

/// The portable level, and every level for double: Eigen's exp; the row sum of exp_row_colsum in 16 lanes by
/// j mod 16, fixed tree, then the tail, independent of the buffer's address.
template <class T>
inline double exp_row_colsum(T* s, index_t n, T shift, T* col) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> e(s, n);
  e = (e - shift).exp();
  for (index_t j = 0; j < n; ++j) col[j] += s[j];
  T acc[16] = {};
  const index_t full = n - n % 16;
  for (index_t j = 0; j < full; j += 16)
    for (int l = 0; l < 16; ++l) acc[l] += s[j + l];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  T tail = T(0);
  for (index_t j = full; j < n; ++j) tail += s[j];
  return double(acc[0]) + double(tail);
}
template <class T>
inline void exp_scale_row(T* s, index_t n, T shift, const T* cj, T ci) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> e(s, n);
  e = (e - shift).exp() * (Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(cj, n) + ci);
}

/// dst[j] = exp(src[j] - shift), j < n (dst may equal src).
template <class T>
inline void exp_shift(T* dst, const T* src, index_t n, T shift) {
  if (n <= 0) return;
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> d(dst, n);
  d = (Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(src, n) - shift).exp();
}

}  // namespace generic
namespace isa_portable = generic;

}  // namespace distill::cpu::simd

// The float rows at the SIMD levels: simd::isa_avx2, simd::isa_avx512.
#define DISTILL_ISA_NO_PORTABLE
#define DISTILL_ISA_BODY "distill/cpu/fused_losses_simd_isa.inl"
#include "distill/core/isa_foreach.inl"

namespace distill::cpu::simd {

/// dst[j] = exp(src[j] - shift), j < n (dst may equal src), with the kernels of level `isa`.
template <class T>
inline void exp_shift(Isa isa, T* dst, const T* src, index_t n, T shift) {
  if constexpr (std::is_same_v<T, float>) {
    DISTILL_ISA_CALL(isa, simd, exp_shift(dst, src, n, shift));
  } else {
    generic::exp_shift(dst, src, n, shift);
  }
}

/// Fixed-shift forward row of an off-diagonal tile: s[j] <- e_j = exp(s[j] - shift), col[j] += e_j; returns the
/// row sum of e (a fixed summation tree, so the result does not depend on where the buffers live).
template <class T>
inline double exp_row_colsum(Isa isa, T* s, index_t n, T shift, T* col) {
  if constexpr (std::is_same_v<T, float>) {
    DISTILL_ISA_CALL(isa, simd, exp_row_colsum(s, n, shift, col));
  } else {
    return generic::exp_row_colsum(s, n, shift, col);
  }
}

/// Fixed-shift backward row: s[j] <- exp(s[j] - shift) * (cj[j] + ci).
template <class T>
inline void exp_scale_row(Isa isa, T* s, index_t n, T shift, const T* cj, T ci) {
  if constexpr (std::is_same_v<T, float>) {
    DISTILL_ISA_CALL(isa, simd, exp_scale_row(s, n, shift, cj, ci));
  } else {
    generic::exp_scale_row(s, n, shift, cj, ci);
  }
}

/// One KD-KL row in float at a SIMD level (cpu::fused::kd_kl_rows; the portable level runs the Eigen row there).
inline double kd_kl_row(Isa isa, const float* s, const float* t, index_t K, float inv_temp, float* ex, float* ey,
                        float* ds, float* dt, float coef) {
#if DISTILL_ISA_X86
  if (isa == Isa::avx512) return isa_avx512::kd_kl_row(s, t, K, inv_temp, ex, ey, ds, dt, coef);
  return isa_avx2::kd_kl_row(s, t, K, inv_temp, ex, ey, ds, dt, coef);
#else
  (void)isa, (void)s, (void)t, (void)K, (void)inv_temp, (void)ex, (void)ey, (void)ds, (void)dt, (void)coef;
  return 0.0;
#endif
}

}  // namespace distill::cpu::simd
