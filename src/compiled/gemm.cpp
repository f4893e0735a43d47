// distill_compiled: the float and double CPU GEMM (Eigen's products inside our OpenMP panels), built once.
#include "distill/cpu/gemm.hpp"

namespace distill::cpu {
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_GEMM_INSTANCES)
}  // namespace distill::cpu
