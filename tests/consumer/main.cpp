// Consumer smoke test against the *installed* package: the umbrella header, a compile-time network, a fused
// loss, Adam, and a checkpoint round trip.
#include <distill/distill.hpp>

#include <cstdio>
#include <filesystem>

int main() {
  namespace dl = distill;
  dl::Context<dl::Cpu> ctx(2, 42);
  dl::nn::Sequential<dl::nn::Conv1d<1, 8, 5>, dl::nn::BatchNorm1d<8>, dl::nn::ReLU, dl::nn::GlobalAvgPool,
                     dl::nn::Linear<8, 16>> net{ctx};
  dl::optim::Adam opt{dl::params(net), {.lr = 1e-2}};
  dl::Tensor<float, 3> x1({8, 1, 32}), x2({8, 1, 32});
  dl::CounterRng rng(1);
  for (auto& v : x1) v = float(rng.normal());
  for (dl::index_t i = 0; i < x2.numel(); ++i) x2[i] = x1[i] + 0.05f * float(rng.normal());
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    auto loss = dl::losses::nt_xent(net(dl::constant(ctx, x1)), net(dl::constant(ctx, x2)), 0.2);
    opt.zero_grad();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.value()[0];
  }
  const auto path = std::filesystem::temp_directory_path() / "distill_consumer.ckpt";
  dl::save_checkpoint(path, net);
  decltype(net) copy{ctx};
  dl::load_checkpoint(path, copy);
  std::filesystem::remove(path);
  std::printf("consumer: NT-Xent %.4f -> %.4f after 30 Adam steps; checkpoint round trip ok\n", first, last);
  return last < first ? 0 : 1;
}
