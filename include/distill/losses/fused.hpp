// distill/losses/fused.hpp -- where a fused loss picks its device engine.
//
// losses/fused_cpu.hpp (cpu_losses::) and losses/fused_cuda.hpp (cuda_losses::) define the same functions with the
// same parameters, for Var<T, R, Cpu> and Var<T, R, Cuda>. losses/contrastive.hpp and losses/distillation.hpp check
// their inputs once and call engine::<loss>; overload resolution on the Vars' device picks the engine (the same rule
// as backend/select.hpp for the kernels), so no loss branches on the device.
#pragma once

#include "distill/losses/fused_cpu.hpp"
#include "distill/losses/fused_cuda.hpp"

namespace distill::losses::engine {
using namespace ::distill::cpu_losses;   // NOLINT(google-build-using-namespace): the two overload sets merged
using namespace ::distill::cuda_losses;  // NOLINT(google-build-using-namespace)
}  // namespace distill::losses::engine
