// bench_conv1d: conv1d forward, and forward + grad-input + grad-weight + grad-bias through the autograd op, at
// the three shapes; PyTorch peer in benchmarks/torch_conv1d.py. Run: scripts/bench.sh conv1d
// Cases per shape: .fwd (forward only, no graph), .train (forward + backward of every input: the comparison the
// issue asks for), and, ours only, .dgrad / .wgrad (one backward pass through the raw kernels).
#include <memory>
#include <string>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/ops/conv1d.hpp"
#include "harness.hpp"

namespace {

using distill::index_t;

struct ShapeSpec {
  index_t B, Cin, Cout, L, K;
};

std::string case_name(const ShapeSpec& s) {
  return "conv_b" + std::to_string(s.B) + "_" + std::to_string(s.Cin) + "to" + std::to_string(s.Cout) + "_l" +
         std::to_string(s.L) + "_k" + std::to_string(s.K);
}

}  // namespace

int main(int argc, char** argv) {
  return bench::main(argc, argv, [](int threads) {
    using namespace distill;
    std::vector<bench::Case> cases;
    const ShapeSpec shapes[] = {{16, 64, 128, 512, 8}, {32, 1, 64, 256, 8}, {32, 128, 128, 256, 3}};
    for (const auto& s : shapes) {
      const auto g = conv1d_geometry(s.B, s.Cin, s.Cout, s.L, s.K);
      auto ctx = std::make_shared<Context<Cpu>>(threads, 1);
      CounterRng rng(s.B * 7 + s.K);
      auto x = parameter(*ctx, random_tensor<float>(rng, g.x_shape()));
      auto w = parameter(*ctx, random_tensor<float>(rng, g.w_shape(), -0.1, 0.1));
      auto b = parameter(*ctx, random_tensor<float>(rng, Shape<1>{s.Cout}));
      auto gy = random_tensor<float>(rng, g.y_shape());
      const double nx = double(g.B * g.Cin * g.L), nw = double(g.Cout * g.Cin * g.K), ny = double(g.B * g.Cout * g.Lout);
      // Scratch of the kernels: packed weights, one padded row block per thread; grad-weight: dy transposed in
      // 16-column panels plus dw^T.
      const double fwd_scratch = 4.0 * ((g.Cout + 5) / 6 * 6 * g.Cin * g.K + threads * g.Cin * (g.Lout + 64 + g.K));
      const double wgrad_scratch =
          4.0 * ((g.Cout + 15) / 16 * 16 * double(g.B * g.Lout) + (g.Cin * g.K + 5) / 6 * 6 * g.Cout +
                 threads * g.Cin * (g.Lout + g.K));
      const std::string base = case_name(s);

      bench::Case fwd;
      fwd.name = base + ".fwd";
      fwd.run = [ctx, x, w, b] {
        NoGradGuard ng(*ctx);
        auto y = conv1d(x, w, b);
      };
      fwd.flops = 2 * g.macs();
      fwd.bytes = 4 * (nx + nw + ny + g.Cout);
      fwd.extra_bytes = fwd_scratch;
      cases.push_back(fwd);

      bench::Case train;
      train.name = base + ".train";
      train.run = [ctx, x, w, b, gy]() mutable {
        x.drop_grad();
        w.drop_grad();
        b.drop_grad();
        auto y = conv1d(x, w, b);
        y.backward(gy);
      };
      train.flops = 6 * g.macs();
      train.bytes = 4 * (3 * nx + 3 * nw + 2 * ny + 2 * g.Cout);  // fwd: x w b -> y; bwd: dy x w -> dx dw db
      train.extra_bytes = std::max(fwd_scratch, wgrad_scratch);
      cases.push_back(train);

      auto dx = std::make_shared<Tensor<float, 3>>(Tensor<float, 3>::zeros(g.x_shape()));
      bench::Case dgrad;
      dgrad.name = base + ".dgrad";
      dgrad.run = [g, threads, w, gy, dx] { cpu::conv1d_backward_input<float>(threads, g, gy.data(), w.value().data(), dx->data()); };
      dgrad.flops = 2 * g.macs();
      dgrad.bytes = 4 * (ny + nw + 2 * nx);
      dgrad.extra_bytes = fwd_scratch;
      cases.push_back(dgrad);

      auto dw = std::make_shared<Tensor<float, 3>>(Tensor<float, 3>::zeros(g.w_shape()));
      auto db = std::make_shared<Tensor<float, 1>>(Tensor<float, 1>::zeros({s.Cout}));
      bench::Case wgrad;
      wgrad.name = base + ".wgrad";
      wgrad.run = [g, threads, x, gy, dw, db] {
        cpu::conv1d_backward_weight<float>(threads, g, x.value().data(), gy.data(), dw->data(), db->data());
      };
      wgrad.flops = 2 * g.macs();
      wgrad.bytes = 4 * (ny + nx + 2 * nw + 2 * g.Cout);
      wgrad.extra_bytes = wgrad_scratch;
      cases.push_back(wgrad);
    }
    return cases;
  });
}
