// distill/eval/metrics.hpp -- accuracy and the clustering agreement scores (NMI, Rand Index, ARI).
//
// Labelings are integer vectors of equal length; any integer values work (they are compacted internally),
// so cluster ids need not match class ids. Definitions follow scikit-learn 1.2 (the golden values in
// tests/golden/metrics.txt come from it):
//   * NMI = MI / mean(H(true), H(pred)) ("arithmetic" normalisation, sklearn's default), natural logs;
//     1 when both labelings have one class (or none), 0 when MI = 0.
//   * Rand Index = (agreeing pairs) / (all pairs); 1 for fewer than 2 items.
//   * ARI = Hubert-Arabie adjusted Rand Index from the pair confusion matrix; 1 on full agreement.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/shape.hpp"

namespace distill::eval {

/// Fraction of positions where pred == truth.
inline double accuracy(std::span<const index_t> pred, std::span<const index_t> truth) {
  DISTILL_CHECK(pred.size() == truth.size(), "accuracy: ", pred.size(), " predictions for ", truth.size(), " labels");
  DISTILL_CHECK(!pred.empty(), "accuracy: no predictions");
  std::size_t ok = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) ok += pred[i] == truth[i];
  return double(ok) / double(pred.size());
}

/// Contingency table: rows = distinct values of `a` (sorted), cols = distinct values of `b`.
struct Contingency {
  std::vector<std::int64_t> counts;  // rows * cols
  std::vector<std::int64_t> row_sums, col_sums;
  std::size_t rows = 0, cols = 0;
  std::int64_t n = 0;
  std::int64_t at(std::size_t r, std::size_t c) const { return counts[r * cols + c]; }
};

inline Contingency contingency(std::span<const index_t> a, std::span<const index_t> b) {
  DISTILL_CHECK(a.size() == b.size(), "contingency: labelings of different lengths (", a.size(), " and ", b.size(), ")");
  auto compact = [](std::span<const index_t> v, std::size_t& k) {
    std::map<index_t, std::size_t> ids;
    for (index_t x : v) ids.emplace(x, 0);
    std::size_t i = 0;
    for (auto& [key, id] : ids) id = i++;
    k = ids.size();
    std::vector<std::size_t> out(v.size());
    for (std::size_t j = 0; j < v.size(); ++j) out[j] = ids[v[j]];
    return out;
  };
  Contingency c;
  const auto ia = compact(a, c.rows), ib = compact(b, c.cols);
  c.counts.assign(c.rows * c.cols, 0);
  c.row_sums.assign(c.rows, 0);
  c.col_sums.assign(c.cols, 0);
  for (std::size_t j = 0; j < a.size(); ++j) {
    ++c.counts[ia[j] * c.cols + ib[j]];
    ++c.row_sums[ia[j]];
    ++c.col_sums[ib[j]];
  }
  c.n = static_cast<std::int64_t>(a.size());
  return c;
}

namespace detail {
inline double entropy(const std::vector<std::int64_t>& sums, std::int64_t n) {
  double h = 0;
  for (auto s : sums)
    if (s > 0) {
      const double p = double(s) / double(n);
      h -= p * std::log(p);
    }
  return h;
}
inline double comb2(std::int64_t k) { return 0.5 * double(k) * double(k - 1); }
}  // namespace detail

/// Mutual information (nats) between two labelings.
inline double mutual_information(std::span<const index_t> truth, std::span<const index_t> pred) {
  const Contingency c = contingency(truth, pred);
  double mi = 0;
  const double n = double(c.n);
  for (std::size_t r = 0; r < c.rows; ++r)
    for (std::size_t k = 0; k < c.cols; ++k) {
      const auto nij = c.at(r, k);
      if (!nij) continue;
      mi += double(nij) / n * std::log(double(nij) * n / (double(c.row_sums[r]) * double(c.col_sums[k])));
    }
  return std::max(mi, 0.0);
}

/// Normalised mutual information with arithmetic-mean normalisation (sklearn's default).
inline double nmi(std::span<const index_t> truth, std::span<const index_t> pred) {
  const Contingency c = contingency(truth, pred);
  if ((c.rows == 1 && c.cols == 1) || (c.rows == 0 && c.cols == 0)) return 1.0;
  const double mi = mutual_information(truth, pred);
  if (mi == 0) return 0.0;
  const double h = 0.5 * (detail::entropy(c.row_sums, c.n) + detail::entropy(c.col_sums, c.n));
  return mi / std::max(h, 2.220446049250313e-16);
}

/// Pair counts: same cluster in both, in truth only, in pred only, in neither (each unordered pair once).
struct PairCounts {
  double both = 0, truth_only = 0, pred_only = 0, neither = 0;
};

inline PairCounts pair_counts(std::span<const index_t> truth, std::span<const index_t> pred) {
  const Contingency c = contingency(truth, pred);
  double same_both = 0, same_truth = 0, same_pred = 0;
  for (auto v : c.counts) same_both += detail::comb2(v);
  for (auto v : c.row_sums) same_truth += detail::comb2(v);
  for (auto v : c.col_sums) same_pred += detail::comb2(v);
  PairCounts p;
  p.both = same_both;
  p.truth_only = same_truth - same_both;
  p.pred_only = same_pred - same_both;
  p.neither = detail::comb2(c.n) - same_truth - same_pred + same_both;
  return p;
}

/// Rand Index: fraction of item pairs on which the two labelings agree.
inline double rand_index(std::span<const index_t> truth, std::span<const index_t> pred) {
  const PairCounts p = pair_counts(truth, pred);
  const double total = p.both + p.truth_only + p.pred_only + p.neither;
  const double agree = p.both + p.neither;
  if (total == 0 || agree == total) return 1.0;
  return agree / total;
}

/// Adjusted Rand Index (Hubert and Arabie).
inline double adjusted_rand_index(std::span<const index_t> truth, std::span<const index_t> pred) {
  const PairCounts p = pair_counts(truth, pred);
  // In ordered-pair terms (as sklearn's pair_confusion_matrix): tp, fp, fn, tn are twice the unordered ones;
  // the factor cancels in the ratio.
  const double tp = p.both, fn = p.truth_only, fp = p.pred_only, tn = p.neither;
  if (fn == 0 && fp == 0) return 1.0;
  return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn));
}

}  // namespace distill::eval
