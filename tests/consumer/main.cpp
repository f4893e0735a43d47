// Consumer smoke test: include the umbrella header from the installed tree, train one parameter a few steps.
#include <distill/distill.hpp>

#include <cstdio>

int main() {
  namespace dl = distill;
  dl::Context<dl::Cpu> ctx(2, 42);
  auto w = dl::parameter(ctx, dl::Tensor<float, 1>::full({4}, 3.0f));
  float last = 0;
  for (int step = 0; step < 50; ++step) {
    auto loss = dl::sum(dl::mul(w, w));  // minimise |w|^2 by plain gradient descent
    loss.backward();
    for (dl::index_t i = 0; i < 4; ++i) w.value()[i] -= 0.1f * w.grad()[i];
    w.zero_grad();
    last = loss.value()[0];
  }
  std::printf("consumer: loss after 50 steps = %g\n", last);
  return last < 1e-6f ? 0 : 1;
}
