// tests/test_cuda_mcl.cpp -- issue 15: a few MCL x2 training steps on the Cuda device (SIMT emulator) give the same
// losses, loss terms and parameters as on the Cpu device. Double precision, two ResNet1D(4) networks with Embed
// heads, B = 8 series of length 12 in 3 classes (one class with a single member: an anchor without a positive),
// SGD with Nesterov momentum and weight decay. The Cuda cohort is built with another seed and receives the Cpu
// weights through a checkpoint.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/device_compare.hpp"
#include "distill/models/mcl.hpp"
#include "distill/optim/sgd.hpp"

using namespace distill;
using device_compare::gpu;

namespace {
constexpr index_t kB = 8, kL = 12;

template <class D>
std::vector<double> values_of(const ParamList<double, D>& ps) {
  std::vector<double> out;
  for (const auto& p : ps) {
    std::vector<double> v(static_cast<std::size_t>(p.numel()));
    if constexpr (std::is_same_v<D, Cuda>)
      cuda::copy_to_host(p.ctx(), v.data(), p.data(), sizeof(double) * v.size());
    else
      std::memcpy(v.data(), p.data(), sizeof(double) * v.size());
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}
}  // namespace

TEST_CASE("MCL x2: training steps on the emulated Cuda device equal the Cpu device", "[mcl][cuda]") {
  Context<Cpu> cctx{1, 2024};
  Context<Cuda>& gctx = gpu();
  models::Cohort<double, Cpu> cc;
  models::Cohort<double, Cuda> gc;
  for (int m = 0; m < 2; ++m) {
    cc.add_network<4>(cctx, 3);
    gc.add_network<4>(gctx, 3);
  }
  {
    io::Checkpoint ck;
    cc.put(ck);
    gc.load(ck);
  }
  REQUIRE(values_of(cc.trainable()) == values_of(gc.trainable()));
  const optim::SgdOptions so{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true};
  optim::SGD<double, Cpu> copt{cc.trainable(), so};
  optim::SGD<double, Cuda> gopt{gc.trainable(), so};
  const std::vector<int> y{0, 1, 0, 1, 2, 0, 1, 0};  // class 2: one member, no positive
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    const auto host = device_compare::host_random<double>(Shape<3>{kB, 1, kL}, 100 + step, -2, 2);
    Var<double, 3, Cpu> xc(cctx, host.clone(), false);
    Var<double, 3, Cuda> xg(gctx, nn::detail::make_buffer(gctx, host.clone()), false);
    auto lc = cc.loss(xc, y);
    auto lg = gc.loss(xg, y);
    const double vc = lc.total.value()[0], vg = to_host(gctx, lg.total.value())[0];
    CHECK(vg == Approx(vc).epsilon(1e-11));
    CHECK(lg.ce == Approx(lc.ce).epsilon(1e-11));
    CHECK(lg.vcl == Approx(lc.vcl).epsilon(1e-11));
    CHECK(lg.icl == Approx(lc.icl).epsilon(1e-11));
    CHECK(lg.soft_vcl == Approx(lc.soft_vcl).epsilon(1e-10).margin(1e-13));
    CHECK(lg.soft_icl == Approx(lc.soft_icl).epsilon(1e-10).margin(1e-13));
    copt.zero_grad();
    gopt.zero_grad();
    lc.total.backward();
    lg.total.backward();
    copt.step();
    gopt.step();
    const auto pc = values_of(cc.trainable()), pg = values_of(gc.trainable());
    REQUIRE(pc.size() == pg.size());
    double worst = 0, scale = 1e-30;
    for (double v : pc) scale = std::max(scale, std::fabs(v));
    for (std::size_t i = 0; i < pc.size(); ++i) worst = std::max(worst, std::fabs(pc[i] - pg[i]) / scale);
    INFO("worst parameter difference / max |parameter| = " << worst);
    CHECK(worst < 1e-10);
  }
}

TEST_CASE("L-MCL on the emulated Cuda device is refused by name; its column ops refuse it too", "[mcl][cuda]") {
  Context<Cuda>& gctx = gpu();
  models::MclConfig cfg;
  cfg.layerwise = true;
  models::Cohort<double, Cuda> gc(cfg);
  for (int m = 0; m < 2; ++m) gc.add_network<4>(gctx, 3);
  const std::vector<int> y{0, 1, 0, 1, 2, 0, 1, 0};
  const auto host = device_compare::host_random<double>(Shape<3>{kB, 1, kL}, 7, -2, 2);
  Var<double, 3, Cuda> x(gctx, nn::detail::make_buffer(gctx, host.clone()), false);
  REQUIRE_THROWS_WITH(gc.loss(x, y),
                      Catch::Contains("Cohort: L-MCL runs on the Cpu device only (ops/columns.hpp); MCL runs on both"));
  const auto out = gc.forward(x, false);
  REQUIRE(out.front().exits.size() == 3);
  REQUIRE_THROWS_WITH(gc[0].aggregate(out.front()),
                      Catch::Contains("L-MCL's aggregator runs on the Cpu device only (ops/columns.hpp)"));
  STATIC_REQUIRE(has_column_ops<Cpu>);
  STATIC_REQUIRE_FALSE(has_column_ops<Cuda>);
  const auto& f = out.front().exits[0].feature;
  REQUIRE_THROWS_WITH(concat1(f, f), Catch::Contains("concat1: the Cuda device has no kernel for it yet"));
  REQUIRE_THROWS_WITH(sigmoid_cosine(f, f), Catch::Contains("sigmoid_cosine: the Cuda device has no kernel"));
}
