// distill/nn/residual.hpp -- nn::Residual<Main, Shortcut, Post>: y = post(main(x) + shortcut(x)), and the
// ResNet1D block of Wang et al. (2017) built from it.
//
// snippet: fragment; given: Context<Cpu> ctx;
//   nn::ResNetBlock1D<64, 128> block{ctx};   // conv8-BN-ReLU, conv5-BN-ReLU, conv3-BN; shortcut 1x1 conv + BN
//                                            // (BN only when the width is unchanged); add; ReLU
//
// The branches must agree: both take the block's input, and both must produce the same number of channels.
// Parameter names: "main.<...>" and "shortcut.<...>".
#pragma once

#include <type_traits>

#include "distill/nn/batchnorm.hpp"
#include "distill/nn/conv1d.hpp"
#include "distill/nn/layers.hpp"
#include "distill/nn/sequential.hpp"
#include "distill/ops/elementwise.hpp"

namespace distill::nn {

namespace detail {
struct ResidualCheck {
  bool ok = true;
  index_t main_out = 0;
  index_t shortcut_out = 0;
};

/// Channels a branch produces given `in` channels at its input (0 = unknown / same as input).
constexpr index_t branch_out(index_t in, index_t declared_in, index_t declared_out) {
  if (declared_out > 0) return declared_out;
  if (declared_out < 0) return dynamic_channels;
  return declared_in > 0 ? declared_in : in;
}

template <class Main, class Shortcut>
constexpr ResidualCheck residual_check() {
  constexpr index_t in = Main::in_channels > 0 ? Main::in_channels : Shortcut::in_channels;
  const index_t m = branch_out(in, Main::in_channels, Main::out_channels);
  const index_t s = branch_out(in, Shortcut::in_channels, Shortcut::out_channels);
  if (m > 0 && s > 0 && m != s) return {false, m, s};
  return {};
}

template <class Main, class Shortcut>
constexpr fixed_string<256> residual_message(ResidualCheck c) {
  if (c.ok) return {};
  fixed_string<256> msg("Residual: the main branch (");
  msg.append(type_name_of<Main>()).append(") produces ").append(c.main_out);
  msg.append(" channels but the shortcut (").append(type_name_of<Shortcut>()).append(") produces ");
  msg.append(c.shortcut_out).append("; add a 1x1 Conv1d to the shortcut.");
  return msg;
}

template <index_t MainOut, index_t ShortcutOut, fixed_string<256> Message, bool Ok>
struct residual_channel_check {
  static constexpr bool value = Ok;
};
}  // namespace detail

template <class Main, class Shortcut = Identity, class Post = ReLU>
class Residual : public Module<Residual<Main, Shortcut, Post>>,
                 public detail::typed_base<typename detail::common_types<Main, Shortcut, Post>::value,
                                           typename detail::common_types<Main, Shortcut, Post>::device> {
  static_assert(Main::in_channels <= 0 || Shortcut::in_channels <= 0 || Main::in_channels == Shortcut::in_channels,
                "Residual: the main branch and the shortcut must accept the same number of input channels.");
  static constexpr detail::ResidualCheck check_ = detail::residual_check<Main, Shortcut>();
  static_assert(detail::residual_channel_check<check_.main_out, check_.shortcut_out,
                                               detail::residual_message<Main, Shortcut>(check_), check_.ok>::value,
                "Residual: the main branch and the shortcut produce different channel counts; the note below "
                "names both.");

public:
  static constexpr index_t in_channels = Main::in_channels > 0 ? Main::in_channels : Shortcut::in_channels;
  static constexpr unsigned parameter_ranks = parameter_ranks_union<Main, Shortcut, Post>();
  static constexpr unsigned buffer_ranks = buffer_ranks_union<Main, Shortcut, Post>();
  static constexpr index_t out_channels = detail::branch_out(in_channels, Main::in_channels, Main::out_channels);

  static constexpr name_string type_name() {
    return name("Residual<", type_name_of<Main>(), ", ", type_name_of<Shortcut>(), ">");
  }

  Residual() = default;
  template <class D>
  explicit Residual(Context<D>& ctx) : main_(ctx), shortcut_(ctx), post_(ctx) {}

  template <class X>
  auto forward(const X& x) {
    auto y = main_.forward(x);
    auto s = shortcut_.forward(x);
    DISTILL_CHECK(y.shape() == s.shape(), type_name().c_str(), ": the main branch gives shape ",
                  to_string(y.shape()), " but the shortcut gives ", to_string(s.shape()));
    return post_.forward(add(y, s));
  }

  Main& main() noexcept { return main_; }
  const Main& main() const noexcept { return main_; }
  Shortcut& shortcut() noexcept { return shortcut_; }
  const Shortcut& shortcut() const noexcept { return shortcut_; }

  void train(bool on = true) {
    this->training_ = on;
    detail::set_training(main_, on);
    detail::set_training(shortcut_, on);
    detail::set_training(post_, on);
  }

  template <class Self, class F>
  static void visit_parameters(Self& self, F&& f) {
    self.main_.for_each_parameter([&](std::string_view n, auto& v) { f(detail::join("main", n), v); });
    self.shortcut_.for_each_parameter([&](std::string_view n, auto& v) { f(detail::join("shortcut", n), v); });
    self.post_.for_each_parameter([&](std::string_view n, auto& v) { f(detail::join("post", n), v); });
  }
  template <class Self, class F>
  static void visit_buffers(Self& self, F&& f) {
    detail::buffers_of(self.main_, [&](std::string_view n, auto& t) { f(detail::join("main", n), t); });
    detail::buffers_of(self.shortcut_, [&](std::string_view n, auto& t) { f(detail::join("shortcut", n), t); });
    detail::buffers_of(self.post_, [&](std::string_view n, auto& t) { f(detail::join("post", n), t); });
  }

private:
  Main main_;
  Shortcut shortcut_;
  Post post_;
};

/// The ResNet1D residual block (Wang et al. 2017; hfawaz/dl-4-tsc): kernels K1, K2, K3 with 'same' padding,
/// each conv followed by BN, ReLU after the first two; shortcut = 1x1 conv + BN when Cin != Cout, else BN;
/// add, then ReLU.
template <index_t Cin, index_t Cout, class T = float, class D = Cpu, index_t K1 = 8, index_t K2 = 5, index_t K3 = 3>
using ResNetBlock1D =
    Residual<Sequential<Conv1d<Cin, Cout, K1, Conv1dConfig{}, T, D>, BatchNorm1d<Cout, T, D>, ReLU,
                        Conv1d<Cout, Cout, K2, Conv1dConfig{}, T, D>, BatchNorm1d<Cout, T, D>, ReLU,
                        Conv1d<Cout, Cout, K3, Conv1dConfig{}, T, D>, BatchNorm1d<Cout, T, D>>,
             std::conditional_t<Cin == Cout, BatchNorm1d<Cout, T, D>,
                                Sequential<Conv1d<Cin, Cout, 1, Conv1dConfig{}, T, D>, BatchNorm1d<Cout, T, D>>>,
             ReLU>;

}  // namespace distill::nn
