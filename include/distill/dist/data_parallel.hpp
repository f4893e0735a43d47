// distill/dist/data_parallel.hpp -- data-parallel training: identical replicas, averaged gradients.
//
// snippet: synopsis (the whole program: docs/distributed.md)
//   dist::DataParallel<float, D> dp(ctx, model, trainable);   // broadcasts parameters and buffers from rank 0
//   ...forward on this rank's shard (dist::shard_rows), loss.backward()...
//   optim::checked_step(opt, loss, at, dp);                  // dp() between backward and step
//
// dp() all-reduces the gradients to their mean over ranks, in buckets of `bucket_elems` values packed in parameter
// order (the same buckets and the same reduction order at every step: a run repeats bitwise for a fixed world size),
// then, unless the context synchronizes batch norm, broadcasts rank 0's buffers (the batch-norm running statistics,
// which per-rank statistics would let drift apart; torch DDP's broadcast_buffers), so every rank holds the same
// model and any rank's checkpoint is the model. A parameter without a gradient is skipped (every rank runs the same
// graph, so the set is the same on every rank). Optimizers, EMA and schedules are unchanged: each rank applies the
// same update to the same parameters. World size 1: dp() does nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "distill/core/communicator.hpp"
#include "distill/backend/device_ops.hpp"
#include "distill/optim/param_list.hpp"

namespace distill::dist {

/// Broadcasts every parameter and buffer of `module` (anything with for_each_parameter / for_each_buffer) from
/// `root`: the start of data-parallel training, after a rank-0-only restore, ...
template <class Module>
void broadcast_module(Module& module, Communicator& comm, int root = 0, bool parameters = true, bool buffers = true) {
  if (comm.size() == 1) return;
  auto send = [&](auto* p, index_t n) {
    using V = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
    comm.broadcast(static_cast<void*>(p), static_cast<std::size_t>(n), comm_type_of<V>(), root);
  };
  if (parameters) module.for_each_parameter([&](std::string_view, auto& v) { send(v.value().data(), v.numel()); });
  if (buffers) module.for_each_buffer([&](std::string_view, auto& t) { send(t.data(), t.numel()); });
}

struct DataParallelOptions {
  std::size_t bucket_elems = std::size_t(1) << 20;  // values per all-reduce (4 MiB of float)
};

template <class T, class D>
class DataParallel {
public:
  template <class Module>
  DataParallel(Context<D>& ctx, Module& model, ParamList<T, D> trainable, DataParallelOptions opt = {})
      : ctx_(ctx), params_(std::move(trainable)), opt_(opt) {
    DISTILL_CHECK(opt.bucket_elems >= 1, "DataParallel: bucket_elems must be >= 1");
    broadcast_module(model, ctx.comm());
    broadcast_buffers_ = [&model, &ctx] { broadcast_module(model, ctx.comm(), 0, false, true); };
    if (ctx.world_size() > 1) {
      std::size_t total = 0;
      for (std::size_t i = 0; i < params_.size(); ++i) total += static_cast<std::size_t>(params_[i].numel());
      const auto cap = static_cast<index_t>(std::min(total, opt.bucket_elems));
      bucket_ = DeviceOps<D>::template zeros<T, 1>(ctx, Shape<1>{cap});
    }
  }

  /// Gradients -> their mean over ranks; then rank 0's buffers (unless batch norm is synchronized).
  void operator()() {
    Communicator& comm = ctx_.comm();
    if (comm.size() == 1) return;
    const auto t0 = std::chrono::steady_clock::now();
    const T inv = T(1) / T(comm.size());
    const index_t cap = bucket_.numel();
    index_t used = 0;
    pending_.clear();
    auto flush = [&] {
      if (used == 0) return;
      comm.all_reduce(bucket_.data(), static_cast<std::size_t>(used), comm_type_of<T>(), ReduceOp::sum);
      DeviceOps<D>::scale(ctx_, bucket_.data(), inv, used);
      for (const auto& c : pending_) DeviceOps<D>::copy(ctx_, c.grad, bucket_.data() + c.offset, c.count);
      bytes_ += static_cast<std::uint64_t>(used) * sizeof(T);
      ++buckets_;
      used = 0;
      pending_.clear();
    };
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      if (!p.has_grad()) continue;
      T* g = p.grad();
      index_t left = p.numel();
      while (left > 0) {
        const index_t take = std::min(left, cap - used);
        DeviceOps<D>::copy(ctx_, bucket_.data() + used, g, take);
        pending_.push_back({g, used, take});
        used += take;
        g += take;
        left -= take;
        if (used == cap) flush();
      }
    }
    flush();
    if (!ctx_.sync_batch_norm()) broadcast_buffers_();
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++calls_;
  }

  /// Totals since construction: bytes all-reduced (per rank), all-reduce calls (buckets), seconds in operator(),
  /// operator() calls.
  std::uint64_t bytes_reduced() const noexcept { return bytes_; }
  std::uint64_t buckets_reduced() const noexcept { return buckets_; }
  double seconds() const noexcept { return seconds_; }
  std::int64_t calls() const noexcept { return calls_; }

private:
  struct Chunk {
    T* grad;
    index_t offset, count;
  };
  Context<D>& ctx_;
  ParamList<T, D> params_;
  DataParallelOptions opt_;
  std::function<void()> broadcast_buffers_;
  Tensor<T, 1, D> bucket_;
  std::vector<Chunk> pending_;
  std::uint64_t bytes_ = 0, buckets_ = 0;
  double seconds_ = 0;
  std::int64_t calls_ = 0;
};

}  // namespace distill::dist
