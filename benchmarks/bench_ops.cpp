// bench_ops: the per-step core ops (batch_norm, global_avg_pool, linear, matmul_nt, l2_normalize, softmax,
// log_softmax, cross_entropy, mse), each as forward + backward, at the shapes of a DCRLS step with 2 x 64 views
// (stacked batch 128), ResNet1D widths 64/128 and series length 150 (GunPoint). Peer: benchmarks/torch_ops.py.
// Run: scripts/bench.sh ops
#include <memory>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/ops/batchnorm.hpp"
#include "distill/ops/linear.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/ops/normalize.hpp"
#include "distill/ops/pool.hpp"
#include "distill/ops/softmax.hpp"
#include "harness.hpp"

using namespace distill;

namespace {

struct State {
  explicit State(int threads) : ctx(threads, 1) {}
  Context<Cpu> ctx;
};

template <std::size_t R>
double elems(const Shape<R>& s) {
  return double(numel(s));
}

}  // namespace

int main(int argc, char** argv) {
  return bench::main(argc, argv, [](int threads) {
    auto st = std::make_shared<State>(threads);
    auto& ctx = st->ctx;
    std::vector<bench::Case> cases;
    constexpr double F = sizeof(float);

    // batch_norm, training mode, forward + backward (x, gamma, beta all require grad).
    for (auto s : {Shape<3>{128, 64, 150}, Shape<3>{128, 128, 150}}) {
      auto x = parameter(ctx, random_tensor<float>(ctx.rng(), s));
      auto gamma = parameter(ctx, Tensor<float, 1>::full(Shape<1>{s[1]}, 1.0f));
      auto beta = parameter(ctx, Tensor<float, 1>::zeros(Shape<1>{s[1]}));
      auto rm = std::make_shared<Tensor<float, 1>>(Tensor<float, 1>::zeros(Shape<1>{s[1]}));
      auto rv = std::make_shared<Tensor<float, 1>>(Tensor<float, 1>::full(Shape<1>{s[1]}, 1.0f));
      auto g = random_tensor<float>(ctx.rng(), s);
      bench::Case c;
      c.name = "bn_train_fb_" + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
      c.run = [=]() mutable { batch_norm(x, gamma, beta, *rm, *rv).backward(g); };
      c.bytes = 6 * F * elems(s);  // fwd: read x (stats), read x + write y; bwd: read x, dy (sums), x, dy, rw dx
      cases.push_back(c);
    }
    {  // [B, C] batch norm (projection heads)
      const Shape<2> s{128, 128};
      auto x = parameter(ctx, random_tensor<float>(ctx.rng(), s));
      auto gamma = parameter(ctx, Tensor<float, 1>::full(Shape<1>{s[1]}, 1.0f));
      auto beta = parameter(ctx, Tensor<float, 1>::zeros(Shape<1>{s[1]}));
      auto rm = std::make_shared<Tensor<float, 1>>(Tensor<float, 1>::zeros(Shape<1>{s[1]}));
      auto rv = std::make_shared<Tensor<float, 1>>(Tensor<float, 1>::full(Shape<1>{s[1]}, 1.0f));
      auto g = random_tensor<float>(ctx.rng(), s);
      bench::Case c;
      c.name = "bn2d_train_fb_128x128";
      c.run = [=]() mutable { batch_norm(x, gamma, beta, *rm, *rv).backward(g); };
      c.bytes = 6 * F * elems(s);
      cases.push_back(c);
    }
    {  // global average pooling
      const Shape<3> s{128, 128, 150};
      auto x = parameter(ctx, random_tensor<float>(ctx.rng(), s));
      auto g = random_tensor<float>(ctx.rng(), Shape<2>{128, 128});
      bench::Case c;
      c.name = "gap_fb_128x128x150";
      c.run = [=]() mutable { global_avg_pool(x).backward(g); };
      c.bytes = 3 * F * elems(s);
      cases.push_back(c);
    }
    {  // projection-head linear layer
      auto x = parameter(ctx, random_tensor<float>(ctx.rng(), Shape<2>{128, 128}));
      auto w = parameter(ctx, random_tensor<float>(ctx.rng(), Shape<2>{128, 128}));
      auto b = parameter(ctx, random_tensor<float>(ctx.rng(), Shape<1>{128}));
      auto g = random_tensor<float>(ctx.rng(), Shape<2>{128, 128});
      bench::Case c;
      c.name = "linear_fb_128x128x128";
      c.run = [=]() mutable { linear(x, w, b).backward(g); };
      c.flops = 3 * 2.0 * 128 * 128 * 128;
      cases.push_back(c);
    }
    {  // similarity matrix z z^T of the stacked views
      auto z = parameter(ctx, random_tensor<float>(ctx.rng(), Shape<2>{128, 128}));
      auto g = random_tensor<float>(ctx.rng(), Shape<2>{128, 128});
      bench::Case c;
      c.name = "matmul_nt_fb_128x128";
      c.run = [=]() mutable { matmul_nt(z, z).backward(g); };
      c.flops = 3 * 2.0 * 128 * 128 * 128;
      cases.push_back(c);
    }
    {
      const Shape<2> s{128, 128};
      auto x = parameter(ctx, random_tensor<float>(ctx.rng(), s));
      auto g = random_tensor<float>(ctx.rng(), s);
      bench::Case c;
      c.name = "l2_normalize_fb_128x128";
      c.run = [=]() mutable { l2_normalize(x).backward(g); };
      c.bytes = 5 * F * elems(s);
      cases.push_back(c);
    }
    for (index_t K : {128, 1000}) {
      const Shape<2> s{128, K};
      auto x = parameter(ctx, random_tensor<float>(ctx.rng(), s, -5, 5));
      auto g = random_tensor<float>(ctx.rng(), s);
      auto t = constant(ctx, random_tensor<float>(ctx.rng(), s, 0, 0.01));
      auto labels = std::make_shared<std::vector<int>>(128);
      for (int i = 0; i < 128; ++i) (*labels)[i] = int((i * 7) % K);
      const std::string tag = "128x" + std::to_string(K);
      bench::Case c;
      c.name = "softmax_fb_" + tag;
      c.run = [=]() mutable { softmax(x).backward(g); };
      c.bytes = 5 * F * elems(s);
      cases.push_back(c);
      c.name = "log_softmax_fb_" + tag;
      c.run = [=]() mutable { log_softmax(x).backward(g); };
      cases.push_back(c);
      c.name = "ce_hard_fb_" + tag;
      c.run = [=]() mutable { cross_entropy(x, *labels).backward(); };
      c.bytes = 3 * F * elems(s);
      cases.push_back(c);
      c.name = "ce_soft_fb_" + tag;
      c.run = [=]() mutable { cross_entropy(x, t).backward(); };
      c.bytes = 4 * F * elems(s);
      cases.push_back(c);
    }
    {
      const Shape<3> s{128, 128, 150};
      auto a = parameter(ctx, random_tensor<float>(ctx.rng(), s));
      auto b = constant(ctx, random_tensor<float>(ctx.rng(), s));
      bench::Case c;
      c.name = "mse_fb_128x128x150";
      c.run = [=]() mutable { mse(a, b).backward(); };
      c.bytes = 5 * F * elems(s);
      cases.push_back(c);
    }
    // Keep the context alive as long as the cases.
    for (auto& c : cases) c.run = [st, f = c.run] { f(); };
    return cases;
  });
}
