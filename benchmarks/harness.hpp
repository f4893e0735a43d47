// benchmarks/harness.hpp -- the C++ side of distill's interleaved benchmark harness.
//
// A benchmark binary registers cases (a name, a run() that performs one timed unit of work, FLOP and byte counts)
// and calls bench::main(). Modes:
//   bench_x                      standalone: every case, warm-up, >= 20 timed reps, min and median (ours only)
//   bench_x --list               one JSON object per line: {"name", "flops", "bytes", "extra_bytes"}
//   bench_x --serve              reads "run <case> <reps>" lines on stdin, answers "ms <t1> <t2> ..." (one per rep);
//                                "peak" answers "gflops <SGEMM GFLOP/s> fma <FP32 FMA GFLOP/s> gbs <copy GB/s>", the
//                                machine's ceilings measured by this binary (see measure_*); "isa" answers
//                                "isa <level>", the kernels' instruction-set level (core/isa.hpp: the CPU's best,
//                                or $DISTILL_ISA); "quit" ends.
//   --threads N                  threads of the distill context (default 2)
// benchmarks/harness.py drives --serve and the PyTorch peer in the same process tree, interleaving them, so both
// are measured under the same machine load. Timings are wall-clock (steady_clock).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/core/isa_regions.hpp"
#include "distill/core/isa.hpp"
#include "distill/cpu/gemm.hpp"

namespace bench {

struct Case {
  std::string name;
  std::function<void()> run;  // one unit of work (e.g. forward + backward)
  double flops = 0;           // per run()
  double bytes = 0;           // compulsory memory traffic per run() (for GB/s)
  double extra_bytes = 0;     // extra memory the implementation allocates beyond inputs/outputs
};

inline double now_ms() {
  using clk = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clk::now().time_since_epoch()).count();
}

inline std::vector<double> time_reps(const Case& c, int reps) {
  std::vector<double> t;
  t.reserve(reps);
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_ms();
    c.run();
    t.push_back(now_ms() - t0);
  }
  return t;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

/// SGEMM GFLOP/s of this machine through distill's own CPU GEMM (Eigen), n^3, best of `reps`.
inline double measure_sgemm_gflops(int threads, distill::index_t n = 1024, int reps = 5) {
  std::vector<float> a(n * n, 1.0f), b(n * n, 0.5f), c(n * n, 0.0f);
  double best = 1e30;
  for (int r = 0; r < reps + 1; ++r) {
    const double t0 = now_ms();
    distill::cpu::gemm<float>(threads, distill::cpu::Trans::N, distill::cpu::Trans::N, n, n, n, 1.0f, a.data(),
                              b.data(), 0.0f, c.data());
    const double dt = now_ms() - t0;
    if (r > 0) best = std::min(best, dt);  // first run is warm-up
  }
  return 2.0 * double(n) * n * n / (best * 1e6);
}

/// The FP32 compute ceiling: register-only FMA throughput, 12 independent 8-wide chains per thread (enough to
/// cover the FMA latency on two ports; the empty asm keeps the chains in registers), best of 3. Compiled for
/// AVX2 + FMA whatever -march says (a target region) and run when the CPU has them; 0 otherwise.
#if DISTILL_ISA_X86
DISTILL_ISA_BEGIN_AVX2
inline double measure_fma_gflops_avx2(int threads) {
  const long n = 20000000;
  double best = 1e30;
  for (int trial = 0; trial < 3; ++trial) {
    const double t0 = now_ms();
#pragma omp parallel num_threads(threads)
    {
      __m256 a[12];
      for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_ps(1.0f + float(j) * 1e-7f);
      const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
      for (long i = 0; i < n; ++i) {
        for (int j = 0; j < 12; ++j) a[j] = _mm256_fmadd_ps(a[j], m, c);
        asm volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]), "+x"(a[6]),
                     "+x"(a[7]), "+x"(a[8]), "+x"(a[9]), "+x"(a[10]), "+x"(a[11]));
      }
    }
    best = std::min(best, now_ms() - t0);
  }
  return double(threads) * 12.0 * 16.0 * double(n) / (best * 1e6);
}
DISTILL_ISA_END
#endif

inline double measure_fma_gflops(int threads) {
#if DISTILL_ISA_X86
  if (distill::isa_supported(distill::Isa::avx2)) return measure_fma_gflops_avx2(threads);
#endif
  (void)threads;
  return 0.0;
}

/// The memory ceiling: a streaming scale-copy over two 256 MiB arrays (read + write bytes), best of 4.
inline double measure_copy_gbs(int threads) {
  const std::size_t n = std::size_t(64) << 20;
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  double best = 1e30;
  for (int trial = 0; trial < 4; ++trial) {
    const double t0 = now_ms();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::size_t i = 0; i < n; ++i) b[i] = a[i] * 1.0001f;
    best = std::min(best, now_ms() - t0);
  }
  return 2.0 * 4.0 * double(n) / (best * 1e6);
}

inline int parse_threads(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--threads") == 0) return std::max(1, std::atoi(argv[i + 1]));
  return 2;
}

inline bool has_flag(int argc, char** argv, const char* flag) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], flag) == 0) return true;
  return false;
}

/// Entry point for a benchmark binary: `make_cases(threads)` builds the cases (inputs allocated once).
inline int main(int argc, char** argv, const std::function<std::vector<Case>(int threads)>& make_cases) {
  const int threads = parse_threads(argc, argv);
  std::vector<Case> cases = make_cases(threads);
  auto find = [&](const std::string& n) -> const Case* {
    for (auto& c : cases)
      if (c.name == n) return &c;
    return nullptr;
  };
  if (has_flag(argc, argv, "--list")) {
    for (auto& c : cases)
      std::printf("{\"name\": \"%s\", \"flops\": %.6g, \"bytes\": %.6g, \"extra_bytes\": %.6g}\n", c.name.c_str(),
                  c.flops, c.bytes, c.extra_bytes);
    return 0;
  }
  if (has_flag(argc, argv, "--serve")) {
    std::string line;
    while (std::getline(std::cin, line)) {
      std::istringstream is(line);
      std::string cmd;
      is >> cmd;
      if (cmd == "quit") break;
      if (cmd == "peak") {
        const double sgemm = measure_sgemm_gflops(threads), fma = measure_fma_gflops(threads);
        std::printf("gflops %.3f fma %.3f gbs %.3f\n", sgemm, fma, measure_copy_gbs(threads));
      } else if (cmd == "isa") {
        std::printf("isa %s\n", distill::isa_name(distill::default_isa()));
      } else if (cmd == "run") {
        std::string name;
        int reps = 1;
        is >> name >> reps;
        const Case* c = find(name);
        if (!c) {
          std::printf("error unknown case %s\n", name.c_str());
        } else {
          std::printf("ms");
          for (double t : time_reps(*c, reps)) std::printf(" %.6f", t);
          std::printf("\n");
        }
      } else {
        std::printf("error unknown command %s\n", cmd.c_str());
      }
      std::fflush(stdout);
    }
    return 0;
  }
  // Standalone: ours only.
  const double peak = measure_sgemm_gflops(threads);
  std::printf("threads %d, cpu kernels %s, measured SGEMM peak %.1f GFLOP/s\n", threads,
              distill::isa_name(distill::default_isa()), peak);
  std::printf("%-40s %10s %10s %10s %8s\n", "case", "min ms", "median ms", "GFLOP/s", "%peak");
  for (auto& c : cases) {
    time_reps(c, 3);  // warm-up
    auto t = time_reps(c, 20);
    const double mn = *std::min_element(t.begin(), t.end()), md = median(t);
    const double gf = c.flops / (md * 1e6);
    std::printf("%-40s %10.3f %10.3f %10.2f %7.1f%%\n", c.name.c_str(), mn, md, gf, 100.0 * gf / peak);
  }
  return 0;
}

}  // namespace bench
