// Compile-fail check (tests/cmake/nn.cmake): a Sequential whose layer 2 expects 128 input channels after a
// layer producing 64 must not compile, and the diagnostic must say so in one sentence. Built with
// -DDISTILL_COMPILE_FAIL_CONTROL it is wired correctly and must compile (so the failure is the channel check).
#include "distill/nn/nn.hpp"

int main() {
  distill::Context<distill::Cpu> ctx;
#ifdef DISTILL_COMPILE_FAIL_CONTROL
  distill::nn::Sequential<distill::nn::Conv1d<1, 64, 8>, distill::nn::ReLU, distill::nn::Conv1d<64, 128, 5>> net{ctx};
#else
  distill::nn::Sequential<distill::nn::Conv1d<1, 64, 8>, distill::nn::ReLU, distill::nn::Conv1d<128, 128, 5>> net{ctx};
#endif
  (void)net;
  return 0;
}
