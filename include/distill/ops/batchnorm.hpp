// distill/ops/batchnorm.hpp -- batch_norm over [B, C, L] and [B, C]: forward and backward side by side.
//
// Semantics are those of torch.nn.BatchNorm1d / F.batch_norm:
//   * training: normalise with the batch mean and the BIASED batch variance over the B*L values of each
//     channel; update running_mean <- (1-m) running_mean + m mean and running_var <- (1-m) running_var +
//     m * unbiased variance (N/(N-1)), m = momentum. B*L must be > 1.
//   * eval: normalise with running_mean / running_var; the backward is the per-channel affine map.
//   * gamma / beta may be undefined Vars (affine=False).
// The backward (training mode) differentiates through the batch statistics:
//   dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),  dgamma = sum(dy * xhat),  dbeta = sum(dy).
// Nothing [B, C, L]-sized is saved: the backward recomputes xhat from x and the per-channel mean/invstd.
// Synchronized batch norm (ctx.sync_batch_norm() on a world of more than one rank, core/communicator.hpp): training
// mode normalises with the statistics of the global batch (every rank's rows; the per-rank counts, means and biased
// variances are all-gathered and merged in rank order, Chan's parallel formula, so every rank gets the same numbers),
// and the backward all-reduces sum(dy) and sum(dy * xhat) for dx; dgamma / dbeta stay this rank's sums (the gradient
// average over ranks completes them), as torch.nn.SyncBatchNorm. Cpu device only for now.
// Each device has its batch_norm_on overload: cpu/batchnorm.hpp, or kernels/batchnorm.cuh (the same semantics).
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"
#include "distill/ops/optional_inputs.hpp"

namespace distill {

struct BatchNormOptions {
  bool training = true;   // batch statistics + running-stat update (true) or running statistics (false)
  double momentum = 0.1;  // PyTorch's convention: new = (1 - momentum) * old + momentum * batch
  double eps = 1e-5;
};

namespace ops_detail {
/// The Cuda device: kernels/batchnorm.cuh (one block per channel; statistics in double, saved mean/invstd [C]).
/// Shapes were checked by batch_norm. In eval mode the running statistics are snapshotted for the backward.
template <class T, std::size_t R>
Var<T, R, Cuda> batch_norm_on(const Var<T, R, Cuda>& x, const Var<T, 1, Cuda>& gamma, const Var<T, 1, Cuda>& beta,
                              Tensor<T, 1, Cuda>& running_mean, Tensor<T, 1, Cuda>& running_var,
                              const BatchNormOptions& opt, index_t B, index_t C, index_t L, index_t, bool sync) {
  DISTILL_CHECK(!sync, "batch_norm: synchronized batch norm runs on the Cpu device only; "
                "on Cuda ranks use per-rank statistics (Context::set_sync_batch_norm(false))");
  auto& ctx = x.ctx();
  const cuda::BatchNormShape s{B, C, L};
  const T* gp = gamma.defined() ? gamma.value().data() : nullptr;
  const T* bp = beta.defined() ? beta.value().data() : nullptr;
  Tensor<T, R, Cuda> out = empty<T, R>(ctx, x.shape());
  // Training: the batch mean and invstd. Eval: copies of running_mean / running_var as they were.
  Tensor<T, 1, Cuda> stat0 = empty<T, 1>(ctx, Shape<1>{C}), stat1 = empty<T, 1>(ctx, Shape<1>{C});
  const bool empty_input = x.numel() == 0;
  if (opt.training) {
    const bool have_running = running_mean.defined();
    cuda::batch_norm_forward_train<T>(ctx, s, x.value().data(), gp, bp, out.data(), stat0.data(), stat1.data(),
                                      have_running ? running_mean.data() : nullptr,
                                      have_running ? running_var.data() : nullptr, opt.momentum, opt.eps);
  } else {
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(C);
    cuda::copy_on_device(ctx, stat0.data(), running_mean.data(), bytes);
    cuda::copy_on_device(ctx, stat1.data(), running_var.data(), bytes);
    if (!empty_input)
      cuda::batch_norm_forward_eval<T>(ctx, s, x.value().data(), gp, bp, stat0.data(), stat1.data(), out.data(),
                                       opt.eps);
  }
  auto backward = [x, gamma, beta, stat0, stat1, s, training = opt.training, eps = opt.eps,
                   empty_input](const Tensor<T, R, Cuda>& g) mutable {
    const bool need_x = x.requires_grad();
    const bool need_g = gamma.defined() && gamma.requires_grad();
    const bool need_b = beta.defined() && beta.requires_grad();
    if ((!need_x && !need_g && !need_b) || empty_input) return;
    auto& c = x.ctx();
    T* dx = need_x ? x.grad_buffer().data() : nullptr;
    T* dg = need_g ? gamma.grad_buffer().data() : nullptr;
    T* db = need_b ? beta.grad_buffer().data() : nullptr;
    const T* gp = gamma.defined() ? gamma.value().data() : nullptr;
    if (training)
      cuda::batch_norm_backward_train<T>(c, s, x.value().data(), g.data(), gp, stat0.data(), stat1.data(), dx, dg, db,
                                         true);
    else
      cuda::batch_norm_backward_eval<T>(c, s, x.value().data(), g.data(), gp, stat0.data(), stat1.data(), eps, dx, dg,
                                        db, true);
  };
  return with_defined(gamma, beta, [&](const auto&... affine) {
    return autograd::make_result("batch_norm", ctx, std::move(out), std::move(backward), x, affine...);
  });
}

/// Synchronized batch norm's statistics: this rank's count n and per-channel mean / biased variance, all-gathered
/// and merged in rank order (Chan et al.'s pairwise update). Returns the global count; m and v become global.
inline index_t merge_rank_statistics(Communicator& comm, index_t n, std::vector<double>& m, std::vector<double>& v) {
  const std::size_t C = m.size(), per = 1 + 2 * C, W = static_cast<std::size_t>(comm.size());
  std::vector<double> mine(per), all(per * W);
  mine[0] = double(n);
  std::copy(m.begin(), m.end(), mine.begin() + 1);
  std::copy(v.begin(), v.end(), mine.begin() + 1 + static_cast<std::ptrdiff_t>(C));
  comm.all_gather(std::span<const double>(mine), std::span<double>(all));
  double na = 0;
  std::vector<double> mean(C, 0.0), m2(C, 0.0);
  for (std::size_t r = 0; r < W; ++r) {
    const double* p = all.data() + r * per;
    const double nb = p[0], nab = na + nb;
    if (nb == 0) continue;
    for (std::size_t c = 0; c < C; ++c) {
      const double delta = p[1 + c] - mean[c];
      mean[c] += delta * nb / nab;
      m2[c] += p[1 + C + c] * nb + delta * delta * na * nb / nab;
    }
    na = nab;
  }
  for (std::size_t c = 0; c < C; ++c) {
    m[c] = mean[c];
    v[c] = m2[c] / na;
  }
  return static_cast<index_t>(na);
}
/// The Cpu device: cpu/batchnorm.hpp (statistics in double; synchronized statistics over ranks when `sync`).
/// Shapes were checked by batch_norm; N = B * L (this rank's count).
template <class T, std::size_t R>
Var<T, R, Cpu> batch_norm_on(const Var<T, R, Cpu>& x, const Var<T, 1, Cpu>& gamma, const Var<T, 1, Cpu>& beta,
                             Tensor<T, 1, Cpu>& running_mean, Tensor<T, 1, Cpu>& running_var,
                             const BatchNormOptions& opt, index_t B, index_t C, index_t L, index_t N, bool sync) {
  using D = Cpu;
  auto& ctx = x.ctx();
  const Shape<1> cs{C};
  const auto& xs = x.shape();
  const bool have_running = running_mean.defined();
  const int nt = threads_for(ctx, x.numel());

  // Per-channel statistics used for normalisation (saved for the backward as T).
  Tensor<T, 1, D> mean(cs), invstd(cs);
  if (opt.training) {
    std::vector<double> m(static_cast<std::size_t>(C)), v(static_cast<std::size_t>(C));
    cpu::batch_norm_stats(ctx.threads(), x.value().data(), B, C, L, m.data(), v.data());
    if (sync) N = merge_rank_statistics(ctx.comm(), N, m, v);
    const double mom = opt.momentum, unbias = double(N) / double(N - 1);
    for (index_t c = 0; c < C; ++c) {
      mean[c] = static_cast<T>(m[c]);
      invstd[c] = static_cast<T>(1.0 / std::sqrt(v[c] + opt.eps));
      if (have_running) {
        running_mean[c] = static_cast<T>((1 - mom) * double(running_mean[c]) + mom * m[c]);
        running_var[c] = static_cast<T>((1 - mom) * double(running_var[c]) + mom * v[c] * unbias);
      }
    }
  } else {
    for (index_t c = 0; c < C; ++c) {
      mean[c] = running_mean[c];
      invstd[c] = static_cast<T>(1.0 / std::sqrt(double(running_var[c]) + opt.eps));
    }
  }
  Tensor<T, 1, D> scale(cs), shift(cs);
  for (index_t c = 0; c < C; ++c) {
    scale[c] = gamma.defined() ? gamma.value()[c] * invstd[c] : invstd[c];
    shift[c] = beta.defined() ? beta.value()[c] : T(0);
  }
  Tensor<T, R, D> out(xs);
  cpu::channel_affine(nt, x.value().data(), out.data(), B, C, L, mean.data(), scale.data(), shift.data());

  auto backward = [x, gamma, beta, mean, invstd, scale, training = opt.training, B, C, L, N, sync](
                      const Tensor<T, R, D>& g) mutable {
    const bool need_x = x.requires_grad();
    const bool need_g = gamma.defined() && gamma.requires_grad();
    const bool need_b = beta.defined() && beta.requires_grad();
    // Sums over (b, l): needed by gamma/beta and, in training mode, by x.
    const bool need_xmu = need_g || (need_x && training);
    std::vector<double> sdy(static_cast<std::size_t>(C)), sdyx(static_cast<std::size_t>(C));
    if (need_g || need_b || (need_x && training))
      cpu::batch_norm_grad_sums(x.ctx().threads(), need_xmu ? x.value().data() : static_cast<const T*>(nullptr),
                                g.data(), B, C, L, mean.data(), sdy.data(), sdyx.data());
    if (need_g) {
      auto& gg = gamma.grad_buffer();
      for (index_t c = 0; c < C; ++c) gg[c] += static_cast<T>(sdyx[c] * double(invstd[c]));
    }
    if (need_b) {
      auto& gb = beta.grad_buffer();
      for (index_t c = 0; c < C; ++c) gb[c] += static_cast<T>(sdy[c]);
    }
    if (!need_x) return;
    if (training && sync) {  // dx needs the global sums (every rank takes this branch: the same graph runs)
      sdy.insert(sdy.end(), sdyx.begin(), sdyx.end());
      x.ctx().comm().all_reduce(std::span<double>(sdy));
      std::copy(sdy.begin() + C, sdy.end(), sdyx.begin());
    }
    const int nt = threads_for(x.ctx(), x.numel());
    auto& gx = x.grad_buffer();
    if (!training) {
      cpu::batch_norm_input_grad(nt, static_cast<const T*>(nullptr), g.data(), gx.data(), B, C, L, mean.data(),
                                 scale.data(), scale.data(), scale.data());
      return;
    }
    Tensor<T, 1, D> k_x(Shape<1>{C}), k_0(Shape<1>{C});
    for (index_t c = 0; c < C; ++c) {
      const double a = double(scale[c]), is = double(invstd[c]);
      k_x[c] = static_cast<T>(-a * is * is * sdyx[c] / double(N));
      k_0[c] = static_cast<T>(-a * sdy[c] / double(N));
    }
    cpu::batch_norm_input_grad(nt, x.value().data(), g.data(), gx.data(), B, C, L, mean.data(), scale.data(),
                               k_x.data(), k_0.data());
  };
  return with_defined(gamma, beta, [&](const auto&... affine) {
    return autograd::make_result("batch_norm", ctx, std::move(out), std::move(backward), x, affine...);
  });
}
}  // namespace ops_detail

/// Batch normalisation of x [B, C, L] or [B, C] (BatchNorm1d). gamma, beta: [C] or undefined (no affine).
/// running_mean / running_var: [C], updated in place in training mode; they may be undefined tensors in
/// training mode (no running statistics, track_running_stats=False), and are required in eval mode.
template <class T, std::size_t R, class D>
Var<T, R, D> batch_norm(const Var<T, R, D>& x, const Var<T, 1, D>& gamma, const Var<T, 1, D>& beta,
                        Tensor<T, 1, D>& running_mean, Tensor<T, 1, D>& running_var,
                        const BatchNormOptions& opt = {}) {
  static_assert(R == 2 || R == 3, "batch_norm: the input must be [B, C] (rank 2) or [B, C, L] (rank 3).");
  const auto& xs = x.shape();
  const index_t B = xs[0], C = xs[1];
  index_t L = 1;  // [B, C] is [B, C, 1]
  if constexpr (R == 3) L = xs[2];
  const Shape<1> cs{C};
  if (gamma.defined())
    DISTILL_CHECK(gamma.shape() == cs, "batch_norm: gamma has shape ", to_string(gamma.shape()), " but the input ",
                  to_string(xs), " has ", C, " channels");
  if (beta.defined())
    DISTILL_CHECK(beta.shape() == cs, "batch_norm: beta has shape ", to_string(beta.shape()), " but the input ",
                  to_string(xs), " has ", C, " channels");
  DISTILL_CHECK(opt.eps > 0, "batch_norm: eps must be positive, got ", opt.eps);
  const bool have_running = running_mean.defined() || running_var.defined();
  if (have_running) {
    DISTILL_CHECK(running_mean.defined() && running_var.defined(),
                  "batch_norm: pass both running_mean and running_var, or neither");
    DISTILL_CHECK(running_mean.shape() == cs && running_var.shape() == cs, "batch_norm: running_mean ",
                  to_string(running_mean.shape()), " / running_var ", to_string(running_var.shape()),
                  " must have shape ", to_string(cs), " for an input of shape ", to_string(xs));
  }
  auto& ctx = x.ctx();
  const bool sync = opt.training && ctx.sync_batch_norm() && ctx.world_size() > 1;
  index_t N = B * L;
  if (opt.training) {
    DISTILL_CHECK(N > 1, "batch_norm: Expected more than 1 value per channel when training, got input of shape ",
                  to_string(xs));
  } else {
    DISTILL_CHECK(have_running, "batch_norm: eval mode (training = false) needs running_mean and running_var");
  }

  return ops_detail::batch_norm_on(x, gamma, beta, running_mean, running_var, opt, B, C, L, N, sync);
}

}  // namespace distill