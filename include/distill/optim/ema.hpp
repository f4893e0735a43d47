// distill/optim/ema.hpp -- exponential moving average of parameters (momentum encoders, MoCo / BYOL / DisCo).
//
// snippet: fragment; includes: distill/models/resnet1d.hpp; given: Context<Cpu> ctx;
// models::ResNet1D<64> query_encoder{ctx}, key_encoder{ctx};
//   optim::ema_update(key_encoder, query_encoder, 0.999);   // theta_k = m * theta_k + (1 - m) * theta_q
//
// Target and source are modules of the same structure (anything with for_each_parameter, and optionally
// for_each_buffer) or ParamLists; parameters are paired by position and their shapes must agree. The update
// writes the target's values directly: no graph is recorded and no gradient is touched. BatchNorm running
// statistics (the modules' buffers) are copied from the source by default (BufferMode::Copy), averaged with
// the same momentum (BufferMode::Ema), or left alone (BufferMode::Keep, MoCo's key encoder keeps its own).
// Cuda modules are averaged on the device (kernels/optim.cuh, the same arithmetic as cpu::ema_update); `threads`
// only applies to Cpu.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "distill/cpu/api.hpp"
#ifndef DISTILL_COMPILED
#include "distill/cpu/optim.hpp"  // the kernel bodies; in compiled mode they come from distill::compiled
#endif
#include "distill/ops/detail.hpp"
#include "distill/optim/param_list.hpp"

namespace distill::optim {

enum class BufferMode { Copy, Ema, Keep };

namespace detail {
struct Slot {
  std::string name;
  std::vector<index_t> shape;
  void* data;
  index_t numel;
};

inline std::string shape_str(const std::vector<index_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

template <class Tn>
Slot slot_of(std::string_view name, Tn& t) {
  const auto& s = t.shape();
  return Slot{std::string(name), std::vector<index_t>(s.begin(), s.end()),
              const_cast<void*>(static_cast<const void*>(t.data())), t.numel()};
}

template <class T, class D, class M>
std::vector<Slot> param_slots(M& m) {
  std::vector<Slot> out;
  if constexpr (std::is_same_v<std::remove_cv_t<M>, ParamList<T, D>>) {
    for (const auto& p : m) out.push_back(Slot{p.name(), p.shape(), p.data(), p.numel()});
  } else {
    m.for_each_parameter([&](std::string_view name, auto& var) {
      using V = std::remove_cvref_t<decltype(var)>;
      static_assert(std::is_same_v<typename V::value_type, T>,
                    "ema_update: every parameter must have the dtype of the momentum computation.");
      out.push_back(slot_of(name, var.value()));
    });
  }
  return out;
}

template <class T, class M>
std::vector<Slot> buffer_slots(M& m) {
  std::vector<Slot> out;
  if constexpr (requires { m.for_each_buffer([](std::string_view, auto&) {}); }) {
    m.for_each_buffer([&](std::string_view name, auto& t) {
      using Tn = std::remove_cvref_t<decltype(t)>;
      static_assert(std::is_same_v<typename Tn::value_type, T>,
                    "ema_update: every buffer must have the dtype of the parameters.");
      out.push_back(slot_of(name, t));
    });
  }
  return out;
}

template <class T>
void pair_check(const char* what, const std::vector<Slot>& tgt, const std::vector<Slot>& src) {
  DISTILL_CHECK(tgt.size() == src.size(), "ema_update: the target has ", tgt.size(), " ", what,
                "s but the source has ", src.size(), "; target and source must have the same structure");
  for (std::size_t i = 0; i < tgt.size(); ++i)
    DISTILL_CHECK(tgt[i].shape == src[i].shape, "ema_update: ", what, " #", i, " ('", tgt[i].name,
                  "') has shape ", shape_str(tgt[i].shape), " in the target but ", shape_str(src[i].shape),
                  " in the source ('", src[i].name, "')");
}

/// The context of the first parameter (Cuda: the stream the update runs on), or null if there is none.
template <class T, class D, class M>
Context<D>* context_of(M& m) {
  Context<D>* ctx = nullptr;
  if constexpr (std::is_same_v<std::remove_cv_t<M>, ParamList<T, D>>) {
    if (!m.empty()) ctx = &m[0].ctx();
  } else {
    m.for_each_parameter([&](std::string_view, auto& var) {
      if (!ctx) ctx = &var.ctx();
    });
  }
  return ctx;
}

/// The update on the Cpu device: `threads` OpenMP threads per tensor (cpu/optim.hpp).
template <class T>
void apply(Context<Cpu>*, Context<Cpu>*, int threads, const std::vector<Slot>& tp, const std::vector<Slot>& sp,
           const std::vector<Slot>& tb, const std::vector<Slot>& sb, double momentum, double buffer_momentum) {
  for (std::size_t i = 0; i < tp.size(); ++i)
    cpu::ema_update(static_cast<T*>(tp[i].data), static_cast<const T*>(sp[i].data), tp[i].numel, momentum, threads);
  for (std::size_t i = 0; i < tb.size(); ++i)
    cpu::ema_update(static_cast<T*>(tb[i].data), static_cast<const T*>(sb[i].data), tb[i].numel, buffer_momentum,
                    threads);
}
/// The update on the Cuda device: one ema_update_kernel launch per tensor on the target's stream, after the
/// source's queued work (kernels/optim.cuh, the arithmetic of cpu::ema_update).
template <class T>
void apply(Context<Cuda>* ctx, Context<Cuda>* src_ctx, int, const std::vector<Slot>& tp, const std::vector<Slot>& sp,
           const std::vector<Slot>& tb, const std::vector<Slot>& sb, double momentum, double buffer_momentum) {
  if (!ctx) {
    DISTILL_CHECK(tb.empty(), "ema_update: a Cuda target with buffers but no parameters has no context");
    return;
  }
  if (src_ctx && src_ctx != ctx) src_ctx->synchronize();  // the source's queued updates finish first
  for (std::size_t i = 0; i < tp.size(); ++i)
    cuda::ema_update<T>(*ctx, static_cast<T*>(tp[i].data), static_cast<const T*>(sp[i].data), tp[i].numel, momentum);
  for (std::size_t i = 0; i < tb.size(); ++i)
    cuda::ema_update<T>(*ctx, static_cast<T*>(tb[i].data), static_cast<const T*>(sb[i].data), tb[i].numel,
                        buffer_momentum);
}

template <class X>
struct value_type_of {
  using type = typename X::value_type;
};
}  // namespace detail

/// theta_target = m * theta_target + (1 - m) * theta_source for every parameter; buffers per `buffers`.
/// `threads` OpenMP threads (the update is memory-bound; 1 is right for small encoders).
template <class Target, class Source>
void ema_update(Target& target, const Source& source, double momentum, BufferMode buffers = BufferMode::Copy,
                int threads = 1) {
  using T = typename detail::value_type_of<std::remove_cv_t<Target>>::type;
  using D = typename std::remove_cv_t<Target>::device_type;
  static_assert(std::is_same_v<D, typename std::remove_cv_t<Source>::device_type>,
                "ema_update: target and source must live on the same device.");
  DISTILL_CHECK(momentum >= 0 && momentum <= 1, "ema_update: momentum must be in [0, 1], got ", momentum);
  DISTILL_CHECK(threads >= 1, "ema_update: thread count must be >= 1, got ", threads);
  const auto tp = detail::param_slots<T, D>(target);
  const auto sp = detail::param_slots<T, D>(source);
  detail::pair_check<T>("parameter", tp, sp);
  std::vector<detail::Slot> tb, sb;
  if (buffers != BufferMode::Keep) {
    tb = detail::buffer_slots<T>(target);
    sb = detail::buffer_slots<T>(source);
    detail::pair_check<T>("buffer", tb, sb);
  }
  const double buffer_momentum = buffers == BufferMode::Ema ? momentum : 0.0;
  detail::apply<T>(detail::context_of<T, D>(target), detail::context_of<T, D>(source), threads, tp, sp,
                       tb, sb, momentum, buffer_momentum);
}

/// Copy every parameter (and buffer) value of `source` into `target` (teacher / momentum-encoder init).
template <class Target, class Source>
void copy_parameters(Target& target, const Source& source, bool copy_buffers = true) {
  ema_update(target, source, 0.0, copy_buffers ? BufferMode::Copy : BufferMode::Keep);
}

}  // namespace distill::optim
