// Fused contrastive and distillation losses (distill/losses/): nt_xent, info_nce_cross, moco_info_nce + Queue,
// supcon, supcon_cross, soft_contrastive_kl, kd_kl, normalized_mse_sum.
//
// Every loss: value against a plain-loop double reference (written here from the formulas of docs/losses.md),
// value and gradients against the naive version composed from the core ops (losses/naive.hpp, double),
// finite-difference gradients (check_gradients), float against the double reference, the multi-tile path,
// both exponent-shift modes (tau in {0.01, 0.05, 0.1, 1}), edge cases (identical / zero embeddings, 2N = 2, D and
// K not multiples of 4, K = 1, +-1e4 logits, one-hot teachers), determinism, PyTorch golden values
// (tests/golden/gen_losses.py) and error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/cpu/fused_losses.hpp"  // cpu::simd (the raw row kernels are tested directly)
#include "distill/losses/losses.hpp"
#include "distill/losses/naive.hpp"
#include "support/golden.hpp"

using namespace distill;
using distill::testing::Golden;
using distill::testing::golden_path;

namespace {

// ---------------------------------------------------------------------------------------------------------
// Plain-loop double references.
// ---------------------------------------------------------------------------------------------------------
using Mat = std::vector<std::vector<double>>;

template <class T>
Mat rows_of(const Tensor<T, 2>& x) {
  Mat m(static_cast<std::size_t>(x.extent(0)), std::vector<double>(static_cast<std::size_t>(x.extent(1))));
  for (index_t i = 0; i < x.extent(0); ++i)
    for (index_t k = 0; k < x.extent(1); ++k) m[i][k] = double(x(i, k));
  return m;
}
Mat normalized(Mat m) {
  for (auto& r : m) {
    double s = 0;
    for (double v : r) s += v * v;
    const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
    for (double& v : r) v *= inv;
  }
  return m;
}
double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t k = 0; k < a.size(); ++k) s += a[k] * b[k];
  return s;
}
Mat sim(const Mat& a, const Mat& b, double scale) {
  Mat s(a.size(), std::vector<double>(b.size()));
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < b.size(); ++j) s[i][j] = scale * dot(a[i], b[j]);
  return s;
}
/// log sum_{j allowed} exp(v_j).
template <class Allowed>
double lse(const std::vector<double>& v, Allowed ok) {
  double m = -INFINITY;
  for (std::size_t j = 0; j < v.size(); ++j)
    if (ok(j)) m = std::max(m, v[j]);
  double s = 0;
  for (std::size_t j = 0; j < v.size(); ++j)
    if (ok(j)) s += std::exp(v[j] - m);
  return m + std::log(s);
}

double ref_nt_xent(const Mat& z1, const Mat& z2, double tau) {
  Mat z = z1;
  z.insert(z.end(), z2.begin(), z2.end());
  z = normalized(z);
  const std::size_t M = z.size(), B = z1.size();
  const Mat s = sim(z, z, 1 / tau);
  double L = 0;
  for (std::size_t i = 0; i < M; ++i) L += lse(s[i], [&](std::size_t j) { return j != i; }) - s[i][(i + B) % M];
  return L / double(M);
}
double ref_supcon_rows(const Mat& s, const std::vector<int>& y, const std::vector<double>& w) {
  const std::size_t n = s.size();
  double L = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double pos = 0, np = 0;
    for (std::size_t j = 0; j < n; ++j)
      if (j != i && y[j] == y[i]) {
        pos += s[i][j];
        np += 1;
      }
    if (np == 0) continue;
    L += w[i] * (lse(s[i], [&](std::size_t j) { return j != i; }) - pos / np);
  }
  return L / double(n);
}
double ref_supcon(const Mat& z, const std::vector<int>& y, double tau, const std::vector<double>& w) {
  const Mat zn = normalized(z);
  return ref_supcon_rows(sim(zn, zn, 1 / tau), y, w);
}
double ref_supcon_cross(const Mat& a, const Mat& b, const std::vector<int>& y, double tau,
                        const std::vector<double>& w) {
  return ref_supcon_rows(sim(normalized(a), normalized(b), 1 / tau), y, w);
}
double ref_info_nce_cross(const Mat& a, const Mat& b, double tau) {
  const Mat s = sim(normalized(a), normalized(b), 1 / tau);
  const std::size_t n = s.size();
  double L = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> col(n);
    for (std::size_t r = 0; r < n; ++r) col[r] = s[r][i];
    L += lse(s[i], [](std::size_t) { return true; }) - s[i][i];
    L += lse(col, [](std::size_t) { return true; }) - s[i][i];
  }
  return L / (2.0 * double(n));
}
double ref_moco(const Mat& q, const Mat& k, const Mat& neg, double tau) {
  const Mat qn = normalized(q), kn = normalized(k);
  double L = 0;
  for (std::size_t i = 0; i < q.size(); ++i) {
    std::vector<double> logits{dot(qn[i], kn[i]) / tau};
    for (auto& r : neg) logits.push_back(dot(qn[i], r) / tau);
    L += lse(logits, [](std::size_t) { return true; }) - logits[0];
  }
  return L / double(q.size());
}
double ref_soft_kl(const Mat& sr, const Mat& sc, const Mat& tr, const Mat& tc, double tau, double T, bool exclude,
                   const std::vector<double>& w) {
  const Mat x = sim(normalized(sr), normalized(sc), 1 / (tau * T));
  const Mat y = sim(normalized(tr), normalized(tc), 1 / (tau * T));
  const std::size_t n = x.size();
  double L = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto ok = [&](std::size_t j) { return !exclude || j != i; };
    if (x[i].size() == 1 && exclude) continue;
    const double lx = lse(x[i], ok), ly = lse(y[i], ok);
    double kl = 0;
    for (std::size_t j = 0; j < x[i].size(); ++j)
      if (ok(j)) kl += std::exp(y[i][j] - ly) * ((y[i][j] - ly) - (x[i][j] - lx));
    L += w[i] * kl;
  }
  return T * T * L / double(n);
}
double ref_kd_kl(const Mat& s, const Mat& t, double T) {
  double L = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    std::vector<double> x(s[i].size()), y(s[i].size());
    for (std::size_t j = 0; j < x.size(); ++j) {
      x[j] = s[i][j] / T;
      y[j] = t[i][j] / T;
    }
    const double lx = lse(x, [](std::size_t) { return true; }), ly = lse(y, [](std::size_t) { return true; });
    for (std::size_t j = 0; j < x.size(); ++j) L += std::exp(y[j] - ly) * ((y[j] - ly) - (x[j] - lx));
  }
  return T * T * L / double(s.size());
}
double ref_nmse(const Mat& a, const Mat& b) {
  const Mat an = normalized(a), bn = normalized(b);
  double L = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t k = 0; k < a[i].size(); ++k) L += (an[i][k] - bn[i][k]) * (an[i][k] - bn[i][k]);
  return L;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------------------
template <class T, std::size_t R>
Var<T, R> rvar(Context<Cpu>& ctx, const Shape<R>& s, bool requires_grad = true, double lo = -1, double hi = 1) {
  return Var<T, R>(ctx, random_tensor<T>(ctx.rng(), s, lo, hi), requires_grad);
}
template <class T, std::size_t R>
Var<T, R> like(Context<Cpu>& ctx, const Var<double, R>& v, bool requires_grad = true) {
  Tensor<T, R> t(v.shape());
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(v.value()[i]);
  return Var<T, R>(ctx, std::move(t), requires_grad);
}
std::vector<int> random_labels(CounterRng& rng, index_t n, int classes) {
  std::vector<int> y(static_cast<std::size_t>(n));
  for (auto& v : y) v = static_cast<int>(rng.below(std::uint64_t(classes)));
  return y;
}
std::vector<double> values_of(const Var<double, 1>& w, index_t n) {
  std::vector<double> out(static_cast<std::size_t>(n), 1.0);
  if (w.defined())
    for (index_t i = 0; i < n; ++i) out[i] = w.value()[i];
  return out;
}
template <class T, std::size_t R>
bool all_finite(const Tensor<T, R>& t) {
  for (index_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(double(t[i]))) return false;
  return true;
}

/// Max |a - b| over all elements relative to max |b| (plus a floor).
template <class A, class B>
double rel_diff(const A& a, const B& b) {
  double md = 0, mb = 0;
  for (index_t i = 0; i < b.numel(); ++i) {
    md = std::max(md, std::abs(double(a[i]) - double(b[i])));
    mb = std::max(mb, std::abs(double(b[i])));
  }
  return md / std::max(mb, 1e-3);
}

/// Runs the fused and the naive loss on the same Vars, compares values and every input's gradient.
template <class F, class N, class... V>
void against_oracle(F fused, N naive, double tol, const std::string& what, V&... inputs) {
  INFO(what);
  (inputs.drop_grad(), ...);
  auto lf = fused();
  lf.backward();
  std::vector<Tensor<double, 2>> gf;
  // Inputs without a gradient (detached teachers) are stored as empty tensors: both versions must agree.
  auto keep = [&](auto& v, auto& store) {
    if (!v.has_grad()) {
      store.push_back(Tensor<double, 2>(Shape<2>{0, 0}));
      return;
    }
    const auto& g = v.grad();
    Tensor<double, 2> c(Shape<2>{1, g.numel()});
    for (index_t i = 0; i < g.numel(); ++i) c[i] = g[i];
    store.push_back(c);
  };
  (keep(inputs, gf), ...);
  (inputs.drop_grad(), ...);
  auto ln = naive();
  ln.backward();
  std::vector<Tensor<double, 2>> gn;
  (keep(inputs, gn), ...);
  REQUIRE(std::isfinite(lf.value()[0]));
  REQUIRE(lf.value()[0] == Approx(ln.value()[0]).epsilon(tol).margin(tol));
  REQUIRE(gf.size() == gn.size());
  for (std::size_t i = 0; i < gf.size(); ++i) {
    INFO("gradient of input #" << i);
    REQUIRE(gf[i].numel() == gn[i].numel());
    REQUIRE(all_finite(gf[i]));
    REQUIRE(rel_diff(gf[i], gn[i]) <= tol);
  }
}

GradCheckOptions fd_options() {
  GradCheckOptions o;
  o.eps = 1e-6;
  o.atol = 1e-7;
  o.rtol = 1e-5;
  o.max_elements_per_input = 200;
  return o;
}

}  // namespace

// =============================================================================================================
TEST_CASE("nt_xent: plain-loop reference, composed oracle, float, tiles and both shift modes", "[losses][ntxent]") {
  Context<Cpu> ctx(2, 1);
  for (index_t B : {1, 3, 50, 110})
    for (index_t D : {1, 3, 17}) {
      auto z1 = rvar<double>(ctx, Shape<2>{B, D});
      auto z2 = rvar<double>(ctx, Shape<2>{B, D});
      // tau = 0.002 takes the online-max path in double too (2/tau > 700); float switches below tau = 0.025.
      for (double tau : {0.002, 0.01, 0.05, 0.1, 1.0}) {
        INFO("B=" << B << " D=" << D << " tau=" << tau);
        const double ref = ref_nt_xent(rows_of(z1.value()), rows_of(z2.value()), tau);
        auto l = losses::nt_xent(z1, z2, tau);
        REQUIRE(l.value()[0] == Approx(ref).epsilon(1e-11).margin(1e-11));
        auto f1 = like<float>(ctx, z1), f2 = like<float>(ctx, z2);
        auto lf = losses::nt_xent(f1, f2, tau);
        REQUIRE(double(lf.value()[0]) == Approx(ref).epsilon(2e-4).margin(2e-4));
        lf.backward();
        REQUIRE(all_finite(f1.grad()));
        REQUIRE(all_finite(f2.grad()));
        if (B <= 50 && D != 1)
          against_oracle([&] { return losses::nt_xent(z1, z2, tau); },
                         [&] { return losses::naive::nt_xent(z1, z2, tau); }, 1e-9, "oracle", z1, z2);
      }
    }
}

TEST_CASE("nt_xent: float gradients track double, B = 1 gives 0, same Var twice", "[losses][ntxent]") {
  Context<Cpu> ctx(2, 2);
  auto z1 = rvar<double>(ctx, Shape<2>{70, 33});
  auto z2 = rvar<double>(ctx, Shape<2>{70, 33});
  for (double tau : {0.01, 0.2}) {
    auto ld = losses::nt_xent(z1, z2, tau);
    z1.drop_grad();
    z2.drop_grad();
    ld.backward();
    auto f1 = like<float>(ctx, z1), f2 = like<float>(ctx, z2);
    losses::nt_xent(f1, f2, tau).backward();
    INFO("tau=" << tau);
    REQUIRE(rel_diff(f1.grad(), z1.grad()) < 2e-4);
    REQUIRE(rel_diff(f2.grad(), z2.grad()) < 2e-4);
  }
  // 2N = 2: the positive is the only candidate, so the loss and its gradient vanish.
  auto a = rvar<float>(ctx, Shape<2>{1, 5});
  auto b = rvar<float>(ctx, Shape<2>{1, 5});
  auto l = losses::nt_xent(a, b, 0.1);
  REQUIRE(std::abs(l.value()[0]) < 1e-6);
  l.backward();
  for (index_t i = 0; i < 5; ++i) REQUIRE(std::abs(a.grad()[i]) < 1e-5);
  // The same Var as both views: gradients from both halves accumulate into it.
  auto z = rvar<double>(ctx, Shape<2>{4, 3});
  against_oracle([&] { return losses::nt_xent(z, z, 0.3); }, [&] { return losses::naive::nt_xent(z, z, 0.3); },
                 1e-9, "z twice", z);
}

TEST_CASE("supcon and supcon_cross: references, oracle, weights, classes without positives", "[losses][supcon]") {
  Context<Cpu> ctx(2, 3);
  for (index_t n : {2, 7, 40, 130})
    for (double tau : {0.002, 0.01, 0.07, 1.0}) {
      const index_t D = n == 130 ? 5 : 6;
      INFO("n=" << n << " tau=" << tau);
      auto y = random_labels(ctx.rng(), n, n == 2 ? 1 : 4);
      if (n == 7) y[6] = 99;  // a singleton class: no positive for that anchor
      auto z = rvar<double>(ctx, Shape<2>{n, D});
      auto b = rvar<double>(ctx, Shape<2>{n, D});
      auto w = rvar<double, 1>(ctx, Shape<1>{n}, false, 0.3, 0.8);
      const auto wv = values_of(w, n);
      REQUIRE(losses::supcon(z, y, tau, w).value()[0] ==
              Approx(ref_supcon(rows_of(z.value()), y, tau, wv)).epsilon(1e-11).margin(1e-11));
      REQUIRE(losses::supcon(z, y, tau).value()[0] ==
              Approx(ref_supcon(rows_of(z.value()), y, tau, std::vector<double>(n, 1.0))).epsilon(1e-11).margin(1e-11));
      REQUIRE(losses::supcon_cross(z, b, y, tau, w).value()[0] ==
              Approx(ref_supcon_cross(rows_of(z.value()), rows_of(b.value()), y, tau, wv)).epsilon(1e-11).margin(1e-11));
      auto zf = like<float>(ctx, z), bf = like<float>(ctx, b);
      auto wf = like<float, 1>(ctx, w, false);
      auto lf = losses::supcon_cross(zf, bf, y, tau, wf);
      REQUIRE(double(lf.value()[0]) ==
              Approx(ref_supcon_cross(rows_of(z.value()), rows_of(b.value()), y, tau, wv)).epsilon(2e-4).margin(2e-4));
      lf.backward();
      REQUIRE(all_finite(zf.grad()));
      REQUIRE(all_finite(bf.grad()));
      if (n <= 40) {
        against_oracle([&] { return losses::supcon(z, y, tau, w); },
                       [&] { return losses::naive::supcon(z, y, tau, w); }, 1e-9, "supcon", z);
        against_oracle([&] { return losses::supcon_cross(z, b, y, tau, w); },
                       [&] { return losses::naive::supcon_cross(z, b, y, tau, w); }, 1e-9, "supcon_cross", z, b);
      }
    }
}

TEST_CASE("info_nce_cross and moco_info_nce: references and oracle", "[losses][infonce]") {
  Context<Cpu> ctx(2, 4);
  for (index_t n : {1, 5, 120})
    for (double tau : {0.01, 0.1, 1.0}) {
      INFO("n=" << n << " tau=" << tau);
      auto a = rvar<double>(ctx, Shape<2>{n, 7});
      auto b = rvar<double>(ctx, Shape<2>{n, 7});
      REQUIRE(losses::info_nce_cross(a, b, tau).value()[0] ==
              Approx(ref_info_nce_cross(rows_of(a.value()), rows_of(b.value()), tau)).epsilon(1e-11).margin(1e-11));
      auto af = like<float>(ctx, a), bf = like<float>(ctx, b);
      REQUIRE(double(losses::info_nce_cross(af, bf, tau).value()[0]) ==
              Approx(ref_info_nce_cross(rows_of(a.value()), rows_of(b.value()), tau)).epsilon(2e-4).margin(2e-4));
      if (n <= 5)
        against_oracle([&] { return losses::info_nce_cross(a, b, tau); },
                       [&] { return losses::naive::info_nce_cross(a, b, tau); }, 1e-9, "clip", a, b);
      for (index_t K : {0, 1, 5, 200}) {
        INFO("K=" << K);
        auto neg = random_tensor<double>(ctx.rng(), Shape<2>{K, 7});
        const double ref = ref_moco(rows_of(a.value()), rows_of(b.value()), rows_of(neg), tau);
        REQUIRE(losses::moco_info_nce(a, b, neg, tau).value()[0] == Approx(ref).epsilon(1e-11).margin(1e-11));
        Tensor<float, 2> negf(neg.shape());
        for (index_t i = 0; i < neg.numel(); ++i) negf[i] = float(neg[i]);
        auto lf = losses::moco_info_nce(af, bf, negf, tau);
        REQUIRE(double(lf.value()[0]) == Approx(ref).epsilon(2e-4).margin(2e-4));
        if (n <= 5)
          against_oracle([&] { return losses::moco_info_nce(a, b, neg, tau); },
                         [&] { return losses::naive::moco_info_nce(a, b, neg, tau); }, 1e-9, "moco", a, b);
      }
    }
}

TEST_CASE("soft_contrastive_kl: self (DCRLS), soft VCL / ICL forms, weights, teacher width", "[losses][softkl]") {
  Context<Cpu> ctx(2, 5);
  for (index_t n : {1, 2, 9, 100})
    for (double tau : {0.01, 0.07, 1.0}) {
      INFO("n=" << n << " tau=" << tau);
      auto s = rvar<double>(ctx, Shape<2>{n, 6});
      auto s2 = rvar<double>(ctx, Shape<2>{n, 6});
      auto t = rvar<double>(ctx, Shape<2>{n, 5}, false);
      auto t2 = rvar<double>(ctx, Shape<2>{n, 5}, false);
      auto w = rvar<double, 1>(ctx, Shape<1>{n}, false, 0.27, 0.73);
      const auto wv = values_of(w, n);
      const Mat S = rows_of(s.value()), S2 = rows_of(s2.value()), Tm = rows_of(t.value()), T2 = rows_of(t2.value());
      for (auto diag : {losses::Diagonal::include, losses::Diagonal::exclude}) {
        const bool ex = diag == losses::Diagonal::exclude;
        INFO("exclude diagonal " << ex);
        // Self-distillation: student s s^T, teacher t t^T (another width).
        REQUIRE(losses::soft_contrastive_kl(s, s, t, t, tau, 3.0, diag).value()[0] ==
                Approx(ref_soft_kl(S, S, Tm, Tm, tau, 3.0, ex, std::vector<double>(n, 1.0))).epsilon(1e-10).margin(1e-10));
        // Soft ICL: student s s2^T, teacher s2 s^T (the same Vars, detached), weighted.
        REQUIRE(losses::soft_contrastive_kl(s, s2, s2, s, tau, 3.0, diag, w).value()[0] ==
                Approx(ref_soft_kl(S, S2, S2, S, tau, 3.0, ex, wv)).epsilon(1e-10).margin(1e-10));
        auto sf = like<float>(ctx, s), tf = like<float>(ctx, t, false);
        auto lf = losses::soft_contrastive_kl(sf, sf, tf, tf, tau, 3.0, diag);
        REQUIRE(double(lf.value()[0]) ==
                Approx(ref_soft_kl(S, S, Tm, Tm, tau, 3.0, ex, std::vector<double>(n, 1.0))).epsilon(3e-4).margin(3e-4));
        lf.backward();
        REQUIRE(all_finite(sf.grad()));
        if (n <= 9) {
          against_oracle([&] { return losses::soft_contrastive_kl(s, s, t, t, tau, 3.0, diag); },
                         [&] { return losses::naive::soft_contrastive_kl(s, s, t, t, tau, 3.0, diag); }, 1e-9,
                         "self", s);
          against_oracle([&] { return losses::soft_contrastive_kl(s, s2, s2, s, tau, 3.0, diag, w); },
                         [&] { return losses::naive::soft_contrastive_kl(s, s2, s2, s, tau, 3.0, diag, w); }, 1e-9,
                         "soft ICL", s, s2);
          against_oracle([&] { return losses::soft_contrastive_kl(s, s2, t, t2, tau, 3.0, diag); },
                         [&] { return losses::naive::soft_contrastive_kl(s, s2, t, t2, tau, 3.0, diag); }, 1e-9,
                         "four inputs", s, s2);
        }
      }
    }
}

TEST_CASE("kd_kl: reference, oracle, +-1e4 logits, one-hot teachers, K = 1, teacher gradient", "[losses][kd]") {
  Context<Cpu> ctx(2, 6);
  for (index_t B : {1, 4, 300})
    for (index_t K : {1, 3, 37, 1000}) {
      INFO("B=" << B << " K=" << K);
      auto s = rvar<double>(ctx, Shape<2>{B, K}, true, -4, 4);
      auto t = rvar<double>(ctx, Shape<2>{B, K}, true, -4, 4);
      if (B > 1 && K > 2) {
        for (index_t j = 0; j < K; ++j) {
          s.value()(0, j) = (j % 2 ? 1e4 : -1e4);
          t.value()(0, j) = (j % 3 ? -1e4 : 1e4);
          t.value()(1, j) = j == 1 ? 500.0 : 0.0;  // one-hot-like teacher: softmax underflows to exact zeros
        }
      }
      for (double T : {1.0, 3.0}) {
        const double ref = ref_kd_kl(rows_of(s.value()), rows_of(t.value()), T);
        REQUIRE(losses::kd_kl(s, t, T).value()[0] == Approx(ref).epsilon(1e-10).margin(1e-10));
        auto sf = like<float>(ctx, s), tf = like<float>(ctx, t);
        auto lf = losses::kd_kl(sf, tf, T, true);
        REQUIRE(std::isfinite(lf.value()[0]));
        REQUIRE(double(lf.value()[0]) == Approx(ref).epsilon(1e-4).margin(1e-3));
        lf.backward();
        REQUIRE(all_finite(sf.grad()));
        REQUIRE(all_finite(tf.grad()));
        if (B * K <= 4000) {
          against_oracle([&] { return losses::kd_kl(s, t, T); }, [&] { return losses::naive::kd_kl(s, t, T); },
                         1e-9, "detached teacher", s, t);
          REQUIRE_FALSE(t.has_grad());
          against_oracle([&] { return losses::kd_kl(s, t, T, true); },
                         [&] { return losses::naive::kd_kl(s, t, T, true); }, 1e-9, "teacher gradient", s, t);
        }
      }
    }
}

TEST_CASE("normalized_mse_sum: reference, oracle, zero rows", "[losses][mse]") {
  Context<Cpu> ctx(2, 7);
  for (index_t n : {1, 5, 64}) {
    auto a = rvar<double>(ctx, Shape<2>{n, 13});
    auto b = rvar<double>(ctx, Shape<2>{n, 13});
    if (n > 1)
      for (index_t k = 0; k < 13; ++k) a.value()(1, k) = 0.0;
    REQUIRE(losses::normalized_mse_sum(a, b).value()[0] ==
            Approx(ref_nmse(rows_of(a.value()), rows_of(b.value()))).epsilon(1e-12));
    against_oracle([&] { return losses::normalized_mse_sum(a, b); },
                   [&] { return losses::naive::normalized_mse_sum(a, b); }, 1e-10, "nmse", a, b);
  }
}

TEST_CASE("finite-difference gradients of every fused loss", "[losses][grad]") {
  Context<Cpu> ctx(2, 8);
  const auto o = fd_options();
  auto z1 = rvar<double>(ctx, Shape<2>{3, 5});
  auto z2 = rvar<double>(ctx, Shape<2>{3, 5});
  for (double tau : {0.05, 0.5}) {
    INFO("tau=" << tau);
    auto r = check_gradients([&] { return losses::nt_xent(z1, z2, tau); }, o, z1, z2);
    INFO(r.message);
    REQUIRE(r.ok);
    r = check_gradients([&] { return losses::info_nce_cross(z1, z2, tau); }, o, z1, z2);
    REQUIRE(r.ok);
    auto neg = random_tensor<double>(ctx.rng(), Shape<2>{4, 5});
    r = check_gradients([&] { return losses::moco_info_nce(z1, z2, neg, tau); }, o, z1, z2);
    REQUIRE(r.ok);
  }
  const std::vector<int> y{0, 1, 0, 2, 1, 0};
  auto z = rvar<double>(ctx, Shape<2>{6, 4});
  auto b = rvar<double>(ctx, Shape<2>{6, 4});
  auto t = rvar<double>(ctx, Shape<2>{6, 3}, false);
  auto w = rvar<double, 1>(ctx, Shape<1>{6}, true, 0.3, 0.8);
  auto r = check_gradients([&] { return losses::supcon(z, y, 0.2, w); }, o, z, w);
  INFO(r.message);
  REQUIRE(r.ok);
  r = check_gradients([&] { return losses::supcon_cross(z, b, y, 0.2, w); }, o, z, b, w);
  REQUIRE(r.ok);
  r = check_gradients([&] { return losses::soft_contrastive_kl(z, z, t, t, 0.2, 3.0, losses::Diagonal::exclude, w); },
                      o, z, w);
  REQUIRE(r.ok);
  // Soft ICL form; the teacher rows are constant copies (perturbing z must not move the stop-gradient teacher).
  auto tb = Var<double, 2>(ctx, b.value().clone(), false), tz = Var<double, 2>(ctx, z.value().clone(), false);
  r = check_gradients([&] { return losses::soft_contrastive_kl(z, b, tb, tz, 0.1, 2.0, losses::Diagonal::include, w); },
                      o, z, b, w);
  REQUIRE(r.ok);
  auto s = rvar<double>(ctx, Shape<2>{4, 7}, true, -3, 3);
  auto tt = rvar<double>(ctx, Shape<2>{4, 7}, true, -3, 3);
  r = check_gradients([&] { return losses::kd_kl(s, tt, 2.5, true); }, o, s, tt);
  REQUIRE(r.ok);
  r = check_gradients([&] { return losses::normalized_mse_sum(z, b); }, o, z, b);
  REQUIRE(r.ok);
}

TEST_CASE("identical and zero embeddings: finite values and gradients, PyTorch's normalisation rule",
          "[losses][edge]") {
  Context<Cpu> ctx(2, 9);
  for (double tau : {0.01, 0.05, 0.1, 1.0}) {
    INFO("tau=" << tau);
    // Identical rows: every similarity equals 1/tau; loss = log(2B - 1), gradient 0 (all rows equal).
    Tensor<float, 2> same(Shape<2>{6, 5});
    for (index_t i = 0; i < 6; ++i)
      for (index_t k = 0; k < 5; ++k) same(i, k) = float(k + 1);
    auto a = Var<float, 2>(ctx, same.clone(), true), b = Var<float, 2>(ctx, same.clone(), true);
    auto l = losses::nt_xent(a, b, tau);
    REQUIRE(l.value()[0] == Approx(std::log(11.0)).epsilon(1e-5));
    l.backward();
    REQUIRE(all_finite(a.grad()));
    for (index_t i = 0; i < a.grad().numel(); ++i) REQUIRE(std::abs(a.grad()[i]) < 1e-4);
    // Zero rows: cosine 0 with everything; the normalisation backward divides by eps (as F.normalize does).
    auto zd = rvar<double>(ctx, Shape<2>{4, 3});
    auto zd2 = rvar<double>(ctx, Shape<2>{4, 3});
    for (index_t k = 0; k < 3; ++k) {
      zd.value()(0, k) = 0;
      zd2.value()(2, k) = 0;
    }
    REQUIRE(losses::nt_xent(zd, zd2, tau).value()[0] ==
            Approx(ref_nt_xent(rows_of(zd.value()), rows_of(zd2.value()), tau)).epsilon(1e-11));
    against_oracle([&] { return losses::nt_xent(zd, zd2, tau); },
                   [&] { return losses::naive::nt_xent(zd, zd2, tau); }, 1e-9, "zero rows", zd, zd2);
    Tensor<float, 2> zeros = Tensor<float, 2>::zeros(Shape<2>{3, 4});
    auto zf = Var<float, 2>(ctx, zeros.clone(), true), zf2 = Var<float, 2>(ctx, zeros.clone(), true);
    auto lz = losses::nt_xent(zf, zf2, tau);
    REQUIRE(lz.value()[0] == Approx(std::log(5.0)).epsilon(1e-5));  // all logits 0
    lz.backward();
    REQUIRE(all_finite(zf.grad()));
    auto lk = losses::soft_contrastive_kl(zf, zf, zf2, zf2, tau, 3.0, losses::Diagonal::exclude);
    REQUIRE(std::abs(lk.value()[0]) < 1e-6);
    auto ls = losses::supcon(zf, std::vector<int>{0, 0, 1}, tau);
    REQUIRE(std::isfinite(ls.value()[0]));
    auto lm = losses::moco_info_nce(zf, zf2, zeros, tau);
    REQUIRE(lm.value()[0] == Approx(std::log(4.0)).epsilon(1e-5));
  }
}

TEST_CASE("Queue: FIFO overwrite of the oldest, normalised rows, MoCo on a queue", "[losses][queue]") {
  Context<Cpu> ctx(1, 10);
  losses::Queue<double> q(5, 3);
  REQUIRE(q.size() == 0);
  REQUIRE(q.contents().extent(0) == 0);
  auto batch = [](double base, index_t rows) {
    Tensor<double, 2> t(Shape<2>{rows, 3});
    for (index_t i = 0; i < rows; ++i) {
      t(i, 0) = 2 * (base + double(i));
      t(i, 1) = 0;
      t(i, 2) = 0;
    }
    return t;
  };
  // Keys along e_0 scaled; after normalisation all are e_0 -> use the second coordinate to tell them apart.
  auto tagged = [](std::initializer_list<double> tags) {
    Tensor<double, 2> t(Shape<2>{index_t(tags.size()), 3});
    index_t i = 0;
    for (double g : tags) {
      t(i, 0) = 1;
      t(i, 1) = g;
      t(i, 2) = 0;
      ++i;
    }
    return t;
  };
  q.enqueue(batch(1, 2));
  REQUIRE(q.size() == 2);
  REQUIRE(q.contents()(1, 0) == Approx(1.0));  // normalised
  q.enqueue(tagged({1, 2, 3}));
  REQUIRE(q.full());
  REQUIRE(q.head() == 0);
  q.enqueue(tagged({4, 5}));  // overwrites the two oldest
  auto ord = q.ordered();
  REQUIRE(ord.extent(0) == 5);
  const double tags[] = {1, 2, 3, 4, 5};
  for (index_t i = 0; i < 5; ++i) REQUIRE(ord(i, 1) / ord(i, 0) == Approx(tags[i]));
  q.enqueue(tagged({6, 7, 8, 9, 10, 11, 12}));  // more than capacity: the newest 5 remain
  ord = q.ordered();
  for (index_t i = 0; i < 5; ++i) REQUIRE(ord(i, 1) / ord(i, 0) == Approx(8.0 + double(i)));
  REQUIRE_THROWS_WITH(q.enqueue(Tensor<double, 2>(Shape<2>{2, 4})), Catch::Contains("[2, 4]"));

  auto rq = losses::Queue<double>::random(64, 6, ctx.rng());
  REQUIRE(rq.full());
  for (index_t i = 0; i < 64; ++i) {
    double s = 0;
    for (index_t k = 0; k < 6; ++k) s += rq.contents()(i, k) * rq.contents()(i, k);
    REQUIRE(s == Approx(1.0));
  }
  auto qq = rvar<double>(ctx, Shape<2>{4, 6});
  auto kk = rvar<double>(ctx, Shape<2>{4, 6}, false);
  const double via_queue = losses::moco_info_nce(qq, kk, rq, 0.2).value()[0];
  const double via_tensor = losses::moco_info_nce(qq, kk, rq.ordered(), 0.2).value()[0];
  REQUIRE(via_queue == Approx(via_tensor).epsilon(1e-12));
  // The op keeps its own copy of the negatives: enqueueing before backward() does not change the gradient.
  auto l1 = losses::moco_info_nce(qq, kk, rq, 0.2);
  rq.enqueue(random_tensor<double>(ctx.rng(), Shape<2>{32, 6}));
  l1.backward();
  auto g1 = qq.grad().clone();
  qq.drop_grad();
  losses::moco_info_nce(qq, kk, Tensor<double, 2>(random_tensor<double>(ctx.rng(), Shape<2>{0, 6})), 0.2);
  REQUIRE(all_finite(g1));
  REQUIRE_FALSE(kk.has_grad());
}

TEST_CASE("determinism: bitwise for a fixed thread count, close across thread counts", "[losses][determinism]") {
  auto run = [](int threads) {
    Context<Cpu> ctx(threads, 11);
    auto z1 = rvar<float>(ctx, Shape<2>{150, 20});
    auto z2 = rvar<float>(ctx, Shape<2>{150, 20});
    auto l = losses::nt_xent(z1, z2, 0.1);
    l.backward();
    auto s = rvar<float>(ctx, Shape<2>{150, 20});
    auto t = rvar<float>(ctx, Shape<2>{150, 20}, false);
    auto k = losses::soft_contrastive_kl(s, s, t, t, 0.01, 3.0, losses::Diagonal::exclude);
    k.backward();
    std::vector<float> out{l.value()[0], k.value()[0]};
    for (auto* g : {&z1.grad(), &z2.grad(), &s.grad()})
      for (index_t i = 0; i < g->numel(); ++i) out.push_back((*g)[i]);
    return out;
  };
  const auto a = run(2), b = run(2), c = run(1), d = run(3);
  REQUIRE(a == b);
  double md = 0;
  for (std::size_t i = 0; i < a.size(); ++i) md = std::max({md, double(std::abs(a[i] - c[i])), double(std::abs(a[i] - d[i]))});
  REQUIRE(md < 1e-4);
}

TEST_CASE("every ISA level: the float fused losses track double and each other", "[losses][isa]") {
  // The tile products and exponentials run at the context's level (core/isa.hpp); each level this CPU supports
  // must give the double-precision loss and gradients, and the SIMD levels the same bits as each other.
  auto run = [](cpu::Isa isa, auto zero) {
    using T = decltype(zero);
    Context<Cpu> ctx(2, 21);
    ctx.set_isa(isa);
    auto z1 = rvar<T>(ctx, Shape<2>{130, 40});
    auto z2 = rvar<T>(ctx, Shape<2>{130, 40});
    auto t = rvar<T>(ctx, Shape<2>{130, 40}, false);
    auto l = losses::nt_xent(z1, z2, 0.1) + losses::soft_contrastive_kl(z1, z1, t, t, 0.07, 3.0,
                                                                         losses::Diagonal::exclude) +
             losses::kd_kl(z2, t, 3.0) + losses::kd_kl(z1, z2, 2.0);  // the last: a teacher with a gradient
    l.backward();
    std::vector<double> out{double(l.value()[0])};
    for (auto* g : {&z1.grad(), &z2.grad()})
      for (index_t i = 0; i < g->numel(); ++i) out.push_back(double((*g)[i]));
    return out;
  };
  const auto ref = run(cpu::Isa::portable, 0.0);
  std::vector<std::vector<double>> got;
  for (const cpu::Isa isa : cpu::supported_isas()) {
    INFO("level " << cpu::isa_name(isa));
    got.push_back(run(isa, 0.0f));
    REQUIRE(got.back()[0] == Approx(ref[0]).epsilon(1e-5));
    double worst = 0, scale = 0;
    for (std::size_t i = 1; i < ref.size(); ++i) {
      worst = std::max(worst, std::abs(got.back()[i] - ref[i]));
      scale = std::max(scale, std::abs(ref[i]));
    }
    REQUIRE(worst < 1e-4 * scale);
  }
  for (std::size_t k = 2; k < got.size(); ++k) REQUIRE(got[k] == got[1]);
}

TEST_CASE("golden values against PyTorch", "[losses][golden]") {
  Golden gd(golden_path("losses.txt"));
  Context<Cpu> ctx(2, 12);
  auto var = [&](const char* name, bool grad = true) { return Var<double, 2>(ctx, gd.get<double, 2>(name), grad); };
  auto vec = [&](const char* name, bool grad = true) { return Var<double, 1>(ctx, gd.get<double, 1>(name), grad); };
  auto close = [&](const Tensor<double, 2>& got, const char* name) {
    INFO(name);
    REQUIRE(rel_diff(got, gd.get<double, 2>(name)) < 1e-10);
  };
  auto close1 = [&](const Tensor<double, 1>& got, const char* name) {
    INFO(name);
    REQUIRE(rel_diff(got, gd.get<double, 1>(name)) < 1e-10);
  };
  auto labels_of = [&](const char* name) {
    auto t = gd.get<double, 1>(name);
    std::vector<int> y;
    for (double v : t) y.push_back(int(v));
    return y;
  };
  {
    auto z1 = var("ntx_z1"), z2 = var("ntx_z2");
    auto l = losses::nt_xent(z1, z2, 0.2);
    REQUIRE(l.value()[0] == Approx(gd.scalar("ntx_loss")).epsilon(1e-12));
    l.backward();
    close(z1.grad(), "ntx_dz1");
    close(z2.grad(), "ntx_dz2");
  }
  {
    auto a = var("clip_a"), b = var("clip_b");
    auto l = losses::info_nce_cross(a, b, 0.1);
    REQUIRE(l.value()[0] == Approx(gd.scalar("clip_loss")).epsilon(1e-12));
    l.backward();
    close(a.grad(), "clip_da");
    close(b.grad(), "clip_db");
  }
  {
    auto q = var("moco_q"), k = var("moco_k");
    auto l = losses::moco_info_nce(q, k, gd.get<double, 2>("moco_queue"), 0.07);
    REQUIRE(l.value()[0] == Approx(gd.scalar("moco_loss")).epsilon(1e-12));
    l.backward();
    close(q.grad(), "moco_dq");
    close(k.grad(), "moco_dk");
  }
  const auto y = labels_of("sup_labels");
  {
    auto z = var("sup_z");
    auto w = vec("sup_w");
    auto l = losses::supcon(z, y, 0.1, w);
    REQUIRE(l.value()[0] == Approx(gd.scalar("sup_loss")).epsilon(1e-12));
    l.backward();
    close(z.grad(), "sup_dz");
    close1(w.grad(), "sup_dw");
  }
  {
    auto a = var("icl_a"), b = var("icl_b");
    auto w = vec("sup_w");
    auto l = losses::supcon_cross(a, b, y, 0.1, w);
    REQUIRE(l.value()[0] == Approx(gd.scalar("icl_loss")).epsilon(1e-12));
    l.backward();
    close(a.grad(), "icl_da");
    close(b.grad(), "icl_db");
    close1(w.grad(), "icl_dw");
  }
  {
    auto zs = var("skl_zs"), zt = var("skl_zt", false);
    auto l = losses::soft_contrastive_kl(zs, zs, zt, zt, 0.1, 3.0, losses::Diagonal::exclude);
    REQUIRE(l.value()[0] == Approx(gd.scalar("skl_loss")).epsilon(1e-12));
    l.backward();
    close(zs.grad(), "skl_dzs");
  }
  {
    auto a = var("sicl_a"), b = var("sicl_b");
    auto w = vec("sicl_w");
    auto l = losses::soft_contrastive_kl(a, b, b, a, 0.07, 3.0, losses::Diagonal::include, w);
    REQUIRE(l.value()[0] == Approx(gd.scalar("sicl_loss")).epsilon(1e-12));
    l.backward();
    close(a.grad(), "sicl_da");
    close(b.grad(), "sicl_db");
    close1(w.grad(), "sicl_dw");
  }
  {
    auto s = var("kd_s"), t = var("kd_t");
    auto l = losses::kd_kl(s, t, 3.0);
    REQUIRE(l.value()[0] == Approx(gd.scalar("kd_loss")).epsilon(1e-12));
    l.backward();
    close(s.grad(), "kd_ds");
    REQUIRE_FALSE(t.has_grad());
    // Rows 0, 1, 3 with the teacher gradient (torch's is NaN on the +-1e4 row; ours is finite there).
    auto keep = [&](const Tensor<double, 2>& x) {
      Tensor<double, 2> r(Shape<2>{3, 7});
      const index_t rows[] = {0, 1, 3};
      for (index_t i = 0; i < 3; ++i)
        for (index_t j = 0; j < 7; ++j) r(i, j) = x(rows[i], j);
      return r;
    };
    auto s2 = Var<double, 2>(ctx, keep(s.value()), true), t2 = Var<double, 2>(ctx, keep(t.value()), true);
    auto l2 = losses::kd_kl(s2, t2, 3.0, true);
    REQUIRE(l2.value()[0] == Approx(gd.scalar("kd2_loss")).epsilon(1e-12));
    l2.backward();
    close(s2.grad(), "kd2_ds");
    close(t2.grad(), "kd2_dt");
    auto t3 = Var<double, 2>(ctx, t.value().clone(), true);
    losses::kd_kl(s, t3, 3.0, true).backward();
    REQUIRE(all_finite(t3.grad()));
  }
  {
    auto a = var("nmse_a"), b = var("nmse_b");
    auto l = losses::normalized_mse_sum(a, b);
    REQUIRE(l.value()[0] == Approx(gd.scalar("nmse_loss")).epsilon(1e-12));
    l.backward();
    close(a.grad(), "nmse_da");
    close(b.grad(), "nmse_db");
  }
}

TEST_CASE("autograd semantics: no graph without grad, stop-gradient teachers, accumulation", "[losses][autograd]") {
  Context<Cpu> ctx(2, 13);
  auto s = rvar<float>(ctx, Shape<2>{8, 4});
  auto t = rvar<float>(ctx, Shape<2>{8, 4});  // requires grad, but is the teacher: never receives a gradient
  auto l = losses::soft_contrastive_kl(s, s, t, t, 0.1, 3.0, losses::Diagonal::exclude);
  l.backward();
  REQUIRE(s.has_grad());
  REQUIRE_FALSE(t.has_grad());
  auto k = losses::kd_kl(s, t, 2.0);
  k.backward();
  REQUIRE_FALSE(t.has_grad());
  {
    NoGradGuard ng(ctx);
    auto x = losses::nt_xent(s, t, 0.2);
    REQUIRE_FALSE(x.requires_grad());
    auto y = losses::kd_kl(s, t, 2.0, true);
    REQUIRE_FALSE(y.requires_grad());
  }
  // Gradients accumulate (+=) across backward calls, like every op.
  auto a = rvar<double>(ctx, Shape<2>{5, 3});
  auto b = rvar<double>(ctx, Shape<2>{5, 3}, false);
  losses::nt_xent(a, b, 0.3).backward();
  auto g1 = a.grad().clone();
  losses::nt_xent(a, b, 0.3).backward();
  for (index_t i = 0; i < g1.numel(); ++i) REQUIRE(a.grad()[i] == Approx(2 * g1[i]));
  auto m = rvar<double>(ctx, Shape<2>{5, 3});
  losses::kd_kl(m, b, 2.0).backward();
  auto g2 = m.grad().clone();
  losses::kd_kl(m, b, 2.0).backward();
  for (index_t i = 0; i < g2.numel(); ++i) REQUIRE(m.grad()[i] == Approx(2 * g2[i]));
  // kd_kl hands its saved gradient over to the first backward; a retained graph recomputes it.
  m.drop_grad();
  auto lr = losses::kd_kl(m, b, 2.0);
  lr.backward(/*retain_graph=*/true);
  m.zero_grad();
  lr.backward(/*retain_graph=*/true);
  lr.backward();
  for (index_t i = 0; i < g2.numel(); ++i) REQUIRE(m.grad()[i] == Approx(2 * g2[i]));
  // A scaled upstream gradient (the loss used inside a larger objective).
  auto c = rvar<double>(ctx, Shape<2>{5, 3});
  auto r = check_gradients([&] { return scale(losses::nt_xent(c, b, 0.5), 3.0); }, fd_options(), c);
  REQUIRE(r.ok);
}

TEST_CASE("errors name the shapes and values at fault", "[losses][errors]") {
  Context<Cpu> ctx(1, 14);
  auto a = rvar<float>(ctx, Shape<2>{4, 3});
  auto b = rvar<float>(ctx, Shape<2>{5, 3});
  REQUIRE_THROWS_WITH(losses::nt_xent(a, b, 0.1), Catch::Contains("[4, 3]") && Catch::Contains("[5, 3]"));
  REQUIRE_THROWS_WITH(losses::nt_xent(a, a, 0.0), Catch::Contains("tau") && Catch::Contains("positive"));
  REQUIRE_THROWS_WITH(losses::info_nce_cross(a, b, 0.1), Catch::Contains("info_nce_cross"));
  REQUIRE_THROWS_WITH(losses::supcon(a, std::vector<int>{0, 1}, 0.1), Catch::Contains("2 labels"));
  REQUIRE_THROWS_WITH(losses::supcon(a, std::vector<int>{0, 1, 0, 1}, 0.1, rvar<float, 1>(ctx, Shape<1>{3})),
                      Catch::Contains("weights of shape [3]"));
  REQUIRE_THROWS_WITH(losses::moco_info_nce(a, a, Tensor<float, 2>(Shape<2>{6, 4}), 0.1),
                      Catch::Contains("[6, 4]"));
  REQUIRE_THROWS_WITH(losses::soft_contrastive_kl(a, b, a, b, 0.1, 3.0, losses::Diagonal::exclude),
                      Catch::Contains("square"));
  REQUIRE_THROWS_WITH(losses::soft_contrastive_kl(a, a, b, b, 0.1, 3.0), Catch::Contains("different shapes"));
  REQUIRE_THROWS_WITH(losses::kd_kl(a, b, 2.0), Catch::Contains("kd_kl"));
  REQUIRE_THROWS_WITH(losses::kd_kl(a, a, -1.0), Catch::Contains("temperature"));
  REQUIRE_THROWS_WITH(losses::normalized_mse_sum(a, b), Catch::Contains("[5, 3]"));
  REQUIRE_THROWS_WITH(losses::Queue<float>(0, 3), Catch::Contains("capacity"));
}

TEST_CASE("kernel exponential: accuracy, underflow to exact 0, tails", "[losses][exp]") {
  // cpu::simd::exp_shift (the fused kernels' exp; 8-wide at the avx2/avx512 levels, Eigen's at the portable
  // level) against std::exp, at every level this CPU supports.
  for (const cpu::Isa isa : cpu::supported_isas()) {
  INFO("ISA level " << cpu::isa_name(isa));
  std::vector<float> x, y;
  for (int i = -20000; i <= 20000; ++i) x.push_back(float(i) * 0.0044f);  // [-88, 88]
  for (float v : {-1e30f, -200.0f, -87.4f, -87.3f, -1e-30f, 0.0f, 1e-30f, 88.0f}) x.push_back(v);
  for (index_t n : {index_t(x.size()), index_t(1), index_t(7), index_t(9), index_t(15)}) {
    y.assign(x.size(), -1.0f);
    cpu::simd::exp_shift(isa, y.data(), x.data(), n, 0.0f);
    double worst = 0;
    for (index_t j = 0; j < n; ++j) {
      const double ref = std::exp(double(x[j]));
      INFO("x = " << x[j] << " got " << y[j] << " expected " << ref);
      REQUIRE(std::isfinite(y[j]));
      if (ref < 1.2e-38) {
        REQUIRE(y[j] <= 1.2e-38f);  // exact 0 below the normal range (or the last normals)
      } else {
        worst = std::max(worst, std::abs(double(y[j]) - ref) / ref);
      }
    }
    for (index_t j = n; j < index_t(y.size()); ++j) REQUIRE(y[j] == -1.0f);  // nothing written past n
    REQUIRE(worst < 4e-7);
  }
  std::vector<float> shifted(x.size());
  cpu::simd::exp_shift(isa, shifted.data(), x.data(), index_t(x.size()), 5.0f);
  for (std::size_t j = 0; j < 40000; j += 997) REQUIRE(shifted[j] == Approx(std::exp(double(x[j]) - 5.0)).epsilon(1e-6).margin(1e-37));
  std::vector<double> xd{-800, -700, -1, 0, 1, 700}, yd(6);
  cpu::simd::exp_shift(isa, yd.data(), xd.data(), 6, 0.0);
  // Below ~1e-300 (exp(-700) and under) only "tiny and non-negative" matters: the portable (non-AVX2) path may
  // flush to 0 or return a subnormal where std::exp differs.
  for (std::size_t j = 0; j < 6; ++j) REQUIRE(yd[j] == Approx(std::exp(xd[j])).epsilon(1e-14).margin(1e-300));
  }
}
