// distill/optim/divergence.hpp -- loud divergence: non-finite losses, gradients or parameters stop training.
//
// A training loop calls the checks once per step; the first NaN or infinity throws optim::DivergenceError (a
// distill::Error) naming the epoch, the step and the loss term or parameter, so the run stops at once instead of
// finishing with NaN weights and plausible-looking metrics. The caller keeps its last good checkpoint (it only
// saves after the checks passed) and exits non-zero. Hyper-parameters that enter as divisors or factors are
// checked up front against what float can represent (checked_temperature, checked_scale).
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
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "distill/core/error.hpp"
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

namespace divergence_detail {
[[noreturn]] inline void fail(const TrainPosition& at, const std::string& what) {
  throw DivergenceError("training diverged at epoch " + std::to_string(at.epoch + 1) + ", step " +
                        std::to_string(at.step + 1) + ": " + what +
                        "; training stopped (lower the learning rate or check the loss weights and temperatures)");
}
inline std::string value_str(double v) { return std::isnan(v) ? "NaN" : (v > 0 ? "+inf" : "-inf"); }

template <class T, class D, class Get>
void check_all(const ParamList<T, D>& ps, const TrainPosition& at, const char* what, Get get) {
  static_assert(std::is_same_v<D, Cpu>,
                "divergence checks read host memory: for Cuda parameters check the loss terms, or copy to the host");
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const T* p = get(ps[i]);
    if (!p) continue;  // no gradient yet (a frozen or unused parameter)
    const index_t n = ps[i].numel();
    for (index_t k = 0; k < n; ++k)
      if (!std::isfinite(p[k]))
        fail(at, std::string(what) + " of parameter '" + (ps[i].name().empty() ? "#" + std::to_string(i) : ps[i].name()) +
                     "' " + ps[i].shape_string() + " is " + value_str(double(p[k])) + " at element " + std::to_string(k));
  }
}
}  // namespace divergence_detail

/// Throws DivergenceError naming `term` (e.g. "L_DC") when `value` is NaN or infinite.
inline void require_finite(double value, std::string_view term, const TrainPosition& at) {
  if (!std::isfinite(value)) divergence_detail::fail(at, "loss term " + std::string(term) + " is " + divergence_detail::value_str(value));
}

/// Every gradient of `ps` (after backward, before the update) must be finite.
template <class T, class D>
void require_finite_gradients(const ParamList<T, D>& ps, const TrainPosition& at) {
  divergence_detail::check_all(ps, at, "the gradient", [](const ParamRef<T, D>& p) { return p.grad(); });
}

/// Every value of `ps` (after the update) must be finite.
template <class T, class D>
void require_finite_values(const ParamList<T, D>& ps, const TrainPosition& at) {
  divergence_detail::check_all(ps, at, "the value", [](const ParamRef<T, D>& p) -> const T* { return p.data(); });
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
