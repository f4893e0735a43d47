// distill/core/error.hpp -- the one error type and the checking macros.
//
// Every runtime check in distill throws distill::Error with a message that names the shapes, values, options or
// files at fault, followed by the source location of the check: "what is wrong (distill: file:line)". The
// message leads, the location follows, so a user reads what they did wrong first. Compile-time facts (rank, dtype, device, a layer's channel counts)
// are checked with static_assert instead.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace distill {

class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

namespace detail {
/// Builds the message and throws. Out of line and cold: a check site costs a call, not an inlined ostringstream.
template <class... Args>
[[noreturn, gnu::cold, gnu::noinline]] void fail_with(const char* file, int line, const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  os << " (distill: " << file << ":" << line << ")";
  throw Error(os.str());
}
/// The pieces decay before they choose the instantiation: a string literal is a const char*, whatever its length
/// (as arrays every message length was its own instantiation of the whole formatting code).
template <class... Args>
[[noreturn]] inline void fail(const char* file, int line, Args&&... args) {
  fail_with<std::decay_t<Args>...>(file, line, args...);
}
}  // namespace detail

}  // namespace distill

/// DISTILL_CHECK(cond, msg...): throw distill::Error with the message, then this file and line, when `cond` is false.
/// The message pieces are streamed with operator<<, so shapes print as "[2, 3, 5]".
#define DISTILL_CHECK(cond, ...)                                                                             \
  do {                                                                                                       \
    if (!(cond)) ::distill::detail::fail(__FILE__, __LINE__, __VA_ARGS__);                                   \
  } while (0)

#define DISTILL_FAIL(...) ::distill::detail::fail(__FILE__, __LINE__, __VA_ARGS__)
