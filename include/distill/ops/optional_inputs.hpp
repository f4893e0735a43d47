// distill/ops/optional_inputs.hpp -- helper for ops with optional Var inputs (bias, affine parameters).
#pragma once

#include <utility>

namespace distill::ops_detail {

/// Calls f(v...) with those of the optional Vars `a`, `b` that are defined, so that autograd::make_result
/// only ever sees defined inputs (an undefined Var stands for "no bias" / "no affine").
template <class F, class A, class B>
decltype(auto) with_defined(const A& a, const B& b, F&& f) {
  if (a.defined() && b.defined()) return std::forward<F>(f)(a, b);
  if (a.defined()) return std::forward<F>(f)(a);
  if (b.defined()) return std::forward<F>(f)(b);
  return std::forward<F>(f)();
}

/// Calls f(a) if `a` is defined, else f().
template <class F, class A>
decltype(auto) with_defined(const A& a, F&& f) {
  if (a.defined()) return std::forward<F>(f)(a);
  return std::forward<F>(f)();
}

}  // namespace distill::ops_detail
