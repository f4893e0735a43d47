// distill/autograd/grad_check.hpp -- check_gradients: analytic backward against central finite differences.
//
// Public API: any op, layer or user-written layer can be tested with it. Run it in double.
//
// snippet: fragment; includes: distill/ops/elementwise.hpp distill/ops/softmax.hpp
//   Context<Cpu> ctx;
//   auto x = parameter(ctx, random_tensor<double>(ctx.rng(), Shape<2>{3, 7}));
//   auto r = check_gradients([&] { return softmax(x * x); }, x);   // any op or layer of x
//   if (!r.ok) throw Error(r.message);   // r.message says which input and element disagree
//
// The function's output may have any shape: it is contracted with a fixed random weight tensor w, so the
// checked scalar is sum(w * f(inputs)), which exercises every output element with a distinct weight.
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <tuple>

#include "distill/autograd/var.hpp"

namespace distill {

struct GradCheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  index_t max_elements_per_input = 4096;  // elements checked per input, spread evenly
  std::uint64_t seed = 1234;
};

struct GradCheckResult {
  bool ok = true;
  double max_abs_error = 0;
  double max_rel_error = 0;
  index_t checked = 0;
  std::string message;
  explicit operator bool() const { return ok; }
};

template <class T, std::size_t R>
Tensor<T, R, Cpu> random_tensor(CounterRng& rng, const Shape<R>& s, double lo = -1, double hi = 1) {
  Tensor<T, R, Cpu> t(s);
  for (auto& v : t) v = static_cast<T>(rng.uniform(lo, hi));
  return t;
}

namespace detail {
template <class Var_>
void zero_input_grad(Var_& v) {
  if (v.has_grad()) v.zero_grad();
}
}  // namespace detail

/// f() must build its output from the Vars in `inputs` (captured by reference) and return a Var<double, R>.
template <class F, class... Vars>
GradCheckResult check_gradients(F&& f, GradCheckOptions opt, Vars&... inputs) {
  static_assert(sizeof...(Vars) > 0, "check_gradients: pass at least one input Var to differentiate.");
  GradCheckResult res;
  auto y = f();
  using YV = decltype(y);
  static_assert(std::is_same_v<typename YV::value_type, double>,
                "check_gradients: run gradient checks in double; the function returned a float Var.");
  CounterRng rng(opt.seed, 99);
  auto w = random_tensor<double>(rng, y.shape(), 0.5, 1.5);
  for (index_t i = 0; i < w.numel(); ++i) w[i] *= (rng.uniform() < 0.5 ? -1 : 1);
  (detail::zero_input_grad(inputs), ...);
  y.backward(w);

  auto objective = [&]() {
    NoGradGuard ng(y.ctx());
    auto yy = f();
    double s = 0;
    for (index_t i = 0; i < yy.numel(); ++i) s += w[i] * yy.value()[i];
    return s;
  };

  int which = 0;
  auto check_one = [&](auto& v) {
    const int idx = which++;
    if (!res.ok || !v.requires_grad()) return;
    auto& x = v.value();
    const index_t n = x.numel();
    const index_t stride = std::max<index_t>(1, n / std::max<index_t>(1, opt.max_elements_per_input));
    for (index_t e = 0; e < n; e += stride) {
      const double orig = x[e];
      x[e] = orig + opt.eps;
      const double fp = objective();
      x[e] = orig - opt.eps;
      const double fm = objective();
      x[e] = orig;
      const double num = (fp - fm) / (2 * opt.eps);
      const double ana = v.has_grad() ? double(v.grad()[e]) : 0.0;
      const double err = std::abs(num - ana);
      res.max_abs_error = std::max(res.max_abs_error, err);
      res.max_rel_error = std::max(res.max_rel_error, err / std::max(1e-12, std::abs(num)));
      ++res.checked;
      if (err > opt.atol + opt.rtol * std::abs(num)) {
        std::ostringstream os;
        os << "gradient mismatch for input #" << idx << " (shape " << to_string(x.shape()) << ") at flat element "
           << e << ": analytic " << ana << ", finite difference " << num << ", |diff| " << err;
        res.ok = false;
        res.message = os.str();
        return;
      }
    }
  };
  (check_one(inputs), ...);
  if (res.ok) {
    std::ostringstream os;
    os << "ok: " << res.checked << " elements, max |diff| " << res.max_abs_error;
    res.message = os.str();
  }
  return res;
}

template <class F, class... Vars>
GradCheckResult check_gradients(F&& f, Vars&... inputs) {
  return check_gradients(std::forward<F>(f), GradCheckOptions{}, inputs...);
}

}  // namespace distill
