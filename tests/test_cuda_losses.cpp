// tests/test_cuda_losses.cpp -- the fused losses on the Cuda device (SIMT emulator) against the Cpu device.
//
// Every loss (nt_xent, supcon, supcon_cross, info_nce_cross, moco_info_nce, soft_contrastive_kl, kd_kl,
// normalized_mse_sum): value and the gradient of every input, in double (the maths: agreement to rounding) and in
// float, at the edge cases of issue 5 (tau in {0.01, 0.05, 0.1, 1}: both exponent-shift modes; identical and zero
// embeddings; 2N = 2; D and K not multiples of 4; K = 1; logits of +-1e4; one-hot teachers), on the multi-tile path
// and with forced column splits (the fixed-order combine). The Cpu losses are the reference (test_losses checks
// them against plain loops, the composed oracle, finite differences and PyTorch). No NaN anywhere.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "cuda/device_compare.hpp"
#include "distill/losses/losses.hpp"
#include "distill/ops/elementwise.hpp"

using namespace distill;
using device_compare::check_same;
using device_compare::gpu;
using device_compare::input;
using device_compare::run_both;

namespace {

/// Relative to each tensor's scale (device_compare). Largest errors seen: double 1.2e-15, float 5e-7.
template <class T>
constexpr double tol() {
  return std::is_same_v<T, float> ? 5e-6 : 1e-13;
}

template <class V>
constexpr bool on_cuda = std::is_same_v<typename std::remove_cvref_t<V>::device_type, Cuda>;

// The public losses on either device: the Cuda overloads dispatch to distill/losses/fused_cuda.hpp after the shared checks.
template <class V>
auto nt_xent_any(const V& a, const V& b, double tau) {
  return losses::nt_xent(a, b, tau);
}
template <class V, class W>
auto supcon_any(const V& z, const std::vector<int>& labels, double tau, const W& w) {
  return losses::supcon(z, std::span<const int>(labels), tau, w);
}
template <class V, class W>
auto supcon_cross_any(const V& a, const V& b, const std::vector<int>& labels, double tau, const W& w) {
  return losses::supcon_cross(a, b, std::span<const int>(labels), tau, w);
}
template <class V>
auto info_nce_any(const V& a, const V& b, double tau) {
  return losses::info_nce_cross(a, b, tau);
}
template <class V, class N>
auto moco_any(const V& q, const V& k, const N& negatives, double tau) {
  return losses::moco_info_nce(q, k, negatives, tau);
}
template <class V, class W>
auto soft_kl_any(const V& sr, const V& sc, const V& tr, const V& tc, double tau, double T, bool exclude, const W& w) {
  return losses::soft_contrastive_kl(sr, sc, tr, tc, tau, T,
                                     exclude ? losses::Diagonal::exclude : losses::Diagonal::include, w);
}
template <class V>
auto kd_kl_any(const V& s, const V& t, double T, bool teacher_grad) {
  return losses::kd_kl(s, t, T, teacher_grad);
}
template <class V>
auto nmse_any(const V& a, const V& b) {
  return losses::normalized_mse_sum(a, b);
}

/// An undefined weights Var of the device of V.
template <class V>
Var<typename V::value_type, 1, typename V::device_type> no_weights() {
  return {};
}

template <class T>
void contrastive_losses_agree() {
  INFO((std::is_same_v<T, float> ? "float" : "double"));
  const double t = tol<T>();
  for (const double tau : {1.0, 0.05}) {
    INFO("tau " << tau);
    // tau 0.05: B = 35 rows per view, 2B = 70 rows: three row and column tiles, split columns; tau 1: B = 9.
    // D = 13 (not a multiple of 4).
    const index_t B = tau < 0.5 ? 35 : 9;
    const auto z1 = input<T>(Shape<2>{B, 13}, 1), z2 = input<T>(Shape<2>{B, 13}, 2);
    run_both("nt_xent", [&](const auto& a, const auto& b) { return nt_xent_any(a, b, tau); }, t, z1, z2);
    const std::vector<int> labels{3, 1, 3, 7, 1, 1, 9, 3, 7, 2, 2};  // class 9 has no positive
    const auto z = input<T>(Shape<2>{11, 5}, 3);
    run_both("supcon (weights)",
             [&](const auto& x, const auto& w) { return supcon_any(x, labels, tau, w); }, t, z,
             input<T>(Shape<1>{11}, 4, 0.5, 2));
    run_both("supcon_cross", [&](const auto& a, const auto& b) {
      return supcon_cross_any(a, b, labels, tau, no_weights<std::remove_cvref_t<decltype(a)>>());
    }, t, z, input<T>(Shape<2>{11, 5}, 5));
    run_both("supcon_cross (weights)", [&](const auto& a, const auto& b, const auto& w) {
      return supcon_cross_any(a, b, labels, tau, w);
    }, t, z, input<T>(Shape<2>{11, 5}, 5), input<T>(Shape<1>{11}, 6, 0.5, 2));
    run_both("info_nce_cross", [&](const auto& a, const auto& b) { return info_nce_any(a, b, tau); }, t,
             input<T>(Shape<2>{33, 7}, 7), input<T>(Shape<2>{33, 7}, 8));
    // MoCo: negatives as given (a queue's unit rows, here also raw rows), K = 37, and a trainable key.
    const auto neg = device_compare::host_random<T>(Shape<2>{37, 7}, 9);
    const auto neg_g = to_device(gpu(), neg);
    run_both("moco_info_nce", [&](const auto& q, const auto& k) {
      if constexpr (on_cuda<decltype(q)>) return moco_any(q, k, neg_g, tau);
      else return moco_any(q, k, neg, tau);
    }, t, input<T>(Shape<2>{6, 7}, 10), input<T>(Shape<2>{6, 7}, 11));
  }
}

}  // namespace

TEST_CASE("Cuda contrastive losses match Cpu in double (nt_xent, supcon, supcon_cross, info_nce_cross, moco)",
          "[cuda][losses]") {
  contrastive_losses_agree<double>();
}

TEST_CASE("Cuda contrastive losses match Cpu in float", "[cuda][losses]") { contrastive_losses_agree<float>(); }

namespace {
template <class T>
void distillation_losses_agree() {
  INFO((std::is_same_v<T, float> ? "float" : "double"));
  const double t = tol<T>();
  // DCRLS self-distillation: one stacked student and one teacher, the diagonal excluded; teacher width 9 != 13.
  const auto zs = input<T>(Shape<2>{40, 13}, 20), zt = input<T>(Shape<2>{40, 9}, 21);
  for (const double T_ : {3.0, 1.0}) {
    INFO("temperature " << T_);
    run_both("soft_contrastive_kl (self, exclude)", [&](const auto& s, const auto& te) {
      return soft_kl_any(s, s, te, te, 0.5, T_, true, no_weights<std::remove_cvref_t<decltype(s)>>());
    }, t, zs, zt);
  }
  // MCL soft ICL (v_a, v_b) vs (v_b, v_a) with L-MCL weights; the teacher Vars are the student Vars (stop-gradient).
  const auto va = input<T>(Shape<2>{9, 6}, 22), vb = input<T>(Shape<2>{9, 6}, 23);
  run_both("soft_contrastive_kl (soft ICL, weights)", [&](const auto& a, const auto& b, const auto& w) {
    return soft_kl_any(a, b, b, a, 0.1, 2.0, false, w);
  }, t, va, vb, input<T>(Shape<1>{9}, 24, 0.5, 2));
  // Rectangular student / teacher similarity (soft VCL form with different rows and columns).
  run_both("soft_contrastive_kl (rectangular)", [&](const auto& a, const auto& b, const auto& c, const auto& d) {
    return soft_kl_any(a, b, c, d, 0.2, 1.5, false, no_weights<std::remove_cvref_t<decltype(a)>>());
  }, t, input<T>(Shape<2>{7, 5}, 25), input<T>(Shape<2>{45, 5}, 26), input<T>(Shape<2>{7, 3}, 27),
           input<T>(Shape<2>{45, 3}, 28));

  for (const index_t K : {index_t(1), index_t(37), index_t(300)}) {
    INFO("K " << K);
    run_both("kd_kl", [&](const auto& s, const auto& te) { return kd_kl_any(s, te, 4.0, false); }, t,
             input<T>(Shape<2>{5, K}, 30, -3, 3), input<T>(Shape<2>{5, K}, 31, -3, 3));
    run_both("kd_kl (teacher gradient)", [&](const auto& s, const auto& te) { return kd_kl_any(s, te, 2.0, true); },
             t, input<T>(Shape<2>{3, K}, 32, -3, 3), input<T>(Shape<2>{3, K}, 33, -3, 3));
  }
  run_both("normalized_mse_sum", [](const auto& a, const auto& b) { return nmse_any(a, b); }, t,
           input<T>(Shape<2>{10, 33}, 34), input<T>(Shape<2>{10, 33}, 35));
}
}  // namespace

TEST_CASE("Cuda distillation losses match Cpu in double (soft_contrastive_kl, kd_kl, normalized_mse_sum)",
          "[cuda][losses]") {
  distillation_losses_agree<double>();
}

TEST_CASE("Cuda distillation losses match Cpu in float", "[cuda][losses]") { distillation_losses_agree<float>(); }

TEST_CASE("Cuda losses at the edges: tau 0.01, identical and zero rows, 2N = 2, K = 0 and 1, +-1e4 logits, one-hot "
          "teachers, no NaN",
          "[cuda][losses][edge]") {
  const double t = tol<float>();
  // tau = 0.01: logits up to 100, past the fixed shift's float range: the online maximum.
  const auto z1 = input<float>(Shape<2>{6, 7}, 40), z2 = input<float>(Shape<2>{6, 7}, 41);
  run_both("nt_xent tau 0.01", [](const auto& a, const auto& b) { return nt_xent_any(a, b, 0.01); }, 2e-4, z1, z2);
  run_both("info_nce_cross tau 0.01", [](const auto& a, const auto& b) { return info_nce_any(a, b, 0.01); }, 2e-4, z1,
           z2);
  // Identical rows everywhere, and a zero row (F.normalize's eps rule: gradient h / eps, finite).
  auto same = input<float>(Shape<2>{4, 5}, 42);
  for (index_t i = 1; i < 4; ++i)
    for (index_t k = 0; k < 5; ++k) same.value(i, k) = same.value(0, k);
  run_both("nt_xent identical rows", [](const auto& a, const auto& b) { return nt_xent_any(a, b, 0.1); }, t, same, same);
  auto zero = input<float>(Shape<2>{4, 5}, 43);
  for (index_t k = 0; k < 5; ++k) zero.value(2, k) = 0.0f;
  run_both("supcon zero row", [](const auto& z) {
    return supcon_any(z, std::vector<int>{0, 1, 0, 1}, 0.5, no_weights<std::remove_cvref_t<decltype(z)>>());
  }, t, zero);
  run_both("normalized_mse_sum zero row", [](const auto& a, const auto& b) { return nmse_any(a, b); }, t, zero,
           input<float>(Shape<2>{4, 5}, 44));
  // 2N = 2: the positive is the only candidate: loss 0 and gradient 0 up to rounding (no relative comparison).
  {
    Var<float, 2, Cuda> a(gpu(), to_device(gpu(), device_compare::host_random<float>(Shape<2>{1, 3}, 45)), true);
    Var<float, 2, Cuda> b(gpu(), to_device(gpu(), device_compare::host_random<float>(Shape<2>{1, 3}, 46)), true);
    auto y = nt_xent_any(a, b, 0.1);
    CHECK(std::fabs(to_host(gpu(), y.value())[0]) < 1e-6f);
    y.backward();
    for (const auto* v : {&a, &b})
      for (float gv : to_host(gpu(), v->grad())) CHECK(std::fabs(gv) < 1e-5f);
  }
  // MoCo with no negatives and with one.
  for (const index_t K : {index_t(0), index_t(1)}) {
    const auto neg = device_compare::host_random<float>(Shape<2>{K, 4}, 47);
    const auto neg_g = to_device(gpu(), neg);
    run_both("moco_info_nce small K", [&](const auto& q, const auto& k) {
      if constexpr (on_cuda<decltype(q)>) return moco_any(q, k, neg_g, 0.2);
      else return moco_any(q, k, neg, 0.2);
    }, t, input<float>(Shape<2>{3, 4}, 48), input<float>(Shape<2>{3, 4}, 49));
  }
  // KD-KL with +-1e4 logits and one-hot teachers: probabilities underflow to exact zeros, nothing is NaN.
  auto hot = input<float>(Shape<2>{4, 9}, 50, -1e4, 1e4, true);
  for (index_t i = 0; i < 4; ++i)
    for (index_t k = 0; k < 9; ++k) hot.value(i, k) = k == (i * 2) % 9 ? 1e4f : -1e4f;
  auto big = run_both("kd_kl +-1e4 / one-hot", [](const auto& s, const auto& te) { return kd_kl_any(s, te, 1.0, true); },
                      t, input<float>(Shape<2>{4, 9}, 51, -1e4, 1e4), hot);
  CHECK(std::isfinite(to_host(gpu(), big.value())[0]));
}

TEST_CASE("Cuda similarity engine: column splits merged in a fixed order agree with one split and with a double "
          "reference",
          "[cuda][losses][similarity]") {
  // S = s A B^T, 40 x 70 (2 x 3 tiles), D = 37 (two depth chunks), online maximum and the fixed shift.
  const index_t n = 40, m = 70, d = 37;
  const auto A = device_compare::host_random<double>(Shape<2>{n, d}, 60);
  const auto Bm = device_compare::host_random<double>(Shape<2>{m, d}, 61);
  const auto coef = device_compare::host_random<double>(Shape<1>{n}, 62, 0.1, 1.0);
  auto& ctx = gpu();
  const auto dA = to_device(ctx, A);
  const auto dB = to_device(ctx, Bm);
  const auto dcoef = to_device(ctx, coef);
  const double s = 1.7;
  // Double reference: lse_i and h_i = sum_j coef_i exp(S_ij - lse_i) b_j.
  std::vector<double> lse(n), h(static_cast<std::size_t>(n * d), 0.0);
  for (index_t i = 0; i < n; ++i) {
    std::vector<double> row(m);
    double mx = -INFINITY;
    for (index_t j = 0; j < m; ++j) {
      double v = 0;
      for (index_t k = 0; k < d; ++k) v += A(i, k) * Bm(j, k);
      row[j] = s * v;
      mx = std::max(mx, row[j]);
    }
    double sum = 0;
    for (double v : row) sum += std::exp(v - mx);
    lse[i] = mx + std::log(sum);
    for (index_t j = 0; j < m; ++j)
      for (index_t k = 0; k < d; ++k) h[i * d + k] += coef[i] * std::exp(row[j] - lse[i]) * Bm(j, k);
  }
  for (const auto& [fixed, splits] : {std::pair{false, 1}, std::pair{false, 3}, std::pair{true, 2}}) {
    {
      INFO("splits " << splits << (fixed ? " fixed shift" : " online maximum"));
      cuda::Similarity<double> sim{dA.data(), dB.data(), n, m, d, nullptr, nullptr, 0, s, false, fixed, 40.0, splits};
      auto l = ctx.empty<double, 1>(Shape<1>{n});
      cuda::similarity_stats<double>(ctx, sim, l.data(), nullptr, nullptr);
      const auto lh = to_host(ctx, l);
      for (index_t i = 0; i < n; ++i) CHECK(lh[i] == Approx(lse[i]).epsilon(1e-13));
      cuda::SimilarityCoefficients cf;
      cf.row_coef = dcoef.data();
      cf.row_lse = l.data();
      auto hd = ctx.empty<double, 2>(Shape<2>{n, d});
      cuda::fill<double>(ctx, hd.data(), std::nan(""), n * d);
      cuda::similarity_backward<double>(ctx, sim, cf, 1.0, hd.data(), false);
      const auto hh = to_host(ctx, hd);
      std::size_t bad = 0;
      for (index_t e = 0; e < n * d; ++e) bad += !(std::fabs(hh.data()[e] - h[e]) <= 1e-12 * (1 + std::fabs(h[e])));
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("losses::Queue on the Cuda device: FIFO ring with wrap-around, normalised rows, MoCo on the queue",
          "[cuda][losses][queue]") {
  Context<Cpu> cctx{1, 3};
  CounterRng rc(77), rg(77);
  auto qc = losses::Queue<float>::random(5, 6, rc);
  auto qg = losses::Queue<float, Cuda>::random(gpu(), 5, 6, rg);
  const auto k1 = device_compare::host_random<float>(Shape<2>{3, 6}, 70);
  const auto k2 = device_compare::host_random<float>(Shape<2>{7, 6}, 71);  // more rows than the capacity
  for (const auto* keys : {&k1, &k2, &k1}) {
    qc.enqueue(*keys);
    qg.enqueue(to_device(gpu(), *keys));
    CHECK(qc.size() == qg.size());
    CHECK(qc.head() == qg.head());
    check_same(qc.contents(), qg.contents(), 1e-6, "queue contents");
    check_same(qc.ordered(), qg.ordered(), 1e-6, "queue ordered");
  }
  losses::Queue<float, Cuda> partial(gpu(), 4, 6);
  partial.enqueue(to_device(gpu(), k1));
  CHECK(partial.size() == 3);
  CHECK(to_host(gpu(), partial.ordered()).shape() == Shape<2>{3, 6});
  run_both("moco_info_nce on a queue", [&](const auto& q, const auto& k) {
    if constexpr (on_cuda<decltype(q)>) return losses::moco_info_nce(q, k, qg, 0.07);
    else return losses::moco_info_nce(q, k, qc, 0.07);
  }, 2e-5, input<float>(Shape<2>{4, 6}, 72), input<float>(Shape<2>{4, 6}, 73));
}

TEST_CASE("Cuda losses run the shared checks: the same error messages as on Cpu", "[cuda][losses]") {
  Var<float, 2, Cuda> a(gpu(), gpu().zeros<float, 2>({3, 4}), true), b(gpu(), gpu().zeros<float, 2>({2, 4}), true);
  CHECK_THROWS_WITH(losses::nt_xent(a, b, 0.1), Catch::Contains("nt_xent: the two views z1 and z2"));
  CHECK_THROWS_WITH(losses::info_nce_cross(a, a, -1.0), Catch::Contains("is not a usable temperature"));
  CHECK_THROWS_WITH(losses::supcon(a, std::vector<int>{0, 1}, 0.1), Catch::Contains("2 labels for embeddings"));
  CHECK_THROWS_WITH(losses::kd_kl(a, b, 2.0), Catch::Contains("kd_kl: student and teacher logits"));
}

TEST_CASE("Cuda losses are deterministic: bitwise equal values and gradients run to run (split columns included)",
          "[cuda][losses]") {
  const auto h1 = device_compare::host_random<float>(Shape<2>{20, 9}, 80);  // 2N = 40: two tiles, split columns
  const auto h2 = device_compare::host_random<float>(Shape<2>{20, 9}, 81);
  auto run = [&] {
    Var<float, 2, Cuda> a(gpu(), to_device(gpu(), h1), true), b(gpu(), to_device(gpu(), h2), true);
    auto l = losses::nt_xent(a, b, 0.1) + losses::soft_contrastive_kl(a, a, b, b, 0.2, 3.0, losses::Diagonal::exclude);
    l.backward();
    return std::make_tuple(l.value(), a.grad(), b.grad());
  };
  const auto [l1, ga1, gb1] = run();
  const auto [l2, ga2, gb2] = run();
  CHECK(device_compare::bitwise_equal(l1, l2));
  CHECK(device_compare::bitwise_equal(ga1, ga2));
  CHECK(device_compare::bitwise_equal(gb1, gb2));
}
