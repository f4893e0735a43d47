// distill/core/context.hpp -- the context object: everything an op needs besides its inputs.
//
// A Context<Device> carries the OpenMP thread count, a seeded counter-based RNG and the autograd mode (Context<Cpu>
// also its caching host allocator and the instruction-set level of its kernels, core/isa.hpp); the
// Cuda specialisation (include/distill/cuda/context.hpp) adds stream, cuBLAS handle and workspace. distill has no global
// mutable state: two contexts in one process are fully independent. A context must outlive every tensor and
// Var created through it. Every context also holds the communicator of its ranks (core/communicator.hpp): the single
// process by default; dist/mpi.hpp (host memory) and dist/nccl.hpp (CUDA memory) give data-parallel ranks.
#pragma once

#include <cstdint>
#include <memory>

#include "distill/core/communicator.hpp"
#include "distill/core/device.hpp"
#include "distill/core/error.hpp"
#include "distill/core/host_pool.hpp"
#include "distill/core/isa.hpp"
#include "distill/core/rng.hpp"
#include "distill/core/tensor.hpp"

namespace distill {

/// State shared by every device's context.
class ContextBase {
public:
  explicit ContextBase(int threads = 1, std::uint64_t seed = 0)
      : threads_(threads), seed_(seed), rng_(seed, 0), comm_(std::make_shared<SingleProcess>()) {
    DISTILL_CHECK(threads >= 1, "Context: thread count must be >= 1, got ", threads);
  }
  ContextBase(const ContextBase&) = delete;
  ContextBase& operator=(const ContextBase&) = delete;

  /// Threads used by this context's CPU ops (OpenMP `num_threads`). Ops own the threads: Eigen products run
  /// single-threaded inside our parallel regions, so nothing is oversubscribed.
  int threads() const noexcept { return threads_; }
  void set_threads(int n) {
    DISTILL_CHECK(n >= 1, "Context: thread count must be >= 1, got ", n);
    threads_ = n;
  }
  std::uint64_t seed() const noexcept { return seed_; }

  /// The context's main generator (weight initialisation draws from it in construction order).
  CounterRng& rng() noexcept { return rng_; }
  /// An independent stream, e.g. for augmentations or shuffling, reproducible from (seed, stream).
  CounterRng make_rng(std::uint64_t stream) const noexcept { return CounterRng(seed_, stream + 1); }

  /// Autograd recording. Off inside a NoGradGuard (inference, teachers, EMA updates).
  bool grad_enabled() const noexcept { return grad_enabled_; }
  void set_grad_enabled(bool on) noexcept { grad_enabled_ = on; }

  /// The ranks this context trains with (core/communicator.hpp): rank, world size and collectives. The single
  /// process unless set_communicator() was given another (dist::init, dist/mpi.hpp). Contexts may share one.
  Communicator& comm() const noexcept { return *comm_; }
  const std::shared_ptr<Communicator>& communicator() const noexcept { return comm_; }
  int rank() const noexcept { return comm_->rank(); }
  int world_size() const noexcept { return comm_->size(); }

  /// Synchronized batch norm: in training mode, batch_norm normalises with the statistics of the whole global batch
  /// (every rank's rows) instead of this rank's rows; the backward all-reduces the matching sums. Off by default
  /// (per-rank statistics, as torch DistributedDataParallel). No effect on a world of size 1.
  bool sync_batch_norm() const noexcept { return sync_bn_; }
  void set_sync_batch_norm(bool on) noexcept { sync_bn_ = on; }

protected:
  void set_communicator_base(std::shared_ptr<Communicator> c, CommMemory expected, const char* device) {
    DISTILL_CHECK(c != nullptr, "Context::set_communicator: null communicator");
    DISTILL_CHECK(c->size() == 1 || c->memory() == expected, "Context::set_communicator: the ", c->engine(),
                  " communicator works on ", c->memory() == CommMemory::host ? "host" : "device",
                  " memory, but a ", device, " context's tensors live in ",
                  expected == CommMemory::host ? "host" : "device", " memory");
    comm_ = std::move(c);
  }

private:
  int threads_;
  std::uint64_t seed_;
  CounterRng rng_;
  bool grad_enabled_ = true;
  std::shared_ptr<Communicator> comm_;
  bool sync_bn_ = false;
};

template <class D>
class Context;

template <>
class Context<Cpu> : public ContextBase {
public:
  using device_type = Cpu;
  explicit Context(int threads = 1, std::uint64_t seed = 0)
      : ContextBase(threads, seed), pool_(std::make_shared<HostPool>()), isa_(default_isa()) {}

  /// Instruction-set level of this context's CPU kernels (core/isa.hpp): the best the CPU supports, or
  /// $DISTILL_ISA. set_isa() refuses a level the CPU cannot run.
  Isa isa() const noexcept { return isa_; }
  void set_isa(Isa level) {
    DISTILL_CHECK(isa_supported(level), "Context::set_isa: this CPU cannot run the ", isa_name(level),
                  " kernels (best level: ", isa_name(best_isa()), ")");
    isa_ = level;
  }

  /// Uninitialised tensor; blocks of >= 64 KiB come from this context's caching allocator (host_pool()).
  template <class T, std::size_t R>
  Tensor<T, R, Cpu> empty(const Shape<R>& s) const {
    return pool_->tensor<T, R>(s);
  }
  template <class T, std::size_t R>
  Tensor<T, R, Cpu> zeros(const Shape<R>& s) const {
    Tensor<T, R, Cpu> t = empty<T, R>(s);
    t.fill(T(0));
    return t;
  }

  /// Ranks over host memory (the single process, or MPI: dist/mpi.hpp).
  void set_communicator(std::shared_ptr<Communicator> c) { set_communicator_base(std::move(c), CommMemory::host, "Cpu"); }

  /// The caching host allocator: freed blocks are kept for the next step (see core/host_pool.hpp).
  /// `host_pool().release()` returns the cache to the system; `set_enabled(false)` turns caching off.
  HostPool& host_pool() const noexcept { return *pool_; }

private:
  std::shared_ptr<HostPool> pool_;
  Isa isa_;
};

/// RAII: disables autograd recording on a context for the guard's lifetime, restoring the previous mode.
class NoGradGuard {
public:
  explicit NoGradGuard(ContextBase& ctx) : ctx_(ctx), prev_(ctx.grad_enabled()) { ctx.set_grad_enabled(false); }
  ~NoGradGuard() { ctx_.set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
  ContextBase& ctx_;
  bool prev_;
};

}  // namespace distill
