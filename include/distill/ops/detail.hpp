// distill/ops/detail.hpp -- small helpers shared by op implementations (not public API).
//
// Device dispatch: an op is written once for every device. It calls each primitive through backend::
// (backend/select.hpp): overload resolution on the context picks cpu/backend.hpp or cuda/api.hpp, so an op has no
// device branch, and a TU that only uses Cpu never needs the CUDA library.
#pragma once

#include <algorithm>
#include <type_traits>

#include "distill/core/context.hpp"
#include "distill/backend/select.hpp"
#include "distill/core/tensor.hpp"

namespace distill::ops_detail {

/// True for the Cuda device (the dispatch condition of every op).
template <class D>
inline constexpr bool is_cuda = std::is_same_v<D, Cuda>;

/// An uninitialised tensor on ctx's device.
template <class T, std::size_t R, class D>
Tensor<T, R, D> empty(Context<D>& ctx, const Shape<R>& s) {
  return ctx.template empty<T, R>(s);
}

using cpu::threads_for;

}  // namespace distill::ops_detail
