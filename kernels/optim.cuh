// kernels/optim.cuh -- optimizer steps and the parameter EMA, elementwise over one tensor, PyTorch's update rules.
//
// SGD (torch.optim.SGD):   d = g + wd*p;  buf = first ? d : momentum*buf + (1-dampening)*d;
//                          d = nesterov ? d + momentum*buf : buf (when momentum != 0);  p -= lr*d
// Adam / AdamW (torch.optim.Adam(W), non-fused):
//                          Adam: g += wd*p      AdamW: p *= 1 - lr*wd
//                          m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
//                          (amsgrad: vmax = max(vmax, v), used below instead of v)
//                          p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// EMA (momentum encoders): target = m * target + (1 - m) * source.
// Bias corrections and 1 - beta are computed on the host in double and passed as scalars, exactly as
// cpu/optim.hpp does, so both devices round the same way.
#pragma once

#include <cmath>

#include "distill/problems/kernels.hpp"
#include "elementwise.cuh"

namespace distill::kernels {

template <class T>
struct SgdScalars {
  T lr, momentum, one_minus_dampening, weight_decay;
  int nesterov, first_step;
};

template <class T>
__global__ void sgd_step_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ buf, index_t n,
                                SgdScalars<T> c) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    const T p = param[i];
    T d = grad[i];
    if (c.weight_decay != T(0)) d += c.weight_decay * p;
    if (buf) {
      const T b = c.first_step ? d : buf[i] * c.momentum + c.one_minus_dampening * d;
      buf[i] = b;
      d = c.nesterov ? d + c.momentum * b : b;
    }
    param[i] = p - c.lr * d;
  }
}

template <class T>
struct AdamScalars {
  T beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
  T decay;                  // 1 - lr * weight_decay (AdamW)
  T neg_step_size;          // -lr / (1 - beta1^t)
  T bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  int decoupled;
};

/// The operations in the order of cpu::adam_update (same products and sums, hyper-parameters rounded the same way),
/// so the Cuda and Cpu devices agree to a few ulps. vmax (amsgrad) may be null.
template <class T>
__global__ void adam_step_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ m,
                                 T* __restrict__ v, T* __restrict__ vmax, index_t n, AdamScalars<T> c) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    T p = param[i];
    T g = grad[i];
    if (c.weight_decay != T(0)) {
      if (c.decoupled) p = p * c.decay;
      else g = g + c.weight_decay * p;
    }
    const T mi = m[i] * c.beta1 + c.one_minus_beta1 * g;
    const T vi = v[i] * c.beta2 + c.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    T vv = vi;
    if (vmax) {
      vv = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = vv;
    }
    const T denom = device_sqrt(vv) / c.bias_correction2_sqrt + c.eps;
    param[i] = p + c.neg_step_size * mi / denom;
  }
}

/// target = m * target + (1 - m) * source (an EMA of parameters); m == 0 copies exactly.
template <class T>
__global__ void ema_update_kernel(T* __restrict__ target, const T* __restrict__ source, index_t n, T m, T om,
                                  int copy) {
  for (index_t i = global_thread(); i < n; i += grid_threads())
    target[i] = copy ? source[i] : m * target[i] + om * source[i];
}

template <class T>
void sgd_step(cudaStream_t s, T* param, const T* grad, T* buf, index_t n, const SgdConfig& cfg) {
  const double lr = cfg.lr, momentum = cfg.momentum, dampening = cfg.dampening, weight_decay = cfg.weight_decay;
  const bool nesterov = cfg.nesterov, first_step = cfg.first_step;
  DISTILL_CHECK(n >= 0, "sgd_step: negative element count ", n);
  DISTILL_CHECK(lr >= 0 && momentum >= 0 && weight_decay >= 0, "sgd_step: invalid lr ", lr, ", momentum ", momentum,
                " or weight_decay ", weight_decay);
  DISTILL_CHECK(!nesterov || (momentum > 0 && dampening == 0),
                "sgd_step: Nesterov momentum requires momentum > 0 and zero dampening (momentum ", momentum,
                ", dampening ", dampening, ")");
  DISTILL_CHECK(momentum == 0 || buf != nullptr, "sgd_step: momentum ", momentum, " needs a momentum buffer");
  if (n == 0) return;
  const SgdScalars<T> c{static_cast<T>(lr), static_cast<T>(momentum), static_cast<T>(1.0 - dampening),
                        static_cast<T>(weight_decay), nesterov ? 1 : 0, first_step ? 1 : 0};
  launch("sgd_step_kernel", sgd_step_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, param, grad,
         momentum != 0 ? buf : nullptr, n, c);
}

template <class T>
void adam_step(cudaStream_t s, T* param, const T* grad, T* m, T* v, index_t n, const AdamConfig& cfg, T* vmax) {
  const double lr = cfg.lr, beta1 = cfg.beta1, beta2 = cfg.beta2, eps = cfg.eps, weight_decay = cfg.weight_decay;
  const bool decoupled = cfg.decoupled_weight_decay;
  const long long step = static_cast<long long>(cfg.step);
  DISTILL_CHECK(n >= 0, "adam_step: negative element count ", n);
  DISTILL_CHECK(step >= 1, "adam_step: the step count is 1-based, got ", step);
  DISTILL_CHECK(lr >= 0 && eps >= 0 && weight_decay >= 0 && beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
                "adam_step: invalid hyper-parameters lr ", lr, ", betas (", beta1, ", ", beta2, "), eps ", eps,
                ", weight_decay ", weight_decay);
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const AdamScalars<T> c{static_cast<T>(beta1),        static_cast<T>(1.0 - beta1),
                         static_cast<T>(beta2),        static_cast<T>(1.0 - beta2),
                         static_cast<T>(eps),          static_cast<T>(weight_decay),
                         static_cast<T>(1.0 - lr * weight_decay), static_cast<T>(-(lr / bc1)),
                         static_cast<T>(std::sqrt(bc2)), decoupled ? 1 : 0};
  launch("adam_step_kernel", adam_step_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, param, grad,
         m, v, vmax, n, c);
}

template <class T>
void ema_update(cudaStream_t s, T* target, const T* source, index_t n, double momentum) {
  DISTILL_CHECK(n >= 0, "ema_update: negative element count ", n);
  DISTILL_CHECK(momentum >= 0 && momentum <= 1, "ema_update: momentum must be in [0, 1], got ", momentum);
  if (n == 0) return;
  launch("ema_update_kernel", ema_update_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, target,
         source, n, static_cast<T>(momentum), static_cast<T>(1.0 - momentum), momentum == 0 ? 1 : 0);
}

}  // namespace distill::kernels
