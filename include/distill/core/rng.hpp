// distill/core/rng.hpp -- a seeded, counter-based random number generator.
//
// Every draw is a pure function of (seed, stream, counter): splitmix64 of a mixed key. Streams let independent
// consumers (weight init, augmentations, shuffling) draw without disturbing each other, and any position can be
// reproduced without replaying the sequence. No global state.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace distill {

class CounterRng {
public:
  constexpr CounterRng() = default;
  constexpr explicit CounterRng(std::uint64_t seed, std::uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  static constexpr std::uint64_t mix(std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// The value at an explicit position: does not advance the counter.
  constexpr std::uint64_t at(std::uint64_t counter) const {
    return mix(mix(seed_ ^ mix(stream_ + 0x632BE59BD9B4E019ull)) ^ counter);
  }
  constexpr std::uint64_t next_u64() { return at(counter_++); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) { return n ? static_cast<std::uint64_t>(uniform() * static_cast<double>(n)) % n : 0; }
  /// Standard normal (Box-Muller, one value per two uniforms, no cached state).
  double normal() {
    double u1 = uniform();
    const double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  /// A new independent stream derived from this generator's seed.
  constexpr CounterRng split(std::uint64_t stream) const { return CounterRng(mix(seed_ ^ stream_), stream); }

  constexpr std::uint64_t seed() const { return seed_; }
  constexpr std::uint64_t stream() const { return stream_; }
  constexpr std::uint64_t counter() const { return counter_; }
  constexpr void set_counter(std::uint64_t c) { counter_ = c; }
  /// The whole state is (seed, stream, counter): two generators with equal state draw the same sequence.
  friend constexpr bool operator==(const CounterRng&, const CounterRng&) = default;

private:
  std::uint64_t seed_ = 0;
  std::uint64_t stream_ = 0;
  std::uint64_t counter_ = 0;
};

}  // namespace distill
