// distill/problems/conv1d.hpp -- padding rules and extents of a stride-1 conv1d.
//
// Plain C++ (no Eigen): the CPU kernels, the autograd op and the CUDA kernels all compute their loops from one
// Conv1dGeometry. Layouts: x [B, Cin, L], w [Cout, Cin, K], y [B, Cout, Lout].
//
//   y[b, o, t] = bias[o] + sum_{c, u} w[o, c, u] * x[b, c, t + u * dilation - pad_left]   (x = 0 outside [0, L))
//
// Padding::Same follows PyTorch: the total padding dilation * (K - 1) is split as left = total / 2,
// right = total - left (K = 8: 3 left, 4 right), so Lout = L. Padding::Valid pads nothing:
// Lout = L - dilation * (K - 1), which must be >= 1.
#pragma once

#include "distill/core/error.hpp"
#include "distill/core/shape.hpp"

namespace distill {

enum class Padding { Same, Valid };

struct Conv1dOptions {
  Padding padding = Padding::Same;
  index_t dilation = 1;
};

/// Which Cuda forward kernel runs: Auto picks SmallCin for Cin <= 4, General otherwise (the CPU engine has one).
enum class Conv1dAlgo { Auto, General, SmallCin };

/// Extents and padding of one stride-1 conv1d: the one descriptor cpu::conv1d_* and cuda::conv1d_* take.
struct Conv1dGeometry {
  index_t B = 0, Cin = 0, Cout = 0, L = 0, K = 0;
  index_t dilation = 1;
  index_t pad_left = 0, pad_right = 0;
  index_t Lout = 0;

  /// Reduction length of one output element (Cin * K).
  constexpr index_t patch() const noexcept { return Cin * K; }
  /// Multiply-adds of one pass (forward, grad-input or grad-weight each cost this many).
  constexpr double macs() const noexcept {
    return double(B) * double(Cout) * double(Cin) * double(K) * double(Lout);
  }
  constexpr Shape<3> x_shape() const noexcept { return {B, Cin, L}; }
  constexpr Shape<3> w_shape() const noexcept { return {Cout, Cin, K}; }
  constexpr Shape<3> y_shape() const noexcept { return {B, Cout, Lout}; }
};

/// Geometry of a stride-1 conv1d; throws distill::Error for non-positive sizes or an empty 'valid' output.
inline Conv1dGeometry conv1d_geometry(index_t B, index_t Cin, index_t Cout, index_t L, index_t K,
                                      Conv1dOptions opt = {}) {
  DISTILL_CHECK(B >= 0 && Cin >= 1 && Cout >= 1 && L >= 1, "conv1d: need batch >= 0 and channels, length >= 1; got B=",
                B, ", Cin=", Cin, ", Cout=", Cout, ", L=", L);
  DISTILL_CHECK(K >= 1, "conv1d: kernel size must be >= 1, got K=", K);
  DISTILL_CHECK(opt.dilation >= 1, "conv1d: dilation must be >= 1, got ", opt.dilation);
  Conv1dGeometry g;
  g.B = B;
  g.Cin = Cin;
  g.Cout = Cout;
  g.L = L;
  g.K = K;
  g.dilation = opt.dilation;
  const index_t span = opt.dilation * (K - 1);
  if (opt.padding == Padding::Same) {
    g.pad_left = span / 2;
    g.pad_right = span - g.pad_left;
    g.Lout = L;
  } else {
    g.pad_left = g.pad_right = 0;
    g.Lout = L - span;
    DISTILL_CHECK(g.Lout >= 1, "conv1d: 'valid' padding needs L >= dilation * (K - 1) + 1, but L=", L, " with K=", K,
                  " and dilation=", opt.dilation, " gives an output length of ", g.Lout);
  }
  return g;
}

}  // namespace distill
