// tests/cuda/device_compare.hpp -- the same computation on the Cpu and the Cuda device, compared.
//
// Used by the tests of the Cuda device path (test_cuda_ops, test_cuda_train, test_cuda_losses), which link the SIMT
// emulation build (distill::cuda_emu) or, in a GPU build, the real backend. The Cpu device is the reference: every
// Cpu op is itself tested against plain loops, finite differences and PyTorch golden files.
//
// run_both(f, tol, inputs...) builds Vars from the same host values on both devices, runs f on each, compares the
// outputs, back-propagates the same random seed gradient and compares every input's gradient. Comparisons fail on
// NaN and report the first few mismatches: |cuda - cpu| <= tol * (|cpu| + max(max|cpu|, 1e-20)) elementwise, i.e. a
// relative tolerance with the tensor's scale as the floor (sums over many terms cancel).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include "distill/autograd/grad_check.hpp"
#include "distill/autograd/var.hpp"
#include "distill/cuda/device_ops.hpp"

namespace device_compare {

using namespace distill;

inline Context<Cpu>& cpu() {
  static Context<Cpu> c{1, 11};
  return c;
}
inline Context<Cuda>& gpu() {
  static Context<Cuda> c{1, 11};
  return c;
}

template <class T, std::size_t R>
Tensor<T, R, Cpu> host_random(const Shape<R>& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  CounterRng rng(seed, 3);
  return random_tensor<T>(rng, s, lo, hi);
}

struct CompareResult {
  index_t bad = 0;
  double max_err = 0;  // max |a - b| / (|a| + scale)
  std::string report;
};

/// Compares a Cpu reference with values from the Cuda device (already on the host).
template <class T, std::size_t R>
CompareResult compare(const Tensor<T, R, Cpu>& ref, const Tensor<T, R, Cpu>& got, double tol) {
  CompareResult r;
  if (ref.shape() != got.shape()) {
    r.bad = 1;
    r.report = "shapes differ: " + to_string(ref.shape()) + " vs " + to_string(got.shape());
    return r;
  }
  // The floor: the tensor's largest magnitude, at least 1e-20 (a gradient that is 0 in exact arithmetic may hold
  // subnormal values on one device and exact zeros on the other, e.g. softmax of +-1e4 logits).
  double scale = 1e-20;
  for (index_t i = 0; i < ref.numel(); ++i) scale = std::max(scale, std::fabs(double(ref.data()[i])));
  std::ostringstream os;
  for (index_t i = 0; i < ref.numel(); ++i) {
    const double a = double(ref.data()[i]), b = double(got.data()[i]);
    const double rel = std::fabs(a - b) / (std::fabs(a) + scale);
    if (!(rel <= tol)) {
      if (r.bad < 4) os << "  [" << i << "] cpu " << a << " cuda " << b << "\n";
      ++r.bad;
    }
    if (rel > r.max_err || std::isnan(rel)) r.max_err = std::isnan(rel) ? INFINITY : rel;
  }
  r.report = os.str();
  return r;
}

template <class T, std::size_t R>
void check_same(const Tensor<T, R, Cpu>& ref, const Tensor<T, R, Cuda>& dev, double tol, const std::string& what) {
  const CompareResult r = compare(ref, to_host(gpu(), dev), tol);
  INFO(what << ": " << r.bad << " of " << ref.numel() << " elements differ (max relative error " << r.max_err
            << ", tolerance " << tol << ")\n" << r.report);
  CHECK(r.bad == 0);
}

/// Bitwise equality of two device tensors (determinism run to run).
template <class T, std::size_t R>
bool bitwise_equal(const Tensor<T, R, Cuda>& a, const Tensor<T, R, Cuda>& b) {
  const auto ha = to_host(gpu(), a), hb = to_host(gpu(), b);
  return ha.shape() == hb.shape() &&
         std::equal(ha.begin(), ha.end(), hb.begin(), [](T x, T y) { return std::memcmp(&x, &y, sizeof(T)) == 0; });
}

/// An input of run_both: host values and whether the op should differentiate with respect to it.
template <class T, std::size_t R>
struct Input {
  Tensor<T, R, Cpu> value;
  bool requires_grad = true;
};
template <class T, std::size_t R>
Input<T, R> input(const Shape<R>& s, std::uint64_t seed, double lo = -1, double hi = 1, bool requires_grad = true) {
  return Input<T, R>{host_random<T>(s, seed, lo, hi), requires_grad};
}

/// f on both devices; outputs and the gradients of every input compared with tolerance `tol`. Returns the Cuda
/// output (for extra checks).
template <class F, class... In>
auto run_both(const std::string& what, F&& f, double tol, const In&... in) {
  auto cpu_vars = std::make_tuple(Var<typename decltype(in.value)::value_type, decltype(in.value)::rank, Cpu>(
      cpu(), in.value.clone(), in.requires_grad)...);
  auto gpu_vars = std::make_tuple(Var<typename decltype(in.value)::value_type, decltype(in.value)::rank, Cuda>(
      gpu(), to_device(gpu(), in.value), in.requires_grad)...);
  auto yc = std::apply(f, cpu_vars);
  auto yg = std::apply(f, gpu_vars);
  check_same(yc.value(), yg.value(), tol, what + ": forward");
  using Y = decltype(yc);
  const auto seed = host_random<typename Y::value_type>(yc.shape(), 99, 0.5, 1.5);
  if (yc.requires_grad()) {
    REQUIRE(yg.requires_grad());
    yc.backward(seed);
    yg.backward(to_device(gpu(), seed));
    std::size_t k = 0;
    std::apply(
        [&](auto&... c) {
          std::apply(
              [&](auto&... g) {
                (
                    [&] {
                      // An input may require grad and still get none (a stop-gradient teacher): then on both.
                      if (c.requires_grad()) {
                        INFO(what << ": input " << k << " has a gradient on Cpu: " << c.has_grad() << ", on Cuda: "
                                  << g.has_grad());
                        CHECK(c.has_grad() == g.has_grad());
                        if (c.has_grad() && g.has_grad())
                          check_same(c.grad(), g.grad(), tol, what + ": gradient of input " + std::to_string(k));
                      }
                      ++k;
                    }(),
                    ...);
              },
              gpu_vars);
        },
        cpu_vars);
  }
  return yg;
}

}  // namespace device_compare
