// Optimizers (SGD, Adam, AdamW) against hand-computed values and torch.optim; LR schedules; EMA; checkpoints.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/reduce.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/ema.hpp"
#include "distill/optim/schedule.hpp"
#include "distill/optim/sgd.hpp"
#include "support/golden.hpp"

using namespace distill;
using distill::testing::Golden;
using distill::testing::golden_path;

namespace {

template <class T, std::size_t R>
Var<T, R> param_from(Context<Cpu>& ctx, const Tensor<T, R>& t) {
  return parameter(ctx, t.clone());
}

template <class T, std::size_t R>
void set_grad(Var<T, R>& v, const Tensor<T, R>& g) {
  v.drop_grad();
  v.grad_buffer().copy_from(g);
}

/// A small user-written "module": the contract an nn module follows, without depending on nn/.
template <class T>
struct TinyModule {
  using value_type = T;
  using device_type = Cpu;
  Var<T, 2> w;
  Var<T, 1> b;
  Tensor<T, 1> running_mean;
  TinyModule(Context<Cpu>& ctx, std::uint64_t seed) {
    CounterRng rng(seed);
    w = parameter(ctx, random_tensor<T>(rng, Shape<2>{3, 4}));
    b = parameter(ctx, random_tensor<T>(rng, Shape<1>{3}));
    running_mean = random_tensor<T>(rng, Shape<1>{3});
  }
  template <class F>
  void for_each_parameter(F&& f) {
    f(std::string_view("w"), w);
    f(std::string_view("b"), b);
  }
  template <class F>
  void for_each_parameter(F&& f) const {
    f(std::string_view("w"), w);
    f(std::string_view("b"), b);
  }
  template <class F>
  void for_each_buffer(F&& f) {
    f(std::string_view("running_mean"), running_mean);
  }
  template <class F>
  void for_each_buffer(F&& f) const {
    f(std::string_view("running_mean"), running_mean);
  }
};

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("distill_test_optim_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    return out;
  }
};

std::vector<unsigned char> read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::filesystem::path& p, const std::vector<unsigned char>& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// Hand-computed single steps.
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("SGD: plain, momentum, Nesterov and weight decay by hand", "[optim][sgd]") {
  Context<Cpu> ctx;
  auto run = [&](optim::SgdOptions o, std::vector<double> expect) {
    auto p = parameter(ctx, Tensor<double, 1>::full({1}, 1.0));
    optim::SGD opt(params(p), o);
    for (double e : expect) {
      set_grad(p, Tensor<double, 1>::full({1}, 0.5));
      opt.step();
      REQUIRE(p.value()[0] == Approx(e).epsilon(1e-14));
    }
  };
  // p -= 0.1 * 0.5
  run({.lr = 0.1}, {0.95, 0.90});
  // buf = 0.5 -> p = 0.95; buf = 0.9 * 0.5 + 0.5 = 0.95 -> p = 0.855
  run({.lr = 0.1, .momentum = 0.9}, {0.95, 0.855});
  // Nesterov: d = 0.5 + 0.9 * 0.5 = 0.95 -> 0.905; buf = 0.95, d = 0.5 + 0.9 * 0.95 = 1.355 -> 0.7695
  run({.lr = 0.1, .momentum = 0.9, .nesterov = true}, {0.905, 0.7695});
  // weight decay 0.1: d = 0.5 + 0.1 * 1 = 0.6 -> 0.94; d = 0.5 + 0.094 = 0.594 -> 0.8806
  run({.lr = 0.1, .weight_decay = 0.1}, {0.94, 0.8806});
  // dampening 0.5: buf = 0.5 (first step ignores dampening) -> 0.95; buf = 0.9 * 0.5 + 0.25 = 0.7 -> 0.88
  run({.lr = 0.1, .momentum = 0.9, .dampening = 0.5}, {0.95, 0.88});
}

TEST_CASE("Adam and AdamW: first steps by hand", "[optim][adam]") {
  Context<Cpu> ctx;
  const double g = 0.5, lr = 0.1, eps = 1e-8;
  {
    // First step: m_hat = g, v_hat = g^2 -> p -= lr * g / (|g| + eps).
    auto p = parameter(ctx, Tensor<double, 1>::full({1}, 1.0));
    optim::Adam opt(params(p), {.lr = lr, .eps = eps});
    set_grad(p, Tensor<double, 1>::full({1}, g));
    opt.step();
    REQUIRE(p.value()[0] == Approx(1.0 - lr * g / (g + eps)).epsilon(1e-14));
    // Second step with gradient -0.25: m = 0.9*0.05 + 0.1*(-0.25) = 0.02, v = 0.999*2.5e-4 + 0.001*0.0625.
    set_grad(p, Tensor<double, 1>::full({1}, -0.25));
    const double before = p.value()[0];
    opt.step();
    const double m = 0.9 * 0.05 + 0.1 * -0.25, v = 0.999 * 0.00025 + 0.001 * 0.0625;
    const double expect = before - lr / (1 - 0.81) * m / (std::sqrt(v) / std::sqrt(1 - 0.999 * 0.999) + eps);
    REQUIRE(p.value()[0] == Approx(expect).epsilon(1e-13));
    REQUIRE(opt.param_steps(0) == 2);
  }
  {
    // Adam's weight decay enters the gradient: g' = 0.5 + 0.2 * 1 = 0.7 -> p -= lr * 0.7 / (0.7 + eps).
    auto p = parameter(ctx, Tensor<double, 1>::full({1}, 1.0));
    optim::Adam opt(params(p), {.lr = lr, .eps = eps, .weight_decay = 0.2});
    set_grad(p, Tensor<double, 1>::full({1}, g));
    opt.step();
    REQUIRE(p.value()[0] == Approx(1.0 - lr * 0.7 / (0.7 + eps)).epsilon(1e-14));
  }
  {
    // AdamW decays the weight first: p = 1 * (1 - 0.1 * 0.2) = 0.98, then the Adam step of g.
    auto p = parameter(ctx, Tensor<double, 1>::full({1}, 1.0));
    optim::AdamW opt(params(p), {.lr = lr, .eps = eps, .weight_decay = 0.2});
    set_grad(p, Tensor<double, 1>::full({1}, g));
    opt.step();
    REQUIRE(p.value()[0] == Approx(0.98 - lr * g / (g + eps)).epsilon(1e-14));
  }
  // torch.optim.AdamW's default weight decay is 1e-2; Adam's is 0.
  REQUIRE(optim::AdamWOptions{}.weight_decay == 0.01);
  REQUIRE(optim::AdamOptions{}.weight_decay == 0.0);
}

// ------------------------------------------------------------------------------------------------------------
// Golden values from torch.optim (tests/golden/gen_optim.py).
// ------------------------------------------------------------------------------------------------------------
namespace {
template <class T>
std::unique_ptr<optim::Optimizer<T>> make_case(const std::string& c, const ParamList<T>& ps) {
  using namespace optim;
  if (c == "sgd") return std::make_unique<SGD<T>>(ps, SgdOptions{.lr = 0.1});
  if (c == "sgd_momentum_wd")
    return std::make_unique<SGD<T>>(ps, SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2});
  if (c == "sgd_nesterov")
    return std::make_unique<SGD<T>>(ps, SgdOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true});
  if (c == "sgd_dampening")
    return std::make_unique<SGD<T>>(ps, SgdOptions{.lr = 0.1, .momentum = 0.8, .dampening = 0.3});
  if (c == "adam") return std::make_unique<Adam<T>>(ps, AdamOptions{.lr = 1e-2});
  if (c == "adam_wd")
    return std::make_unique<Adam<T>>(ps, AdamOptions{.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1});
  if (c == "adam_amsgrad")
    return std::make_unique<Adam<T>>(ps, AdamOptions{.lr = 2e-2, .weight_decay = 1e-3, .amsgrad = true});
  if (c == "adamw") return std::make_unique<AdamW<T>>(ps, AdamWOptions{.lr = 1e-2, .weight_decay = 0.1});
  if (c == "adamw_amsgrad")
    return std::make_unique<AdamW<T>>(
        ps, AdamWOptions{.lr = 3e-2, .beta1 = 0.5, .beta2 = 0.9, .weight_decay = 0.5, .amsgrad = true});
  FAIL("unknown case " << c);
  return nullptr;
}
}  // namespace

TEMPLATE_TEST_CASE("optimizers match torch.optim step by step", "[optim][golden]", float, double) {
  using T = TestType;
  const Golden gold(golden_path("optim.txt"));
  const std::string tag = std::is_same_v<T, float> ? "f32" : "f64";
  // float: torch and distill evaluate the same float operations; a few ulps of reassociation are allowed.
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-13;
  for (const std::string c : {"sgd", "sgd_momentum_wd", "sgd_nesterov", "sgd_dampening", "adam", "adam_wd",
                              "adam_amsgrad", "adamw", "adamw_amsgrad"}) {
    INFO("case " << c << " " << tag);
    Context<Cpu> ctx(2, 0);
    auto p0 = param_from(ctx, gold.get<T, 2>("init.p0"));
    auto p1 = param_from(ctx, gold.get<T, 1>("init.p1"));
    auto p2 = param_from(ctx, gold.get<T, 1>("init.p2"));
    ParamList<T> ps;
    ps.add(p0, "p0");
    ps.add(p1, "p1");
    ps.add(p2, "p2");
    auto opt = make_case<T>(c, ps);
    for (int t = 0; t < 5; ++t) {
      const std::string st = "t" + std::to_string(t);
      set_grad(p0, gold.get<T, 2>("grad." + st + ".p0"));
      if (t != 2)
        set_grad(p1, gold.get<T, 1>("grad." + st + ".p1"));
      else
        p1.drop_grad();  // skipped this step, like p.grad = None in torch
      opt->step();
      auto check = [&](const auto& got, const std::string& key) {
        const auto want = gold.get<T, std::remove_cvref_t<decltype(got)>::rank>(key);
        for (index_t i = 0; i < want.numel(); ++i) {
          INFO(key << "[" << i << "]");
          REQUIRE(double(got[i]) == Approx(double(want[i])).epsilon(tol).margin(tol));
        }
      };
      check(p0.value(), c + "." + tag + "." + st + ".p0");
      check(p1.value(), c + "." + tag + "." + st + ".p1");
      check(p2.value(), c + "." + tag + "." + st + ".p2");
    }
    REQUIRE(opt->steps() == 5);
    REQUIRE(opt->param_steps(0) == 5);
    REQUIRE(opt->param_steps(1) == 4);
    REQUIRE(opt->param_steps(2) == 0);
  }
}

TEST_CASE("optimizer bookkeeping: zero_grad, lr, duplicates, validation, params()", "[optim]") {
  Context<Cpu> ctx;
  auto a = parameter(ctx, Tensor<float, 2>::full({2, 2}, 1.0f));
  auto b = parameter(ctx, Tensor<float, 1>::full({3}, 2.0f));
  auto list = params(a, b, a);  // a twice: stepped once
  REQUIRE(list.size() == 2);
  REQUIRE(list.numel() == 7);
  REQUIRE(list[0].shape_string() == "[2, 2]");
  optim::SGD opt(list, {.lr = 0.5});
  REQUIRE(opt.lr() == 0.5);
  opt.set_lr(0.25);
  REQUIRE(opt.lr() == 0.25);
  REQUIRE_THROWS_WITH(opt.set_lr(-1), Catch::Contains("learning rate must be >= 0"));

  // No gradient yet: nothing moves.
  opt.step();
  REQUIRE(a.value()[0] == 1.0f);
  set_grad(a, Tensor<float, 2>::full({2, 2}, 1.0f));
  set_grad(b, Tensor<float, 1>::full({3}, 1.0f));
  opt.step();
  REQUIRE(a.value()[0] == 0.75f);
  REQUIRE(b.value()[0] == 1.75f);
  opt.zero_grad();
  REQUIRE(a.has_grad());
  REQUIRE(a.grad()[0] == 0.0f);
  opt.zero_grad(/*set_to_none=*/true);
  REQUIRE_FALSE(a.has_grad());
  opt.step();
  REQUIRE(a.value()[0] == 0.75f);

  REQUIRE_THROWS_WITH((optim::SGD<float>(list, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true})),
                      Catch::Contains("Nesterov momentum requires momentum > 0 and dampening = 0"));
  REQUIRE_THROWS_WITH((optim::Adam<float>(list, {.beta1 = 1.0})), Catch::Contains("beta1 must be in [0, 1)"));

  // A real loss: minimise |w - 3|^2 with Adam; converges.
  auto w = parameter(ctx, Tensor<double, 1>::full({4}, 0.0));
  auto target = constant(ctx, Tensor<double, 1>::full({4}, 3.0));
  optim::Adam adam(params(w), {.lr = 0.1});
  for (int i = 0; i < 300; ++i) {
    auto d = sub(w, target);
    auto loss = sum(mul(d, d));
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  for (index_t i = 0; i < 4; ++i) REQUIRE(w.value()[i] == Approx(3.0).margin(1e-3));

  // Module parameters are collected with their names.
  TinyModule<float> m(ctx, 3);
  auto mp = params(m);
  REQUIRE(mp.size() == 2);
  REQUIRE(mp[0].name() == "w");
  REQUIRE(mp[1].name() == "b");
  REQUIRE(mp.numel() == 15);
  mp.set_requires_grad(false);
  REQUIRE_FALSE(m.w.requires_grad());
}

// ------------------------------------------------------------------------------------------------------------
// Schedules.
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("LR schedules match torch.optim.lr_scheduler", "[optim][schedule]") {
  const Golden gold(golden_path("optim.txt"));
  auto check = [&](const std::string& key, const auto& sched) {
    const auto want = gold.get<double, 1>(key);
    for (index_t t = 0; t < want.numel(); ++t) {
      INFO(key << " epoch " << t);
      REQUIRE(sched(t) == Approx(want[t]).epsilon(1e-12).margin(1e-15));
    }
  };
  check("sched.cosine", optim::Cosine{0.1, 10, 1e-4});
  check("sched.cosine_long", optim::Cosine{0.1, 7, 0.0});
  check("sched.step", optim::Step{0.1, 3, 0.5});
  check("sched.multistep", optim::MultiStep{0.1, {2, 5, 9}, 0.1});
  check("sched.warmup_cosine", optim::with_warmup(optim::Cosine{0.1, 10, 1e-3}, 4, 0.25));

  // Hand values and applying to an optimizer.
  REQUIRE(optim::Cosine{1.0, 4, 0.0}(2) == Approx(0.5));
  REQUIRE(optim::Cosine{1.0, 4, 0.0}(4) == Approx(0.0).margin(1e-15));
  REQUIRE(optim::Constant{0.3}(99) == 0.3);
  REQUIRE(optim::with_warmup(optim::Constant{1.0}, 2, 0.5)(1) == Approx(0.75));
  Context<Cpu> ctx;
  auto p = parameter(ctx, Tensor<float, 1>::full({1}, 0.0f));
  optim::SGD opt(params(p), {.lr = 1.0});
  REQUIRE(optim::apply(opt, optim::Step{0.2, 2, 0.5}, 5) == Approx(0.05));
  REQUIRE(opt.lr() == Approx(0.05));
  REQUIRE_THROWS_WITH((optim::Cosine{0.1, 0}(1)), Catch::Contains("t_max must be > 0"));
  REQUIRE_THROWS_WITH((optim::MultiStep{0.1, {5, 2}, 0.1}(1)), Catch::Contains("increasing order"));
}

// ------------------------------------------------------------------------------------------------------------
// EMA.
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("ema_update: momentum encoder update and buffer modes", "[optim][ema]") {
  Context<Cpu> ctx;
  TinyModule<double> q(ctx, 1), k(ctx, 2);
  const auto k_w0 = k.w.value().clone();
  const auto q_w = q.w.value().clone();
  const auto k_rm0 = k.running_mean.clone();
  optim::ema_update(k, q, 0.99, optim::BufferMode::Keep);
  for (index_t i = 0; i < k_w0.numel(); ++i) REQUIRE(k.w.value()[i] == Approx(0.99 * k_w0[i] + 0.01 * q_w[i]));
  for (index_t i = 0; i < 3; ++i) REQUIRE(k.running_mean[i] == k_rm0[i]);
  REQUIRE_FALSE(k.w.has_grad());  // no graph, no gradient touched

  optim::ema_update(k, q, 0.5, optim::BufferMode::Ema);
  for (index_t i = 0; i < 3; ++i) REQUIRE(k.running_mean[i] == Approx(0.5 * k_rm0[i] + 0.5 * q.running_mean[i]));
  optim::ema_update(k, q, 0.5);  // default: buffers copied
  for (index_t i = 0; i < 3; ++i) REQUIRE(k.running_mean[i] == q.running_mean[i]);

  // copy_parameters: exact copy, even over NaN.
  k.b.value()[0] = std::nan("");
  optim::copy_parameters(k, q);
  for (index_t i = 0; i < 12; ++i) REQUIRE(k.w.value()[i] == q.w.value()[i]);
  REQUIRE(k.b.value()[0] == q.b.value()[0]);

  // ParamLists work too, and mismatched structures are refused with a message.
  auto a = parameter(ctx, Tensor<double, 1>::full({3}, 1.0));
  auto b = parameter(ctx, Tensor<double, 1>::full({3}, 3.0));
  auto c = parameter(ctx, Tensor<double, 1>::full({4}, 3.0));
  auto la = params(a);
  optim::ema_update(la, params(b), 0.75);
  REQUIRE(a.value()[1] == Approx(1.5));
  REQUIRE_THROWS_WITH(optim::ema_update(la, params(c), 0.5),
                      Catch::Contains("has shape [3] in the target but [4] in the source"));
  REQUIRE_THROWS_WITH(optim::ema_update(la, params(b, c), 0.5),
                      Catch::Contains("the target has 1 parameters but the source has 2"));
  REQUIRE_THROWS_WITH(optim::ema_update(la, params(b), 1.5), Catch::Contains("momentum must be in [0, 1]"));
}

// ------------------------------------------------------------------------------------------------------------
// Checkpoints.
// ------------------------------------------------------------------------------------------------------------
TEST_CASE("checkpoint: module round trip, atomic write, no temporaries", "[io][checkpoint]") {
  TempDir dir("roundtrip");
  Context<Cpu> ctx;
  TinyModule<float> a(ctx, 1), b(ctx, 2);
  const auto file = dir.path / "tiny.ckpt";
  save_checkpoint(file, a);
  REQUIRE(dir.files() == std::vector<std::string>{"tiny.ckpt"});
  load_checkpoint(file, b);
  for (index_t i = 0; i < 12; ++i) REQUIRE(b.w.value()[i] == a.w.value()[i]);
  for (index_t i = 0; i < 3; ++i) REQUIRE(b.b.value()[i] == a.b.value()[i]);
  for (index_t i = 0; i < 3; ++i) REQUIRE(b.running_mean[i] == a.running_mean[i]);

  // Overwriting replaces the file atomically (same name, still no temporaries).
  a.w.value()[0] = 42.0f;
  save_checkpoint(file, a);
  REQUIRE(dir.files() == std::vector<std::string>{"tiny.ckpt"});
  load_checkpoint(file, b);
  REQUIRE(b.w.value()[0] == 42.0f);

  // Saving into a missing directory fails with the file name and leaves nothing behind.
  REQUIRE_THROWS_WITH(save_checkpoint(dir.path / "missing" / "x.ckpt", a),
                      Catch::Contains("cannot save checkpoint") && Catch::Contains("x.ckpt"));
  REQUIRE(dir.files() == std::vector<std::string>{"tiny.ckpt"});

  // Header layout.
  const auto bytes = read_bytes(file);
  REQUIRE(std::string(bytes.begin(), bytes.begin() + 8) == "DSTLCKPT");
  std::uint32_t version = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  REQUIRE(version == io::kCheckpointVersion);
  const auto ck = io::Checkpoint::load(file);
  REQUIRE(ck.names() == std::vector<std::string>{"w", "b", "running_mean"});
  REQUIRE(ck.get<float, 2>("w").shape() == Shape<2>{3, 4});
  auto get_as_double = [&] { return ck.get<double, 2>("w"); };
  auto get_as_rank1 = [&] { return ck.get<float, 1>("w"); };
  REQUIRE_THROWS_WITH(get_as_double(), Catch::Contains("stored as float32 but float64 was expected"));
  REQUIRE_THROWS_WITH(get_as_rank1(), Catch::Contains("has rank 2"));
}

TEST_CASE("checkpoint: truncated, corrupted, wrong version or shape are refused with clear messages",
          "[io][checkpoint]") {
  TempDir dir("bad");
  Context<Cpu> ctx;
  TinyModule<float> a(ctx, 1);
  const auto good = dir.path / "good.ckpt";
  save_checkpoint(good, a);
  const auto bytes = read_bytes(good);
  const auto bad = dir.path / "bad.ckpt";

  SECTION("truncated payload") {
    write_bytes(bad, std::vector<unsigned char>(bytes.begin(), bytes.end() - 5));
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("bad.ckpt") && Catch::Contains("is truncated"));
  }
  SECTION("truncated header") {
    write_bytes(bad, std::vector<unsigned char>(bytes.begin(), bytes.begin() + 20));
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("is truncated") && Catch::Contains("40-byte header"));
  }
  SECTION("trailing bytes") {
    auto b = bytes;
    b.push_back(0);
    write_bytes(bad, b);
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("unexpected bytes after"));
  }
  SECTION("corrupted payload") {
    auto b = bytes;
    b[b.size() - 3] ^= 0x10;
    write_bytes(bad, b);
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("bad.ckpt") && Catch::Contains("is corrupted") &&
                                                     Catch::Contains("checksum"));
  }
  SECTION("wrong version") {
    auto b = bytes;
    b[8] = 7;
    write_bytes(bad, b);
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("format version 7") &&
                                                     Catch::Contains("reads version 1"));
  }
  SECTION("not a checkpoint") {
    write_bytes(bad, std::vector<unsigned char>(64, 'x'));
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("is not a distill checkpoint"));
  }
  SECTION("missing file") {
    REQUIRE_THROWS_WITH(load_checkpoint(dir.path / "nope.ckpt", a), Catch::Contains("cannot open checkpoint") &&
                                                                       Catch::Contains("nope.ckpt"));
  }
  SECTION("shape mismatch, missing and unexpected tensors; a refused load changes nothing") {
    io::Checkpoint ck;
    ck.put("w", Tensor<float, 2>::full({3, 5}, 1.0f));
    ck.put("b", a.b);
    ck.put("running_mean", a.running_mean);
    ck.save(bad);
    const float w0 = a.w.value()[0];
    const float b0 = a.b.value()[0] + 1;
    a.b.value()[0] = b0;
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("bad.ckpt") && Catch::Contains("tensor 'w'") &&
                                                     Catch::Contains("has shape [3, 5] in the file but shape [3, 4] "
                                                                     "was expected"));
    REQUIRE(a.w.value()[0] == w0);
    REQUIRE(a.b.value()[0] == b0);  // b was valid, but nothing is written when any tensor is refused

    io::Checkpoint ck2;
    ck2.put("w", a.w);
    ck2.put("running_mean", a.running_mean);
    ck2.put("extra", Tensor<float, 1>::full({2}, 0.0f));
    ck2.save(bad);
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("has no tensor 'b' (expected shape [3])"));
    ck2.put("b", a.b);
    ck2.save(bad);
    REQUIRE_THROWS_WITH(load_checkpoint(bad, a), Catch::Contains("has a tensor 'extra' (shape [2]) that the "
                                                                 "module does not have"));
    load_checkpoint(bad, a, /*strict=*/false);  // non-strict ignores it
  }
}

TEST_CASE("checkpoint: prefixes, several modules and optimizer state resume exactly", "[io][checkpoint]") {
  TempDir dir("resume");
  const auto file = dir.path / "run.ckpt";
  // Train 6 Adam steps straight, versus 3 steps + save + fresh objects + load + 3 steps.
  auto train = [&](TinyModule<double>& m, optim::Adam<double>& opt, int steps, int offset) {
    for (int s = 0; s < steps; ++s) {
      CounterRng rng(100 + offset + s);
      set_grad(m.w, random_tensor<double>(rng, Shape<2>{3, 4}));
      set_grad(m.b, random_tensor<double>(rng, Shape<1>{3}));
      opt.step();
    }
  };
  Context<Cpu> ctx;
  TinyModule<double> ref(ctx, 5);
  optim::Adam ref_opt(params(ref), {.lr = 0.05, .weight_decay = 0.01});
  train(ref, ref_opt, 6, 0);

  TinyModule<double> m1(ctx, 5), head(ctx, 9);
  optim::Adam opt1(params(m1), {.lr = 0.05, .weight_decay = 0.01});
  train(m1, opt1, 3, 0);
  {
    io::Checkpoint ck;
    ck.put_module(m1, "encoder");
    ck.put_module(head, "head");
    ck.put_optimizer(opt1, "opt");
    ck.save(file);
  }
  TinyModule<double> m2(ctx, 77), head2(ctx, 78);
  optim::Adam opt2(params(m2), {.lr = 0.5, .weight_decay = 0.01});
  const auto ck = io::Checkpoint::load(file);
  ck.load_module(m2, "encoder");
  ck.load_module(head2, "head");
  ck.load_optimizer(opt2, "opt");
  REQUIRE(opt2.lr() == 0.05);
  REQUIRE(opt2.steps() == 3);
  REQUIRE(opt2.param_steps(0) == 3);
  REQUIRE(head2.w.value()[5] == head.w.value()[5]);
  train(m2, opt2, 3, 3);
  for (index_t i = 0; i < 12; ++i) REQUIRE(m2.w.value()[i] == ref.w.value()[i]);
  for (index_t i = 0; i < 3; ++i) REQUIRE(m2.b.value()[i] == ref.b.value()[i]);

  // An SGD optimizer cannot take Adam's state: its names differ.
  optim::SGD sgd(params(m2), {.lr = 0.1, .momentum = 0.9});
  REQUIRE_THROWS_WITH(ck.load_optimizer(sgd, "opt"), Catch::Contains("has no tensor 'opt.0.momentum_buffer'"));
}
