// DisCo's library pieces (issue 14): nn::MomentumEncoder (EMA and FIFO queue against plain references, frozen key
// parameters, the key width checked while the queue is empty, shuffle-BN), nn::FrozenTeacher (no gradient, BN
// statistics that never move in either BN mode, checkpoint round trip, no graph), losses::disco_loss (value and
// gradients against the composed naive ops in double, finite differences, the 32/B balance, the in-batch form), and
// models::DiscoLearner (what the optimizer sees, the key encoder following the query net, the queue filling).
// The Cuda device's DisCo steps are compared with the Cpu ones in test_cuda_disco.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/losses/disco.hpp"
#include "distill/losses/naive.hpp"
#include "distill/models/disco.hpp"
#include "distill/nn/frozen.hpp"
#include "distill/nn/momentum.hpp"
#include "distill/nn/nn.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/optim/adam.hpp"

using namespace distill;

namespace {

using Mlp = nn::MLPHead<4, 8, 3, double>;
// A small conv net with BatchNorm: [B, 1, L] -> [B, 3].
using BnNet = nn::Sequential<nn::Conv1d<1, 4, 3, nn::Conv1dConfig{}, double>, nn::BatchNorm1d<4, double>, nn::ReLU,
                             nn::GlobalAvgPool, nn::Linear<4, 3, nn::LinearConfig{}, double>>;

template <class M>
std::vector<std::vector<double>> param_values(const M& m) {
  std::vector<std::vector<double>> out;
  m.for_each_parameter([&](std::string_view, const auto& v) {
    out.emplace_back(v.value().data(), v.value().data() + v.numel());
  });
  return out;
}
template <class M>
std::vector<std::vector<double>> buffer_values(const M& m) {
  std::vector<std::vector<double>> out;
  m.for_each_buffer([&](std::string_view, const auto& t) { out.emplace_back(t.data(), t.data() + t.numel()); });
  return out;
}
template <class T, std::size_t R>
std::vector<double> values(const Tensor<T, R>& t) {
  return std::vector<double>(t.data(), t.data() + t.numel());
}

Tensor<double, 2> random2(index_t r, index_t c, std::uint64_t seed) {
  CounterRng rng(seed, 5);
  return random_tensor<double>(rng, Shape<2>{r, c});
}
Tensor<double, 3> random3(index_t b, index_t l, std::uint64_t seed) {
  CounterRng rng(seed, 6);
  return random_tensor<double>(rng, Shape<3>{b, 1, l});
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& stem)
      : path((std::filesystem::temp_directory_path() / (stem + std::to_string(::getpid()) + ".ckpt")).string()) {}
  ~TempFile() { std::filesystem::remove(path); }
};

}  // namespace

TEST_CASE("MomentumEncoder: key copy, EMA of the parameters against a plain reference, never trainable",
          "[disco][momentum]") {
  Context<Cpu> ctx(1, 3);
  Mlp query(ctx);
  const CounterRng before = ctx.rng();
  nn::MomentumEncoder<Mlp> key(ctx, query, {.momentum = 0.9});
  CHECK(ctx.rng().next_u64() == CounterRng(before).next_u64());  // the caller's random stream is untouched
  CHECK(param_values(key.module()) == param_values(query));
  key.module().for_each_parameter([](std::string_view, const auto& v) { CHECK_FALSE(v.requires_grad()); });
  CHECK_FALSE(key.has_queue());

  // Two updates with different query values: k = m k + (1 - m) q, elementwise.
  auto ref = param_values(key.module());
  for (int step = 0; step < 2; ++step) {
    CounterRng r(40 + step);
    query.for_each_parameter([&](std::string_view, auto& v) {
      for (index_t i = 0; i < v.numel(); ++i) v.value().data()[i] += r.uniform(-0.5, 0.5);
    });
    const auto q = param_values(query);
    for (std::size_t t = 0; t < ref.size(); ++t)
      for (std::size_t i = 0; i < ref[t].size(); ++i) ref[t][i] = 0.9 * ref[t][i] + 0.1 * q[t][i];
    key.update(query);
    const auto got = param_values(key.module());
    for (std::size_t t = 0; t < ref.size(); ++t)
      for (std::size_t i = 0; i < ref[t].size(); ++i) REQUIRE(got[t][i] == Approx(ref[t][i]).epsilon(1e-14));
  }
  key.set_momentum(0.0);
  key.update(query);
  CHECK(param_values(key.module()) == param_values(query));
  CHECK_THROWS_WITH(key.set_momentum(1.5), Catch::Contains("momentum must be in [0, 1]"));

  // Keys: the key module's output, no graph, no gradient.
  auto x = constant(ctx, random2(5, 4, 9));
  auto k = key.keys(x);
  CHECK_FALSE(k.requires_grad());
  CHECK(values(k.value()) == values(key.module()(x).value()));
}

TEST_CASE("MomentumEncoder: the queue is a FIFO of unit keys, its width is checked while empty", "[disco][momentum]") {
  Context<Cpu> ctx(1, 4);
  Mlp query(ctx);
  nn::MomentumEncoder<Mlp> key(ctx, query, {.momentum = 0.99, .queue_size = 5, .key_dim = 3, .random_queue = false});
  REQUIRE(key.has_queue());
  CHECK(key.queue().size() == 0);
  CHECK(key.queue().dim() == 3);
  // Width checks before anything was enqueued.
  auto wrong = constant(ctx, random2(2, 4, 1));
  CHECK_THROWS_WITH(key.enqueue(wrong), Catch::Contains("key_dim 3"));
  CHECK_THROWS_WITH(key.info_nce(wrong, wrong, 0.2), Catch::Contains("key_dim 3"));
  CHECK_THROWS_WITH(losses::moco_info_nce(wrong, wrong, key.queue(), 0.2), Catch::Contains("queue of dim 3"));
  CHECK_THROWS_WITH(nn::MomentumEncoder<Mlp>(ctx, query, {.queue_size = 4}), Catch::Contains("key_dim"));

  // Plain reference: a deque of normalised rows, capacity 5.
  std::deque<std::vector<double>> ref;
  for (int step = 0; step < 4; ++step) {
    auto k = constant(ctx, random2(2, 3, 100 + step));
    key.enqueue(k);
    for (index_t i = 0; i < 2; ++i) {
      double ss = 0;
      for (index_t j = 0; j < 3; ++j) ss += k.value()(i, j) * k.value()(i, j);
      std::vector<double> row;
      for (index_t j = 0; j < 3; ++j) row.push_back(k.value()(i, j) / std::sqrt(ss));
      ref.push_back(row);
      if (ref.size() > 5) ref.pop_front();
    }
    const auto got = key.queue().ordered();
    REQUIRE(got.extent(0) == index_t(ref.size()));
    for (index_t i = 0; i < got.extent(0); ++i)
      for (index_t j = 0; j < 3; ++j) REQUIRE(got(i, j) == Approx(ref[i][j]).epsilon(1e-14));
  }
  CHECK(key.queue().full());

  // info_nce is moco_info_nce against the queue's contents.
  auto q = parameter(ctx, random2(2, 3, 7));
  auto kk = constant(ctx, random2(2, 3, 8));
  CHECK(key.info_nce(q, kk, 0.2).value()[0] ==
        Approx(losses::naive::moco_info_nce(q, kk, key.queue().ordered(), 0.2).value()[0]).epsilon(1e-12));

  // MoCo's initialisation: a full queue of random unit keys.
  nn::MomentumEncoder<Mlp> moco(ctx, query, {.queue_size = 6, .key_dim = 3});
  CHECK(moco.queue().full());
  const auto init = moco.queue().ordered();
  for (index_t i = 0; i < 6; ++i) {
    double ss = 0;
    for (index_t j = 0; j < 3; ++j) ss += init(i, j) * init(i, j);
    CHECK(ss == Approx(1.0).epsilon(1e-12));
  }
}

TEST_CASE("MomentumEncoder: shuffle-BN keeps the keys in batch order and uses sub-batch statistics",
          "[disco][momentum]") {
  Context<Cpu> ctx(1, 5);
  // Without BN the key of a series does not depend on the batch: shuffled groups give the same keys.
  Mlp mlp(ctx);
  nn::MomentumEncoder<Mlp> plain(ctx, mlp, {.momentum = 0.9});
  nn::MomentumEncoder<Mlp> shuffled(ctx, mlp, {.momentum = 0.9, .shuffle_groups = 3});
  auto x = constant(ctx, random2(7, 4, 3));
  const auto a = values(plain.keys(x).value()), b = values(shuffled.keys(x).value());
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(b[i] == Approx(a[i]).epsilon(1e-13));
  // With BN the groups' statistics differ from the whole batch's: the keys change.
  BnNet net(ctx);
  nn::MomentumEncoder<BnNet> whole(ctx, net, {.momentum = 0.9});
  nn::MomentumEncoder<BnNet> groups(ctx, net, {.momentum = 0.9, .shuffle_groups = 2});
  auto xs = constant(ctx, random3(8, 12, 4));
  const auto c = values(whole.keys(xs).value()), d = values(groups.keys(xs).value());
  double diff = 0;
  for (std::size_t i = 0; i < c.size(); ++i) diff = std::max(diff, std::fabs(c[i] - d[i]));
  CHECK(diff > 1e-6);
}

TEST_CASE("FrozenTeacher: loaded from a checkpoint, frozen, no graph, BN statistics never move", "[disco][teacher]") {
  Context<Cpu> ctx(1, 6);
  BnNet trained(ctx);
  {  // give the BN layer non-trivial running statistics
    NoGradGuard ng(ctx);
    for (int i = 0; i < 3; ++i) trained(constant(ctx, random3(6, 10, 20 + i)));
  }
  TempFile file("disco_teacher_");
  save_checkpoint(file.path, trained);
  const auto stats = buffer_values(trained);
  REQUIRE(stats[0] != std::vector<double>(4, 0.0));

  auto x = constant(ctx, random3(5, 10, 30));
  for (auto mode : {nn::TeacherBN::RunningStats, nn::TeacherBN::BatchStats}) {
    nn::FrozenTeacher<BnNet> teacher(ctx, file.path, mode);
    CHECK(param_values(teacher.module()) == param_values(trained));
    CHECK(buffer_values(teacher.module()) == stats);
    teacher.module().for_each_parameter([](std::string_view, const auto& v) { CHECK_FALSE(v.requires_grad()); });

    auto t = teacher(x);
    CHECK_FALSE(t.requires_grad());
    CHECK(t.is_leaf());  // no graph behind the output
    // The reference: the trained module in the matching BN mode (a copy, so its statistics are not disturbed).
    BnNet copy(ctx);
    copy.copy_from(trained);
    copy.train(mode == nn::TeacherBN::BatchStats);
    std::vector<double> want;
    {
      NoGradGuard ng(ctx);
      want = values(copy(x).value());
    }
    const auto got = values(t.value());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-13));

    // A student trained against the teacher: the teacher gets no gradient, its statistics stay.
    auto s = parameter(ctx, random2(5, 3, 31));
    auto loss = losses::normalized_mse_sum(s, teacher(x));
    loss.backward();
    CHECK(s.has_grad());
    teacher.module().for_each_parameter([](std::string_view, const auto& v) { CHECK_FALSE(v.has_grad()); });
    for (int i = 0; i < 3; ++i) teacher(constant(ctx, random3(4, 10, 40 + i)));
    CHECK(buffer_values(teacher.module()) == stats);
    CHECK(param_values(teacher.module()) == param_values(trained));
  }
  // From memory: the same values.
  nn::FrozenTeacher<BnNet> mem(ctx, trained);
  CHECK(param_values(mem.module()) == param_values(trained));
  CHECK_THROWS_WITH(nn::FrozenTeacher<BnNet>(ctx, std::string("/nonexistent/teacher.ckpt")),
                    Catch::Contains("does not exist"));
  CHECK(nn::parse_teacher_bn("batch") == nn::TeacherBN::BatchStats);
  CHECK_THROWS_WITH(nn::parse_teacher_bn("frozen"), Catch::Contains("unknown teacher BN mode"));
}

TEST_CASE("disco_loss: value and gradients against the composed naive ops and finite differences (double)",
          "[disco][loss]") {
  Context<Cpu> ctx(1, 7);
  const index_t B = 6, d = 5, K = 7;
  const double tau = 0.2;
  auto q1 = parameter(ctx, random2(B, d, 1));
  auto q2 = parameter(ctx, random2(B, d, 2));
  auto k = constant(ctx, random2(B, d, 3));
  auto t1 = parameter(ctx, random2(B, d, 4));  // requires grad on purpose: the loss must detach it
  auto t2 = parameter(ctx, random2(B, d, 5));
  losses::Queue<double> queue = losses::Queue<double>::random(K, d, ctx.rng());
  const Tensor<double, 2> neg = queue.contents();

  SECTION("MoCo mode: L = InfoNCE(q1, k, queue) + (32 / B) * sum of both views' normalised MSE") {
    auto fused = losses::disco_loss(q1, q2, k, queue, t1, t2, {.tau = tau});
    CHECK(fused.balance == Approx(32.0 / double(B)));
    auto naive = add(losses::naive::moco_info_nce(q1, k, neg, tau),
                     scale(add(losses::naive::normalized_mse_sum(q1, t1.detach()),
                               losses::naive::normalized_mse_sum(q2, t2.detach())),
                           32.0 / double(B)));
    REQUIRE(fused.total.value()[0] == Approx(naive.value()[0]).epsilon(1e-12));
    CHECK(fused.contrastive == Approx(losses::naive::moco_info_nce(q1, k, neg, tau).value()[0]).epsilon(1e-12));
    fused.total.backward();
    const auto g1 = values(q1.grad()), g2 = values(q2.grad());
    CHECK_FALSE(t1.has_grad());
    CHECK_FALSE(t2.has_grad());
    q1.zero_grad();
    q2.zero_grad();
    naive.backward();
    for (std::size_t i = 0; i < g1.size(); ++i) {
      CHECK(g1[i] == Approx(q1.grad().data()[i]).margin(1e-12));
      CHECK(g2[i] == Approx(q2.grad().data()[i]).margin(1e-12));
    }
    auto r = check_gradients([&] { return losses::disco_loss(q1, q2, k, neg, t1, t2, {.tau = tau}).total; }, q1, q2);
    CHECK(r.ok);
    INFO(r.message);
  }
  SECTION("in-batch mode (no queue): NT-Xent of the two views; explicit balance; no teacher") {
    auto fused = losses::disco_loss(q1, q2, Var<double, 2>{}, Tensor<double, 2>{}, t1, t2, {.tau = tau, .balance = 3.0});
    auto naive = add(losses::naive::nt_xent(q1, q2, tau),
                     scale(add(losses::naive::normalized_mse_sum(q1, t1.detach()),
                               losses::naive::normalized_mse_sum(q2, t2.detach())),
                           3.0));
    REQUIRE(fused.total.value()[0] == Approx(naive.value()[0]).epsilon(1e-12));
    auto r = check_gradients(
        [&] { return losses::disco_loss(q1, q2, Var<double, 2>{}, Tensor<double, 2>{}, t1, t2, {.balance = 3.0}).total; },
        q1, q2);
    CHECK(r.ok);
    INFO(r.message);
    auto plain = losses::disco_loss(q1, q2, k, neg, Var<double, 2>{}, Var<double, 2>{}, {.tau = tau});
    CHECK(plain.distillation == 0);
    CHECK(plain.total.value()[0] == Approx(losses::naive::moco_info_nce(q1, k, neg, tau).value()[0]).epsilon(1e-12));
  }
  SECTION("errors") {
    CHECK_THROWS_WITH(losses::disco_loss(q1, Var<double, 2>{}, Var<double, 2>{}, neg, t1, t2), Catch::Contains("q2"));
    CHECK_THROWS_WITH(losses::disco_loss(q1, q2, k, neg, t1, Var<double, 2>{}), Catch::Contains("both teacher"));
    auto wide = constant(ctx, random2(B, d + 1, 9));
    CHECK_THROWS_WITH(losses::disco_loss(q1, q2, k, neg, wide, wide), Catch::Contains("teacher t1"));
    losses::Queue<double> other(4, d + 2);
    CHECK_THROWS_WITH(losses::disco_loss(q1, q2, k, other, t1, t2), Catch::Contains("queue of dim"));
  }
}

TEST_CASE("DiscoLearner: the optimizer sees the query net only; the key encoder follows it; the queue fills",
          "[disco][model]") {
  Context<Cpu> ctx(1, 8);
  using Net = models::DiscoStudentNet<float>;
  using Teach = models::DiscoNet<16, 32, float>;
  CHECK(models::disco_queue_size(50, 16) == 0);
  CHECK(models::disco_queue_size(100, 64) == 64);
  CHECK(models::disco_queue_size(5000, 64) == 1024);
  CHECK(models::parse_disco_variant("disco-wide") == models::DiscoVariant::DiscoWide);
  CHECK_THROWS_WITH(models::parse_disco_variant("seed"), Catch::Contains("unknown DisCo variant"));

  Teach trained(ctx);
  nn::FrozenTeacher<Teach> teacher(ctx, trained);
  models::DiscoLearner<Net, Teach> learner(ctx, {.momentum = 0.9, .queue_size = 8}, &teacher);
  REQUIRE_FALSE(learner.in_batch());
  CHECK(learner.trainable().size() == nn::num_parameter_tensors(learner.net));
  optim::Adam opt{learner.trainable(), {.lr = 1e-2}};
  CounterRng r(3);
  const auto t_before = param_values(teacher.module());
  for (int step = 0; step < 3; ++step) {
    Tensor<float, 3> a(Shape<3>{4, 1, 16}), b(Shape<3>{4, 1, 16});
    for (auto& v : a) v = float(r.normal());
    for (auto& v : b) v = float(r.normal());
    const auto q_before = param_values(learner.net);
    const auto k_before = param_values(learner.key->module());
    auto loss = learner.loss(constant(ctx, a), constant(ctx, b));
    CHECK(std::isfinite(loss.contrastive));
    CHECK(loss.distillation > 0);
    CHECK(loss.balance == Approx(8.0));
    opt.zero_grad();
    loss.total.backward();
    opt.step();
    // The EMA ran before the keys: k = 0.9 k + 0.1 q (with the query before this step's update).
    const auto k_after = param_values(learner.key->module());
    for (std::size_t t = 0; t < k_after.size(); ++t)
      for (std::size_t i = 0; i < k_after[t].size(); i += 7)
        REQUIRE(k_after[t][i] == Approx(0.9 * k_before[t][i] + 0.1 * q_before[t][i]).margin(1e-6));
    learner.key->module().for_each_parameter([](std::string_view, const auto& v) { CHECK_FALSE(v.has_grad()); });
  }
  CHECK(param_values(teacher.module()) == t_before);
  CHECK(learner.key->queue().full());
  // In-batch mode: no key encoder.
  models::DiscoLearner<Net, Teach> small(ctx, {}, nullptr);
  CHECK(small.in_batch());
  CHECK_FALSE(small.key.has_value());
}
