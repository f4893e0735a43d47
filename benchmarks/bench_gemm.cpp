// bench_gemm: distill's CPU GEMM (Eigen, threads owned by distill) against torch.mm, the baseline every other CPU
// op inherits. Run: scripts/bench.sh gemm
#include <vector>

#include "harness.hpp"

int main(int argc, char** argv) {
  return bench::main(argc, argv, [](int threads) {
    std::vector<bench::Case> cases;
    for (distill::index_t n : {256, 512, 1024}) {
      auto a = std::make_shared<std::vector<float>>(n * n, 0.5f);
      auto b = std::make_shared<std::vector<float>>(n * n, 0.25f);
      auto c = std::make_shared<std::vector<float>>(n * n, 0.0f);
      bench::Case k;
      k.name = "sgemm_" + std::to_string(n);
      k.run = [=] {
        distill::cpu::gemm<float>(threads, distill::cpu::Trans::N, distill::cpu::Trans::N, n, n, n, 1.0f, a->data(),
                                  b->data(), 0.0f, c->data());
      };
      k.flops = 2.0 * double(n) * n * n;
      k.bytes = 3.0 * 4 * double(n) * n;
      cases.push_back(k);
    }
    return cases;
  });
}
