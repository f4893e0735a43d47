// bench_dcrls_step: one full DCRLS training step (two views through a shared ResNet1D(64) in one [x1; x2] pass,
// three projection heads, per-block NT-Xent + self-distillation KL_3, backward, Adam) at B16/L256 and B64/L128,
// against the same model and step in PyTorch (benchmarks/torch_dcrls_step.py). Run: scripts/bench.sh dcrls_step
#include <memory>

#include "distill/models/dcrls.hpp"
#include "distill/optim/adam.hpp"
#include "harness.hpp"

namespace {
using namespace distill;

struct StepState {
  Context<Cpu> ctx;
  models::Dcrls<64> model;
  optim::Adam<float, Cpu> opt;
  Tensor<float, 3> x1, x2;
  StepState(int threads, index_t B, index_t L)
      : ctx(threads, 0), model(ctx, models::DcrlsConfig{}), opt(model.trainable(), {.lr = 1e-3, .weight_decay = 1e-4}),
        x1(Shape<3>{B, 1, L}), x2(Shape<3>{B, 1, L}) {
    CounterRng r(7);
    for (auto& v : x1) v = float(r.normal());
    for (auto& v : x2) v = float(r.normal());
  }
  void step() {
    auto loss = model.contrastive_loss(constant(ctx, x1), constant(ctx, x2));
    opt.zero_grad();
    loss.total.backward();
    opt.step();
  }
};

/// Conv FLOPs of one step: forward + grad-input + grad-weight of every conv (2 * MACs each), for 2B series.
double step_flops(index_t B, index_t L) {
  return 3.0 * distill::models::Dcrls<64>::Encoder::flops_per_series(L) * double(2 * B);
}
}  // namespace

int main(int argc, char** argv) {
  return bench::main(argc, argv, [](int threads) {
    std::vector<bench::Case> cases;
    for (auto [B, L] : {std::pair<index_t, index_t>{16, 256}, {64, 128}}) {
      auto s = std::make_shared<StepState>(threads, B, L);
      bench::Case c;
      c.name = "dcrls_step_B" + std::to_string(B) + "_L" + std::to_string(L);
      c.run = [s] { s->step(); };
      c.flops = step_flops(B, L);
      cases.push_back(c);
    }
    return cases;
  });
}
