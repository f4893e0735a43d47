// tests/cuda/kernel_checks.hpp -- every CUDA kernel family against a plain double CPU reference.
//
// Included by exactly one TU per binary: tests/test_cuda_emu.cpp (SIMT emulator on the CPU) and
// tests/gpu/test_cuda_gpu.cpp (a real GPU). Only the host API is used (distill/cuda/...), so the same checks run
// on both. Outputs are poisoned with NaN before every non-accumulating run (an unwritten element fails), and
// accumulating runs start from random values that the reference adds to. Sizes are awkward on purpose: B = 1,
// Cin = 1, L < k, even and odd k, extents that are not multiples of the tiles. They stay small because the
// emulator runs every CUDA thread as an OS thread.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/cuda/api.hpp"
#include "distill/cuda/context.hpp"
#include "distill/cuda/device_ops.hpp"

namespace cuda_checks {

using distill::Context;
using distill::Cuda;
using distill::index_t;
namespace dc = distill::cuda;

/// Concatenates with operator<< (GCC 12 warns falsely on "literal" + std::string at -O3).
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}

inline Context<Cuda>& ctx() {
  static Context<Cuda> c{1, 7};
  return c;
}

template <class T>
std::vector<T> random_vector(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(g));
  return v;
}

/// A device buffer made from, and read back into, std::vector.
template <class T>
struct DeviceVec {
  distill::Tensor<T, 1, Cuda> t;
  explicit DeviceVec(std::size_t n) : t(ctx().empty<T, 1>({static_cast<index_t>(n)})) {}
  explicit DeviceVec(const std::vector<T>& v) : DeviceVec(v.size()) { upload(v); }
  void upload(const std::vector<T>& v) {
    REQUIRE(static_cast<index_t>(v.size()) == t.numel());
    if (!v.empty()) dc::copy_to_device(ctx(), t.data(), v.data(), sizeof(T) * v.size());
  }
  void poison() {
    if (t.numel()) dc::fill<T>(ctx(), t.data(), std::numeric_limits<T>::quiet_NaN(), t.numel());
  }
  std::vector<T> download() const {
    std::vector<T> v(static_cast<std::size_t>(t.numel()));
    if (!v.empty()) dc::copy_to_host(ctx(), v.data(), t.data(), sizeof(T) * v.size());
    return v;
  }
  T* data() { return t.data(); }
  const T* data() const { return t.data(); }
};

template <class T>
constexpr double rel_tol() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-12;
}

/// |got - ref| <= tol * (mag + 1) for every element, where mag is the sum of |terms| of the reference sum.
/// NaN (an unwritten, poisoned output) always fails. Reports the first few mismatches.
template <class T>
void check_close(const std::vector<T>& got, const std::vector<double>& ref, const std::vector<double>& mag,
                 double tol, const std::string& what) {
  REQUIRE(got.size() == ref.size());
  std::size_t bad = 0;
  std::ostringstream os;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double lim = tol * ((mag.empty() ? std::fabs(ref[i]) : mag[i]) + 1.0);
    if (!(err <= lim)) {
      if (bad < 5) os << "  [" << i << "] got " << got[i] << " expected " << ref[i] << "\n";
      ++bad;
    }
  }
  INFO(what << ": " << bad << " of " << got.size() << " elements differ\n" << os.str());
  CHECK(bad == 0);
}
template <class T>
void check_close(const std::vector<T>& got, const std::vector<double>& ref, double tol, const std::string& what) {
  check_close(got, ref, {}, tol, what);
}

// =================================================================================================================
// conv1d
// =================================================================================================================
struct ConvCase {
  index_t batch, cin, cout, length, kernel;
  distill::Padding padding;
  index_t dilation;
};
inline std::string describe(const ConvCase& c) {
  std::ostringstream os;
  os << "B" << c.batch << " Cin" << c.cin << " Cout" << c.cout << " L" << c.length << " k" << c.kernel << " d"
     << c.dilation << (c.padding == distill::Padding::Same ? " same" : " valid");
  return os.str();
}

template <class T>
struct ConvRef {
  std::vector<double> val, mag;
};

template <class T>
ConvRef<T> ref_conv_forward(const distill::Conv1dGeometry& s, const std::vector<T>& x, const std::vector<T>& w,
                            const std::vector<T>* bias) {
  ConvRef<T> r;
  r.val.assign(static_cast<std::size_t>(s.B * s.Cout * s.Lout), 0.0);
  r.mag = r.val;
  for (index_t b = 0; b < s.B; ++b)
    for (index_t o = 0; o < s.Cout; ++o)
      for (index_t t = 0; t < s.Lout; ++t) {
        double acc = bias ? double((*bias)[o]) : 0.0, mag = bias ? std::fabs(double((*bias)[o])) : 0.0;
        for (index_t c = 0; c < s.Cin; ++c)
          for (index_t u = 0; u < s.K; ++u) {
            const index_t pos = t + u * s.dilation - s.pad_left;
            if (pos < 0 || pos >= s.L) continue;
            const double term = double(w[(o * s.Cin + c) * s.K + u]) * double(x[(b * s.Cin + c) * s.L + pos]);
            acc += term;
            mag += std::fabs(term);
          }
        const auto i = static_cast<std::size_t>((b * s.Cout + o) * s.Lout + t);
        r.val[i] = acc;
        r.mag[i] = mag;
      }
  return r;
}

template <class T>
ConvRef<T> ref_conv_backward_input(const distill::Conv1dGeometry& s, const std::vector<T>& dy, const std::vector<T>& w) {
  ConvRef<T> r;
  r.val.assign(static_cast<std::size_t>(s.B * s.Cin * s.L), 0.0);
  r.mag = r.val;
  for (index_t b = 0; b < s.B; ++b)
    for (index_t o = 0; o < s.Cout; ++o)
      for (index_t t = 0; t < s.Lout; ++t)
        for (index_t c = 0; c < s.Cin; ++c)
          for (index_t u = 0; u < s.K; ++u) {
            const index_t pos = t + u * s.dilation - s.pad_left;
            if (pos < 0 || pos >= s.L) continue;
            const double term = double(w[(o * s.Cin + c) * s.K + u]) * double(dy[(b * s.Cout + o) * s.Lout + t]);
            const auto i = static_cast<std::size_t>((b * s.Cin + c) * s.L + pos);
            r.val[i] += term;
            r.mag[i] += std::fabs(term);
          }
  return r;
}

template <class T>
void ref_conv_backward_weight(const distill::Conv1dGeometry& s, const std::vector<T>& x, const std::vector<T>& dy,
                              ConvRef<T>& dw, ConvRef<T>& db) {
  dw.val.assign(static_cast<std::size_t>(s.Cout * s.Cin * s.K), 0.0);
  dw.mag = dw.val;
  db.val.assign(static_cast<std::size_t>(s.Cout), 0.0);
  db.mag = db.val;
  for (index_t b = 0; b < s.B; ++b)
    for (index_t o = 0; o < s.Cout; ++o)
      for (index_t t = 0; t < s.Lout; ++t) {
        const double g = dy[(b * s.Cout + o) * s.Lout + t];
        db.val[o] += g;
        db.mag[o] += std::fabs(g);
        for (index_t c = 0; c < s.Cin; ++c)
          for (index_t u = 0; u < s.K; ++u) {
            const index_t pos = t + u * s.dilation - s.pad_left;
            if (pos < 0 || pos >= s.L) continue;
            const double term = g * double(x[(b * s.Cin + c) * s.L + pos]);
            const auto i = static_cast<std::size_t>((o * s.Cin + c) * s.K + u);
            dw.val[i] += term;
            dw.mag[i] += std::fabs(term);
          }
      }
}

/// prior + reference (the accumulate mode's expectation).
template <class T>
ConvRef<T> plus(const ConvRef<T>& r, const std::vector<T>& prior) {
  ConvRef<T> out = r;
  for (std::size_t i = 0; i < prior.size(); ++i) {
    out.val[i] += double(prior[i]);
    out.mag[i] += std::fabs(double(prior[i]));
  }
  return out;
}

template <class T>
void check_conv_case(const ConvCase& cc, std::uint64_t seed) {
  const distill::Conv1dGeometry s = distill::conv1d_geometry(cc.batch, cc.cin, cc.cout, cc.length, cc.kernel, {cc.padding, cc.dilation});
  const std::string name = describe(cc);
  const auto hx = random_vector<T>(static_cast<std::size_t>(s.B * s.Cin * s.L), seed);
  const auto hw = random_vector<T>(static_cast<std::size_t>(s.Cout * s.Cin * s.K), seed + 1);
  const auto hb = random_vector<T>(static_cast<std::size_t>(s.Cout), seed + 2);
  const auto hdy = random_vector<T>(static_cast<std::size_t>(s.B * s.Cout * s.Lout), seed + 3);
  DeviceVec<T> x(hx), w(hw), bias(hb), dy(hdy);
  const double tol = rel_tol<T>();

  // ---- forward: every applicable kernel, with and without bias, write and accumulate
  const auto ref_b = ref_conv_forward(s, hx, hw, &hb);
  const auto ref_nb = ref_conv_forward(s, hx, hw, static_cast<const std::vector<T>*>(nullptr));
  std::vector<dc::Conv1dAlgo> algos{dc::Conv1dAlgo::Auto};
  if (s.Cin <= 4) {
    algos.push_back(dc::Conv1dAlgo::General);
    algos.push_back(dc::Conv1dAlgo::SmallCin);
  }
  for (auto algo : algos) {
    const std::string an = cat(name, algo == dc::Conv1dAlgo::Auto ? " auto" : algo == dc::Conv1dAlgo::General ? " general" : " small-cin");
    DeviceVec<T> y(ref_b.val.size());
    y.poison();
    dc::conv1d_forward<T>(ctx(), s, x.data(), w.data(), bias.data(), y.data(), false, algo);
    check_close(y.download(), ref_b.val, ref_b.mag, tol, cat("conv1d_forward ", an));
    y.poison();
    dc::conv1d_forward<T>(ctx(), s, x.data(), w.data(), nullptr, y.data(), false, algo);
    check_close(y.download(), ref_nb.val, ref_nb.mag, tol, cat("conv1d_forward (no bias) ", an));
    const auto prior = random_vector<T>(ref_b.val.size(), seed + 4);
    y.upload(prior);
    dc::conv1d_forward<T>(ctx(), s, x.data(), w.data(), bias.data(), y.data(), true, algo);
    const auto ref_acc = plus(ref_b, prior);
    check_close(y.download(), ref_acc.val, ref_acc.mag, tol, cat("conv1d_forward (accumulate) ", an));
  }

  // ---- grad-input
  const auto ref_dx = ref_conv_backward_input(s, hdy, hw);
  DeviceVec<T> dx(ref_dx.val.size());
  dx.poison();
  dc::conv1d_backward_input<T>(ctx(), s, dy.data(), w.data(), dx.data(), false);
  check_close(dx.download(), ref_dx.val, ref_dx.mag, tol, cat("conv1d_backward_input ", name));
  const auto prior_dx = random_vector<T>(ref_dx.val.size(), seed + 5);
  dx.upload(prior_dx);
  dc::conv1d_backward_input<T>(ctx(), s, dy.data(), w.data(), dx.data(), true);
  const auto ref_dx_acc = plus(ref_dx, prior_dx);
  check_close(dx.download(), ref_dx_acc.val, ref_dx_acc.mag, tol, cat("conv1d_backward_input (accumulate) ", name));

  // ---- grad-weight + bias
  ConvRef<T> ref_dw, ref_db;
  ref_conv_backward_weight(s, hx, hdy, ref_dw, ref_db);
  DeviceVec<T> dw(ref_dw.val.size()), db(ref_db.val.size());
  dw.poison();
  db.poison();
  dc::conv1d_backward_weight<T>(ctx(), s, x.data(), dy.data(), dw.data(), db.data(), false);
  const auto got_dw = dw.download();
  check_close(got_dw, ref_dw.val, ref_dw.mag, tol, cat("conv1d_backward_weight dw ", name));
  check_close(db.download(), ref_db.val, ref_db.mag, tol, cat("conv1d_backward_weight dbias ", name));
  // Deterministic: a second run gives the same bits.
  dw.poison();
  dc::conv1d_backward_weight<T>(ctx(), s, x.data(), dy.data(), dw.data(), nullptr, false);
  CHECK(dw.download() == got_dw);
  // Accumulate into both; and dbias alone.
  const auto prior_dw = random_vector<T>(ref_dw.val.size(), seed + 6);
  const auto prior_db = random_vector<T>(ref_db.val.size(), seed + 7);
  dw.upload(prior_dw);
  db.upload(prior_db);
  dc::conv1d_backward_weight<T>(ctx(), s, x.data(), dy.data(), dw.data(), db.data(), true);
  const auto ref_dw_acc = plus(ref_dw, prior_dw), ref_db_acc = plus(ref_db, prior_db);
  check_close(dw.download(), ref_dw_acc.val, ref_dw_acc.mag, tol, cat("conv1d_backward_weight dw (accumulate) ", name));
  check_close(db.download(), ref_db_acc.val, ref_db_acc.mag, tol, cat("conv1d_backward_weight dbias (accumulate) ", name));
  db.poison();
  dc::conv1d_backward_weight<T>(ctx(), s, x.data(), dy.data(), nullptr, db.data(), false);
  check_close(db.download(), ref_db.val, ref_db.mag, tol, cat("conv1d_backward_weight dbias only ", name));
}

TEST_CASE("conv1d forward, grad-input and grad-weight match the double reference at awkward sizes", "[cuda][conv1d]") {
  using P = distill::Padding;
  const std::vector<ConvCase> cases{
      {1, 1, 1, 1, 1, P::Same, 1},     // everything 1
      {1, 1, 3, 5, 8, P::Same, 1},     // L < k, even k (3 left, 4 right), Cin = 1
      {1, 1, 2, 1, 8, P::Same, 1},     // L = 1 with k = 8
      {2, 3, 5, 37, 7, P::Same, 1},    // odd k
      {2, 5, 70, 130, 8, P::Same, 1},  // Cout and L just past one tile (64 channels, 128 positions)
      {1, 40, 9, 33, 5, P::Same, 2},   // several input-channel chunks, dilation 2
      {2, 4, 6, 20, 3, P::Valid, 1},   // 'valid'
      {3, 33, 31, 9, 1, P::Same, 1},   // 1x1
      {1, 2, 17, 300, 4, P::Same, 3},  // small Cin, two small-Cin time tiles, even k with dilation
      {2, 6, 3, 3, 9, P::Same, 1},     // L < k, odd k, Cin > 4
      {1, 9, 66, 70, 8, P::Valid, 1},  // grad-weight columns (9*8 = 72) past one 64-column tile
  };
  std::uint64_t seed = 100;
  for (const auto& c : cases) {
    SECTION(describe(c)) { check_conv_case<float>(c, seed); }
    seed += 10;
  }
}

TEST_CASE("conv1d in double precision", "[cuda][conv1d]") {
  using P = distill::Padding;
  check_conv_case<double>({2, 3, 5, 37, 8, P::Same, 1}, 900);
  check_conv_case<double>({1, 18, 7, 19, 3, P::Valid, 2}, 910);
}

TEST_CASE("conv1d preconditions are checked with messages naming the values", "[cuda][conv1d]") {
  DeviceVec<float> buf(64);
  distill::Conv1dGeometry s = distill::conv1d_geometry(1, 2, 2, 8, 3, {distill::Padding::Same});
  s.Lout = 2;  // length 8, k 3, pad_left 1 -> implied pad_right = 2 - 8 - 1 + 2 = -5
  CHECK_THROWS_WITH(dc::conv1d_forward<float>(ctx(), s, buf.data(), buf.data(), nullptr, buf.data()),
                    Catch::Contains("negative right padding") && Catch::Contains("out_length 2"));
  CHECK_THROWS_WITH(distill::conv1d_geometry(1, 1, 1, 4, 8, {distill::Padding::Valid}),
                    Catch::Contains("'valid' padding needs L >=") && Catch::Contains("L=4"));
  distill::Conv1dGeometry small = distill::conv1d_geometry(1, 5, 2, 8, 3, {distill::Padding::Same});
  CHECK_THROWS_WITH(dc::conv1d_forward<float>(ctx(), small, buf.data(), buf.data(), nullptr, buf.data(), false,
                                              dc::Conv1dAlgo::SmallCin),
                    Catch::Contains("small-Cin kernel handles 1..4 input channels, got 5"));
  distill::Conv1dGeometry huge = distill::conv1d_geometry(1, 1, 1, 8, 4000, {distill::Padding::Same});
  CHECK_THROWS_WITH(dc::conv1d_forward<float>(ctx(), huge, buf.data(), buf.data(), nullptr, buf.data(), false,
                                              dc::Conv1dAlgo::General),
                    Catch::Contains("bytes of shared memory") && Catch::Contains("kernel 4000"));
  // An empty batch is a no-op; grad-weight of an empty batch is zero.
  const distill::Conv1dGeometry empty = distill::conv1d_geometry(0, 2, 3, 5, 3, {distill::Padding::Same});
  DeviceVec<float> dw(2 * 3 * 3), db(3);
  dw.poison();
  db.poison();
  dc::conv1d_forward<float>(ctx(), empty, nullptr, buf.data(), nullptr, nullptr);
  dc::conv1d_backward_input<float>(ctx(), empty, nullptr, buf.data(), nullptr, false);
  dc::conv1d_backward_weight<float>(ctx(), empty, nullptr, nullptr, dw.data(), db.data(), false);
  for (float v : dw.download()) CHECK(v == 0.0f);
  for (float v : db.download()) CHECK(v == 0.0f);
  CHECK(distill::conv1d_geometry(2, 3, 4, 10, 8, {distill::Padding::Same}).pad_left == 3);   // PyTorch: 3 left, 4 right
  CHECK(distill::conv1d_geometry(2, 3, 4, 10, 8, {distill::Padding::Same}).pad_right == 4);
  CHECK(distill::conv1d_geometry(2, 3, 4, 10, 5, {distill::Padding::Same, 3}).pad_left == 6);
  CHECK(distill::conv1d_geometry(2, 3, 4, 10, 5, {distill::Padding::Valid, 2}).Lout == 2);
}

// =================================================================================================================
// elementwise
// =================================================================================================================
TEST_CASE("elementwise kernels: fill, scale, axpy, add, sub, mul, accumulate_product, relu, add_bias", "[cuda][elementwise]") {
  for (std::size_t n : {std::size_t(1), std::size_t(37), std::size_t(5000)}) {
    SECTION(cat("n = ", n)) {
      const auto ha = random_vector<float>(n, 1 + n), hb = random_vector<float>(n, 2 + n), hy = random_vector<float>(n, 3 + n);
      DeviceVec<float> a(ha), b(hb), y(n);
      std::vector<double> ref(n);
      auto run = [&](const char* what, auto&& call, auto&& expect, bool poison = true) {
        if (poison) y.poison();
        else y.upload(hy);
        call();
        for (std::size_t i = 0; i < n; ++i) ref[i] = expect(i);
        check_close(y.download(), ref, 1e-6, what);
      };
      const index_t N = static_cast<index_t>(n);
      run("fill", [&] { dc::fill<float>(ctx(), y.data(), 2.5f, N); }, [&](std::size_t) { return 2.5; });
      run("scale", [&] { dc::scale<float>(ctx(), y.data(), a.data(), -3.0f, N); }, [&](std::size_t i) { return -3.0 * ha[i]; });
      run("axpy", [&] { dc::axpy<float>(ctx(), y.data(), a.data(), 0.5f, N); }, [&](std::size_t i) { return double(hy[i]) + 0.5 * ha[i]; }, false);
      run("add", [&] { dc::add<float>(ctx(), y.data(), a.data(), b.data(), N); }, [&](std::size_t i) { return double(ha[i]) + hb[i]; });
      run("sub", [&] { dc::sub<float>(ctx(), y.data(), a.data(), b.data(), N); }, [&](std::size_t i) { return double(ha[i]) - hb[i]; });
      run("mul", [&] { dc::mul<float>(ctx(), y.data(), a.data(), b.data(), N); }, [&](std::size_t i) { return double(ha[i]) * hb[i]; });
      run("accumulate_product", [&] { dc::accumulate_product<float>(ctx(), y.data(), a.data(), b.data(), N); },
          [&](std::size_t i) { return double(hy[i]) + double(ha[i]) * hb[i]; }, false);
      run("relu_forward", [&] { dc::relu_forward<float>(ctx(), y.data(), a.data(), N); }, [&](std::size_t i) { return ha[i] > 0 ? double(ha[i]) : 0.0; });
      // relu backward from the forward output: y_fwd = relu(a), dy = b; exact zeros included.
      std::vector<float> yf(n);
      for (std::size_t i = 0; i < n; ++i) yf[i] = (i % 5 == 0) ? 0.0f : std::max(ha[i], 0.0f);
      DeviceVec<float> yfwd(yf);
      run("relu_backward", [&] { dc::relu_backward<float>(ctx(), y.data(), yfwd.data(), b.data(), N, false); },
          [&](std::size_t i) { return yf[i] > 0 ? double(hb[i]) : 0.0; });
      run("relu_backward (accumulate)", [&] { dc::relu_backward<float>(ctx(), y.data(), yfwd.data(), b.data(), N, true); },
          [&](std::size_t i) { return double(hy[i]) + (yf[i] > 0 ? double(hb[i]) : 0.0); }, false);
      // In place: y = relu(y).
      y.upload(hy);
      dc::relu_forward<float>(ctx(), y.data(), y.data(), N);
      for (std::size_t i = 0; i < n; ++i) ref[i] = std::max(double(hy[i]), 0.0);
      check_close(y.download(), ref, 1e-7, "relu_forward in place");
    }
  }
  SECTION("add_bias over [outer, channels, inner]") {
    const index_t outer = 3, channels = 5, inner = 7;
    const auto hy = random_vector<float>(static_cast<std::size_t>(outer * channels * inner), 11);
    const auto hbias = random_vector<float>(static_cast<std::size_t>(channels), 12);
    DeviceVec<float> y(hy), bias(hbias);
    dc::add_bias<float>(ctx(), y.data(), bias.data(), outer, channels, inner);
    std::vector<double> ref(hy.size());
    for (index_t i = 0; i < outer * channels * inner; ++i) ref[static_cast<std::size_t>(i)] = double(hy[static_cast<std::size_t>(i)]) + hbias[static_cast<std::size_t>((i / inner) % channels)];
    check_close(y.download(), ref, 1e-6, "add_bias");
  }
  SECTION("fill for integer tensors and DeviceOps<Cuda>") {
    auto t = ctx().empty<std::int64_t, 2>({3, 4});
    distill::DeviceOps<Cuda>::fill(ctx(), t, std::int64_t(-7));
    const auto h = distill::to_host(ctx(), t);
    for (auto v : h) CHECK(v == -7);
    auto z = distill::DeviceOps<Cuda>::zeros<float, 2>(ctx(), {2, 3});
    distill::HostTensor<float, 2> one({2, 3});
    one.fill(1.5f);
    auto d = distill::to_device(ctx(), one);
    distill::DeviceOps<Cuda>::accumulate(ctx(), z, d);
    distill::DeviceOps<Cuda>::accumulate(ctx(), z, d);
    const auto hz = distill::DeviceOps<Cuda>::to_host(ctx(), z);
    for (auto v : hz) CHECK(v == 3.0f);
    auto wrong = ctx().zeros<float, 2>({3, 2});
    CHECK_THROWS_WITH(distill::DeviceOps<Cuda>::accumulate(ctx(), wrong, d), Catch::Contains("[3, 2]") && Catch::Contains("[2, 3]"));
  }
}

// =================================================================================================================
// reductions and pooling
// =================================================================================================================
TEST_CASE("reductions: sum, sum_axis0, sum_axis1 are correct and deterministic", "[cuda][reduce]") {
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(1000), std::size_t(40000)}) {
    SECTION(cat("sum n = ", n)) {
      const auto hx = random_vector<float>(n, 50 + n);
      DeviceVec<float> x(std::max<std::size_t>(n, 1));
      if (n) x.upload(hx);
      double ref = 0, mag = 0;
      for (auto v : hx) {
        ref += v;
        mag += std::fabs(v);
      }
      DeviceVec<float> out(1);
      out.poison();
      dc::sum<float>(ctx(), x.data(), static_cast<index_t>(n), out.data(), 0.5f, false);
      check_close(out.download(), {0.5 * ref}, {0.5 * mag}, 1e-6, "sum");
      out.upload({2.0f});
      dc::sum<float>(ctx(), x.data(), static_cast<index_t>(n), out.data(), 1.0f, true);
      check_close(out.download(), {2.0 + ref}, {2.0 + mag}, 1e-6, "sum (accumulate)");
      const double a = dc::sum_to_host<float>(ctx(), x.data(), static_cast<index_t>(n));
      const double b = dc::sum_to_host<float>(ctx(), x.data(), static_cast<index_t>(n));
      CHECK(a == b);
      CHECK(std::fabs(a - ref) <= 1e-6 * (mag + 1));
    }
  }
  for (auto [rows, cols] : {std::pair<index_t, index_t>{1, 1}, {3, 5}, {70, 300}, {9, 1}}) {
    SECTION(cat("axis sums ", rows, "x", cols)) {
      const auto hx = random_vector<float>(static_cast<std::size_t>(rows * cols), 77 + rows);
      DeviceVec<float> x(hx), c0(static_cast<std::size_t>(cols)), c1(static_cast<std::size_t>(rows));
      std::vector<double> r0(static_cast<std::size_t>(cols)), m0(r0.size()), r1(static_cast<std::size_t>(rows)), m1(r1.size());
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) {
          const double v = hx[static_cast<std::size_t>(i * cols + j)];
          r0[static_cast<std::size_t>(j)] += 2 * v;
          m0[static_cast<std::size_t>(j)] += 2 * std::fabs(v);
          r1[static_cast<std::size_t>(i)] += 2 * v;
          m1[static_cast<std::size_t>(i)] += 2 * std::fabs(v);
        }
      c0.poison();
      c1.poison();
      dc::sum_axis0<float>(ctx(), x.data(), rows, cols, c0.data(), 2.0f, false);
      dc::sum_axis1<float>(ctx(), x.data(), rows, cols, c1.data(), 2.0f, false);
      check_close(c0.download(), r0, m0, 1e-6, "sum_axis0");
      check_close(c1.download(), r1, m1, 1e-6, "sum_axis1");
      const auto p0 = random_vector<float>(r0.size(), 5), p1 = random_vector<float>(r1.size(), 6);
      c0.upload(p0);
      c1.upload(p1);
      dc::sum_axis0<float>(ctx(), x.data(), rows, cols, c0.data(), 2.0f, true);
      dc::sum_axis1<float>(ctx(), x.data(), rows, cols, c1.data(), 2.0f, true);
      for (std::size_t j = 0; j < r0.size(); ++j) r0[j] += p0[j];
      for (std::size_t i = 0; i < r1.size(); ++i) r1[i] += p1[i];
      check_close(c0.download(), r0, m0, 1e-6, "sum_axis0 (accumulate)");
      check_close(c1.download(), r1, m1, 1e-6, "sum_axis1 (accumulate)");
    }
  }
}

TEST_CASE("global average pooling forward and backward", "[cuda][pooling]") {
  for (auto [B, C, L] : {std::tuple<index_t, index_t, index_t>{1, 1, 1}, {2, 3, 5}, {3, 9, 70}}) {
    SECTION(cat("B", B, " C", C, " L", L)) {
      const auto hx = random_vector<float>(static_cast<std::size_t>(B * C * L), 300 + L);
      const auto hdy = random_vector<float>(static_cast<std::size_t>(B * C), 301 + L);
      DeviceVec<float> x(hx), y(static_cast<std::size_t>(B * C)), dy(hdy), dx(hx.size());
      std::vector<double> ry(static_cast<std::size_t>(B * C)), my(ry.size()), rdx(hx.size());
      for (index_t r = 0; r < B * C; ++r)
        for (index_t t = 0; t < L; ++t) {
          ry[static_cast<std::size_t>(r)] += double(hx[static_cast<std::size_t>(r * L + t)]) / double(L);
          my[static_cast<std::size_t>(r)] += std::fabs(double(hx[static_cast<std::size_t>(r * L + t)])) / double(L);
          rdx[static_cast<std::size_t>(r * L + t)] = double(hdy[static_cast<std::size_t>(r)]) / double(L);
        }
      y.poison();
      dc::global_avg_pool_forward<float>(ctx(), x.data(), y.data(), B, C, L);
      check_close(y.download(), ry, my, 1e-6, "global_avg_pool_forward");
      dx.poison();
      dc::global_avg_pool_backward<float>(ctx(), dy.data(), dx.data(), B, C, L, false);
      check_close(dx.download(), rdx, 1e-6, "global_avg_pool_backward");
      dx.upload(hx);
      dc::global_avg_pool_backward<float>(ctx(), dy.data(), dx.data(), B, C, L, true);
      for (std::size_t i = 0; i < rdx.size(); ++i) rdx[i] += hx[i];
      check_close(dx.download(), rdx, 1e-6, "global_avg_pool_backward (accumulate)");
    }
  }
}

// =================================================================================================================
// batch norm
// =================================================================================================================
struct BnRef {
  std::vector<double> y, mean, invstd, var_unbiased;
};
template <class T>
BnRef ref_bn_train(index_t B, index_t C, index_t L, const std::vector<T>& x, const std::vector<T>* g,
                   const std::vector<T>* bt, double eps) {
  BnRef r;
  r.y.resize(x.size());
  const double n = double(B * L);
  for (index_t c = 0; c < C; ++c) {
    double s = 0;
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < L; ++t) s += x[static_cast<std::size_t>((b * C + c) * L + t)];
    const double mean = s / n;
    double q = 0;
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < L; ++t) q += std::pow(x[static_cast<std::size_t>((b * C + c) * L + t)] - mean, 2);
    const double var = q / n, invstd = 1 / std::sqrt(var + eps);
    r.mean.push_back(mean);
    r.invstd.push_back(invstd);
    r.var_unbiased.push_back(q / (n - 1));
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < L; ++t) {
        const auto i = static_cast<std::size_t>((b * C + c) * L + t);
        r.y[i] = (x[i] - mean) * invstd * (g ? double((*g)[static_cast<std::size_t>(c)]) : 1.0) +
                 (bt ? double((*bt)[static_cast<std::size_t>(c)]) : 0.0);
      }
  }
  return r;
}

TEST_CASE("batch norm training and evaluation, forward and backward", "[cuda][batchnorm]") {
  const double eps = 1e-5, momentum = 0.1;
  // Up to 2048 values per channel one warp reduces a channel (8 per block; C = 5 and 11 leave warps idle), above
  // that a whole block does (B3 C3 L700).
  for (auto [B, C, L] : {std::tuple<index_t, index_t, index_t>{1, 1, 2}, {2, 3, 5}, {4, 2, 1}, {3, 5, 33}, {2, 11, 9},
                         {3, 3, 700}}) {
    SECTION(cat("B", B, " C", C, " L", L)) {
      const std::size_t n = static_cast<std::size_t>(B * C * L), nc = static_cast<std::size_t>(C);
      const dc::BatchNormShape s{B, C, L};
      const auto hx = random_vector<float>(n, 400 + n, -2, 3), hdy = random_vector<float>(n, 401 + n);
      const auto hg = random_vector<float>(nc, 402, 0.5, 1.5), hbeta = random_vector<float>(nc, 403);
      const auto hrm = random_vector<float>(nc, 404), hrv = random_vector<float>(nc, 405, 0.5, 2.0);
      DeviceVec<float> x(hx), dy(hdy), g(hg), beta(hbeta), rm(hrm), rv(hrv), y(n), mean(nc), invstd(nc);
      y.poison();
      mean.poison();
      invstd.poison();
      dc::batch_norm_forward_train<float>(ctx(), s, x.data(), g.data(), beta.data(), y.data(), mean.data(), invstd.data(),
                                          rm.data(), rv.data(), momentum, eps);
      const BnRef r = ref_bn_train(B, C, L, hx, &hg, &hbeta, eps);
      check_close(y.download(), r.y, 2e-5, "batch_norm_forward_train y");
      check_close(mean.download(), r.mean, 1e-6, "save_mean");
      check_close(invstd.download(), r.invstd, 1e-5, "save_invstd");
      std::vector<double> rrm(nc), rrv(nc);
      for (std::size_t c = 0; c < nc; ++c) {
        rrm[c] = (1 - momentum) * hrm[c] + momentum * r.mean[c];
        rrv[c] = (1 - momentum) * hrv[c] + momentum * r.var_unbiased[c];
      }
      check_close(rm.download(), rrm, 1e-6, "running_mean");
      check_close(rv.download(), rrv, 1e-6, "running_var (unbiased update)");

      // Affine-free (gamma, beta null), no running statistics.
      y.poison();
      dc::batch_norm_forward_train<float>(ctx(), s, x.data(), nullptr, nullptr, y.data(), mean.data(), invstd.data(),
                                          nullptr, nullptr, momentum, eps);
      check_close(y.download(), ref_bn_train(B, C, L, hx, static_cast<const std::vector<float>*>(nullptr),
                                             static_cast<const std::vector<float>*>(nullptr), eps).y,
                  2e-5, "batch_norm_forward_train without affine");

      // Training backward (from the saved statistics of the affine run).
      dc::batch_norm_forward_train<float>(ctx(), s, x.data(), g.data(), beta.data(), y.data(), mean.data(), invstd.data(),
                                          nullptr, nullptr, momentum, eps);
      std::vector<double> rdx(n), rdg(nc), rdb(nc), mdx(n);
      const double cnt = double(B * L);
      for (index_t c = 0; c < C; ++c) {
        double sdy = 0, sdyx = 0;
        for (index_t b = 0; b < B; ++b)
          for (index_t t = 0; t < L; ++t) {
            const auto i = static_cast<std::size_t>((b * C + c) * L + t);
            sdy += hdy[i];
            sdyx += hdy[i] * (hx[i] - r.mean[static_cast<std::size_t>(c)]) * r.invstd[static_cast<std::size_t>(c)];
          }
        rdg[static_cast<std::size_t>(c)] = sdyx;
        rdb[static_cast<std::size_t>(c)] = sdy;
        for (index_t b = 0; b < B; ++b)
          for (index_t t = 0; t < L; ++t) {
            const auto i = static_cast<std::size_t>((b * C + c) * L + t);
            const double xhat = (hx[i] - r.mean[static_cast<std::size_t>(c)]) * r.invstd[static_cast<std::size_t>(c)];
            const double k = hg[static_cast<std::size_t>(c)] * r.invstd[static_cast<std::size_t>(c)];
            rdx[i] = k * (hdy[i] - sdy / cnt - xhat * sdyx / cnt);
            mdx[i] = std::fabs(k) * (std::fabs(hdy[i]) + std::fabs(sdy / cnt) + std::fabs(xhat * sdyx / cnt));
          }
      }
      DeviceVec<float> dx(n), dg(nc), db(nc);
      dx.poison();
      dg.poison();
      db.poison();
      dc::batch_norm_backward_train<float>(ctx(), s, x.data(), dy.data(), g.data(), mean.data(), invstd.data(), dx.data(),
                                           dg.data(), db.data(), false);
      check_close(dx.download(), rdx, mdx, 1e-4, "batch_norm_backward_train dx");
      check_close(dg.download(), rdg, 1e-5, "batch_norm_backward_train dgamma");
      check_close(db.download(), rdb, 1e-5, "batch_norm_backward_train dbeta");
      const auto pdx = random_vector<float>(n, 7), pdg = random_vector<float>(nc, 8), pdb = random_vector<float>(nc, 9);
      dx.upload(pdx);
      dg.upload(pdg);
      db.upload(pdb);
      dc::batch_norm_backward_train<float>(ctx(), s, x.data(), dy.data(), g.data(), mean.data(), invstd.data(), dx.data(),
                                           dg.data(), db.data(), true);
      auto rdx2 = rdx, rdg2 = rdg, rdb2 = rdb;
      for (std::size_t i = 0; i < n; ++i) rdx2[i] += pdx[i];
      for (std::size_t c = 0; c < nc; ++c) {
        rdg2[c] += pdg[c];
        rdb2[c] += pdb[c];
      }
      check_close(dx.download(), rdx2, mdx, 1e-4, "batch_norm_backward_train dx (accumulate)");
      check_close(dg.download(), rdg2, 1e-5, "batch_norm_backward_train dgamma (accumulate)");
      check_close(db.download(), rdb2, 1e-5, "batch_norm_backward_train dbeta (accumulate)");

      // Evaluation forward and backward with the running statistics.
      rm.upload(hrm);
      rv.upload(hrv);
      y.poison();
      dc::batch_norm_forward_eval<float>(ctx(), s, x.data(), g.data(), beta.data(), rm.data(), rv.data(), y.data(), eps);
      std::vector<double> ry(n), redx(n), redg(nc, 0.0), redb(nc, 0.0);
      for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<std::size_t>((static_cast<index_t>(i) / L) % C);
        const double inv = 1 / std::sqrt(double(hrv[c]) + eps);
        ry[i] = (hx[i] - double(hrm[c])) * inv * hg[c] + hbeta[c];
        redx[i] = hdy[i] * hg[c] * inv;
        redg[c] += hdy[i] * (hx[i] - double(hrm[c])) * inv;
        redb[c] += hdy[i];
      }
      check_close(y.download(), ry, 2e-5, "batch_norm_forward_eval");
      dx.poison();
      dg.poison();
      db.poison();
      dc::batch_norm_backward_eval<float>(ctx(), s, x.data(), dy.data(), g.data(), rm.data(), rv.data(), eps, dx.data(),
                                          dg.data(), db.data(), false);
      check_close(dx.download(), redx, 2e-5, "batch_norm_backward_eval dx");
      check_close(dg.download(), redg, 2e-5, "batch_norm_backward_eval dgamma");
      check_close(db.download(), redb, 2e-5, "batch_norm_backward_eval dbeta");
      dx.poison();
      dc::batch_norm_backward_eval<float>(ctx(), s, x.data(), dy.data(), g.data(), rm.data(), rv.data(), eps, dx.data(),
                                          nullptr, nullptr, false);
      check_close(dx.download(), redx, 2e-5, "batch_norm_backward_eval dx only");
    }
  }
  SECTION("one value per channel is rejected in training") {
    DeviceVec<float> buf(8);
    CHECK_THROWS_WITH(dc::batch_norm_forward_train<float>(ctx(), dc::BatchNormShape{1, 3, 1}, buf.data(), nullptr, nullptr,
                                                          buf.data(), buf.data(), buf.data(), nullptr, nullptr, 0.1, 1e-5),
                      Catch::Contains("more than 1 value per channel") && Catch::Contains("[1, 3, 1]"));
  }
}

// =================================================================================================================
// optimizers
// =================================================================================================================
TEST_CASE("SGD (momentum, dampening, Nesterov, weight decay) and Adam/AdamW follow PyTorch's rules", "[cuda][optim]") {
  const std::size_t n = 333;
  const auto p0 = random_vector<float>(n, 500), g1 = random_vector<float>(n, 501), g2 = random_vector<float>(n, 502);
  struct SgdVariant {
    double momentum, dampening, wd;
    bool nesterov;
  };
  for (const auto v : {SgdVariant{0, 0, 0, false}, SgdVariant{0.9, 0, 0, false}, SgdVariant{0.9, 0.1, 1e-2, false},
                       SgdVariant{0.9, 0, 5e-4, true}}) {
    SECTION(cat("SGD momentum ", v.momentum, " dampening ", v.dampening, " wd ", v.wd, v.nesterov ? " nesterov" : "")) {
      DeviceVec<float> p(p0), buf(n), ga(g1), gb(g2);
      buf.poison();  // the first step must not read the buffer
      std::vector<double> rp(p0.begin(), p0.end()), rbuf(n);
      for (int step = 0; step < 2; ++step) {
        const auto& hg = step == 0 ? g1 : g2;
        dc::SgdConfig c;
        c.lr = 0.1;
        c.momentum = v.momentum;
        c.dampening = v.dampening;
        c.weight_decay = v.wd;
        c.nesterov = v.nesterov;
        c.first_step = step == 0;
        dc::sgd_step<float>(ctx(), p.data(), (step == 0 ? ga : gb).data(), v.momentum != 0 ? buf.data() : nullptr,
                            static_cast<index_t>(n), c);
        for (std::size_t i = 0; i < n; ++i) {
          double d = hg[i] + v.wd * rp[i];
          if (v.momentum != 0) {
            rbuf[i] = step == 0 ? d : v.momentum * rbuf[i] + (1 - v.dampening) * d;
            d = v.nesterov ? d + v.momentum * rbuf[i] : rbuf[i];
          }
          rp[i] -= 0.1 * d;
        }
      }
      check_close(p.download(), rp, 1e-6, "sgd_step param");
      if (v.momentum != 0) check_close(buf.download(), rbuf, 1e-6, "sgd_step momentum buffer");
    }
  }
  for (bool decoupled : {false, true}) {
    SECTION(decoupled ? "AdamW" : "Adam") {
      DeviceVec<float> p(p0), m(n), v(n), ga(g1), gb(g2);
      dc::fill<float>(ctx(), m.data(), 0.0f, static_cast<index_t>(n));
      dc::fill<float>(ctx(), v.data(), 0.0f, static_cast<index_t>(n));
      std::vector<double> rp(p0.begin(), p0.end()), rm(n, 0.0), rv(n, 0.0);
      const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
      for (int step = 1; step <= 3; ++step) {
        const auto& hg = step == 2 ? g2 : g1;
        dc::AdamConfig c;
        c.lr = lr;
        c.beta1 = b1;
        c.beta2 = b2;
        c.eps = eps;
        c.weight_decay = wd;
        c.decoupled_weight_decay = decoupled;
        c.step = step;
        dc::adam_step<float>(ctx(), p.data(), (step == 2 ? gb : ga).data(), m.data(), v.data(), static_cast<index_t>(n), c);
        for (std::size_t i = 0; i < n; ++i) {
          double g = hg[i];
          if (decoupled) rp[i] *= 1 - lr * wd;
          else g += wd * rp[i];
          rm[i] = b1 * rm[i] + (1 - b1) * g;
          rv[i] = b2 * rv[i] + (1 - b2) * g * g;
          const double denom = std::sqrt(rv[i]) / std::sqrt(1 - std::pow(b2, step)) + eps;
          rp[i] -= lr / (1 - std::pow(b1, step)) * rm[i] / denom;
        }
      }
      check_close(p.download(), rp, 1e-5, "adam_step param");
      check_close(m.download(), rm, 1e-5, "adam_step exp_avg");
      check_close(v.download(), rv, 1e-5, "adam_step exp_avg_sq");
    }
  }
  SECTION("invalid configurations are rejected") {
    DeviceVec<float> p(4);
    dc::SgdConfig c;
    c.momentum = 0.9;
    CHECK_THROWS_WITH(dc::sgd_step<float>(ctx(), p.data(), p.data(), nullptr, 4, c), Catch::Contains("needs a momentum buffer"));
    c.nesterov = true;
    c.dampening = 0.5;
    CHECK_THROWS_WITH(dc::sgd_step<float>(ctx(), p.data(), p.data(), p.data(), 4, c), Catch::Contains("Nesterov"));
    dc::AdamConfig a;
    a.step = 0;
    CHECK_THROWS_WITH(dc::adam_step<float>(ctx(), p.data(), p.data(), p.data(), p.data(), 4, a), Catch::Contains("1-based"));
  }
}

// =================================================================================================================
// GEMM (cuBLAS; the stand-in under the emulator)
// =================================================================================================================
template <class T>
void check_gemm(dc::Trans ta, dc::Trans tb, index_t M, index_t N, index_t K, T alpha, T beta, index_t pad) {
  // Row strides larger than the rows by `pad` exercise lda/ldb/ldc.
  const index_t a_rows = ta == dc::Trans::N ? M : K, a_cols = ta == dc::Trans::N ? K : M;
  const index_t b_rows = tb == dc::Trans::N ? K : N, b_cols = tb == dc::Trans::N ? N : K;
  const index_t lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
  const auto hA = random_vector<T>(static_cast<std::size_t>(a_rows * lda), 600 + M);
  const auto hB = random_vector<T>(static_cast<std::size_t>(b_rows * ldb), 601 + N);
  auto hC = random_vector<T>(static_cast<std::size_t>(M * ldc), 602 + K);
  DeviceVec<T> A(hA), B(hB), C(hC.size());
  if (beta == T(0)) {
    C.poison();  // beta == 0: C must not be read
    for (index_t i = 0; i < M; ++i)
      for (index_t j = N; j < ldc; ++j) hC[static_cast<std::size_t>(i * ldc + j)] = std::numeric_limits<T>::quiet_NaN();
  } else {
    C.upload(hC);
  }
  dc::gemm<T>(ctx(), ta, tb, M, N, K, alpha, A.data(), B.data(), beta, C.data(), lda, ldb, ldc);
  const auto got = C.download();
  std::vector<T> got_core;
  std::vector<double> ref, mag;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double acc = 0, m = 0;
      for (index_t p = 0; p < K; ++p) {
        const double a = ta == dc::Trans::N ? hA[static_cast<std::size_t>(i * lda + p)] : hA[static_cast<std::size_t>(p * lda + i)];
        const double b = tb == dc::Trans::N ? hB[static_cast<std::size_t>(p * ldb + j)] : hB[static_cast<std::size_t>(j * ldb + p)];
        acc += a * b;
        m += std::fabs(a * b);
      }
      const double c0 = beta == T(0) ? 0.0 : double(hC[static_cast<std::size_t>(i * ldc + j)]);
      ref.push_back(double(alpha) * acc + double(beta) * c0);
      mag.push_back(std::fabs(double(alpha)) * m + std::fabs(double(beta) * c0));
      got_core.push_back(got[static_cast<std::size_t>(i * ldc + j)]);
    }
  std::ostringstream what;
  what << "gemm " << (ta == dc::Trans::N ? "N" : "T") << (tb == dc::Trans::N ? "N" : "T") << " M" << M << " N" << N << " K" << K;
  check_close(got_core, ref, mag, rel_tol<T>(), what.str());
  // Padding columns of C are untouched.
  for (index_t i = 0; i < M; ++i)
    for (index_t j = N; j < ldc; ++j) {
      const T g = got[static_cast<std::size_t>(i * ldc + j)], h = hC[static_cast<std::size_t>(i * ldc + j)];
      CHECK(((std::isnan(g) && std::isnan(h)) || g == h));
    }
}

TEST_CASE("GEMM: the row-major mapping onto cuBLAS, every transpose combination", "[cuda][gemm]") {
  for (auto ta : {dc::Trans::N, dc::Trans::T})
    for (auto tb : {dc::Trans::N, dc::Trans::T}) {
      check_gemm<float>(ta, tb, 3, 5, 7, 1.0f, 0.0f, 0);
      check_gemm<float>(ta, tb, 33, 17, 65, -0.5f, 2.0f, 3);
      check_gemm<double>(ta, tb, 1, 9, 4, 2.0, 0.5, 1);
    }
  check_gemm<float>(dc::Trans::N, dc::Trans::T, 4, 3, 0, 1.0f, 0.5f, 0);  // K = 0: C = beta C
}

TEST_CASE("strided batched GEMM", "[cuda][gemm]") {
  const index_t M = 4, N = 6, K = 5, batch = 3;
  const auto hA = random_vector<float>(static_cast<std::size_t>(batch * K * M), 700);  // each [K, M] (transposed)
  const auto hB = random_vector<float>(static_cast<std::size_t>(batch * K * N), 701);  // each [K, N]
  DeviceVec<float> A(hA), B(hB), C(static_cast<std::size_t>(batch * M * N));
  C.poison();
  dc::gemm_strided_batched<float>(ctx(), dc::Trans::T, dc::Trans::N, M, N, K, 1.0f, A.data(), K * M, B.data(), K * N,
                                  0.0f, C.data(), M * N, batch);
  std::vector<double> ref;
  for (index_t b = 0; b < batch; ++b)
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        double acc = 0;
        for (index_t p = 0; p < K; ++p)
          acc += double(hA[static_cast<std::size_t>(b * K * M + p * M + i)]) * hB[static_cast<std::size_t>(b * K * N + p * N + j)];
        ref.push_back(acc);
      }
  check_close(C.download(), ref, 1e-5, "gemm_strided_batched");
  CHECK_THROWS_WITH(dc::gemm<float>(ctx(), dc::Trans::N, dc::Trans::N, 2, 3, 4, 1.0f, A.data(), B.data(), 0.0f, C.data(), 2),
                    Catch::Contains("lda 2"));
}

// =================================================================================================================
// context, memory
// =================================================================================================================
TEST_CASE("Context<Cuda>: caching allocator, copies, device info", "[cuda][context]") {
  Context<Cuda> c{1, 3};
  CHECK(c.device() == 0);
  CHECK(c.device_info().sm_count >= 1);
  CHECK(c.emulated() == dc::emulated());
  const auto before = c.memory_stats();
  CHECK(before.device_allocations == 0);
  {
    auto a = c.zeros<float, 2>({16, 16});
    auto b = c.empty<double, 1>({100});
    CHECK(c.memory_stats().bytes_in_use >= 16 * 16 * 4 + 800);
  }
  const auto after_free = c.memory_stats();
  CHECK(after_free.bytes_in_use == 0);
  CHECK(after_free.bytes_cached > 0);
  for (int i = 0; i < 5; ++i) {  // same sizes again: served from the cache, no new device allocation
    auto a = c.zeros<float, 2>({16, 16});
    auto b = c.empty<double, 1>({100});
  }
  CHECK(c.memory_stats().device_allocations == after_free.device_allocations);
  CHECK(c.memory_stats().requests == after_free.requests + 10);
  distill::HostTensor<float, 3> h({2, 3, 4});
  for (index_t i = 0; i < h.numel(); ++i) h[i] = float(i) * 0.5f;
  auto d = distill::to_device(c, h);
  const auto back = distill::to_host(c, d);
  CHECK(back.shape() == h.shape());
  for (index_t i = 0; i < h.numel(); ++i) CHECK(back[i] == h[i]);
  auto empty = c.zeros<float, 2>({0, 5});
  CHECK(empty.defined());
  CHECK(distill::to_host(c, empty).numel() == 0);
  dc::release_cached_memory(c);
  CHECK(c.memory_stats().bytes_cached == 0);
  auto pinned = dc::allocate_pinned(1024);
  CHECK(pinned != nullptr);
  const int missing = dc::device_count();  // one past the last device
  CHECK_THROWS_WITH(Context<Cuda>(1, 0, missing),
                    Catch::Contains(cat("device cuda:", missing, " is absent: ", missing, " CUDA device(s) present")));
  CHECK_THROWS_WITH(Context<Cuda>(1, 0, -1), Catch::Contains("device cuda:-1 is absent"));
  // The one line that names the device in program headers and metrics.
  const std::string described = dc::describe(c.device_info());
  CHECK_THAT(described, Catch::StartsWith("cuda:0"));
  if (c.emulated()) CHECK_THAT(described, Catch::Contains("emulated on the CPU"));
  else CHECK_THAT(described, Catch::Contains("compute capability"));
}

}  // namespace cuda_checks
