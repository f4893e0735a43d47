// distill/ops/cross_entropy.hpp -- cross-entropy (hard labels, soft targets) and MSE: forward and backward side by
// side.
//
// Losses return a rank-0 Var (call .backward() on it directly; on the Cuda device the value stays in device memory:
// read it with to_host). Cross-entropy keeps one log-sum-exp per row
// from the forward and recomputes the softmax in the backward; the logit gradient is
//   hard:  (softmax(x) - onehot(y)) * g / B
//   soft:  (sum(p) * softmax(x) - p) * g / B        and, if the targets require grad, -log_softmax(x) * g / B.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

enum class Reduction { Sum, Mean };

/// Mean over the batch of -log softmax(logits)[b, labels[b]] for logits [B, K] and B labels in [0, K).
/// PyTorch: F.cross_entropy(logits, labels).
template <class T, class D>
Var<T, 0, D> cross_entropy(const Var<T, 2, D>& logits, std::span<const int> labels) {
  const index_t B = logits.extent(0), K = logits.extent(1);
  DISTILL_CHECK(B > 0 && K > 0, "cross_entropy: logits of shape ", to_string(logits.shape()), " are empty");
  DISTILL_CHECK(index_t(labels.size()) == B, "cross_entropy: ", labels.size(), " labels for logits of shape ",
                to_string(logits.shape()), " (expected one label per row)");
  for (index_t b = 0; b < B; ++b)
    DISTILL_CHECK(labels[b] >= 0 && labels[b] < K, "cross_entropy: label ", labels[b], " in row ", b,
                  " is out of range for ", K, " classes (logits ", to_string(logits.shape()), ")");
  auto& ctx = logits.ctx();
  Tensor<T, 1, D> lse = ops_detail::empty<T, 1>(ctx, Shape<1>{B});
  Tensor<T, 0, D> out = ops_detail::empty<T, 0>(ctx, Shape<0>{});
  // Labels travel to the context's device once; forward and backward use the copy.
  Tensor<std::int32_t, 1, Cpu> host(Shape<1>{B});
  std::copy(labels.begin(), labels.end(), host.data());
  Tensor<std::int32_t, 1, D> lab = DeviceOps<D>::from_host(ctx, std::move(host));  // Cpu: the same storage
  backend::cross_entropy_forward(ctx, logits.value().data(), lab.data(), static_cast<const T*>(nullptr), B, K,
                                 lse.data(), out.data(), 1.0 / double(B));
  return autograd::make_result("cross_entropy", ctx, std::move(out),
      [logits, lse, lab, B, K](const Tensor<T, 0, D>& g) mutable {
        if (!logits.requires_grad()) return;
        backend::cross_entropy_backward(logits.ctx(), logits.value().data(), lab.data(), static_cast<const T*>(nullptr),
                                        lse.data(), g.data(), T(1) / T(B), logits.grad_buffer().data(),
                                        static_cast<T*>(nullptr), B, K, true);
      },
      logits);
}

template <class T, class D>
Var<T, 0, D> cross_entropy(const Var<T, 2, D>& logits, const std::vector<int>& labels) {
  return cross_entropy(logits, std::span<const int>(labels));
}

/// Mean over the batch of -sum_k targets[b, k] * log_softmax(logits)[b, k], targets [B, K] (probabilities,
/// e.g. a teacher's softmax). Gradients flow to the targets too when they require grad.
/// PyTorch: F.cross_entropy(logits, targets) with probability targets.
template <class T, class D>
Var<T, 0, D> cross_entropy(const Var<T, 2, D>& logits, const Var<T, 2, D>& targets) {
  check_same_shape(logits.shape(), targets.shape(), "cross_entropy (soft targets): logits and targets");
  const index_t B = logits.extent(0), K = logits.extent(1);
  DISTILL_CHECK(B > 0 && K > 0, "cross_entropy: logits of shape ", to_string(logits.shape()), " are empty");
  auto& ctx = logits.ctx();
  Tensor<T, 1, D> lse = ops_detail::empty<T, 1>(ctx, Shape<1>{B});
  Tensor<T, 0, D> out = ops_detail::empty<T, 0>(ctx, Shape<0>{});
  backend::cross_entropy_forward(ctx, logits.value().data(), static_cast<const std::int32_t*>(nullptr),
                                 targets.value().data(), B, K, lse.data(), out.data(), 1.0 / double(B));
  return autograd::make_result("cross_entropy", ctx, std::move(out),
      [logits, targets, lse, B, K](const Tensor<T, 0, D>& g) mutable {
        const bool gx = logits.requires_grad(), gp = targets.requires_grad();
        if (!gx && !gp) return;
        T* dx = gx ? logits.grad_buffer().data() : nullptr;
        T* dp = gp ? targets.grad_buffer().data() : nullptr;
        backend::cross_entropy_backward(logits.ctx(), logits.value().data(), static_cast<const std::int32_t*>(nullptr),
                                        targets.value().data(), lse.data(), g.data(), T(1) / T(B), dx, dp, B, K, true);
      },
      logits, targets);
}

/// Squared error between a and b of any (equal) shape: sum((a-b)^2), or its mean over all elements.
/// PyTorch: F.mse_loss(a, b, reduction='sum' | 'mean').
template <class T, std::size_t R, class D>
Var<T, 0, D> mse(const Var<T, R, D>& a, const Var<T, R, D>& b, Reduction reduction = Reduction::Mean) {
  check_same_shape(a.shape(), b.shape(), "mse");
  const index_t n = a.numel();
  DISTILL_CHECK(n > 0 || reduction == Reduction::Sum, "mse: mean over empty tensors of shape ",
                to_string(a.shape()));
  auto& ctx = a.ctx();
  const double scale = reduction == Reduction::Mean ? 1.0 / double(n) : 1.0;
  Tensor<T, 0, D> out = ops_detail::empty<T, 0>(ctx, Shape<0>{});
  backend::squared_error_sum(ctx, a.value().data(), b.value().data(), n, out.data(), scale);
  return autograd::make_result("mse", ctx, std::move(out),
      [a, b, scale, n](const Tensor<T, 0, D>& g) mutable {
        const bool ga = a.requires_grad(), gb = b.requires_grad();
        if (!ga && !gb) return;
        // Both buffers are fetched before the loop: a and b may be the same Var.
        T* da = ga ? a.grad_buffer().data() : nullptr;
        T* db = gb ? b.grad_buffer().data() : nullptr;
        backend::squared_error_backward(a.ctx(), a.value().data(), b.value().data(), g.data(),
                                        static_cast<T>(2.0 * scale), da, db, n);
      },
      a, b);
}

}  // namespace distill
