// nn modules: shapes, static channel bookkeeping, parameter visiting, PyTorch-default initialisation,
// train/eval BatchNorm, copy_from, freezing, gradient checks of composed modules, and a user-written layer.
// The compile-time channel check is exercised by the compile-fail tests in tests/cmake/nn.cmake.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/nn/nn.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/ops/reduce.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/schedule.hpp"
#include "distill/optim/ema.hpp"
#include "distill/optim/sgd.hpp"

using namespace distill;

namespace {
template <class T, std::size_t R>
Var<T, R> input(Context<Cpu>& ctx, const Shape<R>& s, std::uint64_t seed = 7) {
  CounterRng rng(seed);
  return constant(ctx, random_tensor<T>(rng, s));
}
template <class T, std::size_t R>
Var<T, R> input_with_grad(Context<Cpu>& ctx, const Shape<R>& s, std::uint64_t seed = 7) {
  CounterRng rng(seed);
  return parameter(ctx, random_tensor<T>(rng, s));
}
}  // namespace

// ------------------------------------------------------------------------------------------------------------
// Static facts: channel counts and names.
// ------------------------------------------------------------------------------------------------------------
using Encoder = nn::Sequential<nn::Conv1d<1, 16, 8>, nn::BatchNorm1d<16>, nn::ReLU, nn::Conv1d<16, 32, 5>,
                               nn::BatchNorm1d<32>, nn::ReLU, nn::GlobalAvgPool>;
static_assert(Encoder::in_channels == 1 && Encoder::out_channels == 32);
static_assert(nn::Sequential<nn::ReLU, nn::GlobalAvgPool>::in_channels == nn::any_channels);
static_assert(nn::Sequential<nn::ReLU, nn::GlobalAvgPool>::out_channels == nn::same_channels);
static_assert(nn::Sequential<nn::ReLU, nn::Linear<4, 8>>::in_channels == 4);
static_assert(nn::Sequential<nn::Conv1d<2, 3, 3>, nn::Flatten>::out_channels == nn::dynamic_channels);
// After Flatten the count is only known at run time: a following Linear of any width is accepted statically.
static_assert(nn::Sequential<nn::Conv1d<2, 3, 3>, nn::Flatten, nn::Linear<21, 4>>::out_channels == 4);
static_assert(nn::ResNetBlock1D<64, 128>::in_channels == 64 && nn::ResNetBlock1D<64, 128>::out_channels == 128);
static_assert(nn::ResNetBlock1D<128, 128>::in_channels == 128 && nn::ResNetBlock1D<128, 128>::out_channels == 128);
static_assert(nn::ProjectionHead<128, 64, 32>::in_channels == 128 && nn::ProjectionHead<128, 64, 32>::out_channels == 32);
static_assert(std::is_same_v<Encoder::value_type, float> && std::is_same_v<Encoder::device_type, Cpu>);

TEST_CASE("module names used in diagnostics", "[nn]") {
  REQUIRE(nn::Conv1d<128, 128, 5>::type_name().str() == "Conv1d<128, 128, 5>");
  REQUIRE(nn::Conv1d<4, 8, 3, nn::Conv1dConfig{.padding = Padding::Valid, .dilation = 2, .bias = false}>::type_name()
              .str() == "Conv1d<4, 8, 3, valid, dilation 2, no bias>");
  REQUIRE(nn::Linear<10, 2>::type_name().str() == "Linear<10, 2>");
  REQUIRE(nn::BatchNorm1d<7>::type_name().str() == "BatchNorm1d<7>");
  REQUIRE(Encoder::type_name().str() == "Sequential<7 layers>");
  REQUIRE(nn::name("x", -12, "y").str() == "x-12y");
  constexpr auto check = nn::detail::chain_check(std::array<index_t, 3>{1, 0, 128},
                                                 std::array<index_t, 3>{64, 0, 128});
  static_assert(!check.ok && check.layer == 2 && check.expects == 128 && check.produces == 64);
  REQUIRE(nn::detail::chain_message<nn::Conv1d<1, 64, 8>, nn::ReLU, nn::Conv1d<128, 128, 5>>(check).str() ==
          "Sequential: layer 2 (Conv1d<128, 128, 5>) expects 128 input channels but the previous layer produces 64.");
}

// ------------------------------------------------------------------------------------------------------------
// Shapes.
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("module output shapes, including awkward lengths", "[nn]") {
  Context<Cpu> ctx(2, 1);
  for (index_t L : {1, 3, 8, 31, 33}) {
    INFO("L = " << L);
    nn::Conv1d<3, 5, 4> same{ctx};
    REQUIRE(same(input<float>(ctx, Shape<3>{2, 3, L})).shape() == Shape<3>{2, 5, L});
    nn::Conv1d<3, 5, 8> even{ctx};
    REQUIRE(even(input<float>(ctx, Shape<3>{1, 3, L})).shape() == Shape<3>{1, 5, L});
    if (L >= 5) {
      nn::Conv1d<3, 2, 3, nn::Conv1dConfig{.padding = Padding::Valid, .dilation = 2}> valid{ctx};
      REQUIRE(valid(input<float>(ctx, Shape<3>{2, 3, L})).shape() == Shape<3>{2, 2, L - 4});
    }
    Encoder enc{ctx};
    REQUIRE(enc(input<float>(ctx, Shape<3>{3, 1, L})).shape() == Shape<2>{3, 32});
  }
  nn::Linear<6, 4> lin{ctx};
  REQUIRE(lin(input<float>(ctx, Shape<2>{5, 6})).shape() == Shape<2>{5, 4});
  nn::Sequential<nn::Conv1d<2, 3, 3>, nn::Flatten, nn::Linear<21, 4>> flat{ctx};
  REQUIRE(flat(input<float>(ctx, Shape<3>{2, 2, 7})).shape() == Shape<2>{2, 4});
  REQUIRE_THROWS_WITH(flat(input<float>(ctx, Shape<3>{2, 2, 6})),
                      Catch::Contains("Linear<21, 4>: the input has 18 features but this layer was declared for 21"));

  nn::ProjectionHead<8, 16, 4> head{ctx};
  auto z = head(input<float>(ctx, Shape<2>{3, 8}));
  REQUIRE(z.shape() == Shape<2>{3, 4});
  for (index_t b = 0; b < 3; ++b) {
    double n = 0;
    for (index_t j = 0; j < 4; ++j) n += double(z.value()(b, j)) * z.value()(b, j);
    REQUIRE(std::sqrt(n) == Approx(1.0).epsilon(1e-6));
  }
  nn::ResNetBlock1D<2, 6> block{ctx};
  REQUIRE(block(input<float>(ctx, Shape<3>{2, 2, 9})).shape() == Shape<3>{2, 6, 9});

  // Runtime extents are checked with a message naming the layer.
  nn::Conv1d<4, 8, 3> c{ctx};
  REQUIRE_THROWS_WITH(c(input<float>(ctx, Shape<3>{2, 3, 10})),
                      Catch::Contains("Conv1d<4, 8, 3>: the input has 3 channels but this layer was declared for 4"));
  nn::BatchNorm1d<4> bn{ctx};
  REQUIRE_THROWS_WITH(bn(input<float>(ctx, Shape<2>{2, 5})), Catch::Contains("BatchNorm1d<4>: the input has 5"));
}

// ------------------------------------------------------------------------------------------------------------
// Parameters: visiting, names, counting, initialisation.
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("parameter and buffer visiting, names and counts", "[nn]") {
  Context<Cpu> ctx(1, 3);
  nn::ResNetBlock1D<64, 128> block{ctx};
  const index_t conv8 = 128 * 64 * 8 + 128, conv5 = 128 * 128 * 5 + 128, conv3 = 128 * 128 * 3 + 128;
  const index_t shortcut = 128 * 64 + 128, bn = 2 * 128;
  REQUIRE(nn::num_parameters(block) == conv8 + conv5 + conv3 + shortcut + 4 * bn);
  REQUIRE(nn::num_parameter_tensors(block) == 16);
  const auto names = nn::parameter_names(block);
  REQUIRE(names.front() == "main.0.weight");
  REQUIRE(names[1] == "main.0.bias");
  REQUIRE(names[2] == "main.1.weight");
  REQUIRE(names[12] == "shortcut.0.weight");
  REQUIRE(names.back() == "shortcut.1.bias");
  std::vector<std::string> buffers;
  block.for_each_buffer([&](std::string_view n, auto& t) {
    buffers.emplace_back(n);
    REQUIRE(t.shape() == Shape<1>{128});
  });
  REQUIRE(buffers.size() == 8);
  REQUIRE(buffers.front() == "main.1.running_mean");
  REQUIRE(buffers.back() == "shortcut.1.running_var");

  // Unchanged width: the shortcut is BN only.
  nn::ResNetBlock1D<16, 16> same_width{ctx};
  REQUIRE(nn::parameter_names(same_width).back() == "shortcut.bias");

  // params() gathers everything for an optimizer, each once.
  nn::ProjectionHead<128, 128, 64> head{ctx};
  auto ps = params(block, head, block);
  REQUIRE(ps.size() == 16 + 4);
  REQUIRE(ps.numel() == nn::num_parameters(block) + nn::num_parameters(head));
  REQUIRE(ps[16].name() == "0.weight");
  optim::SGD opt(params(block, head), {.lr = 0.1});
  REQUIRE(opt.params().size() == 20);

  // Without bias.
  nn::Conv1d<3, 4, 5, nn::Conv1dConfig{.bias = false}> nob{ctx};
  REQUIRE(nn::parameter_names(nob) == std::vector<std::string>{"weight"});
  REQUIRE_FALSE(nob.bias().defined());
  nn::Linear<3, 4, nn::LinearConfig{.bias = false}> lnob{ctx};
  REQUIRE(nn::num_parameters(lnob) == 12);
}

TEST_CASE("initialisation follows PyTorch's defaults and is reproducible", "[nn]") {
  auto check_uniform = [](const auto& t, double bound) {
    double sum = 0, sq = 0, mx = 0;
    for (index_t i = 0; i < t.numel(); ++i) {
      const double v = t[i];
      sum += v;
      sq += v * v;
      mx = std::max(mx, std::abs(v));
    }
    const double n = double(t.numel());
    REQUIRE(mx <= bound);
    REQUIRE(mx > 0.9 * bound);                                      // the range is used
    // Centred, with the standard deviation of U(-b, b), b / sqrt(3): both within ~4.5 sampling sigmas.
    REQUIRE(std::abs(sum / n) < 4.5 * bound / std::sqrt(3.0 * n));
    REQUIRE(std::sqrt(sq / n) == Approx(bound / std::sqrt(3.0)).epsilon(2.0 / std::sqrt(n)));
  };
  Context<Cpu> ctx(1, 11);
  nn::Conv1d<32, 64, 5> conv{ctx};
  check_uniform(conv.weight().value(), 1.0 / std::sqrt(32.0 * 5));
  check_uniform(conv.bias().value(), 1.0 / std::sqrt(32.0 * 5));
  nn::Linear<100, 200> lin{ctx};
  check_uniform(lin.weight().value(), 0.1);
  check_uniform(lin.bias().value(), 0.1);
  nn::BatchNorm1d<5> bn{ctx};
  for (index_t c = 0; c < 5; ++c) {
    REQUIRE(bn.weight().value()[c] == 1.0f);
    REQUIRE(bn.bias().value()[c] == 0.0f);
    REQUIRE(bn.running_mean()[c] == 0.0f);
    REQUIRE(bn.running_var()[c] == 1.0f);
  }
  REQUIRE(bn.weight().requires_grad());

  // Same seed -> same weights; the layers of a Sequential draw in order (first layer first, weight then bias).
  Context<Cpu> a(1, 5), b(1, 5), c(1, 6);
  nn::Sequential<nn::Linear<2, 3>, nn::ReLU, nn::Linear<3, 4>> sa{a}, sc{c};
  nn::Linear<2, 3> first{b};
  nn::Linear<3, 4> second{b};
  for (index_t i = 0; i < 6; ++i) REQUIRE(sa.get<0>().weight().value()[i] == first.weight().value()[i]);
  for (index_t i = 0; i < 12; ++i) REQUIRE(sa.get<2>().weight().value()[i] == second.weight().value()[i]);
  REQUIRE(sa.get<2>().bias().value()[3] == second.bias().value()[3]);
  REQUIRE(sa.get<0>().weight().value()[0] != sc.get<0>().weight().value()[0]);
}

// ------------------------------------------------------------------------------------------------------------
// Train / eval.
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("BatchNorm1d: training normalises with batch statistics, eval uses the running ones", "[nn]") {
  Context<Cpu> ctx(1, 2);
  nn::Sequential<nn::Conv1d<2, 3, 3>, nn::BatchNorm1d<3>> net{ctx};
  auto& bn = net.get<1>();
  REQUIRE(net.is_training());
  REQUIRE(bn.is_training());
  const index_t B = 4, L = 9;
  auto x = input<double>(ctx, Shape<3>{B, 2, L});
  nn::Sequential<nn::Conv1d<2, 3, 3, nn::Conv1dConfig{}, double>, nn::BatchNorm1d<3, double>> dnet{ctx};
  auto& dbn = dnet.get<1>();
  auto y = dnet(x);
  auto h = dnet.get<0>()(x);  // the conv output alone (BN input)
  for (index_t c = 0; c < 3; ++c) {
    double mean = 0, var = 0, hm = 0, hv = 0;
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < L; ++t) {
        mean += y.value()(b, c, t);
        hm += h.value()(b, c, t);
      }
    mean /= B * L;
    hm /= B * L;
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < L; ++t) {
        var += std::pow(y.value()(b, c, t) - mean, 2);
        hv += std::pow(h.value()(b, c, t) - hm, 2);
      }
    REQUIRE(mean == Approx(0).margin(1e-12));
    const double hvar = hv / (B * L);
    REQUIRE(var / (B * L) == Approx(hvar / (hvar + 1e-5)).epsilon(1e-10));  // eps = 1e-5 inside the sqrt
    // running stats after one step: 0.9 * 0 + 0.1 * mean, 0.9 * 1 + 0.1 * unbiased var.
    REQUIRE(dbn.running_mean()[c] == Approx(0.1 * hm).epsilon(1e-12));
    REQUIRE(dbn.running_var()[c] == Approx(0.9 + 0.1 * hv / (B * L - 1)).epsilon(1e-12));
  }

  dnet.eval();
  REQUIRE_FALSE(dnet.is_training());
  REQUIRE_FALSE(dbn.is_training());
  REQUIRE_FALSE(dnet.get<0>().is_training());
  const auto rm = dbn.running_mean().clone();
  auto ye = dnet(x);
  for (index_t c = 0; c < 3; ++c) {
    REQUIRE(dbn.running_mean()[c] == rm[c]);  // no update in eval
    const double inv = 1.0 / std::sqrt(dbn.running_var()[c] + 1e-5);
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < L; ++t)
        REQUIRE(ye.value()(b, c, t) == Approx((h.value()(b, c, t) - rm[c]) * inv).epsilon(1e-12));
  }
  dnet.train();
  REQUIRE(dbn.is_training());
  bn.set_momentum(0.5);
  REQUIRE_THROWS_WITH(bn.set_momentum(2), Catch::Contains("momentum must be in [0, 1]"));

  // A batch of one value per channel is refused in training mode, accepted in eval mode.
  nn::BatchNorm1d<3, double> single{ctx};
  REQUIRE_THROWS_WITH(single(input<double>(ctx, Shape<2>{1, 3})), Catch::Contains("more than 1 value per channel"));
  single.eval();
  REQUIRE(single(input<double>(ctx, Shape<2>{1, 3})).shape() == Shape<2>{1, 3});
}

// ------------------------------------------------------------------------------------------------------------
// copy_from, freezing, EMA and checkpoints through the visitors.
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("copy_from, set_requires_grad, EMA and checkpoints work on composed modules", "[nn]") {
  Context<Cpu> ctx(1, 4);
  using Net = nn::Sequential<nn::ResNetBlock1D<2, 4, double>, nn::GlobalAvgPool, nn::ProjectionHead<4, 8, 3, double>>;
  Net student{ctx}, teacher{ctx};
  REQUIRE(student.get<0>().main().get<0>().weight().value()[0] !=
          teacher.get<0>().main().get<0>().weight().value()[0]);
  auto x = input<double>(ctx, Shape<3>{3, 2, 12});
  student(x);  // moves the BN running statistics away from their initial values
  teacher.copy_from(student);
  std::vector<double> sv, tv;
  student.for_each_parameter([&](std::string_view, auto& v) { sv.insert(sv.end(), v.value().begin(), v.value().end()); });
  teacher.for_each_parameter([&](std::string_view, auto& v) { tv.insert(tv.end(), v.value().begin(), v.value().end()); });
  REQUIRE(sv == tv);
  REQUIRE(teacher.get<0>().main().get<1>().running_mean()[1] == student.get<0>().main().get<1>().running_mean()[1]);
  // Deep copy: changing the student does not touch the teacher.
  student.get<2>().get<0>().weight().value()[0] += 1.0;
  REQUIRE(teacher.get<2>().get<0>().weight().value()[0] != student.get<2>().get<0>().weight().value()[0]);

  // Frozen teacher: no gradient reaches its parameters, the student's still get theirs.
  nn::set_requires_grad(teacher, false);
  teacher.eval();
  auto loss = sum(mul(student(x), teacher(x)));
  loss.backward();
  teacher.for_each_parameter([&](std::string_view, auto& v) { REQUIRE_FALSE(v.has_grad()); });
  student.for_each_parameter([&](std::string_view n, auto& v) {
    INFO(n);
    REQUIRE(v.has_grad());
  });

  // EMA through the module visitors.
  const double t0 = teacher.get<2>().get<0>().weight().value()[0];
  const double s0 = student.get<2>().get<0>().weight().value()[0];
  optim::ema_update(teacher, student, 0.9);
  REQUIRE(teacher.get<2>().get<0>().weight().value()[0] == Approx(0.9 * t0 + 0.1 * s0));

  // Checkpoint round trip through the visitors.
  const auto file = std::filesystem::temp_directory_path() / ("distill_test_nn_" + std::to_string(::getpid()) + ".ckpt");
  save_checkpoint(file, student);
  Net restored{ctx};
  load_checkpoint(file, restored);
  std::filesystem::remove(file);
  std::vector<double> rv;
  restored.for_each_parameter([&](std::string_view, auto& v) { rv.insert(rv.end(), v.value().begin(), v.value().end()); });
  std::vector<double> sv2;
  student.for_each_parameter([&](std::string_view, auto& v) { sv2.insert(sv2.end(), v.value().begin(), v.value().end()); });
  REQUIRE(rv == sv2);
  restored.eval();
  student.eval();
  auto ya = restored(x), yb = student(x);
  for (index_t i = 0; i < ya.numel(); ++i) REQUIRE(ya.value()[i] == yb.value()[i]);
}

// ------------------------------------------------------------------------------------------------------------
// Gradient checks (double).
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("gradient check: a small Sequential (conv, BN, ReLU, pool, linear, L2)", "[nn][grad]") {
  Context<Cpu> ctx(1, 9);
  nn::Sequential<nn::Conv1d<2, 3, 3, nn::Conv1dConfig{}, double>, nn::BatchNorm1d<3, double>, nn::ReLU,
                 nn::Conv1d<3, 4, 2, nn::Conv1dConfig{.dilation = 2}, double>, nn::GlobalAvgPool,
                 nn::Linear<4, 3, nn::LinearConfig{}, double>, nn::L2Normalize>
      net{ctx};
  auto x = input_with_grad<double>(ctx, Shape<3>{3, 2, 7});
  auto r = check_gradients([&] { return net(x); }, x, net.get<0>().weight(), net.get<0>().bias(),
                           net.get<1>().weight(), net.get<1>().bias(), net.get<3>().weight(), net.get<3>().bias(),
                           net.get<5>().weight(), net.get<5>().bias());
  INFO(r.message);
  REQUIRE(r.ok);
  REQUIRE(r.checked > 100);
}

TEST_CASE("gradient check: a ResNet block with a projection shortcut, in eval and training mode", "[nn][grad]") {
  Context<Cpu> ctx(1, 10);
  nn::ResNetBlock1D<2, 3, double> block{ctx};
  auto x = input_with_grad<double>(ctx, Shape<3>{2, 2, 9});
  auto& m = block.main();
  auto& s = block.shortcut();
  for (bool training : {true, false}) {
    INFO("training " << training);
    block.train(training);
    auto r = check_gradients([&] { return block(x); }, x, m.get<0>().weight(), m.get<1>().weight(),
                             m.get<3>().weight(), m.get<4>().bias(), m.get<6>().weight(), m.get<6>().bias(),
                             s.get<0>().weight(), s.get<1>().weight());
    INFO(r.message);
    REQUIRE(r.ok);
  }
}

// ------------------------------------------------------------------------------------------------------------
// A user-written layer following the contract (docs/nn.md).
// ------------------------------------------------------------------------------------------------------------
namespace {
/// y = x * scale[c] per channel: a learnable per-channel gain.
template <index_t C, class T = float>
class ChannelScale : public nn::Module<ChannelScale<C, T>> {
public:
  using value_type = T;
  using device_type = Cpu;
  static constexpr index_t in_channels = C;
  static constexpr index_t out_channels = C;
  static constexpr auto type_name() { return nn::name("ChannelScale<", C, ">"); }

  explicit ChannelScale(Context<Cpu>& ctx) : scale_(parameter(ctx, Tensor<T, 1>::full({C}, T(1)))) {}

  Var<T, 3> forward(const Var<T, 3>& x) {
    DISTILL_CHECK(x.extent(1) == C, "ChannelScale: wrong channel count");
    Tensor<T, 3> s(x.shape());
    for (index_t b = 0; b < x.extent(0); ++b)
      for (index_t c = 0; c < C; ++c)
        for (index_t t = 0; t < x.extent(2); ++t) s(b, c, t) = scale_.value()[c];
    // Broadcast expressed with existing ops: x * expand(scale). The expansion's gradient sums back to scale.
    auto expanded = autograd::make_result("expand_channels", x.ctx(), std::move(s),
        [sc = scale_, B = x.extent(0), L = x.extent(2)](const Tensor<T, 3>& g) mutable {
          if (!sc.requires_grad()) return;
          auto& gs = sc.grad_buffer();
          for (index_t b = 0; b < B; ++b)
            for (index_t c = 0; c < C; ++c)
              for (index_t t = 0; t < L; ++t) gs[c] += g(b, c, t);
        },
        scale_);
    return mul(x, expanded);
  }

  template <class Self, class F>
  static void visit_parameters(Self& self, F&& f) {
    f("scale", self.scale_);
  }

  Var<T, 1>& scale() { return scale_; }

private:
  Var<T, 1> scale_;
};
}  // namespace

TEST_CASE("a user-written layer composes with Sequential, visitors and gradient checks", "[nn][grad]") {
  Context<Cpu> ctx(1, 12);
  nn::Sequential<nn::Conv1d<2, 3, 3, nn::Conv1dConfig{}, double>, ChannelScale<3, double>, nn::GlobalAvgPool> net{ctx};
  static_assert(decltype(net)::out_channels == 3);
  REQUIRE(nn::parameter_names(net) == std::vector<std::string>{"0.weight", "0.bias", "1.scale"});
  auto& cs = net.get<1>();
  cs.scale().value()[1] = 2.5;
  auto x = input_with_grad<double>(ctx, Shape<3>{2, 2, 5});
  auto r = check_gradients([&] { return net(x); }, x, net.get<0>().weight(), cs.scale());
  INFO(r.message);
  REQUIRE(r.ok);
}

// ------------------------------------------------------------------------------------------------------------
// End to end: the training loop of the README's usage example (Adam over params(encoder, head), cosine schedule).
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("a small conv classifier trains with Adam and a cosine schedule", "[nn][train]") {
  Context<Cpu> ctx(2, 21);
  nn::Sequential<nn::Conv1d<1, 8, 5>, nn::BatchNorm1d<8>, nn::ReLU, nn::GlobalAvgPool> encoder{ctx};
  nn::Linear<8, 2> classifier{ctx};
  optim::Adam opt{params(encoder, classifier), {.lr = 3e-2, .weight_decay = 1e-4}};
  static_assert(std::is_same_v<decltype(opt), optim::Adam<float, Cpu>>);
  REQUIRE(opt.params().size() == 6);
  // Class 1: a rising ramp plus noise; class 0: a falling ramp plus noise.
  const index_t B = 16, L = 24;
  CounterRng rng(5);
  Tensor<float, 3> xs({B, 1, L});
  std::vector<int> ys(B);
  for (index_t b = 0; b < B; ++b) {
    ys[b] = static_cast<int>(b % 2);
    for (index_t t = 0; t < L; ++t)
      xs(b, 0, t) = static_cast<float>((ys[b] ? 1.0 : -1.0) * (double(t) / L - 0.5) + 0.3 * rng.normal());
  }
  auto x = constant(ctx, xs);
  const optim::Cosine schedule{3e-2, 80, 1e-4};
  float first = 0, last = 0;
  for (int epoch = 0; epoch < 80; ++epoch) {
    optim::apply(opt, schedule, epoch);
    auto loss = cross_entropy(classifier(encoder(x)), ys);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (epoch == 0) first = loss.value()[0];
    last = loss.value()[0];
  }
  INFO("loss " << first << " -> " << last);
  REQUIRE(last < 0.25f * first);
  encoder.eval();
  auto logits = classifier(encoder(x));
  int correct = 0;
  for (index_t b = 0; b < B; ++b) correct += (logits.value()(b, 1) > logits.value()(b, 0)) == (ys[b] == 1);
  REQUIRE(correct == B);
}
