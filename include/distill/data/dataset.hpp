// distill/data/dataset.hpp -- an in-memory labelled set of series, batches, and the data loader.
//
// A Dataset holds [N, C, L] float series (C = 1 for UCR), labels 0..K-1, and each series' true length.
//
// Length rule (varying-length sets): every series sits at the front of its row and positions t >= length[i]
// hold 0, so a batch is always [B, C, L] with the dataset's full column count L (zero padding). Call
// fixed_length(L') for another fixed length: longer rows are cropped to their first L' values, shorter ones
// padded with zeros; lengths are clamped to L'.
//
// DataLoader: seeded shuffling (epoch e uses stream e of the loader's CounterRng, so any epoch can be
// reproduced on its own), batch size clamped to N, and drop_last honoured only when N >= 2B, so the tiny UCR
// training sets (16-30 series) never lose a third of their data. With m_per_class > 0 it samples MCL-style
// batches: B/m distinct classes per batch, m series from each.
#pragma once

#include <algorithm>
#include <cstring>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/rng.hpp"
#include "distill/core/tensor.hpp"

namespace distill::data {

struct Dataset {
  std::string name;
  Tensor<float, 3, Cpu> x;           // [N, C, L]
  std::vector<index_t> labels;       // class ids 0..num_classes-1
  std::vector<index_t> lengths;      // true length of each series (<= L)
  index_t num_classes = 0;
  std::vector<double> class_values;  // original label of each class id (UCR labels such as -1/1 or 3..8)
  bool z_normalized = false;         // the loader z-normalised the series

  index_t size() const noexcept { return x.extent(0); }
  index_t channels() const noexcept { return x.extent(1); }
  index_t length() const noexcept { return x.extent(2); }
  bool varying_length() const {
    return std::any_of(lengths.begin(), lengths.end(), [&](index_t l) { return l != length(); });
  }
  /// Number of series of each class.
  std::vector<index_t> class_counts() const {
    std::vector<index_t> c(static_cast<std::size_t>(num_classes), 0);
    for (index_t y : labels) ++c[static_cast<std::size_t>(y)];
    return c;
  }

  /// Checks the invariants (sizes agree, labels in range, lengths in [1, L]).
  void validate() const {
    const index_t n = size();
    DISTILL_CHECK(static_cast<index_t>(labels.size()) == n && static_cast<index_t>(lengths.size()) == n,
                  "Dataset '", name, "': ", n, " series but ", labels.size(), " labels and ", lengths.size(),
                  " lengths");
    for (index_t i = 0; i < n; ++i) {
      const index_t y = labels[static_cast<std::size_t>(i)], l = lengths[static_cast<std::size_t>(i)];
      DISTILL_CHECK(y >= 0 && y < num_classes, "Dataset '", name, "': label ", y, " of series ", i,
                    " is outside [0, ", num_classes, ")");
      DISTILL_CHECK(l >= 1 && l <= length(), "Dataset '", name, "': length ", l, " of series ", i,
                    " is outside [1, ", length(), "]");
    }
  }

  /// The series at `idx` (in that order, repeats allowed) as a new dataset with its own storage.
  Dataset subset(std::span<const index_t> idx) const {
    Dataset d;
    d.name = name;
    d.num_classes = num_classes;
    d.class_values = class_values;
    d.z_normalized = z_normalized;
    const index_t row = channels() * length();
    d.x = Tensor<float, 3, Cpu>({static_cast<index_t>(idx.size()), channels(), length()});
    for (std::size_t k = 0; k < idx.size(); ++k) {
      const index_t i = idx[k];
      DISTILL_CHECK(i >= 0 && i < size(), "Dataset::subset: index ", i, " out of range for ", size(), " series");
      if (row) std::memcpy(d.x.data() + static_cast<index_t>(k) * row, x.data() + i * row, sizeof(float) * row);
      d.labels.push_back(labels[static_cast<std::size_t>(i)]);
      d.lengths.push_back(lengths[static_cast<std::size_t>(i)]);
    }
    return d;
  }

  /// Crop (first L values) or zero-pad every series to `new_length`; lengths are clamped to it.
  Dataset fixed_length(index_t new_length) const {
    DISTILL_CHECK(new_length >= 1, "Dataset::fixed_length: the length must be >= 1, got ", new_length);
    Dataset d = *this;
    d.x = Tensor<float, 3, Cpu>::zeros({size(), channels(), new_length});
    const index_t keep = std::min(new_length, length());
    for (index_t i = 0; i < size(); ++i)
      for (index_t c = 0; c < channels(); ++c)
        std::memcpy(&d.x(i, c, 0), &x(i, c, 0), sizeof(float) * static_cast<std::size_t>(keep));
    for (auto& l : d.lengths) l = std::min(l, new_length);
    return d;
  }
};

/// A batch: the series (copied out of the dataset), their labels, true lengths and dataset indices.
/// What a method needs of its data, checked before any training starts.
struct DataRequirements {
  index_t min_series = 2;   // contrastive batches need a negative, batch norm two series
  index_t min_classes = 2;  // a linear probe / clustering score needs two classes
};

/// Throws distill::Error naming the dataset and the method when `ds` has fewer series or classes (classes
/// that actually occur) than `req` asks; called by the examples right after loading, before training.
inline void require_trainable(const Dataset& ds, std::string_view method, DataRequirements req = {}) {
  index_t present = 0;
  for (index_t c : ds.class_counts()) present += c > 0;
  DISTILL_CHECK(ds.size() >= req.min_series, "dataset '", ds.name, "' has ", ds.size(), " training series but ",
                method, " needs at least ", req.min_series);
  DISTILL_CHECK(present >= req.min_classes, "dataset '", ds.name, "' has ", present, " class", present == 1 ? "" : "es",
                " in its training split but ", method, " needs at least ", req.min_classes,
                " (its evaluation separates classes)");
}

struct Batch {
  Tensor<float, 3, Cpu> x;  // [B, C, L]
  std::vector<index_t> labels;
  std::vector<index_t> lengths;
  std::vector<index_t> indices;
  index_t size() const noexcept { return x.extent(0); }
};

inline Batch gather(const Dataset& ds, std::span<const index_t> idx) {
  Dataset sub = ds.subset(idx);
  Batch b;
  b.x = std::move(sub.x);
  b.labels = std::move(sub.labels);
  b.lengths = std::move(sub.lengths);
  b.indices.assign(idx.begin(), idx.end());
  return b;
}

/// In-place Fisher-Yates shuffle driven by a CounterRng.
template <class T>
void shuffle(std::vector<T>& v, CounterRng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(rng.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

struct LoaderOptions {
  index_t batch_size = 64;
  bool shuffle = true;
  /// Drop the last incomplete batch; honoured only when N >= 2 * batch_size.
  bool drop_last = true;
  /// > 0: MCL sampler with this many series per class in every batch (batch_size must be a multiple of it).
  index_t m_per_class = 0;
};

/// Batches of size min(B, N) per epoch. Epoch plans are pure functions of (rng seed/stream, epoch).
class DataLoader {
public:
  DataLoader(Dataset ds, LoaderOptions opt, CounterRng rng) : ds_(std::move(ds)), opt_(opt), rng_(rng) {
    const index_t n = ds_.size();
    DISTILL_CHECK(n >= 1, "DataLoader: dataset '", ds_.name, "' is empty");
    DISTILL_CHECK(opt.batch_size >= 1, "DataLoader: batch size must be >= 1, got ", opt.batch_size);
    DISTILL_CHECK(static_cast<index_t>(ds_.labels.size()) == n, "DataLoader: dataset '", ds_.name, "' has ", n,
                  " series but ", ds_.labels.size(), " labels");
    batch_ = std::min(opt.batch_size, n);
    drop_ = opt.drop_last && n >= 2 * opt.batch_size;
    if (opt.m_per_class > 0) {
      const index_t m = opt.m_per_class;
      DISTILL_CHECK(opt.batch_size % m == 0, "DataLoader: m-per-class sampling needs the batch size (",
                    opt.batch_size, ") to be a multiple of m (", m, ")");
      DISTILL_CHECK(opt.batch_size / m <= ds_.num_classes, "DataLoader: m-per-class sampling with batch size ",
                    opt.batch_size, " and m = ", m, " needs ", opt.batch_size / m, " classes per batch, but '",
                    ds_.name, "' has ", ds_.num_classes, " (use m = batch_size / num_classes)");
      for (index_t c : ds_.class_counts())
        DISTILL_CHECK(c > 0, "DataLoader: m-per-class sampling needs every class of '", ds_.name,
                      "' to have at least one series");
      batch_ = opt.batch_size;
      num_batches_ = std::max<index_t>(1, n / batch_);
    } else {
      num_batches_ = drop_ ? n / batch_ : (n + batch_ - 1) / batch_;
    }
  }

  const Dataset& dataset() const noexcept { return ds_; }
  const LoaderOptions& options() const noexcept { return opt_; }
  /// The batch size in use: min(B, N) (B itself for m-per-class sampling).
  index_t batch_size() const noexcept { return batch_; }
  /// Whether the last incomplete batch is dropped (drop_last && N >= 2B).
  bool drops_last() const noexcept { return drop_; }
  index_t num_batches() const noexcept { return num_batches_; }

  /// Dataset indices of every batch of `epoch`.
  std::vector<std::vector<index_t>> epoch_plan(index_t epoch) const {
    CounterRng rng = rng_.split(static_cast<std::uint64_t>(epoch));
    if (opt_.m_per_class > 0) return m_per_class_plan(rng);
    const index_t n = ds_.size();
    std::vector<index_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), index_t(0));
    if (opt_.shuffle) shuffle(order, rng);
    std::vector<std::vector<index_t>> plan;
    for (index_t b = 0; b < num_batches_; ++b) {
      const index_t s = b * batch_, e = std::min(n, s + batch_);
      plan.emplace_back(order.begin() + s, order.begin() + e);
    }
    return plan;
  }

  /// Batch i of epoch e.
  Batch batch(index_t epoch, index_t i) const {
    DISTILL_CHECK(i >= 0 && i < num_batches_, "DataLoader::batch: batch ", i, " out of range for ", num_batches_,
                  " batches per epoch");
    auto plan = epoch_plan(epoch);
    return gather(ds_, plan[static_cast<std::size_t>(i)]);
  }
  /// All batches of epoch e.
  std::vector<Batch> epoch(index_t e) const {
    std::vector<Batch> out;
    for (const auto& idx : epoch_plan(e)) out.push_back(gather(ds_, idx));
    return out;
  }

private:
  // MCL sampler: per batch, B/m distinct classes drawn at random; per class, m series taken from a shuffled
  // pool that is reshuffled when exhausted (a class with fewer than m series repeats series).
  std::vector<std::vector<index_t>> m_per_class_plan(CounterRng& rng) const {
    const index_t k = ds_.num_classes, m = opt_.m_per_class, per_batch = batch_ / m;
    std::vector<std::vector<index_t>> pools(static_cast<std::size_t>(k));
    for (index_t i = 0; i < ds_.size(); ++i) pools[static_cast<std::size_t>(ds_.labels[static_cast<std::size_t>(i)])].push_back(i);
    std::vector<std::size_t> cursor(static_cast<std::size_t>(k), 0);
    for (auto& p : pools) shuffle(p, rng);
    std::vector<index_t> classes(static_cast<std::size_t>(k));
    std::vector<std::vector<index_t>> plan;
    for (index_t b = 0; b < num_batches_; ++b) {
      std::iota(classes.begin(), classes.end(), index_t(0));
      // Partial Fisher-Yates: the first per_batch entries are a uniform random subset.
      for (index_t j = 0; j < per_batch; ++j) {
        const index_t r = j + static_cast<index_t>(rng.below(static_cast<std::uint64_t>(k - j)));
        std::swap(classes[static_cast<std::size_t>(j)], classes[static_cast<std::size_t>(r)]);
      }
      std::vector<index_t> idx;
      idx.reserve(static_cast<std::size_t>(batch_));
      for (index_t j = 0; j < per_batch; ++j) {
        const auto c = static_cast<std::size_t>(classes[static_cast<std::size_t>(j)]);
        for (index_t t = 0; t < m; ++t) {
          if (cursor[c] == pools[c].size()) {
            shuffle(pools[c], rng);
            cursor[c] = 0;
          }
          idx.push_back(pools[c][cursor[c]++]);
        }
      }
      plan.push_back(std::move(idx));
    }
    return plan;
  }

  Dataset ds_;
  LoaderOptions opt_;
  CounterRng rng_;
  index_t batch_ = 0;
  bool drop_ = false;
  index_t num_batches_ = 0;
};

}  // namespace distill::data
