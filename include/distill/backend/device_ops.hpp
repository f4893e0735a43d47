// distill/backend/device_ops.hpp -- DeviceOps<D> for every device: DeviceOps<Cpu> (cpu/device_ops.hpp) and
// DeviceOps<Cuda> (cuda/device_ops.hpp: plain C++ that only declares the CUDA entry points; a translation unit links
// the CUDA library only if it instantiates something for the Cuda device). Device-generic code (autograd, ops,
// optimizers, data staging, data-parallel training) includes this header.
#pragma once

#include "distill/core/device_ops.hpp"
#include "distill/cpu/device_ops.hpp"
#include "distill/cuda/device_ops.hpp"

#include <string_view>
#include <type_traits>

namespace distill {

/// The context of a module's first Cuda parameter (its device tensors travel through it: copies of buffers,
/// checkpoint uploads), or null: a Cpu module, or one without parameters.
template <class M>
Context<Cuda>* cuda_context_of(M& m) {
  Context<Cuda>* ctx = nullptr;
  m.for_each_parameter([&](std::string_view, auto& v) {
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(v)>::device_type, Cuda>)
      if (!ctx) ctx = &v.ctx();
  });
  return ctx;
}

}  // namespace distill
