// isa: the runtime instruction-set dispatch (core/isa.hpp). Every level this CPU supports runs the raw kernels
// that are compiled per level -- conv1d's three passes, the fused losses' tile product and exponential rows --
// and is compared with a plain double-precision reference and with the other levels. Small and quick on purpose:
// CI also runs this binary, built without -march, under emulated CPUs (qemu-x86_64 -cpu qemu64: no AVX at all;
// -cpu Haswell: AVX2 + FMA without AVX-512).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/core/isa.hpp"
#include "distill/core/rng.hpp"
#include "distill/cpu/conv1d.hpp"
#include "distill/cpu/fused_losses_gemm.hpp"
#include "distill/cpu/fused_losses_simd.hpp"
#include "distill/problems/conv1d.hpp"
#include "support/compare.hpp"

using namespace distill;

namespace {

using test::random_vec;
using test::rel_err;

struct ConvOut {
  std::vector<double> y, dx, dw, db;
};

ConvOut conv_reference(const Conv1dGeometry& g, const std::vector<double>& x, const std::vector<double>& w,
                       const std::vector<double>& b, const std::vector<double>& dy) {
  ConvOut r{std::vector<double>(static_cast<std::size_t>(g.B * g.Cout * g.Lout)), std::vector<double>(x.size()),
            std::vector<double>(w.size()), std::vector<double>(b.size())};
  for (index_t n = 0; n < g.B; ++n)
    for (index_t o = 0; o < g.Cout; ++o)
      for (index_t t = 0; t < g.Lout; ++t) {
        const index_t yi = (n * g.Cout + o) * g.Lout + t;
        double acc = b[o];
        r.db[o] += dy[yi];
        for (index_t c = 0; c < g.Cin; ++c)
          for (index_t u = 0; u < g.K; ++u) {
            const index_t s = t + u * g.dilation - g.pad_left;
            if (s < 0 || s >= g.L) continue;
            const index_t xi = (n * g.Cin + c) * g.L + s, wi = (o * g.Cin + c) * g.K + u;
            acc += w[wi] * x[xi];
            r.dx[xi] += w[wi] * dy[yi];
            r.dw[wi] += x[xi] * dy[yi];
          }
        r.y[yi] = acc;
      }
  return r;
}

template <class T>
struct ConvRun {
  std::vector<T> y, dx, dw, db;
};

template <class T>
ConvRun<T> run_conv(cpu::Isa isa, const Conv1dGeometry& g, const std::vector<T>& x, const std::vector<T>& w,
                    const std::vector<T>& b, const std::vector<T>& dy) {
  const cpu::Exec ex{2, nullptr, isa};
  ConvRun<T> r{std::vector<T>(static_cast<std::size_t>(g.B * g.Cout * g.Lout)), std::vector<T>(x.size()),
               std::vector<T>(w.size()), std::vector<T>(b.size())};
  cpu::conv1d_forward<T>(ex, g, x.data(), w.data(), b.data(), r.y.data());
  cpu::conv1d_backward_input<T>(ex, g, dy.data(), w.data(), r.dx.data());
  cpu::conv1d_backward_weight<T>(ex, g, x.data(), dy.data(), r.dw.data(), r.db.data());
  return r;
}

template <class T>
void check_conv_levels(const Conv1dGeometry& g, double tol) {
  CounterRng rng(7);
  const auto x = random_vec<T>(rng, g.B * g.Cin * g.L), w = random_vec<T>(rng, g.Cout * g.Cin * g.K),
             b = random_vec<T>(rng, g.Cout), dy = random_vec<T>(rng, g.B * g.Cout * g.Lout);
  auto wide = [](const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
  const ConvOut ref = conv_reference(g, wide(x), wide(w), wide(b), wide(dy));
  std::vector<ConvRun<T>> runs;
  for (const cpu::Isa isa : cpu::supported_isas()) {
    INFO("level " << cpu::isa_name(isa) << ", Cin=" << g.Cin << " Cout=" << g.Cout << " L=" << g.L << " K=" << g.K);
    runs.push_back(run_conv<T>(isa, g, x, w, b, dy));
    const auto& r = runs.back();
    CHECK(rel_err(r.y, ref.y) < tol);
    CHECK(rel_err(r.dx, ref.dx) < tol);
    CHECK(rel_err(r.dw, ref.dw) < tol);
    CHECK(rel_err(r.db, ref.db) < tol);
  }
  // The SIMD levels run the same intrinsics in the same order: bitwise equal to each other.
  for (std::size_t i = 2; i < runs.size(); ++i) {
    CHECK(runs[i].y == runs[1].y);
    CHECK(runs[i].dx == runs[1].dx);
    CHECK(runs[i].dw == runs[1].dw);
  }
}

}  // namespace

TEST_CASE("isa: detection, names, environment override and refusals", "[isa]") {
  const auto levels = cpu::supported_isas();
  REQUIRE(!levels.empty());
  CHECK(levels.front() == cpu::Isa::portable);
  CHECK(levels.back() == cpu::best_isa());
  CHECK(cpu::parse_isa("best") == cpu::best_isa());
  for (const cpu::Isa isa : cpu::kAllIsas) {
    if (cpu::isa_supported(isa)) {
      CHECK(cpu::parse_isa(cpu::isa_name(isa)) == isa);
    } else {
      CHECK_THROWS_WITH(cpu::parse_isa(cpu::isa_name(isa)),
                        Catch::Contains("this CPU cannot run the " + std::string(cpu::isa_name(isa))));
      Context<Cpu> ctx;
      CHECK_THROWS_WITH(ctx.set_isa(isa), Catch::Contains("cannot run"));
    }
  }
  CHECK_THROWS_WITH(cpu::parse_isa("sse9", "--isa"), Catch::Contains("--isa=sse9 is not an instruction-set level"));
  Context<Cpu> ctx(2, 1);
  CHECK(ctx.isa() == cpu::default_isa());
  CHECK(cpu::exec_of(ctx).isa == ctx.isa());
  ctx.set_isa(cpu::Isa::portable);
  CHECK(cpu::exec_of(ctx).isa == cpu::Isa::portable);
  const char* env = std::getenv("DISTILL_ISA");
  INFO("DISTILL_ISA=" << (env ? env : "(unset)") << ", best level " << cpu::isa_name(cpu::best_isa()));
  if (!env) CHECK(cpu::default_isa() == cpu::best_isa());
}

TEST_CASE("isa: conv1d passes agree with the double reference at every level", "[isa][conv1d]") {
  // Full 6 x 16 tiles, partial tiles, one output row (the wide single-row kernel) and a dilated 'same' padding.
  const Conv1dGeometry shapes[] = {
      conv1d_geometry(2, 8, 24, 53, 5, {.padding = Padding::Same, .dilation = 1}),
      conv1d_geometry(3, 1, 16, 70, 8, {.padding = Padding::Same, .dilation = 1}),
      conv1d_geometry(2, 5, 1, 40, 3, {.padding = Padding::Same, .dilation = 2}),
      conv1d_geometry(1, 13, 7, 33, 3, {.padding = Padding::Valid, .dilation = 1}),
  };
  for (const auto& g : shapes) {
    check_conv_levels<float>(g, 2e-5);
    check_conv_levels<double>(g, 1e-12);
  }
}

TEST_CASE("isa: tile products of the fused losses at every level", "[isa][losses]") {
  CounterRng rng(3);
  const index_t m = 11, n = 32, K = 37;
  const auto A = random_vec<float>(rng, m * K), B = random_vec<float>(rng, K * n);
  std::vector<double> ref(static_cast<std::size_t>(m * n));
  for (index_t r = 0; r < m; ++r)
    for (index_t c = 0; c < n; ++c) {
      double s = 0;
      for (index_t k = 0; k < K; ++k) s += double(A[r * K + k]) * double(B[k * n + c]);
      ref[r * n + c] = 0.5 * s + 1.0;  // accumulate onto C = 1 with alpha = 0.5
    }
  for (const cpu::Isa isa : cpu::supported_isas()) {
    INFO("level " << cpu::isa_name(isa));
    std::vector<float> C(static_cast<std::size_t>(m * n), 1.0f);
    cpu::tile::mm_nn<float>(isa, m, n, K, A.data(), K, B.data(), n, C.data(), n, 0.5f, true);
    CHECK(rel_err(C, ref) < 1e-6);
  }
}

TEST_CASE("isa: exponential rows of the fused losses at every level", "[isa][losses]") {
  CounterRng rng(5);
  for (const index_t n : {index_t(1), index_t(7), index_t(16), index_t(45)}) {
    std::vector<float> src(static_cast<std::size_t>(n)), cj(src.size());
    for (auto& v : src) v = float(rng.uniform(-30, 5));
    for (auto& v : cj) v = float(rng.uniform(0, 1));
    const float shift = 1.5f, ci = 0.25f;
    for (const cpu::Isa isa : cpu::supported_isas()) {
      INFO("level " << cpu::isa_name(isa) << ", n = " << n);
      std::vector<float> e(src.size()), s = src, col(src.size(), 1.0f), b = src;
      cpu::simd::exp_shift(isa, e.data(), src.data(), n, shift);
      const double sum = cpu::simd::exp_row_colsum(isa, s.data(), n, shift, col.data());
      cpu::simd::exp_scale_row(isa, b.data(), n, shift, cj.data(), ci);
      // Tolerance: src[j] - shift is rounded to float first (relative error up to |x| * 2^-24 in the result).
      double ref_sum = 0;
      for (index_t j = 0; j < n; ++j) {
        const double ej = std::exp(double(src[j]) - double(shift));
        ref_sum += ej;
        CHECK(e[j] == Approx(ej).epsilon(1e-5).margin(1e-30));
        CHECK(s[j] == Approx(ej).epsilon(1e-5).margin(1e-30));
        CHECK(col[j] == Approx(1.0 + ej).epsilon(1e-6));
        CHECK(b[j] == Approx(ej * (double(cj[j]) + double(ci))).epsilon(1e-5).margin(1e-30));
      }
      CHECK(sum == Approx(ref_sum).epsilon(1e-5));
    }
  }
}
