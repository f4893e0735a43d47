// distill/cpu/fused_losses.hpp -- CPU kernels of the fused contrastive and distillation losses (ops in losses/).
//
// Everything here works on raw pointers; the maths, masks, gradients and the stability argument are written
// down in docs/losses.md. The similarity losses never hold an N x N matrix: they walk tiles of it.
//
//   Emb<T>            embedding rows in a padded layout (row stride dp = D rounded up to 16, zero padding) plus
//                     the packed transpose (panels of 16 rows, [dp x 16] each) that tile products read as B^T
//                     (cpu/fused_losses_layout.hpp; the threads' shared schedule: cpu/fused_losses_threads.hpp).
//   self_lse          lse_i = log sum_{k != i} exp(s z_i.z_k)          symmetric: each tile pair (I <= J) once
//   self_backward     dZ += s * H Z,  H_ij = a_i P_ij + a_j P_ji         symmetric, per-thread dZ partials
//   cross_lse         row (and column) log-sum-exp of s A B^T, optional "exclude i == j" mask
//   cross_backward    dA += s G B, dB += s G^T A,  G_ij = a_i P^row_ij + b_j P^col_ij
//   softkl_forward    row statistics of two similarity matrices (student X, teacher Y) for KL(p_Y || q_X)
//   softkl_backward   dA += s G B, dB += s G^T A,  G_ij = a_i (q_ij - p_ij)
//   kd_kl_rows        KD-KL on logits, loss rows and the gradient in one pass per row
//   normalized_mse_rows   ||n(a_i) - n(b_i)||^2 rows and their gradients
//
// Exponent shift: with unit rows |s z_i.z_j| <= s, so exp(S - s) never overflows, and as long as the whole
// range 2s stays inside T's normal exponent range (fixed_shift_ok) nothing underflows to a zero row sum either.
// Then one exponential per element serves the row and the column sums (and, in the backward, both P_ij and
// P_ji). Otherwise (small tau, unnormalised inputs such as a MoCo queue) every row keeps an online max.
//
// Threads: tile pairs are dealt round-robin (pair p -> thread p mod nt) and every thread accumulates into its
// own row-statistics and gradient partials, combined afterwards in thread order: deterministic for a fixed
// thread count, no atomics. Extra memory: Z (+ packed transpose), O(rows) statistics, (threads - 1) gradient
// partials of the embedding size, one tile buffer per thread.
#pragma once

#include "distill/cpu/eigen_core.hpp"
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "distill/cpu/api.hpp"
#include "distill/cpu/exec.hpp"
#include "distill/core/shape.hpp"
#include "distill/core/tensor.hpp"
#include "distill/cpu/fused_losses_gemm.hpp"
#include "distill/cpu/fused_losses_simd.hpp"
#include "distill/cpu/fused_losses_layout.hpp"   // Emb: rows in the tile layout
#include "distill/cpu/fused_losses_threads.hpp"  // balanced schedule, per-thread row statistics

namespace distill::cpu::fused {

using cpu::Exec;

// ------------------------------------------------------------------------------------------------------------
// Self-similarity engine (symmetric, diagonal excluded): NT-Xent and the supervised-contrastive VCL loss.
// ------------------------------------------------------------------------------------------------------------

/// lse[i] = log sum_{k != i} exp(scale * z_i . z_k). fixed: every exponent shifted by `shift` (requires
/// |scale z_i.z_k| <= shift and fixed_shift_ok); otherwise online row maxima. Rows with no other row: -inf.
template <class T>
void self_lse(Exec ex, const Emb<T>& Z, T scale, bool fixed, T shift, double* lse, index_t bt) {
  const int threads = ex.threads;
  const index_t n = Z.n, dp = Z.dp, nb = (n + bt - 1) / bt;
  std::vector<std::array<index_t, 2>> pairs;
  for (index_t I = 0; I < nb; ++I)
    for (index_t J = I; J < nb; ++J) pairs.push_back({I, J});
  const int slots = detail::slots_for(threads, index_t(pairs.size()));
  detail::Stats st(slots, n, !fixed);
  const T ninf = -std::numeric_limits<T>::infinity();
  const std::size_t per_thread = static_cast<std::size_t>(bt * bt + 2 * bt);
  // Per-thread tiles: 64-byte aligned (see row_sum); plain allocation, not ex.buffer: drawn from the pool they
  // made the NT-Xent engine ~9% slower at 2N = 2048 (measured; the reason was not pinned down).
  Tensor<T, 1> bufs(Shape<1>{index_t(slots) * index_t(per_thread)});
  auto cost = [&](index_t p) {
    return double(std::min(bt, n - pairs[p][0] * bt)) * double(std::min(bt, n - pairs[p][1] * bt));
  };
  detail::run_balanced(slots, index_t(pairs.size()), cost, [&](int t, index_t p) {
    T* S = bufs.data() + static_cast<std::size_t>(t) * per_thread;
    T* col = S + bt * bt;
    const index_t I = pairs[p][0], J = pairs[p][1];
    const index_t i0 = I * bt, j0 = J * bt, m = std::min(bt, n - i0), w = std::min(bt, n - j0);
    const index_t wp = tile::round_up(w, tile::kColumnQuantum);
    const bool diag = I == J;
    tile::mm_packed(ex.isa, m, wp, dp, Z.row(i0), dp, Z.panel(j0), S, wp, scale, false);
    double* sum = st.sum(t);
    if (fixed) {
      if (diag) {
        for (index_t r = 0; r < m; ++r) {
          T* sr = S + r * wp;
          simd::exp_shift(ex.isa, sr, sr, w, shift);
          sr[r] = T(0);
          sum[i0 + r] += detail::row_sum(sr, w);
        }
        return;
      }
      // Off the diagonal one exponential feeds the row sum of i and the column sum of j.
      std::fill(col, col + w, T(0));
      for (index_t r = 0; r < m; ++r) sum[i0 + r] += simd::exp_row_colsum(ex.isa, S + r * wp, w, shift, col);
      for (index_t c = 0; c < w; ++c) sum[j0 + c] += double(col[c]);
      return;
    }
    double* mx = st.max(t);
    if (diag)
      for (index_t r = 0; r < m; ++r) S[r * wp + r] = ninf;
    for (index_t r = 0; r < m; ++r) detail::online_row(ex.isa, S + r * wp, w, mx[i0 + r], sum[i0 + r], col);
    if (diag) return;
    // Columns: tile column maxima, rescale the running sums, then one exponential pass with column shifts.
    std::fill(col, col + w, ninf);
    for (index_t r = 0; r < m; ++r) {
      const T* sr = S + r * wp;
      for (index_t c = 0; c < w; ++c) col[c] = std::max(col[c], sr[c]);
    }
    for (index_t c = 0; c < w; ++c) {
      double& cm = mx[j0 + c];
      if (double(col[c]) > cm) {
        sum[j0 + c] *= std::exp(cm - double(col[c]));
        cm = double(col[c]);
      }
      col[c] = T(cm);
    }
    detail::CRow<T> shift_row(col, w);
    Eigen::Array<T, Eigen::Dynamic, 1> acc = Eigen::Array<T, Eigen::Dynamic, 1>::Zero(w);
    T* tmp = col + bt;
    detail::Row<T> tr(tmp, w);
    for (index_t r = 0; r < m; ++r) {
      tr = detail::CRow<T>(S + r * wp, w) - shift_row;
      simd::exp_shift(ex.isa, tmp, tmp, w, T(0));
      acc += tr;
    }
    for (index_t c = 0; c < w; ++c) sum[j0 + c] += double(acc[c]);
  });
  st.merge(fixed ? double(shift) : 0.0, lse);
}

/// dz (row stride dp, zero or holding earlier terms) += scale * sum_{j != i} (a_i P_ij + a_j P_ji) z_j with
/// P_ij = exp(scale z_i.z_j - lse_i). Rows with a_i == 0 contribute nothing (their lse may be -inf).
template <class T>
void self_backward(Exec ex, const Emb<T>& Z, T scale, bool fixed, T shift, const double* lse, const double* a,
                   T* dz, index_t bt) {
  const int threads = ex.threads;
  const index_t n = Z.n, dp = Z.dp, nb = (n + bt - 1) / bt;
  std::vector<std::array<index_t, 2>> pairs;
  for (index_t I = 0; I < nb; ++I)
    for (index_t J = I; J < nb; ++J) pairs.push_back({I, J});
  const int slots = detail::slots_for(threads, index_t(pairs.size()));
  // Per-row coefficients: fixed: alpha_i = a_i exp(shift - lse_i) so that a_i P_ij = alpha_i exp(S_ij - shift);
  // online: (a_i, L_i) with L_i = +inf for rows without a coefficient.
  std::vector<T> coef(static_cast<std::size_t>(n)), lrow(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const bool on = a[i] != 0.0;
    coef[i] = on ? static_cast<T>(fixed ? a[i] * std::exp(double(shift) - lse[i]) : a[i]) : T(0);
    lrow[i] = on ? static_cast<T>(lse[i]) : std::numeric_limits<T>::infinity();
  }
  Tensor<T, 1> extra;
  T* parts = slots > 1 ? detail::alloc_zero(ex, extra, (slots - 1) * n * dp) : nullptr;
  const std::size_t per_thread = static_cast<std::size_t>(bt * bt + bt);
  Tensor<T, 1> bufs(Shape<1>{index_t(slots) * index_t(per_thread)});  // per-thread tiles, see self_lse
  // Backward cost: S and H Z on every pair, H^T Z only off the diagonal.
  auto cost = [&](index_t p) {
    return double(std::min(bt, n - pairs[p][0] * bt)) * double(std::min(bt, n - pairs[p][1] * bt)) *
           (pairs[p][0] == pairs[p][1] ? 2.0 : 3.0);
  };
  detail::run_balanced(slots, index_t(pairs.size()), cost, [&](int t, index_t p) {
    T* S = bufs.data() + static_cast<std::size_t>(t) * per_thread;
    T* tmp = S + bt * bt;
    T* out = t == 0 ? dz : parts + (t - 1) * n * dp;
    const index_t I = pairs[p][0], J = pairs[p][1];
    const index_t i0 = I * bt, j0 = J * bt, m = std::min(bt, n - i0), w = std::min(bt, n - j0);
    const index_t wp = tile::round_up(w, tile::kColumnQuantum);
    const bool diag = I == J;
    tile::mm_packed(ex.isa, m, wp, dp, Z.row(i0), dp, Z.panel(j0), S, wp, scale, false);
    detail::CRow<T> cj(coef.data() + j0, w), lj(lrow.data() + j0, w);
    for (index_t r = 0; r < m; ++r) {
      T* sr = S + r * wp;
      detail::Row<T> h(sr, w);
      if (fixed) {
        simd::exp_scale_row(ex.isa, sr, w, shift, coef.data() + j0, coef[i0 + r]);
      } else {
        detail::Row<T> e(tmp, w);
        simd::exp_shift(ex.isa, tmp, sr, w, lrow[i0 + r]);
        h -= lj;
        simd::exp_shift(ex.isa, sr, sr, w, T(0));
        h = coef[i0 + r] * e + cj * h;
      }
      if (diag) sr[r] = T(0);
    }
    tile::mm_nn(ex.isa, m, dp, w, S, wp, Z.row(j0), dp, out + i0 * dp, dp, scale, true);
    if (!diag) tile::mm_tn(ex.isa, w, dp, m, S, wp, Z.row(i0), dp, out + j0 * dp, dp, scale, true);
  });
  reduce_partials(threads, dz, parts, slots, n * dp);
}

// ------------------------------------------------------------------------------------------------------------
// Cross-similarity engine: S = scale * A B^T (rows from A, columns from B), optional "exclude i == j" mask.
// ------------------------------------------------------------------------------------------------------------


/// Row log-sum-exp of S = scale A B^T over the allowed columns, and (if col_lse) the column log-sum-exp.
/// Column statistics are only supported without a mask.
template <class T>
void cross_lse(Exec ex, const Emb<T>& A, const Emb<T>& B, T scale, bool fixed, T shift, Mask mask,
               double* row_lse, double* col_lse, index_t bt) {
  const int threads = ex.threads;
  DISTILL_CHECK(!(col_lse && mask == Mask::diagonal && !fixed), "cross_lse: column statistics with the diagonal "
                "mask need the fixed-shift mode");
  const index_t na = A.n, nb_ = B.n, dp = A.dp, na_rows = na, nb_cols = nb_;
  const index_t rb = (na + bt - 1) / bt, cb = (nb_ + bt - 1) / bt, npairs = rb * cb;
  const int slots = detail::slots_for(threads, npairs);
  detail::Stats rs(slots, na, !fixed), cs(col_lse ? slots : 1, col_lse ? nb_ : 0, !fixed);
  const T ninf = -std::numeric_limits<T>::infinity();
  const std::size_t per_thread = static_cast<std::size_t>(bt * bt + 2 * bt);
  Tensor<T, 1> bufs(Shape<1>{index_t(slots) * index_t(per_thread)});  // per-thread tiles, see self_lse
  detail::run_balanced(slots, npairs, [&](index_t p) {
    return double(std::min(bt, na_rows - (p / cb) * bt)) * double(std::min(bt, nb_cols - (p % cb) * bt));
  }, [&](int t, index_t p) {
    T* S = bufs.data() + static_cast<std::size_t>(t) * per_thread;
    T* col = S + bt * bt;
    const index_t I = p / cb, J = p % cb;
    const index_t i0 = I * bt, j0 = J * bt, m = std::min(bt, na - i0), w = std::min(bt, nb_ - j0);
    const index_t wp = tile::round_up(w, tile::kColumnQuantum);
    tile::mm_packed(ex.isa, m, wp, dp, A.row(i0), dp, B.panel(j0), S, wp, scale, false);
    const bool masked = mask == Mask::diagonal && i0 < j0 + w && j0 < i0 + m;
    double* rsum = rs.sum(t);
    if (fixed) {
      if (col_lse) std::fill(col, col + w, T(0));
      for (index_t r = 0; r < m; ++r) {
        T* sr = S + r * wp;
        simd::exp_shift(ex.isa, sr, sr, w, shift);
        const index_t dc = i0 + r - j0;
        if (masked && dc >= 0 && dc < w) sr[dc] = T(0);
        rsum[i0 + r] += detail::row_sum(sr, w);
        if (col_lse)
          for (index_t c = 0; c < w; ++c) col[c] += sr[c];
      }
      if (col_lse) {
        double* csum = cs.sum(t);
        for (index_t c = 0; c < w; ++c) csum[j0 + c] += double(col[c]);
      }
      return;
    }
    if (masked)
      for (index_t r = 0; r < m; ++r) {
        const index_t dc = i0 + r - j0;
        if (dc >= 0 && dc < w) S[r * wp + dc] = ninf;
      }
    double* rmax = rs.max(t);
    for (index_t r = 0; r < m; ++r) detail::online_row(ex.isa, S + r * wp, w, rmax[i0 + r], rsum[i0 + r], col);
    if (!col_lse) return;
    double* cmax = cs.max(t);
    double* csum = cs.sum(t);
    std::fill(col, col + w, ninf);
    for (index_t r = 0; r < m; ++r) {
      const T* sr = S + r * wp;
      for (index_t c = 0; c < w; ++c) col[c] = std::max(col[c], sr[c]);
    }
    for (index_t c = 0; c < w; ++c) {
      double& cm = cmax[j0 + c];
      if (double(col[c]) > cm) {
        csum[j0 + c] *= std::exp(cm - double(col[c]));
        cm = double(col[c]);
      }
      col[c] = T(cm);
    }
    detail::CRow<T> shift_row(col, w);
    Eigen::Array<T, Eigen::Dynamic, 1> acc = Eigen::Array<T, Eigen::Dynamic, 1>::Zero(w);
    T* tmp = col + bt;
    detail::Row<T> tr(tmp, w);
    for (index_t r = 0; r < m; ++r) {
      tr = detail::CRow<T>(S + r * wp, w) - shift_row;
      simd::exp_shift(ex.isa, tmp, tmp, w, T(0));
      acc += tr;
    }
    for (index_t c = 0; c < w; ++c) csum[j0 + c] += double(acc[c]);
  });
  rs.merge(fixed ? double(shift) : 0.0, row_lse);
  if (col_lse) cs.merge(fixed ? double(shift) : 0.0, col_lse);
}

/// dA (row stride dp) += scale G B and dB += scale G^T A with G_ij = a_i exp(S_ij - row_lse_i)
/// + b_j exp(S_ij - col_lse_j) on the allowed entries (b/col_lse may be null: no column term).
/// dA or dB may be null (no gradient wanted). Rows/columns with a zero coefficient contribute nothing.
template <class T>
void cross_backward(Exec ex, const Emb<T>& A, const Emb<T>& B, T scale, bool fixed, T shift, Mask mask,
                    const double* row_lse, const double* a, const double* col_lse, const double* b, T* dA, T* dB,
                    index_t bt) {
  const int threads = ex.threads;
  if (!dA && !dB) return;
  const index_t na = A.n, nb_ = B.n, dp = A.dp, na_rows = na, nb_cols = nb_;
  const index_t rb = (na + bt - 1) / bt, cb = (nb_ + bt - 1) / bt, npairs = rb * cb;
  const int slots = detail::slots_for(threads, npairs);
  const bool has_col = b && col_lse;
  auto coefs = [&](const double* lse, const double* c, index_t len, std::vector<T>& k, std::vector<T>& l) {
    k.resize(static_cast<std::size_t>(len));
    l.resize(static_cast<std::size_t>(len));
    for (index_t i = 0; i < len; ++i) {
      const bool on = c[i] != 0.0;
      k[i] = on ? static_cast<T>(fixed ? c[i] * std::exp(double(shift) - lse[i]) : c[i]) : T(0);
      l[i] = on ? static_cast<T>(lse[i]) : std::numeric_limits<T>::infinity();
    }
  };
  std::vector<T> ka, la, kb, lb;
  coefs(row_lse, a, na, ka, la);
  if (has_col) coefs(col_lse, b, nb_, kb, lb);
  Tensor<T, 1> extra_a, extra_b;
  T* parts_a = dA && slots > 1 ? detail::alloc_zero(ex, extra_a, (slots - 1) * na * dp) : nullptr;
  T* parts_b = dB && slots > 1 ? detail::alloc_zero(ex, extra_b, (slots - 1) * nb_ * dp) : nullptr;
  const std::size_t per_thread = static_cast<std::size_t>(bt * bt + bt);
  Tensor<T, 1> bufs(Shape<1>{index_t(slots) * index_t(per_thread)});  // per-thread tiles, see self_lse
  detail::run_balanced(slots, npairs, [&](index_t p) {
    return double(std::min(bt, na_rows - (p / cb) * bt)) * double(std::min(bt, nb_cols - (p % cb) * bt));
  }, [&](int t, index_t p) {
    T* S = bufs.data() + static_cast<std::size_t>(t) * per_thread;
    T* tmp = S + bt * bt;
    const index_t I = p / cb, J = p % cb;
    const index_t i0 = I * bt, j0 = J * bt, m = std::min(bt, na - i0), w = std::min(bt, nb_ - j0);
    const index_t wp = tile::round_up(w, tile::kColumnQuantum);
    tile::mm_packed(ex.isa, m, wp, dp, A.row(i0), dp, B.panel(j0), S, wp, scale, false);
    const bool masked = mask == Mask::diagonal && i0 < j0 + w && j0 < i0 + m;
    for (index_t r = 0; r < m; ++r) {
      T* sr = S + r * wp;
      detail::Row<T> h(sr, w);
      const T ai = ka[i0 + r];
      if (has_col) {
        detail::CRow<T> kj(kb.data() + j0, w), lj(lb.data() + j0, w);
        if (fixed) {
          simd::exp_shift(ex.isa, sr, sr, w, shift);
          h *= kj + ai;
        } else {
          detail::Row<T> e(tmp, w);
          simd::exp_shift(ex.isa, tmp, sr, w, la[i0 + r]);
          h -= lj;
          simd::exp_shift(ex.isa, sr, sr, w, T(0));
          h = ai * e + kj * h;
        }
      } else {
        simd::exp_shift(ex.isa, sr, sr, w, fixed ? shift : la[i0 + r]);
        h *= ai;
      }
      const index_t dc = i0 + r - j0;
      if (masked && dc >= 0 && dc < w) sr[dc] = T(0);
    }
    if (dA) {
      T* out = t == 0 ? dA : parts_a + (t - 1) * na * dp;
      tile::mm_nn(ex.isa, m, dp, w, S, wp, B.row(j0), dp, out + i0 * dp, dp, scale, true);
    }
    if (dB) {
      T* out = t == 0 ? dB : parts_b + (t - 1) * nb_ * dp;
      tile::mm_tn(ex.isa, w, dp, m, S, wp, A.row(i0), dp, out + j0 * dp, dp, scale, true);
    }
  });
  if (dA) reduce_partials(threads, dA, parts_a, slots, na * dp);
  if (dB) reduce_partials(threads, dB, parts_b, slots, nb_ * dp);
}

// ------------------------------------------------------------------------------------------------------------
// Soft contrastive KL: student X = scale A B^T, teacher Y = scale C E^T (same shape), rows over allowed columns.
// ------------------------------------------------------------------------------------------------------------

/// Row statistics for KL(softmax(Y_i) || softmax(X_i)): lse_x, lse_y and cross_i = sum_j p_ij (Y_ij - X_ij), so
/// KL_i = cross_i - lse_y_i + lse_x_i. Rows without an allowed column get lse = -inf and cross = 0.
template <class T>
void softkl_forward(Exec ex, const Emb<T>& A, const Emb<T>& B, const Emb<T>& C, const Emb<T>& E, T scale,
                    bool fixed, Mask mask, double* lse_x, double* lse_y, double* cross, index_t bt) {
  const int threads = ex.threads;
  const index_t n = A.n, nc = B.n, dp = A.dp, dpt = C.dp, na_rows = n, nb_cols = nc;
  const index_t rb = (n + bt - 1) / bt, cb = (nc + bt - 1) / bt, npairs = rb * cb;
  const int slots = detail::slots_for(threads, npairs);
  detail::Stats sx(slots, n, !fixed), sy(slots, n, !fixed);
  std::vector<double> q(static_cast<std::size_t>(slots * n), 0.0);
  const T shift = scale;
  const std::size_t per_thread = static_cast<std::size_t>(2 * bt * bt + 2 * bt);
  Tensor<T, 1> bufs(Shape<1>{index_t(slots) * index_t(per_thread)});  // per-thread tiles, see self_lse
  detail::run_balanced(slots, npairs, [&](index_t p) {
    return double(std::min(bt, na_rows - (p / cb) * bt)) * double(std::min(bt, nb_cols - (p % cb) * bt));
  }, [&](int t, index_t p) {
    T* X = bufs.data() + static_cast<std::size_t>(t) * per_thread;
    T* Y = X + bt * bt;
    T* scratch = Y + bt * bt;
    const index_t I = p / cb, J = p % cb;
    const index_t i0 = I * bt, j0 = J * bt, m = std::min(bt, n - i0), w = std::min(bt, nc - j0);
    const index_t wp = tile::round_up(w, tile::kColumnQuantum);
    tile::mm_packed(ex.isa, m, wp, dp, A.row(i0), dp, B.panel(j0), X, wp, scale, false);
    tile::mm_packed(ex.isa, m, wp, dpt, C.row(i0), dpt, E.panel(j0), Y, wp, scale, false);
    const bool masked = mask == Mask::diagonal && i0 < j0 + w && j0 < i0 + m;
    double *xs = sx.sum(t), *ys = sy.sum(t), *qq = q.data() + t * n;
    double *xm = sx.max(t), *ym = sy.max(t);
    for (index_t r = 0; r < m; ++r) {
      const index_t i = i0 + r, dc = i - j0;
      const bool cut = masked && dc >= 0 && dc < w;
      // The row as up to two segments around the excluded column.
      const index_t seg[2][2] = {{0, cut ? dc : w}, {cut ? dc + 1 : w, w}};
      T* xr = X + r * wp;
      T* yr = Y + r * wp;
      if (!fixed) {
        T tx = -std::numeric_limits<T>::infinity(), ty = tx;
        for (auto& sg : seg)
          if (sg[1] > sg[0]) {
            tx = std::max(tx, detail::CRow<T>(xr + sg[0], sg[1] - sg[0]).maxCoeff());
            ty = std::max(ty, detail::CRow<T>(yr + sg[0], sg[1] - sg[0]).maxCoeff());
          }
        if (tx == -std::numeric_limits<T>::infinity()) continue;
        if (double(tx) > xm[i]) {
          xs[i] *= std::exp(xm[i] - double(tx));
          xm[i] = double(tx);
        }
        if (double(ty) > ym[i]) {
          const double f = std::exp(ym[i] - double(ty));
          ys[i] *= f;
          qq[i] *= f;
          ym[i] = double(ty);
        }
      }
      const T cx = fixed ? shift : T(xm[i]), cy = fixed ? shift : T(ym[i]);
      double ax = 0, ay = 0, aq = 0;
      for (auto& sg : seg) {
        const index_t len = sg[1] - sg[0];
        if (len <= 0) continue;
        simd::exp_shift(ex.isa, scratch, xr + sg[0], len, cx);
        simd::exp_shift(ex.isa, scratch + bt, yr + sg[0], len, cy);
        const T* px = xr + sg[0];
        const T* py = yr + sg[0];
        const T* pe = scratch + bt;
        ax += detail::row_sum(scratch, len);
        ay += detail::row_sum(pe, len);
        aq += detail::lane_sum<T>(len, [=](index_t j) { return pe[j] * (py[j] - px[j]); });
      }
      xs[i] += ax;
      ys[i] += ay;
      qq[i] += aq;
    }
  });
  // Merge: lse from the (max, sum) statistics; the cross term shares the teacher's shift and normaliser.
  sx.merge(fixed ? double(shift) : 0.0, lse_x);
  sy.merge(fixed ? double(shift) : 0.0, lse_y);
  for (index_t i = 0; i < n; ++i) {
    if (lse_y[i] == -std::numeric_limits<double>::infinity()) {
      cross[i] = 0;
      continue;
    }
    double tot = 0;
    for (int t = 0; t < slots; ++t) {
      const double mt = fixed ? double(shift) : sy.m[t * n + i];
      if (mt == -std::numeric_limits<double>::infinity()) continue;
      tot += q[t * n + i] * std::exp(mt - lse_y[i]);
    }
    cross[i] = tot;
  }
}

/// dA += scale G B, dB += scale G^T A with G_ij = a_i (exp(X_ij - lse_x_i) - exp(Y_ij - lse_y_i)) on allowed
/// entries (dA / dB may be null, and may alias when A and B are the same rows).
template <class T>
void softkl_backward(Exec ex, const Emb<T>& A, const Emb<T>& B, const Emb<T>& C, const Emb<T>& E, T scale,
                     Mask mask, const double* lse_x, const double* lse_y, const double* a, T* dA, T* dB,
                     index_t bt) {
  const int threads = ex.threads;
  if (!dA && !dB) return;
  const index_t n = A.n, nc = B.n, dp = A.dp, dpt = C.dp, na_rows = n, nb_cols = nc;
  const index_t rb = (n + bt - 1) / bt, cb = (nc + bt - 1) / bt, npairs = rb * cb;
  const int slots = detail::slots_for(threads, npairs);
  std::vector<T> ka(static_cast<std::size_t>(n)), lx(static_cast<std::size_t>(n)), ly(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const bool on = a[i] != 0.0 && lse_x[i] != -std::numeric_limits<double>::infinity();
    ka[i] = on ? static_cast<T>(a[i]) : T(0);
    lx[i] = on ? static_cast<T>(lse_x[i]) : std::numeric_limits<T>::infinity();
    ly[i] = on ? static_cast<T>(lse_y[i]) : std::numeric_limits<T>::infinity();
  }
  // dA and dB may be the same buffer (self-similarity): then one set of partials serves both.
  const bool alias = dA && dB && dA == dB;
  Tensor<T, 1> extra_a, extra_b;
  T* parts_a = dA && slots > 1 ? detail::alloc_zero(ex, extra_a, (slots - 1) * n * dp) : nullptr;
  T* parts_b = dB && !alias && slots > 1 ? detail::alloc_zero(ex, extra_b, (slots - 1) * nc * dp) : nullptr;
  const std::size_t per_thread = static_cast<std::size_t>(2 * bt * bt);
  Tensor<T, 1> bufs(Shape<1>{index_t(slots) * index_t(per_thread)});  // per-thread tiles, see self_lse
  detail::run_balanced(slots, npairs, [&](index_t p) {
    return double(std::min(bt, na_rows - (p / cb) * bt)) * double(std::min(bt, nb_cols - (p % cb) * bt));
  }, [&](int t, index_t p) {
    T* X = bufs.data() + static_cast<std::size_t>(t) * per_thread;
    T* Y = X + bt * bt;
    const index_t I = p / cb, J = p % cb;
    const index_t i0 = I * bt, j0 = J * bt, m = std::min(bt, n - i0), w = std::min(bt, nc - j0);
    const index_t wp = tile::round_up(w, tile::kColumnQuantum);
    tile::mm_packed(ex.isa, m, wp, dp, A.row(i0), dp, B.panel(j0), X, wp, scale, false);
    tile::mm_packed(ex.isa, m, wp, dpt, C.row(i0), dpt, E.panel(j0), Y, wp, scale, false);
    const bool masked = mask == Mask::diagonal && i0 < j0 + w && j0 < i0 + m;
    for (index_t r = 0; r < m; ++r) {
      const index_t i = i0 + r;
      detail::Row<T> g(X + r * wp, w);
      detail::CRow<T> y(Y + r * wp, w);
      simd::exp_shift(ex.isa, X + r * wp, X + r * wp, w, lx[i]);
      simd::exp_shift(ex.isa, Y + r * wp, Y + r * wp, w, ly[i]);
      g = ka[i] * (g - y);
      const index_t dc = i - j0;
      if (masked && dc >= 0 && dc < w) X[r * wp + dc] = T(0);
    }
    if (dA) {
      T* out = t == 0 ? dA : parts_a + (t - 1) * n * dp;
      tile::mm_nn(ex.isa, m, dp, w, X, wp, B.row(j0), dp, out + i0 * dp, dp, scale, true);
    }
    if (dB) {
      T* out = t == 0 ? dB : (alias ? parts_a : parts_b) + (t - 1) * nc * dp;
      tile::mm_tn(ex.isa, w, dp, m, X, wp, A.row(i0), dp, out + j0 * dp, dp, scale, true);
    }
  });
  if (dA) reduce_partials(threads, dA, parts_a, slots, n * dp);
  if (dB && !alias) reduce_partials(threads, dB, parts_b, slots, nc * dp);
}

// ------------------------------------------------------------------------------------------------------------
// KD-KL on logits and the normalised MSE (row kernels, deterministic for any thread count).
// ------------------------------------------------------------------------------------------------------------

/// For each row of s, t [B, K] with x = s/T, y = t/T, q = softmax(x), p = softmax(y):
///   kl[i] = sum_j p_ij (y_ij - x_ij) - lse(y_i) + lse(x_i)       (never log(0): no NaN for one-hot teachers)
///   ds (if non-null) = coef (q - p);   dt (if non-null) = coef p ((y - lse_y) - (x - lse_x) - kl_i).
template <class T>
void kd_kl_rows(Exec exe, index_t B, index_t K, const T* s, const T* t, T inv_temp, double* kl, T* ds, T* dt,
                T coef) {
  const int threads = exe.threads;
  const Isa isa = exe.isa;
  const int nt = static_cast<int>(std::clamp<index_t>(B * K / 16384, 1, std::max(threads, 1)));
  // float at the SIMD levels: the whole row in that level's code (cpu/fused_losses_simd_isa.inl, kd_kl_row); the
  // portable level and double: the Eigen row below.
  constexpr bool is_float = std::is_same_v<T, float>;
  const bool simd_row = is_float && DISTILL_ISA_X86 && isa != Isa::portable;
#pragma omp parallel num_threads(nt)
  {
    // 64-byte aligned scratch: Eigen's vectorised exp peels by destination address, so aligned buffers keep
    // results independent of the allocation.
    Tensor<T, 1> bx(Shape<1>{ds ? 1 : K}), by(Shape<1>{K});
#pragma omp for schedule(static)
    for (index_t i = 0; i < B; ++i) {
      if constexpr (is_float) {
        if (simd_row) {
          T* exr = ds ? ds + i * K : bx.data();
          kl[i] = simd::kd_kl_row(isa, s + i * K, t + i * K, K, inv_temp, exr, by.data(), ds ? ds + i * K : nullptr,
                                  dt ? dt + i * K : nullptr, coef);
          continue;
        }
      }
      detail::CRow<T> sr(s + i * K, K), tr(t + i * K, K);
      detail::Row<T> ex(ds ? ds + i * K : bx.data(), K), ey(by.data(), K);
      const T ms = sr.maxCoeff(), mt = tr.maxCoeff();
      ey = (tr - mt) * inv_temp;
      simd::exp_shift(isa, ey.data(), ey.data(), K, T(0));
      const T* pe = ey.data();
      const T* ps = s + i * K;
      const T* pt = t + i * K;
      const double sy = detail::row_sum(pe, K);
      const double cr = detail::lane_sum<T>(K, [=](index_t j) { return pe[j] * (pt[j] - ps[j]); }) *
                        double(inv_temp) / sy;
      ex = (sr - ms) * inv_temp;
      simd::exp_shift(isa, ex.data(), ex.data(), K, T(0));
      const double sx = detail::row_sum(ex.data(), K);
      const double lx = double(ms) * double(inv_temp) + std::log(sx);
      const double ly = double(mt) * double(inv_temp) + std::log(sy);
      const double k = cr - ly + lx;
      kl[i] = k;
      if (dt) {
        detail::Row<T> g(dt + i * K, K);
        g = (coef * T(1.0 / sy)) * ey * ((tr - sr) * inv_temp - T(ly - lx + k));
      }
      if (ds) ex = coef * (ex * T(1.0 / sx) - ey * T(1.0 / sy));
    }
  }
}

/// rows[i] = ||n(a_i) - n(b_i)||^2 with n(x) = x / max(||x||, eps); if da/db are non-null, the gradients of
/// coef * sum_i rows[i] are accumulated into them.
template <class T>
void normalized_mse_rows(int threads, index_t n, index_t d, const T* a, const T* b, double* rows, T* da, T* db,
                         T coef) {
  const int nt = static_cast<int>(std::clamp<index_t>(n * d / 16384, 1, std::max(threads, 1)));
#pragma omp parallel num_threads(nt)
  {
    std::vector<T> za(static_cast<std::size_t>(d)), zb(static_cast<std::size_t>(d)), h(static_cast<std::size_t>(d));
#pragma omp for schedule(static)
    for (index_t i = 0; i < n; ++i) {
      const T* ai = a + i * d;
      const T* bi = b + i * d;
      double sa = 0, sb = 0;
      for (index_t k = 0; k < d; ++k) {
        sa += double(ai[k]) * double(ai[k]);
        sb += double(bi[k]) * double(bi[k]);
      }
      const double na = std::sqrt(sa), nb = std::sqrt(sb);
      const T ia = static_cast<T>(1.0 / std::max(na, kNormEps)), ib = static_cast<T>(1.0 / std::max(nb, kNormEps));
      double r = 0;
      for (index_t k = 0; k < d; ++k) {
        za[k] = ai[k] * ia;
        zb[k] = bi[k] * ib;
        const double df = double(za[k]) - double(zb[k]);
        r += df * df;
      }
      rows[i] = r;
      auto back = [&](const T* z, double nr, T sign, T* dx) {
        for (index_t k = 0; k < d; ++k) h[k] = sign * T(2) * coef * (za[k] - zb[k]);
        if (nr > kNormEps) {
          double dot = 0;
          for (index_t k = 0; k < d; ++k) dot += double(z[k]) * double(h[k]);
          const T inv = static_cast<T>(1.0 / nr), dt = static_cast<T>(dot);
          for (index_t k = 0; k < d; ++k) dx[k] += (h[k] - z[k] * dt) * inv;
        } else {
          const T inv = static_cast<T>(1.0 / kNormEps);
          for (index_t k = 0; k < d; ++k) dx[k] += h[k] * inv;
        }
      };
      if (da) back(za.data(), na, T(1), da + i * d);
      if (db) back(zb.data(), nb, T(-1), db + i * d);
    }
  }
}

}  // namespace distill::cpu::fused
