// distill/optim/adam.hpp -- Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay).
//
// torch.optim.Adam / torch.optim.AdamW (PyTorch 1.13) exactly, per parameter p with gradient g, t = this
// parameter's update count (1 on its first update):
//   Adam:  g = g + weight_decay * p             AdamW:  p = p * (1 - lr * weight_decay)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g         amsgrad: v_max = max(v_max, v), used in place of v below
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)      (eps outside the sqrt)
#pragma once

#include "distill/optim/optimizer.hpp"

namespace distill::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  // L2 term added to the gradient
  bool amsgrad = false;
};

/// AdamW's options: the same fields, with torch.optim.AdamW's default decoupled weight decay of 1e-2.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay each step
  bool amsgrad = false;
};

namespace detail {
inline std::vector<std::string> buffer_names(bool amsgrad) {
  std::vector<std::string> n{"exp_avg", "exp_avg_sq"};
  if (amsgrad) n.emplace_back("max_exp_avg_sq");
  return n;
}
template <class Options>
void check_options(const char* who, const Options& o) {
  DISTILL_CHECK(o.lr >= 0, who, ": learning rate must be >= 0, got ", o.lr);
  DISTILL_CHECK(o.eps >= 0, who, ": eps must be >= 0, got ", o.eps);
  DISTILL_CHECK(o.beta1 >= 0 && o.beta1 < 1, who, ": beta1 must be in [0, 1), got ", o.beta1);
  DISTILL_CHECK(o.beta2 >= 0 && o.beta2 < 1, who, ": beta2 must be in [0, 1), got ", o.beta2);
  DISTILL_CHECK(o.weight_decay >= 0, who, ": weight_decay must be >= 0, got ", o.weight_decay);
}
}  // namespace detail

/// Adam, or AdamW when Decoupled is true (see the aliases below).
template <class T, class D, bool Decoupled>
class AdamBase : public Optimizer<T, D> {
  using Base = Optimizer<T, D>;

public:
  using options_type = std::conditional_t<Decoupled, AdamWOptions, AdamOptions>;

  explicit AdamBase(ParamList<T, D> params, options_type opt = {})
      : Base(std::move(params), opt.lr, detail::buffer_names(opt.amsgrad)), opt_(opt) {
    detail::check_options(Decoupled ? "AdamW" : "Adam", opt);
  }

  const char* name() const noexcept override { return Decoupled ? "AdamW" : "Adam"; }
  const options_type& options() const noexcept { return opt_; }

  void step() override {
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      const auto& p = this->params_[i];
      T* g = p.grad();
      if (g == nullptr || p.numel() == 0) continue;
      this->check_size(i);
      auto& st = this->state_[i];
      ++st.step;
      T* vmax = opt_.amsgrad ? st.buffers[2].data() : nullptr;
      const AdamConfig c{this->lr_, opt_.beta1, opt_.beta2, opt_.eps, opt_.weight_decay, Decoupled, st.step};
      // cpu/optim.hpp or kernels/optim.cuh (the same order of operations)
      backend::adam_step(p.ctx(), p.data(), g, st.buffers[0].data(), st.buffers[1].data(), p.numel(), c, vmax);
    }
    ++this->steps_;
  }

private:
  options_type opt_;
};

template <class T = float, class D = Cpu>
class Adam final : public AdamBase<T, D, false> {
public:
  using AdamBase<T, D, false>::AdamBase;
};
template <class T = float, class D = Cpu>
class AdamW final : public AdamBase<T, D, true> {
public:
  using AdamBase<T, D, true>::AdamBase;
};

template <class T, class D>
Adam(ParamList<T, D>, AdamOptions) -> Adam<T, D>;
template <class T, class D>
Adam(ParamList<T, D>) -> Adam<T, D>;
template <class T, class D>
AdamW(ParamList<T, D>, AdamWOptions) -> AdamW<T, D>;
template <class T, class D>
AdamW(ParamList<T, D>) -> AdamW<T, D>;

}  // namespace distill::optim
