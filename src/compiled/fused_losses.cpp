// distill_compiled: the float and double fused-loss engines of cpu/fused_losses.hpp and the tile products they use.
#include "distill/cpu/fused_losses.hpp"
#include "distill/cpu/fused_losses_gemm.hpp"

namespace distill::cpu::fused {
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_FUSED_INSTANCES)
}  // namespace distill::cpu::fused
namespace distill::cpu::tile {
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_TILE_INSTANCES)
}  // namespace distill::cpu::tile
