// tests/test_cuda_ops.cpp -- every core autograd op on the Cuda device (SIMT emulator) against the Cpu device.
//
// The same host values go through the op on both devices (tests/cuda/device_compare.hpp); outputs and the gradients
// of every input must agree within a float tolerance (kTol below: relative to the tensor's scale). The Cpu ops are
// the reference because they are tested against plain loops, finite differences and PyTorch elsewhere
// (test_ops, test_conv1d). Sizes are small and awkward (1, 3, 31, 33 rows or columns; even and odd kernels).
#include <catch2/catch.hpp>

#include <vector>

#include "cuda/device_compare.hpp"
#include "distill/ops/batchnorm.hpp"
#include "distill/ops/conv1d.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/linear.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/ops/normalize.hpp"
#include "distill/ops/pool.hpp"
#include "distill/ops/reduce.hpp"
#include "distill/ops/shape_ops.hpp"
#include "distill/ops/softmax.hpp"

using namespace distill;
using device_compare::check_same;
using device_compare::gpu;
using device_compare::input;
using device_compare::run_both;

namespace {
/// float, Cuda vs Cpu: only summation orders differ (warp butterflies, GEMM blocking, split-K). Largest error seen:
/// about 5e-7 (relative to the tensor's scale).
constexpr double kTol = 2e-6;
}  // namespace

TEST_CASE("Cuda elementwise ops match Cpu: add, sub, mul, div, scale, affine, relu, scalar operators", "[cuda][ops]") {
  for (const Shape<3> s : {Shape<3>{3, 5, 7}, Shape<3>{2, 33, 70}}) {
    const auto a = input<float>(s, 1), b = input<float>(s, 2);
    run_both("add", [](const auto& x, const auto& y) { return add(x, y); }, kTol, a, b);
    run_both("sub", [](const auto& x, const auto& y) { return x - y; }, kTol, a, b);
    run_both("mul", [](const auto& x, const auto& y) { return x * y; }, kTol, a, b);
    run_both("scale", [](const auto& x) { return scale(x, -2.5f); }, kTol, a);
    const auto d = input<float>(s, 13, 0.5, 1.5);  // divisors away from 0
    run_both("div", [](const auto& x, const auto& y) { return x / y; }, kTol, a, d);
    run_both("affine", [](const auto& x) { return affine(x, -0.5f, 2.0f); }, kTol, a);
    run_both("scalar operators", [](const auto& x) { return 1 - 0.5 * x / 3 + (2.0 / (x + 2)); }, kTol, a);
    run_both("relu", [](const auto& x) { return relu(x); }, kTol, a);
  }
  // One Var used twice: both gradient contributions land in it.
  run_both("mul(x, x)", [](const auto& x) { return mul(x, x); }, kTol, input<float>(Shape<2>{4, 9}, 3));
  // A frozen input gets no gradient; the other one still does.
  run_both("add (frozen b)", [](const auto& x, const auto& y) { return add(x, y); }, kTol,
           input<float>(Shape<1>{31}, 4), input<float>(Shape<1>{31}, 5, -1, 1, false));
}

TEST_CASE("Cuda sum and mean match Cpu (several partial blocks, rank-0 results on the device)", "[cuda][ops]") {
  run_both("sum", [](const auto& x) { return sum(x); }, kTol, input<float>(Shape<2>{3, 31}, 6));
  run_both("mean", [](const auto& x) { return mean(x); }, kTol, input<float>(Shape<1>{40000}, 7));
  // The loss value never leaves the device until asked for.
  auto x = Var<float, 1, Cuda>(gpu(), to_device(gpu(), device_compare::host_random<float>(Shape<1>{5}, 8)), true);
  auto s = sum(x, 2.0f);
  const auto xs = to_host(gpu(), x.value());
  double ref = 0;
  for (float v : xs) ref += 2.0 * v;
  CHECK(to_host(gpu(), s.value())[0] == Approx(ref).epsilon(1e-6));
}

TEST_CASE("Cuda conv1d op matches Cpu: bias, no bias, even and odd k, dilation, valid, Cin = 1", "[cuda][ops][conv1d]") {
  struct Case {
    index_t B, Cin, Cout, L, K;
    Conv1dOptions opt;
    bool bias;
  };
  for (const Case c : {Case{2, 1, 8, 16, 8, {}, true}, Case{3, 5, 7, 13, 5, {Padding::Same, 2}, false},
                       Case{1, 9, 17, 6, 3, {Padding::Valid, 1}, true}, Case{2, 4, 3, 5, 8, {}, true}}) {
    INFO("B " << c.B << " Cin " << c.Cin << " Cout " << c.Cout << " L " << c.L << " K " << c.K);
    const auto x = input<float>(Shape<3>{c.B, c.Cin, c.L}, 10);
    const auto w = input<float>(Shape<3>{c.Cout, c.Cin, c.K}, 11);
    if (c.bias)
      run_both("conv1d", [&](const auto& a, const auto& b, const auto& d) { return conv1d(a, b, d, c.opt); }, kTol, x, w,
               input<float>(Shape<1>{c.Cout}, 12));
    else
      run_both("conv1d (no bias)", [&](const auto& a, const auto& b) { return conv1d(a, b, c.opt); }, kTol, x, w);
  }
}

TEST_CASE("Cuda batch_norm matches Cpu: training with running statistics, eval, [B, C] input, no affine",
          "[cuda][ops][batchnorm]") {
  const auto x3 = input<float>(Shape<3>{3, 5, 7}, 20, -2, 3);
  const auto x2 = input<float>(Shape<2>{6, 33}, 21, -2, 3);
  const auto gamma = input<float>(Shape<1>{5}, 22, 0.5, 1.5), beta = input<float>(Shape<1>{5}, 23);
  for (bool training : {true, false}) {
    INFO((training ? "training" : "eval"));
    // Running statistics start from non-trivial values; the training step updates them on each device.
    auto rm_c = device_compare::host_random<float>(Shape<1>{5}, 24);
    auto rv_c = device_compare::host_random<float>(Shape<1>{5}, 25, 0.5, 2);
    auto rm_g = to_device(gpu(), rm_c), rv_g = to_device(gpu(), rv_c);
    const BatchNormOptions opt{training, 0.3, 1e-5};
    run_both("batch_norm [B, C, L]",
             [&](const auto& x, const auto& g, const auto& b) {
               if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(x)>::device_type, Cuda>)
                 return batch_norm(x, g, b, rm_g, rv_g, opt);
               else
                 return batch_norm(x, g, b, rm_c, rv_c, opt);
             },
             kTol, x3, gamma, beta);
    check_same(rm_c, rm_g, kTol, "running_mean");
    check_same(rv_c, rv_g, kTol, "running_var");
  }
  Tensor<float, 1, Cpu> none_c;
  Tensor<float, 1, Cuda> none_g;
  run_both("batch_norm [B, C], no affine, no running statistics",
           [&](const auto& x) {
             using V = std::remove_cvref_t<decltype(x)>;
             using D = typename V::device_type;
             if constexpr (std::is_same_v<D, Cuda>)
               return batch_norm(x, Var<float, 1, Cuda>(), Var<float, 1, Cuda>(), none_g, none_g);
             else
               return batch_norm(x, Var<float, 1, Cpu>(), Var<float, 1, Cpu>(), none_c, none_c);
           },
           kTol, x2);
}

TEST_CASE("Cuda pooling and flatten match Cpu", "[cuda][ops]") {
  const auto x = input<float>(Shape<3>{3, 5, 33}, 30);
  run_both("global_avg_pool", [](const auto& a) { return global_avg_pool(a); }, kTol, x);
  run_both("flatten", [](const auto& a) { return relu(flatten(a)); }, kTol, x);
}

TEST_CASE("Cuda linear, matmul and matmul_nt (cuBLAS mapping) match Cpu", "[cuda][ops][gemm]") {
  const auto x = input<float>(Shape<2>{5, 33}, 40), w = input<float>(Shape<2>{7, 33}, 41);
  run_both("linear", [](const auto& a, const auto& b, const auto& c) { return linear(a, b, c); }, kTol, x, w,
           input<float>(Shape<1>{7}, 42));
  run_both("linear (no bias)", [](const auto& a, const auto& b) { return linear(a, b); }, kTol, x, w);
  run_both("matmul", [](const auto& a, const auto& b) { return matmul(a, b); }, kTol, input<float>(Shape<2>{3, 31}, 43),
           input<float>(Shape<2>{31, 1}, 44));
  run_both("matmul_nt", [](const auto& a, const auto& b) { return matmul_nt(a, b); }, kTol, x, w);
  run_both("matmul_nt(z, z)", [](const auto& a) { return matmul_nt(a, a); }, kTol, x);
}

TEST_CASE("Cuda l2_normalize, softmax and log_softmax match Cpu (zero rows, K = 1, logits of +-1e4)",
          "[cuda][ops]") {
  auto z = input<float>(Shape<2>{4, 33}, 50);
  for (index_t j = 0; j < 33; ++j) z.value(2, j) = 0.0f;  // a zero row: the eps clamp
  run_both("l2_normalize", [](const auto& a) { return l2_normalize(a); }, kTol, z);
  for (const Shape<2> s : {Shape<2>{5, 33}, Shape<2>{3, 1}, Shape<2>{9, 70}}) {
    run_both("softmax", [](const auto& a) { return softmax(a); }, kTol, input<float>(s, 51, -3, 3));
    run_both("log_softmax", [](const auto& a) { return log_softmax(a); }, kTol, input<float>(s, 52, -3, 3));
  }
  const auto big = input<float>(Shape<2>{4, 7}, 53, -1e4, 1e4);
  run_both("log_softmax (+-1e4)", [](const auto& a) { return log_softmax(a); }, kTol, big);
  run_both("softmax (+-1e4)", [](const auto& a) { return softmax(a); }, kTol, big);
}

TEST_CASE("Cuda cross_entropy (hard, soft) and mse match Cpu", "[cuda][ops][loss]") {
  const std::vector<int> labels{3, 0, 9, 9, 1};
  run_both("cross_entropy (hard)", [&](const auto& a) { return cross_entropy(a, labels); }, kTol,
           input<float>(Shape<2>{5, 10}, 60, -4, 4));
  const std::vector<int> zeros(3, 0);
  run_both("cross_entropy (hard, K = 1)", [&](const auto& a) { return cross_entropy(a, zeros); }, kTol,
           input<float>(Shape<2>{3, 1}, 61));
  run_both("cross_entropy (+-1e4)", [&](const auto& a) { return cross_entropy(a, labels); }, kTol,
           input<float>(Shape<2>{5, 10}, 62, -1e4, 1e4));
  run_both("cross_entropy (soft, target gradient)",
           [](const auto& a, const auto& p) { return cross_entropy(a, softmax(p)); }, kTol,
           input<float>(Shape<2>{6, 33}, 63, -3, 3), input<float>(Shape<2>{6, 33}, 64, -3, 3));
  run_both("mse (mean)", [](const auto& a, const auto& b) { return mse(a, b); }, kTol, input<float>(Shape<3>{2, 3, 7}, 65),
           input<float>(Shape<3>{2, 3, 7}, 66));
  run_both("mse (sum, frozen target)", [](const auto& a, const auto& b) { return mse(a, b, Reduction::Sum); }, kTol,
           input<float>(Shape<2>{3, 40000 / 3}, 67), input<float>(Shape<2>{3, 40000 / 3}, 68, -1, 1, false));
  run_both("mse(a, a)", [](const auto& a) { return mse(a, a); }, kTol, input<float>(Shape<1>{9}, 69));
}

TEST_CASE("Cuda concat0, slice0 and split0 match Cpu", "[cuda][ops]") {
  const auto a = input<float>(Shape<2>{3, 5}, 70), b = input<float>(Shape<2>{4, 5}, 71);
  run_both("concat0", [](const auto& x, const auto& y) { return concat0(x, y); }, kTol, a, b);
  run_both("split0 / slice0", [](const auto& x, const auto& y) {
    auto [p, q] = split0(concat0(x, y), 2);
    return concat0(slice0(q, 1, 3), mul(p, p));
  }, kTol, a, b);
}

TEST_CASE("Cuda ops are deterministic: a conv-BN-GAP-linear-CE chain gives bitwise equal results twice",
          "[cuda][ops]") {
  const auto x = input<float>(Shape<3>{4, 2, 19}, 80), w = input<float>(Shape<3>{6, 2, 5}, 81);
  const auto lw = input<float>(Shape<2>{3, 6}, 82);
  const std::vector<int> labels{0, 2, 1, 2};
  Tensor<float, 1, Cuda> none;
  auto step = [&] {
    Var<float, 3, Cuda> xv(gpu(), to_device(gpu(), x.value), false), wv(gpu(), to_device(gpu(), w.value), true);
    Var<float, 2, Cuda> lv(gpu(), to_device(gpu(), lw.value), true);
    auto h = relu(batch_norm(conv1d(xv, wv), Var<float, 1, Cuda>(), Var<float, 1, Cuda>(), none, none));
    auto loss = cross_entropy(linear(global_avg_pool(h), lv), labels);
    loss.backward();
    return std::make_tuple(loss.value(), wv.grad(), lv.grad());
  };
  const auto [l1, gw1, gl1] = step();
  const auto [l2, gw2, gl2] = step();
  CHECK(device_compare::bitwise_equal(l1, l2));
  CHECK(device_compare::bitwise_equal(gw1, gw2));
  CHECK(device_compare::bitwise_equal(gl1, gl2));
}

TEST_CASE("Cuda ops check shapes before launching, with the same messages as on Cpu", "[cuda][ops]") {
  Var<float, 3, Cuda> x(gpu(), gpu().zeros<float, 3>({2, 3, 8}), true), w(gpu(), gpu().zeros<float, 3>({4, 5, 3}), true);
  CHECK_THROWS_WITH(conv1d(x, w), Catch::Contains("has 3 channels but weight [4, 5, 3] expects 5"));
  Var<float, 2, Cuda> logits(gpu(), gpu().zeros<float, 2>({2, 3}), true);
  CHECK_THROWS_WITH(cross_entropy(logits, std::vector<int>{0, 3}), Catch::Contains("label 3 in row 1"));
}
