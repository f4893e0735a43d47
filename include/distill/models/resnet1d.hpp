// distill/models/resnet1d.hpp -- ResNet1D(w): the time-series ResNet of Wang et al. (2017), encoder option A of
// the DCRLS reconstruction (docs/dcrls.md, "Sources of the reconstruction", states the architecture).
//
// snippet: fragment; given: Context<Cpu> ctx; Var<float, 3> x;
//   models::ResNet1D<64> enc{ctx};              // blocks of widths (64, 128, 128), kernels 8/5/3, GAP
//   auto feats = enc.forward_blocks(x);         // per-block outputs h_b [B, C_b, L] and GAP vectors g_b [B, C_b]
//   auto g = enc(x);                            // deepest GAP vector g_3 [B, 2w]: the representation
//
// Channel counts are types: the blocks are ResNetBlock1D<In, W>, <W, 2W>, <2W, 2W>, so wiring errors do not compile.
#pragma once

#include <array>

#include "distill/nn/nn.hpp"
#include "distill/ops/pool.hpp"

namespace distill::models {

template <index_t W, index_t InChannels = 1, class T = float, class D = Cpu>
class ResNet1D : public nn::Module<ResNet1D<W, InChannels, T, D>> {
  static_assert(W > 0, "ResNet1D<W>: the width W must be positive.");

public:
  using value_type = T;
  using device_type = D;
  static constexpr index_t in_channels = InChannels;
  static constexpr index_t out_channels = 2 * W;
  static constexpr int num_blocks = 3;
  /// Channels of each block's output.
  static constexpr std::array<index_t, 3> block_channels{W, 2 * W, 2 * W};

  static constexpr nn::name_string type_name() { return nn::name("ResNet1D<", W, ">"); }

  using Block1 = nn::ResNetBlock1D<InChannels, W, T, D>;
  using Block2 = nn::ResNetBlock1D<W, 2 * W, T, D>;
  using Block3 = nn::ResNetBlock1D<2 * W, 2 * W, T, D>;
  static constexpr unsigned parameter_ranks = nn::parameter_ranks_union<Block1, Block2, Block3>();
  static constexpr unsigned buffer_ranks = nn::buffer_ranks_union<Block1, Block2, Block3>();

  explicit ResNet1D(Context<D>& ctx) : b1_(ctx), b2_(ctx), b3_(ctx) {}

  /// Multiply-accumulates of the convolutions per time step (stride 1, "same" padding: a forward pass over a
  /// series of length L costs L times this): kernels 8/5/3 in every block, plus the 1x1 shortcut where the width
  /// changes. BN, ReLU, the residual add and GAP are not counted.
  static constexpr double conv_macs_per_step() {
    auto block = [](double in, double out) {
      return in * out * 8 + out * out * 5 + out * out * 3 + (in != out ? in * out : 0);
    };
    const double w = double(W), c = double(InChannels);
    return block(c, w) + block(w, 2 * w) + block(2 * w, 2 * w);
  }
  /// Forward FLOPs (2 per multiply-accumulate) of one series of length L.
  static constexpr double flops_per_series(index_t L) { return 2.0 * conv_macs_per_step() * double(L); }

  struct Features {
    std::array<Var<T, 3, D>, 3> maps;    // h_b: [B, C_b, L]
    std::array<Var<T, 2, D>, 3> pooled;  // g_b = GAP(h_b): [B, C_b]
  };

  /// Every block's output and its global average pool (for per-block projection heads).
  Features forward_blocks(const Var<T, 3, D>& x) {
    DISTILL_CHECK(x.extent(1) == InChannels, type_name().c_str(), ": input ", to_string(x.shape()), " has ",
                  x.extent(1), " channels but the encoder was declared for ", InChannels);
    Features f;
    f.maps[0] = b1_.forward(x);
    f.maps[1] = b2_.forward(f.maps[0]);
    f.maps[2] = b3_.forward(f.maps[1]);
    for (int b = 0; b < 3; ++b) f.pooled[b] = global_avg_pool(f.maps[b]);
    return f;
  }

  /// The representation used downstream: GAP of the deepest block, [B, 2W].
  Var<T, 2, D> forward(const Var<T, 3, D>& x) { return global_avg_pool(b3_.forward(b2_.forward(b1_.forward(x)))); }

  void train(bool on = true) {
    this->training_ = on;
    b1_.train(on);
    b2_.train(on);
    b3_.train(on);
  }

  template <class Self, class F>
  static void visit_parameters(Self& self, F&& f) {
    self.b1_.for_each_parameter([&](std::string_view n, auto& v) { f(nn::detail::join("block1", n), v); });
    self.b2_.for_each_parameter([&](std::string_view n, auto& v) { f(nn::detail::join("block2", n), v); });
    self.b3_.for_each_parameter([&](std::string_view n, auto& v) { f(nn::detail::join("block3", n), v); });
  }
  template <class Self, class F>
  static void visit_buffers(Self& self, F&& f) {
    self.b1_.for_each_buffer([&](std::string_view n, auto& t) { f(nn::detail::join("block1", n), t); });
    self.b2_.for_each_buffer([&](std::string_view n, auto& t) { f(nn::detail::join("block2", n), t); });
    self.b3_.for_each_buffer([&](std::string_view n, auto& t) { f(nn::detail::join("block3", n), t); });
  }

private:
  Block1 b1_;
  Block2 b2_;
  Block3 b3_;
};

}  // namespace distill::models
