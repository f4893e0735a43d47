// distill_compiled: the float and double fused-loss engines of cpu/losses.hpp and the tile products they use.
#include "distill/cpu/losses.hpp"
#include "distill/cpu/losses_gemm.hpp"

namespace distill::cpu::fused {
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_FUSED_INSTANCES)
}  // namespace distill::cpu::fused
namespace distill::cpu::tile {
DISTILL_DEFINE_INSTANCES(DISTILL_CPU_TILE_INSTANCES)
}  // namespace distill::cpu::tile
