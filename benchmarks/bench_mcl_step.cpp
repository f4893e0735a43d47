// bench_mcl_step: one MCL x2 training step and one L-MCL x2 training step (without and with the meta step), two
// ResNet1D(32) networks, B = 32 series of length 128 in 4 classes, against the same steps in PyTorch
// (benchmarks/torch_mcl_step.py). The optimizer is SGD (Nesterov 0.9, lr 0.1, wd 5e-4); the meta step is the
// finite-difference hyper-gradient of docs/mcl.md (one virtual step, two extra weight-network passes) followed by
// the weight network's SGD step, in both implementations.
//   scripts/bench.sh mcl_step        (the harness with the PyTorch peer, interleaved)
#include <memory>
#include <vector>

#include "distill/models/mcl.hpp"
#include "distill/optim/sgd.hpp"
#include "harness.hpp"

namespace {
using namespace distill;

constexpr index_t kW = 32, kClasses = 4;

struct StepState {
  Context<Cpu> ctx;
  models::Cohort<float> cohort;
  std::unique_ptr<optim::SGD<float>> opt, meta;
  Tensor<float, 3> x;
  std::vector<int> y;
  bool with_meta;
  StepState(int threads, index_t B, index_t L, bool layerwise, bool with_meta_)
      : ctx(threads, 0), cohort(config(layerwise)), x(Shape<3>{B, 1, L}), with_meta(with_meta_) {
    cohort.add_network<kW>(ctx, kClasses);
    cohort.add_network<kW>(ctx, kClasses);
    const optim::SgdOptions so{.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true};
    opt = std::make_unique<optim::SGD<float>>(cohort.trainable(), so);
    if (layerwise) meta = std::make_unique<optim::SGD<float>>(cohort.weight_params(), so);
    CounterRng r(7);
    for (auto& v : x) v = float(r.normal());
    for (index_t i = 0; i < B; ++i) y.push_back(static_cast<int>(i % kClasses));
  }
  static models::MclConfig config(bool layerwise) {
    models::MclConfig c;
    c.layerwise = layerwise;
    if (layerwise) c.weights.tau = 0.1;
    return c;
  }
  void step() {
    auto xv = constant(ctx, x);
    auto loss = cohort.loss(xv, y);
    opt->zero_grad();
    loss.total.backward();
    opt->step();
    if (with_meta) {
      cohort.meta_step(xv, y, 0.1);
      meta->step();
    }
  }
};
}  // namespace

int main(int argc, char** argv) {
  return bench::main(argc, argv, [](int threads) {
    std::vector<bench::Case> cases;
    const index_t B = 32, L = 128;
    const struct {
      const char* name;
      bool layerwise, meta;
    } kinds[] = {{"mcl2_step", false, false}, {"lmcl2_step", true, false}, {"lmcl2_meta_step", true, true}};
    for (const auto& k : kinds) {
      auto s = std::make_shared<StepState>(threads, B, L, k.layerwise, k.meta);
      bench::Case c;
      c.name = std::string(k.name) + "_B" + std::to_string(B) + "_L" + std::to_string(L);
      c.run = [s] { s->step(); };
      cases.push_back(c);
    }
    return cases;
  });
}
