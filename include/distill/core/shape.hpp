// distill/core/shape.hpp -- runtime extents of a tensor whose rank is static.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <sstream>

namespace distill {

using index_t = std::int64_t;

template <std::size_t Rank>
using Shape = std::array<index_t, Rank>;

template <std::size_t Rank>
constexpr index_t numel(const Shape<Rank>& s) {
  index_t n = 1;
  for (auto e : s) n *= e;
  return n;
}

template <std::size_t Rank>
std::string to_string(const Shape<Rank>& s) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < Rank; ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

/// Row-major strides (in elements) for a contiguous tensor.
template <std::size_t Rank>
constexpr Shape<Rank> contiguous_strides(const Shape<Rank>& s) {
  Shape<Rank> st{};
  index_t acc = 1;
  for (std::size_t i = Rank; i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

}  // namespace distill
