// distill/cpu/optim.hpp -- raw CPU kernels of the optimizers (pointers in, pointers out).
//
// Each kernel is one fused elementwise pass over a parameter, written to follow PyTorch 1.13's single-tensor
// implementations operation by operation (same order of floating-point operations, hyper-parameters cast to
// T where PyTorch casts them to the tensor's dtype), so float results agree with torch to a few ulps and
// double results to rounding. Threads: the caller passes the count (ops own the threads).
#pragma once

#include <cmath>

#include "distill/core/shape.hpp"
#include "distill/cpu/api.hpp"

namespace distill::cpu {

/// torch.optim.SGD (1.13), one parameter:
///   d_p = g + wd * p
///   buf = first ? d_p : momentum * buf + (1 - dampening) * d_p        (only when momentum != 0)
///   d_p = nesterov ? d_p + momentum * buf : buf
///   p  -= lr * d_p
/// `buf` may be nullptr when momentum == 0.
template <class T>
void sgd_update(T* __restrict p, const T* __restrict g, T* __restrict buf, index_t n, const SgdConfig& h,
                int threads) {
  const bool first_step = h.first_step;
  const T wd = static_cast<T>(h.weight_decay);
  const T mu = static_cast<T>(h.momentum);
  const T damp = static_cast<T>(1.0 - h.dampening);
  const T neg_lr = static_cast<T>(-h.lr);
  const bool use_wd = h.weight_decay != 0;
  const bool use_mom = h.momentum != 0;
  const bool nesterov = h.nesterov;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t i = 0; i < n; ++i) {
    T d = use_wd ? g[i] + wd * p[i] : g[i];
    if (use_mom) {
      const T b = first_step ? d : buf[i] * mu + damp * d;
      buf[i] = b;
      d = nesterov ? d + mu * b : b;
    }
    p[i] = p[i] + neg_lr * d;
  }
}

/// torch.optim.Adam / AdamW (1.13), one parameter:
///   AdamW: p *= 1 - lr * wd                Adam: g = g + wd * p
///   m = m * b1 + (1 - b1) * g
///   v = v * b2 + (1 - b2) * g * g          (amsgrad: vmax = max(vmax, v), used below instead of v)
///   denom = sqrt(v) / sqrt(1 - b2^t) + eps
///   p = p - (lr / (1 - b1^t)) * m / denom
/// amsgrad when `vmax` is given (else nullptr).
template <class T>
void adam_update(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
                 index_t n, const AdamConfig& h, int threads) {
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  const T neg_step_size = static_cast<T>(-(h.lr / bc1));
  const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
  const T b1 = static_cast<T>(h.beta1), one_minus_b1 = static_cast<T>(1.0 - h.beta1);
  const T b2 = static_cast<T>(h.beta2), one_minus_b2 = static_cast<T>(1.0 - h.beta2);
  const T eps = static_cast<T>(h.eps);
  const T wd = static_cast<T>(h.weight_decay);
  const T decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
  const bool use_wd = h.weight_decay != 0;
  const bool decoupled = h.decoupled_weight_decay;
  const bool amsgrad = vmax != nullptr;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t i = 0; i < n; ++i) {
    T pi = p[i];
    T gi = g[i];
    if (use_wd) {
      if (decoupled)
        pi = pi * decay;
      else
        gi = gi + wd * pi;
    }
    const T mi = m[i] * b1 + one_minus_b1 * gi;
    const T vi = v[i] * b2 + one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    T vv = vi;
    if (amsgrad) {
      vv = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = vv;
    }
    const T denom = std::sqrt(vv) / bc2_sqrt + eps;
    p[i] = pi + neg_step_size * mi / denom;
  }
}

/// target = m * target + (1 - m) * source (momentum-encoder EMA); m == 0 copies exactly (even over NaNs).
template <class T>
void ema_update(T* __restrict target, const T* __restrict source, index_t n, double momentum, int threads) {
  if (momentum == 0) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (index_t i = 0; i < n; ++i) target[i] = source[i];
    return;
  }
  const T m = static_cast<T>(momentum);
  const T om = static_cast<T>(1.0 - momentum);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (index_t i = 0; i < n; ++i) target[i] = m * target[i] + om * source[i];
}

}  // namespace distill::cpu
