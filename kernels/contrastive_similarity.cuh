// kernels/contrastive_similarity.cuh -- the flash-style core of the contrastive (NT-Xent, InfoNCE, MoCo, SupCon)
// and soft-KL losses: softmax statistics and gradients of a similarity matrix S = scale * R O^T that is never stored.
//
// Row-owner scheme (docs/cuda.md, "fused contrastive losses": FlashAttention's tiling and recompute, Dao et al.,
// NeurIPS 2022, applied to a similarity matrix): a 256-thread block owns kRows = 32 rows of R and walks the
// column tiles of O (32 columns each). Every tile of S is recomputed from R and O staged in shared memory (depth
// chunks of 32), so nothing N x N exists anywhere, and no atomics are used:
//   * forward: per owner row the softmax statistics over the allowed columns (j != i when exclude_diag): max m
//     and sum l of exp(S - m) (online maximum, or the fixed shift c when |S| <= c is known: unit rows), and for
//     the soft-KL form the same for a second, "teacher" similarity Y = scale * Rt Ot^T plus sum exp(Y - m_y)(Y - X).
//     Warp w holds rows w, w+8, w+16, w+24 of the block; lane l owns the tile's column l: every lane keeps its own
//     running (m, l), merged across the warp at the end in a fixed butterfly order.
//   * backward: the gradient with respect to the owner rows, h_i = sum_j W_ij o_j with
//       contrastive:  W_ij = alpha_i exp(S_ij - L_i) + beta_j exp(S_ij - M_j)
//       soft KL:      W_ij = alpha_i (exp(X_ij - Lx_i) - exp(Y_ij - Ly_i))
//                          + beta_j (exp(X_ij - Lx_j) - exp(Y_ij - Ly_j))
//     (alpha / L: statistics of the owner row, beta / M: of the other row; either side may be absent). W goes
//     through shared memory and the block accumulates h for its slice of kDv output columns in registers. The
//     transposed product (the gradient of O) is the same kernel with R and O swapped and the statistics moved to
//     the other side, so every pass is row-owner and deterministic.
//   * few rows: the column tiles are split over `splits` blocks per row tile (grid z); each split writes its own
//     partial statistics / partial h, and a combine kernel merges the splits in split order. The split count is
//     a function of the shape only (deterministic).
// exp is evaluated in T (the argument is at most 0 after the shift), sums accumulate in double.
#pragma once

#include "context.cuh"
#include "reduce.cuh"
#include "rows.cuh"

namespace distill::kernels {

template <class T>
struct SimTile {
  static constexpr int kThreads = 256;
  static constexpr int kRows = 32;                                    // owner rows per block
  static constexpr int kCols = kWarpSize;                             // columns per tile: one per lane
  static constexpr int kDk = 32;                                      // depth chunk of a similarity product
  static constexpr int kDv = sizeof(T) == 4 ? 128 : 64;               // gradient columns per block (backward)
  static constexpr int kWarps = kThreads / kWarpSize;                 // 8
  static constexpr int kRowsPerWarp = kRows / kWarps;                 // 4
  static constexpr int kVPerLane = kDv / kWarpSize;                   // 4 (float) or 2 (double)
};

/// S = scale * R O^T over R [nr, d] and O [no, d] (row stride d); optional teacher Y = scale * Rt Ot^T (width dt,
/// rt/ot null when absent); exclude_diag masks j == i. fixed: |S| <= shift (and |Y| <= shift) is known.
template <class T>
struct SimArgs {
  const T* r;
  const T* o;
  index_t nr, no, d;
  const T* rt;
  const T* ot;
  index_t dt;
  T scale;
  int exclude_diag;
  int fixed;
  T shift;
};

/// Backward coefficients (double, device memory): alpha and the owner rows' statistics, beta and the other rows'.
struct SimCoef {
  const double* alpha;  // [nr] or null
  const double* lx;     // [nr] owner log-sum-exp (student)
  const double* ly;     // [nr] owner teacher log-sum-exp (soft KL) or null
  const double* beta;   // [no] or null
  const double* mx;     // [no] other rows' log-sum-exp
  const double* my;     // [no] other rows' teacher log-sum-exp (soft KL) or null
};

/// Number of doubles of forward statistics per row and split: (m, l) or (mx, lx, my, ly, cy).
template <bool KL>
inline constexpr int kSimStats = KL ? 5 : 2;

/// acc[k] = sum_q r[i0 + w + 8k, q] * o[j0 + lane, q] over q < d, staged through shared memory (zero padded).
/// Every thread of the block must call it (it contains __syncthreads).
template <class T>
__device__ __forceinline__ void sim_tile(const T* __restrict__ r, const T* __restrict__ o, index_t nr, index_t no,
                                         index_t d, index_t i0, index_t j0, T* rs, T* os,
                                         T (&acc)[SimTile<T>::kRowsPerWarp]) {
  using Tl = SimTile<T>;
  const int w = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
  DISTILL_UNROLL
  for (int k = 0; k < Tl::kRowsPerWarp; ++k) acc[k] = T(0);
  for (index_t k0 = 0; k0 < d; k0 += Tl::kDk) {
    __syncthreads();  // the previous chunk's readers are done
    for (int e = static_cast<int>(threadIdx.x); e < Tl::kRows * Tl::kDk; e += Tl::kThreads) {
      const int rr = e / Tl::kDk, q = e % Tl::kDk;
      const index_t gi = i0 + rr, gq = k0 + q;
      rs[rr * Tl::kDk + q] = (gi < nr && gq < d) ? r[gi * d + gq] : T(0);
    }
    for (int e = static_cast<int>(threadIdx.x); e < Tl::kCols * Tl::kDk; e += Tl::kThreads) {
      const int jj = e / Tl::kDk, q = e % Tl::kDk;
      const index_t gj = j0 + jj, gq = k0 + q;
      os[q * (Tl::kCols + 1) + jj] = (gj < no && gq < d) ? o[gj * d + gq] : T(0);
    }
    __syncthreads();
    for (int q = 0; q < Tl::kDk; ++q) {
      const T ov = os[q * (Tl::kCols + 1) + lane];
      DISTILL_UNROLL
      for (int k = 0; k < Tl::kRowsPerWarp; ++k) acc[k] += rs[(w + Tl::kWarps * k) * Tl::kDk + q] * ov;
    }
  }
}

/// Online softmax statistics: m (running max or the fixed shift), l = sum exp(x - m) (double).
template <class T>
__device__ __forceinline__ void sim_accumulate(T x, int fixed, T& m, double& l) {
  if (fixed) {
    l += static_cast<double>(device_exp(x - m));
  } else if (x > m) {
    l = l * static_cast<double>(device_exp(m - x)) + 1.0;
    m = x;
  } else {
    l += static_cast<double>(device_exp(x - m));
  }
}
/// The same for the teacher row, also carrying c = sum exp(y - m)(y - x).
template <class T>
__device__ __forceinline__ void sim_accumulate_kl(T y, T diff, int fixed, T& m, double& l, double& c) {
  if (fixed || !(y > m)) {
    const T e = device_exp(y - m);
    l += static_cast<double>(e);
    c += static_cast<double>(e) * static_cast<double>(diff);
  } else {
    const double f = static_cast<double>(device_exp(m - y));
    l = l * f + 1.0;
    c = c * f + static_cast<double>(diff);
    m = y;
  }
}
/// Merges the lanes' (m, l[, c]) of one row; every lane gets the result.
template <class T>
__device__ __forceinline__ void sim_merge_lanes(T m, double l, double c, double& m_out, double& l_out, double& c_out) {
  const T mm = warp_max(m);
  const double f = (m == static_cast<T>(-INFINITY)) ? 0.0 : static_cast<double>(device_exp(m - mm));
  l_out = warp_sum(l * f);
  c_out = warp_sum(c * f);
  m_out = static_cast<double>(mm);
}

template <class T, bool KL>
__global__ void __launch_bounds__(SimTile<T>::kThreads, 1)
    sim_forward_kernel(SimArgs<T> a, int tiles_per_split, double* __restrict__ part) {
  using Tl = SimTile<T>;
  __shared__ T rs[Tl::kRows * Tl::kDk];
  __shared__ T os[Tl::kDk * (Tl::kCols + 1)];
  const int w = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const index_t i0 = static_cast<index_t>(blockIdx.x) * Tl::kRows;
  const index_t tiles = ceil_div(a.no, Tl::kCols);
  const index_t t0 = static_cast<index_t>(blockIdx.z) * tiles_per_split;
  const index_t t1 = min_of<index_t>(tiles, t0 + tiles_per_split);
  const T start = a.fixed ? a.shift : static_cast<T>(-INFINITY);
  T mx[Tl::kRowsPerWarp], my[Tl::kRowsPerWarp];
  double lx[Tl::kRowsPerWarp], ly[Tl::kRowsPerWarp], cy[Tl::kRowsPerWarp];
  DISTILL_UNROLL
  for (int k = 0; k < Tl::kRowsPerWarp; ++k) {
    mx[k] = my[k] = start;
    lx[k] = ly[k] = cy[k] = 0.0;
  }
  for (index_t t = t0; t < t1; ++t) {
    const index_t j0 = t * Tl::kCols;
    T x[Tl::kRowsPerWarp], y[Tl::kRowsPerWarp];
    sim_tile(a.r, a.o, a.nr, a.no, a.d, i0, j0, rs, os, x);
    if constexpr (KL) sim_tile(a.rt, a.ot, a.nr, a.no, a.dt, i0, j0, rs, os, y);
    const index_t j = j0 + lane;
    DISTILL_UNROLL
    for (int k = 0; k < Tl::kRowsPerWarp; ++k) {
      const index_t i = i0 + w + Tl::kWarps * k;
      if (i >= a.nr || j >= a.no || (a.exclude_diag && i == j)) continue;
      const T xs = a.scale * x[k];
      sim_accumulate(xs, a.fixed, mx[k], lx[k]);
      if constexpr (KL) {
        const T ys = a.scale * y[k];
        sim_accumulate_kl(ys, ys - xs, a.fixed, my[k], ly[k], cy[k]);
      }
    }
  }
  DISTILL_UNROLL
  for (int k = 0; k < Tl::kRowsPerWarp; ++k) {
    const index_t i = i0 + w + Tl::kWarps * k;
    double m0, l0, c0, m1 = 0, l1 = 0, c1 = 0;
    sim_merge_lanes(mx[k], lx[k], 0.0, m0, l0, c0);
    if constexpr (KL) sim_merge_lanes(my[k], ly[k], cy[k], m1, l1, c1);
    if (lane == 0 && i < a.nr) {
      double* p = part + (static_cast<index_t>(blockIdx.z) * a.nr + i) * kSimStats<KL>;
      p[0] = m0;
      p[1] = l0;
      if constexpr (KL) {
        p[2] = m1;
        p[3] = l1;
        p[4] = c1;
      }
    }
  }
}

/// Merges the splits' statistics in split order: lse_x [nr] (-inf for a row without an allowed column), and for
/// KL lse_y and cross = sum_j p_ij (Y_ij - X_ij).
template <bool KL>
__global__ void sim_combine_stats_kernel(const double* __restrict__ part, index_t nr, int splits,
                                         double* __restrict__ lse_x, double* __restrict__ lse_y,
                                         double* __restrict__ cross) {
  const index_t i = global_thread();
  if (i >= nr) return;
  constexpr int ns = kSimStats<KL>;
  for (int which = 0; which < (KL ? 2 : 1); ++which) {
    double m = -INFINITY, l = 0, c = 0;
    for (int z = 0; z < splits; ++z) {
      const double* p = part + (static_cast<index_t>(z) * nr + i) * ns + 2 * which;
      const double pm = p[0], pl = p[1], pc = which ? p[2] : 0.0;
      if (pl == 0.0) continue;
      if (pm > m) {
        const double f = (l == 0.0) ? 0.0 : exp(m - pm);
        l = l * f + pl;
        c = c * f + pc;
        m = pm;
      } else {
        const double f = exp(pm - m);
        l += pl * f;
        c += pc * f;
      }
    }
    const double lse = l > 0 ? m + log(l) : -INFINITY;
    if (which == 0) {
      lse_x[i] = lse;
    } else {
      lse_y[i] = lse;
      cross[i] = l > 0 ? c / l : 0.0;
    }
  }
}

/// exp(s - lse) for a row with coefficient `coef` (0 when coef is 0: that row's lse may be -inf).
template <class T>
__device__ __forceinline__ T sim_p(T s, double lse) {
  return device_exp(static_cast<T>(static_cast<double>(s) - lse));
}

template <class T, bool KL>
__global__ void __launch_bounds__(SimTile<T>::kThreads, 1)
    sim_backward_kernel(SimArgs<T> a, SimCoef cf, int tiles_per_split, T* __restrict__ part) {
  using Tl = SimTile<T>;
  __shared__ T rs[Tl::kRows * Tl::kDk];
  __shared__ T os[Tl::kDk * (Tl::kCols + 1)];
  __shared__ T ws[Tl::kRows * (Tl::kCols + 1)];
  __shared__ T vs[Tl::kCols * Tl::kDv];
  const int w = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const index_t i0 = static_cast<index_t>(blockIdx.x) * Tl::kRows;
  const index_t v0 = static_cast<index_t>(blockIdx.y) * Tl::kDv;
  const index_t tiles = ceil_div(a.no, Tl::kCols);
  const index_t t0 = static_cast<index_t>(blockIdx.z) * tiles_per_split;
  const index_t t1 = min_of<index_t>(tiles, t0 + tiles_per_split);
  T acc[Tl::kRowsPerWarp][Tl::kVPerLane];
  double alpha[Tl::kRowsPerWarp], lxr[Tl::kRowsPerWarp], lyr[Tl::kRowsPerWarp];
  DISTILL_UNROLL
  for (int k = 0; k < Tl::kRowsPerWarp; ++k) {
    const index_t i = i0 + w + Tl::kWarps * k;
    const bool live = i < a.nr && cf.alpha != nullptr;
    alpha[k] = live ? cf.alpha[i] : 0.0;
    lxr[k] = alpha[k] != 0.0 ? cf.lx[i] : 0.0;
    lyr[k] = (KL && alpha[k] != 0.0) ? cf.ly[i] : 0.0;
    DISTILL_UNROLL
    for (int q = 0; q < Tl::kVPerLane; ++q) acc[k][q] = T(0);
  }
  for (index_t t = t0; t < t1; ++t) {
    const index_t j0 = t * Tl::kCols;
    T x[Tl::kRowsPerWarp], y[Tl::kRowsPerWarp];
    sim_tile(a.r, a.o, a.nr, a.no, a.d, i0, j0, rs, os, x);
    if constexpr (KL) sim_tile(a.rt, a.ot, a.nr, a.no, a.dt, i0, j0, rs, os, y);
    const index_t j = j0 + lane;
    const double beta = (j < a.no && cf.beta != nullptr) ? cf.beta[j] : 0.0;
    const double mxo = beta != 0.0 ? cf.mx[j] : 0.0;
    const double myo = (KL && beta != 0.0) ? cf.my[j] : 0.0;
    DISTILL_UNROLL
    for (int k = 0; k < Tl::kRowsPerWarp; ++k) {
      const index_t i = i0 + w + Tl::kWarps * k;
      T wij = T(0);
      if (i < a.nr && j < a.no && !(a.exclude_diag && i == j)) {
        const T xs = a.scale * x[k];
        if constexpr (KL) {
          const T ys = a.scale * y[k];
          if (alpha[k] != 0.0)
            wij += static_cast<T>(alpha[k]) * (sim_p(xs, lxr[k]) - sim_p(ys, lyr[k]));
          if (beta != 0.0) wij += static_cast<T>(beta) * (sim_p(xs, mxo) - sim_p(ys, myo));
        } else {
          if (alpha[k] != 0.0) wij += static_cast<T>(alpha[k]) * sim_p(xs, lxr[k]);
          if (beta != 0.0) wij += static_cast<T>(beta) * sim_p(xs, mxo);
        }
      }
      ws[(w + Tl::kWarps * k) * (Tl::kCols + 1) + lane] = wij;
    }
    for (int e = static_cast<int>(threadIdx.x); e < Tl::kCols * Tl::kDv; e += Tl::kThreads) {
      const int jj = e / Tl::kDv, c = e % Tl::kDv;
      const index_t gj = j0 + jj, gc = v0 + c;
      vs[e] = (gj < a.no && gc < a.d) ? a.o[gj * a.d + gc] : T(0);
    }
    __syncthreads();
    for (int jj = 0; jj < Tl::kCols; ++jj) {
      T vv[Tl::kVPerLane];
      DISTILL_UNROLL
      for (int q = 0; q < Tl::kVPerLane; ++q) vv[q] = vs[jj * Tl::kDv + lane + kWarpSize * q];
      DISTILL_UNROLL
      for (int k = 0; k < Tl::kRowsPerWarp; ++k) {
        const T wv = ws[(w + Tl::kWarps * k) * (Tl::kCols + 1) + jj];
        DISTILL_UNROLL
        for (int q = 0; q < Tl::kVPerLane; ++q) acc[k][q] += wv * vv[q];
      }
    }
    __syncthreads();  // ws and vs are rewritten by the next tile
  }
  DISTILL_UNROLL
  for (int k = 0; k < Tl::kRowsPerWarp; ++k) {
    const index_t i = i0 + w + Tl::kWarps * k;
    if (i >= a.nr) continue;
    T* out = part + (static_cast<index_t>(blockIdx.z) * a.nr + i) * a.d;
    DISTILL_UNROLL
    for (int q = 0; q < Tl::kVPerLane; ++q) {
      const index_t c = v0 + lane + kWarpSize * q;
      if (c < a.d) out[c] = acc[k][q];
    }
  }
}

/// h[i, c] (+)= alpha * sum_z part[z, i, c], the splits in order.
template <class T>
__global__ void sim_combine_grad_kernel(const T* __restrict__ part, index_t n, int splits, T alpha,
                                        T* __restrict__ h, int accumulate) {
  for (index_t e = global_thread(); e < n; e += grid_threads()) {
    T s = part[e];
    for (int z = 1; z < splits; ++z) s += part[static_cast<index_t>(z) * n + e];
    const T v = alpha * s;
    h[e] = accumulate ? h[e] + v : v;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------------------------
/// How many column ranges each row tile is split into: enough blocks to fill a large GPU (~256) when the rows are
/// few, never more than the column tiles. A function of the shape only. `forced` > 0 overrides (tests).
struct SimPlan {
  index_t row_tiles, col_tiles;
  int splits, tiles_per_split;
};
template <class T>
SimPlan sim_plan(index_t nr, index_t no, int forced = 0) {
  using Tl = SimTile<T>;
  SimPlan p{ceil_div(nr, Tl::kRows), ceil_div(no, Tl::kCols), 1, 1};
  const index_t want = forced > 0 ? forced : ceil_div(256, max_of<index_t>(p.row_tiles, 1));
  const index_t splits = max_of<index_t>(1, min_of<index_t>(want, max_of<index_t>(p.col_tiles, 1)));
  p.tiles_per_split = static_cast<int>(ceil_div(max_of<index_t>(p.col_tiles, 1), splits));
  p.splits = static_cast<int>(ceil_div(max_of<index_t>(p.col_tiles, 1), p.tiles_per_split));
  return p;
}

template <class T>
void sim_check(const char* what, const SimArgs<T>& a, bool kl) {
  DISTILL_CHECK(a.nr >= 0 && a.no >= 0 && a.d >= 1, what, ": invalid similarity [", a.nr, " x ", a.d, "] * [", a.no,
                " x ", a.d, "]^T");
  DISTILL_CHECK(!kl || (a.rt != nullptr && a.ot != nullptr && a.dt >= 1), what,
                ": the soft-KL form needs teacher rows and columns of width >= 1");
  DISTILL_CHECK(!a.exclude_diag || a.nr == a.no, what, ": excluding the diagonal needs a square similarity, got ",
                a.nr, " x ", a.no);
  DISTILL_CHECK(ceil_div(a.nr, SimTile<T>::kRows) <= 2147483647, what, ": too many rows (", a.nr, ")");
}

/// Forward statistics. `part` holds plan.splits * nr * kSimStats doubles. lse_y / cross only for the KL form.
template <class T>
void sim_forward(cudaStream_t s, const SimArgs<T>& a, const SimPlan& plan, double* part, double* lse_x,
                 double* lse_y, double* cross) {
  const bool kl = a.rt != nullptr;
  sim_check("similarity forward", a, kl);
  if (a.nr == 0) return;
  DISTILL_CHECK(plan.splits <= 65535, "similarity forward: too many column splits (", plan.splits, ")");
  const LaunchConfig cfg{dim3(static_cast<unsigned int>(plan.row_tiles), 1, static_cast<unsigned int>(plan.splits)),
                         dim3(SimTile<T>::kThreads), 0, s};
  if (kl) launch("sim_forward_kernel<kl>", sim_forward_kernel<T, true>, cfg, a, plan.tiles_per_split, part);
  else launch("sim_forward_kernel", sim_forward_kernel<T, false>, cfg, a, plan.tiles_per_split, part);
  const LaunchConfig comb{elementwise_grid(a.nr), dim3(kElementwiseThreads), 0, s};
  if (kl)
    launch("sim_combine_stats_kernel<kl>", sim_combine_stats_kernel<true>, comb, part, a.nr, plan.splits, lse_x, lse_y,
           cross);
  else
    launch("sim_combine_stats_kernel", sim_combine_stats_kernel<false>, comb, part, a.nr, plan.splits, lse_x, lse_y,
           cross);
}

/// h [nr, d] (+)= alpha * sum_j W_ij o_j. `part` holds plan.splits * nr * d values of T.
template <class T>
void sim_backward(cudaStream_t s, const SimArgs<T>& a, const SimCoef& cf, const SimPlan& plan, T* part, T alpha, T* h,
                  bool accumulate) {
  const bool kl = a.rt != nullptr;
  sim_check("similarity backward", a, kl);
  DISTILL_CHECK(cf.alpha == nullptr || cf.lx != nullptr, "similarity backward: alpha needs the owner statistics");
  DISTILL_CHECK(cf.beta == nullptr || cf.mx != nullptr, "similarity backward: beta needs the other rows' statistics");
  DISTILL_CHECK(!kl || ((cf.alpha == nullptr || cf.ly != nullptr) && (cf.beta == nullptr || cf.my != nullptr)),
                "similarity backward: the soft-KL form needs the teacher statistics");
  if (a.nr == 0) return;
  const index_t slices = ceil_div(a.d, SimTile<T>::kDv);
  DISTILL_CHECK(slices <= 65535 && plan.splits <= 65535, "similarity backward: width ", a.d, " or split count ",
                plan.splits, " too large");
  const LaunchConfig cfg{dim3(static_cast<unsigned int>(plan.row_tiles), static_cast<unsigned int>(slices),
                              static_cast<unsigned int>(plan.splits)),
                         dim3(SimTile<T>::kThreads), 0, s};
  if (kl) launch("sim_backward_kernel<kl>", sim_backward_kernel<T, true>, cfg, a, cf, plan.tiles_per_split, part);
  else launch("sim_backward_kernel", sim_backward_kernel<T, false>, cfg, a, cf, plan.tiles_per_split, part);
  const index_t n = a.nr * a.d;
  launch("sim_combine_grad_kernel", sim_combine_grad_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s},
         part, n, plan.splits, alpha, h, accumulate ? 1 : 0);
}

// The entry points (cuda::Similarity, cuda::SimilarityCoefficients of cuda/api.hpp), with their scratch.
template <class T>
SimArgs<T> sim_args(const cuda::Similarity<T>& s) {
  return SimArgs<T>{s.rows,         s.cols,        s.n_rows,
                    s.n_cols,       s.dim,         s.teacher_rows,
                    s.teacher_cols, s.teacher_dim, static_cast<T>(s.scale),
                    s.exclude_diagonal ? 1 : 0,    s.fixed_shift ? 1 : 0, static_cast<T>(s.shift)};
}
template <class T>
void similarity_stats(cuda::ContextState& st, const cuda::Similarity<T>& s, double* lse, double* teacher_lse,
                      double* cross) {
  const SimPlan plan = sim_plan<T>(s.n_rows, s.n_cols, s.splits);
  const int per = s.teacher_rows ? kSimStats<true> : kSimStats<false>;
  auto part = st.scratch<double>(static_cast<std::size_t>(plan.splits * (s.n_rows > 0 ? s.n_rows : 1) * per));
  sim_forward<T>(st.stream(), sim_args(s), plan, static_cast<double*>(part.get()), lse, teacher_lse, cross);
}
template <class T>
void similarity_backward(cuda::ContextState& st, const cuda::Similarity<T>& s, const cuda::SimilarityCoefficients& c,
                         T alpha, T* grad_rows, bool accumulate) {
  const SimPlan plan = sim_plan<T>(s.n_rows, s.n_cols, s.splits);
  auto part = st.scratch<T>(static_cast<std::size_t>(plan.splits * (s.n_rows > 0 ? s.n_rows : 1) * s.dim));
  const SimCoef cf{c.row_coef, c.row_lse, c.row_teacher_lse, c.col_coef, c.col_lse, c.col_teacher_lse};
  sim_backward<T>(st.stream(), sim_args(s), cf, plan, static_cast<T*>(part.get()), alpha, grad_rows, accumulate);
}

}  // namespace distill::kernels
