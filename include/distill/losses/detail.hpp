// distill/losses/detail.hpp -- helpers shared by the fused loss ops (not public API).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/cpu/api.hpp"
#ifndef DISTILL_COMPILED
#include "distill/cpu/fused_losses.hpp"  // the kernel bodies; in compiled mode they come from distill::compiled
#endif
#include "distill/ops/detail.hpp"
#include "distill/ops/optional_inputs.hpp"

namespace distill::losses::detail {

/// Labels compacted to 0..C-1 (in order of first appearance) with the size of every class.
struct Classes {
  std::vector<index_t> id;     // per row
  std::vector<index_t> count;  // per class
};

inline Classes compact_labels(std::span<const int> labels) {
  Classes c;
  std::map<int, index_t> seen;
  c.id.resize(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    auto [it, fresh] = seen.emplace(labels[i], index_t(c.count.size()));
    if (fresh) c.count.push_back(0);
    c.id[i] = it->second;
    ++c.count[it->second];
  }
  return c;
}

/// Per-class sums of the rows of e (double, row stride e.dp), optionally weighted per row. Parallel over
/// classes; each class adds its rows in row order (deterministic).
template <class T>
std::vector<double> class_sums(int threads, const cpu::fused::Emb<T>& e, const Classes& c,
                               const double* weight = nullptr) {
  const index_t C = index_t(c.count.size()), dp = e.dp, d = e.d;
  std::vector<index_t> start(static_cast<std::size_t>(C + 1), 0), rows(static_cast<std::size_t>(e.n));
  for (index_t k = 0; k < C; ++k) start[k + 1] = start[k] + c.count[k];
  {
    std::vector<index_t> fill(start.begin(), start.end() - 1);
    for (index_t i = 0; i < e.n; ++i) rows[fill[c.id[i]]++] = i;
  }
  std::vector<double> s(static_cast<std::size_t>(C * dp), 0.0);
  const int nt = static_cast<int>(std::clamp<index_t>(e.n * d / 32768, 1, std::max(threads, 1)));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t k = 0; k < C; ++k) {
    double* sk = s.data() + k * dp;
    for (index_t q = start[k]; q < start[k + 1]; ++q) {
      const index_t i = rows[q];
      const double w = weight ? weight[i] : 1.0;
      if (w == 0.0) continue;
      const T* zi = e.row(i);
      for (index_t x = 0; x < d; ++x) sk[x] += w * double(zi[x]);
    }
  }
  return s;
}

/// Threads for an O(rows * dim) loop.
inline int row_threads(int threads, index_t rows, index_t dim) {
  return static_cast<int>(std::clamp<index_t>(rows * dim / 32768, 1, std::max(threads, 1)));
}

/// Dot product of row i of e with a double vector (first d entries).
template <class T>
double dot_row(const cpu::fused::Emb<T>& e, index_t i, const double* v) {
  const T* zi = e.row(i);
  double s = 0;
  for (index_t k = 0; k < e.d; ++k) s += double(zi[k]) * v[k];
  return s;
}
template <class T>
double dot_rows(const cpu::fused::Emb<T>& a, index_t i, const cpu::fused::Emb<T>& b, index_t j) {
  const T* x = a.row(i);
  const T* y = b.row(j);
  double s = 0;
  for (index_t k = 0; k < a.d; ++k) s += double(x[k]) * double(y[k]);
  return s;
}

/// The engines' threads and scratch allocator of a Cpu context (its caching host pool).
inline cpu::Exec exec_of(const Context<Cpu>& ctx) { return cpu::exec_of(ctx); }

/// The rows of x in the tile layout (L2-normalised when `normalize`).
template <class T, class D>
std::shared_ptr<cpu::fused::Emb<T>> emb_of(const Var<T, 2, D>& x, bool normalize) {
  return std::make_shared<cpu::fused::Emb<T>>(cpu::fused::make_emb<T>(
      exec_of(x.ctx()), {x.value().data(), x.extent(0)}, {nullptr, 0}, x.extent(1), normalize));
}

/// Zero-initialised gradient buffer in the tile layout of e ([n, dp]).
template <class T>
Tensor<T, 1> grad_layout(const cpu::fused::Exec& ex, const cpu::fused::Emb<T>& e) {
  Tensor<T, 1> h = ex.buffer<T>(e.n * e.dp);
  h.fill(T(0));
  return h;
}

/// Sends rows [r0, r0 + rows of v) of the tile-layout gradient h through the normalisation backward into v.
template <class T, class D>
void scatter_rows(const Var<T, 2, D>& v, const cpu::fused::Emb<T>& e, const Tensor<T, 1>& h, index_t r0) {
  if (!v.requires_grad() || v.extent(0) == 0) return;
  cpu::fused::emb_backward(v.ctx().threads(), e, h.data(), r0, v.extent(0), v.grad_buffer().data());
}

/// v.grad += g * src. When v has no gradient yet the scaled copy becomes its gradient (no zero fill).
template <class T, std::size_t R, class D>
void add_scaled_grad(const Var<T, R, D>& v, const Tensor<T, R, D>& src, T g) {
  const index_t n = src.numel();
  const int nt = ops_detail::threads_for(v.ctx(), n);
  const T* __restrict s = src.data();
  if (!v.has_grad()) {
    Tensor<T, R, D> out(src.shape());
    T* __restrict o = out.data();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (index_t i = 0; i < n; ++i) o[i] = g * s[i];
    v.node()->grad = std::move(out);
    return;
  }
  T* __restrict o = v.grad_buffer().data();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t i = 0; i < n; ++i) o[i] += g * s[i];
}

/// v.grad += g * src, handing `src` itself over as v's gradient (scaled in place, no copy, no zero fill) when v
/// has none yet. Returns true if src was handed over (src is then left undefined).
template <class T, std::size_t R, class D>
bool give_grad(const Var<T, R, D>& v, Tensor<T, R, D>& src, T g) {
  if (v.has_grad()) {
    add_scaled_grad(v, src, g);
    return false;
  }
  if (g != T(1)) {
    const index_t n = src.numel();
    T* __restrict p = src.data();
#pragma omp parallel for num_threads(ops_detail::threads_for(v.ctx(), n)) schedule(static)
    for (index_t i = 0; i < n; ++i) p[i] *= g;
  }
  v.node()->grad = src;
  src = Tensor<T, R, D>();
  return true;
}

/// Sum in order, in double.
inline double ordered_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

/// log(exp(a) + exp(b)) without overflow (either may be -inf).
inline double log_add_exp(double a, double b) {
  const double m = std::max(a, b);
  if (m == -std::numeric_limits<double>::infinity()) return m;
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

/// Checks shared by the similarity losses.
template <class T, class D>
void check_embeddings(const char* op, const char* what, const Var<T, 2, D>& x) {
  DISTILL_CHECK(x.extent(1) > 0, op, ": ", what, " of shape ", to_string(x.shape()),
                " has rows of length 0 (expected [N, D] with D >= 1)");
}
/// A temperature divides similarities computed in float: it must be positive, finite and representable in
/// float, and 1/v must be finite in float too (2e-39 is a float, but 1/2e-39 overflows to inf).
inline void check_temperature(const char* op, const char* name, double v) {
  const float vf = static_cast<float>(v);
  DISTILL_CHECK(v > 0 && std::isfinite(v) && vf > 0 && std::isfinite(vf) && std::isfinite(1.0f / vf), op, ": ", name,
                " = ", v, " is not a usable temperature: it must be positive, and both it and 1/", name,
                " must be finite in single precision (", name, " in [", 1.0 / double(std::numeric_limits<float>::max()),
                ", ", double(std::numeric_limits<float>::max()), "])");
}

/// Per-row weights (1 when undefined) after checking the shape.
template <class T, class D>
std::vector<double> row_weights(const char* op, const Var<T, 1, D>& w, index_t n) {
  std::vector<double> out(static_cast<std::size_t>(n), 1.0);
  if (!w.defined()) return out;
  DISTILL_CHECK(w.extent(0) == n, op, ": weights of shape ", to_string(w.shape()), " for ", n,
                " anchor rows (expected [", n, "])");
  for (index_t i = 0; i < n; ++i) out[i] = double(w.value()[i]);
  return out;
}

/// Tensor rank-0 result holding v.
template <class T, class D>
Tensor<T, 0, D> scalar(double v) {
  Tensor<T, 0, D> out(Shape<0>{});
  out[0] = static_cast<T>(v);
  return out;
}

}  // namespace distill::losses::detail
