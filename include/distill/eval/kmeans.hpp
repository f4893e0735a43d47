// distill/eval/kmeans.hpp -- k-means (Lloyd) with greedy k-means++ initialisation and seeded restarts.
//
// * Init: greedy k-means++ (as scikit-learn): the first centre is a uniform draw; each further centre is the
//   best of 2 + floor(ln k) candidates drawn with probability proportional to D(x)^2, "best" meaning the
//   lowest resulting potential.
// * Lloyd iterations until the assignments stop changing or the total squared centre shift is at most
//   tol * mean(per-feature variance) (scikit-learn's tolerance), at most max_iter; an empty cluster takes the
//   point farthest from its centre.
// * n_init restarts, restart r drawing from CounterRng(seed, r); the lowest inertia wins (first on ties).
// Computation is in double. The assignment step runs on `threads` OpenMP threads (each point independent, so
// results do not depend on the thread count).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/rng.hpp"
#include "distill/core/tensor.hpp"

namespace distill::eval {

struct KMeansOptions {
  index_t k = 2;
  int n_init = 10;
  int max_iter = 300;
  double tol = 1e-4;
  std::uint64_t seed = 0;
  int threads = 1;
};

struct KMeansResult {
  std::vector<index_t> labels;  // cluster of each point
  std::vector<double> centers;  // k * D, row-major
  double inertia = 0;           // sum of squared distances to the assigned centres
  int iterations = 0;           // Lloyd iterations of the winning restart
  int best_init = 0;            // index of the winning restart
};

namespace detail {
inline double sqdist(const double* a, const double* b, index_t d) {
  double s = 0;
  for (index_t j = 0; j < d; ++j) {
    const double t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

/// Assigns every point to its nearest centre (lowest index on ties); returns the inertia. dist[i] receives
/// the squared distance to the assigned centre.
inline double assign(const std::vector<double>& x, index_t n, index_t d, const std::vector<double>& c, index_t k,
                     std::vector<index_t>& labels, std::vector<double>& dist, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t i = 0; i < n; ++i) {
    double best = std::numeric_limits<double>::infinity();
    index_t arg = 0;
    for (index_t j = 0; j < k; ++j) {
      const double s = sqdist(&x[static_cast<std::size_t>(i * d)], &c[static_cast<std::size_t>(j * d)], d);
      if (s < best) best = s, arg = j;
    }
    labels[static_cast<std::size_t>(i)] = arg;
    dist[static_cast<std::size_t>(i)] = best;
  }
  double inertia = 0;
  for (index_t i = 0; i < n; ++i) inertia += dist[static_cast<std::size_t>(i)];
  return inertia;
}

/// Index drawn with probability proportional to w (w >= 0); uniform if all are zero.
inline index_t weighted_draw(const std::vector<double>& w, CounterRng& rng) {
  double total = 0;
  for (double v : w) total += v;
  if (!(total > 0)) return static_cast<index_t>(rng.below(w.size()));
  const double r = rng.uniform() * total;
  double acc = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    acc += w[i];
    if (r < acc) return static_cast<index_t>(i);
  }
  for (std::size_t i = w.size(); i-- > 0;)
    if (w[i] > 0) return static_cast<index_t>(i);
  return 0;
}

inline std::vector<double> kmeanspp(const std::vector<double>& x, index_t n, index_t d, index_t k, CounterRng& rng) {
  std::vector<double> c(static_cast<std::size_t>(k * d));
  const int trials = 2 + static_cast<int>(std::log(double(k)));
  index_t first = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(n)));
  std::copy_n(&x[static_cast<std::size_t>(first * d)], d, c.begin());
  std::vector<double> closest(static_cast<std::size_t>(n)), cand_d(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) closest[static_cast<std::size_t>(i)] = sqdist(&x[static_cast<std::size_t>(i * d)], c.data(), d);
  for (index_t j = 1; j < k; ++j) {
    double best_pot = std::numeric_limits<double>::infinity();
    index_t best = -1;
    std::vector<double> best_d;
    for (int t = 0; t < trials; ++t) {
      const index_t cand = weighted_draw(closest, rng);
      double pot = 0;
      for (index_t i = 0; i < n; ++i) {
        const double s = std::min(closest[static_cast<std::size_t>(i)],
                                  sqdist(&x[static_cast<std::size_t>(i * d)], &x[static_cast<std::size_t>(cand * d)], d));
        cand_d[static_cast<std::size_t>(i)] = s;
        pot += s;
      }
      if (pot < best_pot) best_pot = pot, best = cand, best_d = cand_d;
    }
    std::copy_n(&x[static_cast<std::size_t>(best * d)], d, c.begin() + j * d);
    closest = std::move(best_d);
  }
  return c;
}
}  // namespace detail

/// k-means on the rows of x [N, D].
template <class T>
KMeansResult kmeans(const Tensor<T, 2, Cpu>& x_in, const KMeansOptions& opt) {
  using namespace detail;
  const index_t n = x_in.extent(0), d = x_in.extent(1), k = opt.k;
  DISTILL_CHECK(k >= 1 && k <= n, "kmeans: k = ", k, " must be in [1, N] for ", n, " points");
  DISTILL_CHECK(opt.n_init >= 1 && opt.max_iter >= 1, "kmeans: n_init (", opt.n_init, ") and max_iter (",
                opt.max_iter, ") must be >= 1");
  DISTILL_CHECK(opt.threads >= 1, "kmeans: threads must be >= 1, got ", opt.threads);
  std::vector<double> x(static_cast<std::size_t>(n * d));
  for (index_t i = 0; i < n * d; ++i) {
    x[static_cast<std::size_t>(i)] = static_cast<double>(x_in.data()[i]);
    DISTILL_CHECK(std::isfinite(x[static_cast<std::size_t>(i)]), "kmeans: non-finite value at row ", i / std::max<index_t>(d, 1),
                  ", column ", i % std::max<index_t>(d, 1));
  }
  // Tolerance scaled by the mean per-feature variance.
  double mean_var = 0;
  for (index_t j = 0; j < d; ++j) {
    double m = 0, s = 0;
    for (index_t i = 0; i < n; ++i) m += x[static_cast<std::size_t>(i * d + j)];
    m /= double(n);
    for (index_t i = 0; i < n; ++i) s += (x[static_cast<std::size_t>(i * d + j)] - m) * (x[static_cast<std::size_t>(i * d + j)] - m);
    mean_var += s / double(n);
  }
  mean_var = d ? mean_var / double(d) : 0.0;
  const double tol = opt.tol * mean_var;

  KMeansResult best;
  best.inertia = std::numeric_limits<double>::infinity();
  std::vector<index_t> labels(static_cast<std::size_t>(n)), prev(static_cast<std::size_t>(n), -1);
  std::vector<double> dist(static_cast<std::size_t>(n)), sums(static_cast<std::size_t>(k * d));
  std::vector<index_t> counts(static_cast<std::size_t>(k));
  for (int r = 0; r < opt.n_init; ++r) {
    CounterRng rng(opt.seed, static_cast<std::uint64_t>(r));
    std::vector<double> c = kmeanspp(x, n, d, k, rng);
    std::fill(prev.begin(), prev.end(), -1);
    int it = 0;
    double inertia = 0;
    for (; it < opt.max_iter; ++it) {
      inertia = assign(x, n, d, c, k, labels, dist, opt.threads);
      if (labels == prev) break;
      prev = labels;
      // M-step.
      std::fill(sums.begin(), sums.end(), 0.0);
      std::fill(counts.begin(), counts.end(), 0);
      for (index_t i = 0; i < n; ++i) {
        const auto l = labels[static_cast<std::size_t>(i)];
        ++counts[static_cast<std::size_t>(l)];
        for (index_t j = 0; j < d; ++j) sums[static_cast<std::size_t>(l * d + j)] += x[static_cast<std::size_t>(i * d + j)];
      }
      for (index_t l = 0; l < k; ++l) {
        if (counts[static_cast<std::size_t>(l)] > 0) continue;
        // Empty cluster: move it to the point farthest from its centre.
        index_t far = static_cast<index_t>(std::max_element(dist.begin(), dist.end()) - dist.begin());
        const auto old = labels[static_cast<std::size_t>(far)];
        --counts[static_cast<std::size_t>(old)];
        for (index_t j = 0; j < d; ++j) sums[static_cast<std::size_t>(old * d + j)] -= x[static_cast<std::size_t>(far * d + j)];
        labels[static_cast<std::size_t>(far)] = l;
        prev[static_cast<std::size_t>(far)] = -1;
        dist[static_cast<std::size_t>(far)] = 0;
        counts[static_cast<std::size_t>(l)] = 1;
        for (index_t j = 0; j < d; ++j) sums[static_cast<std::size_t>(l * d + j)] = x[static_cast<std::size_t>(far * d + j)];
      }
      double shift = 0;
      for (index_t l = 0; l < k; ++l) {
        const double cnt = double(counts[static_cast<std::size_t>(l)]);
        if (cnt <= 0) continue;
        for (index_t j = 0; j < d; ++j) {
          const double v = sums[static_cast<std::size_t>(l * d + j)] / cnt;
          const double t = v - c[static_cast<std::size_t>(l * d + j)];
          shift += t * t;
          c[static_cast<std::size_t>(l * d + j)] = v;
        }
      }
      if (shift <= tol) {
        inertia = assign(x, n, d, c, k, labels, dist, opt.threads);
        ++it;
        break;
      }
    }
    if (it == opt.max_iter) inertia = assign(x, n, d, c, k, labels, dist, opt.threads);
    if (inertia < best.inertia) {
      best.inertia = inertia;
      best.labels = labels;
      best.centers = c;
      best.iterations = it;
      best.best_init = r;
    }
  }
  return best;
}

}  // namespace distill::eval
