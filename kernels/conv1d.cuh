// kernels/conv1d.cuh -- conv1d forward, grad-input and grad-weight + bias on the [B, C, L] layout.
//
//   y[b, o, t]  = bias[o] + sum_{c<Cin, u<K} w[o, c, u] * x[b, c, t + u*d - padL]          t in [0, Lout)
//   dx[b, c, s] = sum_{o, u} w[o, c, u] * dy[b, o, s - u*d + padL]
//               = sum_{o, u'} w[o, c, K-1-u'] * dy[b, o, s + u'*d - (d*(K-1) - padL)]   (u' = K-1-u)
//   dw[o, c, u] = sum_{b, t} dy[b, o, t] * x[b, c, t + u*d - padL],     dbias[o] = sum_{b, t} dy[b, o, t]
//
// So grad-input is the forward loop nest with transposed, flipped weights and the mirrored left padding
// d*(K-1) - padL: one kernel template serves both (TRANSPOSED). PyTorch's even-K 'same' rule (K = 8: 3 left,
// 4 right) and 'valid' are just values of padL / Lout; zero padding is predication while staging, never a copy.
//
// Forward / grad-input: direct implicit GEMM. A block computes a TO x TL tile (output channels x positions)
// of one sample; the reduction runs over input channels in chunks of `qc`. Per chunk the block stages the
// input rows with their halo, x[q, t0 - pad .. t0 - pad + TL + d(K-1)), once in shared memory and reuses them
// for all K taps, and stages the chunk's weights as [q][u][o]. Each thread owns RO output channels x RL
// positions (positions strided by TL/RL so that a warp reads consecutive shared-memory words).
//
// Small Cin (1..4, the first layer): memory/latency-bound; a block stages all input channels (+ halo) and a
// TO-channel weight slice, each thread owns RL positions and loops over the TO output channels.
//
// Grad-weight: a GEMM (Cout) x (Cin*K) with reduction over B*Lout, i.e. split-K territory. Block (x, y, z)
// owns a TO x TJ tile of dw (TJ columns of the flattened (c, u) index) and the (batch, time-tile) items
// z, z + S, z + 2S, ...; it stages dy[b, o-tile, t-tile] and the x rows its columns touch (+ halo) and writes
// its partial dw and dbias to a workspace. A second kernel sums the S partials in a fixed order: deterministic,
// no atomics. S depends only on the shape.
#pragma once

#include "context.cuh"
#include "distill/problems/conv1d.hpp"
#include "elementwise.cuh"

namespace distill::kernels {

/// Geometry passed to the kernels (the launcher has checked every value fits an int).
struct ConvDims {
  int batch;
  int out_ch;   // P: channels the kernel produces (Cout forward, Cin grad-input)
  int in_ch;    // Q: channels it reduces over    (Cin forward, Cout grad-input)
  int in_len;   // Li
  int out_len;  // Lo
  int kernel;   // K
  int dilation;
  int pad;      // left padding of the input seen by this kernel
};

/// Tile sizes of the general kernel: TO output channels x TL positions, RO x RL per thread.
template <int TO_, int TL_, int RO_, int RL_>
struct ConvTile {
  static constexpr int TO = TO_, TL = TL_, RO = RO_, RL = RL_;
  static constexpr int TX = TL / RL, TY = TO / RO, threads = TX * TY;
  static_assert(TL % RL == 0 && TO % RO == 0, "ConvTile: the tile must be a multiple of the per-thread tile.");
  static_assert(threads % 32 == 0 && threads <= 1024, "ConvTile: the block must be whole warps, at most 1024 threads.");
};
using ConvForwardTile = ConvTile<64, 128, 8, 4>;  // 256 threads, 32 accumulators each

/// Small-Cin kernel: TO output channels per block, NT threads x RL positions each.
template <int TO_, int NT_, int RL_>
struct SmallCinTile {
  static constexpr int TO = TO_, NT = NT_, RL = RL_, TL = NT * RL;
};
using ConvSmallCinTile = SmallCinTile<16, 128, 2>;

/// Grad-weight tile: TO output channels x TJ flattened (c, u) columns, TT positions per staged item.
template <int TO_, int TJ_, int TT_, int RO_, int RJ_>
struct WgradTile {
  static constexpr int TO = TO_, TJ = TJ_, TT = TT_, RO = RO_, RJ = RJ_;
  static constexpr int TXJ = TJ / RJ, threads = TXJ * (TO / RO);
  static_assert(TJ % RJ == 0 && TO % RO == 0, "WgradTile: the tile must be a multiple of the per-thread tile.");
  static_assert(threads % 32 == 0 && threads <= 1024, "WgradTile: the block must be whole warps, at most 1024 threads.");
};
using ConvWgradTile = WgradTile<64, 64, 64, 8, 2>;  // 256 threads, 16 accumulators each

inline constexpr std::size_t kConvSharedBudget = 32 * 1024;  // bytes of dynamic shared memory we aim for
inline constexpr std::size_t kConvSharedLimit = 48 * 1024;   // without the opt-in attribute
inline constexpr int kConvMaxChunk = 16;                     // input channels per staged chunk

// =========================================================================================================
// Forward and grad-input: general implicit GEMM
// =========================================================================================================
template <class T, class Tile, bool TRANSPOSED>
__global__ void __launch_bounds__(Tile::threads)
    conv1d_implicit_gemm_kernel(ConvDims d, const T* __restrict__ in, const T* __restrict__ w,
                                const T* __restrict__ bias, T* __restrict__ out, int qc, int accumulate) {
  constexpr int TO = Tile::TO, TL = Tile::TL, RO = Tile::RO, RL = Tile::RL, TX = Tile::TX, NT = Tile::threads;
  DISTILL_DYNAMIC_SHARED(T, smem);
  const int K = d.kernel, P = d.out_ch, Q = d.in_ch, dil = d.dilation;
  const int xw = TL + (K - 1) * dil;  // staged input row: the tile plus its halo
  constexpr int ws_stride = TO + kVecElems<T>;  // 16-byte-aligned rows: a thread's RO weights load as vectors
  T* xs = smem;                                 // [qc][xw]
  T* ws = smem + align_to_vec<T>(qc * xw);      // [qc * K][ws_stride]

  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % TX, ty = tid / TX;
  const int t0 = static_cast<int>(blockIdx.x) * TL;
  const int p0 = static_cast<int>(blockIdx.y) * TO;
  const int b = static_cast<int>(blockIdx.z);
  const T* in_b = in + static_cast<index_t>(b) * Q * d.in_len;

  T acc[RO][RL];
  DISTILL_UNROLL
  for (int i = 0; i < RO; ++i)
    DISTILL_UNROLL
    for (int j = 0; j < RL; ++j) acc[i][j] = T(0);

  for (int q0 = 0; q0 < Q; q0 += qc) {
    const int qn = min_of(qc, Q - q0);
    // Input rows with halo; zero padding by predication (PyTorch's asymmetric even-K rule is just `pad`).
    for (int i = tid; i < qn * xw; i += NT) {
      const int q = i / xw, s = i - q * xw;
      const int pos = t0 - d.pad + s;
      xs[i] = (pos >= 0 && pos < d.in_len) ? in_b[static_cast<index_t>(q0 + q) * d.in_len + pos] : T(0);
    }
    // Weights of the chunk as [q][u][o]; the global read order follows memory (u fastest).
    for (int i = tid; i < qn * K * TO; i += NT) {
      const int u = i % K, r = i / K;
      const int q = TRANSPOSED ? r / TO : r % qn;
      const int o = TRANSPOSED ? r % TO : r / qn;
      const int p = p0 + o;
      T v = T(0);
      if (p < P) {
        if constexpr (TRANSPOSED) v = w[(static_cast<index_t>(q0 + q) * P + p) * K + (K - 1 - u)];  // w is [Q][P][K]
        else v = w[(static_cast<index_t>(p) * Q + q0 + q) * K + u];                               // w is [P][Q][K]
      }
      ws[(q * K + u) * ws_stride + o] = v;
    }
    __syncthreads();
    for (int q = 0; q < qn; ++q) {
      const T* xrow = xs + q * xw + tx;
      const T* wrow = ws + q * K * ws_stride + ty * RO;
      for (int u = 0; u < K; ++u) {
        T wr[RO], xr[RL];
        load_aligned(wr, wrow + u * ws_stride);  // the warp shares ty: a broadcast
        DISTILL_UNROLL
        for (int j = 0; j < RL; ++j) xr[j] = xrow[u * dil + j * TX];
        DISTILL_UNROLL
        for (int i = 0; i < RO; ++i)
          DISTILL_UNROLL
          for (int j = 0; j < RL; ++j) acc[i][j] += wr[i] * xr[j];
      }
    }
    __syncthreads();  // the next chunk overwrites xs / ws
  }

  DISTILL_UNROLL
  for (int i = 0; i < RO; ++i) {
    const int p = p0 + ty * RO + i;
    if (p >= P) continue;
    const T bv = bias ? bias[p] : T(0);
    T* orow = out + (static_cast<index_t>(b) * P + p) * d.out_len;
    DISTILL_UNROLL
    for (int j = 0; j < RL; ++j) {
      const int t = t0 + tx + j * TX;
      if (t >= d.out_len) continue;
      const T v = acc[i][j] + bv;
      orow[t] = accumulate ? orow[t] + v : v;
    }
  }
}

// =========================================================================================================
// Forward for 1..4 input channels
// =========================================================================================================
template <class T, int CIN, class Tile>
__global__ void __launch_bounds__(Tile::NT)
    conv1d_small_cin_kernel(ConvDims d, const T* __restrict__ in, const T* __restrict__ w, const T* __restrict__ bias,
                            T* __restrict__ out, int accumulate) {
  constexpr int TO = Tile::TO, NT = Tile::NT, RL = Tile::RL, TL = Tile::TL;
  DISTILL_DYNAMIC_SHARED(T, smem);
  const int K = d.kernel, P = d.out_ch, dil = d.dilation;
  const int xw = TL + (K - 1) * dil;
  T* xs = smem;             // [CIN][xw]
  T* ws = smem + CIN * xw;  // [TO][CIN][K], as in global memory
  const int tid = static_cast<int>(threadIdx.x);
  const int t0 = static_cast<int>(blockIdx.x) * TL;
  const int p0 = static_cast<int>(blockIdx.y) * TO;
  const int b = static_cast<int>(blockIdx.z);
  const int pn = min_of(TO, P - p0);
  const T* in_b = in + static_cast<index_t>(b) * CIN * d.in_len;

  for (int i = tid; i < CIN * xw; i += NT) {
    const int c = i / xw, s = i - c * xw;
    const int pos = t0 - d.pad + s;
    xs[i] = (pos >= 0 && pos < d.in_len) ? in_b[static_cast<index_t>(c) * d.in_len + pos] : T(0);
  }
  const T* w_tile = w + static_cast<index_t>(p0) * CIN * K;
  for (int i = tid; i < pn * CIN * K; i += NT) ws[i] = w_tile[i];
  __syncthreads();

  for (int o = 0; o < pn; ++o) {
    T acc[RL];
    DISTILL_UNROLL
    for (int j = 0; j < RL; ++j) acc[j] = T(0);
    DISTILL_UNROLL
    for (int c = 0; c < CIN; ++c) {
      const T* xrow = xs + c * xw + tid;
      const T* wrow = ws + (o * CIN + c) * K;
      for (int u = 0; u < K; ++u) {
        const T wv = wrow[u];
        DISTILL_UNROLL
        for (int j = 0; j < RL; ++j) acc[j] += wv * xrow[u * dil + j * NT];
      }
    }
    const T bv = bias ? bias[p0 + o] : T(0);
    T* orow = out + (static_cast<index_t>(b) * P + p0 + o) * d.out_len;
    DISTILL_UNROLL
    for (int j = 0; j < RL; ++j) {
      const int t = t0 + tid + j * NT;
      if (t < d.out_len) orow[t] = accumulate ? orow[t] + acc[j] + bv : acc[j] + bv;
    }
  }
}

// =========================================================================================================
// Grad-weight + grad-bias: split-K partials, then a fixed-order reduction
// =========================================================================================================
template <class T, class Tile>
__global__ void __launch_bounds__(Tile::threads)
    conv1d_wgrad_partial_kernel(ConvDims d, const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ partial,
                                int items, int tiles_t, int splits) {
  constexpr int TO = Tile::TO, TJ = Tile::TJ, TT = Tile::TT, RO = Tile::RO, RJ = Tile::RJ, TXJ = Tile::TXJ;
  constexpr int NT = Tile::threads;
  DISTILL_DYNAMIC_SHARED(T, smem);
  // In grad-weight terms: P = Cout (rows of dw), Q = Cin, J = Cin*K flattened (c, u) columns.
  const int K = d.kernel, P = d.out_ch, Q = d.in_ch, dil = d.dilation;
  const int J = Q * K;
  const int j0 = static_cast<int>(blockIdx.x) * TJ;
  const int p0 = static_cast<int>(blockIdx.y) * TO;
  const int split = static_cast<int>(blockIdx.z);
  const int q_lo = j0 / K;
  const int nq = min_of(Q - 1, (j0 + TJ - 1) / K) - q_lo + 1;  // input channels the tile's columns touch
  const int xw = TT + (K - 1) * dil;
  constexpr int dys_stride = TO + kVecElems<T>;  // [TT][dys_stride]: a thread's RO values of dy load as vectors
  T* dys = smem;
  T* xs = smem + TT * dys_stride;               // [nq][xw]

  const int tid = static_cast<int>(threadIdx.x);
  const int tj = tid % TXJ, to = tid / TXJ;
  const bool with_bias = blockIdx.x == 0;
  int xoff[RJ];
  DISTILL_UNROLL
  for (int jj = 0; jj < RJ; ++jj) {
    const int j = j0 + tj + jj * TXJ;
    const int q = j / K, u = j - q * K;
    xoff[jj] = j < J ? (q - q_lo) * xw + u * dil : 0;
  }
  T acc[RO][RJ], bacc[RO];
  DISTILL_UNROLL
  for (int i = 0; i < RO; ++i) {
    bacc[i] = T(0);
    DISTILL_UNROLL
    for (int jj = 0; jj < RJ; ++jj) acc[i][jj] = T(0);
  }

  for (int item = split; item < items; item += splits) {
    const int b = item / tiles_t;
    const int t0 = (item - b * tiles_t) * TT;
    for (int i = tid; i < TO * TT; i += NT) {
      const int o = i / TT, tt = i - o * TT;
      const int p = p0 + o, t = t0 + tt;
      dys[tt * dys_stride + o] = (p < P && t < d.out_len) ? dy[(static_cast<index_t>(b) * P + p) * d.out_len + t] : T(0);
    }
    for (int i = tid; i < nq * xw; i += NT) {
      const int q = i / xw, s = i - q * xw;
      const int pos = t0 - d.pad + s;
      xs[i] = (pos >= 0 && pos < d.in_len) ? x[(static_cast<index_t>(b) * Q + q_lo + q) * d.in_len + pos] : T(0);
    }
    __syncthreads();
    for (int tt = 0; tt < TT; ++tt) {
      T dv[RO], xv[RJ];
      load_aligned(dv, dys + tt * dys_stride + to * RO);  // the warp shares `to`: a broadcast
      DISTILL_UNROLL
      for (int jj = 0; jj < RJ; ++jj) xv[jj] = xs[xoff[jj] + tt];
      DISTILL_UNROLL
      for (int i = 0; i < RO; ++i) {
        DISTILL_UNROLL
        for (int jj = 0; jj < RJ; ++jj) acc[i][jj] += dv[i] * xv[jj];
      }
      if (with_bias) {  // block-uniform: only the blocks of the first column tile sum dy for dbias
        DISTILL_UNROLL
        for (int i = 0; i < RO; ++i) bacc[i] += dv[i];
      }
    }
    __syncthreads();
  }

  const index_t stride = static_cast<index_t>(P) * J + P;  // one split's partial dw followed by its partial dbias
  T* mine = partial + static_cast<index_t>(split) * stride;
  DISTILL_UNROLL
  for (int i = 0; i < RO; ++i) {
    const int p = p0 + to * RO + i;
    if (p >= P) continue;
    DISTILL_UNROLL
    for (int jj = 0; jj < RJ; ++jj) {
      const int j = j0 + tj + jj * TXJ;
      if (j < J) mine[static_cast<index_t>(p) * J + j] = acc[i][jj];
    }
    if (with_bias && tj == 0) mine[static_cast<index_t>(P) * J + p] = bacc[i];
  }
}

/// dw[i] (+)= sum_s partial[s][i] (i < nw), dbias[i - nw] likewise; s in increasing order.
template <class T>
__global__ void conv1d_wgrad_reduce_kernel(const T* __restrict__ partial, int splits, index_t stride, T* __restrict__ dw,
                                           T* __restrict__ dbias, index_t nw, int accumulate) {
  for (index_t i = global_thread(); i < stride; i += grid_threads()) {
    T* dst = i < nw ? (dw ? dw + i : nullptr) : (dbias ? dbias + (i - nw) : nullptr);
    if (!dst) continue;
    T acc = T(0);
    for (int s = 0; s < splits; ++s) acc += partial[static_cast<index_t>(s) * stride + i];
    *dst = accumulate ? *dst + acc : acc;
  }
}

// =========================================================================================================
// Host side: validation, launch configuration, launchers
// =========================================================================================================
inline void check_conv_geometry(const char* what, const Conv1dGeometry& s) {
  DISTILL_CHECK(s.B >= 1 && s.Cin >= 1 && s.Cout >= 1 && s.L >= 1, what,
                ": batch, channels and length must be >= 1 (batch ", s.B, ", in_channels ", s.Cin,
                ", out_channels ", s.Cout, ", length ", s.L, ")");
  DISTILL_CHECK(s.K >= 1 && s.dilation >= 1, what, ": kernel ", s.K, " and dilation ", s.dilation,
                " must be >= 1");
  DISTILL_CHECK(s.pad_left >= 0 && s.Lout >= 1, what, ": pad_left ", s.pad_left, " must be >= 0 and out_length ",
                s.Lout, " >= 1");
  const index_t pad_right = s.Lout - s.L - s.pad_left + s.dilation * (s.K - 1);
  DISTILL_CHECK(pad_right >= 0, what, ": out_length ", s.Lout, " needs a negative right padding (", pad_right,
                ") for length ", s.L, ", kernel ", s.K, ", dilation ", s.dilation, ", pad_left ", s.pad_left);
  const index_t lim = (index_t(1) << 31) - 1;
  DISTILL_CHECK(s.B * s.Cin * s.L <= lim && s.B * s.Cout * s.Lout <= lim &&
                    s.Cout * s.Cin * s.K <= lim && s.dilation * (s.K - 1) <= lim / 4,
                what, ": tensors of more than 2^31 - 1 elements are not supported (batch ", s.B, ", channels ",
                s.Cin, " -> ", s.Cout, ", length ", s.L, ", kernel ", s.K, ")");
}

inline ConvDims conv_dims(const Conv1dGeometry& s, bool transposed) {
  ConvDims d{};
  d.batch = static_cast<int>(s.B);
  d.kernel = static_cast<int>(s.K);
  d.dilation = static_cast<int>(s.dilation);
  if (!transposed) {
    d.out_ch = static_cast<int>(s.Cout);
    d.in_ch = static_cast<int>(s.Cin);
    d.in_len = static_cast<int>(s.L);
    d.out_len = static_cast<int>(s.Lout);
    d.pad = static_cast<int>(s.pad_left);
  } else {
    d.out_ch = static_cast<int>(s.Cin);
    d.in_ch = static_cast<int>(s.Cout);
    d.in_len = static_cast<int>(s.Lout);
    d.out_len = static_cast<int>(s.L);
    d.pad = static_cast<int>(s.dilation * (s.K - 1) - s.pad_left);  // mirrored; may be negative
  }
  return d;
}

/// Input channels per chunk and the dynamic shared memory of the general kernel.
template <class T, class Tile>
inline void general_chunking(const char* what, const ConvDims& d, int& qc, std::size_t& bytes) {
  const std::size_t per_channel =
      sizeof(T) * (static_cast<std::size_t>(Tile::TL + (d.kernel - 1) * d.dilation) +
                   static_cast<std::size_t>(d.kernel) * (Tile::TO + kVecElems<T>));
  DISTILL_CHECK(per_channel <= kConvSharedLimit, what, ": kernel ", d.kernel, " with dilation ", d.dilation,
                " needs ", per_channel, " bytes of shared memory per input channel, above the ", kConvSharedLimit,
                "-byte limit");
  qc = static_cast<int>(min_of<std::size_t>(max_of<std::size_t>(kConvSharedBudget / per_channel, 1), kConvMaxChunk));
  qc = min_of(qc, d.in_ch);
  bytes = per_channel * static_cast<std::size_t>(qc) + 16;  // + the alignment padding between xs and ws
  DISTILL_CHECK(bytes <= kConvSharedLimit, what, ": kernel ", d.kernel, " with dilation ", d.dilation, " needs ", bytes,
                " bytes of shared memory, above the ", kConvSharedLimit, "-byte limit");
}

template <class T, class Tile, bool TRANSPOSED>
void launch_general(const char* what, cudaStream_t s, const ConvDims& d, const T* in, const T* w, const T* bias, T* out,
                    bool accumulate) {
  int qc = 0;
  std::size_t bytes = 0;
  general_chunking<T, Tile>(what, d, qc, bytes);
  const dim3 grid(static_cast<unsigned int>(ceil_div(d.out_len, Tile::TL)),
                  static_cast<unsigned int>(ceil_div(d.out_ch, Tile::TO)), static_cast<unsigned int>(d.batch));
  DISTILL_CHECK(grid.y <= 65535 && grid.z <= 65535, what, ": grid ", grid.x, "x", grid.y, "x", grid.z,
                " exceeds the y/z limit of 65535 (channels ", d.out_ch, ", batch ", d.batch, ")");
  launch(TRANSPOSED ? "conv1d_implicit_gemm_kernel<grad_input>" : "conv1d_implicit_gemm_kernel<forward>",
         conv1d_implicit_gemm_kernel<T, Tile, TRANSPOSED>, {grid, dim3(Tile::threads), bytes, s}, d, in, w, bias, out,
         qc, accumulate ? 1 : 0);
}

template <class T, int CIN, class Tile>
void launch_small_cin(cudaStream_t s, const ConvDims& d, const T* in, const T* w, const T* bias, T* out,
                      bool accumulate) {
  const std::size_t bytes =
      sizeof(T) * (static_cast<std::size_t>(CIN) * (Tile::TL + (d.kernel - 1) * d.dilation) +
                   static_cast<std::size_t>(Tile::TO) * CIN * d.kernel);
  DISTILL_CHECK(bytes <= kConvSharedLimit, "conv1d_forward (small Cin): kernel ", d.kernel, " with dilation ",
                d.dilation, " needs ", bytes, " bytes of shared memory, above the ", kConvSharedLimit, "-byte limit");
  const dim3 grid(static_cast<unsigned int>(ceil_div(d.out_len, Tile::TL)),
                  static_cast<unsigned int>(ceil_div(d.out_ch, Tile::TO)), static_cast<unsigned int>(d.batch));
  DISTILL_CHECK(grid.y <= 65535 && grid.z <= 65535, "conv1d_forward (small Cin): grid ", grid.x, "x", grid.y, "x",
                grid.z, " exceeds the y/z limit of 65535");
  launch("conv1d_small_cin_kernel", conv1d_small_cin_kernel<T, CIN, Tile>, {grid, dim3(Tile::NT), bytes, s}, d, in, w,
         bias, out, accumulate ? 1 : 0);
}

/// Forward. `small_cin`: use the 1..4-input-channel kernel (the launcher checks in_channels <= 4).
template <class T>
void conv1d_forward(cudaStream_t s, const Conv1dGeometry& p, const T* x, const T* w, const T* bias, T* y, bool accumulate,
                    bool small_cin) {
  check_conv_geometry("conv1d_forward", p);
  const ConvDims d = conv_dims(p, false);
  if (small_cin) {
    DISTILL_CHECK(p.Cin <= 4, "conv1d_forward: the small-Cin kernel handles 1..4 input channels, got ",
                  p.Cin);
    switch (d.in_ch) {
      case 1: return launch_small_cin<T, 1, ConvSmallCinTile>(s, d, x, w, bias, y, accumulate);
      case 2: return launch_small_cin<T, 2, ConvSmallCinTile>(s, d, x, w, bias, y, accumulate);
      case 3: return launch_small_cin<T, 3, ConvSmallCinTile>(s, d, x, w, bias, y, accumulate);
      default: return launch_small_cin<T, 4, ConvSmallCinTile>(s, d, x, w, bias, y, accumulate);
    }
  }
  launch_general<T, ConvForwardTile, false>("conv1d_forward", s, d, x, w, bias, y, accumulate);
}

template <class T>
void conv1d_backward_input(cudaStream_t s, const Conv1dGeometry& p, const T* dy, const T* w, T* dx, bool accumulate) {
  if (p.B == 0) return;  // an empty batch: nothing to write
  check_conv_geometry("conv1d_backward_input", p);
  const ConvDims d = conv_dims(p, true);
  launch_general<T, ConvForwardTile, true>("conv1d_backward_input", s, d, dy, w, nullptr, dx, accumulate);
}

/// Split-K plan of grad-weight: S splits of the (batch, time-tile) items; workspace S * (Cout*Cin*K + Cout).
struct WgradPlan {
  dim3 grid;
  int items = 0, tiles_t = 0, splits = 0;
  index_t stride = 0;  // elements per split
  std::size_t shared_bytes = 0;
  std::size_t workspace_elements() const { return static_cast<std::size_t>(splits) * static_cast<std::size_t>(stride); }
};

template <class T, class Tile = ConvWgradTile>
WgradPlan wgrad_plan(const Conv1dGeometry& p) {
  check_conv_geometry("conv1d_backward_weight", p);
  const ConvDims d = conv_dims(p, false);
  WgradPlan plan;
  const index_t J = p.Cin * p.K;
  plan.tiles_t = static_cast<int>(ceil_div(p.Lout, Tile::TT));
  DISTILL_CHECK(p.B * plan.tiles_t <= 2147483647, "conv1d_backward_weight: too many (batch, time tile) items");
  plan.items = static_cast<int>(p.B) * plan.tiles_t;
  const index_t gx = ceil_div(J, Tile::TJ), gy = ceil_div(p.Cout, Tile::TO);
  DISTILL_CHECK(gy <= 65535, "conv1d_backward_weight: ", p.Cout, " output channels exceed the grid limit");
  // Aim for ~512 blocks in total, never more splits than items: depends on the shape only (deterministic).
  plan.splits = static_cast<int>(min_of<index_t>(max_of<index_t>(ceil_div(512, gx * gy), 1), plan.items));
  plan.splits = min_of(plan.splits, 65535);
  plan.grid = dim3(static_cast<unsigned int>(gx), static_cast<unsigned int>(gy), static_cast<unsigned int>(plan.splits));
  plan.stride = p.Cout * J + p.Cout;
  const int max_nq = min_of<int>(d.in_ch, Tile::TJ / d.kernel + 2);
  plan.shared_bytes = sizeof(T) * (static_cast<std::size_t>(Tile::TO + kVecElems<T>) * Tile::TT +
                                   static_cast<std::size_t>(max_nq) * (Tile::TT + (d.kernel - 1) * d.dilation));
  DISTILL_CHECK(plan.shared_bytes <= kConvSharedLimit, "conv1d_backward_weight: kernel ", p.K, " with dilation ",
                p.dilation, " needs ", plan.shared_bytes, " bytes of shared memory, above the ", kConvSharedLimit,
                "-byte limit");
  return plan;
}

/// `workspace` holds plan.workspace_elements() values of T.
template <class T, class Tile = ConvWgradTile>
void conv1d_backward_weight(cudaStream_t s, const Conv1dGeometry& p, const WgradPlan& plan, const T* x, const T* dy, T* dw,
                            T* dbias, bool accumulate, T* workspace) {
  if (!dw && !dbias) return;
  const ConvDims d = conv_dims(p, false);
  launch("conv1d_wgrad_partial_kernel", conv1d_wgrad_partial_kernel<T, Tile>,
         {plan.grid, dim3(Tile::threads), plan.shared_bytes, s}, d, x, dy, workspace, plan.items, plan.tiles_t,
         plan.splits);
  const index_t nw = p.Cout * p.Cin * p.K;
  launch("conv1d_wgrad_reduce_kernel", conv1d_wgrad_reduce_kernel<T>,
         {elementwise_grid(plan.stride), dim3(kElementwiseThreads), 0, s}, workspace, plan.splits, plan.stride, dw,
         dbias, nw, accumulate ? 1 : 0);
}

// The entry points (cuda/entry_points.inc): the kernel choice, empty batches, the split-K workspace.
/// Forward; Conv1dAlgo::Auto takes the small-Cin kernel for 1..4 input channels.
template <class T>
void conv1d_forward(cudaStream_t s, const Conv1dGeometry& p, const T* x, const T* w, const T* bias, T* y, bool accumulate,
                    Conv1dAlgo algo) {
  if (p.B == 0) return;
  const bool small = algo == Conv1dAlgo::SmallCin || (algo == Conv1dAlgo::Auto && p.Cin <= 4);
  conv1d_forward<T>(s, p, x, w, bias, y, accumulate, small);
}
/// Grad-weight with its workspace from the context; an empty batch gives zero gradients (unless accumulating).
template <class T>
void conv1d_backward_weight(cuda::ContextState& st, const Conv1dGeometry& p, const T* x, const T* dy, T* dw, T* dbias,
                            bool accumulate) {
  if (p.B == 0) {
    if (!accumulate && dw)
      DISTILL_CUDA_CHECK(cudaMemsetAsync(dw, 0, sizeof(T) * static_cast<std::size_t>(p.Cout * p.Cin * p.K), st.stream()));
    if (!accumulate && dbias)
      DISTILL_CUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(T) * static_cast<std::size_t>(p.Cout), st.stream()));
    return;
  }
  const WgradPlan plan = wgrad_plan<T>(p);
  if (!dw && !dbias) return;
  auto workspace = st.scratch<T>(plan.workspace_elements());
  conv1d_backward_weight<T>(st.stream(), p, plan, x, dy, dw, dbias, accumulate, static_cast<T*>(workspace.get()));
}

}  // namespace distill::kernels
