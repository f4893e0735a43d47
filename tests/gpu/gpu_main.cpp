// tests/gpu/gpu_main.cpp -- the Catch2 main of the *_gpu test binaries: test_cuda_ops, test_cuda_train and
// test_cuda_losses compiled against the real backend (distill::cuda, DISTILL_CUDA=ON) instead of the SIMT emulator.
// Without a usable device it prints why and exits 77, which CTest reports as skipped (SKIP_RETURN_CODE).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "distill/cuda/api.hpp"

int main(int argc, char** argv) {
  if (distill::cuda::emulated()) {
    std::fprintf(stderr, "gpu test: linked against the emulation build; run the emulated binary instead\n");
    return 1;
  }
  if (distill::cuda::device_count() == 0) {
    std::printf("gpu test: no CUDA device (or driver) available: skipped\n");
    return 77;
  }
  const distill::cuda::DeviceInfo info = distill::cuda::device_info(0);
  std::printf("gpu test: %s (sm_%d%d, %d SMs)\n", info.name.c_str(), info.major, info.minor, info.sm_count);
  return Catch::Session().run(argc, argv);
}
