// distill/problems/similarity.hpp -- the constants of the fused similarity losses both backends share.
//
// The fused contrastive and distillation losses (docs/losses.md) normalise rows with F.normalize's epsilon and, when
// every logit is bounded by a known |x| <= bound (normalised rows: bound = 1 / tau), shift all logits by that
// constant instead of tracking row maxima: fixed_shift_ok<T>(bound) says when the shifted range still keeps exp()
// inside T's normal range. The Cpu engines (cpu/fused_losses.hpp) and the Cuda side (losses/fused_cuda.hpp) take both
// from here, so the two devices make the same choice for the same inputs.
#pragma once

#include <type_traits>

namespace distill::problems {

/// F.normalize's epsilon: rows are divided by max(||x||, eps).
inline constexpr double kNormEps = 1e-12;

/// Largest logit range (max - min) for which one fixed shift keeps exp() inside T's normal range.
template <class T>
constexpr double fixed_shift_range() {
  return std::is_same_v<T, float> ? 80.0 : 700.0;
}
/// True if logits bounded by |x| <= bound can all be shifted by the constant `bound`.
template <class T>
constexpr bool fixed_shift_ok(double bound) {
  return 2.0 * bound <= fixed_shift_range<T>();
}

}  // namespace distill::problems
