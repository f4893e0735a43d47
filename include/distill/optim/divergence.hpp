// distill/optim/divergence.hpp -- loud divergence: non-finite losses, gradients or parameters stop training.
//
// A training loop calls the checks once per step; the first NaN or infinity throws optim::DivergenceError (a
// distill::Error) naming the epoch, the step and the loss term or parameter, so the run stops at once instead of
// finishing with NaN weights and plausible-looking metrics. The caller keeps its last good checkpoint (it only
// saves after the checks passed) and exits non-zero. Hyper-parameters that enter as divisors or factors are
// checked up front against what float can represent (checked_temperature, checked_scale). On the Cuda device the
// gradient and value checks cost one device reduction per tensor and one copy of the sums per call.
//
// snippet: fragment; includes: distill/optim/divergence.hpp distill/optim/adam.hpp distill/models/resnet1d.hpp;
// given: Context<Cpu> ctx; models::ResNet1D<64> encoder{ctx}; optim::Adam opt{params(encoder), {}};
// Var<float, 0, Cpu> loss; std::int64_t epoch = 0, step = 0;
//   const optim::TrainPosition at{epoch, step};
//   optim::require_finite(loss.value()[0], "total", at);   // loss terms
//   loss.backward();
//   optim::require_finite_gradients(opt.params(), at);     // before the update
//   opt.step();
//   optim::require_finite_values(opt.params(), at);        // after it
//   // or all of it at once (zero_grad included): optim::checked_step(opt, loss, at)
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/core/error.hpp"
#include "distill/optim/optimizer.hpp"
#include "distill/optim/param_list.hpp"

namespace distill::optim {

/// Thrown when training produced a non-finite value. Examples map it to a distinct exit code.
class DivergenceError : public Error {
public:
  using Error::Error;
};

/// Where in training a check runs (epochs and steps counted from 1 in messages, as progress lines do).
struct TrainPosition {
  std::int64_t epoch = 0;  // 0-based epoch in progress
  std::int64_t step = 0;   // 0-based step within the epoch
};

namespace detail {
[[noreturn]] inline void fail(const TrainPosition& at, const std::string& what) {
  throw DivergenceError("training diverged at epoch " + std::to_string(at.epoch + 1) + ", step " +
                        std::to_string(at.step + 1) + ": " + what +
                        "; training stopped (lower the learning rate or check the loss weights and temperatures)");
}
inline std::string value_str(double v) { return std::isnan(v) ? "NaN" : (v > 0 ? "+inf" : "-inf"); }

/// Names the first non-finite element of parameter `i` (host values `p`), if any.
template <class T, class D>
void scan(const T* p, const ParamList<T, D>& ps, std::size_t i, const TrainPosition& at, const char* what) {
  const index_t n = ps[i].numel();
  for (index_t k = 0; k < n; ++k)
    if (!std::isfinite(p[k]))
      fail(at, std::string(what) + " of parameter '" + (ps[i].name().empty() ? "#" + std::to_string(i) : ps[i].name()) +
                   "' " + ps[i].shape_string() + " is " + value_str(double(p[k])) + " at element " + std::to_string(k));
}

/// Cpu: every element is read where it is.
template <class T, class Get>
void check_all(const ParamList<T, Cpu>& ps, const TrainPosition& at, const char* what, Get get) {
  for (std::size_t i = 0; i < ps.size(); ++i)
    if (const T* p = get(ps[i])) scan(p, ps, i, at, what);  // null: no gradient yet (a frozen or unused parameter)
}

/// Cuda: one sum per tensor on the device (a NaN or an infinity makes it non-finite) and one copy of the sums to
/// the host; only a tensor whose sum is not finite is copied back and scanned, to name the element (a finite
/// tensor whose float sum overflowed passes the scan).
template <class T, class Get>
void check_all(const ParamList<T, Cuda>& ps, const TrainPosition& at, const char* what, Get get) {
  if (ps.size() == 0) return;
  Context<Cuda>& ctx = ps[0].ctx();
  auto sums = ctx.zeros<T, 1>(Shape<1>{static_cast<index_t>(ps.size())});
  for (std::size_t i = 0; i < ps.size(); ++i)
    if (const T* p = get(ps[i]); p && ps[i].numel() > 0) cuda::sum<T>(ctx, p, ps[i].numel(), sums.data() + i, T(1), false);
  const Tensor<T, 1, Cpu> host_sums = to_host(ctx, sums);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    if (std::isfinite(host_sums[static_cast<index_t>(i)])) continue;
    const T* p = get(ps[i]);
    if (!p) continue;
    std::vector<T> h(static_cast<std::size_t>(ps[i].numel()));
    cuda::copy_to_host(ctx, h.data(), p, sizeof(T) * h.size());
    scan(h.data(), ps, i, at, what);
  }
}
}  // namespace detail

/// Throws DivergenceError naming `term` (e.g. "L_DC") when `value` is NaN or infinite.
inline void require_finite(double value, std::string_view term, const TrainPosition& at) {
  if (!std::isfinite(value)) detail::fail(at, "loss term " + std::string(term) + " is " + detail::value_str(value));
}

/// Every gradient of `ps` (after backward, before the update) must be finite.
template <class T, class D>
void require_finite_gradients(const ParamList<T, D>& ps, const TrainPosition& at) {
  detail::check_all(ps, at, "the gradient", [](const ParamRef<T, D>& p) { return p.grad(); });
}

/// Every value of `ps` (after the update) must be finite.
template <class T, class D>
void require_finite_values(const ParamList<T, D>& ps, const TrainPosition& at) {
  detail::check_all(ps, at, "the value", [](const ParamRef<T, D>& p) -> const T* { return p.data(); });
}

/// One optimizer step with every check of the protocol above: the loss value must be finite (named "total"),
/// then zero_grad, backward, finite gradients, step, finite parameters. Returns the loss value (one host read; on
/// the Cuda device a copy). `after_backward()` runs between the backward and the checks (data-parallel training
/// passes its gradient all-reduce, dist/data_parallel.hpp).
struct NoHook {
  void operator()() const noexcept {}
};
template <class T, class D, class AfterBackward = NoHook>
double checked_step(Optimizer<T, D>& opt, Var<T, 0, D>& loss, const TrainPosition& at,
                    AfterBackward&& after_backward = {}) {
  const double value = item(loss);
  require_finite(value, "total", at);
  opt.zero_grad();
  loss.backward();
  after_backward();  // e.g. dist::DataParallel: gradients -> their mean over ranks (a NaN on one rank reaches all)
  require_finite_gradients(opt.params(), at);
  opt.step();
  require_finite_values(opt.params(), at);
  return value;
}

/// A temperature `name` (a divisor of float similarities): positive, finite in float, and 1/v finite in float.
/// Returns v; throws naming `name` (e.g. "--tau") and the value otherwise.
inline double checked_temperature(std::string_view name, double v) {
  const float vf = static_cast<float>(v);
  DISTILL_CHECK(v > 0 && std::isfinite(vf) && vf > 0 && std::isfinite(1.0f / vf), name, " ", v,
                " is not a usable temperature: it must be positive, and both it and its reciprocal must be finite in "
                "single precision (about 3e-39 to 3.4e38)");
  return v;
}

/// A weight or scale `name`: finite in float and within [lo, hi]. Returns v; throws naming `name` otherwise.
inline double checked_scale(std::string_view name, double v, double lo = -std::numeric_limits<double>::infinity(),
                            double hi = std::numeric_limits<double>::infinity()) {
  DISTILL_CHECK(std::isfinite(static_cast<float>(v)) && v >= lo && v <= hi, name, " ", v,
                " is out of range: it must be a finite single-precision number in [", lo, ", ", hi, "]");
  return v;
}

}  // namespace distill::optim
