// distill/nn/conv1d.hpp -- nn::Conv1d<Cin, Cout, K, Config, T, D>: a stride-1 1-D convolution layer.
//
// snippet: fragment; given: Context<Cpu> ctx;
//   nn::Conv1d<1, 64, 8> conv{ctx};                                   // 'same' padding, bias
//   nn::Conv1d<64, 64, 3, nn::Conv1dConfig{.padding = Padding::Valid, .dilation = 2, .bias = false}> c2{ctx};
//
// Input [B, Cin, L] -> output [B, Cout, Lout] (Lout = L for 'same'). Parameters: "weight" [Cout, Cin, K] and
// "bias" [Cout], initialised like torch.nn.Conv1d: kaiming_uniform(a = sqrt(5)) i.e. U(-1/sqrt(Cin*K),
// 1/sqrt(Cin*K)) for the weight, then U(-1/sqrt(Cin*K), 1/sqrt(Cin*K)) for the bias, drawn from ctx.rng().
#pragma once

#include "distill/nn/module.hpp"
#include "distill/ops/conv1d.hpp"

namespace distill::nn {

struct Conv1dConfig {
  Padding padding = Padding::Same;
  index_t dilation = 1;
  bool bias = true;
};

template <index_t Cin, index_t Cout, index_t K, Conv1dConfig Config = Conv1dConfig{}, class T = float, class D = Cpu>
class Conv1d : public Module<Conv1d<Cin, Cout, K, Config, T, D>> {
  static_assert(Cin >= 1 && Cout >= 1, "Conv1d<Cin, Cout, K>: channel counts must be at least 1.");
  static_assert(K >= 1, "Conv1d<Cin, Cout, K>: the kernel size K must be at least 1.");
  static_assert(Config.dilation >= 1, "Conv1d: the dilation must be at least 1.");

public:
  using value_type = T;
  using device_type = D;
  static constexpr unsigned parameter_ranks = ranks(1, 3), buffer_ranks = ranks();  // bias, weight
  static constexpr index_t in_channels = Cin;
  static constexpr index_t out_channels = Cout;
  static constexpr index_t kernel_size = K;
  static constexpr Conv1dConfig config = Config;

  static constexpr name_string type_name() {
    name_string s = name("Conv1d<", Cin, ", ", Cout, ", ", K);
    if (Config.padding == Padding::Valid) s.append(", valid");
    if (Config.dilation != 1) s.append(", dilation ").append(Config.dilation);
    if (!Config.bias) s.append(", no bias");
    return s.append(">");
  }

  explicit Conv1d(Context<D>& ctx) {
    const index_t fan_in = Cin * K;
    Tensor<T, 3, Cpu> w(Shape<3>{Cout, Cin, K});
    init::kaiming_uniform(w, fan_in, ctx.rng());
    weight_ = detail::make_parameter(ctx, std::move(w));
    if constexpr (Config.bias) {
      Tensor<T, 1, Cpu> b(Shape<1>{Cout});
      init::uniform(b, 1.0 / std::sqrt(static_cast<double>(fan_in)), ctx.rng());
      bias_ = detail::make_parameter(ctx, std::move(b));
    }
  }

  template <std::size_t R>
  Var<T, 3, D> forward(const Var<T, R, D>& x) {
    static_assert(R == 3, "Conv1d: the input must be a [batch, channels, length] tensor (rank 3).");
    if constexpr (R == 3) {  // (no second error after the static_assert)
      DISTILL_CHECK(x.extent(1) == Cin, type_name().c_str(), ": the input has ", x.extent(1),
                    " channels but this layer was declared for ", Cin, " (input shape ", to_string(x.shape()), ")");
      return conv1d(x, weight_, bias_, Conv1dOptions{Config.padding, Config.dilation});
    } else {
      return Var<T, 3, D>();
    }
  }

  Var<T, 3, D>& weight() noexcept { return weight_; }
  const Var<T, 3, D>& weight() const noexcept { return weight_; }
  /// Undefined when the layer has no bias.
  Var<T, 1, D>& bias() noexcept { return bias_; }
  const Var<T, 1, D>& bias() const noexcept { return bias_; }

  template <class Self, class F>
  static void visit_parameters(Self& self, F&& f) {
    f("weight", self.weight_);
    if constexpr (Config.bias) f("bias", self.bias_);
  }

private:
  Var<T, 3, D> weight_;
  Var<T, 1, D> bias_;
};

}  // namespace distill::nn
