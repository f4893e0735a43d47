// distill_compiled: the float and double CPU conv1d kernels (all instruction-set levels), built once.
#include "distill/cpu/conv1d.hpp"

namespace distill::cpu {
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_CONV1D_INSTANCES)
}  // namespace distill::cpu
