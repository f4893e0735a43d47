// distill/core/device_ops.hpp -- DeviceOps<D>: the handful of device primitives the autograd engine itself needs.
//
// Declared here, specialised per backend: cpu/device_ops.hpp (DeviceOps<Cpu>, host memory) and cuda/device_ops.hpp
// (DeviceOps<Cuda>, device memory through the CUDA library). Code that works on either device includes
// backend/device_ops.hpp, which brings both. Each specialisation has:
//   zeros<T, R>(ctx, shape)   fill(ctx, t, v)   accumulate(ctx, y, x) (y += x)   to_host(ctx, t)
//   copy(ctx, dst, src, n)    scale(ctx, x, a, n)                                (raw buffers of ctx's device)
//   from_host(ctx, host)      (a host tensor made a tensor of the device: itself on Cpu, an upload on Cuda)
//   write_bytes(ctx*, dst, host_src, bytes)   read_bytes(ctx*, host_dst, src, bytes)   (host <-> the device)
//   copy_bytes(ctx*, dst, src, bytes)   synchronize(ctx*)   (the context pointer may be null where host_memory is)
//   host_memory               (constexpr bool: the device's tensors live in host memory, Cpu only)
// and the free functions to_device(ctx, host) / to_host(ctx, t) / copy_to_device(ctx, dst, host) move tensors
// whatever the device; backend/device_ops.hpp adds context_of<D>(module). Ops proper live in ops/.
#pragma once

namespace distill {

template <class D>
struct DeviceOps;  // specialised per device

}  // namespace distill
