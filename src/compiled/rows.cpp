// distill_compiled: the float and double row and channel kernels (losses, BatchNorm, L2 normalisation, pooling,
// softmax) and the optimizer updates, built once.
#include "distill/cpu/cross_entropy.hpp"
#include "distill/cpu/batchnorm.hpp"
#include "distill/cpu/normalize.hpp"
#include "distill/cpu/optim.hpp"
#include "distill/cpu/pool.hpp"
#include "distill/cpu/softmax.hpp"

namespace distill::cpu {
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_LOSS_INSTANCES)
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_NORM_INSTANCES)
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_OPTIM_INSTANCES)
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_POOL_INSTANCES)
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_SOFTMAX_INSTANCES)
}  // namespace distill::cpu
