// tests/cuda/tsan_race_demo.cpp -- the SIMT emulator finds a missing __syncthreads with ThreadSanitizer.
//
// A 3-point stencil stages a block's inputs in shared memory and reads its neighbours' elements. The "bad"
// kernel forgets the barrier between the writes and the reads: a real data race, which on a GPU silently gives
// wrong numbers only sometimes. Under the emulator every CUDA thread is an OS thread, so ThreadSanitizer sees
// the race and names both lines. The "good" kernel (the same code with the barrier) reports nothing.
// This file is deliberately not under kernels/: the racy kernel exists only here.
//
// scripts/cuda_checks.sh builds and runs it:
//   g++ -std=c++20 -O1 -g -fsanitize=thread -DDISTILL_SIMT_EMULATION -Iinclude -Ikernels \
//       tests/cuda/tsan_race_demo.cpp -o tsan_race_demo
//   ./tsan_race_demo bad    # ThreadSanitizer: data race ... tsan_race_demo.cpp (exit code 66)
//   ./tsan_race_demo good   # no report, exit code 0
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "launch.cuh"

namespace {

constexpr int kThreads = 128;

template <bool WITH_BARRIER>
__global__ void stencil_kernel(const float* in, float* out, int n) {
  __shared__ float tile[kThreads + 2];
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x) * kThreads + t;
  tile[t + 1] = i < n ? in[i] : 0.0f;  // each thread writes its own element
  if (t == 0) tile[0] = i > 0 ? in[i - 1] : 0.0f;
  if (t == kThreads - 1) tile[kThreads + 1] = i + 1 < n ? in[i + 1] : 0.0f;
  if constexpr (WITH_BARRIER) __syncthreads();
  if (i < n) out[i] = tile[t] + tile[t + 1] + tile[t + 2];  // ... and reads its neighbours' elements
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || (std::strcmp(argv[1], "bad") != 0 && std::strcmp(argv[1], "good") != 0)) {
    std::fprintf(stderr, "usage: %s bad|good\n", argv[0]);
    return 2;
  }
  const bool bad = std::strcmp(argv[1], "bad") == 0;
  const int n = 3 * kThreads - 17;
  std::vector<float> in(n), out(n, NAN);
  for (int i = 0; i < n; ++i) in[i] = static_cast<float>(i % 11);
  const distill::kernels::LaunchConfig cfg{dim3((n + kThreads - 1) / kThreads), dim3(kThreads), 0, nullptr};
  if (bad) distill::kernels::launch("stencil_kernel<no barrier>", stencil_kernel<false>, cfg, in.data(), out.data(), n);
  else distill::kernels::launch("stencil_kernel", stencil_kernel<true>, cfg, in.data(), out.data(), n);
  int wrong = 0;
  for (int i = 0; i < n; ++i) {
    const float expect = (i > 0 ? in[i - 1] : 0.0f) + in[i] + (i + 1 < n ? in[i + 1] : 0.0f);
    wrong += out[i] != expect;
  }
  std::printf("%s kernel: %d of %d outputs differ from the reference\n", bad ? "racy" : "correct", wrong, n);
  return bad ? 0 : (wrong ? 1 : 0);  // the racy kernel may or may not compute wrong values; TSan decides
}
