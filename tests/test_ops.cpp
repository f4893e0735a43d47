// Core differentiable ops: batch_norm, global_avg_pool, flatten, linear, matmul, matmul_nt, l2_normalize,
// softmax, log_softmax, cross_entropy (hard / soft), mse, concat0 / split0 / slice0.
//
// Every op: forward against a plain-loop reference in double, gradients against central finite differences
// (check_gradients, double), awkward sizes, error messages. batch_norm, log_softmax and cross_entropy are also
// compared with PyTorch golden files (tests/golden/gen_batchnorm.py, gen_softmax_loss.py).
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/ops/batchnorm.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/linear.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/ops/normalize.hpp"
#include "distill/ops/pool.hpp"
#include "distill/ops/reduce.hpp"
#include "distill/ops/shape_ops.hpp"
#include "distill/ops/softmax.hpp"
#include "support/golden.hpp"

using namespace distill;
using distill::testing::Golden;
using distill::testing::golden_path;

namespace {

template <class T, std::size_t R>
Var<T, R> rvar(Context<Cpu>& ctx, const Shape<R>& s, bool requires_grad = true, double lo = -1, double hi = 1) {
  return Var<T, R>(ctx, random_tensor<T>(ctx.rng(), s, lo, hi), requires_grad);
}

template <class T, std::size_t R>
Tensor<double, R> to_double(const Tensor<T, R>& t) {
  Tensor<double, R> d(t.shape());
  for (index_t i = 0; i < t.numel(); ++i) d[i] = double(t[i]);
  return d;
}

/// Forward tolerances: float results against a double reference, double against double.
template <class T>
constexpr double atol_v() { return std::is_same_v<T, float> ? 2e-5 : 1e-12; }
template <class T>
constexpr double rtol_v() { return std::is_same_v<T, float> ? 1e-4 : 1e-10; }

/// Element count of a tensor, a std::vector or a C array.
template <class X>
index_t count_of(const X& x) {
  if constexpr (requires { x.numel(); }) return x.numel();
  else return static_cast<index_t>(std::size(x));
}

/// Fails (naming the first offending element) unless |a - ref| <= atol + rtol |ref| everywhere (NaN fails).
template <class A, class B>
void require_close(const A& a, const B& ref, double atol, double rtol, const std::string& what) {
  REQUIRE(count_of(a) == count_of(ref));
  index_t bad = -1;
  for (index_t i = 0; i < count_of(a) && bad < 0; ++i) {
    const double d = std::abs(double(a[i]) - double(ref[i]));
    if (!(d <= atol + rtol * std::abs(double(ref[i])))) bad = i;
  }
  if (bad >= 0) {
    INFO(what << ": element " << bad << " is " << double(a[bad]) << ", expected " << double(ref[bad]));
    REQUIRE(bad < 0);
  }
}

template <class A, class B>
bool bitwise_equal(const A& a, const B& b) {
  if (a.numel() != b.numel()) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}

void require_grad_ok(const GradCheckResult& r, const std::string& what) {
  INFO(what << ": " << r.message);
  REQUIRE(r.ok);
  REQUIRE(r.checked > 0);
}

// ------------------------------------------------------------------------------------------------------------
// Plain-loop references (double).
// ------------------------------------------------------------------------------------------------------------

struct BnRef {
  std::vector<double> y, mean, var;  // var: biased
};
/// x flat [B, C, L]; gamma/beta may be empty (no affine). Training: batch statistics; else the given stats.
BnRef bn_ref(const std::vector<double>& x, index_t B, index_t C, index_t L, const std::vector<double>& gamma,
             const std::vector<double>& beta, bool training, const std::vector<double>& rm,
             const std::vector<double>& rv, double eps) {
  BnRef r;
  r.y.resize(x.size());
  r.mean.assign(C, 0);
  r.var.assign(C, 0);
  for (index_t c = 0; c < C; ++c) {
    double m = 0, v = 0;
    if (training) {
      for (index_t b = 0; b < B; ++b)
        for (index_t l = 0; l < L; ++l) m += x[(b * C + c) * L + l];
      m /= double(B * L);
      for (index_t b = 0; b < B; ++b)
        for (index_t l = 0; l < L; ++l) v += (x[(b * C + c) * L + l] - m) * (x[(b * C + c) * L + l] - m);
      v /= double(B * L);
    } else {
      m = rm[c];
      v = rv[c];
    }
    r.mean[c] = m;
    r.var[c] = v;
    const double gm = gamma.empty() ? 1.0 : gamma[c], bt = beta.empty() ? 0.0 : beta[c];
    for (index_t b = 0; b < B; ++b)
      for (index_t l = 0; l < L; ++l) {
        const index_t i = (b * C + c) * L + l;
        r.y[i] = (x[i] - m) / std::sqrt(v + eps) * gm + bt;
      }
  }
  return r;
}

template <class T, std::size_t R>
std::vector<double> flat(const Tensor<T, R>& t) {
  return std::vector<double>(t.begin(), t.end());
}

// ------------------------------------------------------------------------------------------------------------
// batch_norm
// ------------------------------------------------------------------------------------------------------------

template <class T, std::size_t R>
void bn_forward_case(Context<Cpu>& ctx, const Shape<R>& s, bool affine) {
  const index_t B = s[0], C = s[1], L = R == 3 ? s[R - 1] : 1;
  INFO("shape " << to_string(s) << (affine ? " affine" : " no affine") << ", threads " << ctx.threads());
  auto x = rvar<T>(ctx, s, false, -1.0, 4.0);  // mean 1.5: normalisation must remove it
  Var<T, 1> gamma, beta;
  if (affine) {
    gamma = rvar<T>(ctx, Shape<1>{C}, true, 0.5, 1.5);
    beta = rvar<T>(ctx, Shape<1>{C}, true, -0.5, 0.5);
  }
  auto rm = random_tensor<T>(ctx.rng(), Shape<1>{C}, -0.5, 0.5);
  auto rv = random_tensor<T>(ctx.rng(), Shape<1>{C}, 0.5, 2.0);
  const auto rm0 = flat(rm), rv0 = flat(rv);
  const std::vector<double> gv = affine ? flat(gamma.value()) : std::vector<double>{};
  const std::vector<double> bv = affine ? flat(beta.value()) : std::vector<double>{};

  BatchNormOptions train{.training = true, .momentum = 0.1, .eps = 1e-5};
  auto y = batch_norm(x, gamma, beta, rm, rv, train);
  REQUIRE(y.shape() == s);
  auto ref = bn_ref(flat(x.value()), B, C, L, gv, bv, true, {}, {}, 1e-5);
  require_close(y.value(), ref.y, atol_v<T>(), rtol_v<T>(), "train output");
  // Running statistics: momentum 0.1, unbiased variance.
  std::vector<double> rm1(C), rv1(C);
  const double n = double(B * L);
  for (index_t c = 0; c < C; ++c) {
    rm1[c] = 0.9 * rm0[c] + 0.1 * ref.mean[c];
    rv1[c] = 0.9 * rv0[c] + 0.1 * ref.var[c] * n / (n - 1);
  }
  require_close(rm, rm1, atol_v<T>(), rtol_v<T>(), "running_mean");
  require_close(rv, rv1, atol_v<T>(), rtol_v<T>(), "running_var");

  // Eval: running statistics, which stay untouched.
  BatchNormOptions eval{.training = false};
  auto ye = batch_norm(x, gamma, beta, rm, rv, eval);
  auto refe = bn_ref(flat(x.value()), B, C, L, gv, bv, false, rm1, rv1, 1e-5);
  require_close(ye.value(), refe.y, atol_v<T>(), rtol_v<T>(), "eval output");
  require_close(rm, rm1, atol_v<T>(), rtol_v<T>(), "running_mean after eval");
  require_close(rv, rv1, atol_v<T>(), rtol_v<T>(), "running_var after eval");
}

}  // namespace

TEMPLATE_TEST_CASE("batch_norm forward (train, eval, running stats) against a loop reference", "[ops][bn]", float,
                   double) {
  Context<Cpu> ctx(1, 11);
  for (bool affine : {true, false}) {
    for (auto s : {Shape<3>{1, 3, 5}, Shape<3>{3, 1, 1}, Shape<3>{2, 3, 31}, Shape<3>{3, 4, 33}, Shape<3>{33, 3, 1},
                   Shape<3>{31, 2, 3}})
      bn_forward_case<TestType>(ctx, s, affine);
    for (auto s : {Shape<2>{2, 1}, Shape<2>{3, 5}, Shape<2>{31, 33}, Shape<2>{33, 31}})
      bn_forward_case<TestType>(ctx, s, affine);
  }
  Context<Cpu> ctx2(2, 12);  // parallel paths
  bn_forward_case<TestType>(ctx2, Shape<3>{8, 33, 131}, true);
  bn_forward_case<TestType>(ctx2, Shape<2>{1031, 97}, true);
}

TEST_CASE("batch_norm keeps large-mean inputs accurate (float)", "[ops][bn]") {
  // Values around 1000 with unit spread: a one-pass E[x^2] - E[x]^2 in float would lose all digits.
  Context<Cpu> ctx(1, 5);
  auto x = rvar<float>(ctx, Shape<3>{4, 2, 64}, false, 999.0, 1001.0);
  Tensor<float, 1> rm, rv;
  auto y = batch_norm(x, Var<float, 1>{}, Var<float, 1>{}, rm, rv);
  auto ref = bn_ref(flat(x.value()), 4, 2, 64, {}, {}, true, {}, {}, 1e-5);
  require_close(y.value(), ref.y, 1e-3, 1e-3, "large-mean output");
}

TEST_CASE("batch_norm gradients (train and eval, with and without affine)", "[ops][bn][grad]") {
  Context<Cpu> ctx(1, 21);
  auto run3 = [&](const Shape<3>& s, bool training, bool with_gamma, bool with_beta) {
    INFO("shape " << to_string(s) << " training " << training << " gamma " << with_gamma << " beta " << with_beta);
    const index_t C = s[1];
    auto x = rvar<double>(ctx, s, true, -1.0, 3.0);
    Var<double, 1> gamma, beta;
    if (with_gamma) gamma = rvar<double>(ctx, Shape<1>{C}, true, 0.5, 1.5);
    if (with_beta) beta = rvar<double>(ctx, Shape<1>{C}, true, -0.5, 0.5);
    auto rm = random_tensor<double>(ctx.rng(), Shape<1>{C}, -0.5, 0.5);
    auto rv = random_tensor<double>(ctx.rng(), Shape<1>{C}, 0.5, 2.0);
    BatchNormOptions o{.training = training};
    auto f = [&] { return batch_norm(x, gamma, beta, rm, rv, o); };
    if (with_gamma && with_beta) require_grad_ok(check_gradients(f, x, gamma, beta), "x, gamma, beta");
    else if (with_gamma) require_grad_ok(check_gradients(f, x, gamma), "x, gamma");
    else if (with_beta) require_grad_ok(check_gradients(f, x, beta), "x, beta");
    else require_grad_ok(check_gradients(f, x), "x");
  };
  for (bool training : {true, false}) {
    for (auto s : {Shape<3>{2, 3, 5}, Shape<3>{1, 2, 33}, Shape<3>{3, 2, 1}, Shape<3>{31, 1, 3}})
      run3(s, training, true, true);
    run3(Shape<3>{3, 2, 4}, training, false, false);
    run3(Shape<3>{3, 2, 4}, training, true, false);
    run3(Shape<3>{3, 2, 4}, training, false, true);
  }
  // [B, C] inputs.
  for (bool training : {true, false}) {
    for (auto s : {Shape<2>{4, 3}, Shape<2>{2, 1}, Shape<2>{33, 5}}) {
      INFO("shape " << to_string(s) << " training " << training);
      auto x = rvar<double>(ctx, s, true, -1.0, 3.0);
      auto gamma = rvar<double>(ctx, Shape<1>{s[1]}, true, 0.5, 1.5);
      auto beta = rvar<double>(ctx, Shape<1>{s[1]}, true, -0.5, 0.5);
      auto rm = random_tensor<double>(ctx.rng(), Shape<1>{s[1]}, -0.5, 0.5);
      auto rv = random_tensor<double>(ctx.rng(), Shape<1>{s[1]}, 0.5, 2.0);
      BatchNormOptions o{.training = training};
      require_grad_ok(check_gradients([&] { return batch_norm(x, gamma, beta, rm, rv, o); }, x, gamma, beta),
                      "rank 2");
    }
  }
  // Only the affine parameters require grad (x constant), and only x (frozen affine, e.g. a teacher's BN).
  {
    auto x = rvar<double>(ctx, Shape<3>{3, 2, 5}, false);
    auto gamma = rvar<double>(ctx, Shape<1>{2}, true, 0.5, 1.5);
    auto beta = rvar<double>(ctx, Shape<1>{2}, true);
    Tensor<double, 1> rm, rv;
    require_grad_ok(check_gradients([&] { return batch_norm(x, gamma, beta, rm, rv); }, gamma, beta), "affine only");
    auto x2 = rvar<double>(ctx, Shape<3>{3, 2, 5}, true);
    auto g2 = rvar<double>(ctx, Shape<1>{2}, false, 0.5, 1.5);
    auto b2 = rvar<double>(ctx, Shape<1>{2}, false);
    require_grad_ok(check_gradients([&] { return batch_norm(x2, g2, b2, rm, rv); }, x2), "frozen affine");
    REQUIRE_FALSE(g2.has_grad());
    REQUIRE_FALSE(b2.has_grad());
  }
}

TEST_CASE("batch_norm is bitwise deterministic across thread counts", "[ops][bn]") {
  for (auto s : {Shape<3>{16, 40, 129}, Shape<3>{512, 130, 1}}) {
    std::vector<Tensor<float, 3>> ys, dxs;
    std::vector<Tensor<float, 1>> dgs, rms;
    for (int threads : {1, 2}) {
      Context<Cpu> ctx(threads, 99);
      auto x = rvar<float>(ctx, s, true, -2.0, 3.0);
      auto gamma = rvar<float>(ctx, Shape<1>{s[1]}, true, 0.5, 1.5);
      auto beta = rvar<float>(ctx, Shape<1>{s[1]}, true);
      auto rm = Tensor<float, 1>::zeros(Shape<1>{s[1]});
      auto rv = Tensor<float, 1>::full(Shape<1>{s[1]}, 1.0f);
      auto y = batch_norm(x, gamma, beta, rm, rv);
      y.backward(random_tensor<float>(ctx.rng(), s));
      ys.push_back(y.value());
      dxs.push_back(x.grad());
      dgs.push_back(gamma.grad());
      rms.push_back(rv);
    }
    INFO("shape " << to_string(s));
    REQUIRE(bitwise_equal(ys[0], ys[1]));
    REQUIRE(bitwise_equal(dxs[0], dxs[1]));
    REQUIRE(bitwise_equal(dgs[0], dgs[1]));
    REQUIRE(bitwise_equal(rms[0], rms[1]));
  }
}

TEST_CASE("batch_norm errors", "[ops][bn][errors]") {
  Context<Cpu> ctx;
  auto gamma = rvar<float>(ctx, Shape<1>{3});
  auto beta = rvar<float>(ctx, Shape<1>{3});
  auto rm = Tensor<float, 1>::zeros(Shape<1>{3});
  auto rv = Tensor<float, 1>::full(Shape<1>{3}, 1.0f);
  auto one3 = rvar<float>(ctx, Shape<3>{1, 3, 1});
  REQUIRE_THROWS_WITH(batch_norm(one3, gamma, beta, rm, rv),
                      Catch::Contains("Expected more than 1 value per channel when training") &&
                          Catch::Contains("[1, 3, 1]"));
  auto one2 = rvar<float>(ctx, Shape<2>{1, 3});
  REQUIRE_THROWS_WITH(batch_norm(one2, gamma, beta, rm, rv),
                      Catch::Contains("Expected more than 1 value per channel when training"));
  // Eval mode accepts a single value per channel (inference on one series).
  REQUIRE(batch_norm(one3, gamma, beta, rm, rv, {.training = false}).shape() == Shape<3>{1, 3, 1});
  auto x = rvar<float>(ctx, Shape<3>{2, 4, 5});
  REQUIRE_THROWS_WITH(batch_norm(x, gamma, beta, rm, rv),
                      Catch::Contains("gamma") && Catch::Contains("[3]") && Catch::Contains("4 channels"));
  auto x3 = rvar<float>(ctx, Shape<3>{2, 3, 5});
  Tensor<float, 1> none;
  REQUIRE_THROWS_WITH(batch_norm(x3, gamma, beta, none, none, {.training = false}),
                      Catch::Contains("eval mode") && Catch::Contains("running"));
  REQUIRE_THROWS_WITH(batch_norm(x3, gamma, beta, rm, none), Catch::Contains("both running_mean and running_var"));
  auto rm4 = Tensor<float, 1>::zeros(Shape<1>{4});
  REQUIRE_THROWS_WITH(batch_norm(x3, gamma, beta, rm4, rv), Catch::Contains("running_mean [4]"));
}

TEMPLATE_TEST_CASE("batch_norm matches torch.nn.BatchNorm1d (golden)", "[ops][bn][golden]", float, double) {
  using T = TestType;
  // float: inputs are rounded to float, so outputs/gradients of O(1) agree to ~1e-6; 1e-5 + 1e-4 relative.
  // double: the same math in a different order, 1e-10.
  const double atol = std::is_same_v<T, float> ? 1e-5 : 1e-10, rtol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
  Golden g(golden_path("batchnorm.txt"));
  auto run = [&](auto rank_tag, const std::string& p) {
    constexpr std::size_t R = decltype(rank_tag)::value;
    INFO("case " << p);
    Context<Cpu> ctx(1, 0);
    auto x1 = Var<T, R>(ctx, g.get<T, R>(p + "x1"), true);
    auto x2 = constant(ctx, g.get<T, R>(p + "x2"));
    auto gamma = parameter(ctx, g.get<T, 1>(p + "gamma"));
    auto beta = parameter(ctx, g.get<T, 1>(p + "beta"));
    const index_t C = gamma.extent(0);
    auto rm = Tensor<T, 1>::zeros(Shape<1>{C});  // PyTorch's initial running statistics
    auto rv = Tensor<T, 1>::full(Shape<1>{C}, T(1));
    auto y = batch_norm(x1, gamma, beta, rm, rv);
    require_close(y.value(), g.get<double, R>(p + "y_train"), atol, rtol, "y_train");
    y.backward(g.get<T, R>(p + "g"));
    require_close(x1.grad(), g.get<double, R>(p + "dx"), atol, rtol, "dx");
    require_close(gamma.grad(), g.get<double, 1>(p + "dgamma"), atol, rtol, "dgamma");
    require_close(beta.grad(), g.get<double, 1>(p + "dbeta"), atol, rtol, "dbeta");
    batch_norm(x2, gamma, beta, rm, rv);
    require_close(rm, g.get<double, 1>(p + "running_mean"), atol, rtol, "running_mean");
    require_close(rv, g.get<double, 1>(p + "running_var"), atol, rtol, "running_var");
    x1.zero_grad();
    auto ye = batch_norm(x1, gamma, beta, rm, rv, {.training = false});
    require_close(ye.value(), g.get<double, R>(p + "y_eval"), atol, rtol, "y_eval");
    ye.backward(g.get<T, R>(p + "g"));
    require_close(x1.grad(), g.get<double, R>(p + "dx_eval"), atol, rtol, "dx_eval");
  };
  run(std::integral_constant<std::size_t, 3>{}, "bn3_");
  run(std::integral_constant<std::size_t, 2>{}, "bn2_");
}

// ------------------------------------------------------------------------------------------------------------
// global_avg_pool, flatten
// ------------------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("global_avg_pool and flatten: values", "[ops][pool]", float, double) {
  using T = TestType;
  Context<Cpu> ctx(2, 31);
  for (auto s : {Shape<3>{1, 1, 1}, Shape<3>{3, 31, 33}, Shape<3>{33, 3, 1}, Shape<3>{2, 5, 1031}, Shape<3>{64, 128, 9}}) {
    INFO("shape " << to_string(s));
    auto x = rvar<T>(ctx, s, false);
    auto y = global_avg_pool(x);
    REQUIRE(y.shape() == Shape<2>{s[0], s[1]});
    std::vector<double> ref(static_cast<std::size_t>(s[0] * s[1]));
    for (index_t r = 0; r < s[0] * s[1]; ++r) {
      double acc = 0;
      for (index_t l = 0; l < s[2]; ++l) acc += double(x.value()[r * s[2] + l]);
      ref[r] = acc / double(s[2]);
    }
    require_close(y.value(), ref, atol_v<T>(), rtol_v<T>(), "global_avg_pool");
    auto f = flatten(x);
    REQUIRE(f.shape() == Shape<2>{s[0], s[1] * s[2]});
    for (index_t b = 0; b < s[0]; ++b)
      for (index_t c = 0; c < s[1]; ++c)
        for (index_t l = 0; l < s[2]; ++l) REQUIRE(f.value()(b, c * s[2] + l) == x.value()(b, c, l));
  }
  auto empty = rvar<T>(ctx, Shape<3>{2, 3, 0});
  REQUIRE_THROWS_WITH(global_avg_pool(empty), Catch::Contains("[2, 3, 0]"));
}

TEST_CASE("global_avg_pool and flatten: gradients", "[ops][pool][grad]") {
  Context<Cpu> ctx(1, 32);
  for (auto s : {Shape<3>{1, 1, 1}, Shape<3>{3, 2, 31}, Shape<3>{2, 3, 33}}) {
    INFO("shape " << to_string(s));
    auto x = rvar<double>(ctx, s);
    require_grad_ok(check_gradients([&] { return global_avg_pool(x); }, x), "global_avg_pool");
    require_grad_ok(check_gradients([&] { return flatten(mul(x, x)); }, x), "flatten");
  }
}

// ------------------------------------------------------------------------------------------------------------
// linear, matmul, matmul_nt
// ------------------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("linear / matmul / matmul_nt: values", "[ops][linear]", float, double) {
  using T = TestType;
  for (int threads : {1, 2}) {
    Context<Cpu> ctx(threads, 41);
    for (auto [M, K, N] : std::vector<std::array<index_t, 3>>{{1, 1, 1}, {3, 31, 33}, {33, 3, 1}, {31, 33, 3},
                                                               {64, 128, 256}}) {
      INFO("M K N = " << M << " " << K << " " << N << ", threads " << threads);
      auto a = rvar<T>(ctx, Shape<2>{M, K}, false);
      auto w = rvar<T>(ctx, Shape<2>{N, K}, false);
      auto bias = rvar<T>(ctx, Shape<1>{N}, false);
      auto bk = rvar<T>(ctx, Shape<2>{K, N}, false);
      std::vector<double> ref_lin(M * N), ref_nob(M * N), ref_mm(M * N);
      for (index_t i = 0; i < M; ++i)
        for (index_t j = 0; j < N; ++j) {
          double s = 0, t = 0;
          for (index_t k = 0; k < K; ++k) {
            s += double(a.value()(i, k)) * double(w.value()(j, k));
            t += double(a.value()(i, k)) * double(bk.value()(k, j));
          }
          ref_nob[i * N + j] = s;
          ref_lin[i * N + j] = s + double(bias.value()[j]);
          ref_mm[i * N + j] = t;
        }
      // GEMM sums K products: allow K-proportional float rounding.
      const double at = atol_v<T>() * double(K), rt = rtol_v<T>() * 10;
      require_close(linear(a, w, bias).value(), ref_lin, at, rt, "linear");
      require_close(linear(a, w).value(), ref_nob, at, rt, "linear without bias");
      require_close(matmul_nt(a, w).value(), ref_nob, at, rt, "matmul_nt");
      require_close(matmul(a, bk).value(), ref_mm, at, rt, "matmul");
      REQUIRE(linear(a, w, bias).shape() == Shape<2>{M, N});
    }
  }
}

TEST_CASE("linear / matmul / matmul_nt: gradients", "[ops][linear][grad]") {
  Context<Cpu> ctx(2, 42);
  for (auto [M, K, N] : std::vector<std::array<index_t, 3>>{{1, 1, 1}, {3, 5, 4}, {33, 3, 1}, {2, 31, 33}}) {
    INFO("M K N = " << M << " " << K << " " << N);
    auto x = rvar<double>(ctx, Shape<2>{M, K});
    auto w = rvar<double>(ctx, Shape<2>{N, K});
    auto b = rvar<double>(ctx, Shape<1>{N});
    auto bk = rvar<double>(ctx, Shape<2>{K, N});
    require_grad_ok(check_gradients([&] { return linear(x, w, b); }, x, w, b), "linear");
    require_grad_ok(check_gradients([&] { return linear(x, w); }, x, w), "linear without bias");
    require_grad_ok(check_gradients([&] { return matmul(x, bk); }, x, bk), "matmul");
    require_grad_ok(check_gradients([&] { return matmul_nt(x, w); }, x, w), "matmul_nt");
    require_grad_ok(check_gradients([&] { return matmul_nt(x, x); }, x), "matmul_nt(z, z)");
  }
  // A GEMM large enough for the threaded panels, gradient only to the weight (frozen input).
  auto x = rvar<double>(ctx, Shape<2>{40, 64}, false);
  auto w = rvar<double>(ctx, Shape<2>{48, 64});
  GradCheckOptions o;
  o.max_elements_per_input = 200;
  require_grad_ok(check_gradients([&] { return relu(linear(x, w)); }, o, w), "linear 40x64x48");
  REQUIRE_FALSE(x.has_grad());
}

TEST_CASE("linear / matmul errors name the shapes", "[ops][linear][errors]") {
  Context<Cpu> ctx;
  auto x = rvar<float>(ctx, Shape<2>{4, 3});
  auto w = rvar<float>(ctx, Shape<2>{5, 2});
  REQUIRE_THROWS_WITH(linear(x, w), Catch::Contains("[4, 3]") && Catch::Contains("[5, 2]"));
  auto w2 = rvar<float>(ctx, Shape<2>{5, 3});
  auto b = rvar<float>(ctx, Shape<1>{4});
  REQUIRE_THROWS_WITH(linear(x, w2, b), Catch::Contains("bias") && Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(matmul(x, x), Catch::Contains("matmul") && Catch::Contains("[4, 3]"));
  REQUIRE_THROWS_WITH(matmul_nt(x, w), Catch::Contains("matmul_nt") && Catch::Contains("[5, 2]"));
}

// ------------------------------------------------------------------------------------------------------------
// l2_normalize
// ------------------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("l2_normalize: values, zero rows", "[ops][normalize]", float, double) {
  using T = TestType;
  Context<Cpu> ctx(2, 51);
  for (auto s : {Shape<2>{1, 1}, Shape<2>{3, 31}, Shape<2>{33, 3}, Shape<2>{512, 128}}) {
    INFO("shape " << to_string(s));
    auto x = rvar<T>(ctx, s, false);
    for (index_t d = 0; d < s[1]; ++d) x.value()(0, d) = T(0);  // a zero row stays zero (no NaN)
    auto y = l2_normalize(x);
    std::vector<double> ref(x.numel());
    for (index_t b = 0; b < s[0]; ++b) {
      double n = 0;
      for (index_t d = 0; d < s[1]; ++d) n += double(x.value()(b, d)) * double(x.value()(b, d));
      n = std::max(std::sqrt(n), 1e-12);
      for (index_t d = 0; d < s[1]; ++d) ref[b * s[1] + d] = double(x.value()(b, d)) / n;
    }
    require_close(y.value(), ref, atol_v<T>(), rtol_v<T>(), "l2_normalize");
  }
}

TEST_CASE("l2_normalize: gradients, including rows below eps", "[ops][normalize][grad]") {
  Context<Cpu> ctx(1, 52);
  for (auto s : {Shape<2>{1, 1}, Shape<2>{3, 31}, Shape<2>{33, 3}}) {
    auto x = rvar<double>(ctx, s);
    require_grad_ok(check_gradients([&] { return l2_normalize(x); }, x), "l2_normalize " + to_string(s));
  }
  // Row 1 has norm 0.1 < eps = 0.5: y = x / eps there and dx = dy / eps (PyTorch's clamp_min).
  auto x = rvar<double>(ctx, Shape<2>{2, 4});
  for (index_t d = 0; d < 4; ++d) x.value()(1, d) = 0.05;
  require_grad_ok(check_gradients([&] { return l2_normalize(x, 0.5); }, x), "l2_normalize below eps");
  x.zero_grad();
  auto y = l2_normalize(x, 0.5);
  for (index_t d = 0; d < 4; ++d) REQUIRE(y.value()(1, d) == Approx(0.1));
  sum(y).backward();
  for (index_t d = 0; d < 4; ++d) REQUIRE(x.grad()(1, d) == Approx(2.0));
  REQUIRE_THROWS_WITH(l2_normalize(x, 0.0), Catch::Contains("eps"));
}

// ------------------------------------------------------------------------------------------------------------
// softmax, log_softmax
// ------------------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("softmax / log_softmax: values and extreme logits", "[ops][softmax]", float, double) {
  using T = TestType;
  Context<Cpu> ctx(2, 61);
  for (auto s : {Shape<2>{1, 1}, Shape<2>{3, 31}, Shape<2>{33, 3}, Shape<2>{128, 1031}}) {
    INFO("shape " << to_string(s));
    auto x = rvar<T>(ctx, s, false, -8.0, 8.0);
    std::vector<double> ref_p(x.numel()), ref_lp(x.numel());
    for (index_t b = 0; b < s[0]; ++b) {
      double m = -1e300, z = 0;
      for (index_t k = 0; k < s[1]; ++k) m = std::max(m, double(x.value()(b, k)));
      for (index_t k = 0; k < s[1]; ++k) z += std::exp(double(x.value()(b, k)) - m);
      for (index_t k = 0; k < s[1]; ++k) {
        ref_lp[b * s[1] + k] = double(x.value()(b, k)) - m - std::log(z);
        ref_p[b * s[1] + k] = std::exp(ref_lp[b * s[1] + k]);
      }
    }
    require_close(softmax(x).value(), ref_p, atol_v<T>(), rtol_v<T>(), "softmax");
    require_close(log_softmax(x).value(), ref_lp, atol_v<T>(), rtol_v<T>(), "log_softmax");
  }
  // Logits of +-1e4: no overflow, no NaN, exact limits; gradients stay finite.
  Tensor<T, 2> big(Shape<2>{2, 3});
  const T vals[] = {T(1e4), T(-1e4), T(0), T(-1e4), T(-1e4), T(-1e4)};
  for (index_t i = 0; i < 6; ++i) big[i] = vals[i];
  auto xb = parameter(ctx, big);
  auto p = softmax(xb);
  auto lp = log_softmax(xb);
  const double ep[] = {1, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3};
  const double elp[] = {0, -2e4, -1e4, -std::log(3.0), -std::log(3.0), -std::log(3.0)};
  require_close(p.value(), ep, atol_v<T>(), rtol_v<T>(), "softmax of +-1e4");
  require_close(lp.value(), elp, 1e-5, rtol_v<T>(), "log_softmax of +-1e4");
  sum(add(p, lp)).backward();
  for (index_t i = 0; i < 6; ++i) REQUIRE(std::isfinite(double(xb.grad()[i])));
  auto e = rvar<T>(ctx, Shape<2>{3, 0});
  REQUIRE_THROWS_WITH(softmax(e), Catch::Contains("[3, 0]"));
  REQUIRE_THROWS_WITH(log_softmax(e), Catch::Contains("[3, 0]"));
}

TEST_CASE("softmax / log_softmax: gradients", "[ops][softmax][grad]") {
  Context<Cpu> ctx(1, 62);
  for (auto s : {Shape<2>{1, 1}, Shape<2>{3, 31}, Shape<2>{33, 3}}) {
    auto x = rvar<double>(ctx, s, true, -3.0, 3.0);
    require_grad_ok(check_gradients([&] { return softmax(x); }, x), "softmax " + to_string(s));
    require_grad_ok(check_gradients([&] { return log_softmax(x); }, x), "log_softmax " + to_string(s));
  }
}

// ------------------------------------------------------------------------------------------------------------
// cross_entropy, mse
// ------------------------------------------------------------------------------------------------------------

namespace {
std::vector<double> row_log_softmax(const std::vector<double>& x, index_t K, index_t b) {
  double m = -1e300, z = 0;
  for (index_t k = 0; k < K; ++k) m = std::max(m, x[b * K + k]);
  for (index_t k = 0; k < K; ++k) z += std::exp(x[b * K + k] - m);
  std::vector<double> r(K);
  for (index_t k = 0; k < K; ++k) r[k] = x[b * K + k] - m - std::log(z);
  return r;
}
}  // namespace

TEMPLATE_TEST_CASE("cross_entropy (hard and soft) and mse: values", "[ops][loss]", float, double) {
  using T = TestType;
  Context<Cpu> ctx(2, 71);
  for (auto s : {Shape<2>{1, 1}, Shape<2>{3, 31}, Shape<2>{33, 3}, Shape<2>{256, 1000}}) {
    INFO("shape " << to_string(s));
    const index_t B = s[0], K = s[1];
    auto x = rvar<T>(ctx, s, false, -5.0, 5.0);
    auto p = rvar<T>(ctx, s, false, 0.0, 1.0);
    std::vector<int> labels(B);
    for (index_t b = 0; b < B; ++b) labels[b] = int(ctx.rng().below(std::uint64_t(K)));
    const auto xv = flat(x.value()), pv = flat(p.value());
    double hard = 0, soft = 0;
    for (index_t b = 0; b < B; ++b) {
      auto lp = row_log_softmax(xv, K, b);
      hard -= lp[labels[b]];
      for (index_t k = 0; k < K; ++k) soft -= pv[b * K + k] * lp[k];
    }
    hard /= double(B);
    soft /= double(B);
    REQUIRE(cross_entropy(x, labels).value()[0] == Approx(hard).epsilon(rtol_v<T>()));
    REQUIRE(cross_entropy(x, std::span<const int>(labels)).value()[0] == Approx(hard).epsilon(rtol_v<T>()));
    REQUIRE(cross_entropy(x, p).value()[0] == Approx(soft).epsilon(rtol_v<T>()));
  }
  auto x = rvar<T>(ctx, Shape<2>{3, 4}, false);
  REQUIRE(std::isfinite(double(cross_entropy(x, {0, 3, 1}).value()[0])));  // braced labels

  for (index_t n : {1, 3, 31, 33, 20000}) {
    auto a = rvar<T>(ctx, Shape<3>{n, 1, 2}, false);
    auto b = rvar<T>(ctx, Shape<3>{n, 1, 2}, false);
    double s = 0;
    for (index_t i = 0; i < a.numel(); ++i) s += (double(a.value()[i]) - double(b.value()[i])) *
                                                 (double(a.value()[i]) - double(b.value()[i]));
    REQUIRE(mse(a, b, Reduction::Sum).value()[0] == Approx(s).epsilon(rtol_v<T>()));
    REQUIRE(mse(a, b, Reduction::Mean).value()[0] == Approx(s / double(a.numel())).epsilon(rtol_v<T>()));
    REQUIRE(mse(a, a).value()[0] == T(0));
  }
}

TEST_CASE("cross_entropy and mse: gradients", "[ops][loss][grad]") {
  Context<Cpu> ctx(1, 72);
  for (auto s : {Shape<2>{1, 1}, Shape<2>{3, 31}, Shape<2>{33, 3}}) {
    INFO("shape " << to_string(s));
    auto x = rvar<double>(ctx, s, true, -3.0, 3.0);
    std::vector<int> labels(s[0]);
    for (index_t b = 0; b < s[0]; ++b) labels[b] = int(ctx.rng().below(std::uint64_t(s[1])));
    require_grad_ok(check_gradients([&] { return cross_entropy(x, labels); }, x), "hard");
    // Soft targets that do not sum to one exercise the sum(p) factor; gradients to both inputs.
    auto p = rvar<double>(ctx, s, true, 0.0, 1.0);
    require_grad_ok(check_gradients([&] { return cross_entropy(x, p); }, x, p), "soft");
    auto t = constant(ctx, p.value());  // detached teacher probabilities
    require_grad_ok(check_gradients([&] { return cross_entropy(x, t); }, x), "soft, constant targets");
    require_grad_ok(check_gradients([&] { return cross_entropy(x, softmax(p)); }, x, p), "soft through softmax");
  }
  for (index_t n : {1, 3, 31, 33}) {
    auto a = rvar<double>(ctx, Shape<1>{n});
    auto b = rvar<double>(ctx, Shape<1>{n});
    require_grad_ok(check_gradients([&] { return mse(a, b, Reduction::Sum); }, a, b), "mse sum");
    require_grad_ok(check_gradients([&] { return mse(a, b, Reduction::Mean); }, a, b), "mse mean");
    auto c = rvar<double>(ctx, Shape<3>{n, 2, 3});
    auto d = rvar<double>(ctx, Shape<3>{n, 2, 3}, false);
    require_grad_ok(check_gradients([&] { return mse(c, d); }, c), "mse rank 3");
    require_grad_ok(check_gradients([&] { return mse(a, a); }, a), "mse(a, a)");
  }
}

TEST_CASE("cross_entropy and mse errors", "[ops][loss][errors]") {
  Context<Cpu> ctx;
  auto x = rvar<float>(ctx, Shape<2>{4, 5});
  REQUIRE_THROWS_WITH(cross_entropy(x, std::vector<int>{0, 1, 7, 2}),
                      Catch::Contains("label 7 in row 2") && Catch::Contains("5 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(x, std::vector<int>{0, -1, 2, 2}), Catch::Contains("label -1 in row 1"));
  REQUIRE_THROWS_WITH(cross_entropy(x, std::vector<int>{0, 1}),
                      Catch::Contains("2 labels") && Catch::Contains("[4, 5]"));
  auto p = rvar<float>(ctx, Shape<2>{4, 6});
  REQUIRE_THROWS_WITH(cross_entropy(x, p), Catch::Contains("[4, 5]") && Catch::Contains("[4, 6]"));
  REQUIRE_THROWS_WITH(mse(x, rvar<float>(ctx, Shape<2>{5, 4})), Catch::Contains("mse") && Catch::Contains("[5, 4]"));
}

TEMPLATE_TEST_CASE("log_softmax and cross_entropy match PyTorch (golden)", "[ops][loss][golden]", float, double) {
  using T = TestType;
  Golden g(golden_path("softmax_loss.txt"));
  Context<Cpu> ctx(1, 0);
  auto x = parameter(ctx, g.get<T, 2>("logits"));
  auto t = parameter(ctx, g.get<T, 2>("targets"));
  auto labf = g.get<double, 1>("labels");
  std::vector<int> labels(labf.begin(), labf.end());
  // float: rows 0-3 have O(1) logits (1e-5 + 1e-4 relative); row 4 holds +-1e4 logits whose float ulp is 1e-3,
  // so its absolute tolerance is 2e-3. double: 1e-10.
  const bool f = std::is_same_v<T, float>;
  auto compare = [&](const auto& got, const std::string& name) {
    auto ref = g.get<double, 2>(name);
    require_close(got.slice0(0, 4), ref.slice0(0, 4), f ? 1e-5 : 1e-10, f ? 1e-4 : 1e-10, name + " rows 0-3");
    require_close(got.slice0(4, 1), ref.slice0(4, 1), f ? 2e-3 : 1e-10, f ? 1e-4 : 1e-10, name + " row 4");
  };
  auto ls = log_softmax(x);
  compare(ls.value(), "log_softmax");
  ls.backward(g.get<T, 2>("g"));
  compare(x.grad(), "log_softmax_dx");

  x.zero_grad();
  auto hard = cross_entropy(x, labels);
  REQUIRE(double(hard.value()[0]) == Approx(g.scalar("ce_hard")).epsilon(f ? 1e-6 : 1e-12));
  hard.backward();
  compare(x.grad(), "ce_hard_dx");

  x.zero_grad();
  auto soft = cross_entropy(x, t);
  REQUIRE(double(soft.value()[0]) == Approx(g.scalar("ce_soft")).epsilon(f ? 1e-6 : 1e-12));
  soft.backward();
  compare(x.grad(), "ce_soft_dx");
  compare(t.grad(), "ce_soft_dtargets");
}

// ------------------------------------------------------------------------------------------------------------
// concat0, split0, slice0
// ------------------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("concat0 / split0 / slice0: values", "[ops][shape]", float, double) {
  using T = TestType;
  Context<Cpu> ctx(2, 81);
  for (index_t na : {0, 1, 3, 31}) {
    for (index_t nb : {1, 33}) {
      auto a = rvar<T>(ctx, Shape<3>{na, 2, 3}, false);
      auto b = rvar<T>(ctx, Shape<3>{nb, 2, 3}, false);
      auto c = concat0(a, b);
      REQUIRE(c.shape() == Shape<3>{na + nb, 2, 3});
      for (index_t i = 0; i < a.numel(); ++i) REQUIRE(c.value()[i] == a.value()[i]);
      for (index_t i = 0; i < b.numel(); ++i) REQUIRE(c.value()[a.numel() + i] == b.value()[i]);
      auto [p, q] = split0(c, na);
      REQUIRE(p.shape() == a.shape());
      REQUIRE(q.shape() == b.shape());
      REQUIRE(bitwise_equal(p.value(), a.value()));
      REQUIRE(bitwise_equal(q.value(), b.value()));
      auto s = slice0(c, na, 1);
      REQUIRE(s.shape() == Shape<3>{1, 2, 3});
      for (index_t i = 0; i < 6; ++i) REQUIRE(s.value()[i] == b.value()[i]);
    }
  }
  auto r1 = concat0(rvar<T>(ctx, Shape<1>{3}), rvar<T>(ctx, Shape<1>{4}));  // rank 1
  REQUIRE(r1.shape() == Shape<1>{7});
}

TEST_CASE("concat0 / split0 / slice0: gradients flow into the right rows", "[ops][shape][grad]") {
  Context<Cpu> ctx(1, 82);
  auto a = rvar<double>(ctx, Shape<2>{3, 4});
  auto b = rvar<double>(ctx, Shape<2>{1, 4});
  require_grad_ok(check_gradients([&] { return mul(concat0(a, b), concat0(a, b)); }, a, b), "concat0");
  auto x = rvar<double>(ctx, Shape<3>{5, 2, 3});
  require_grad_ok(check_gradients(
                      [&] {
                        auto [p, q] = split0(x, 2);
                        return concat0(q, scale(mul(p, p), 3.0));  // swapped and scaled rows
                      },
                      x),
                  "split0");
  require_grad_ok(check_gradients([&] { return scale(slice0(x, 1, 3), -2.0); }, x), "slice0");
  // Rows outside the slice get exactly zero.
  x.zero_grad();
  sum(slice0(x, 1, 3)).backward();
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(x.grad()[i] == ((i >= 6 && i < 24) ? 1.0 : 0.0));
}

TEST_CASE("concat0 / split0 / slice0 errors", "[ops][shape][errors]") {
  Context<Cpu> ctx;
  auto a = rvar<float>(ctx, Shape<3>{2, 3, 4});
  auto b = rvar<float>(ctx, Shape<3>{2, 3, 5});
  REQUIRE_THROWS_WITH(concat0(a, b), Catch::Contains("[2, 3, 4]") && Catch::Contains("[2, 3, 5]") &&
                                         Catch::Contains("axis 2"));
  REQUIRE_THROWS_WITH(slice0(a, 1, 2), Catch::Contains("rows [1, 3)") && Catch::Contains("[2, 3, 4]"));
  REQUIRE_THROWS_WITH(slice0(a, -1, 1), Catch::Contains("out of range"));
  REQUIRE_THROWS_WITH(split0(a, 3), Catch::Contains("after row 3"));
}
