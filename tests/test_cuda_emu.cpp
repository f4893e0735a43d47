// tests/test_cuda_emu.cpp -- the CUDA backend on the SIMT emulator (distill::cuda_emu, no GPU needed).
//
// 1. Every kernel family against a plain double CPU reference (tests/cuda/kernel_checks.hpp, shared with the
//    real-GPU binary tests/gpu/test_cuda_gpu.cpp).
// 2. The emulator's own semantics: barriers, warp shuffles and votes (full and partial warps), atomics, dynamic
//    shared memory poisoning, early-exiting threads, launch-configuration errors naming the kernel, and the
//    cuBLAS stand-in's column-major contract.
// The missing-__syncthreads ThreadSanitizer demonstration is tests/cuda/tsan_race_demo.cpp (scripts/cuda_checks.sh).
#include "cuda/kernel_checks.hpp"

#include <atomic>
#include <cmath>
#include <vector>

// Emulator-level tests include the kernel headers directly (tests/cmake/cuda.cmake adds kernels/ and the define).
#include "conv1d.cuh"
#include "launch.cuh"

namespace emu_tests {

using distill::kernels::launch;
using distill::kernels::LaunchConfig;

__global__ void reverse_in_block_kernel(const int* in, int* out) {
  __shared__ int tile[256];
  const int t = static_cast<int>(threadIdx.x);
  tile[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = tile[blockDim.x - 1 - t];
}

TEST_CASE("emulator: __syncthreads orders shared-memory writes and reads across the block", "[cuda][emulator]") {
  const int blocks = 3, threads = 256;
  std::vector<int> in(blocks * threads), out(in.size(), -1);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i);
  launch("reverse_in_block_kernel", reverse_in_block_kernel, LaunchConfig{dim3(blocks), dim3(threads), 0, nullptr},
         in.data(), out.data());
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) CHECK(out[b * threads + t] == b * threads + (threads - 1 - t));
}

__global__ void shuffle_kernel(int* xor_out, int* down_out, int* up_out, int* idx_out, unsigned* ballot_out,
                               int* any_out, int* all_out) {
  const int t = static_cast<int>(threadIdx.x);
  const int lane = t % 32;
  xor_out[t] = __shfl_xor_sync(0xFFFFFFFFu, t * 10, 1);
  down_out[t] = __shfl_down_sync(0xFFFFFFFFu, t, 3);
  up_out[t] = __shfl_up_sync(0xFFFFFFFFu, t, 2, 16);
  idx_out[t] = __shfl_sync(0xFFFFFFFFu, t, 5);
  ballot_out[t] = __ballot_sync(0xFFFFFFFFu, lane % 3 == 0);
  any_out[t] = __any_sync(0xFFFFFFFFu, lane == 7);
  all_out[t] = __all_sync(0xFFFFFFFFu, lane < 40);
  __syncwarp();
}

TEST_CASE("emulator: warp shuffles and votes, including a partial last warp", "[cuda][emulator]") {
  const int n = 48;  // warp 0 full, warp 1 has lanes 0..15 only
  std::vector<int> xo(n), dn(n), up(n), ix(n), an(n), al(n);
  std::vector<unsigned> ba(n);
  launch("shuffle_kernel", shuffle_kernel, LaunchConfig{dim3(1), dim3(n), 0, nullptr}, xo.data(), dn.data(), up.data(),
         ix.data(), ba.data(), an.data(), al.data());
  for (int t = 0; t < n; ++t) {
    const int lane = t % 32, base = t - lane, present = t < 32 ? 32 : 16;
    const int partner = lane ^ 1;
    CHECK(xo[t] == (partner < present ? (base + partner) * 10 : t * 10));
    CHECK(dn[t] == (lane + 3 < present ? t + 3 : t));              // beyond the warp (or absent lanes): own value
    CHECK(up[t] == ((lane % 16) >= 2 ? t - 2 : t));                // width 16 segments
    CHECK(ix[t] == base + 5);
    unsigned expect = 0;
    for (int l = 0; l < present; ++l)
      if (l % 3 == 0) expect |= 1u << l;
    CHECK(ba[t] == expect);
    CHECK(an[t] == (present > 7 ? 1 : 0));
    CHECK(al[t] == 1);
  }
}

__global__ void atomic_kernel(int* counter, unsigned long long* sum) {
  atomicAdd(counter, 1);
  atomicAdd(sum, static_cast<unsigned long long>(threadIdx.x + blockIdx.x * blockDim.x));
}

TEST_CASE("emulator: atomics are atomic across the block's threads", "[cuda][emulator]") {
  int counter = 0;
  unsigned long long sum = 0;
  launch("atomic_kernel", atomic_kernel, LaunchConfig{dim3(4), dim3(128), 0, nullptr}, &counter, &sum);
  CHECK(counter == 512);
  CHECK(sum == 511ull * 512ull / 2);
}

__global__ void dynamic_shared_kernel(float* out, int write_first) {
  DISTILL_DYNAMIC_SHARED(float, smem);
  const int t = static_cast<int>(threadIdx.x);
  if (write_first) smem[t] = static_cast<float>(t + blockIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = smem[t];
}

TEST_CASE("emulator: dynamic shared memory is per launch and poisoned (NaN) before every block", "[cuda][emulator]") {
  std::vector<float> out(2 * 64, 0.0f);
  launch("dynamic_shared_kernel", dynamic_shared_kernel, LaunchConfig{dim3(2), dim3(64), 64 * sizeof(float), nullptr},
         out.data(), 1);
  for (int i = 0; i < 128; ++i) CHECK(out[i] == static_cast<float>(i % 64 + i / 64));
  launch("dynamic_shared_kernel", dynamic_shared_kernel, LaunchConfig{dim3(2), dim3(64), 64 * sizeof(float), nullptr},
         out.data(), 0);
  for (float v : out) CHECK(std::isnan(v));  // never written in this launch: not last launch's values
}

__global__ void early_exit_kernel(int n, int* out) {
  const int t = static_cast<int>(threadIdx.x);
  if (t >= n) return;  // exited threads leave the block barrier, as on the hardware
  __shared__ int s[128];
  s[t] = t;
  __syncthreads();
  out[t] = s[n - 1 - t];
}

TEST_CASE("emulator: threads that exit early do not block __syncthreads", "[cuda][emulator]") {
  std::vector<int> out(128, -1);
  launch("early_exit_kernel", early_exit_kernel, LaunchConfig{dim3(1), dim3(128), 0, nullptr}, 77, out.data());
  for (int t = 0; t < 77; ++t) CHECK(out[t] == 76 - t);
  CHECK(out[77] == -1);
}

__global__ void index_kernel(int* out) {
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[b * (blockDim.x * blockDim.y * blockDim.z) + t] = static_cast<int>(b * 1000 + t);
}

TEST_CASE("emulator: 3-D grids and blocks, and launch errors naming the kernel", "[cuda][emulator]") {
  const dim3 grid(2, 3, 2), block(4, 2, 3);
  std::vector<int> out(12 * 24, -1);
  launch("index_kernel", index_kernel, LaunchConfig{grid, block, 0, nullptr}, out.data());
  for (int b = 0; b < 12; ++b)
    for (int t = 0; t < 24; ++t) CHECK(out[b * 24 + t] == b * 1000 + t);
  CHECK_THROWS_WITH(launch("index_kernel", index_kernel, LaunchConfig{dim3(1), dim3(2048), 0, nullptr}, out.data()),
                    Catch::Contains("'index_kernel'") && Catch::Contains("cudaErrorInvalidConfiguration") &&
                        Catch::Contains("block 2048x1x1"));
  CHECK_THROWS_WITH(launch("index_kernel", index_kernel, LaunchConfig{dim3(1), dim3(32), 64 * 1024, nullptr}, out.data()),
                    Catch::Contains("65536 B dynamic shared memory"));
  CHECK(cudaGetLastError() == cudaSuccess);  // consumed by the launch helper
}

TEST_CASE("emulator: the cuBLAS stand-in has cuBLAS's column-major contract", "[cuda][emulator][gemm]") {
  cublasHandle_t h = nullptr;
  REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  // Column-major A (2x3, lda 2) = [1 3 5; 2 4 6], B (3x2, ldb 3) = [1 4; 2 5; 3 6].
  const float A[] = {1, 2, 3, 4, 5, 6}, B[] = {1, 2, 3, 4, 5, 6};
  float C[4] = {NAN, NAN, NAN, NAN};
  const float one = 1, zero = 0;
  REQUIRE(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, A, 2, B, 3, &zero, C, 2) == CUBLAS_STATUS_SUCCESS);
  // A*B = [22 49; 28 64], column-major.
  CHECK(C[0] == 22);
  CHECK(C[1] == 28);
  CHECK(C[2] == 49);
  CHECK(C[3] == 64);
  // A^T (3x2) * A (2x3) = 3x3; C(0,0) = 1*1 + 2*2 = 5, C(2,1) = 5*3 + 6*4 = 39.
  float D[9];
  REQUIRE(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 3, 3, 2, &one, A, 2, A, 2, &zero, D, 3) == CUBLAS_STATUS_SUCCESS);
  CHECK(D[0] == 5);
  CHECK(D[2 + 1 * 3] == 39);
  // Leading dimension smaller than the rows is rejected, as cuBLAS does.
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, A, 1, B, 3, &zero, C, 2) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS);
}

TEST_CASE("conv1d grad-weight with fewer splits than items (several items per block) is exact and deterministic",
          "[cuda][conv1d]") {
  // The API picks the split count from the shape (up to 512 blocks), so at test sizes every block owns one
  // (batch, time-tile) item. Drive the kernel-level launcher with forced small split counts instead.
  const distill::Conv1dGeometry s = distill::conv1d_geometry(3, 5, 7, 150, 8, {distill::Padding::Same});  // 9 items
  const distill::Conv1dGeometry& p = s;
  const auto hx = cuda_checks::random_vector<float>(static_cast<std::size_t>(3 * 5 * 150), 1);
  const auto hdy = cuda_checks::random_vector<float>(static_cast<std::size_t>(3 * 7 * 150), 2);
  cuda_checks::ConvRef<float> rw, rb;
  cuda_checks::ref_conv_backward_weight(s, hx, hdy, rw, rb);
  std::vector<float> first;
  for (int splits : {1, 2, 4, 9}) {
    auto plan = distill::kernels::wgrad_plan<float>(p);
    REQUIRE(plan.items == 9);
    plan.splits = splits;
    plan.grid.z = static_cast<unsigned int>(splits);
    std::vector<float> ws(plan.workspace_elements(), NAN), dw(7 * 5 * 8, NAN), db(7, NAN);
    distill::kernels::conv1d_backward_weight<float>(nullptr, p, plan, hx.data(), hdy.data(), dw.data(), db.data(), false,
                                                    ws.data());
    cuda_checks::check_close(dw, rw.val, rw.mag, 2e-5, cuda_checks::cat("dw with ", splits, " splits"));
    cuda_checks::check_close(db, rb.val, rb.mag, 2e-5, cuda_checks::cat("dbias with ", splits, " splits"));
    if (splits == 1) first = dw;
  }
  // Run to run, a fixed split count gives the same bits.
  auto plan = distill::kernels::wgrad_plan<float>(p);
  std::vector<float> ws(plan.workspace_elements()), a(7 * 5 * 8), b(7 * 5 * 8);
  distill::kernels::conv1d_backward_weight<float>(nullptr, p, plan, hx.data(), hdy.data(), a.data(), nullptr, false, ws.data());
  distill::kernels::conv1d_backward_weight<float>(nullptr, p, plan, hx.data(), hdy.data(), b.data(), nullptr, false, ws.data());
  CHECK(a == b);
}

}  // namespace emu_tests
