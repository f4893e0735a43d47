// tests/test_cuda_train.cpp -- issue 4's acceptance test: a full training step of a small conv net on the Cuda
// device (SIMT emulator) gives the same loss, gradients and updated parameters as on the Cpu device.
//
// The net: ResNetBlock1D<1, 8> -> ResNetBlock1D<8, 16> -> GAP -> Linear<16, 16> -> ReLU -> Linear<16, 5> (36
// parameter tensors, 16 BN buffers), on two augmented "views" stacked [x1; x2] (B = 6 each, L = 24) as SimCLR does.
// Loss = cross-entropy of view 1's logits + an NT-Xent composed from core ops (l2_normalize, matmul_nt, scale, a
// -1e9 self mask, cross-entropy against the other view). Every parameter gradient, the loss, the parameters after
// two Adam steps and the BN running statistics are compared. Also: module construction uploads the Cpu
// initialisation, checkpoints move weights Cpu <-> Cuda, SGD / AdamW(amsgrad) / EMA / copy_from on the device.
//
// Tolerances (float / double): loss 1e-5 / 1e-11 relative; gradients 1e-5 / 1e-10 of the tensor's largest gradient;
// parameters after each Adam step 1e-6 / 1e-12 of the tensor's scale plus 1e-2 / 1e-6 of lr (Adam moves an element
// by about lr * g / |g|, so a small gradient's rounding error appears relative to lr); BN running statistics 1e-5 /
// 1e-10. Measured worst cases (float): gradients 8e-7, parameters 1.5e-3 lr, running statistics 3e-7; (double):
// gradients 2e-15, parameters 1.4e-8 lr (the zero-gradient conv biases: rounding noise ~1e-17 over Adam's eps).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/device_compare.hpp"
#include "distill/data/staging.hpp"
#include "distill/eval/evaluate.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/io/train_state.hpp"
#include "distill/losses/queue.hpp"
#include "distill/nn/nn.hpp"
#include "distill/ops/linear.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/ops/reduce.hpp"
#include "distill/ops/shape_ops.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/divergence.hpp"
#include "distill/optim/ema.hpp"
#include "distill/optim/sgd.hpp"

using namespace distill;
using device_compare::gpu;

namespace {

template <class T, class D>
using Net = nn::Sequential<nn::ResNetBlock1D<1, 8, T, D>, nn::ResNetBlock1D<8, 16, T, D>, nn::GlobalAvgPool,
                           nn::Linear<16, 16, nn::LinearConfig{}, T, D>, nn::ReLU,
                           nn::Linear<16, 5, nn::LinearConfig{}, T, D>>;

constexpr index_t kB = 6, kL = 24, kClasses = 5;

template <class T>
struct Tol {
  double loss, grad, param, step;
};
template <class T>
constexpr Tol<T> tol() {
  if constexpr (std::is_same_v<T, float>) return {1e-5, 1e-5, 1e-6, 1e-2};
  else return {1e-11, 1e-10, 1e-12, 1e-6};
}

/// Host copies of a parameter's value or gradient (any device).
template <class T, class D>
std::vector<T> host_copy(const ParamRef<T, D>& p, bool grad) {
  std::vector<T> v(static_cast<std::size_t>(p.numel()));
  const T* src = grad ? p.grad() : p.data();
  REQUIRE(src != nullptr);
  if constexpr (std::is_same_v<D, Cuda>)
    cuda::copy_to_host(p.ctx(), v.data(), src, sizeof(T) * v.size());
  else
    std::memcpy(v.data(), src, sizeof(T) * v.size());
  return v;
}
/// Host copies of a module's buffers, in visiting order.
template <class T, class M>
std::vector<std::vector<T>> buffers_of(M& m) {
  std::vector<std::vector<T>> out;
  m.for_each_buffer([&](std::string_view, auto& t) {
    std::vector<T> v(static_cast<std::size_t>(t.numel()));
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(t)>::device_type, Cuda>)
      cuda::copy_to_host(gpu(), v.data(), t.data(), sizeof(T) * v.size());
    else
      std::memcpy(v.data(), t.data(), sizeof(T) * v.size());
    out.push_back(std::move(v));
  });
  return out;
}

struct Mismatch {
  index_t bad = 0;
  double worst = 0;
  std::string first;
};
/// |a - b| <= tol * (|a| + floor) elementwise, floor = max(max|a|, floor_min).
template <class T>
Mismatch close(const std::vector<T>& a, const std::vector<T>& b, double tol, double floor_min = 0) {
  Mismatch m;
  double scale = floor_min;
  for (T x : a) scale = std::max(scale, std::fabs(double(x)));
  if (scale == 0) scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(double(a[i]) - double(b[i])) / (std::fabs(double(a[i])) + scale);
    if (!(e <= tol)) {
      if (m.bad == 0) {
        std::ostringstream os;
        os << "[" << i << "] cpu " << a[i] << " cuda " << b[i];
        m.first = os.str();
      }
      ++m.bad;
    }
    if (!(e <= m.worst)) m.worst = std::isnan(e) ? INFINITY : e;
  }
  return m;
}

/// Two views of a batch: x1, x2 [B, 1, L] and labels of view 1.
template <class T>
struct Batch {
  Tensor<T, 3, Cpu> x;  // [x1; x2], [2B, 1, L]
  std::vector<int> labels;
  Tensor<T, 2, Cpu> self_mask;  // -1e9 on the diagonal of the [2B, 2B] similarity matrix
  std::vector<int> positives;   // row i's positive: the same sample in the other view
};
template <class T>
Batch<T> make_batch(std::uint64_t seed) {
  Batch<T> b;
  b.x = device_compare::host_random<T>(Shape<3>{2 * kB, 1, kL}, seed, -2, 2);
  for (index_t i = 0; i < kB; ++i) b.labels.push_back(static_cast<int>((i * 3 + seed) % kClasses));
  b.self_mask = Tensor<T, 2, Cpu>::zeros(Shape<2>{2 * kB, 2 * kB});
  for (index_t i = 0; i < 2 * kB; ++i) {
    b.self_mask(i, i) = T(-1e9);
    b.positives.push_back(static_cast<int>((i + kB) % (2 * kB)));
  }
  return b;
}

/// The training loss on device D: CE(view 1) + NT-Xent(views 1 and 2) with tau = 0.5.
template <class T, class D>
Var<T, 0, D> training_loss(Net<T, D>& net, Context<D>& ctx, const Batch<T>& b) {
  Var<T, 3, D> x(ctx, nn::detail::make_buffer(ctx, b.x.clone()), false);
  Var<T, 2, D> mask(ctx, nn::detail::make_buffer(ctx, b.self_mask.clone()), false);
  auto out = net(x);                                   // [2B, 5]
  auto ce = cross_entropy(slice0(out, 0, kB), b.labels);
  auto z = l2_normalize(out);
  auto sim = add(scale(matmul_nt(z, z), T(2)), mask);  // cosine / tau, self excluded
  auto nt = cross_entropy(sim, b.positives);
  return ce + nt;
}

/// Parameters whose exact gradient is 0 because a batch norm follows: the biases of the blocks' convolutions (BN
/// subtracts the channel mean) and block 1's 1x1 shortcut weight on a single input channel (BN is invariant to its
/// scale). In float both devices hold rounding noise there (~1e-9), which Adam would normalise into +-lr steps in
/// arbitrary directions, so the float test freezes them; in double the noise is far below Adam's eps.
bool has_zero_gradient(const std::string& name) {
  for (const std::string suffix : {"main.0.bias", "main.3.bias", "main.6.bias", "shortcut.0.bias", "0.shortcut.0.weight"})
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  return false;
}

template <class T>
T scalar_of(const Tensor<T, 0, Cpu>& t) {
  return t[0];
}
template <class T>
T scalar_of(const Tensor<T, 0, Cuda>& t) {
  return to_host(gpu(), t)[0];
}

/// The acceptance test, for T = float and double.
template <class T>
void training_steps_agree() {
  constexpr Tol<T> tl = tol<T>();
  Context<Cpu> cctx{1, 2024};
  Net<T, Cpu> cnet{cctx};
  // A Cuda context with another seed: its own initialisation differs, the Cpu weights are then loaded through a
  // checkpoint (host copies), so both nets start from identical values.
  Context<Cuda> gctx{1, 7};
  Net<T, Cuda> gnet{gctx};
  {
    io::Checkpoint ck;
    ck.put_module(cnet, "net");
    ck.load_module(gnet, "net");
  }
  auto all_c = nn::params(cnet);
  auto all_g = nn::params(gnet);
  REQUIRE(all_c.size() == 36);
  REQUIRE(all_g.size() == all_c.size());
  for (std::size_t i = 0; i < all_c.size(); ++i) CHECK(host_copy(all_c[i], false) == host_copy(all_g[i], false));
  // In float, parameters whose exact gradient is 0 are frozen (see has_zero_gradient); double trains them all.
  ParamList<T, Cpu> cp;
  ParamList<T, Cuda> gp;
  for (std::size_t i = 0; i < all_c.size(); ++i) {
    const bool freeze = std::is_same_v<T, float> && has_zero_gradient(all_c[i].name());
    ParamRef<T, Cpu> c = all_c[i];
    ParamRef<T, Cuda> g = all_g[i];
    c.set_requires_grad(!freeze);
    g.set_requires_grad(!freeze);
    if (!freeze) {
      cp.add(c);
      gp.add(g);
    }
  }

  optim::Adam<T, Cpu> copt{cp, {.lr = 1e-3}};
  optim::Adam<T, Cuda> gopt{gp, {.lr = 1e-3}};
  double grad_scale = 0;
  for (int step = 0; step < 2; ++step) {
    INFO("step " << step);
    const Batch<T> batch = make_batch<T>(100 + step);
    copt.zero_grad();
    gopt.zero_grad();
    auto lc = training_loss(cnet, cctx, batch);
    auto lg = training_loss(gnet, gctx, batch);
    const T vc = scalar_of(lc.value()), vg = scalar_of(lg.value());
    CHECK(std::isfinite(double(vc)));
    CHECK(std::fabs(double(vc) - double(vg)) <= tl.loss * std::fabs(double(vc)));
    lc.backward();
    lg.backward();

    // Gradients: each tensor relative to its own largest gradient; where the exact gradient is 0 (double only, see
    // has_zero_gradient) relative to the model's largest gradient.
    std::vector<std::vector<T>> gc, gg;
    for (std::size_t i = 0; i < cp.size(); ++i) {
      gc.push_back(host_copy(cp[i], true));
      gg.push_back(host_copy(gp[i], true));
      for (T v : gc.back()) grad_scale = std::max(grad_scale, std::fabs(double(v)));
    }
    REQUIRE(grad_scale > 0);
    for (std::size_t i = 0; i < cp.size(); ++i) {
      const auto m = close(gc[i], gg[i], tl.grad, has_zero_gradient(cp[i].name()) ? grad_scale : 0.0);
      INFO("gradient of " << cp[i].name() << " " << cp[i].shape_string() << ": " << m.bad << " elements differ, worst "
                          << m.worst << " (" << m.first << ")");
      CHECK(m.bad == 0);
    }

    copt.step();
    gopt.step();
    // Parameters after the Adam step: within tol.param of their scale, or tol.step * lr (Adam's first steps move
    // each element by about lr * sign(g), so a small gradient's rounding shows up relative to lr, not to p).
    for (std::size_t i = 0; i < cp.size(); ++i) {
      const auto pc = host_copy(cp[i], false), pg = host_copy(gp[i], false);
      double scale = 0, worst = 0;
      for (T v : pc) scale = std::max(scale, std::fabs(double(v)));
      index_t bad = 0;
      for (std::size_t j = 0; j < pc.size(); ++j) {
        const double d = std::fabs(double(pc[j]) - double(pg[j]));
        worst = std::max(worst, d / 1e-3);
        if (!(d <= tl.param * scale + tl.step * 1e-3)) ++bad;
      }
      INFO("parameter " << cp[i].name() << " after step: " << bad << " elements differ, worst |difference| / lr "
                        << worst);
      CHECK(bad == 0);
    }
    const auto bc = buffers_of<T>(cnet), bg = buffers_of<T>(gnet);
    REQUIRE(bc.size() == 16);
    REQUIRE(bg.size() == bc.size());
    for (std::size_t i = 0; i < bc.size(); ++i) {
      const auto m = close(bc[i], bg[i], tl.grad);
      INFO("BN buffer #" << i << ": " << m.bad << " elements differ, worst " << m.worst);
      CHECK(m.bad == 0);
    }
  }
}

}  // namespace

TEST_CASE("a full training step of a small ResNet on the Cuda device matches the Cpu device (float)",
          "[cuda][train]") {
  training_steps_agree<float>();
}

TEST_CASE("a full training step of a small ResNet on the Cuda device matches the Cpu device (double)",
          "[cuda][train]") {
  training_steps_agree<double>();
}

TEST_CASE("Cuda modules: the same seed gives the same weights as on Cpu; BN buffers live on the device",
          "[cuda][train][nn]") {
  Context<Cpu> cctx{1, 5};
  Context<Cuda> gctx{1, 5};
  Net<float, Cpu> cnet{cctx};
  Net<float, Cuda> gnet{gctx};
  const auto cp = nn::params(cnet);
  const auto gp = nn::params(gnet);
  REQUIRE(cp.size() == gp.size());
  for (std::size_t i = 0; i < cp.size(); ++i) {
    INFO(cp[i].name());
    CHECK(cp[i].name() == gp[i].name());
    CHECK(host_copy(cp[i], false) == host_copy(gp[i], false));
  }
  CHECK(buffers_of<float>(cnet) == buffers_of<float>(gnet));
}

namespace {
/// Parameters of mixed ranks on both devices, with gradients set by backward(sum(p * c)) = c.
template <class D>
struct Params {
  Var<float, 2, D> w;
  Var<float, 1, D> b;
  Params(Context<D>& ctx, std::uint64_t seed) {
    w = parameter(ctx, nn::detail::make_buffer(ctx, device_compare::host_random<float>(Shape<2>{7, 33}, seed)));
    b = parameter(ctx, nn::detail::make_buffer(ctx, device_compare::host_random<float>(Shape<1>{5}, seed + 1)));
  }
  void set_gradients(std::uint64_t seed) {
    auto& ctx = w.ctx();
    Var<float, 2, D> cw(ctx, nn::detail::make_buffer(ctx, device_compare::host_random<float>(Shape<2>{7, 33}, seed)));
    Var<float, 1, D> cb(ctx, nn::detail::make_buffer(ctx, device_compare::host_random<float>(Shape<1>{5}, seed + 1)));
    (sum(mul(w, cw)) + sum(mul(b, cb))).backward();
  }
};

template <class Opt, class... Args>
void optimizer_agrees(const char* what, Args... options) {
  Context<Cpu> cctx{1, 3};
  Params<Cpu> pc{cctx, 10};
  Params<Cuda> pg{gpu(), 10};
  auto lc = params(pc.w, pc.b);
  auto lg = params(pg.w, pg.b);
  typename Opt::template on<Cpu> oc{lc, options...};
  typename Opt::template on<Cuda> og{lg, options...};
  for (int step = 0; step < 3; ++step) {
    oc.zero_grad();
    og.zero_grad();
    pc.set_gradients(20 + step);
    pg.set_gradients(20 + step);
    oc.step();
    og.step();
    INFO(what << ", step " << step);
    device_compare::check_same(pc.w.value(), pg.w.value(), 1e-6, "w");
    device_compare::check_same(pc.b.value(), pg.b.value(), 1e-6, "b");
  }
  CHECK(og.param_steps(0) == 3);
}
struct SgdOn {
  template <class D>
  using on = optim::SGD<float, D>;
};
struct AdamWOn {
  template <class D>
  using on = optim::AdamW<float, D>;
};
}  // namespace

TEST_CASE("Cuda optimizers follow the Cpu ones: SGD (momentum, dampening, Nesterov, weight decay), AdamW amsgrad",
          "[cuda][train][optim]") {
  optimizer_agrees<SgdOn>("SGD momentum + dampening + weight decay",
                          optim::SgdOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-2});
  optimizer_agrees<SgdOn>("SGD Nesterov", optim::SgdOptions{.lr = 0.05, .momentum = 0.8, .nesterov = true});
  optimizer_agrees<AdamWOn>("AdamW amsgrad", optim::AdamWOptions{.lr = 1e-2, .weight_decay = 0.1, .amsgrad = true});
}

TEST_CASE("Cuda EMA, copy_from and checkpoints (modules and optimizer state through host copies)",
          "[cuda][train][nn][io]") {
  Context<Cpu> cctx{1, 31};
  Context<Cuda> gctx{1, 31};
  Net<float, Cpu> ca{cctx}, cb{cctx};  // the same seed and order: ga == ca and gb == cb, ca != cb
  Net<float, Cuda> ga{gctx}, gb{gctx};
  // Distinct BN running statistics in the "b" nets, loaded through a checkpoint on both devices.
  {
    io::Checkpoint ck;
    ck.put_module(cb);
    const auto entries = ck.entries();
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (entries[i].name.find("running_") != std::string::npos)
        ck.put(entries[i].name, device_compare::host_random<float>(Shape<1>{entries[i].numel()}, 500 + i, 0.5, 1.5));
    ck.load_module(cb);
    ck.load_module(gb);
  }
  auto same = [](auto& c, auto& g, double tol) {
    const auto pc = nn::params(c);
    const auto pg = nn::params(g);
    for (std::size_t i = 0; i < pc.size(); ++i)
      CHECK(close(host_copy(pc[i], false), host_copy(pg[i], false), tol).bad == 0);
    const auto bc = buffers_of<float>(c), bg = buffers_of<float>(g);
    for (std::size_t i = 0; i < bc.size(); ++i) CHECK(close(bc[i], bg[i], tol).bad == 0);
  };
  same(ca, ga, 0.0);
  same(cb, gb, 0.0);
  CHECK(buffers_of<float>(ca) != buffers_of<float>(cb));
  for (const auto mode : {optim::BufferMode::Keep, optim::BufferMode::Ema, optim::BufferMode::Copy}) {
    optim::ema_update(ca, cb, 0.9, mode);
    optim::ema_update(ga, gb, 0.9, mode);
    same(ca, ga, 1e-7);
  }
  optim::ema_update(ga, gb, 0.0);  // momentum 0 copies exactly
  same(cb, ga, 0.0);

  Net<float, Cuda> gc{gctx};
  gc.copy_from(gb);
  same(cb, gc, 0.0);

  // A Cuda module saved to a file, loaded into a Cpu module.
  const std::string file = "test_cuda_train_" + std::to_string(::getpid()) + ".ckpt";
  save_checkpoint(file, gb);
  Net<float, Cpu> cd{cctx};
  load_checkpoint(file, cd);
  std::remove(file.c_str());
  same(cd, gb, 0.0);

  // Optimizer state on the device: saved, restored into a fresh optimizer, saved again: the same bytes.
  auto lb = nn::params(gb);
  optim::Adam<float, Cuda> opt{lb, {.lr = 1e-2, .amsgrad = true}};
  Var<float, 3, Cuda> x(gctx, to_device(gctx, device_compare::host_random<float>(Shape<3>{4, 1, 16}, 600)), false);
  sum(gb(x)).backward();
  opt.step();
  io::Checkpoint first;
  first.put_optimizer(opt);
  optim::Adam<float, Cuda> restored{lb, {.lr = 0.5, .amsgrad = true}};
  first.load_optimizer(restored);
  CHECK(restored.lr() == 1e-2);
  CHECK(restored.param_steps(0) == 1);
  io::Checkpoint second;
  second.put_optimizer(restored);
  REQUIRE(first.size() == second.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    INFO(first.entries()[i].name);
    CHECK(first.entries()[i].bytes == second.entries()[i].bytes);
  }
  bool moments_nonzero = false;
  for (const auto& e : first.entries())
    if (e.name.find("exp_avg_sq") != std::string::npos)
      for (unsigned char byte : e.bytes) moments_nonzero = moments_nonzero || byte != 0;
  CHECK(moments_nonzero);
}

namespace {
/// A module with a buffer and no parameter: on the Cuda device nothing gives it a context to copy the buffer with;
/// on the Cpu device it needs none.
template <class D>
struct BufferOnly : nn::Module<BufferOnly<D>> {
  using value_type = float;
  using device_type = D;
  template <class Self, class F>
  static void visit_parameters(Self&, F&&) {}
  template <class Self, class F>
  static void visit_buffers(Self& self, F&& f) {
    f("stat", self.stat);
  }
  Tensor<float, 1, D> stat;
};
}  // namespace

TEST_CASE("buffers without a parameter: refused by name on the Cuda device (checkpoints, copy_from), fine on Cpu",
          "[cuda][train][nn][io]") {
  Context<Cpu> cctx{1, 5};
  Context<Cuda> gctx{1, 5};
  const auto h1 = device_compare::host_random<float>(Shape<1>{3}, 1);
  const auto h2 = device_compare::host_random<float>(Shape<1>{3}, 2);
  auto equal = [](const Tensor<float, 1, Cpu>& a, const Tensor<float, 1, Cpu>& b) {
    return a.numel() == b.numel() && std::equal(a.begin(), a.end(), b.begin());
  };
  BufferOnly<Cuda> ga, gb;
  ga.stat = to_device(gctx, h1);
  gb.stat = to_device(gctx, h2);
  io::Checkpoint ck;
  REQUIRE_THROWS_WITH(ck.put_module(ga, "m"), Catch::Contains("checkpoint: Cuda tensor 'm.stat' has no context to "
                                                              "copy it with (a module or optimizer without Cuda "
                                                              "parameters)"));
  ck.put(gctx, "m.stat", ga.stat);
  REQUIRE_THROWS_WITH(ck.load_module(gb, "m"), Catch::Contains("checkpoint: Cuda tensor 'm.stat' has no context"));
  REQUIRE_THROWS_WITH(gb.copy_from(ga), Catch::Contains("copy_from: a module with Cuda buffers but no Cuda parameter "
                                                        "has no context to copy them with"));
  CHECK(equal(to_host(gctx, gb.stat), h2));

  BufferOnly<Cpu> ca, cb;
  ca.stat = h1.clone();
  cb.stat = h2.clone();
  io::Checkpoint hk;
  hk.put_module(ca, "m");
  hk.load_module(cb, "m");
  CHECK(equal(cb.stat, h1));
  cb.stat = h2.clone();
  cb.copy_from(ca);
  CHECK(equal(cb.stat, h1));
}

// ---- the pieces a training loop on the Cuda device uses (examples' --device cuda, docs/cuda.md) ---------------

TEST_CASE("item(): a scalar Var's value on the host, on both devices", "[cuda][train]") {
  Context<Cpu> cctx{1, 3};
  Params<Cpu> pc{cctx, 40};
  Params<Cuda> pg{gpu(), 40};
  const double vc = item(sum(pc.w)), vg = item(sum(pg.w));
  double ref = 0;
  for (float v : pc.w.value()) ref += v;
  CHECK(std::fabs(vc - ref) <= 1e-5 * std::fabs(ref));
  CHECK(std::fabs(vg - vc) <= 1e-6 * std::fabs(vc));
}

TEST_CASE("divergence checks on Cuda parameters: finite passes, a NaN or an infinity is named with its element",
          "[cuda][train][optim]") {
  Params<Cuda> p{gpu(), 50};
  auto list = params(p.w, p.b);
  const optim::TrainPosition at{1, 4};
  CHECK_NOTHROW(optim::require_finite_values(list, at));
  CHECK_NOTHROW(optim::require_finite_gradients(list, at));  // no gradients yet: nothing to check
  p.set_gradients(51);
  CHECK_NOTHROW(optim::require_finite_gradients(list, at));
  auto upload = [](float* device_dst, const std::vector<float>& v) {
    cuda::copy_to_device(gpu(), device_dst, v.data(), sizeof(float) * v.size());
  };
  // Large finite values whose float sum overflows still pass (the scan finds nothing).
  upload(list[1].data(), std::vector<float>(5, 3e38f));
  CHECK_NOTHROW(optim::require_finite_values(list, at));
  // A NaN in element 17 of w's gradient, an infinity in element 3 of b's value.
  std::vector<float> g(7 * 33);
  cuda::copy_to_host(gpu(), g.data(), list[0].grad(), sizeof(float) * g.size());
  g[17] = std::numeric_limits<float>::quiet_NaN();
  upload(list[0].grad(), g);
  CHECK_THROWS_WITH(optim::require_finite_gradients(list, at),
                    Catch::Contains("epoch 2, step 5") && Catch::Contains("the gradient of parameter '#0' [7, 33] is NaN "
                                                                          "at element 17"));
  std::vector<float> b(5, 1.0f);
  b[3] = -std::numeric_limits<float>::infinity();
  upload(list[1].data(), b);
  CHECK_THROWS_WITH(optim::require_finite_values(list, at),
                    Catch::Contains("the value of parameter '#1' [5] is -inf at element 3"));
}

TEST_CASE("BatchStager<Cuda>: host batches reach the device intact through the pinned ring, sizes changing",
          "[cuda][train][data]") {
  data::BatchStager<Cuda> stage(gpu());
  data::BatchStager<Cpu> host_stage(device_compare::cpu());
  std::vector<Tensor<float, 3, Cuda>> staged;
  std::vector<Tensor<float, 3, Cpu>> sent;
  for (int i = 0; i < 7; ++i) {  // more batches than buffers; the sizes grow and shrink (buffers are reallocated)
    const index_t b = 2 + (i * 5) % 7;
    sent.push_back(device_compare::host_random<float>(Shape<3>{b, 1, 33}, 700 + std::uint64_t(i)));
    staged.push_back(stage(sent.back()));
  }
  for (std::size_t i = 0; i < sent.size(); ++i) {
    INFO("batch " << i);
    const auto back = to_host(gpu(), staged[i]);
    REQUIRE(back.shape() == sent[i].shape());
    CHECK(std::equal(back.begin(), back.end(), sent[i].begin()));
  }
  const auto empty = stage(Tensor<float, 3, Cpu>(Shape<3>{0, 1, 4}));
  CHECK(empty.numel() == 0);
  auto moved = host_stage(sent[0].clone());  // the Cpu stager hands the tensor through
  CHECK(std::equal(moved.begin(), moved.end(), sent[0].begin()));
  CHECK_THROWS_WITH(data::BatchStager<Cuda>(gpu(), 0), Catch::Contains("at least one staging buffer"));
}

TEST_CASE("eval::on_device: a Cuda model's embeddings, copied back per chunk, equal the Cpu model's",
          "[cuda][train][eval]") {
  Context<Cpu> cctx{1, 77};
  Context<Cuda> gctx{1, 77};
  Net<float, Cpu> cnet{cctx};
  Net<float, Cuda> gnet{gctx};  // the same seed: the same weights
  data::Dataset ds;
  ds.x = device_compare::host_random<float>(Shape<3>{11, 1, kL}, 800);
  ds.labels.assign(11, 0);
  ds.num_classes = 1;
  cnet.train(true);
  gnet.train(true);
  const auto zc = eval::embed_dataset(cctx, ds, cnet, /*batch=*/4);
  const auto zg = eval::embed_dataset(
      cctx, ds, eval::on_device(gctx, [&](const Var<float, 3, Cuda>& x) { return gnet(x); }, gnet), /*batch=*/4);
  CHECK(gnet.is_training());  // eval mode only while embedding
  REQUIRE(zg.shape() == zc.shape());
  CHECK(close(std::vector<double>(zc.begin(), zc.end()), std::vector<double>(zg.begin(), zg.end()), 1e-5).bad == 0);
}

TEST_CASE("a training state saves and restores a Cuda MoCo queue (keys through host copies, position)",
          "[cuda][train][io]") {
  CounterRng rng(5, 1);
  auto q = losses::Queue<float, Cuda>::random(gpu(), 6, 4, rng);
  q.enqueue(to_device(gpu(), device_compare::host_random<float>(Shape<2>{3, 4}, 900)));
  const auto keys = to_host(gpu(), q.storage());
  const auto head = q.head();
  const std::string dir = "test_cuda_train_state_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  {
    io::TrainState state(dir);
    state.add_queue("queue", q);
    state.save();
  }
  auto r = losses::Queue<float, Cuda>(gpu(), 6, 4);  // empty, zero keys
  {
    io::TrainState state(dir);
    state.add_queue("queue", r);
    state.restore();
  }
  std::filesystem::remove_all(dir);
  CHECK(r.size() == q.size());
  CHECK(r.head() == head);
  const auto got = to_host(gpu(), r.storage());
  CHECK(std::equal(got.begin(), got.end(), keys.begin()));
}
