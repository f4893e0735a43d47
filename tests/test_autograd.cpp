// Autograd engine: accumulation, shared parameters, detach, no-grad, frozen leaves, graph release.
#include <catch2/catch.hpp>

#include "distill/autograd/grad_check.hpp"
#include "distill/core/host_pool.hpp"
#include "distill/autograd/var.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/reduce.hpp"

using namespace distill;

namespace {
template <class T, std::size_t R>
Var<T, R> param_of(Context<Cpu>& ctx, const Shape<R>& s) {
  return parameter(ctx, random_tensor<T>(ctx.rng(), s));
}
}  // namespace

TEST_CASE("tensor basics: shape, indexing, views, errors", "[tensor]") {
  Tensor<float, 3> t({2, 3, 4});
  REQUIRE(t.numel() == 24);
  REQUIRE(reinterpret_cast<std::uintptr_t>(t.data()) % kAlignment == 0);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = float(i);
  REQUIRE(t(1, 2, 3) == 23.0f);
  REQUIRE(t(0, 1, 0) == 4.0f);
  auto s = t.slice0(1, 1);
  REQUIRE(s.shape() == Shape<3>{1, 3, 4});
  REQUIRE(s(0, 0, 0) == 12.0f);
  auto c = t.clone();
  c[0] = 100;
  REQUIRE(t[0] == 0.0f);
  REQUIRE_THROWS_WITH(t.reshape(Shape<2>{5, 5}), Catch::Contains("[2, 3, 4]") && Catch::Contains("[5, 5]"));
  REQUIRE_THROWS_WITH(t.at(2, 0, 0), Catch::Contains("out of range"));
  REQUIRE_THROWS_AS((Tensor<float, 2>(Shape<2>{-1, 2})), Error);
}

TEST_CASE("caching host pool: size classes, reuse, bound, release, lifetime", "[tensor][pool]") {
  // Size classes: quarter octaves above 64 KiB, never smaller than asked, at most 25% larger, multiples of 64.
  for (std::size_t b : {std::size_t(65537), std::size_t(100000), std::size_t(131072), std::size_t(131073),
                        std::size_t(1) << 20, (std::size_t(3) << 20) + 5}) {
    const std::size_t c = HostPool::size_class(b);
    INFO("bytes " << b << " class " << c);
    CHECK(c >= b);
    CHECK(double(c) <= 1.25 * double(b) + 64);
    CHECK(c % kAlignment == 0);
  }
  CHECK(HostPool::size_class(std::size_t(1) << 20) == std::size_t(1) << 20);

  auto pool = std::make_shared<HostPool>(true, std::size_t(4) << 20);
  void* first = nullptr;
  {
    auto a = pool->allocate(300000);
    first = a.get();
    REQUIRE(reinterpret_cast<std::uintptr_t>(first) % kAlignment == 0);
    CHECK(pool->misses() == 1);
    CHECK(pool->cached_bytes() == 0);
  }
  CHECK(pool->cached_bytes() == HostPool::size_class(300000));
  {
    auto b = pool->allocate(290000);  // same size class: the cached block comes back
    CHECK(b.get() == first);
    CHECK(pool->hits() == 1);
    auto c = pool->allocate(290000);  // the class is empty now: a new block
    CHECK(c.get() != first);
    CHECK(pool->misses() == 2);
  }
  // The bound: blocks freed beyond max_cached go back to the system.
  {
    auto big = pool->allocate(std::size_t(5) << 20);
  }
  CHECK(pool->cached_bytes() <= std::size_t(4) << 20);
  pool->release();
  CHECK(pool->cached_bytes() == 0);
  // Small blocks bypass the cache; a disabled pool caches nothing.
  { auto s = pool->allocate(1000); }
  CHECK(pool->cached_bytes() == 0);
  pool->set_enabled(false);
  { auto d = pool->allocate(300000); }
  CHECK(pool->cached_bytes() == 0);

  // Through a context: a training-step-like loop reuses its blocks; a tensor may outlive its context.
  Tensor<float, 2> survivor;
  {
    Context<Cpu> ctx(1, 3);
    ctx.host_pool().set_enabled(true);
    const float* p0 = nullptr;
    for (int step = 0; step < 3; ++step) {
      auto t = ctx.zeros<float, 2>(Shape<2>{256, 256});
      REQUIRE(t(255, 255) == 0.0f);
      if (step == 0) p0 = t.data();
      CHECK(t.data() == p0);
      t.fill(float(step + 1));  // dirty the block: zeros() must clear it again next step
    }
    CHECK(ctx.host_pool().hits() == 2);
    survivor = ctx.empty<float, 2>(Shape<2>{128, 256});
    survivor.fill(2.0f);
  }
  CHECK(survivor(127, 255) == 2.0f);  // the pool lives until its last block is freed
}

TEST_CASE("counter RNG is reproducible and stream-independent", "[rng]") {
  CounterRng a(7), b(7), c(8);
  for (int i = 0; i < 10; ++i) REQUIRE(a.next_u64() == b.next_u64());
  CounterRng d(7);
  REQUIRE(d.next_u64() != c.next_u64());
  CounterRng e(7);
  REQUIRE(e.at(5) == CounterRng(7).at(5));
  double m = 0;
  CounterRng g(3);
  for (int i = 0; i < 20000; ++i) m += g.normal();
  REQUIRE(std::abs(m / 20000) < 0.03);
}

TEST_CASE("gradients accumulate over shared uses and backward calls", "[autograd]") {
  Context<Cpu> ctx(1, 0);
  auto w = parameter(ctx, Tensor<double, 1>::full({3}, 2.0));
  // Two "views" through the same parameter: d/dw sum(w*w + w) = 2w + 1
  auto loss = sum(add(mul(w, w), w));
  loss.backward();
  for (index_t i = 0; i < 3; ++i) REQUIRE(w.grad()[i] == Approx(5.0));
  auto loss2 = sum(w);
  loss2.backward();
  for (index_t i = 0; i < 3; ++i) REQUIRE(w.grad()[i] == Approx(6.0));
  w.zero_grad();
  REQUIRE(w.grad()[0] == 0.0);
}

TEST_CASE("detach, frozen parameters and no-grad mode build no gradient path", "[autograd]") {
  Context<Cpu> ctx(1, 0);
  auto student = param_of<double>(ctx, Shape<1>{4});
  auto teacher = param_of<double>(ctx, Shape<1>{4});
  teacher.set_requires_grad(false);
  auto loss = sum(mul(student, teacher));
  loss.backward();
  REQUIRE(student.has_grad());
  REQUIRE_FALSE(teacher.has_grad());
  for (index_t i = 0; i < 4; ++i) REQUIRE(student.grad()[i] == Approx(teacher.value()[i]));

  auto s2 = param_of<double>(ctx, Shape<1>{4});
  auto l2 = sum(mul(s2, s2.detach()));  // gradient flows through one factor only
  l2.backward();
  for (index_t i = 0; i < 4; ++i) REQUIRE(s2.grad()[i] == Approx(s2.value()[i]));

  {
    NoGradGuard ng(ctx);
    auto y = mul(s2, s2);
    REQUIRE_FALSE(y.requires_grad());
    REQUIRE_THROWS_WITH(sum(y).backward(), Catch::Contains("does not require grad"));
  }
  REQUIRE(ctx.grad_enabled());
}

TEST_CASE("several outputs feeding one loss, two networks in one loss", "[autograd]") {
  Context<Cpu> ctx(2, 1);
  auto x = constant(ctx, random_tensor<double>(ctx.rng(), Shape<2>{3, 5}));
  auto net_a = param_of<double>(ctx, Shape<2>{3, 5});
  auto net_b = param_of<double>(ctx, Shape<2>{3, 5});
  auto r = check_gradients(
      [&] {
        auto h1 = relu(mul(x, net_a));         // block 1 "head"
        auto h2 = relu(add(h1, net_b));        // block 2, uses block 1
        auto h3 = mul(h1, net_b);              // a second network's head on block 1
        return add(add(scale(sum(h1), 0.5), sum(h2)), sum(h3));
      },
      net_a, net_b);
  INFO(r.message);
  REQUIRE(r.ok);
  REQUIRE(r.checked == 30);
}

TEST_CASE("backward releases the graph; retain_graph keeps it", "[autograd]") {
  Context<Cpu> ctx(1, 0);
  auto w = param_of<double>(ctx, Shape<1>{2});
  auto h = mul(w, w);
  auto loss = sum(h);
  loss.backward(/*retain_graph=*/true);
  loss.backward();
  for (index_t i = 0; i < 2; ++i) REQUIRE(w.grad()[i] == Approx(4 * w.value()[i]));
  REQUIRE(h.node()->parents.empty());
  REQUIRE_FALSE(h.has_grad());  // intermediate gradients are dropped with the graph
}

TEST_CASE("elementwise ops: values and finite-difference gradients", "[ops][grad]") {
  Context<Cpu> ctx(2, 3);
  for (index_t n : {1, 3, 31, 33, 40000}) {
    auto a = param_of<double>(ctx, Shape<2>{n, 1});
    auto b = param_of<double>(ctx, Shape<2>{n, 1});
    auto y = sub(mul(a, b), scale(a, 3.0));
    for (index_t i = 0; i < n; ++i)
      REQUIRE(y.value()[i] == Approx(a.value()[i] * b.value()[i] - 3 * a.value()[i]));
    GradCheckOptions o;
    o.max_elements_per_input = 64;
    auto r = check_gradients([&] { return relu(sub(mul(a, b), scale(a, 3.0))); }, o, a, b);
    INFO("n=" << n << " " << r.message);
    REQUIRE(r.ok);
  }
}

TEMPLATE_TEST_CASE("scalar arithmetic: any arithmetic scalar on either side of + - * / (values)", "[ops][scalar]",
                   float, double) {
  using T = TestType;
  Context<Cpu> ctx(2, 5);
  const double lambda = 0.3;  // a double weight with a Var<float>: converted to T
  const int two = 2;
  auto v = Var<T, 2>(ctx, random_tensor<T>(ctx.rng(), Shape<2>{3, 33}, 0.5, 1.5), true);
  auto w = Var<T, 2>(ctx, random_tensor<T>(ctx.rng(), Shape<2>{3, 33}, 0.5, 1.5), true);
  static_assert(std::is_same_v<decltype(lambda * v), Var<T, 2>>);
  static_assert(std::is_same_v<decltype(v / two), Var<T, 2>>);
  struct Case {
    const char* what;
    Var<T, 2> got;
    double (*ref)(double, double);
  };
  const Case cases[] = {
      {"0.5 * v", 0.5 * v, [](double x, double) { return 0.5 * x; }},
      {"v * 0.5f", v * 0.5f, [](double x, double) { return 0.5 * x; }},
      {"lambda * v", lambda * v, [](double x, double) { return 0.3 * x; }},
      {"v / 2", v / two, [](double x, double) { return x / 2; }},
      {"v / 3.0", v / 3.0, [](double x, double) { return x / 3; }},
      {"3 / v", 3 / v, [](double x, double) { return 3 / x; }},
      {"1 - v", 1 - v, [](double x, double) { return 1 - x; }},
      {"v - 1.5", v - 1.5, [](double x, double) { return x - 1.5; }},
      {"2 + v", 2 + v, [](double x, double) { return 2 + x; }},
      {"v + 0.25", v + 0.25, [](double x, double) { return x + 0.25; }},
      {"-v", -v, [](double x, double) { return -x; }},
      {"v / w", v / w, [](double x, double y) { return x / y; }},
      {"1 - 0.5 * v / w + 2", 1 - 0.5 * v / w + 2, [](double x, double y) { return 3 - 0.5 * x / y; }},
  };
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-15;
  for (const Case& c : cases) {
    INFO(c.what);
    REQUIRE(c.got.shape() == v.shape());
    for (index_t i = 0; i < v.numel(); ++i) {
      const double ref = c.ref(double(v.value()[i]), double(w.value()[i]));
      REQUIRE(std::abs(double(c.got.value()[i]) - ref) <= tol * (1 + std::abs(ref)));
    }
  }
  // The gradient of a float loss weighted by a double: d(lambda * sum(v)) / dv = lambda (as a float).
  auto loss = lambda * sum(v);
  loss.backward();
  for (index_t i = 0; i < v.numel(); ++i) REQUIRE(v.grad()[i] == static_cast<T>(lambda));
}

TEST_CASE("scalar arithmetic and div: finite-difference gradients (double)", "[ops][scalar][grad]") {
  Context<Cpu> ctx(2, 6);
  for (index_t n : {1, 31, 40000}) {
    auto a = Var<double, 2>(ctx, random_tensor<double>(ctx.rng(), Shape<2>{n, 1}, 0.5, 1.5), true);
    auto b = Var<double, 2>(ctx, random_tensor<double>(ctx.rng(), Shape<2>{n, 1}, -1.5, -0.5), true);
    GradCheckOptions o;
    o.max_elements_per_input = 64;
    const double lambda = 0.7;
    auto check = [&](const char* what, auto&& f) {
      auto r = check_gradients(f, o, a, b);
      INFO(what << " n=" << n << " " << r.message);
      REQUIRE(r.ok);
    };
    check("a / b", [&] { return a / b; });
    check("b / a", [&] { return b / a; });
    check("a / a (one input twice)", [&] { return mul(a / a, b); });
    check("2 / b and 1 - a", [&] { return (2 / b) * (1 - a); });
    check("lambda * a + b / 3 - 4", [&] { return lambda * a + b / 3 - 4; });
    check("0.5 * (a * b) + 2 - b, -a", [&] { return 0.5 * (a * b) + (2 - b) + (-a); });
    check("a * 3 + (2 + b) - (b - 1)", [&] { return a * 3 + (2 + b) - (b - 1); });
  }
  // A frozen divisor gets no gradient; the numerator still does.
  auto x = Var<double, 1>(ctx, random_tensor<double>(ctx.rng(), Shape<1>{5}, 1, 2), true);
  auto d = Var<double, 1>(ctx, random_tensor<double>(ctx.rng(), Shape<1>{5}, 1, 2), false);
  auto r = check_gradients([&] { return x / d; }, x);
  INFO(r.message);
  REQUIRE(r.ok);
  REQUIRE_FALSE(d.has_grad());
  const Var<double, 1> four(ctx, Tensor<double, 1>(Shape<1>{4}));
  REQUIRE_THROWS_WITH(x / four,
                      Catch::Contains("div") && Catch::Contains("[5]") && Catch::Contains("[4]"));
}

TEST_CASE("errors name the shapes at fault", "[errors]") {
  Context<Cpu> ctx;
  auto a = param_of<float>(ctx, Shape<2>{2, 3});
  auto b = param_of<float>(ctx, Shape<2>{3, 2});
  REQUIRE_THROWS_WITH(add(a, b), Catch::Contains("[2, 3]") && Catch::Contains("[3, 2]") &&
                                     Catch::Contains("add"));
  REQUIRE_THROWS_WITH(a.backward(Tensor<float, 2>(Shape<2>{3, 2})), Catch::Contains("backward(seed)"));
  Var<float, 1> undefined;
  REQUIRE_THROWS_WITH(undefined.shape(), Catch::Contains("undefined"));
}
