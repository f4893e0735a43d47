// distill/optim/meta.hpp -- rollback snapshots and the finite-difference hyper-gradient of a one-step bilevel
// problem (L-MCL's meta step; docs/mcl.md).
//
// snippet: fragment; includes: distill/optim/sgd.hpp; given: ParamList<float> theta, phi; optim::SGD<float> opt{theta};
// auto inner = [] { return Var<float, 0>{}; }; auto inner_phi = inner; auto outer = inner;
//   optim::Snapshot<float> snap{theta, &opt};   // copies of the parameter values and the optimizer state
//   // ... virtual steps ...
//   snap.restore();                             // bitwise: values, step counters, moment buffers
//   auto r = optim::fd_hypergradient(theta, phi, inner, inner_phi, outer, {.lr = 0.1});
//
// fd_hypergradient approximates the gradient of F(phi) = L_out(theta'(phi)), theta' = theta - lr grad_theta
// L_in(theta, phi) (one virtual plain-SGD step), by the finite-difference Hessian-vector product of DARTS (Liu et
// al., ICLR 2019):
//   v = grad_theta L_out(theta'),  eps = eps_scale / ||v||,  theta+- = theta +- eps v,
//   dF/dphi ~= -lr [grad_phi L_in(theta+, phi) - grad_phi L_in(theta-, phi)] / (2 eps).
// It is an approximation of the exact unrolled second-order gradient (error O(eps^2) plus the truncation to one
// virtual step). The result is written into phi's gradients (for phi's own optimizer); theta's values are restored
// bitwise and its gradients zeroed. BN running statistics are not restored (the forward passes update them).
// Cpu device.
#pragma once

#include <cmath>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "distill/optim/optimizer.hpp"
#include "distill/optim/param_list.hpp"

namespace distill::optim {

/// Copies of a parameter list's values and (optionally) an optimizer's state, restorable bitwise.
template <class T, class D = Cpu>
class Snapshot {
  static_assert(std::is_same_v<D, Cpu>, "optim::Snapshot: Cpu device only");

public:
  explicit Snapshot(const ParamList<T, D>& params, Optimizer<T, D>* opt = nullptr) : params_(params), opt_(opt) {
    for (const auto& p : params_) values_.emplace_back(p.data(), p.data() + p.numel());
    if (opt_) {
      lr_ = opt_->lr();
      opt_->for_each_state([&](std::string_view, auto& t) {
        const auto* b = reinterpret_cast<const unsigned char*>(t.data());
        state_.emplace_back(b, b + sizeof(*t.data()) * static_cast<std::size_t>(t.numel()));
      });
    }
  }

  /// Writes the saved values (and optimizer state and learning rate) back.
  void restore() const {
    for (std::size_t i = 0; i < values_.size(); ++i)
      if (!values_[i].empty()) std::memcpy(params_[i].data(), values_[i].data(), sizeof(T) * values_[i].size());
    if (opt_) {
      std::size_t k = 0;
      opt_->for_each_state([&](std::string_view, auto& t) {
        const auto& s = state_.at(k++);
        if (!s.empty()) std::memcpy(static_cast<void*>(t.data()), s.data(), s.size());
      });
      opt_->set_lr(lr_);
    }
  }

  /// Saved value of parameter i.
  const std::vector<T>& values(std::size_t i) const { return values_.at(i); }

private:
  ParamList<T, D> params_;
  Optimizer<T, D>* opt_;
  std::vector<std::vector<T>> values_;
  std::vector<std::vector<unsigned char>> state_;
  double lr_ = 0;
};

struct HypergradOptions {
  double lr = 0.1;           // the virtual step's learning rate
  double eps_scale = 0.01;   // eps = eps_scale / ||v||
};

struct HypergradResult {
  double inner_loss = 0;     // L_in(theta, phi) before the virtual step
  double outer_loss = 0;     // L_out(theta') after it
  double v_norm = 0;         // ||grad_theta L_out(theta')||
  double eps = 0;
};

/// inner(): builds L_in at the current theta and phi (both may receive gradients);
/// inner_phi(): builds L_in with only phi's gradient needed (run the theta side under NoGradGuard);
/// outer(): builds L_out at the current theta.
/// On return phi's gradients hold the hyper-gradient (replacing what they held), theta is restored bitwise and
/// its gradients are zero.
template <class T, class D, class Inner, class InnerPhi, class Outer>
HypergradResult fd_hypergradient(const ParamList<T, D>& theta, const ParamList<T, D>& phi, Inner&& inner,
                                 InnerPhi&& inner_phi, Outer&& outer, HypergradOptions o = {}) {
  static_assert(std::is_same_v<D, Cpu>, "optim::fd_hypergradient: Cpu device only");
  DISTILL_CHECK(o.lr > 0 && o.eps_scale > 0, "fd_hypergradient: lr (", o.lr, ") and eps_scale (", o.eps_scale,
                ") must be > 0");
  HypergradResult r;
  const Snapshot<T, D> snap(theta);
  // 1. Virtual step theta' = theta - lr grad_theta L_in(theta, phi).
  theta.zero_grad();
  {
    auto l = inner();
    r.inner_loss = double(l.value()[0]);
    l.backward();
  }
  for (const auto& p : theta)
    if (const T* g = p.grad())
      for (index_t k = 0; k < p.numel(); ++k) p.data()[k] -= static_cast<T>(o.lr * double(g[k]));
  // 2. v = grad_theta L_out(theta').
  theta.zero_grad();
  {
    auto l = outer();
    r.outer_loss = double(l.value()[0]);
    l.backward();
  }
  std::vector<std::vector<double>> v(theta.size());
  double vv = 0;
  for (std::size_t i = 0; i < theta.size(); ++i) {
    const auto& p = theta[i];
    v[i].assign(static_cast<std::size_t>(p.numel()), 0.0);
    if (const T* g = p.grad())
      for (index_t k = 0; k < p.numel(); ++k) {
        v[i][k] = double(g[k]);
        vv += v[i][k] * v[i][k];
      }
  }
  r.v_norm = std::sqrt(vv);
  theta.zero_grad();
  if (r.v_norm == 0) {  // nothing to follow: zero hyper-gradient
    snap.restore();
    phi.zero_grad();
    return r;
  }
  r.eps = o.eps_scale / r.v_norm;
  // 3. grad_phi L_in at theta +- eps v (theta = the snapshot).
  auto phi_grad_at = [&](double sign) {
    snap.restore();
    for (std::size_t i = 0; i < theta.size(); ++i) {
      const auto& p = theta[i];
      for (index_t k = 0; k < p.numel(); ++k) p.data()[k] += static_cast<T>(sign * r.eps * v[i][k]);
    }
    phi.zero_grad();
    inner_phi().backward();
    std::vector<std::vector<double>> g(phi.size());
    for (std::size_t i = 0; i < phi.size(); ++i) {
      const auto& p = phi[i];
      g[i].assign(static_cast<std::size_t>(p.numel()), 0.0);
      if (const T* gp = p.grad())
        for (index_t k = 0; k < p.numel(); ++k) g[i][k] = double(gp[k]);
    }
    return g;
  };
  const auto gp = phi_grad_at(+1.0);
  const auto gm = phi_grad_at(-1.0);
  snap.restore();
  theta.zero_grad();
  phi.zero_grad();
  const double k = -o.lr / (2.0 * r.eps);
  for (std::size_t i = 0; i < phi.size(); ++i) {
    const auto& p = phi[i];
    T* g = p.grad();
    if (g == nullptr) continue;  // not reached by L_in: no gradient
    for (index_t j = 0; j < p.numel(); ++j) g[j] = static_cast<T>(k * (gp[i][j] - gm[i][j]));
  }
  return r;
}

}  // namespace distill::optim
