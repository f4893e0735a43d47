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

/// True when every partial product of the non-zero extents in [first, last) fits in index_t: then numel() of a
/// shape made of them cannot overflow, even when a zero extent makes the total 0. Readers of untrusted files check
/// this before building a Shape.
template <class It>
constexpr bool extents_fit(It first, It last) {
  index_t n = 1;
  for (; first != last; ++first) {
    const auto e = static_cast<index_t>(*first);
    if (e < 0) return false;
    if (e != 0 && __builtin_mul_overflow(n, e, &n)) return false;
  }
  return true;
}

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
