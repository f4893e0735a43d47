// distill/eval/knn.hpp -- k-nearest-neighbour classification of embeddings.
//
// Each query row takes the k training rows nearest to it (Euclidean or cosine distance; distance ties go to
// the lower training index) and predicts the majority class among them; a vote tie goes to the smallest class
// id, as scikit-learn's KNeighborsClassifier with uniform weights. Computed in double; queries are split
// over `threads` OpenMP threads (each query independent: results do not depend on the thread count).
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <utility>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/tensor.hpp"

namespace distill::eval {

enum class Distance { Euclidean, Cosine };

template <class T>
std::vector<index_t> knn_predict(const Tensor<T, 2, Cpu>& train, std::span<const index_t> train_labels,
                                 const Tensor<T, 2, Cpu>& query, index_t k, Distance metric = Distance::Euclidean,
                                 int threads = 1) {
  const index_t n = train.extent(0), d = train.extent(1), m = query.extent(0);
  DISTILL_CHECK(query.extent(1) == d, "knn_predict: training embeddings ", to_string(train.shape()),
                " and queries ", to_string(query.shape()), " differ in dimension");
  DISTILL_CHECK(static_cast<index_t>(train_labels.size()) == n, "knn_predict: ", train_labels.size(), " labels for ",
                n, " training rows");
  DISTILL_CHECK(k >= 1 && k <= n, "knn_predict: k = ", k, " must be in [1, ", n, "]");
  DISTILL_CHECK(threads >= 1, "knn_predict: threads must be >= 1, got ", threads);
  index_t num_classes = 0;
  for (index_t y : train_labels) {
    DISTILL_CHECK(y >= 0, "knn_predict: negative label ", y);
    num_classes = std::max(num_classes, y + 1);
  }
  auto norms = [&](const Tensor<T, 2, Cpu>& a) {
    std::vector<double> r(static_cast<std::size_t>(a.extent(0)));
    for (index_t i = 0; i < a.extent(0); ++i) {
      double s = 0;
      for (index_t j = 0; j < d; ++j) s += double(a(i, j)) * double(a(i, j));
      r[static_cast<std::size_t>(i)] = std::sqrt(s);
    }
    return r;
  };
  const std::vector<double> tn = metric == Distance::Cosine ? norms(train) : std::vector<double>{};
  const std::vector<double> qn = metric == Distance::Cosine ? norms(query) : std::vector<double>{};
  std::vector<index_t> pred(static_cast<std::size_t>(m));
#pragma omp parallel num_threads(threads)
  {
    std::vector<std::pair<double, index_t>> dist(static_cast<std::size_t>(n));
    std::vector<index_t> votes(static_cast<std::size_t>(num_classes));
#pragma omp for schedule(static)
    for (index_t q = 0; q < m; ++q) {
      for (index_t i = 0; i < n; ++i) {
        double s = 0;
        if (metric == Distance::Euclidean) {
          for (index_t j = 0; j < d; ++j) {
            const double t = double(query(q, j)) - double(train(i, j));
            s += t * t;
          }
        } else {
          for (index_t j = 0; j < d; ++j) s += double(query(q, j)) * double(train(i, j));
          const double den = qn[static_cast<std::size_t>(q)] * tn[static_cast<std::size_t>(i)];
          s = 1.0 - (den > 0 ? s / den : 0.0);
        }
        dist[static_cast<std::size_t>(i)] = {s, i};
      }
      std::partial_sort(dist.begin(), dist.begin() + k, dist.end());
      std::fill(votes.begin(), votes.end(), 0);
      for (index_t j = 0; j < k; ++j) ++votes[static_cast<std::size_t>(train_labels[static_cast<std::size_t>(dist[static_cast<std::size_t>(j)].second)])];
      pred[static_cast<std::size_t>(q)] = static_cast<index_t>(std::max_element(votes.begin(), votes.end()) - votes.begin());
    }
  }
  return pred;
}

/// Accuracy of knn_predict on labelled queries.
template <class T>
double knn_accuracy(const Tensor<T, 2, Cpu>& train, std::span<const index_t> train_labels, const Tensor<T, 2, Cpu>& test,
                    std::span<const index_t> test_labels, index_t k = 1, Distance metric = Distance::Euclidean,
                    int threads = 1) {
  DISTILL_CHECK(static_cast<index_t>(test_labels.size()) == test.extent(0), "knn_accuracy: ", test_labels.size(),
                " labels for ", test.extent(0), " test rows");
  const auto pred = knn_predict(train, train_labels, test, k, metric, threads);
  std::size_t ok = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) ok += pred[i] == test_labels[i];
  return pred.empty() ? 0.0 : double(ok) / double(pred.size());
}

}  // namespace distill::eval
