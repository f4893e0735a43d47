// distill/nn/linear.hpp -- nn::Linear<In, Out, Config, T, D>: y = x W^T + b on [B, In] -> [B, Out].
//
// Parameters "weight" [Out, In] and "bias" [Out], initialised like torch.nn.Linear: kaiming_uniform(a =
// sqrt(5)) = U(-1/sqrt(In), 1/sqrt(In)) for the weight, U(-1/sqrt(In), 1/sqrt(In)) for the bias.
#pragma once

#include "distill/nn/module.hpp"
#include "distill/ops/linear.hpp"

namespace distill::nn {

struct LinearConfig {
  bool bias = true;
};

template <index_t In, index_t Out, LinearConfig Config = LinearConfig{}, class T = float, class D = Cpu>
class Linear : public Module<Linear<In, Out, Config, T, D>> {
  static_assert(In >= 1 && Out >= 1, "Linear<In, Out>: feature counts must be at least 1.");

public:
  using value_type = T;
  using device_type = D;
  static constexpr unsigned parameter_ranks = ranks(1, 2), buffer_ranks = ranks();  // bias, weight
  static constexpr index_t in_channels = In;
  static constexpr index_t out_channels = Out;

  static constexpr name_string type_name() {
    name_string s = name("Linear<", In, ", ", Out);
    if (!Config.bias) s.append(", no bias");
    return s.append(">");
  }

  explicit Linear(Context<D>& ctx) {
    Tensor<T, 2, Cpu> w(Shape<2>{Out, In});
    init::kaiming_uniform(w, In, ctx.rng());
    weight_ = detail::make_parameter(ctx, std::move(w));
    if constexpr (Config.bias) {
      Tensor<T, 1, Cpu> b(Shape<1>{Out});
      init::uniform(b, 1.0 / std::sqrt(static_cast<double>(In)), ctx.rng());
      bias_ = detail::make_parameter(ctx, std::move(b));
    }
  }

  template <std::size_t R>
  Var<T, 2, D> forward(const Var<T, R, D>& x) {
    static_assert(R == 2, "Linear: the input must be a [batch, features] tensor (rank 2); pool or flatten a "
                          "[batch, channels, length] tensor first.");
    if constexpr (R == 2) {  // (no second error after the static_assert)
      DISTILL_CHECK(x.extent(1) == In, type_name().c_str(), ": the input has ", x.extent(1),
                    " features but this layer was declared for ", In, " (input shape ", to_string(x.shape()), ")");
      return linear(x, weight_, bias_);
    } else {
      return Var<T, 2, D>();
    }
  }

  Var<T, 2, D>& weight() noexcept { return weight_; }
  const Var<T, 2, D>& weight() const noexcept { return weight_; }
  Var<T, 1, D>& bias() noexcept { return bias_; }
  const Var<T, 1, D>& bias() const noexcept { return bias_; }

  template <class Self, class F>
  static void visit_parameters(Self& self, F&& f) {
    f("weight", self.weight_);
    if constexpr (Config.bias) f("bias", self.bias_);
  }

private:
  Var<T, 2, D> weight_;
  Var<T, 1, D> bias_;
};

}  // namespace distill::nn
