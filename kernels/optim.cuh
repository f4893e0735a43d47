// kernels/optim.cuh -- optimizer steps, elementwise over one parameter tensor, with PyTorch's update rules.
//
// SGD (torch.optim.SGD):   d = g + wd*p;  buf = first ? d : momentum*buf + (1-dampening)*d;
//                          d = nesterov ? d + momentum*buf : buf (when momentum != 0);  p -= lr*d
// Adam / AdamW (torch.optim.Adam(W), non-fused, non-amsgrad):
//                          Adam: g += wd*p      AdamW: p *= 1 - lr*wd
//                          m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
//                          p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Bias corrections are computed on the host in double and passed as scalars.
#pragma once

#include <cmath>

#include "elementwise.cuh"

namespace distill::kernels {

template <class T>
struct SgdScalars {
  T lr, momentum, dampening, weight_decay;
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
      const T b = c.first_step ? d : c.momentum * buf[i] + (T(1) - c.dampening) * d;
      buf[i] = b;
      d = c.nesterov ? d + c.momentum * b : b;
    }
    param[i] = p - c.lr * d;
  }
}

template <class T>
struct AdamScalars {
  T lr, beta1, beta2, eps, weight_decay;
  T step_size;          // lr / (1 - beta1^t)
  T bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  int decoupled;
};

template <class T>
__global__ void adam_step_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ m,
                                 T* __restrict__ v, index_t n, AdamScalars<T> c) {
  for (index_t i = global_thread(); i < n; i += grid_threads()) {
    T p = param[i];
    T g = grad[i];
    if (c.weight_decay != T(0)) {
      if (c.decoupled) p *= T(1) - c.lr * c.weight_decay;
      else g += c.weight_decay * p;
    }
    const T mi = c.beta1 * m[i] + (T(1) - c.beta1) * g;
    const T vi = c.beta2 * v[i] + (T(1) - c.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const T denom = device_sqrt(vi) / c.bias_correction2_sqrt + c.eps;
    param[i] = p - c.step_size * (mi / denom);
  }
}

template <class T>
void sgd_step(cudaStream_t s, T* param, const T* grad, T* buf, index_t n, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first_step) {
  DISTILL_CHECK(n >= 0, "sgd_step: negative element count ", n);
  DISTILL_CHECK(lr >= 0 && momentum >= 0 && weight_decay >= 0, "sgd_step: invalid lr ", lr, ", momentum ", momentum,
                " or weight_decay ", weight_decay);
  DISTILL_CHECK(!nesterov || (momentum > 0 && dampening == 0),
                "sgd_step: Nesterov momentum requires momentum > 0 and zero dampening (momentum ", momentum,
                ", dampening ", dampening, ")");
  DISTILL_CHECK(momentum == 0 || buf != nullptr, "sgd_step: momentum ", momentum, " needs a momentum buffer");
  if (n == 0) return;
  const SgdScalars<T> c{static_cast<T>(lr), static_cast<T>(momentum), static_cast<T>(dampening),
                        static_cast<T>(weight_decay), nesterov ? 1 : 0, first_step ? 1 : 0};
  launch("sgd_step_kernel", sgd_step_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, param, grad,
         momentum != 0 ? buf : nullptr, n, c);
}

template <class T>
void adam_step(cudaStream_t s, T* param, const T* grad, T* m, T* v, index_t n, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool decoupled, long long step) {
  DISTILL_CHECK(n >= 0, "adam_step: negative element count ", n);
  DISTILL_CHECK(step >= 1, "adam_step: the step count is 1-based, got ", step);
  DISTILL_CHECK(lr >= 0 && eps >= 0 && weight_decay >= 0 && beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
                "adam_step: invalid hyper-parameters lr ", lr, ", betas (", beta1, ", ", beta2, "), eps ", eps,
                ", weight_decay ", weight_decay);
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const AdamScalars<T> c{static_cast<T>(lr),          static_cast<T>(beta1),        static_cast<T>(beta2),
                         static_cast<T>(eps),         static_cast<T>(weight_decay), static_cast<T>(lr / bc1),
                         static_cast<T>(std::sqrt(bc2)), decoupled ? 1 : 0};
  launch("adam_step_kernel", adam_step_kernel<T>, {elementwise_grid(n), dim3(kElementwiseThreads), 0, s}, param, grad,
         m, v, n, c);
}

}  // namespace distill::kernels
