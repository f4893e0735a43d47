// tests/test_cuda_disco.cpp -- issue 14: a few DisCo steps on the Cuda device (SIMT emulator in this build) give the
// same losses, parameters, key encoder and queue as on the Cpu device.
//
// Tiny nets so the emulator stays fast: the student DiscoNet<4, 8> (ResNet1D(4) + head 8 -> 128), the frozen teacher
// DiscoNet<8, 16>, B = 6 series of length 20. Both devices build everything from the same seeds in the same order
// (module initialisation is drawn on the host), then run two steps of DiscoLearner::loss + backward + SGD (momentum
// 0.9; SGD rather than Adam because Adam turns the rounding noise of exactly-zero gradients, e.g. of the conv biases
// that BN cancels, into lr-sized steps; the Cuda Adam itself is compared in test_cuda_train):
//   * MoCo mode: queue K = 8, momentum 0.9, shuffle-BN over 2 groups, teacher with BN running statistics;
//   * in-batch mode (no queue): NT-Xent of the two views, teacher with batch statistics (restored after each call).
// Tolerances (float): loss parts 2e-5 relative; student and key parameters 2e-5 of the tensor's scale + 1e-6; queue
// rows 1e-4 (unit rows); teacher parameters exactly equal and its BN statistics unchanged (frozen).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/device_compare.hpp"
#include "distill/models/disco.hpp"
#include "distill/optim/sgd.hpp"

using namespace distill;

namespace {

template <class D>
using Student = models::DiscoNet<4, 8, float, D>;
template <class D>
using TeacherNet = models::DiscoNet<8, 16, float, D>;

constexpr index_t kB = 6, kL = 16;
constexpr double kLr = 0.05;

template <class T, std::size_t R, class D>
std::vector<double> host(Context<D>& ctx, const Tensor<T, R, D>& t) {
  Tensor<T, R, Cpu> h = to_host(ctx, t);
  return std::vector<double>(h.data(), h.data() + h.numel());
}
template <class M, class D>
std::vector<std::vector<double>> params_of(Context<D>& ctx, const M& m) {
  std::vector<std::vector<double>> out;
  m.for_each_parameter([&](std::string_view, const auto& v) { out.push_back(host(ctx, v.value())); });
  return out;
}
template <class M, class D>
std::vector<std::vector<double>> buffers_of(Context<D>& ctx, const M& m) {
  std::vector<std::vector<double>> out;
  m.for_each_buffer([&](std::string_view, const auto& t) { out.push_back(host(ctx, t)); });
  return out;
}

/// |a - b| <= rel * scale + abs elementwise (scale = max |a|); the count of violations and the first one.
std::string diff_report(const std::vector<double>& a, const std::vector<double>& b, double rel, double abs) {
  if (a.size() != b.size()) return "sizes differ";
  double scale = 0;
  for (double x : a) scale = std::max(scale, std::fabs(x));
  index_t bad = 0;
  std::ostringstream os;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::fabs(a[i] - b[i]) <= rel * scale + abs)) {
      if (bad++ == 0) os << "[" << i << "] cpu " << a[i] << " cuda " << b[i];
    }
  if (bad) os << " (" << bad << " of " << a.size() << " differ)";
  return os.str();
}

void check_close(const std::vector<double>& cpu, const std::vector<double>& cuda, double rel, double abs) {
  const std::string report = diff_report(cpu, cuda, rel, abs);
  INFO(report);
  CHECK(report.empty());
}

template <class D>
struct Setup {
  Context<D> ctx{1, 77};
  TeacherNet<D> trained{ctx};
  nn::FrozenTeacher<TeacherNet<D>> teacher;
  models::DiscoLearner<Student<D>, TeacherNet<D>> learner;
  optim::SGD<float, D> opt;
  Setup(const models::DiscoConfig& cfg, nn::TeacherBN bn)
      : teacher(ctx, with_stats(ctx, trained), bn), learner(ctx, cfg, &teacher),
        opt(learner.trainable(), {.lr = kLr, .momentum = 0.9}) {}
  /// Non-trivial BN running statistics for the teacher (the same on both devices): a few training-mode passes.
  static const TeacherNet<D>& with_stats(Context<D>& ctx, TeacherNet<D>& net) {
    NoGradGuard ng(ctx);
    for (int i = 0; i < 2; ++i)
      net(Var<float, 3, D>(ctx, to_device(ctx, device_compare::host_random<float>(Shape<3>{kB, 1, kL}, 90 + i, -2, 2)),
                           false));
    return net;
  }
  models::DiscoLoss<float, D> step(int s) {
    auto x1 = Var<float, 3, D>(ctx, to_device(ctx, device_compare::host_random<float>(Shape<3>{kB, 1, kL}, 10 + s, -2, 2)),
                               false);
    auto x2 = Var<float, 3, D>(ctx, to_device(ctx, device_compare::host_random<float>(Shape<3>{kB, 1, kL}, 50 + s, -2, 2)),
                               false);
    auto loss = learner.loss(x1, x2);
    opt.zero_grad();
    loss.total.backward();
    opt.step();
    return loss;
  }
};

void compare_runs(const models::DiscoConfig& cfg, nn::TeacherBN bn) {
  Setup<Cpu> c(cfg, bn);
  Setup<Cuda> g(cfg, bn);
  const auto teacher_params = params_of(c.ctx, c.teacher.module());
  const auto teacher_stats = buffers_of(c.ctx, c.teacher.module());
  check_close(teacher_params[0], params_of(g.ctx, g.teacher.module())[0], 0, 0);
  for (int s = 0; s < 2; ++s) {
    INFO("step " << s);
    const auto lc = c.step(s);
    const auto lg = g.step(s);
    const double tc = host(c.ctx, lc.total.value())[0], tg = host(g.ctx, lg.total.value())[0];
    CHECK(tg == Approx(tc).epsilon(2e-5));
    CHECK(lg.contrastive == Approx(lc.contrastive).epsilon(2e-5));
    CHECK(lg.distillation == Approx(lc.distillation).epsilon(2e-5));
    CHECK(lc.distillation > 0);
    const auto pc = params_of(c.ctx, c.learner.net), pg = params_of(g.ctx, g.learner.net);
    for (std::size_t i = 0; i < pc.size(); ++i) {
      INFO("student parameter " << i);
      check_close(pc[i], pg[i], 2e-5, 1e-6);
    }
    if (c.learner.key) {
      const auto kc = params_of(c.ctx, c.learner.key->module()), kg = params_of(g.ctx, g.learner.key->module());
      for (std::size_t i = 0; i < kc.size(); ++i) {
        INFO("key parameter " << i);
        check_close(kc[i], kg[i], 2e-5, 1e-6);
      }
      check_close(host(c.ctx, c.learner.key->queue().ordered()), host(g.ctx, g.learner.key->queue().ordered()),
                     0, 1e-4);
    }
  }
  // The teacher never moved, on either device.
  CHECK(params_of(c.ctx, c.teacher.module()) == teacher_params);
  CHECK(params_of(g.ctx, g.teacher.module()) == teacher_params);
  CHECK(buffers_of(c.ctx, c.teacher.module()) == teacher_stats);
  const auto gs = buffers_of(g.ctx, g.teacher.module());
  for (std::size_t i = 0; i < gs.size(); ++i) check_close(teacher_stats[i], gs[i], 1e-6, 0);
}

}  // namespace

TEST_CASE("DisCo steps on the Cuda device match the Cpu device: MoCo queue, shuffle-BN, running-statistics teacher",
          "[cuda][disco]") {
  compare_runs({.momentum = 0.9, .queue_size = 8, .shuffle_groups = 2}, nn::TeacherBN::RunningStats);
}

TEST_CASE("DisCo steps on the Cuda device match the Cpu device: in-batch negatives, batch-statistics teacher",
          "[cuda][disco]") {
  compare_runs({.queue_size = 0}, nn::TeacherBN::BatchStats);
}
