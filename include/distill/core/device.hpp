// distill/core/device.hpp -- device tags. The device is part of every tensor's type.
#pragma once

#include <type_traits>

namespace distill {

/// Host memory, Eigen + OpenMP kernels.
struct Cpu {
  static constexpr const char* name = "Cpu";
};
/// Device memory, CUDA kernels (real GPU under nvcc, SIMT emulator on the host). See kernels/.
struct Cuda {
  static constexpr const char* name = "Cuda";
};

template <class D>
inline constexpr bool is_device_v = std::is_same_v<D, Cpu> || std::is_same_v<D, Cuda>;

template <class D>
concept Device = is_device_v<D>;

/// For static_assert(dependent_false<T>, "...") in discarded branches.
template <class...>
inline constexpr bool dependent_false = false;

}  // namespace distill
