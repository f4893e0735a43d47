// tests/gpu/test_cuda_gpu.cpp -- the kernel comparisons of tests/cuda/kernel_checks.hpp on a real GPU
// (distill::cuda, built with DISTILL_CUDA=ON). Without a usable device it prints why and exits 77, which CTest
// reports as skipped (SKIP_RETURN_CODE), so GPU-less CI machines stay green without hiding the fact.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "cuda/kernel_checks.hpp"

int main(int argc, char** argv) {
  if (distill::cuda::emulated()) {
    std::fprintf(stderr, "test_cuda_gpu: linked against the emulation build; use test_cuda_emu instead\n");
    return 1;
  }
  const int devices = distill::cuda::device_count();
  if (devices == 0) {
    std::printf("test_cuda_gpu: no CUDA device (or driver) available: skipped\n");
    return 77;
  }
  const distill::cuda::DeviceInfo info = distill::cuda::device_info(0);
  std::printf("test_cuda_gpu: %s (sm_%d%d, %d SMs)\n", info.name.c_str(), info.major, info.minor, info.sm_count);
  return Catch::Session().run(argc, argv);
}
