// Compile-fail check (tests/cmake/nn.cmake): a residual block whose branches produce different channel
// counts must not compile. With -DDISTILL_COMPILE_FAIL_CONTROL the branches agree and it must compile.
#include "distill/nn/nn.hpp"

namespace nn = distill::nn;

int main() {
  distill::Context<distill::Cpu> ctx;
#ifdef DISTILL_COMPILE_FAIL_CONTROL
  nn::Residual<nn::Conv1d<4, 8, 3>, nn::Conv1d<4, 8, 1>> block{ctx};
#else
  nn::Residual<nn::Conv1d<4, 8, 3>, nn::Conv1d<4, 6, 1>> block{ctx};
#endif
  (void)block;
  return 0;
}
