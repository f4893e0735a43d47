// distill/optim/schedule.hpp -- learning-rate schedules as pure functions of the epoch (or step) index.
//
// A schedule is a small value with `double operator()(std::int64_t t) const`: the learning rate to use during
// epoch (or iteration) t, counting from 0. Nothing is stateful, so any point can be evaluated, tested or
// resumed directly; the training loop calls `opt.set_lr(schedule(epoch))` (or `apply(opt, schedule, epoch)`).
// Each one matches the closed form of the corresponding torch.optim.lr_scheduler:
//   Cosine     CosineAnnealingLR:  eta_min + (base - eta_min) * (1 + cos(pi * t / t_max)) / 2
//   Step       StepLR:             base * gamma^floor(t / step_size)
//   MultiStep  MultiStepLR:        base * gamma^(number of milestones <= t)
//   Warmup     SequentialLR([LinearLR(start_factor, 1, total_iters = n), after], milestones = [n]):
//              t < n: after(0) * (start_factor + (1 - start_factor) * t / n);  t >= n: after(t - n)
// Cosine beyond t_max continues the cosine (the lr rises again), like the closed form in PyTorch; clamp t
// yourself for a schedule that stays at eta_min.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>
#include <vector>

#include "distill/core/error.hpp"

namespace distill::optim {

struct Constant {
  double base_lr;
  double operator()(std::int64_t) const { return base_lr; }
};

struct Cosine {
  double base_lr;
  std::int64_t t_max;
  double eta_min = 0;
  double operator()(std::int64_t t) const {
    DISTILL_CHECK(t_max > 0, "Cosine schedule: t_max must be > 0, got ", t_max);
    DISTILL_CHECK(t >= 0, "Cosine schedule: negative epoch ", t);
    return eta_min + (base_lr - eta_min) *
                         (1 + std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(t_max))) / 2;
  }
};

struct Step {
  double base_lr;
  std::int64_t step_size;
  double gamma = 0.1;
  double operator()(std::int64_t t) const {
    DISTILL_CHECK(step_size > 0, "Step schedule: step_size must be > 0, got ", step_size);
    DISTILL_CHECK(t >= 0, "Step schedule: negative epoch ", t);
    return base_lr * std::pow(gamma, static_cast<double>(t / step_size));
  }
};

struct MultiStep {
  double base_lr;
  std::vector<std::int64_t> milestones;  // increasing
  double gamma = 0.1;
  double operator()(std::int64_t t) const {
    DISTILL_CHECK(std::is_sorted(milestones.begin(), milestones.end()),
                  "MultiStep schedule: milestones must be in increasing order");
    DISTILL_CHECK(t >= 0, "MultiStep schedule: negative epoch ", t);
    const auto passed = std::upper_bound(milestones.begin(), milestones.end(), t) - milestones.begin();
    return base_lr * std::pow(gamma, static_cast<double>(passed));
  }
};

/// Linear warm-up over the first `warmup` epochs, then `after` restarted at 0.
template <class After>
struct Warmup {
  std::int64_t warmup;
  double start_factor;
  After after;
  double operator()(std::int64_t t) const {
    DISTILL_CHECK(warmup >= 0, "Warmup schedule: warm-up length must be >= 0, got ", warmup);
    DISTILL_CHECK(start_factor > 0 && start_factor <= 1, "Warmup schedule: start_factor must be in (0, 1], got ",
                  start_factor);
    DISTILL_CHECK(t >= 0, "Warmup schedule: negative epoch ", t);
    if (t >= warmup) return after(t - warmup);
    const double f = start_factor + (1 - start_factor) * static_cast<double>(t) / static_cast<double>(warmup);
    return after(0) * f;
  }
};

/// with_warmup(Cosine{1e-3, 290}, 10): 10 warm-up epochs rising from start_factor * 1e-3, then the cosine.
template <class After>
Warmup<After> with_warmup(After after, std::int64_t warmup, double start_factor = 1.0 / 3.0) {
  return Warmup<After>{warmup, start_factor, std::move(after)};
}

/// opt.set_lr(schedule(t)); returns the learning rate set.
template <class Opt, class Schedule>
double apply(Opt& opt, const Schedule& schedule, std::int64_t t) {
  const double lr = schedule(t);
  opt.set_lr(lr);
  return lr;
}

}  // namespace distill::optim
