// distill/nn/sequential.hpp -- nn::Sequential<Layers...>: layers applied in order, channel counts checked at
// compile time.
//
// snippet: fragment; includes: distill/nn/nn.hpp; given: Context<Cpu> ctx; Var<float, 3> x;
//   nn::Sequential<nn::Conv1d<1, 64, 8>, nn::BatchNorm1d<64>, nn::ReLU, nn::GlobalAvgPool, nn::Linear<64, 10>>
//       net{ctx};
//   auto logits = net(x);                       // x [B, 1, L] -> [B, 10]
//   net.get<0>().weight();                      // layer access; parameter names "0.weight", "1.running_mean", ...
//
// Wiring is checked when the type is instantiated: a layer declared for N input channels must follow layers
// that produce N. A mismatch stops the build with one static_assert whose note (GCC) reads, e.g.
//   Sequential: layer 2 (Conv1d<128, 128, 5>) expects 128 input channels but the previous layer produces 64.
// Layers are numbered from 0, like the parameter names. Layers with in_channels == any_channels (ReLU,
// pooling) pass the count through; a layer with out_channels == dynamic_channels (Flatten) stops the check
// until a later layer fixes the count again. Layers are constructed in order, so weights are drawn from
// ctx.rng() in the order they appear (reproducible for a given seed).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "distill/nn/module.hpp"

namespace distill::nn {

namespace detail {

// --- channel bookkeeping ------------------------------------------------------------------------------------
enum class Chan { Input, Fixed, Dynamic };  // "whatever the Sequential is fed", a known count, unknown

struct ChainState {
  Chan kind = Chan::Input;
  index_t n = 0;
};

struct ChainCheck {
  bool ok = true;
  std::size_t layer = 0;
  index_t expects = 0;
  index_t produces = 0;
};

constexpr ChainState chain_step(ChainState s, index_t in, index_t out) {
  if (out > 0) return {Chan::Fixed, out};
  if (out < 0) return {Chan::Dynamic, 0};
  if (in > 0) return {Chan::Fixed, in};  // same as its (declared) input
  return s;                              // pass-through
}

template <std::size_t N>
constexpr ChainCheck chain_check(const std::array<index_t, N>& ins, const std::array<index_t, N>& outs) {
  ChainState s;
  for (std::size_t i = 0; i < N; ++i) {
    if (ins[i] > 0 && s.kind == Chan::Fixed && s.n != ins[i]) return {false, i, ins[i], s.n};
    s = chain_step(s, ins[i], outs[i]);
  }
  return {};
}

/// The container's own in_channels: the first requirement met before anything fixes the count.
template <std::size_t N>
constexpr index_t chain_in(const std::array<index_t, N>& ins, const std::array<index_t, N>& outs) {
  for (std::size_t i = 0; i < N; ++i) {
    if (ins[i] > 0) return ins[i];
    if (outs[i] != 0) return any_channels;
  }
  return any_channels;
}

template <std::size_t N>
constexpr index_t chain_out(const std::array<index_t, N>& ins, const std::array<index_t, N>& outs) {
  ChainState s;
  for (std::size_t i = 0; i < N; ++i) s = chain_step(s, ins[i], outs[i]);
  if (s.kind == Chan::Fixed) return s.n;
  if (s.kind == Chan::Dynamic) return dynamic_channels;
  return same_channels;
}

using message_string = fixed_string<256>;

template <class... Ls>
constexpr message_string chain_message(ChainCheck c) {
  if (c.ok) return {};
  const name_string names[] = {type_name_of<Ls>()...};
  message_string m("Sequential: layer ");
  m.append(static_cast<index_t>(c.layer)).append(" (").append(names[c.layer]).append(") expects ");
  m.append(c.expects).append(" input channels but the previous layer produces ").append(c.produces).append(".");
  return m;
}

/// Fails (in a static_assert) exactly when Ok is false; the template arguments carry the numbers and the
/// sentence, which compilers print in the diagnostic.
template <std::size_t Layer, index_t Expects, index_t Produces, message_string Message, bool Ok>
struct channel_check {
  static constexpr bool value = Ok;
};

// --- dtype / device of a container ---------------------------------------------------------------------------
template <class L, class = void>
struct layer_types {
  using value = void;
  using device = void;
};
template <class L>
struct layer_types<L, std::void_t<typename L::value_type, typename L::device_type>> {
  using value = typename L::value_type;
  using device = typename L::device_type;
};

template <class... Ls>
struct common_types {
  using value = void;
  using device = void;
};
template <class L, class... Ls>
struct common_types<L, Ls...> {
  using here = layer_types<L>;
  using rest = common_types<Ls...>;
  using value = std::conditional_t<std::is_void_v<typename here::value>, typename rest::value, typename here::value>;
  using device =
      std::conditional_t<std::is_void_v<typename here::device>, typename rest::device, typename here::device>;
};

template <class V, class... Ls>
constexpr bool all_value_types_agree() {
  return ((std::is_void_v<typename layer_types<Ls>::value> || std::is_same_v<typename layer_types<Ls>::value, V>) &&
          ...);
}
template <class Dv, class... Ls>
constexpr bool all_devices_agree() {
  return ((std::is_void_v<typename layer_types<Ls>::device> ||
           std::is_same_v<typename layer_types<Ls>::device, Dv>) &&
          ...);
}

/// value_type / device_type only when some member has them.
template <class V, class Dv>
struct typed_base {
  using value_type = V;
  using device_type = Dv;
};
template <>
struct typed_base<void, void> {};

// --- storage: members constructed in order (std::tuple's order is unspecified in practice) -------------------
template <class... Ls>
struct Chain;
template <>
struct Chain<> {
  Chain() = default;
  template <class Ctx>
  explicit Chain(Ctx&) {}
};
template <class L, class... Ls>
struct Chain<L, Ls...> {
  L head;
  Chain<Ls...> tail;
  Chain() = default;
  template <class Ctx>
  explicit Chain(Ctx& ctx) : head(ctx), tail(ctx) {}
};

template <std::size_t I, class C>
constexpr auto& chain_get(C& c) {
  if constexpr (I == 0)
    return c.head;
  else
    return chain_get<I - 1>(c.tail);
}

template <class X, class C>
auto chain_forward(C& c, const X& x) {
  if constexpr (requires { c.tail.head; })
    return chain_forward(c.tail, c.head.forward(x));
  else
    return c.head.forward(x);
}

template <std::size_t I, class C, class F>
void chain_each(C& c, F& f) {
  if constexpr (requires { c.head; }) {
    f(std::integral_constant<std::size_t, I>{}, c.head);
    chain_each<I + 1>(c.tail, f);
  }
}

}  // namespace detail

template <class... Layers>
class Sequential
    : public Module<Sequential<Layers...>>,
      public detail::typed_base<typename detail::common_types<Layers...>::value,
                                typename detail::common_types<Layers...>::device> {
  static_assert(sizeof...(Layers) > 0, "Sequential: give at least one layer.");
  using Types = detail::common_types<Layers...>;
  static_assert(detail::all_value_types_agree<typename Types::value, Layers...>(),
                "Sequential: all layers must use the same dtype (float or double).");
  static_assert(detail::all_devices_agree<typename Types::device, Layers...>(),
                "Sequential: all layers must live on the same device.");

  static constexpr std::array<index_t, sizeof...(Layers)> ins_{in_channels_of<Layers>...};
  static constexpr std::array<index_t, sizeof...(Layers)> outs_{out_channels_of<Layers>...};
  static constexpr detail::ChainCheck check_ = detail::chain_check(ins_, outs_);
  static_assert(detail::channel_check<check_.layer, check_.expects, check_.produces,
                                      detail::chain_message<Layers...>(check_), check_.ok>::value,
                "Sequential: a layer's input channel count differs from the channel count produced by the layer "
                "before it; the note below names the layer and both counts.");

public:
  static constexpr std::size_t size = sizeof...(Layers);
  static constexpr unsigned parameter_ranks = parameter_ranks_union<Layers...>();
  static constexpr unsigned buffer_ranks = buffer_ranks_union<Layers...>();
  static constexpr index_t in_channels = detail::chain_in(ins_, outs_);
  static constexpr index_t out_channels = detail::chain_out(ins_, outs_);

  static constexpr name_string type_name() {
    return name("Sequential<", static_cast<index_t>(sizeof...(Layers)), sizeof...(Layers) == 1 ? " layer>" : " layers>");
  }

  Sequential() = default;
  /// Builds every layer from `ctx`, in order.
  template <class D>
  explicit Sequential(Context<D>& ctx) : layers_(ctx) {}

  template <class X>
  auto forward(const X& x) {
    return detail::chain_forward(layers_, x);
  }

  template <std::size_t I>
  auto& get() noexcept {
    static_assert(I < sizeof...(Layers), "Sequential::get<I>: I is past the last layer.");
    return detail::chain_get<I>(layers_);
  }
  template <std::size_t I>
  const auto& get() const noexcept {
    static_assert(I < sizeof...(Layers), "Sequential::get<I>: I is past the last layer.");
    return detail::chain_get<I>(layers_);
  }

  /// f(std::integral_constant<std::size_t, I>, Layer&) for every layer in order.
  template <class F>
  void for_each_layer(F&& f) {
    detail::chain_each<0>(layers_, f);
  }
  template <class F>
  void for_each_layer(F&& f) const {
    detail::chain_each<0>(layers_, f);
  }

  void train(bool on = true) {
    this->training_ = on;
    for_each_layer([&](auto, auto& l) { detail::set_training(l, on); });
  }

  template <class Self, class F>
  static void visit_parameters(Self& self, F&& f) {
    self.for_each_layer([&](auto i, auto& l) {
      const std::string prefix = std::to_string(decltype(i)::value);
      l.for_each_parameter([&](std::string_view n, auto& v) { f(detail::join(prefix, n), v); });
    });
  }
  template <class Self, class F>
  static void visit_buffers(Self& self, F&& f) {
    self.for_each_layer([&](auto i, auto& l) {
      const std::string prefix = std::to_string(decltype(i)::value);
      detail::buffers_of(l, [&](std::string_view n, auto& t) { f(detail::join(prefix, n), t); });
    });
  }

private:
  detail::Chain<Layers...> layers_;
};

}  // namespace distill::nn
