// distill/cpu/fused_losses_threads.hpp -- how the fused-loss engines (cpu/fused_losses.hpp) share work between
// threads: a deterministic balanced schedule of work items onto partial-result slots, per-slot row statistics
// (max, sum) and their merge in slot order, and the small row reductions they use. Results depend on the thread
// count only, never on timing.
#pragma once

#include "distill/cpu/eigen_core.hpp"
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "distill/core/shape.hpp"
#include "distill/core/tensor.hpp"
#include "distill/cpu/api.hpp"
#include "distill/cpu/exec.hpp"
#include "distill/cpu/fused_losses_simd.hpp"

namespace distill::cpu::fused {

namespace detail {
template <class T>
using Row = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using CRow = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

/// Runs body(slot, p) for every work item p in [0, n), with `slots` partial-result slots. Items are assigned to
/// slots by a deterministic greedy longest-processing-time schedule on cost(p) (heaviest first, each to the
/// least-loaded slot, ties to the lower index) and every slot runs its items in index order; thread t of the
/// team runs slots t, t + team, ... So which partial an item lands in depends only on (n, costs, slots), never
/// on timing or on how many threads OpenMP actually starts.
template <class Cost, class F>
void run_balanced(int slots, index_t n, Cost cost, F&& body) {
  if (slots <= 1 || n <= 1) {
    for (index_t p = 0; p < n; ++p) body(0, p);
    return;
  }
  std::vector<index_t> order(static_cast<std::size_t>(n));
  std::vector<double> c(static_cast<std::size_t>(n));
  for (index_t p = 0; p < n; ++p) {
    order[p] = p;
    c[p] = cost(p);
  }
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return c[a] > c[b]; });
  std::vector<std::vector<index_t>> lists(static_cast<std::size_t>(slots));
  std::vector<double> load(static_cast<std::size_t>(slots), 0.0);
  for (index_t p : order) {
    const int t = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    lists[t].push_back(p);
    load[t] += c[p];
  }
  for (auto& l : lists) std::sort(l.begin(), l.end());
#pragma omp parallel num_threads(slots)
  {
    const int t = thread_id(), nt = team_size();
    for (int l = t; l < slots; l += nt)
      for (index_t p : lists[l]) body(l, p);
  }
}

template <class T>
inline T* alloc_zero(const Exec& ex, Tensor<T, 1>& t, index_t n) {
  t = ex.buffer<T>(n);
  std::fill(t.data(), t.data() + t.numel(), T(0));
  return t.data();
}

inline int slots_for(int threads, index_t work_items) {
  return static_cast<int>(std::clamp<index_t>(work_items, 1, std::max(threads, 1)));
}

/// sum_{j < n} f(j) in a fixed order that depends on n only (16 lanes by j mod 16, a fixed tree, then the
/// tail): unlike Eigen's redux, whose peeling follows the data's address, this makes results independent of
/// where a buffer happens to be allocated.
template <class T, class F>
inline double lane_sum(index_t n, F f) {
  constexpr int L = 16;
  T acc[L] = {};
  const index_t full = n - n % L;
  for (index_t j = 0; j < full; j += L)
    for (int l = 0; l < L; ++l) acc[l] += f(j + l);
  for (int w = L / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  T tail = T(0);
  for (index_t j = full; j < n; ++j) tail += f(j);
  return double(acc[0]) + double(tail);
}
template <class T>
inline double row_sum(const T* x, index_t n) {
  return lane_sum<T>(n, [x](index_t j) { return x[j]; });
}
}  // namespace detail

// ------------------------------------------------------------------------------------------------------------
// Row statistics: per-thread (max, sum) partials and their merge.
// ------------------------------------------------------------------------------------------------------------
namespace detail {
struct Stats {
  int slots = 1;
  index_t n = 0;
  std::vector<double> m, s;  // [slots * n]; m unused (0) in fixed-shift mode
  Stats(int sl, index_t len, bool online) : slots(sl), n(len), s(static_cast<std::size_t>(sl * len), 0.0) {
    if (online) m.assign(static_cast<std::size_t>(sl * len), -std::numeric_limits<double>::infinity());
  }
  double* sum(int t) { return s.data() + t * n; }
  double* max(int t) { return m.empty() ? nullptr : m.data() + t * n; }
  /// lse[i] = shift + log(sum) (fixed) or the online merge; -inf for rows with no term.
  void merge(double shift, double* lse) const {
    const double ninf = -std::numeric_limits<double>::infinity();
    for (index_t i = 0; i < n; ++i) {
      if (m.empty()) {
        double tot = 0;
        for (int t = 0; t < slots; ++t) tot += s[t * n + i];
        lse[i] = tot > 0 ? shift + std::log(tot) : ninf;
      } else {
        double mm = ninf;
        for (int t = 0; t < slots; ++t) mm = std::max(mm, m[t * n + i]);
        if (mm == ninf) {
          lse[i] = ninf;
          continue;
        }
        double tot = 0;
        for (int t = 0; t < slots; ++t)
          if (m[t * n + i] != ninf) tot += s[t * n + i] * std::exp(m[t * n + i] - mm);
        lse[i] = mm + std::log(tot);
      }
    }
  }
};

/// Online update of one (max, sum) pair with the values x[0..len) (entries equal to -inf are ignored);
/// `scratch` holds len values.
template <class T>
inline void online_row(Isa isa, const T* x, index_t len, double& m, double& s, T* scratch) {
  if (len <= 0) return;
  CRow<T> r(x, len);
  const T tm = r.maxCoeff();
  if (tm == -std::numeric_limits<T>::infinity()) return;
  if (double(tm) > m) {
    s *= std::exp(m - double(tm));  // m == -inf: s is 0 and stays 0
    m = double(tm);
  }
  simd::exp_shift(isa, scratch, x, len, T(m));
  s += row_sum(scratch, len);
}
}  // namespace detail

}  // namespace distill::cpu::fused
