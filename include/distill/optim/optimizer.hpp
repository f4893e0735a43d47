// distill/optim/optimizer.hpp -- the optimizer base: a parameter list, a learning rate, per-parameter state.
//
// Semantics shared by every optimizer (those of torch.optim in PyTorch 1.13):
//   * step() updates each parameter that HAS a gradient; a parameter without one (frozen, or not reached by
//     the last backward) is skipped and its state (momentum, moments, step count) is left untouched.
//   * zero_grad() fills the gradients with zeros (PyTorch 1.13's default); zero_grad(true) drops them, so the
//     parameters are skipped by the next step() unless a backward reaches them again.
//   * lr() / set_lr() read and set the learning rate (a schedule calls set_lr once per epoch or step).
//   * state is per parameter: a step counter and named flat buffers of the parameter's size (allocated
//     zero-filled at construction; "first step" semantics come from the counter). for_each_state() visits
//     them for checkpoints (io::Checkpoint::put_optimizer / load_optimizer).
// The update arithmetic lives in cpu/optim.hpp (Cpu) and kernels/optim.cuh (Cuda: parameters, gradients and state
// buffers in device memory; step counters on the host); step() is virtual (one call per training step), so an
// optimizer chosen at run time can sit behind a std::unique_ptr<Optimizer<T>>.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "distill/backend/device_ops.hpp"
#include "distill/optim/param_list.hpp"
#include "distill/ops/detail.hpp"

namespace distill::optim {

template <class T, class D = Cpu>
class Optimizer {
  static_assert(std::is_floating_point_v<T>, "Optimizer<T, D>: parameters must be float or double.");

public:
  using value_type = T;
  using device_type = D;

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient.
  virtual void step() = 0;
  /// Optimizer name for messages ("SGD", "Adam", "AdamW").
  virtual const char* name() const noexcept = 0;

  void zero_grad(bool set_to_none = false) { params_.zero_grad(set_to_none); }

  double lr() const noexcept { return lr_; }
  void set_lr(double lr) {
    DISTILL_CHECK(lr >= 0, name(), ": learning rate must be >= 0, got ", lr);
    lr_ = lr;
  }

  const ParamList<T, D>& params() const noexcept { return params_; }
  /// Number of step() calls so far.
  std::int64_t steps() const noexcept { return steps_; }
  /// How many times parameter i was updated (PyTorch's state['step']).
  std::int64_t param_steps(std::size_t i) const { return state_.at(i).step; }

  /// Visit the state for checkpoints: f(std::string_view name, Tensor&) with names "<i>.step" (an int64
  /// scalar, viewed in place), "<i>.<buffer>" (a rank-1 tensor of parameter i's size) and "steps". Writing
  /// into the visited tensors restores the state.
  template <class F>
  void for_each_state(F&& f) {
    auto steps_view = Tensor<std::int64_t, 0, Cpu>::view(&steps_, Shape<0>{});
    f(std::string_view("steps"), steps_view);
    for (std::size_t i = 0; i < state_.size(); ++i) {
      const std::string base = std::to_string(i) + ".";
      auto step_view = Tensor<std::int64_t, 0, Cpu>::view(&state_[i].step, Shape<0>{});
      f(std::string_view(base + "step"), step_view);
      for (std::size_t b = 0; b < buffer_names_.size(); ++b)
        f(std::string_view(base + buffer_names_[b]), state_[i].buffers[b]);
    }
  }

protected:
  struct ParamState {
    std::int64_t step = 0;
    std::vector<Tensor<T, 1, D>> buffers;  // one per buffer name, each [numel]
  };

  Optimizer(ParamList<T, D> params, double lr, std::vector<std::string> buffer_names)
      : params_(std::move(params)), lr_(lr), buffer_names_(std::move(buffer_names)) {
    state_.resize(params_.size());
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      for (std::size_t b = 0; b < buffer_names_.size(); ++b)
        state_[i].buffers.push_back(DeviceOps<D>::template zeros<T, 1>(p.ctx(), Shape<1>{p.numel()}));
    }
  }

  /// Checks the parameter still has the size its state was made for (a Var's value replaced by another shape).
  void check_size(std::size_t i) const {
    const auto& p = params_[i];
    for (const auto& b : state_[i].buffers)
      DISTILL_CHECK(b.numel() == p.numel(), name(), ": parameter #", i, " '", p.name(), "' now has shape ",
                    p.shape_string(), " (", p.numel(), " elements) but its optimizer state has ", b.numel(),
                    " elements; the parameter was replaced after the optimizer was built");
  }

  ParamList<T, D> params_;
  double lr_;
  std::vector<std::string> buffer_names_;
  std::vector<ParamState> state_;
  std::int64_t steps_ = 0;
};

}  // namespace distill::optim
