// benchmarks/bench_cuda_conv1d.cu -- kernel lab for distill's conv1d CUDA kernels (forward, grad-input,
// grad-weight + bias) in the style of llm.c's dev/cuda: the production kernels from kernels/conv1d.cuh, CUDA
// events, warm-up, an L2 flush before every timed launch, FLOP and byte accounting, % of the device's roofline,
// and validation against a naive fp64 GPU reference *after* the timing loop.
//
// Build: cmake -DDISTILL_CUDA=ON ... && cmake --build <dir> --target bench_cuda_conv1d
// Run:   ./bench_cuda_conv1d [--reps N] [--shape B,Cin,Cout,L,k]...
// Without a GPU it says so and exits 0.
//
// Accounting per pass (FP32): FLOPs = 2*B*Cout*Cin*k*Lout. Minimal bytes: forward reads x, w, bias and writes y;
// grad-input reads dy, w and writes dx; grad-weight reads x, dy and writes dw, dbias (plus, reported separately,
// the split-K workspace written and read back once). Roofline time = max(FLOPs / FP32 peak, bytes / bandwidth);
// "% roof" = roofline time / measured time (> 100 % means the accounting or the timing is wrong: reported as an
// error). FP32 peak = 2 * FP32 lanes per SM * SMs * boost clock; bandwidth = a device-to-device copy measured here.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "conv1d.cuh"
#include "launch.cuh"

namespace {

using distill::kernels::index_t;
namespace k = distill::kernels;

#define BENCH_CHECK(expr)                                                                                      \
  do {                                                                                                         \
    cudaError_t e_ = (expr);                                                                                   \
    if (e_ != cudaSuccess) {                                                                                   \
      std::fprintf(stderr, "bench_cuda_conv1d: %s failed: %s\n", #expr, cudaGetErrorString(e_));               \
      std::exit(1);                                                                                            \
    }                                                                                                          \
  } while (0)

struct Shape {
  int B, Cin, Cout, L, K;
  const char* note;
  double cudnn_fp32_us;  // stored PyTorch/cuDNN fwd+bwd on H100 (docs/measurements), 0 if not measured
};

// --- naive fp64 references (one thread per output, in double; also the sum of |terms| for the tolerance) ----
__global__ void ref_forward(k::ConvDims d, const float* x, const float* w, const float* bias, double* y, double* mag) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t n = static_cast<index_t>(d.batch) * d.out_ch * d.out_len;
  if (i >= n) return;
  const int t = static_cast<int>(i % d.out_len), o = static_cast<int>((i / d.out_len) % d.out_ch);
  const int b = static_cast<int>(i / (static_cast<index_t>(d.out_len) * d.out_ch));
  double acc = bias[o], m = fabs(static_cast<double>(bias[o]));
  for (int c = 0; c < d.in_ch; ++c)
    for (int u = 0; u < d.kernel; ++u) {
      const int pos = t + u * d.dilation - d.pad;
      if (pos < 0 || pos >= d.in_len) continue;
      const double v = static_cast<double>(w[(static_cast<index_t>(o) * d.in_ch + c) * d.kernel + u]) *
                       x[(static_cast<index_t>(b) * d.in_ch + c) * d.in_len + pos];
      acc += v;
      m += fabs(v);
    }
  y[i] = acc;
  mag[i] = m;
}
// grad-input from the forward geometry: dx[b,c,s] = sum_{o,u} w[o,c,u] dy[b,o,s-u*d+pad]
__global__ void ref_grad_input(k::ConvDims d, const float* dy, const float* w, double* dx, double* mag) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t n = static_cast<index_t>(d.batch) * d.in_ch * d.in_len;
  if (i >= n) return;
  const int s = static_cast<int>(i % d.in_len), c = static_cast<int>((i / d.in_len) % d.in_ch);
  const int b = static_cast<int>(i / (static_cast<index_t>(d.in_len) * d.in_ch));
  double acc = 0, m = 0;
  for (int o = 0; o < d.out_ch; ++o)
    for (int u = 0; u < d.kernel; ++u) {
      const int t = s - u * d.dilation + d.pad;
      if (t < 0 || t >= d.out_len) continue;
      const double v = static_cast<double>(w[(static_cast<index_t>(o) * d.in_ch + c) * d.kernel + u]) *
                       dy[(static_cast<index_t>(b) * d.out_ch + o) * d.out_len + t];
      acc += v;
      m += fabs(v);
    }
  dx[i] = acc;
  mag[i] = m;
}
// grad-weight (i < Cout*Cin*K) and grad-bias (the Cout entries after them)
__global__ void ref_grad_weight(k::ConvDims d, const float* x, const float* dy, double* out, double* mag) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t nw = static_cast<index_t>(d.out_ch) * d.in_ch * d.kernel;
  if (i >= nw + d.out_ch) return;
  double acc = 0, m = 0;
  if (i < nw) {
    const int u = static_cast<int>(i % d.kernel), c = static_cast<int>((i / d.kernel) % d.in_ch);
    const int o = static_cast<int>(i / (static_cast<index_t>(d.kernel) * d.in_ch));
    for (int b = 0; b < d.batch; ++b)
      for (int t = 0; t < d.out_len; ++t) {
        const int pos = t + u * d.dilation - d.pad;
        if (pos < 0 || pos >= d.in_len) continue;
        const double v = static_cast<double>(dy[(static_cast<index_t>(b) * d.out_ch + o) * d.out_len + t]) *
                         x[(static_cast<index_t>(b) * d.in_ch + c) * d.in_len + pos];
        acc += v;
        m += fabs(v);
      }
  } else {
    const int o = static_cast<int>(i - nw);
    for (int b = 0; b < d.batch; ++b)
      for (int t = 0; t < d.out_len; ++t) {
        const double v = dy[(static_cast<index_t>(b) * d.out_ch + o) * d.out_len + t];
        acc += v;
        m += fabs(v);
      }
  }
  out[i] = acc;
  mag[i] = m;
}

__global__ void fill_random(float* p, index_t n, unsigned seed) {
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    unsigned h = static_cast<unsigned>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = static_cast<float>(h & 0xFFFFFF) / 8388608.0f - 1.0f;  // [-1, 1)
  }
}

template <class T>
T* device_alloc(std::size_t n) {
  T* p = nullptr;
  BENCH_CHECK(cudaMalloc(&p, sizeof(T) * std::max<std::size_t>(n, 1)));
  return p;
}

struct Device {
  std::string name;
  int sm = 0, major = 0, minor = 0, clock_khz = 0, l2_bytes = 0;
  double fp32_peak = 0;   // FLOP/s
  double bandwidth = 0;   // B/s, measured copy
};

int fp32_lanes_per_sm(int major, int minor) {
  if (major == 7) return 64;                  // Turing
  if (major == 8 && minor == 0) return 64;    // A100
  return 128;                                 // sm_86/89, Hopper, Blackwell
}

double measure_copy_bandwidth(cudaStream_t s) {
  const std::size_t bytes = std::size_t(1) << 30;
  char* a = device_alloc<char>(bytes);
  char* b = device_alloc<char>(bytes);
  BENCH_CHECK(cudaMemsetAsync(a, 1, bytes, s));
  cudaEvent_t e0, e1;
  BENCH_CHECK(cudaEventCreate(&e0));
  BENCH_CHECK(cudaEventCreate(&e1));
  float best = 1e30f;
  for (int r = 0; r < 12; ++r) {
    BENCH_CHECK(cudaEventRecord(e0, s));
    BENCH_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
    BENCH_CHECK(cudaEventRecord(e1, s));
    BENCH_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    BENCH_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (r >= 2) best = std::min(best, ms);
  }
  BENCH_CHECK(cudaEventDestroy(e0));
  BENCH_CHECK(cudaEventDestroy(e1));
  BENCH_CHECK(cudaFree(a));
  BENCH_CHECK(cudaFree(b));
  return 2.0 * static_cast<double>(bytes) / (best * 1e-3);  // read + write
}

struct Timing {
  double min_us = 0, median_us = 0;
};

/// Times `launch_fn` `reps` times after `warmup` runs, flushing L2 (a memset over twice its size) before each.
template <class F>
Timing time_it(cudaStream_t s, char* flush, std::size_t flush_bytes, int warmup, int reps, F&& launch_fn) {
  for (int i = 0; i < warmup; ++i) launch_fn();
  BENCH_CHECK(cudaStreamSynchronize(s));
  cudaEvent_t e0, e1;
  BENCH_CHECK(cudaEventCreate(&e0));
  BENCH_CHECK(cudaEventCreate(&e1));
  std::vector<double> us;
  for (int r = 0; r < reps; ++r) {
    BENCH_CHECK(cudaMemsetAsync(flush, r & 0xFF, flush_bytes, s));
    BENCH_CHECK(cudaEventRecord(e0, s));
    launch_fn();
    BENCH_CHECK(cudaEventRecord(e1, s));
    BENCH_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    BENCH_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    us.push_back(ms * 1e3);
  }
  BENCH_CHECK(cudaEventDestroy(e0));
  BENCH_CHECK(cudaEventDestroy(e1));
  std::sort(us.begin(), us.end());
  return Timing{us.front(), us[us.size() / 2]};
}

/// Max over elements of |got - ref| / (mag + 1e-30) (relative to the sum of |terms|).
double max_rel_error(const float* got_dev, const double* ref_dev, const double* mag_dev, std::size_t n) {
  std::vector<float> got(n);
  std::vector<double> ref(n), mag(n);
  BENCH_CHECK(cudaMemcpy(got.data(), got_dev, sizeof(float) * n, cudaMemcpyDeviceToHost));
  BENCH_CHECK(cudaMemcpy(ref.data(), ref_dev, sizeof(double) * n, cudaMemcpyDeviceToHost));
  BENCH_CHECK(cudaMemcpy(mag.data(), mag_dev, sizeof(double) * n, cudaMemcpyDeviceToHost));
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]) / (mag[i] + 1e-30);
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
  return worst;
}

int run_shape(const Shape& sh, const Device& dev, cudaStream_t s, char* flush, std::size_t flush_bytes, int reps) {
  const distill::Conv1dGeometry p = distill::conv1d_geometry(sh.B, sh.Cin, sh.Cout, sh.L, sh.K);  // 'same'
  const k::ConvDims d = k::conv_dims(p, false);
  const std::size_t nx = std::size_t(sh.B) * sh.Cin * sh.L, ny = std::size_t(sh.B) * sh.Cout * sh.L;
  const std::size_t nw = std::size_t(sh.Cout) * sh.Cin * sh.K;
  float *x = device_alloc<float>(nx), *w = device_alloc<float>(nw), *bias = device_alloc<float>(sh.Cout);
  float *y = device_alloc<float>(ny), *dy = device_alloc<float>(ny), *dx = device_alloc<float>(nx);
  float *dw = device_alloc<float>(nw + sh.Cout);
  float* db = dw + nw;
  k::launch("fill_random", fill_random, {dim3(1024), dim3(256), 0, s}, x, static_cast<index_t>(nx), 1u);
  k::launch("fill_random", fill_random, {dim3(1024), dim3(256), 0, s}, w, static_cast<index_t>(nw), 2u);
  k::launch("fill_random", fill_random, {dim3(1024), dim3(256), 0, s}, bias, static_cast<index_t>(sh.Cout), 3u);
  k::launch("fill_random", fill_random, {dim3(1024), dim3(256), 0, s}, dy, static_cast<index_t>(ny), 4u);
  const k::WgradPlan plan = k::wgrad_plan<float>(p);
  float* ws = device_alloc<float>(plan.workspace_elements());
  const bool small = sh.Cin <= 4;

  const double flops = 2.0 * sh.B * sh.Cout * double(sh.Cin) * sh.K * sh.L;
  struct Pass {
    const char* name;
    double bytes;
    Timing t;
  } passes[3] = {
      {small ? "forward (small-Cin)" : "forward", 4.0 * (nx + nw + sh.Cout + ny), {}},
      {"grad-input", 4.0 * (ny + nw + nx), {}},
      {"grad-weight+bias", 4.0 * (nx + ny + nw + sh.Cout), {}},
  };
  passes[0].t = time_it(s, flush, flush_bytes, 5, reps,
                        [&] { k::conv1d_forward<float>(s, p, x, w, bias, y, false, small); });
  passes[1].t = time_it(s, flush, flush_bytes, 5, reps, [&] { k::conv1d_backward_input<float>(s, p, dy, w, dx, false); });
  passes[2].t = time_it(s, flush, flush_bytes, 5, reps,
                        [&] { k::conv1d_backward_weight<float>(s, p, plan, x, dy, dw, db, false, ws); });

  // Validation after timing (the outputs of the last timed launches).
  double *ref = device_alloc<double>(std::max({nx, ny, nw + sh.Cout})), *mag = device_alloc<double>(std::max({nx, ny, nw + sh.Cout}));
  const auto blocks = [](std::size_t n) { return dim3(static_cast<unsigned>((n + 255) / 256)); };
  k::launch("ref_forward", ref_forward, {blocks(ny), dim3(256), 0, s}, d, x, w, bias, ref, mag);
  const double e_fwd = max_rel_error(y, ref, mag, ny);
  k::launch("ref_grad_input", ref_grad_input, {blocks(nx), dim3(256), 0, s}, d, dy, w, ref, mag);
  const double e_dgrad = max_rel_error(dx, ref, mag, nx);
  k::launch("ref_grad_weight", ref_grad_weight, {blocks(nw + sh.Cout), dim3(256), 0, s}, d, x, dy, ref, mag);
  const double e_wgrad = max_rel_error(dw, ref, mag, nw + sh.Cout);
  const double errs[3] = {e_fwd, e_dgrad, e_wgrad};
  const double tols[3] = {1e-5, 1e-5, 1e-4};

  int failures = 0;
  double total_min = 0;
  std::printf("\nB%d Cin%d Cout%d L%d k%d  (%s)  %.2f GFLOP per pass, split-K %d (workspace %.1f MB)\n", sh.B, sh.Cin,
              sh.Cout, sh.L, sh.K, sh.note, flops * 1e-9, plan.splits, 4e-6 * plan.workspace_elements());
  std::printf("  %-20s %9s %9s %9s %8s %9s %7s %10s\n", "pass", "min us", "med us", "TFLOP/s", "GB/s", "floor us",
              "% roof", "max err");
  for (int i = 0; i < 3; ++i) {
    const Pass& ps = passes[i];
    const double floor_us = std::max(flops / dev.fp32_peak, ps.bytes / dev.bandwidth) * 1e6;
    const double roof = 100.0 * floor_us / ps.t.min_us;
    std::printf("  %-20s %9.1f %9.1f %9.2f %8.0f %9.1f %6.1f%% %10.2e%s\n", ps.name, ps.t.min_us, ps.t.median_us,
                flops / ps.t.min_us * 1e-6, ps.bytes / ps.t.min_us * 1e-3, floor_us, roof, errs[i],
                errs[i] <= tols[i] ? "" : "  FAILED validation");
    if (!(errs[i] <= tols[i])) ++failures;
    if (roof > 100.0) {
      std::printf("  ERROR: above 100%% of the roofline: the accounting or the timing is wrong\n");
      ++failures;
    }
    total_min += ps.t.min_us;
  }
  std::printf("  fwd + grad-input + grad-weight: %.1f us (%.2f TFLOP/s)", total_min, 3 * flops / total_min * 1e-6);
  if (sh.cudnn_fp32_us > 0)
    std::printf("; stored PyTorch/cuDNN FP32 on H100: %.0f us (ratio %.2fx)", sh.cudnn_fp32_us,
                sh.cudnn_fp32_us / total_min);
  std::printf("\n");

  for (void* q : {static_cast<void*>(x), static_cast<void*>(w), static_cast<void*>(bias), static_cast<void*>(y),
                  static_cast<void*>(dy), static_cast<void*>(dx), static_cast<void*>(dw), static_cast<void*>(ws),
                  static_cast<void*>(ref), static_cast<void*>(mag)})
    BENCH_CHECK(cudaFree(q));
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 50;
  std::vector<Shape> shapes{
      {64, 64, 128, 1024, 8, "main shape (issue 4)", 1194.8},
      {16, 64, 128, 512, 8, "core issue shape", 0},
      {32, 1, 64, 256, 8, "core issue shape, first layer", 0},
      {32, 128, 128, 256, 3, "core issue shape", 0},
      {128, 1, 64, 512, 8, "stored cuDNN baseline", 339.1},
      {128, 64, 128, 512, 5, "stored cuDNN baseline", 833.1},
      {128, 128, 128, 512, 3, "stored cuDNN baseline", 1013.5},
      {256, 128, 128, 256, 3, "stored cuDNN baseline", 1006.3},
  };
  bool custom = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--shape") && i + 1 < argc) {
      Shape sh{0, 0, 0, 0, 0, "command line", 0};
      if (std::sscanf(argv[++i], "%d,%d,%d,%d,%d", &sh.B, &sh.Cin, &sh.Cout, &sh.L, &sh.K) != 5) {
        std::fprintf(stderr, "--shape expects B,Cin,Cout,L,k\n");
        return 2;
      }
      if (!custom) shapes.clear();
      custom = true;
      shapes.push_back(sh);
    } else {
      std::fprintf(stderr, "usage: %s [--reps N] [--shape B,Cin,Cout,L,k]...\n", argv[0]);
      return 2;
    }
  }

  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("bench_cuda_conv1d: no CUDA device available (%s): nothing to measure.\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 0;
  }
  Device dev;
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  dev.name = prop.name;
  BENCH_CHECK(cudaDeviceGetAttribute(&dev.sm, cudaDevAttrMultiProcessorCount, 0));
  BENCH_CHECK(cudaDeviceGetAttribute(&dev.major, cudaDevAttrComputeCapabilityMajor, 0));
  BENCH_CHECK(cudaDeviceGetAttribute(&dev.minor, cudaDevAttrComputeCapabilityMinor, 0));
  BENCH_CHECK(cudaDeviceGetAttribute(&dev.clock_khz, cudaDevAttrClockRate, 0));
  BENCH_CHECK(cudaDeviceGetAttribute(&dev.l2_bytes, cudaDevAttrL2CacheSize, 0));
  dev.fp32_peak = 2.0 * fp32_lanes_per_sm(dev.major, dev.minor) * dev.sm * dev.clock_khz * 1e3;

  cudaStream_t s;
  BENCH_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  dev.bandwidth = measure_copy_bandwidth(s);
  const std::size_t flush_bytes = std::max<std::size_t>(2 * static_cast<std::size_t>(dev.l2_bytes), 64 << 20);
  char* flush = device_alloc<char>(flush_bytes);

  std::printf("bench_cuda_conv1d on %s (sm_%d%d, %d SMs, %.2f GHz, L2 %d MB)\n", dev.name.c_str(), dev.major,
              dev.minor, dev.sm, dev.clock_khz * 1e-6, dev.l2_bytes >> 20);
  std::printf("ceilings: FP32 SIMT %.1f TFLOP/s (2 x %d lanes x SMs x boost clock), copy bandwidth %.0f GB/s (measured)\n",
              dev.fp32_peak * 1e-12, fp32_lanes_per_sm(dev.major, dev.minor), dev.bandwidth * 1e-9);
  std::printf("timing: %d reps after 5 warm-ups, L2 flushed (%zu MB memset) before each, CUDA events; min and median\n",
              reps, flush_bytes >> 20);

  int failures = 0;
  for (const Shape& sh : shapes) failures += run_shape(sh, dev, s, flush, flush_bytes, reps);
  BENCH_CHECK(cudaFree(flush));
  BENCH_CHECK(cudaStreamDestroy(s));
  if (failures) {
    std::printf("\n%d check(s) FAILED\n", failures);
    return 1;
  }
  std::printf("\nall outputs validated against the fp64 reference after timing\n");
  return 0;
}
