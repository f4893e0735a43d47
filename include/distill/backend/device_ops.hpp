// distill/backend/device_ops.hpp -- DeviceOps<D> for every device: DeviceOps<Cpu> (cpu/device_ops.hpp) and
// DeviceOps<Cuda> (cuda/device_ops.hpp: plain C++ that only declares the CUDA entry points; a translation unit links
// the CUDA library only if it instantiates something for the Cuda device). Device-generic code (autograd, ops,
// optimizers, data staging, data-parallel training, modules, checkpoints) includes this header. It is also the one
// place that selects by device type: context_on<D> / context_of<D> find the context a device's tensors are copied
// through.
#pragma once

#include "distill/core/device_ops.hpp"
#include "distill/cpu/device_ops.hpp"
#include "distill/cuda/device_ops.hpp"

#include <string_view>
#include <type_traits>

namespace distill {

/// &p.ctx() when the parameter p (a Var or an optim::ParamRef) lives on device D, else null.
template <class D, class P>
Context<D>* context_on(P& p) {
  if constexpr (std::is_same_v<typename std::remove_cvref_t<P>::device_type, D>)
    return &p.ctx();
  else
    return nullptr;
}

/// The context of a module's first parameter on device D, or null: a module without parameters on D. Device
/// tensors travel through it (copies of buffers, checkpoint uploads); a Cpu module's is never needed
/// (DeviceOps<Cpu>::host_memory), so null is fine there.
template <class D, class M>
Context<D>* context_of(M& m) {
  Context<D>* ctx = nullptr;
  m.for_each_parameter([&](std::string_view, auto& v) {
    if (!ctx) ctx = context_on<D>(v);
  });
  return ctx;
}

}  // namespace distill
