// distill/cpu/conv1d.hpp -- raw CPU kernels of a stride-1 conv1d: forward, grad-input, grad-weight (+ bias).
//
// Layouts (contiguous, row-major): x [B, Cin, L], w [Cout, Cin, K], y / dy [B, Cout, Lout]; see
// problems/conv1d.hpp for the padding rule. All three passes are implicit GEMMs on one register-blocked
// micro-kernel (MR x NR accumulators; AVX2+FMA intrinsics at the avx2 and avx512 levels, a portable loop at the
// portable level). The passes are compiled once per instruction-set level (cpu/conv1d_isa.inl, included below
// inside the target regions of cpu/isa.hpp) and the level of the caller's Exec picks one at run time.
// No im2col matrix is ever built: each pass keeps a zero-padded copy of the rows it shifts, and the micro-kernel
// reads its operands straight from those rows.
//
//   forward      y[b]  (Cout x Lout)   = W (Cout x Cin*K) * Xcol[b] (Cin*K x Lout)  (+ bias)   per batch element
//   grad-input   dx[b] (Cin x L)      += Wt (Cin x Cout*K) * DYcol[b] (Cout*K x L)            per batch element
//   grad-weight  dw^T  (Cin*K x Cout) += sum_b Xcol[b] (Cin*K x Lout) * dy[b]^T (Lout x Cout)
//
// Xcol[b][(c, u), t] = xpad[c, t + u * dilation] is row c of a padded copy of x[b] shifted by u * dilation, so a
// row of B is a pointer (base + offset[k]); W is packed once per call into MR-row panels; grad-weight reads its
// A operand as MR row pointers into the padded x and its B operand from dy transposed once per call.
//
// Threads: OpenMP over (batch element, column block) work items for forward and grad-input, over row (or
// column) blocks of dw for grad-weight. Every output element is reduced by one thread in an order that does not
// depend on the thread count, so each pass gives bitwise identical results for any `threads` (no atomics, no
// per-thread partial sums). Scratch (packed W, padded rows, dy^T) is allocated once per call.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <numeric>
#include <type_traits>
#include <vector>

#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"
#include "distill/cpu/exec.hpp"
#include "distill/core/isa_regions.hpp"
#include "distill/problems/conv1d.hpp"

namespace distill::cpu {

namespace conv1d_detail {

template <class T>
struct Blocking;
template <>
struct Blocking<float> {
  static constexpr index_t MR = 6, NR = 16;  // 12 accumulator registers of 8 floats
  static constexpr index_t KC = 512;         // reduction block (forward, grad-input)
  static constexpr index_t KCW = 256;        // reduction block of grad-weight: B micro-panel kc x NR = 16 KiB
};
template <>
struct Blocking<double> {
  static constexpr index_t MR = 6, NR = 8;  // 12 accumulator registers of 4 doubles
  static constexpr index_t KC = 256;
  static constexpr index_t KCW = 256;
};

/// 64-byte aligned scratch for the duration of one call, from the caller's Exec (a context's caching pool).
template <class T>
class Scratch {
public:
  Scratch() = default;
  Scratch(const Exec& ex, index_t n, bool zero = false) : t_(ex.buffer<T>(n)), p_(t_.data()) {
    if (zero) std::memset(p_, 0, sizeof(T) * static_cast<std::size_t>(t_.numel()));
  }
  T* get() const noexcept { return p_; }

private:
  Tensor<T, 1> t_;
  T* p_ = nullptr;
};

inline index_t round_up(index_t v, index_t m) { return (v + m - 1) / m * m; }

// ---------------------------------------------------------------------------------------------------------
// Operand addressing for the micro-kernel. A(k, i) is read by broadcast from a.addr(k, i); row k of B (NR
// consecutive columns) starts at b.row(k).
// ---------------------------------------------------------------------------------------------------------
template <class T>
struct PackedA {  // panel laid out kc x MR
  const T* p;
  const T* addr(index_t k, index_t i) const { return p + k * Blocking<T>::MR + i; }
};
template <class T>
struct RowsA {  // MR independent rows, contiguous in k
  const T* r[Blocking<T>::MR];
  const T* addr(index_t k, index_t i) const { return r[i] + k; }
};
template <class T>
struct OffsetB {  // row k at base + off[k]
  const T* base;
  const index_t* off;
  const T* row(index_t k) const { return base + off[k]; }
};
template <class T>
struct StridedB {  // row k at base + k * ld
  const T* base;
  index_t ld;
  const T* row(index_t k) const { return base + k * ld; }
};

// ---------------------------------------------------------------------------------------------------------
// Micro-kernel: acc[i][j] = sum_{k < kc} A(k, i) * B(k, j) for an MR x NR tile, then for the mr x nr valid part
//   C[i, j] += acc[i][j]                     (init == nullptr)
//   C[i, j]  = acc[i][j] + init[i]           (init != nullptr: the first reduction block of the forward pass)
// Rows i >= mr and columns j >= nr are computed from whatever finite values the operands hold and discarded.
// ---------------------------------------------------------------------------------------------------------
template <class T>
inline void write_tile(const T* tile, index_t NR, T* C, index_t ldc, index_t mr, index_t nr, const T* init) {
  for (index_t i = 0; i < mr; ++i) {
    if (init)
      for (index_t j = 0; j < nr; ++j) C[i * ldc + j] = tile[i * NR + j] + init[i];
    else
      for (index_t j = 0; j < nr; ++j) C[i * ldc + j] += tile[i * NR + j];
  }
}

template <class T, class AP, class BP>
inline void ukernel_generic(index_t kc, const AP& a, const BP& b, T* C, index_t ldc, index_t mr, index_t nr,
                            const T* init) {
  constexpr index_t MR = Blocking<T>::MR, NR = Blocking<T>::NR;
  T acc[MR * NR] = {};
  for (index_t k = 0; k < kc; ++k) {
    const T* bk = b.row(k);
    for (index_t i = 0; i < MR; ++i) {
      const T av = *a.addr(k, i);
      for (index_t j = 0; j < NR; ++j) acc[i * NR + j] += av * bk[j];
    }
  }
  write_tile(acc, NR, C, ldc, mr, nr, init);
}


// ---------------------------------------------------------------------------------------------------------
// Shared pieces of the passes
// ---------------------------------------------------------------------------------------------------------

/// Packs element (i, k) = at(i, k) for i < M (zero past M) into panel-major Kd x MR layout.
template <class T, class At>
void prepack_a(T* dst, index_t M, index_t Kd, At at) {
  constexpr index_t MR = Blocking<T>::MR;
  for (index_t p = 0; p * MR < M; ++p) {
    T* d = dst + p * Kd * MR;
    const index_t rows = std::min(MR, M - p * MR);
    for (index_t k = 0; k < Kd; ++k) {
      for (index_t i = 0; i < rows; ++i) d[k * MR + i] = at(p * MR + i, k);
      for (index_t i = rows; i < MR; ++i) d[k * MR + i] = T(0);
    }
  }
}

/// dst[r, q] = src[r, q - lead] for q - lead in [0, n), zero elsewhere in [0, width).
template <class T>
void pad_rows(T* dst, index_t width, const T* src, index_t rows, index_t n, index_t lead) {
  for (index_t r = 0; r < rows; ++r) {
    T* d = dst + r * width;
    std::fill(d, d + lead, T(0));
    std::memcpy(d + lead, src + r * n, sizeof(T) * static_cast<std::size_t>(n));
    std::fill(d + lead + n, d + width, T(0));
  }
}

/// Work split for the per-batch-element passes: the columns of one batch element are cut into `splits` blocks
/// (multiples of NR) when the batch alone does not divide evenly among the threads.
inline index_t column_splits(index_t B, index_t N, index_t NR, int threads) {
  if (threads <= 1) return 1;
  const index_t g = std::gcd(B, index_t(threads));
  const index_t want = index_t(threads) / std::max<index_t>(g, 1);
  return std::clamp<index_t>(want, 1, std::max<index_t>(1, (N + NR - 1) / NR));
}

inline int threads_for_work(double macs, int threads) {
  return macs < 1e5 ? 1 : std::max(threads, 1);  // below ~0.2 MFLOP a parallel region costs more than it saves
}

}  // namespace conv1d_detail
}  // namespace distill::cpu

// The passes, once per instruction-set level: conv1d_detail::isa_portable, ::isa_avx2, ::isa_avx512.
#define DISTILL_ISA_BODY "distill/cpu/conv1d_isa.inl"
#include "distill/core/isa_foreach.inl"

namespace distill::cpu {

/// y = conv1d(x, w) + bias. `bias` may be null. y is overwritten. Runs the kernels of level `ex.isa`.
template <class T>
void conv1d_forward(Exec ex, const Conv1dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  DISTILL_ISA_CALL(ex.isa, conv1d_detail, forward<T>(ex, g, x, w, bias, y));
}

/// dx += the gradient of conv1d_forward with respect to x, given dy.
template <class T>
void conv1d_backward_input(Exec ex, const Conv1dGeometry& g, const T* dy, const T* w, T* dx) {
  DISTILL_ISA_CALL(ex.isa, conv1d_detail, backward_input<T>(ex, g, dy, w, dx));
}

/// dw += the gradient of conv1d_forward with respect to w (skipped when dw is null); db += the sum over (b, t) of
/// dy when db is not null.
template <class T>
void conv1d_backward_weight(Exec ex, const Conv1dGeometry& g, const T* x, const T* dy, T* dw, T* db) {
  DISTILL_ISA_CALL(ex.isa, conv1d_detail, backward_weight<T>(ex, g, x, dy, dw, db));
}

}  // namespace distill::cpu
