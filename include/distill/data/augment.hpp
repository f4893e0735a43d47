// distill/data/augment.hpp -- time-series augmentations on [B, C, L] host tensors, and two-view batches.
//
// Parameters: docs/dcrls.md, "Augmentations" (TS-TCC's values and the DCRLS pair; see AugmentConfig's presets). Every function returns a new
// tensor and is a pure function of (input, parameters, rng state): each call draws one 64-bit key from `rng`,
// and series b uses the stream CounterRng(key, b), so results do not depend on thread count or batch order.
//
// `lengths` (optional, one per series) restricts an augmentation to the first lengths[b] steps of series b;
// the padding after it is left as it is (zero for UCR data). Every channel of a series gets the same crop,
// permutation and mask; scaling draws one factor per (series, channel); jitter one value per element.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/rng.hpp"
#include "distill/core/tensor.hpp"
#include "distill/data/dataset.hpp"

namespace distill::data {

namespace detail {
inline index_t length_of(std::span<const index_t> lengths, index_t b, index_t L) {
  return lengths.empty() ? L : std::clamp<index_t>(lengths[static_cast<std::size_t>(b)], 0, L);
}
inline void check_lengths(const Tensor<float, 3, Cpu>& x, std::span<const index_t> lengths, const char* what) {
  DISTILL_CHECK(lengths.empty() || static_cast<index_t>(lengths.size()) == x.extent(0), what, ": ", lengths.size(),
                " lengths for a batch of shape ", to_string(x.shape()));
}
}  // namespace detail

/// x + N(0, sigma^2) noise on every element (within each series' length).
inline Tensor<float, 3, Cpu> jitter(const Tensor<float, 3, Cpu>& x, double sigma, CounterRng& rng,
                                   std::span<const index_t> lengths = {}) {
  detail::check_lengths(x, lengths, "jitter");
  DISTILL_CHECK(sigma >= 0, "jitter: sigma must be >= 0, got ", sigma);
  const std::uint64_t key = rng.next_u64();
  Tensor<float, 3, Cpu> y = x.clone();
  const index_t B = x.extent(0), C = x.extent(1), L = x.extent(2);
  for (index_t b = 0; b < B; ++b) {
    CounterRng r(key, static_cast<std::uint64_t>(b));
    const index_t len = detail::length_of(lengths, b, L);
    for (index_t c = 0; c < C; ++c)
      for (index_t t = 0; t < len; ++t) y(b, c, t) += static_cast<float>(r.normal(0.0, sigma));
  }
  return y;
}

/// Multiplies each (series, channel) by a factor drawn from N(mean, sigma^2).
inline Tensor<float, 3, Cpu> scale(const Tensor<float, 3, Cpu>& x, double mean, double sigma, CounterRng& rng,
                                  std::span<const index_t> lengths = {}) {
  detail::check_lengths(x, lengths, "scale");
  DISTILL_CHECK(sigma >= 0, "scale: sigma must be >= 0, got ", sigma);
  const std::uint64_t key = rng.next_u64();
  Tensor<float, 3, Cpu> y = x.clone();
  const index_t B = x.extent(0), C = x.extent(1), L = x.extent(2);
  for (index_t b = 0; b < B; ++b) {
    CounterRng r(key, static_cast<std::uint64_t>(b));
    const index_t len = detail::length_of(lengths, b, L);
    for (index_t c = 0; c < C; ++c) {
      const float f = static_cast<float>(r.normal(mean, sigma));
      for (index_t t = 0; t < len; ++t) y(b, c, t) *= f;
    }
  }
  return y;
}

/// Splits each series at k-1 distinct random points (k uniform in [1, max_segments], at most its length)
/// and concatenates the k segments in a random order (TS-TCC's "random" permutation mode).
inline Tensor<float, 3, Cpu> permute_segments(const Tensor<float, 3, Cpu>& x, index_t max_segments, CounterRng& rng,
                                             std::span<const index_t> lengths = {}) {
  detail::check_lengths(x, lengths, "permute_segments");
  DISTILL_CHECK(max_segments >= 1, "permute_segments: max_segments must be >= 1, got ", max_segments);
  const std::uint64_t key = rng.next_u64();
  Tensor<float, 3, Cpu> y = x.clone();
  const index_t B = x.extent(0), C = x.extent(1), L = x.extent(2);
  std::vector<index_t> cand, cuts, order;
  for (index_t b = 0; b < B; ++b) {
    CounterRng r(key, static_cast<std::uint64_t>(b));
    const index_t len = detail::length_of(lengths, b, L);
    const index_t k = std::min<index_t>(1 + static_cast<index_t>(r.below(static_cast<std::uint64_t>(max_segments))), len);
    if (k < 2) continue;
    cand.resize(static_cast<std::size_t>(len - 1));
    for (index_t i = 0; i < len - 1; ++i) cand[static_cast<std::size_t>(i)] = i + 1;
    for (index_t j = 0; j < k - 1; ++j) {  // partial Fisher-Yates: k-1 distinct cut points in [1, len-1]
      const index_t s = j + static_cast<index_t>(r.below(static_cast<std::uint64_t>(len - 1 - j)));
      std::swap(cand[static_cast<std::size_t>(j)], cand[static_cast<std::size_t>(s)]);
    }
    cuts.assign(cand.begin(), cand.begin() + (k - 1));
    std::sort(cuts.begin(), cuts.end());
    cuts.insert(cuts.begin(), 0);
    cuts.push_back(len);
    order.resize(static_cast<std::size_t>(k));
    for (index_t i = 0; i < k; ++i) order[static_cast<std::size_t>(i)] = i;
    shuffle(order, r);
    for (index_t c = 0; c < C; ++c) {
      index_t out = 0;
      for (index_t s : order)
        for (index_t t = cuts[static_cast<std::size_t>(s)]; t < cuts[static_cast<std::size_t>(s) + 1]; ++t)
          y(b, c, out++) = x(b, c, t);
    }
  }
  return y;
}

/// Random crop of round(ratio * length) steps (at least 2), linearly resampled back to the full length.
inline Tensor<float, 3, Cpu> crop_resize(const Tensor<float, 3, Cpu>& x, double ratio, CounterRng& rng,
                                        std::span<const index_t> lengths = {}) {
  detail::check_lengths(x, lengths, "crop_resize");
  DISTILL_CHECK(ratio > 0 && ratio <= 1, "crop_resize: ratio must be in (0, 1], got ", ratio);
  const std::uint64_t key = rng.next_u64();
  Tensor<float, 3, Cpu> y = x.clone();
  const index_t B = x.extent(0), C = x.extent(1), L = x.extent(2);
  for (index_t b = 0; b < B; ++b) {
    CounterRng r(key, static_cast<std::uint64_t>(b));
    const index_t len = detail::length_of(lengths, b, L);
    if (len < 2) continue;
    const index_t w = std::clamp<index_t>(static_cast<index_t>(std::lround(ratio * double(len))), 2, len);
    const index_t start = static_cast<index_t>(r.below(static_cast<std::uint64_t>(len - w + 1)));
    const double step = double(w - 1) / double(len - 1);
    for (index_t c = 0; c < C; ++c)
      for (index_t t = 0; t < len; ++t) {
        const double p = double(t) * step;
        const index_t i0 = std::min<index_t>(static_cast<index_t>(p), w - 1);
        const index_t i1 = std::min<index_t>(i0 + 1, w - 1);
        const double f = p - double(i0);
        y(b, c, t) = static_cast<float>((1 - f) * x(b, c, start + i0) + f * x(b, c, start + i1));
      }
  }
  return y;
}

/// Sets time steps to 0 on every channel: a fraction `ratio` of independent steps (each masked with
/// probability ratio), or one contiguous span of round(ratio * length) steps.
inline Tensor<float, 3, Cpu> time_mask(const Tensor<float, 3, Cpu>& x, double ratio, CounterRng& rng,
                                      std::span<const index_t> lengths = {}, bool contiguous = false) {
  detail::check_lengths(x, lengths, "time_mask");
  DISTILL_CHECK(ratio >= 0 && ratio <= 1, "time_mask: ratio must be in [0, 1], got ", ratio);
  const std::uint64_t key = rng.next_u64();
  Tensor<float, 3, Cpu> y = x.clone();
  const index_t B = x.extent(0), C = x.extent(1), L = x.extent(2);
  for (index_t b = 0; b < B; ++b) {
    CounterRng r(key, static_cast<std::uint64_t>(b));
    const index_t len = detail::length_of(lengths, b, L);
    if (len < 1) continue;
    if (contiguous) {
      const index_t span = std::min<index_t>(static_cast<index_t>(std::lround(ratio * double(len))), len);
      const index_t start = static_cast<index_t>(r.below(static_cast<std::uint64_t>(len - span + 1)));
      for (index_t c = 0; c < C; ++c)
        for (index_t t = start; t < start + span; ++t) y(b, c, t) = 0.0f;
    } else {
      for (index_t t = 0; t < len; ++t)
        if (r.uniform() < ratio)
          for (index_t c = 0; c < C; ++c) y(b, c, t) = 0.0f;
    }
  }
  return y;
}

/// A view's augmentation chain, applied in the order crop -> permute -> scale -> jitter -> mask. A field at
/// its neutral value (ratio 1, segments <= 1, sigma 0, mask 0) switches that step off.
struct AugmentConfig {
  double crop_ratio = 1.0;
  index_t max_segments = 0;
  double scale_mean = 1.0;
  double scale_sigma = 0.0;
  double jitter_sigma = 0.0;
  double mask_ratio = 0.0;
  bool mask_contiguous = false;

  /// The DCRLS pair (docs/dcrls.md, "Augmentations"), view 1: jitter (sigma 0.03) + scaling (N(1, 0.1^2)).
  static AugmentConfig dcrls_view1() {
    AugmentConfig a;
    a.scale_sigma = 0.1;
    a.jitter_sigma = 0.03;
    return a;
  }
  /// §2.6 view 2: permutation of at most 5 segments + jitter (sigma 0.03).
  static AugmentConfig dcrls_view2() {
    AugmentConfig a;
    a.max_segments = 5;
    a.jitter_sigma = 0.03;
    return a;
  }
  /// A time-series analogue of MoCo-v2's "aug+" pipeline (DisCo, MoCo): a random crop of 80 % of the series resized
  /// back to full length, scaling by N(1, 0.1^2), jitter (sigma 0.03). Both views are independent draws of it.
  static AugmentConfig moco_view() {
    AugmentConfig a;
    a.crop_ratio = 0.8;
    a.scale_sigma = 0.1;
    a.jitter_sigma = 0.03;
    return a;
  }
  /// TS-TCC weak view: scaling by N(2, jitter_scale_ratio^2) (1.1 for HAR).
  static AugmentConfig tstcc_weak(double jitter_scale_ratio = 1.1) {
    AugmentConfig a;
    a.scale_mean = 2.0;
    a.scale_sigma = jitter_scale_ratio;
    return a;
  }
  /// TS-TCC strong view: permutation into 1..max_seg-1 segments, then jitter with sigma jitter_ratio.
  static AugmentConfig tstcc_strong(index_t max_seg = 8, double jitter_ratio = 0.8) {
    AugmentConfig a;
    a.max_segments = std::max<index_t>(1, max_seg - 1);
    a.jitter_sigma = jitter_ratio;
    return a;
  }
};

/// Applies a view's chain. Each enabled step draws one key from `rng`.
inline Tensor<float, 3, Cpu> augment(const Tensor<float, 3, Cpu>& x, const AugmentConfig& a, CounterRng& rng,
                                    std::span<const index_t> lengths = {}) {
  Tensor<float, 3, Cpu> y = x.clone();
  if (a.crop_ratio < 1.0) y = crop_resize(y, a.crop_ratio, rng, lengths);
  if (a.max_segments > 1) y = permute_segments(y, a.max_segments, rng, lengths);
  if (a.scale_sigma > 0 || a.scale_mean != 1.0) y = scale(y, a.scale_mean, a.scale_sigma, rng, lengths);
  if (a.jitter_sigma > 0) y = jitter(y, a.jitter_sigma, rng, lengths);
  if (a.mask_ratio > 0) y = time_mask(y, a.mask_ratio, rng, lengths, a.mask_contiguous);
  return y;
}

/// Two independently augmented views of one batch (contrastive training).
struct TwoViewBatch {
  Tensor<float, 3, Cpu> view1;
  Tensor<float, 3, Cpu> view2;
  std::vector<index_t> labels;
  std::vector<index_t> lengths;
  std::vector<index_t> indices;
  index_t size() const noexcept { return view1.extent(0); }
};

inline TwoViewBatch make_two_views(const Batch& b, const AugmentConfig& a1, const AugmentConfig& a2, CounterRng& rng) {
  CounterRng r1(rng.next_u64(), 1), r2(rng.next_u64(), 2);
  TwoViewBatch t;
  t.view1 = augment(b.x, a1, r1, b.lengths);
  t.view2 = augment(b.x, a2, r2, b.lengths);
  t.labels = b.labels;
  t.lengths = b.lengths;
  t.indices = b.indices;
  return t;
}

}  // namespace distill::data
