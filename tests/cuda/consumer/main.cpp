// A user program on the Cuda device: one conv1d forward on Context<Cuda>, checked against a plain loop.
// Linked against the emulation build it runs on the CPU; against the nvcc build it needs a GPU (else exits 0).
#include <cmath>
#include <cstdio>

#include <distill/cuda/device_ops.hpp>

int main() {
  namespace dc = distill::cuda;
  if (dc::device_count() == 0) {
    std::printf("no CUDA device: nothing to run\n");
    return 0;
  }
  distill::Context<distill::Cuda> ctx{1, 0};
  const auto s = dc::conv1d_shape(2, 3, 4, 10, 8, distill::Padding::Same);  // PyTorch's k = 8: 3 left, 4 right
  distill::HostTensor<float, 3> x({2, 3, 10});
  distill::HostTensor<float, 3> w({4, 3, 8});
  for (distill::index_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.3f * float(i));
  for (distill::index_t i = 0; i < w.numel(); ++i) w[i] = std::cos(0.7f * float(i));
  auto dx = distill::to_device(ctx, x);
  auto dw = distill::to_device(ctx, w);
  auto dy = ctx.empty<float, 3>({2, 4, 10});
  dc::conv1d_forward<float>(ctx, s, dx.data(), dw.data(), nullptr, dy.data());
  const auto y = distill::to_host(ctx, dy);
  double worst = 0;
  for (int b = 0; b < 2; ++b)
    for (int o = 0; o < 4; ++o)
      for (int t = 0; t < 10; ++t) {
        double ref = 0;
        for (int c = 0; c < 3; ++c)
          for (int u = 0; u < 8; ++u)
            if (t + u - 3 >= 0 && t + u - 3 < 10) ref += double(w(o, c, u)) * x(b, c, t + u - 3);
        worst = std::fmax(worst, std::fabs(ref - y(b, o, t)));
      }
  std::printf("distill CUDA consumer on %s: max |error| %.2e\n", ctx.device_info().name.c_str(), worst);
  return worst < 1e-4 ? 0 : 1;
}
