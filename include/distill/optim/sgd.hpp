// distill/optim/sgd.hpp -- stochastic gradient descent with momentum, dampening, Nesterov and weight decay.
//
// torch.optim.SGD (PyTorch 1.13) exactly, per parameter p with gradient g:
//   d_p = g + weight_decay * p
//   if momentum != 0:
//     buf = d_p                                         on this parameter's first update
//     buf = momentum * buf + (1 - dampening) * d_p      afterwards
//     d_p = nesterov ? d_p + momentum * buf : buf
//   p -= lr * d_p
#pragma once

#include "distill/optim/optimizer.hpp"

namespace distill::optim {

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

template <class T = float, class D = Cpu>
class SGD final : public Optimizer<T, D> {
  using Base = Optimizer<T, D>;

public:
  explicit SGD(ParamList<T, D> params, SgdOptions opt = {})
      : Base(std::move(params), opt.lr,
             opt.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{}),
        opt_(opt) {
    DISTILL_CHECK(opt.lr >= 0, "SGD: learning rate must be >= 0, got ", opt.lr);
    DISTILL_CHECK(opt.momentum >= 0, "SGD: momentum must be >= 0, got ", opt.momentum);
    DISTILL_CHECK(opt.weight_decay >= 0, "SGD: weight_decay must be >= 0, got ", opt.weight_decay);
    DISTILL_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
                  "SGD: Nesterov momentum requires momentum > 0 and dampening = 0 (got momentum ", opt.momentum,
                  ", dampening ", opt.dampening, ")");
  }

  const char* name() const noexcept override { return "SGD"; }
  const SgdOptions& options() const noexcept { return opt_; }

  void step() override {
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      const auto& p = this->params_[i];
      T* g = p.grad();
      if (g == nullptr || p.numel() == 0) continue;
      this->check_size(i);
      auto& st = this->state_[i];
      T* buf = st.buffers.empty() ? nullptr : st.buffers[0].data();
      const SgdConfig c{this->lr_, opt_.momentum, opt_.dampening, opt_.weight_decay, opt_.nesterov, st.step == 0};
      backend::sgd_step(p.ctx(), p.data(), g, buf, p.numel(), c);  // cpu/optim.hpp or kernels/optim.cuh
      ++st.step;
    }
    ++this->steps_;
  }

private:
  SgdOptions opt_;
};

template <class T, class D>
SGD(ParamList<T, D>, SgdOptions) -> SGD<T, D>;
template <class T, class D>
SGD(ParamList<T, D>) -> SGD<T, D>;

}  // namespace distill::optim
