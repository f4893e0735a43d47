// bench_disco_step: one DisCo student step (examples/disco, --variant disco, MoCo mode): the frozen teacher
// ResNet1D(128) + head in inference mode on both views, the student ResNet1D(16) + head 64 on both views, the EMA
// update and the key encoder on view 2, MoCo InfoNCE against a queue of 256 keys + (32/B) x the summed normalised MSE
// to the teacher, backward, Adam (lr 1e-3, wd 1e-4), enqueue. Against the same step in PyTorch
// (benchmarks/torch_disco_step.py). Run: scripts/bench.sh disco_step
#include <memory>

#include "distill/models/disco.hpp"
#include "distill/optim/adam.hpp"
#include "harness.hpp"

namespace {
using namespace distill;
using TeacherNet = models::DiscoTeacherNet<float, Cpu>;
using StudentNet = models::DiscoStudentNet<float, Cpu>;

constexpr index_t kQueue = 256;

struct StepState {
  Context<Cpu> ctx;
  TeacherNet trained;
  nn::FrozenTeacher<TeacherNet> teacher;
  models::DiscoLearner<StudentNet, TeacherNet> learner;
  optim::Adam<float, Cpu> opt;
  Tensor<float, 3> x1, x2;
  StepState(int threads, index_t B, index_t L)
      : ctx(threads, 0), trained(ctx), teacher(ctx, trained),
        learner(ctx, {.momentum = 0.99, .queue_size = kQueue}, &teacher),
        opt(learner.trainable(), {.lr = 1e-3, .weight_decay = 1e-4}), x1(Shape<3>{B, 1, L}), x2(Shape<3>{B, 1, L}) {
    CounterRng r(7);
    for (auto& v : x1) v = float(r.normal());
    for (auto& v : x2) v = float(r.normal());
  }
  void step() {
    auto loss = learner.loss(constant(ctx, x1), constant(ctx, x2));
    opt.zero_grad();
    loss.total.backward();
    opt.step();
  }
};

/// Conv FLOPs of one step: the teacher's forward on 2B series, the student's forward + grad-input + grad-weight on
/// 2B series and the key encoder's forward on B series.
double step_flops(index_t B, index_t L) {
  return TeacherNet::encoder_flops(L) * double(2 * B) + StudentNet::encoder_flops(L) * double(3 * 2 * B + B);
}
}  // namespace

int main(int argc, char** argv) {
  return bench::main(argc, argv, [](int threads) {
    std::vector<bench::Case> cases;
    for (auto [B, L] : {std::pair<index_t, index_t>{16, 128}, {32, 64}}) {
      auto s = std::make_shared<StepState>(threads, B, L);
      bench::Case c;
      c.name = "disco_step_B" + std::to_string(B) + "_L" + std::to_string(L);
      c.run = [s] { s->step(); };
      c.flops = step_flops(B, L);
      cases.push_back(c);
    }
    return cases;
  });
}
