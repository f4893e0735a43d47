// distill/nn/momentum.hpp -- nn::MomentumEncoder<M>: the key encoder of MoCo v2 (He et al., CVPR 2020; Chen et al.,
// 2020), used by MoCo, DisCo's student and MCL's self-supervised form.
//
// snippet: fragment; includes: distill/models/disco.hpp; given: Context<Cpu> ctx; Var<float, 3> x1, x2;
//   models::DiscoNet<16, 64> net{ctx};                                  // the query encoder (trained)
//   nn::MomentumEncoder<models::DiscoNet<16, 64>> key{ctx, net, {.momentum = 0.99, .queue_size = 256, .key_dim = 128}};
//   // per step:
//   key.update(net);                      // theta_k = m theta_k + (1 - m) theta_q   (MoCo: before the keys)
//   auto k = key.keys(x2);                // [B, 128], no graph, no gradient
//   auto loss = key.info_nce(net(x1), k, 0.2);   // MoCo InfoNCE against the queue (k is the positive)
//   key.enqueue(k);                       // FIFO: the oldest keys leave
//
// The key module is a separate copy of the query module (same type, same initial values; construct it with the
// same arguments as the query). It is never part of an optimizer: its parameters do not require grad, and only
// update() changes them. Its BatchNorm layers stay in training mode (batch statistics, as in MoCo) and keep their
// own running statistics (update() averages parameters only: BufferMode::Keep). The queue is optional
// (queue_size 0: no queue, e.g. in-batch negatives); its key width is fixed at construction and checked on every
// enqueue and every loss, also while the queue is still empty. MoCo starts the queue with random unit keys
// (random_queue, the default); otherwise it starts empty.
//
// Shuffle-BN (MoCo's multi-GPU trick) is optional: with shuffle_groups = G > 1, keys() permutes the batch, runs the
// key module on G contiguous groups of the permuted batch (so each BN layer sees a random sub-batch), and puts the
// keys back in the original order. With G = 1 a permutation would change nothing on one device (BN over the whole
// batch is permutation-invariant), so none is made.
#pragma once

#include <algorithm>
#include <numeric>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/core/rng.hpp"
#include "distill/losses/contrastive.hpp"
#include "distill/losses/queue.hpp"
#include "distill/nn/module.hpp"
#include "distill/ops/shape_ops.hpp"
#include "distill/optim/ema.hpp"

namespace distill::nn {

struct MomentumOptions {
  double momentum = 0.999;      // m in theta_k = m theta_k + (1 - m) theta_q
  index_t queue_size = 0;       // K keys in the FIFO (0: no queue)
  index_t key_dim = 0;          // width of a key row; required when queue_size > 0
  bool random_queue = true;     // MoCo: start with K random unit keys (false: start empty)
  index_t shuffle_groups = 1;   // > 1: shuffle-BN over this many sub-batches
  std::uint64_t rng_stream = 0x6d6f636fu;  // ctx.make_rng(stream): queue init and shuffle permutations
};

namespace detail {
/// Builds a module without consuming the caller's random stream (its draws are overwritten by copy_from anyway).
template <class M, class D, class... Args>
M construct_quietly(Context<D>& ctx, Args&&... args) {
  const CounterRng saved = ctx.rng();
  M m(ctx, std::forward<Args>(args)...);
  ctx.rng() = saved;
  return m;
}
}  // namespace detail

template <class M>
class MomentumEncoder {
public:
  using module_type = M;
  using value_type = typename M::value_type;
  using device_type = typename M::device_type;
  using T = value_type;
  using D = device_type;

  /// A key copy of `query` (built as M(ctx, args...), then given the query's parameter and buffer values).
  template <class... Args>
  MomentumEncoder(Context<D>& ctx, const M& query, MomentumOptions opt, Args&&... args)
      : ctx_(&ctx), opt_(opt), key_(detail::construct_quietly<M>(ctx, std::forward<Args>(args)...)),
        rng_(ctx.make_rng(opt.rng_stream)) {
    DISTILL_CHECK(opt.momentum >= 0 && opt.momentum <= 1, "MomentumEncoder: momentum must be in [0, 1], got ",
                  opt.momentum);
    DISTILL_CHECK(opt.queue_size >= 0, "MomentumEncoder: queue_size must be >= 0, got ", opt.queue_size);
    DISTILL_CHECK(opt.queue_size == 0 || opt.key_dim >= 1, "MomentumEncoder: a queue of ", opt.queue_size,
                  " keys needs key_dim >= 1 (the width of the key rows), got ", opt.key_dim);
    DISTILL_CHECK(opt.shuffle_groups >= 1, "MomentumEncoder: shuffle_groups must be >= 1, got ", opt.shuffle_groups);
    key_.copy_from(query);
    set_requires_grad(key_, false);
    key_.train(true);
    if (opt.queue_size > 0) {
      queue_.emplace(opt.random_queue ? losses::Queue<T, D>::random(ctx, opt.queue_size, opt.key_dim, rng_)
                                      : losses::Queue<T, D>(ctx, opt.queue_size, opt.key_dim));
    }
  }

  MomentumEncoder(const MomentumEncoder&) = delete;
  MomentumEncoder& operator=(const MomentumEncoder&) = delete;
  MomentumEncoder(MomentumEncoder&&) = default;
  MomentumEncoder& operator=(MomentumEncoder&&) = default;

  const MomentumOptions& options() const noexcept { return opt_; }
  double momentum() const noexcept { return opt_.momentum; }
  void set_momentum(double m) {
    DISTILL_CHECK(m >= 0 && m <= 1, "MomentumEncoder: momentum must be in [0, 1], got ", m);
    opt_.momentum = m;
  }

  /// The key module (frozen: not in any optimizer).
  M& module() noexcept { return key_; }
  const M& module() const noexcept { return key_; }

  /// theta_k = m theta_k + (1 - m) theta_q for every parameter; BN running statistics are the key module's own.
  void update(const M& query) {
    optim::ema_update(key_, query, opt_.momentum, optim::BufferMode::Keep, ctx_->threads());
  }

  /// Keys of a batch: the key module's output (training-mode BN), computed without a graph.
  template <class X>
  auto keys(const X& x) {
    NoGradGuard no_grad(*ctx_);
    const index_t B = x.extent(0);
    const index_t G = std::min(opt_.shuffle_groups, B);
    if (G <= 1) return key_(x);
    // Shuffle-BN: a random permutation, G contiguous groups, then the inverse permutation.
    std::vector<index_t> perm(static_cast<std::size_t>(B));
    std::iota(perm.begin(), perm.end(), index_t(0));
    for (index_t i = B - 1; i > 0; --i)
      std::swap(perm[i], perm[static_cast<std::size_t>(rng_.next_u64() % static_cast<std::uint64_t>(i + 1))]);
    const X xs = gather_rows(x, perm);
    using Y = decltype(key_(x));
    Y ys;
    for (index_t g = 0; g < G; ++g) {
      const index_t begin = g * B / G, end = (g + 1) * B / G;
      Y y = key_(slice0(xs, begin, end - begin));
      ys = ys.defined() ? concat0(ys, y) : y;
    }
    std::vector<index_t> inverse(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) inverse[static_cast<std::size_t>(perm[i])] = index_t(i);
    return gather_rows(ys, inverse);
  }

  bool has_queue() const noexcept { return queue_.has_value(); }
  /// The random stream of the shuffle-BN permutations (saved by a training state).
  CounterRng& rng() noexcept { return rng_; }
  /// The FIFO of keys (MomentumOptions::queue_size > 0 only).
  losses::Queue<T, D>& queue() {
    DISTILL_CHECK(queue_.has_value(), "MomentumEncoder::queue: this encoder was built with queue_size 0");
    return *queue_;
  }
  const losses::Queue<T, D>& queue() const {
    DISTILL_CHECK(queue_.has_value(), "MomentumEncoder::queue: this encoder was built with queue_size 0");
    return *queue_;
  }

  /// Appends keys [B, key_dim] (L2-normalised by the queue), dropping the oldest once full.
  void enqueue(const Var<T, 2, D>& k) {
    check_width("enqueue", "keys", k);
    queue().enqueue(k.value());
  }

  /// MoCo InfoNCE of queries q [B, key_dim] with positive keys k against the queue's keys (tau: temperature).
  Var<T, 0, D> info_nce(const Var<T, 2, D>& q, const Var<T, 2, D>& k, double tau) {
    check_width("info_nce", "queries", q);
    return losses::moco_info_nce(q, k, queue(), tau);
  }

  void check_width(const char* what, const char* name, const Var<T, 2, D>& x) const {
    DISTILL_CHECK(queue_.has_value(), "MomentumEncoder::", what, ": this encoder was built with queue_size 0");
    DISTILL_CHECK(x.extent(1) == queue_->dim(), "MomentumEncoder::", what, ": ", name, " of shape ",
                  to_string(x.shape()), " for a queue of key_dim ", queue_->dim(), " (", queue_->size(), " of ",
                  queue_->capacity(), " keys filled)");
  }

private:
  /// Rows of x in the order `idx` (slices + concatenation: any device, no graph under NoGradGuard).
  template <class X>
  static X gather_rows(const X& x, const std::vector<index_t>& idx) {
    X out;
    for (index_t i : idx) {
      X row = slice0(x, i, 1);
      out = out.defined() ? concat0(out, row) : row;
    }
    return out;
  }

  Context<D>* ctx_;
  MomentumOptions opt_;
  M key_;
  CounterRng rng_;
  std::optional<losses::Queue<T, D>> queue_;
};

}  // namespace distill::nn
