// conv1d: forward and both gradients against plain loops, finite differences, PyTorch golden values, float vs
// double, thread-count determinism, geometry and error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/ops/conv1d.hpp"
#include "support/compare.hpp"
#include "support/golden.hpp"

using namespace distill;

namespace {

struct RefResult {
  std::vector<double> y, dx, dw, db;
};

/// Direct definition in double: y = conv(x, w) + b; dx, dw, db = gradients of sum(y * dy).
template <class T>
RefResult reference(const Conv1dGeometry& g, const T* x, const T* w, const T* b, const T* dy) {
  RefResult r;
  r.y.assign(static_cast<std::size_t>(g.B * g.Cout * g.Lout), 0.0);
  r.dx.assign(static_cast<std::size_t>(g.B * g.Cin * g.L), 0.0);
  r.dw.assign(static_cast<std::size_t>(g.Cout * g.Cin * g.K), 0.0);
  r.db.assign(static_cast<std::size_t>(g.Cout), 0.0);
  for (index_t n = 0; n < g.B; ++n)
    for (index_t o = 0; o < g.Cout; ++o)
      for (index_t t = 0; t < g.Lout; ++t) {
        const index_t yi = (n * g.Cout + o) * g.Lout + t;
        double acc = b ? double(b[o]) : 0.0;
        const double gy = double(dy[yi]);
        r.db[o] += gy;
        for (index_t c = 0; c < g.Cin; ++c)
          for (index_t u = 0; u < g.K; ++u) {
            const index_t s = t + u * g.dilation - g.pad_left;
            if (s < 0 || s >= g.L) continue;
            const index_t xi = (n * g.Cin + c) * g.L + s, wi = (o * g.Cin + c) * g.K + u;
            acc += double(w[wi]) * double(x[xi]);
            r.dx[xi] += double(w[wi]) * gy;
            r.dw[wi] += double(x[xi]) * gy;
          }
        r.y[yi] = acc;
      }
  return r;
}

using test::random_vec;
using test::rel_err;

std::string describe(const Conv1dGeometry& g) {
  return "B=" + std::to_string(g.B) + " Cin=" + std::to_string(g.Cin) + " Cout=" + std::to_string(g.Cout) +
         " L=" + std::to_string(g.L) + " K=" + std::to_string(g.K) + " dilation=" + std::to_string(g.dilation) +
         " pad=" + std::to_string(g.pad_left) + "/" + std::to_string(g.pad_right);
}

/// Runs the three raw kernels (with accumulation onto non-zero gradients) and compares with the reference.
template <class T>
void check_kernels(const Conv1dGeometry& g, int threads, double tol, std::uint64_t seed) {
  CounterRng rng(seed);
  const auto x = random_vec<T>(rng, g.B * g.Cin * g.L), w = random_vec<T>(rng, g.Cout * g.Cin * g.K),
             b = random_vec<T>(rng, g.Cout), dy = random_vec<T>(rng, g.B * g.Cout * g.Lout);
  auto ref = reference(g, x.data(), w.data(), b.data(), dy.data());
  std::vector<T> y(static_cast<std::size_t>(g.B * g.Cout * g.Lout), T(7));
  // Gradients start from a known value to check that the kernels accumulate.
  std::vector<T> dx(x.size(), T(0.5)), dw(w.size(), T(-0.25)), db(b.size(), T(2));
  for (auto& v : ref.dx) v += 0.5;
  for (auto& v : ref.dw) v -= 0.25;
  for (auto& v : ref.db) v += 2;
  cpu::conv1d_forward<T>(threads, g, x.data(), w.data(), b.data(), y.data());
  cpu::conv1d_backward_input<T>(threads, g, dy.data(), w.data(), dx.data());
  cpu::conv1d_backward_weight<T>(threads, g, x.data(), dy.data(), dw.data(), db.data());
  INFO(describe(g) << " threads=" << threads);
  CHECK(rel_err(y, ref.y) < tol);
  CHECK(rel_err(dx, ref.dx) < tol);
  CHECK(rel_err(dw, ref.dw) < tol);
  CHECK(rel_err(db, ref.db) < tol);
}

template <class T, std::size_t R>
Var<T, R> param(CounterRng& rng, Context<Cpu>& ctx, const Shape<R>& s) {
  return parameter(ctx, random_tensor<T>(rng, s));
}

template <class T, std::size_t R>
bool bitwise_equal(const Tensor<T, R>& a, const Tensor<T, R>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(T) * a.numel()) == 0;
}

}  // namespace

TEST_CASE("conv1d geometry follows PyTorch's padding rules", "[conv1d]") {
  auto g = conv1d_geometry(2, 3, 4, 100, 8);
  CHECK(g.pad_left == 3);
  CHECK(g.pad_right == 4);
  CHECK(g.Lout == 100);
  g = conv1d_geometry(2, 3, 4, 100, 5, {Padding::Same, 2});
  CHECK(g.pad_left == 4);
  CHECK(g.pad_right == 4);
  g = conv1d_geometry(2, 3, 4, 100, 2, {Padding::Same, 3});  // total 3: 1 left, 2 right
  CHECK(g.pad_left == 1);
  CHECK(g.pad_right == 2);
  g = conv1d_geometry(2, 3, 4, 100, 8, {Padding::Valid, 1});
  CHECK(g.pad_left == 0);
  CHECK(g.pad_right == 0);
  CHECK(g.Lout == 93);
  g = conv1d_geometry(2, 3, 4, 5, 1, {Padding::Valid, 4});
  CHECK(g.Lout == 5);
  CHECK_THROWS_WITH(conv1d_geometry(2, 3, 4, 7, 8, {Padding::Valid, 1}),
                    Catch::Contains("L=7") && Catch::Contains("K=8"));
  CHECK_THROWS_WITH(conv1d_geometry(2, 3, 4, 8, 5, {Padding::Valid, 2}), Catch::Contains("dilation=2"));
  CHECK_THROWS_WITH(conv1d_geometry(2, 3, 4, 9, 0), Catch::Contains("K=0"));
  CHECK_THROWS_WITH(conv1d_geometry(2, 3, 4, 9, 3, {Padding::Same, 0}), Catch::Contains("dilation"));
}

TEST_CASE("conv1d kernels match the definition at awkward sizes (double)", "[conv1d]") {
  std::uint64_t seed = 1;
  for (index_t B : {1, 3})
    for (index_t Cin : {1, 3, 4})
      for (index_t Cout : {1, 5, 33})
        for (index_t L : {1, 3, 7, 31, 33})
          for (index_t K : {1, 2, 3, 5, 8})
            for (index_t dil : {1, 2})
              for (Padding p : {Padding::Same, Padding::Valid}) {
                if (p == Padding::Valid && L - dil * (K - 1) < 1) continue;
                const auto g = conv1d_geometry(B, Cin, Cout, L, K, {p, dil});
                check_kernels<double>(g, 2, 1e-12, ++seed);
              }
}

TEST_CASE("conv1d kernels match the definition in float", "[conv1d]") {
  std::uint64_t seed = 100;
  for (index_t B : {1, 3})
    for (index_t Cin : {1, 4})
      for (index_t Cout : {1, 5, 33})
        for (index_t L : {3, 31, 33})
          for (index_t K : {1, 2, 8})
            for (Padding p : {Padding::Same, Padding::Valid}) {
              if (p == Padding::Valid && L - (K - 1) < 1) continue;
              check_kernels<float>(conv1d_geometry(B, Cin, Cout, L, K, {p, 1}), 2, 2e-6, ++seed);
            }
}

TEST_CASE("conv1d kernels cross every blocking boundary", "[conv1d]") {
  // Reductions longer than one block (Cin*K and Cout*K above 512, Lout above 256), single-row outputs (Cout = 1
  // forward, Cin = 1 grad-input), partial tiles in every direction, more work items than threads and fewer.
  std::uint64_t seed = 500;
  for (int threads : {1, 2, 3}) {
    check_kernels<float>(conv1d_geometry(2, 70, 1, 600, 8), threads, 5e-6, ++seed);
    check_kernels<float>(conv1d_geometry(3, 1, 70, 301, 8, {Padding::Same, 2}), threads, 5e-6, ++seed);
    check_kernels<float>(conv1d_geometry(1, 67, 13, 530, 9, {Padding::Valid, 1}), threads, 5e-6, ++seed);
    check_kernels<double>(conv1d_geometry(2, 40, 7, 290, 8), threads, 1e-12, ++seed);
    check_kernels<double>(conv1d_geometry(5, 9, 35, 77, 4, {Padding::Same, 3}), threads, 1e-12, ++seed);
  }
}

TEST_CASE("conv1d gradients agree with finite differences", "[conv1d][grad]") {
  struct Cfg {
    index_t B, Cin, Cout, L, K, dil;
    Padding p;
    bool bias;
  };
  const Cfg cfgs[] = {
      {3, 3, 5, 7, 8, 1, Padding::Same, true},    // L < K, even kernel
      {1, 1, 1, 3, 5, 1, Padding::Same, true},    // single channel, L < K
      {3, 4, 33, 31, 3, 2, Padding::Valid, true}, // dilated valid
      {2, 3, 5, 33, 2, 2, Padding::Same, false},  // even kernel, dilation, no bias
      {3, 4, 5, 7, 1, 1, Padding::Same, true},    // 1x1 conv
      {1, 3, 1, 31, 8, 1, Padding::Valid, true},  // Cout = 1
  };
  for (const auto& c : cfgs) {
    Context<Cpu> ctx(2, 7);
    CounterRng rng(c.B * 1000 + c.K);
    auto x = param<double>(rng, ctx, Shape<3>{c.B, c.Cin, c.L});
    auto w = param<double>(rng, ctx, Shape<3>{c.Cout, c.Cin, c.K});
    auto b = param<double>(rng, ctx, Shape<1>{c.Cout});
    const Conv1dOptions opt{c.p, c.dil};
    INFO("B=" << c.B << " Cin=" << c.Cin << " Cout=" << c.Cout << " L=" << c.L << " K=" << c.K << " dil=" << c.dil);
    GradCheckResult r;
    if (c.bias)
      r = check_gradients([&] { return conv1d(x, w, b, opt); }, x, w, b);
    else
      r = check_gradients([&] { return conv1d(x, w, opt); }, x, w);
    INFO(r.message);
    CHECK(r.ok);
    CHECK(r.checked > 0);
  }
}

TEST_CASE("conv1d op: only inputs that require grad receive gradients, and they accumulate", "[conv1d][grad]") {
  Context<Cpu> ctx(2, 3);
  CounterRng rng(11);
  auto x = constant(ctx, random_tensor<double>(rng, Shape<3>{2, 3, 9}));
  auto w = param<double>(rng, ctx, Shape<3>{4, 3, 3});
  auto b = param<double>(rng, ctx, Shape<1>{4});
  b.set_requires_grad(false);
  auto y = conv1d(x, w, b);
  REQUIRE(y.shape() == Shape<3>{2, 4, 9});
  auto gy = random_tensor<double>(rng, y.shape());
  y.backward(gy, true);
  REQUIRE(w.has_grad());
  CHECK_FALSE(x.has_grad());
  CHECK_FALSE(b.has_grad());
  const auto g = conv1d_geometry(2, 3, 4, 9, 3);
  auto ref = reference(g, x.value().data(), w.value().data(), b.value().data(), gy.data());
  for (index_t i = 0; i < w.numel(); ++i) CHECK(w.grad()[i] == Approx(ref.dw[i]).margin(1e-12));
  y.backward(gy);  // a second backward adds the same gradient again
  for (index_t i = 0; i < w.numel(); ++i) CHECK(w.grad()[i] == Approx(2 * ref.dw[i]).margin(1e-12));

  // Bias only (frozen weights): the bias gradient is the sum of dy over batch and time.
  Context<Cpu> ctx2(1, 0);
  auto x2 = constant(ctx2, random_tensor<double>(rng, Shape<3>{3, 2, 5}));
  auto w2 = constant(ctx2, random_tensor<double>(rng, Shape<3>{3, 2, 2}));
  auto b2 = param<double>(rng, ctx2, Shape<1>{3});
  auto y2 = conv1d(x2, w2, b2);
  auto gy2 = random_tensor<double>(rng, y2.shape());
  y2.backward(gy2);
  for (index_t o = 0; o < 3; ++o) {
    double s = 0;
    for (index_t n = 0; n < 3; ++n)
      for (index_t t = 0; t < 5; ++t) s += gy2(n, o, t);
    CHECK(b2.grad()[o] == Approx(s).margin(1e-12));
  }

  // No recording under NoGradGuard.
  {
    NoGradGuard ng(ctx);
    auto y3 = conv1d(x, w, b);
    CHECK_FALSE(y3.requires_grad());
  }
}

TEST_CASE("conv1d float agrees with double at a realistic size", "[conv1d]") {
  const auto g = conv1d_geometry(4, 64, 70, 300, 8);
  CounterRng rng(42);
  const auto xd = random_vec<double>(rng, g.B * g.Cin * g.L), wd = random_vec<double>(rng, g.Cout * g.Cin * g.K),
             bd = random_vec<double>(rng, g.Cout), dyd = random_vec<double>(rng, g.B * g.Cout * g.Lout);
  auto to_f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const auto xf = to_f(xd), wf = to_f(wd), bf = to_f(bd), dyf = to_f(dyd);
  std::vector<double> yd(dyd.size()), dxd(xd.size(), 0), dwd(wd.size(), 0), dbd(bd.size(), 0);
  std::vector<float> yf(dyd.size()), dxf(xd.size(), 0), dwf(wd.size(), 0), dbf(bd.size(), 0);
  cpu::conv1d_forward<double>(2, g, xd.data(), wd.data(), bd.data(), yd.data());
  cpu::conv1d_backward_input<double>(2, g, dyd.data(), wd.data(), dxd.data());
  cpu::conv1d_backward_weight<double>(2, g, xd.data(), dyd.data(), dwd.data(), dbd.data());
  cpu::conv1d_forward<float>(2, g, xf.data(), wf.data(), bf.data(), yf.data());
  cpu::conv1d_backward_input<float>(2, g, dyf.data(), wf.data(), dxf.data());
  cpu::conv1d_backward_weight<float>(2, g, xf.data(), dyf.data(), dwf.data(), dbf.data());
  // Reductions of 512 (y, dx: 560) and 1200 (dw, db) terms of magnitude <= 1.
  CHECK(rel_err(yf, yd) < 2e-6);
  CHECK(rel_err(dxf, dxd) < 2e-6);
  CHECK(rel_err(dwf, dwd) < 4e-6);
  CHECK(rel_err(dbf, dbd) < 4e-6);
}

TEST_CASE("conv1d results do not depend on the thread count", "[conv1d]") {
  // Batch 3 on 2 threads splits columns of a batch element; batch 16 splits the batch; Cin*K = 8 splits the
  // weight gradient by columns instead of rows.
  for (const auto& g : {conv1d_geometry(3, 5, 37, 200, 8), conv1d_geometry(16, 16, 32, 100, 3),
                        conv1d_geometry(4, 1, 64, 128, 8)}) {
    CounterRng rng(9);
    const auto x = random_vec<float>(rng, g.B * g.Cin * g.L), w = random_vec<float>(rng, g.Cout * g.Cin * g.K),
               b = random_vec<float>(rng, g.Cout), dy = random_vec<float>(rng, g.B * g.Cout * g.Lout);
    auto run = [&](int threads) {
      std::vector<float> y(dy.size()), dx(x.size(), 0), dw(w.size(), 0), db(b.size(), 0);
      cpu::conv1d_forward<float>(threads, g, x.data(), w.data(), b.data(), y.data());
      cpu::conv1d_backward_input<float>(threads, g, dy.data(), w.data(), dx.data());
      cpu::conv1d_backward_weight<float>(threads, g, x.data(), dy.data(), dw.data(), db.data());
      return std::vector<std::vector<float>>{y, dx, dw, db};
    };
    const auto r1 = run(1), r2 = run(2), r3 = run(3);
    INFO(describe(g));
    for (std::size_t i = 0; i < r1.size(); ++i) {
      CHECK(r1[i] == r2[i]);
      CHECK(r1[i] == r3[i]);
    }
  }
  // The same through the op and its context.
  auto through_op = [](int threads) {
    Context<Cpu> ctx(threads, 5);
    CounterRng rng(3);
    auto x = param<float>(rng, ctx, Shape<3>{3, 8, 150});
    auto w = param<float>(rng, ctx, Shape<3>{24, 8, 8});
    auto b = param<float>(rng, ctx, Shape<1>{24});
    auto y = conv1d(x, w, b);
    y.backward(random_tensor<float>(rng, y.shape()));
    return std::vector<Tensor<float, 3>>{y.value(), x.grad(), w.grad()};
  };
  const auto a = through_op(1), c = through_op(2);
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(bitwise_equal(a[i], c[i]));
}

TEST_CASE("conv1d matches PyTorch golden values", "[conv1d][golden]") {
  testing::Golden gold(testing::golden_path("conv1d.txt"));
  struct Case {
    const char* name;
    Conv1dOptions opt;
  };
  for (const Case& c : {Case{"same_k8", {Padding::Same, 1}}, Case{"same_k5_d2", {Padding::Same, 2}},
                        Case{"valid_k3", {Padding::Valid, 1}}}) {
    INFO(c.name);
    const std::string n = c.name;
    Context<Cpu> ctx(2, 0);
    auto x = parameter(ctx, gold.get<double, 3>(n + ".x"));
    auto w = parameter(ctx, gold.get<double, 3>(n + ".w"));
    auto b = parameter(ctx, gold.get<double, 1>(n + ".b"));
    auto y = conv1d(x, w, b, c.opt);
    const auto y_ref = gold.get<double, 3>(n + ".y");
    REQUIRE(y.shape() == y_ref.shape());
    y.backward(gold.get<double, 3>(n + ".gy"));
    const auto gx = gold.get<double, 3>(n + ".gx"), gw = gold.get<double, 3>(n + ".gw");
    const auto gb = gold.get<double, 1>(n + ".gb");
    for (index_t i = 0; i < y_ref.numel(); ++i) CHECK(y.value()[i] == Approx(y_ref[i]).margin(1e-12));
    for (index_t i = 0; i < gx.numel(); ++i) CHECK(x.grad()[i] == Approx(gx[i]).margin(1e-12));
    for (index_t i = 0; i < gw.numel(); ++i) CHECK(w.grad()[i] == Approx(gw[i]).margin(1e-12));
    for (index_t i = 0; i < gb.numel(); ++i) CHECK(b.grad()[i] == Approx(gb[i]).margin(1e-12));
  }
}

TEST_CASE("conv1d shape errors name both shapes", "[conv1d][errors]") {
  Context<Cpu> ctx(1, 0);
  auto x = constant(ctx, Tensor<float, 3>::zeros({2, 64, 100}));
  auto w = parameter(ctx, Tensor<float, 3>::zeros({128, 32, 8}));
  CHECK_THROWS_WITH(conv1d(x, w),
                    Catch::Contains("conv1d: input [2, 64, 100] has 64 channels but weight [128, 32, 8] expects 32"));
  auto w2 = parameter(ctx, Tensor<float, 3>::zeros({128, 64, 8}));
  auto b = parameter(ctx, Tensor<float, 1>::zeros({5}));
  CHECK_THROWS_WITH(conv1d(x, w2, b), Catch::Contains("bias [5]") && Catch::Contains("[128, 64, 8]"));
  auto xs = constant(ctx, Tensor<float, 3>::zeros({2, 64, 6}));
  CHECK_THROWS_WITH(conv1d(xs, w2, {Padding::Valid, 1}), Catch::Contains("L=6") && Catch::Contains("K=8"));
  CHECK_NOTHROW(conv1d(xs, w2));  // 'same' accepts L < K
}
