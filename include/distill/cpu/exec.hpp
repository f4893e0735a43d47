// distill/cpu/exec.hpp -- how a raw CPU kernel runs: its thread count and where its buffers come from.
//
// The raw kernels in cpu/ (conv1d, the fused losses) take an Exec instead of a bare thread count. It converts
// implicitly from an int (plain aligned allocation, as in tests and benchmarks of the raw kernels); the ops pass
// `exec_of(ctx)`, which adds the context's caching host pool, so scratch buffers are reused from one training step
// to the next instead of faulting in fresh pages every call (core/host_pool.hpp).
#pragma once

#include <algorithm>
#include <memory>

#include "distill/core/context.hpp"
#include "distill/core/host_pool.hpp"
#include "distill/core/tensor.hpp"
#include "distill/core/isa.hpp"

namespace distill::cpu {

struct Exec {
  int threads = 1;
  HostPool* pool = nullptr;
  /// Instruction-set level of the kernels to run (cpu/isa.hpp). From a bare thread count: the process default.
  Isa isa = default_isa();
  Exec(int t, HostPool* p = nullptr) : threads(t), pool(p) {}  // NOLINT(google-explicit-constructor): on purpose
  Exec(int t, HostPool* p, Isa level) : threads(t), pool(p), isa(level) {}
  /// An uninitialised, 64-byte-aligned buffer of max(n, 1) values.
  template <class T>
  Tensor<T, 1> buffer(index_t n) const {
    const Shape<1> s{std::max<index_t>(n, 1)};
    return pool ? pool->tensor<T, 1>(s) : Tensor<T, 1>(s);
  }
};

/// Threads worth using for a loop of n cheap elements: 1 below ~`grain` elements (thread start-up dominates).
inline int threads_for(const ContextBase& ctx, index_t n, index_t grain = 32768) {
  return static_cast<int>(std::clamp<index_t>(n / grain, 1, ctx.threads()));
}

/// The Exec of a Cpu context: its thread count, its caching host pool and its instruction-set level.
inline Exec exec_of(const Context<Cpu>& ctx) { return Exec{ctx.threads(), &ctx.host_pool(), ctx.isa()}; }

}  // namespace distill::cpu
