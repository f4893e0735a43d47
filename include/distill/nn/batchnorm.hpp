// distill/nn/batchnorm.hpp -- nn::BatchNorm1d<C, T, D> over [B, C, L] or [B, C].
//
// torch.nn.BatchNorm1d(C) semantics: parameters "weight" (gamma, ones) and "bias" (beta, zeros), buffers
// "running_mean" (zeros) and "running_var" (ones). Training mode normalises with the batch statistics and
// updates the running ones (momentum 0.1 by default); eval mode (module.eval()) uses the running statistics.
// On the Cuda device parameters and buffers live in device memory (initialised on the host, then uploaded).
#pragma once

#include "distill/nn/module.hpp"
#include "distill/ops/batchnorm.hpp"

namespace distill::nn {

template <index_t C, class T = float, class D = Cpu>
class BatchNorm1d : public Module<BatchNorm1d<C, T, D>> {
  static_assert(C >= 1, "BatchNorm1d<C>: the channel count must be at least 1.");

public:
  using value_type = T;
  using device_type = D;
  static constexpr unsigned parameter_ranks = ranks(1), buffer_ranks = ranks(1);
  static constexpr index_t in_channels = C;
  static constexpr index_t out_channels = C;

  static constexpr name_string type_name() { return name("BatchNorm1d<", C, ">"); }

  explicit BatchNorm1d(Context<D>& ctx)
      : weight_(detail::make_parameter(ctx, Tensor<T, 1, Cpu>::full(Shape<1>{C}, T(1)))),
        bias_(detail::make_parameter(ctx, Tensor<T, 1, Cpu>::zeros(Shape<1>{C}))),
        running_mean_(detail::make_buffer(ctx, Tensor<T, 1, Cpu>::zeros(Shape<1>{C}))),
        running_var_(detail::make_buffer(ctx, Tensor<T, 1, Cpu>::full(Shape<1>{C}, T(1)))) {}

  template <std::size_t R>
  Var<T, R, D> forward(const Var<T, R, D>& x) {
    static_assert(R == 2 || R == 3, "BatchNorm1d: the input must be [batch, channels] or [batch, channels, "
                                    "length] (rank 2 or 3).");
    if constexpr (R == 2 || R == 3) {  // (no second error after the static_assert)
      DISTILL_CHECK(x.extent(1) == C, type_name().c_str(), ": the input has ", x.extent(1),
                    " channels but this layer was declared for ", C, " (input shape ", to_string(x.shape()), ")");
      return batch_norm(x, weight_, bias_, running_mean_, running_var_,
                        BatchNormOptions{this->training_, momentum_, eps_});
    } else {
      return Var<T, R, D>();
    }
  }

  double momentum() const noexcept { return momentum_; }
  void set_momentum(double m) {
    DISTILL_CHECK(m >= 0 && m <= 1, "BatchNorm1d: momentum must be in [0, 1], got ", m);
    momentum_ = m;
  }
  double eps() const noexcept { return eps_; }
  void set_eps(double e) {
    DISTILL_CHECK(e > 0, "BatchNorm1d: eps must be positive, got ", e);
    eps_ = e;
  }

  Var<T, 1, D>& weight() noexcept { return weight_; }
  const Var<T, 1, D>& weight() const noexcept { return weight_; }
  Var<T, 1, D>& bias() noexcept { return bias_; }
  const Var<T, 1, D>& bias() const noexcept { return bias_; }
  Tensor<T, 1, D>& running_mean() noexcept { return running_mean_; }
  const Tensor<T, 1, D>& running_mean() const noexcept { return running_mean_; }
  Tensor<T, 1, D>& running_var() noexcept { return running_var_; }
  const Tensor<T, 1, D>& running_var() const noexcept { return running_var_; }

  template <class Self, class F>
  static void visit_parameters(Self& self, F&& f) {
    f("weight", self.weight_);
    f("bias", self.bias_);
  }
  template <class Self, class F>
  static void visit_buffers(Self& self, F&& f) {
    f("running_mean", self.running_mean_);
    f("running_var", self.running_var_);
  }

private:
  Var<T, 1, D> weight_;
  Var<T, 1, D> bias_;
  Tensor<T, 1, D> running_mean_;
  Tensor<T, 1, D> running_var_;
  double momentum_ = 0.1;
  double eps_ = 1e-5;
};

}  // namespace distill::nn
