// tests/support/compare.hpp -- random inputs and the relative error measure shared by the kernel tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "distill/core/rng.hpp"

namespace distill::test {

/// n values uniform in [-1, 1).
template <class T>
std::vector<T> random_vec(CounterRng& rng, index_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& e : v) e = static_cast<T>(rng.uniform(-1, 1));
  return v;
}

/// max |a - r| / max(1, max |r|)
template <class T>
double rel_err(const std::vector<T>& a, const std::vector<double>& r) {
  double m = 0, s = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::abs(double(a[i]) - r[i]));
    s = std::max(s, std::abs(r[i]));
  }
  return m / s;
}

}  // namespace distill::test
