// bench_losses: the fused losses (distill::losses) against the same losses composed from the core ops
// (losses::naive, materialising N x N) and against PyTorch (benchmarks/torch_losses.py), forward + backward:
//   NT-Xent at 2N in {512, 2048, 8192}, D = 128, tau = 0.2    (ntxent_{fused,naive}_<2N>)
//   KD-KL at 1024 x 1024 and 512 x 4096, T = 4                 (kl_{fused,naive}_<B>x<K>)
// The naive cases have the same torch peer as the fused ones, so one harness run gives fused/torch,
// naive/torch and hence fused/naive. Run: scripts/bench.sh losses [--json out.json]
//
// FLOPs are what each implementation executes (fused NT-Xent 4 M^2 D: symmetric tiles, S recomputed in the
// backward; naive 6 M^2 D: S, G Z, G^T Z); bytes are the compulsory traffic (NT-Xent: read x, write dx;
// KL: read s and t, write ds). extra_bytes is MEASURED: the peak of live heap bytes during one run above the
// level before it, minus the input gradients the run creates (this file counts every malloc/free of the process;
// see memtrack below). `bench_losses --peaks` prints the machine's measured GEMM and copy-bandwidth ceilings.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "distill/autograd/grad_check.hpp"
#include "distill/losses/losses.hpp"
#include "distill/losses/naive.hpp"
#include "harness.hpp"

// ---------------------------------------------------------------------------------------------------------------
// memtrack: live-heap accounting by interposing glibc's allocation entry points (not under sanitizers, which
// interpose them themselves). Every block is counted with malloc_usable_size, so frees need no side table.
// ---------------------------------------------------------------------------------------------------------------
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define DISTILL_BENCH_MEMTRACK 1
extern "C" {
void* __libc_malloc(std::size_t);
void __libc_free(void*);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}
namespace memtrack {
inline std::atomic<long long> live{0}, peak{0};
inline void added(void* p) {
  if (!p) return;
  const long long now = live.fetch_add(static_cast<long long>(malloc_usable_size(p))) +
                        static_cast<long long>(malloc_usable_size(p));
  long long pk = peak.load(std::memory_order_relaxed);
  while (now > pk && !peak.compare_exchange_weak(pk, now)) {
  }
}
inline void removed(void* p) {
  if (p) live.fetch_sub(static_cast<long long>(malloc_usable_size(p)));
}
}  // namespace memtrack
extern "C" {
void* malloc(std::size_t n) noexcept {
  void* p = __libc_malloc(n);
  memtrack::added(p);
  return p;
}
void free(void* p) noexcept {
  memtrack::removed(p);
  __libc_free(p);
}
void* calloc(std::size_t a, std::size_t b) noexcept {
  void* p = __libc_calloc(a, b);
  memtrack::added(p);
  return p;
}
void* realloc(void* p, std::size_t n) noexcept {
  const long long old = p ? static_cast<long long>(malloc_usable_size(p)) : 0;
  void* q = __libc_realloc(p, n);
  if (q || n == 0) memtrack::live.fetch_sub(old);  // moved or freed (realloc(p, 0)); a failure keeps p
  memtrack::added(q);
  return q;
}
void* aligned_alloc(std::size_t al, std::size_t n) noexcept {
  void* p = __libc_memalign(al, n);
  memtrack::added(p);
  return p;
}
void* memalign(std::size_t al, std::size_t n) noexcept {
  void* p = __libc_memalign(al, n);
  memtrack::added(p);
  return p;
}
int posix_memalign(void** out, std::size_t al, std::size_t n) noexcept {
  void* p = __libc_memalign(al, n);
  if (!p) return 12;  // ENOMEM
  memtrack::added(p);
  *out = p;
  return 0;
}
}
#endif

namespace {

using namespace distill;

/// Peak live heap bytes above the starting level while f() runs (-1 when not measurable in this build).
template <class F>
double measure_extra(F&& f) {
#ifdef DISTILL_BENCH_MEMTRACK
  const long long base = memtrack::live.load();
  memtrack::peak.store(base);
  f();
  return double(memtrack::peak.load() - base);
#else
  f();
  return -1;
#endif
}

bool g_measure_memory = false;

struct Inputs {
  std::shared_ptr<Context<Cpu>> ctx;
  std::vector<Var<float, 2>> v;
};

bench::Case make_case(const std::string& name, int threads, std::vector<Shape<2>> shapes, std::vector<bool> grad,
                      double flops, double bytes,
                      std::function<Var<float, 0>(const std::vector<Var<float, 2>>&)> loss) {
  auto in = std::make_shared<Inputs>();
  in->ctx = std::make_shared<Context<Cpu>>(threads, 7);
  double grad_bytes = 0;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    in->v.emplace_back(*in->ctx, random_tensor<float>(in->ctx->rng(), shapes[i], -2, 2), grad[i]);
    if (grad[i]) grad_bytes += 4.0 * double(numel(shapes[i]));
  }
  bench::Case c;
  c.name = name;
  c.run = [in, loss] {
    {
      auto l = loss(in->v);
      l.backward();
    }
    for (auto& x : in->v) x.drop_grad();
  };
  c.flops = flops;
  c.bytes = bytes;
  if (g_measure_memory) {
    c.run();  // warm-up (first-touch of lazily sized internals)
    // Empty the context's caching pool, so that the measured run allocates afresh; blocks it frees stay cached
    // (and counted as live), so the peak includes what the pool holds.
    in->ctx->host_pool().release();
    c.extra_bytes = std::max(0.0, measure_extra([&] {
                                     auto l = loss(in->v);
                                     l.backward();
                                   }) -
                                       grad_bytes);
    for (auto& x : in->v) x.drop_grad();
  }
  return c;
}

std::vector<bench::Case> cases(int threads) {
  std::vector<bench::Case> out;
  const index_t D = 128;
  const double tau = 0.2;
  for (index_t M : {512, 2048, 8192}) {
    const double m = double(M), d = double(D);
    const std::string tag = std::to_string(M);
    const std::vector<Shape<2>> shapes{{M / 2, D}, {M / 2, D}};
    out.push_back(make_case("ntxent_fused_" + tag, threads, shapes, {true, true}, 4 * m * m * d, 8 * m * d,
                            [tau](const auto& v) { return losses::nt_xent(v[0], v[1], tau); }));
    out.push_back(make_case("ntxent_naive_" + tag, threads, shapes, {true, true}, 6 * m * m * d, 8 * m * d,
                            [tau](const auto& v) { return losses::naive::nt_xent(v[0], v[1], tau); }));
  }
  const double T = 4.0;
  for (auto [B, K] : {std::pair<index_t, index_t>{1024, 1024}, {512, 4096}}) {
    const std::string tag = std::to_string(B) + "x" + std::to_string(K);
    const std::vector<Shape<2>> shapes{{B, K}, {B, K}};
    const double bytes = 12.0 * double(B) * double(K);
    out.push_back(make_case("kl_fused_" + tag, threads, shapes, {true, false}, 0, bytes,
                            [T](const auto& v) { return losses::kd_kl(v[0], v[1], T); }));
    out.push_back(make_case("kl_naive_" + tag, threads, shapes, {true, false}, 0, bytes,
                            [T](const auto& v) { return losses::naive::kd_kl(v[0], v[1], T); }));
  }
  return out;
}

/// Measured ceilings: distill's CPU GEMM (Eigen), the tile kernel of the fused losses, and copy bandwidth.
void print_peaks(int threads) {
  const cpu::Isa isa = cpu::default_isa();
  std::printf("threads %d, cpu kernels %s\n", threads, cpu::isa_name(isa));
  const double fma = bench::measure_fma_gflops(threads);
  if (fma > 0) std::printf("fma_peak             %8.1f GFLOP/s (12 x 8-wide FMA chains per thread)\n", fma);
  else std::printf("fma_peak                  n/a (the CPU has no AVX2 + FMA)\n");
  std::printf("sgemm_eigen_1024     %8.1f GFLOP/s (distill::cpu::gemm, 1024^3)\n",
              bench::measure_sgemm_gflops(threads));
  {
    // The fused NT-Xent's own kernel: S tile = Z_I Z_J^T (K = 128) then H Z_J, per thread, 96-row tiles.
    const index_t bt = 96, Dp = 128, reps = 4000;
    double best = 1e30;
    for (int trial = 0; trial < 3; ++trial) {
      const double t0 = bench::now_ms();
#pragma omp parallel num_threads(threads)
      {
        Tensor<float, 1> z(Shape<1>{bt * Dp}), zt(Shape<1>{bt * Dp}), s(Shape<1>{bt * bt}), o(Shape<1>{bt * Dp});
        z.fill(0.01f);
        zt.fill(0.02f);
        s.fill(0.f);
        o.fill(0.f);
        for (index_t r = 0; r < reps / threads; ++r) {
          cpu::tile::mm_packed<float>(isa, bt, bt, Dp, z.data(), Dp, zt.data(), s.data(), bt, 1.0f, false);
          cpu::tile::mm_nn<float>(isa, bt, Dp, bt, s.data(), bt, z.data(), Dp, o.data(), Dp, 1e-3f, true);
        }
      }
      best = std::min(best, bench::now_ms() - t0);
    }
    std::printf("tile_kernel_96x128   %8.1f GFLOP/s (S = Z_I Z_J^T and dZ += H Z_J, per-thread tiles)\n",
                2.0 * 2.0 * double(bt) * bt * Dp * double(reps / threads * threads) / (best * 1e6));
  }
  std::printf("copy_bandwidth       %8.1f GB/s (read + write, 256 MiB arrays)\n", bench::measure_copy_gbs(threads));
}

}  // namespace

int main(int argc, char** argv) {
  if (bench::has_flag(argc, argv, "--peaks")) {
    print_peaks(bench::parse_threads(argc, argv));
    return 0;
  }
  g_measure_memory = bench::has_flag(argc, argv, "--list") || !bench::has_flag(argc, argv, "--serve");
  return bench::main(argc, argv, cases);
}
