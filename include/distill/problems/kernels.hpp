// distill/problems/kernels.hpp -- the small descriptors both backends take unchanged: GEMM transposes and the
// optimizer steps' hyper-parameters.
//
// Plain C++ below cpu/ and cuda/: cpu::gemm and cuda::gemm take the same Trans, cpu::sgd_step and cuda::sgd_step the
// same SgdConfig, cpu::adam_step and cuda::adam_step the same AdamConfig (docs/architecture.md).
#pragma once

#include <cstdint>

namespace distill {

/// op(A) of a GEMM: A as stored (N) or transposed (T).
enum class Trans { N, T };

/// One torch.optim.SGD step of one parameter (PyTorch 1.13's single-tensor formulas, cpu/optim.hpp).
struct SgdConfig {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;  // the momentum buffer starts as the gradient (PyTorch's first step), else it is updated
};

/// One torch.optim.Adam / AdamW step of one parameter; amsgrad when the caller passes a max_exp_avg_sq buffer.
struct AdamConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled_weight_decay = false;  // true: AdamW (p *= 1 - lr * wd), false: Adam (g += wd * p)
  std::int64_t step = 1;                // 1-based step count after this update (bias corrections)
};

}  // namespace distill
