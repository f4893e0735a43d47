// Consumer of the installed package's CUDA backend: the project built distill's kernels itself with
// distill_add_cuda_library() (cmake/distillCuda.cmake), on the SIMT emulator (EMULATION) or with nvcc. It trains a
// small conv net with the fused NT-Xent for a few Adam steps on the Cuda device and on the Cpu device, from the same
// initial weights, and checks that the losses agree. With nvcc and no GPU it says so and exits 0.
#include <distill/distill.hpp>

#include <cmath>
#include <cstdio>

namespace dl = distill;

template <class D>
using Net = dl::nn::Sequential<dl::nn::Conv1d<1, 8, 5, dl::nn::Conv1dConfig{}, float, D>,
                               dl::nn::BatchNorm1d<8, float, D>, dl::nn::ReLU, dl::nn::GlobalAvgPool,
                               dl::nn::Linear<8, 16, dl::nn::LinearConfig{}, float, D>>;

template <class D>
std::vector<float> train(dl::Context<D>& ctx, Net<D>& net, const dl::Tensor<float, 3>& x1,
                         const dl::Tensor<float, 3>& x2) {
  auto on_device = [&](const dl::Tensor<float, 3>& h) { return dl::constant(ctx, dl::to_device(ctx, h)); };
  dl::optim::Adam opt{dl::params(net), {.lr = 1e-2}};
  std::vector<float> losses;
  for (int step = 0; step < 5; ++step) {
    auto loss = dl::losses::nt_xent(net(on_device(x1)), net(on_device(x2)), 0.2);
    opt.zero_grad();
    loss.backward();
    opt.step();
    losses.push_back(dl::to_host(ctx, loss.value())[0]);
  }
  return losses;
}

int main() {
  const bool emulated = dl::cuda::emulated();
  if (!emulated && dl::cuda::device_count() == 0) {
    std::printf("cuda consumer: built with nvcc and linked; no CUDA device here, nothing to run\n");
    return 0;
  }
  dl::Tensor<float, 3> x1({8, 1, 32}), x2({8, 1, 32});
  dl::CounterRng rng(1);
  for (auto& v : x1) v = float(rng.normal());
  for (dl::index_t i = 0; i < x2.numel(); ++i) x2[i] = x1[i] + 0.05f * float(rng.normal());

  dl::Context<dl::Cpu> cctx(1, 42);
  dl::Context<dl::Cuda> gctx(1, 7);
  Net<dl::Cpu> cnet{cctx};
  Net<dl::Cuda> gnet{gctx};
  {
    dl::io::Checkpoint ck;  // the same initial weights on both devices
    ck.put_module(cnet, "net");
    ck.load_module(gnet, "net");
  }
  const auto lc = train(cctx, cnet, x1, x2), lg = train(gctx, gnet, x1, x2);
  double worst = 0;
  for (std::size_t i = 0; i < lc.size(); ++i) worst = std::max(worst, std::fabs(double(lc[i]) - lg[i]) / lc[i]);
  std::printf("cuda consumer (%s): NT-Xent %.5f -> %.5f on Cuda, %.5f -> %.5f on Cpu, worst relative gap %.1e\n",
              emulated ? "SIMT emulator" : "GPU", lg.front(), lg.back(), lc.front(), lc.back(), worst);
  return worst < 1e-4 && lg.back() < lg.front() ? 0 : 1;
}
