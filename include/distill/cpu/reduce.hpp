// distill/cpu/reduce.hpp -- the CPU reduction entry points (sum of all elements to a scalar, column sums): Context<Cpu>&
// first, the names and parameters of the Cuda ones (kernels/reduce.cuh). Sums accumulate in double, combined in a fixed
// order. The autograd ops are in ops/reduce.hpp (sum, mean) and ops/linear.hpp (a bias gradient).
#pragma once

#include <algorithm>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/core/shape.hpp"
#include "distill/cpu/exec.hpp"

namespace distill::cpu {

// ---- reductions (deterministic for a given thread count; accumulated in double) ------------------------------------
/// *out (+)= alpha * sum(x[0..n)): fixed chunks per thread, partials combined in order.
template <class T>
void sum(Context<Cpu>& ctx, const T* x, index_t n, T* out, T alpha, bool accumulate) {
  const int nt = threads_for(ctx, n);
  std::vector<double> partial(static_cast<std::size_t>(nt), 0.0);
  const index_t per = (n + nt - 1) / std::max(nt, 1);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) {
    double s = 0;
    const index_t e = std::min(n, (t + 1) * per);
    for (index_t i = t * per; i < e; ++i) s += double(x[i]);
    partial[static_cast<std::size_t>(t)] = s;
  }
  double s = 0;
  for (int t = 0; t < nt; ++t) s += partial[static_cast<std::size_t>(t)];
  const T v = static_cast<T>(alpha * s);
  out[0] = accumulate ? out[0] + v : v;
}
/// out[j] (+)= alpha * sum_i x[i, j] for x [rows, cols] (rows in order, in double).
template <class T>
void sum_axis0(Context<Cpu>&, const T* x, index_t rows, index_t cols, T* out, T alpha, bool accumulate) {
  std::vector<double> acc(static_cast<std::size_t>(cols), 0.0);
  for (index_t i = 0; i < rows; ++i) {
    const T* row = x + i * cols;
#pragma omp simd
    for (index_t o = 0; o < cols; ++o) acc[static_cast<std::size_t>(o)] += double(row[o]);
  }
  for (index_t o = 0; o < cols; ++o) {
    const T v = static_cast<T>(double(alpha) * acc[static_cast<std::size_t>(o)]);
    out[o] = accumulate ? out[o] + v : v;
  }
}

}  // namespace distill::cpu
