// distill/nn/module.hpp -- the module contract, the Module<Derived> base, compile-time names and channel rules.
//
// A module is a value whose STRUCTURE is its type (channel counts, kernel sizes) and whose batch and length
// are runtime. The contract (docs/nn.md has the long form and a worked user layer):
//
// snippet: declarations
//   struct MyLayer : nn::Module<MyLayer> {
//     using value_type = float;  using device_type = Cpu;           // omitted by stateless layers
//     static constexpr index_t in_channels  = 64;                   // nn::any_channels (0): accepts any
//     static constexpr index_t out_channels = 64;                   // 0: same as its input; nn::dynamic_channels
//                                                                   // (-1): not known at compile time
//     static constexpr auto type_name() { return nn::name("MyLayer<64>"); }   // for messages (optional)
//     explicit MyLayer(Context<Cpu>& ctx);                          // parameters drawn from ctx.rng()
//     Var<float, 3> forward(const Var<float, 3>& x);                // Module provides operator()
//     template <class Self, class F> static void visit_parameters(Self& self, F&& f) {
//       f("weight", self.weight);                                   // f(std::string_view, Var&)
//     }
//     template <class Self, class F> static void visit_buffers(Self& self, F&& f);   // optional: Tensors
//     static constexpr unsigned parameter_ranks = nn::ranks(1), buffer_ranks = nn::ranks();   // optional
//     Var<float, 1> weight;
//   };
//
// Module<Derived> turns the two static visitors into for_each_parameter / for_each_buffer (const and non-const),
// and provides operator(), train(bool) / eval() / is_training(), and copy_from(const Derived&) (values of all
// parameters and buffers: teacher or momentum-encoder initialisation). Free helpers: set_requires_grad(module,
// on) to freeze or unfreeze, num_parameters(module), params(module...) (distill/optim/param_list.hpp).
//
// The optional parameter_ranks / buffer_ranks (nn::ranks(...) of the Vars and Tensors the visitors pass;
// containers take the union of their children's, nn::parameter_ranks_union<Children...>()) let Module walk the
// module with one visitor type whatever lambda the caller gives: a model's walk is then compiled once instead of
// once per lambda (zero_grad, params, checkpoints, EMA, ...) and per nesting level. Without them everything works
// the same, with more code.
#pragma once

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/core/rng.hpp"
#include "distill/optim/param_list.hpp"

namespace distill::nn {

using distill::params;

/// in_channels: the layer accepts any channel count. out_channels: the output has the input's channel count.
inline constexpr index_t any_channels = 0;
inline constexpr index_t same_channels = 0;
/// out_channels: not known at compile time (e.g. flatten of [B, C, L]); later layers are checked at run time.
inline constexpr index_t dynamic_channels = -1;

// ------------------------------------------------------------------------------------------------------------
// Compile-time text: module names and static_assert messages that carry numbers.
// ------------------------------------------------------------------------------------------------------------
/// A fixed-capacity string usable as a template argument (a structural type); GCC prints it verbatim in
/// diagnostics, which is how channel-mismatch messages carry the layer name and both counts.
template <std::size_t N>
struct fixed_string {
  char data[N]{};

  constexpr fixed_string() = default;
  constexpr fixed_string(const char* s) {  // NOLINT(google-explicit-constructor)
    append(s);
  }
  constexpr std::size_t size() const {
    std::size_t n = 0;
    while (n < N && data[n] != '\0') ++n;
    return n;
  }
  constexpr fixed_string& append(const char* s) {
    std::size_t n = size();
    for (std::size_t i = 0; s[i] != '\0' && n + 1 < N; ++i) data[n++] = s[i];
    return *this;
  }
  template <std::size_t M>
  constexpr fixed_string& append(const fixed_string<M>& s) {
    return append(s.data);
  }
  constexpr fixed_string& append(index_t v) {
    char buf[24]{};
    int len = 0;
    const bool neg = v < 0;
    unsigned long long u = neg ? 0ull - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v);
    do {
      buf[len++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (neg) buf[len++] = '-';
    char out[24]{};
    for (int i = 0; i < len; ++i) out[i] = buf[len - 1 - i];
    return append(out);
  }
  constexpr const char* c_str() const { return data; }
  std::string str() const { return std::string(data); }
};

using name_string = fixed_string<96>;

/// A module name built from literals and integers: name("Conv1d<", 64, ", ", 128, ">").
template <class... Parts>
constexpr name_string name(const Parts&... parts) {
  name_string s;
  (s.append(parts), ...);
  return s;
}

namespace detail {
template <class M, class = void>
struct has_type_name : std::false_type {};
template <class M>
struct has_type_name<M, std::void_t<decltype(M::type_name())>> : std::true_type {};
}  // namespace detail

/// The module's type_name(), or "a user module" for modules without one.
template <class M>
constexpr name_string type_name_of() {
  if constexpr (detail::has_type_name<M>::value) {
    name_string s;
    s.append(M::type_name());
    return s;
  } else {
    return name_string("a user module");
  }
}

template <class M>
inline constexpr index_t in_channels_of = M::in_channels;
template <class M>
inline constexpr index_t out_channels_of = M::out_channels;

// ------------------------------------------------------------------------------------------------------------
// Ranks of parameters and buffers: what lets a module be walked with one visitor type.
// ------------------------------------------------------------------------------------------------------------
/// A set of tensor ranks (bit R: rank R), e.g. ranks(1, 3) for a convolution's bias and weight.
template <class... R>
constexpr unsigned ranks(R... r) {
  return (0u | ... | (1u << r));
}
/// A module that declares no ranks: walked with the caller's lambda itself (always correct, slower to compile).
inline constexpr unsigned unknown_ranks = ~0u;

/// M::parameter_ranks / M::buffer_ranks when declared (optional part of the contract), else unknown_ranks.
template <class M>
inline constexpr unsigned parameter_ranks_of = unknown_ranks;
template <class M>
  requires requires { M::parameter_ranks; }
inline constexpr unsigned parameter_ranks_of<M> = M::parameter_ranks;
template <class M>
inline constexpr unsigned buffer_ranks_of = unknown_ranks;
template <class M>
  requires requires { M::buffer_ranks; }
inline constexpr unsigned buffer_ranks_of<M> = M::buffer_ranks;

/// The union of rank sets (unknown when one of them is).
template <std::same_as<unsigned>... R>
constexpr unsigned ranks_union(R... r) {
  return ((r == unknown_ranks) || ...) ? unknown_ranks : (0u | ... | r);
}
/// The union over a container's children.
template <class... Ms>
constexpr unsigned parameter_ranks_union() {
  return ranks_union(parameter_ranks_of<Ms>...);
}
template <class... Ms>
constexpr unsigned buffer_ranks_union() {
  return ranks_union(buffer_ranks_of<Ms>...);
}

// ------------------------------------------------------------------------------------------------------------
// The CRTP base.
// ------------------------------------------------------------------------------------------------------------
namespace detail {
/// The one visitor type a module's visit_parameters (Box = Var) or visit_buffers (Box = Tensor) is instantiated
/// with, whatever the caller's lambda: for a module of element type T on device D whose parameters (buffers) have
/// the ranks in Ranks, f is called through one function pointer per rank. Without it every distinct lambda passed
/// to for_each_parameter (zero_grad, params, checkpoints, EMA, copy_from, ...) re-instantiated the whole walk of
/// every container and model, once per nesting level: the bulk of a training program's object code and build time.
template <template <class, std::size_t, class> class Box, class T, class D, bool Const, unsigned Ranks>
class ErasedVisitor {
  template <std::size_t R>
  using Arg = std::conditional_t<Const, const Box<T, R, D>, Box<T, R, D>>;
  template <std::size_t R>
  using Call = void (*)(void*, std::string_view, Arg<R>&);

  template <class F, std::size_t R>
  static void call(void* f, std::string_view n, Arg<R>& v) {
    (*static_cast<F*>(f))(n, v);
  }
  template <class F, std::size_t R>
  static constexpr Call<R> thunk() {
    if constexpr ((Ranks >> R) & 1u)
      return &call<F, R>;
    else
      return nullptr;
  }
  template <class V>
  struct rank_of : std::integral_constant<std::size_t, 0> {};
  template <std::size_t R>
  struct rank_of<Box<T, R, D>> : std::integral_constant<std::size_t, R> {};

  void* f_;
  Call<1> c1_;
  Call<2> c2_;
  Call<3> c3_;

public:
  template <class F>
  explicit ErasedVisitor(F& f) : f_(&f), c1_(thunk<F, 1>()), c2_(thunk<F, 2>()), c3_(thunk<F, 3>()) {}

  template <class V>
  void operator()(std::string_view n, V& v) const {
    constexpr std::size_t R = rank_of<std::remove_const_t<V>>::value;
    static_assert(R >= 1 && ((Ranks >> R) & 1u),
                  "for_each_parameter / for_each_buffer: the module visits a Var / Tensor whose rank, element type "
                  "or device its parameter_ranks / buffer_ranks, value_type and device_type do not declare");
    if constexpr (R == 1)
      c1_(f_, n, v);
    else if constexpr (R == 2)
      c2_(f_, n, v);
    else
      c3_(f_, n, v);
  }
};

/// Modules that declare value_type, device_type and the ranks (within 1..3) are walked with ErasedVisitor.
template <class M, unsigned Ranks>
concept ErasableModule = requires {
  typename M::value_type;
  typename M::device_type;
} && Ranks != unknown_ranks && (Ranks & ~0b1110u) == 0;

template <class M, class F, class = void>
struct has_visit_buffers : std::false_type {};
template <class M, class F>
struct has_visit_buffers<M, F, std::void_t<decltype(M::visit_buffers(std::declval<M&>(), std::declval<F&>()))>>
    : std::true_type {};

/// Containers call these on their children, so a child written against the bare contract (without deriving
/// from Module) may omit buffers or a training mode.
template <class M, class F>
void buffers_of(M& m, F&& f) {
  if constexpr (requires { m.for_each_buffer(f); }) m.for_each_buffer(f);
}
template <class M>
void set_training(M& m, bool on) {
  if constexpr (requires { m.train(on); }) m.train(on);
}

/// "prefix.name" (or just one of them when the other is empty).
inline std::string join(std::string_view prefix, std::string_view name) {
  std::string s(prefix);
  if (!s.empty() && !name.empty()) s += '.';
  s += name;
  return s;
}
}  // namespace detail

namespace detail {
/// `ctx`, refused when null on a device whose memory host code cannot reach (the Cuda device).
template <class D>
Context<D>* require_context(Context<D>* ctx, const char* what) {
  DISTILL_CHECK(ctx != nullptr || DeviceOps<D>::host_memory, what, ": a module with Cuda buffers but no Cuda "
                "parameter has no context to copy them with");
  return ctx;
}
}  // namespace detail

template <class Derived>
class Module {
public:
  /// Forward pass; see Derived::forward.
  template <class X>
  auto operator()(const X& x) {
    return derived().forward(x);
  }

  /// Training mode (the default) or evaluation mode; containers forward it to their children.
  void train(bool on = true) { training_ = on; }
  void eval() { derived().train(false); }
  bool is_training() const noexcept { return training_; }

  /// f(std::string_view name, Var& parameter), in a fixed order (PyTorch-style dotted names).
  template <class F>
  void for_each_parameter(F&& f) {
    walk<false, Var, parameter_ranks_of<Derived>>(derived(), f,
                                                     [](auto& self, auto& g) { Derived::visit_parameters(self, g); });
  }
  template <class F>
  void for_each_parameter(F&& f) const {
    walk<true, Var, parameter_ranks_of<Derived>>(derived(), f,
                                                    [](auto& self, auto& g) { Derived::visit_parameters(self, g); });
  }
  /// f(std::string_view name, Tensor& buffer): non-trainable state (BatchNorm running statistics).
  template <class F>
  void for_each_buffer(F&& f) {
    walk<false, Tensor, buffer_ranks_of<Derived>>(derived(), f, [](auto& self, auto& g) {
      if constexpr (detail::has_visit_buffers<Derived, decltype(g)>::value) Derived::visit_buffers(self, g);
    });
  }
  template <class F>
  void for_each_buffer(F&& f) const {
    walk<true, Tensor, buffer_ranks_of<Derived>>(derived(), f, [](auto& self, auto& g) {
      if constexpr (detail::has_visit_buffers<const Derived, decltype(g)>::value) Derived::visit_buffers(self, g);
    });
  }

  /// Copy the values of every parameter and buffer of `other` (same type) into this module. Nothing is
  /// shared afterwards; gradients, requires_grad flags and the training mode are left as they are. On the Cuda
  /// device the copies run on this module's stream (after `other`'s context has finished its queued work).
  void copy_from(const Derived& other) {
    std::vector<std::pair<const void*, std::size_t>> src;
    auto collect = [&](std::string_view, const auto& x) {
      const auto& t = tensor_of(x);
      src.emplace_back(t.data(), sizeof(*t.data()) * static_cast<std::size_t>(t.numel()));
    };
    other.for_each_parameter(collect);
    other.for_each_buffer(collect);
    std::size_t i = 0;
    bool synced = false;
    auto paste = [&](std::string_view name, auto& x) {
      auto& t = tensor_of(x);
      const std::size_t bytes = sizeof(*t.data()) * static_cast<std::size_t>(t.numel());
      DISTILL_CHECK(i < src.size() && src[i].second == bytes, "copy_from: '", name, "' of ",
                    type_name_of<Derived>().c_str(), " differs in size between the two modules");
      using Dev = typename std::remove_cvref_t<decltype(t)>::device_type;
      Context<Dev>* dst_ctx = detail::require_context(context_of<Dev>(derived()), "copy_from");
      if (!synced) {  // the source's queued work (another context's stream) must finish first
        Context<Dev>* src_ctx = context_of<Dev>(other);
        if (src_ctx && src_ctx != dst_ctx) DeviceOps<Dev>::synchronize(src_ctx);
        synced = true;
      }
      DeviceOps<Dev>::copy_bytes(dst_ctx, t.data(), src[i].first, bytes);
      ++i;
    };
    for_each_parameter(paste);
    for_each_buffer(paste);
  }

protected:
  Module() = default;

  Derived& derived() noexcept { return static_cast<Derived&>(*this); }
  const Derived& derived() const noexcept { return static_cast<const Derived&>(*this); }

  /// visit(self, g) with g = the one erased visitor type of Derived when it declares its ranks, else f itself.
  template <bool Const, template <class, std::size_t, class> class Box, unsigned Ranks, class Self, class F,
            class Visit>
  static void walk(Self& self, F& f, Visit visit) {
    if constexpr (detail::ErasableModule<Derived, Ranks>) {
      detail::ErasedVisitor<Box, typename Derived::value_type, typename Derived::device_type, Const, Ranks> g(f);
      visit(self, g);
    } else {
      auto g = [&](std::string_view n, auto& v) { f(n, v); };
      visit(self, g);
    }
  }

  template <class X>
  static auto& tensor_of(X& x) {
    if constexpr (requires { x.node(); })
      return x.value();
    else
      return x;
  }

  bool training_ = true;
};

// ------------------------------------------------------------------------------------------------------------
// Free helpers.
// ------------------------------------------------------------------------------------------------------------
/// "prefix.name": how containers (and user modules holding children) name their children's parameters.
inline std::string join_name(std::string_view prefix, std::string_view name) { return detail::join(prefix, name); }

/// A module with a training mode that can be read back: train(bool) and is_training().
template <class M>
concept HasTrainingMode = requires(M& m, const M& cm) {
  m.train(true);
  { cm.is_training() } -> std::convertible_to<bool>;
};

/// RAII: puts the given modules in eval mode and, when it goes out of scope (also by an exception), gives each one
/// back the mode it had (module.train(previous)). For inference on a model that is being trained: embedding a
/// dataset, validation, a teacher's forward. A container's children take the container's restored mode.
///
/// snippet: fragment; includes: distill/models/resnet1d.hpp; given: Context<Cpu> ctx; Var<float, 3> x;
/// models::ResNet1D<64> encoder{ctx}; nn::ProjectionHead<128, 128, 128> head{ctx};
///   {
///     nn::EvalModeGuard guard(encoder, head);   // BatchNorm uses (and keeps) its running statistics
///     auto z = head(encoder(x));
///   }                                           // both modules back in their previous mode
template <HasTrainingMode... Ms>
class [[nodiscard]] EvalModeGuard {
public:
  explicit EvalModeGuard(Ms&... modules) : modules_(&modules...), was_training_{modules.is_training()...} {
    (modules.train(false), ...);
  }
  ~EvalModeGuard() { restore(std::index_sequence_for<Ms...>{}); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

private:
  template <std::size_t... I>
  void restore(std::index_sequence<I...>) {
    (std::get<I>(modules_)->train(was_training_[I]), ...);
  }
  std::tuple<Ms*...> modules_;
  std::array<bool, sizeof...(Ms)> was_training_;
};

/// Freeze (false) or unfreeze (true) every parameter of a module: a frozen teacher costs no gradient work.
template <class M>
void set_requires_grad(M& module, bool on) {
  module.for_each_parameter([&](std::string_view, auto& v) { v.set_requires_grad(on); });
}

/// Number of scalar parameters.
template <class M>
index_t num_parameters(const M& module) {
  index_t n = 0;
  module.for_each_parameter([&](std::string_view, const auto& v) { n += v.numel(); });
  return n;
}

/// Number of parameter tensors.
template <class M>
std::size_t num_parameter_tensors(const M& module) {
  std::size_t n = 0;
  module.for_each_parameter([&](std::string_view, const auto&) { ++n; });
  return n;
}

/// Names of all parameters, in visiting order.
template <class M>
std::vector<std::string> parameter_names(const M& module) {
  std::vector<std::string> n;
  module.for_each_parameter([&](std::string_view s, const auto&) { n.emplace_back(s); });
  return n;
}

// ------------------------------------------------------------------------------------------------------------
// Initialisation (PyTorch defaults), drawn from a CounterRng in row-major order.
// ------------------------------------------------------------------------------------------------------------
namespace init {
/// U(-bound, bound) for every element.
template <class T, std::size_t R>
void uniform(Tensor<T, R, Cpu>& t, double bound, CounterRng& rng) {
  for (auto& v : t) v = static_cast<T>(rng.uniform(-bound, bound));
}
/// kaiming_uniform_(t, a): bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)). With PyTorch's
/// default a = sqrt(5) for Conv1d / Linear weights, bound = 1 / sqrt(fan_in).
template <class T, std::size_t R>
void kaiming_uniform(Tensor<T, R, Cpu>& t, index_t fan_in, CounterRng& rng, double a = 2.2360679774997896964) {
  DISTILL_CHECK(fan_in > 0, "kaiming_uniform: fan_in must be positive, got ", fan_in);
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  uniform(t, gain * std::sqrt(3.0 / static_cast<double>(fan_in)), rng);
}
}  // namespace init

namespace detail {
/// A tensor on device D made from a host tensor: the host tensor itself on Cpu, an upload on Cuda. Modules
/// initialise their weights on the host from ctx.rng() (the same draws on every device), then place them here.
template <class T, std::size_t R, class D>
Tensor<T, R, D> make_buffer(Context<D>& ctx, Tensor<T, R, Cpu> host) {
  return DeviceOps<D>::from_host(ctx, std::move(host));
}
/// A parameter (requires_grad leaf) on device D made from a host tensor.
template <class T, std::size_t R, class D>
Var<T, R, D> make_parameter(Context<D>& ctx, Tensor<T, R, Cpu> host) {
  return parameter(ctx, make_buffer(ctx, std::move(host)));
}
}  // namespace detail

}  // namespace distill::nn
