// distill/nn/layers.hpp -- the stateless layers: Identity, ReLU, GlobalAvgPool, Flatten, L2Normalize.
//
// They have no parameters and no dtype of their own (forward is a template over the input Var), accept any
// channel count, and are constructed from any Context (so containers can build every layer from one ctx).
#pragma once

#include "distill/nn/module.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/normalize.hpp"
#include "distill/ops/pool.hpp"

namespace distill::nn {

/// A stateless module: nothing to visit, constructible from any context.
template <class Derived>
class Stateless : public Module<Derived> {
public:
  Stateless() = default;
  template <class D>
  explicit Stateless(Context<D>&) {}
  static constexpr unsigned parameter_ranks = ranks(), buffer_ranks = ranks();
  template <class Self, class F>
  static void visit_parameters(Self&, F&&) {}
};

/// y = x.
class Identity : public Stateless<Identity> {
public:
  using Stateless::Stateless;
  static constexpr index_t in_channels = any_channels;
  static constexpr index_t out_channels = same_channels;
  static constexpr name_string type_name() { return name("Identity"); }
  template <class T, std::size_t R, class D>
  Var<T, R, D> forward(const Var<T, R, D>& x) {
    return x;
  }
};

/// y = max(x, 0), any shape.
class ReLU : public Stateless<ReLU> {
public:
  using Stateless::Stateless;
  static constexpr index_t in_channels = any_channels;
  static constexpr index_t out_channels = same_channels;
  static constexpr name_string type_name() { return name("ReLU"); }
  template <class T, std::size_t R, class D>
  Var<T, R, D> forward(const Var<T, R, D>& x) {
    return relu(x);
  }
};

/// Mean over time: [B, C, L] -> [B, C].
class GlobalAvgPool : public Stateless<GlobalAvgPool> {
public:
  using Stateless::Stateless;
  static constexpr index_t in_channels = any_channels;
  static constexpr index_t out_channels = same_channels;
  static constexpr name_string type_name() { return name("GlobalAvgPool"); }
  template <class T, std::size_t R, class D>
  Var<T, 2, D> forward(const Var<T, R, D>& x) {
    static_assert(R == 3, "GlobalAvgPool: the input must be a [batch, channels, length] tensor (rank 3).");
    if constexpr (R == 3)
      return global_avg_pool(x);
    else
      return Var<T, 2, D>();
  }
};

/// [B, C, L] -> [B, C * L]. The feature count depends on the runtime length, so it is not checked statically.
class Flatten : public Stateless<Flatten> {
public:
  using Stateless::Stateless;
  static constexpr index_t in_channels = any_channels;
  static constexpr index_t out_channels = dynamic_channels;
  static constexpr name_string type_name() { return name("Flatten"); }
  template <class T, std::size_t R, class D>
  Var<T, 2, D> forward(const Var<T, R, D>& x) {
    static_assert(R == 3, "Flatten: the input must be a [batch, channels, length] tensor (rank 3).");
    if constexpr (R == 3)
      return flatten(x);
    else
      return Var<T, 2, D>();
  }
};

/// Row-wise L2 normalisation of [B, D] (F.normalize(x, dim=1), eps = 1e-12).
class L2Normalize : public Stateless<L2Normalize> {
public:
  using Stateless::Stateless;
  static constexpr index_t in_channels = any_channels;
  static constexpr index_t out_channels = same_channels;
  static constexpr name_string type_name() { return name("L2Normalize"); }
  template <class T, std::size_t R, class D>
  Var<T, 2, D> forward(const Var<T, R, D>& x) {
    static_assert(R == 2, "L2Normalize: the input must be a [batch, features] tensor (rank 2).");
    if constexpr (R == 2)
      return l2_normalize(x, eps_);
    else
      return Var<T, 2, D>();
  }
  double eps() const noexcept { return eps_; }
  void set_eps(double e) {
    DISTILL_CHECK(e > 0, "L2Normalize: eps must be positive, got ", e);
    eps_ = e;
  }

private:
  double eps_ = 1e-12;
};

}  // namespace distill::nn
