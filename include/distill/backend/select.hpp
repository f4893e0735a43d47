// distill/backend/select.hpp -- the one place where a device type picks its backend.
//
// Both backends expose the same entry points under the same names and parameters, the context first:
// cpu/backend.hpp takes Context<Cpu>&, cuda/api.hpp takes Context<Cuda>&. Device-generic code calls them through
// `backend::`, and overload resolution on the context selects the backend:
//
// snippet: fragment; given: Context<Cpu> ctx; Tensor<float, 2, Cpu> x({4, 3}), y({4, 3});
//   backend::softmax_rows(ctx, x.data(), y.data(), 4, 3);  // cpu::softmax_rows here, cuda::softmax_rows for Cuda
//
// No `if constexpr` on the device is needed anywhere above this header. A Cuda entry point is only declared here;
// a translation unit links the CUDA library only if it instantiates something for the Cuda device.
#pragma once

#include "distill/backend/device_ops.hpp"
#include "distill/cpu/backend.hpp"
#include "distill/cuda/api.hpp"

namespace distill::backend {
using namespace ::distill::cpu;   // NOLINT(google-build-using-namespace): the two overload sets merged on purpose
using namespace ::distill::cuda;  // NOLINT(google-build-using-namespace)
}  // namespace distill::backend
