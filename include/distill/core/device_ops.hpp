// distill/core/device_ops.hpp -- DeviceOps<D>: the handful of device primitives the autograd engine itself needs.
//
// Declared here, specialised per backend: cpu/device_ops.hpp (DeviceOps<Cpu>, host memory) and cuda/device_ops.hpp
// (DeviceOps<Cuda>, device memory through the CUDA library). Code that works on either device includes
// backend/device_ops.hpp, which brings both. Each specialisation has:
//   zeros<T, R>(ctx, shape)   fill(ctx, t, v)   accumulate(ctx, y, x) (y += x)   to_host(ctx, t)
//   copy(ctx, dst, src, n)    scale(ctx, x, a, n)                                (raw buffers of ctx's device)
// and the free functions to_device(ctx, host) / to_host(ctx, t) move tensors whatever the device. Ops proper live
// in ops/.
#pragma once

namespace distill {

template <class D>
struct DeviceOps;  // specialised per device

}  // namespace distill
