// distill/eval/linear_probe.hpp -- linear probe: softmax regression on frozen embeddings, trained in-framework.
//
// logits = z W^T + b (distill::linear), loss = mean cross-entropy (distill::cross_entropy), optimiser
// optim::Adam; W and b start at zero (the problem is convex, so the start only fixes the path). Features are
// standardised with the training set's per-dimension mean and std (a constant dimension is only centred), the
// same transform is applied to the test embeddings. Full-batch steps by default (UCR training sets are small);
// batch_size > 0 switches to seeded mini-batches. The embeddings are never modified and no gradient reaches
// them (they are constants of the probe's graph).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/core/context.hpp"
#include "distill/core/rng.hpp"
#include "distill/data/dataset.hpp"
#include "distill/ops/linear.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/param_list.hpp"

namespace distill::eval {

struct ProbeOptions {
  int steps = 500;
  double lr = 1e-2;
  double weight_decay = 0;  // Adam's L2 term
  bool standardize = true;
  index_t batch_size = 0;   // 0: full batch
  std::uint64_t seed = 0;   // mini-batch order
};

struct ProbeResult {
  double train_accuracy = 0;
  double test_accuracy = 0;
  std::vector<index_t> test_predictions;
  std::vector<double> losses;  // training loss at every step (before the step's update)
  Tensor<float, 2, Cpu> weight;  // [K, D] in the standardised feature space
  Tensor<float, 1, Cpu> bias;    // [K]
};

namespace detail {
/// Per-dimension mean and 1/std of x [N, D] (double accumulation; 1/std = 1 for a constant dimension).
inline void moments(const Tensor<float, 2, Cpu>& x, std::vector<double>& mean, std::vector<double>& inv_sd) {
  const index_t n = x.extent(0), d = x.extent(1);
  mean.assign(static_cast<std::size_t>(d), 0.0);
  inv_sd.assign(static_cast<std::size_t>(d), 1.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) mean[static_cast<std::size_t>(j)] += x(i, j);
  for (auto& m : mean) m /= double(n);
  std::vector<double> var(static_cast<std::size_t>(d), 0.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) {
      const double t = x(i, j) - mean[static_cast<std::size_t>(j)];
      var[static_cast<std::size_t>(j)] += t * t;
    }
  for (index_t j = 0; j < d; ++j) {
    const double sd = std::sqrt(var[static_cast<std::size_t>(j)] / double(n));
    inv_sd[static_cast<std::size_t>(j)] = sd > 1e-12 ? 1.0 / sd : 1.0;
  }
}
inline Tensor<float, 2, Cpu> transform(const Tensor<float, 2, Cpu>& x, const std::vector<double>& mean,
                                       const std::vector<double>& inv_sd) {
  Tensor<float, 2, Cpu> y(x.shape());
  for (index_t i = 0; i < x.extent(0); ++i)
    for (index_t j = 0; j < x.extent(1); ++j)
      y(i, j) = static_cast<float>((x(i, j) - mean[static_cast<std::size_t>(j)]) * inv_sd[static_cast<std::size_t>(j)]);
  return y;
}
/// Row-wise argmax of z W^T + b (lowest class on ties).
inline std::vector<index_t> predict(const Tensor<float, 2, Cpu>& z, const Tensor<float, 2, Cpu>& w,
                                    const Tensor<float, 1, Cpu>& b) {
  const index_t n = z.extent(0), d = z.extent(1), k = w.extent(0);
  std::vector<index_t> out(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    double best = -std::numeric_limits<double>::infinity();
    index_t arg = 0;
    for (index_t c = 0; c < k; ++c) {
      double s = b[c];
      for (index_t j = 0; j < d; ++j) s += double(z(i, j)) * double(w(c, j));
      if (s > best) best = s, arg = c;
    }
    out[static_cast<std::size_t>(i)] = arg;
  }
  return out;
}
/// Restores the context's autograd mode on scope exit (the probe records a graph even under NoGradGuard).
struct GradModeScope {
  ContextBase& ctx;
  bool prev;
  explicit GradModeScope(ContextBase& c) : ctx(c), prev(c.grad_enabled()) { c.set_grad_enabled(true); }
  ~GradModeScope() { ctx.set_grad_enabled(prev); }
  GradModeScope(const GradModeScope&) = delete;
  GradModeScope& operator=(const GradModeScope&) = delete;
};
}  // namespace detail

/// Trains the probe on (train_z, train_y) and scores it on (test_z, test_y). Labels are class ids in
/// [0, num_classes).
inline ProbeResult linear_probe(Context<Cpu>& ctx, const Tensor<float, 2, Cpu>& train_z,
                                std::span<const index_t> train_y, const Tensor<float, 2, Cpu>& test_z,
                                std::span<const index_t> test_y, index_t num_classes, const ProbeOptions& opt = {}) {
  const index_t n = train_z.extent(0), d = train_z.extent(1), k = num_classes;
  DISTILL_CHECK(n >= 1 && d >= 1, "linear_probe: empty training embeddings of shape ", to_string(train_z.shape()));
  DISTILL_CHECK(test_z.extent(1) == d, "linear_probe: training embeddings ", to_string(train_z.shape()),
                " and test embeddings ", to_string(test_z.shape()), " differ in dimension");
  DISTILL_CHECK(static_cast<index_t>(train_y.size()) == n && static_cast<index_t>(test_y.size()) == test_z.extent(0),
                "linear_probe: ", train_y.size(), " training labels for ", n, " rows and ", test_y.size(),
                " test labels for ", test_z.extent(0), " rows");
  DISTILL_CHECK(k >= 2, "linear_probe: needs at least 2 classes, got ", k);
  DISTILL_CHECK(opt.steps >= 0 && opt.batch_size >= 0, "linear_probe: steps (", opt.steps, ") and batch_size (",
                opt.batch_size, ") must be >= 0");
  for (index_t y : train_y) DISTILL_CHECK(y >= 0 && y < k, "linear_probe: training label ", y, " outside [0, ", k, ")");
  for (index_t y : test_y) DISTILL_CHECK(y >= 0 && y < k, "linear_probe: test label ", y, " outside [0, ", k, ")");

  std::vector<double> mean, inv_sd;
  if (opt.standardize) detail::moments(train_z, mean, inv_sd);
  else mean.assign(static_cast<std::size_t>(d), 0.0), inv_sd.assign(static_cast<std::size_t>(d), 1.0);
  const Tensor<float, 2, Cpu> ztr = detail::transform(train_z, mean, inv_sd);
  const Tensor<float, 2, Cpu> zte = detail::transform(test_z, mean, inv_sd);

  detail::GradModeScope grad_on(ctx);
  auto w = parameter(ctx, Tensor<float, 2, Cpu>::zeros({k, d}));
  auto b = parameter(ctx, Tensor<float, 1, Cpu>::zeros({k}));
  optim::Adam<float> adam(params(w, b), {.lr = opt.lr, .weight_decay = opt.weight_decay});

  const index_t bs = opt.batch_size > 0 ? std::min(opt.batch_size, n) : n;
  std::vector<index_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), index_t(0));
  CounterRng rng(opt.seed, 0x70726f6265ull);  // "probe"
  std::size_t cursor = static_cast<std::size_t>(n);
  const auto full_labels = std::vector<int>(train_y.begin(), train_y.end());
  const auto full_x = constant(ctx, ztr);

  ProbeResult res;
  res.losses.reserve(static_cast<std::size_t>(opt.steps));
  std::vector<int> labels;
  for (int s = 0; s < opt.steps; ++s) {
    Var<float, 2, Cpu> xb;
    const std::vector<int>* yb = &full_labels;
    if (bs == n) {
      xb = full_x;
    } else {
      if (cursor + static_cast<std::size_t>(bs) > order.size()) {
        data::shuffle(order, rng);
        cursor = 0;
      }
      Tensor<float, 2, Cpu> xt({bs, d});
      labels.resize(static_cast<std::size_t>(bs));
      for (index_t i = 0; i < bs; ++i) {
        const index_t src = order[cursor + static_cast<std::size_t>(i)];
        std::copy_n(&ztr(src, 0), d, &xt(i, 0));
        labels[static_cast<std::size_t>(i)] = static_cast<int>(train_y[static_cast<std::size_t>(src)]);
      }
      cursor += static_cast<std::size_t>(bs);
      xb = constant(ctx, std::move(xt));
      yb = &labels;
    }
    adam.zero_grad();
    auto loss = cross_entropy(linear(xb, w, b), *yb);
    res.losses.push_back(loss.value()[0]);
    loss.backward();
    adam.step();
  }
  res.weight = w.value().clone();
  res.bias = b.value().clone();
  const auto ptr = detail::predict(ztr, res.weight, res.bias);
  res.test_predictions = detail::predict(zte, res.weight, res.bias);
  std::size_t ok = 0;
  for (std::size_t i = 0; i < ptr.size(); ++i) ok += ptr[i] == train_y[i];
  res.train_accuracy = double(ok) / double(n);
  ok = 0;
  for (std::size_t i = 0; i < res.test_predictions.size(); ++i) ok += res.test_predictions[i] == test_y[i];
  res.test_accuracy = res.test_predictions.empty() ? 0.0 : double(ok) / double(res.test_predictions.size());
  return res;
}

}  // namespace distill::eval
