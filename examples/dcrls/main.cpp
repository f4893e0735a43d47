// examples/dcrls -- DCRLS (deep contrastive learning with self-distillation) on a UCR dataset, end to end:
// load -> two augmented views -> ResNet1D(64) + per-block heads -> NT-Xent per block + KL_T self-distillation ->
// Adam -> frozen encoder -> linear probe, k-means RI / NMI -> metrics.json, loss.svg, embedding.svg, test embeddings
// .npy, encoder checkpoint.
//
//   ./build/examples/dcrls --dataset GunPoint --epochs 40 --out runs/gunpoint
//   ./build/examples/dcrls --help
#include <fmt/core.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/example.hpp"
#include "distill/data/augment.hpp"
#include "distill/data/dataset.hpp"
#include "distill/data/ucr.hpp"
#include "distill/eval/evaluate.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/io/npy.hpp"
#include "distill/io/progress.hpp"
#include "distill/io/report.hpp"
#include "distill/io/svg.hpp"
#include "distill/models/dcrls.hpp"
#include "distill/optim/adam.hpp"

namespace dl = distill;
using dl::index_t;

namespace {

struct Args {
  std::string dataset = "GunPoint";
  std::string out = "runs/dcrls";
  std::string variant = "sd";
  std::string device = "cpu";
  index_t epochs = 40;
  index_t batch = 64;
  std::uint64_t seed = 0;
  int threads = 2;
  double lr = 1e-3, weight_decay = 1e-4;
  double tau = 0.2, temperature = 3.0, lambda_sd = 1.0;
  int probe_steps = 500;
  int kmeans_restarts = 10;
  bool quiet = false;
};

void usage() {
  fmt::print(
      "dcrls: DCRLS contrastive pre-training with self-distillation on a UCR dataset, then evaluation.\n\n"
      "usage: dcrls [options]\n"
      "  --dataset NAME|DIR   bundled UCR name (data/ucr) or a directory with <Name>_TRAIN.tsv / _TEST.tsv\n"
      "                       (default GunPoint; DISTILL_UCR_DIR=<archive root> resolves any archive name)\n"
      "  --variant V          ablation ladder: last (i, last-block NT-Xent), all (ii, NT-Xent on every block),\n"
      "                       sd (iii, DCRLS: all blocks + self-distillation; default), supervised (baseline)\n"
      "  --epochs N           training epochs (default 40; the paper-scale runs use 300)\n"
      "  --batch B            batch size, used as min(B, N_train) (default 64)\n"
      "  --seed S             seed of weights, augmentations, batching and evaluation (default 0)\n"
      "  --threads T          CPU threads (default 2)\n"
      "  --device cpu         device (only cpu in this build; the Cuda device is exercised by the tests)\n"
      "  --lr X --weight-decay X      Adam (default 1e-3, 1e-4)\n"
      "  --tau X --temperature X --lambda X   NT-Xent tau (0.2), self-distillation T (3) and weight (1)\n"
      "  --probe-steps N      linear-probe Adam steps (default 500)\n"
      "  --out DIR            output directory (default runs/dcrls): metrics.json, metrics.csv, loss.svg,\n"
      "                       embedding.svg (test embeddings on 2 principal components), test_z.npy / test_y.npy\n"
      "                       (+ train), encoder.ckpt\n"
      "  --quiet              no per-epoch progress lines\n");
}

Args parse(int argc, char** argv) {
  Args a;
  for (dl::examples::Options o(argc, argv, usage); o.next();) {
    if (o.is("--dataset")) a.dataset = o.value();
    else if (o.is("--out")) a.out = o.value();
    else if (o.is("--variant")) a.variant = o.value();
    else if (o.is("--device")) a.device = o.value();
    else if (o.is("--epochs")) a.epochs = o.integer();
    else if (o.is("--batch")) a.batch = o.integer();
    else if (o.is("--seed")) a.seed = o.unsigned_integer();
    else if (o.is("--threads")) a.threads = static_cast<int>(o.integer());
    else if (o.is("--lr")) a.lr = o.number();
    else if (o.is("--weight-decay")) a.weight_decay = o.number();
    else if (o.is("--tau")) a.tau = o.number();
    else if (o.is("--temperature")) a.temperature = o.number();
    else if (o.is("--lambda")) a.lambda_sd = o.number();
    else if (o.is("--probe-steps")) a.probe_steps = static_cast<int>(o.integer());
    else if (o.is("--quiet")) a.quiet = true;
    else o.unknown();
  }
  DISTILL_CHECK(a.device == "cpu", "--device ", a.device,
                ": this example is built for the Cpu device; the Cuda device path is tested by test_cuda_train");
  DISTILL_CHECK(a.epochs >= 1 && a.batch >= 2, "--epochs must be >= 1 and --batch >= 2");
  return a;
}

int run(const Args& a) {
  namespace fs = std::filesystem;
  dl::Context<dl::Cpu> ctx(a.threads, a.seed);
  const auto variant = dl::models::parse_variant(a.variant);
  const auto splits = dl::data::load_ucr(a.dataset);
  const auto& train = splits.train;
  fmt::print("dcrls: {} ({} train / {} test series, length {}, {} classes), variant {}, {} epochs, {} threads, "
             "cpu kernels {}\n",
             train.name, train.size(), splits.test.size(), train.length(), train.num_classes,
             dl::models::variant_name(variant), a.epochs, a.threads, dl::isa_name(ctx.isa()));

  dl::models::DcrlsConfig cfg{variant, a.tau, a.temperature, a.lambda_sd};
  dl::models::Dcrls<64> model(ctx, cfg, train.num_classes);
  dl::optim::Adam opt{model.trainable(), {.lr = a.lr, .weight_decay = a.weight_decay}};

  dl::data::DataLoader loader(train, {.batch_size = std::min(a.batch, train.size()), .shuffle = true, .drop_last = true},
                              ctx.make_rng(1));
  dl::CounterRng aug_rng = ctx.make_rng(2);
  const auto view1 = dl::data::AugmentConfig::dcrls_view1();
  const auto view2 = dl::data::AugmentConfig::dcrls_view2();

  std::vector<double> loss_curve, dc_curve, sd_curve;
  dl::io::ProgressMeter meter(a.epochs, "dcrls");
  const auto t0 = std::chrono::steady_clock::now();
  model.train(true);
  for (index_t epoch = 1; epoch <= a.epochs; ++epoch) {
    double sum = 0, sum_dc = 0, sum_sd = 0;
    index_t items = 0, steps = 0;
    for (const auto& batch : loader.epoch(epoch - 1)) {
      if (batch.x.extent(0) < 2) continue;  // a contrastive batch needs a negative; BN needs two series
      dl::models::DcrlsLoss<float, dl::Cpu> loss;
      if (variant == dl::models::DcrlsVariant::Supervised) {
        std::vector<int> y(batch.labels.begin(), batch.labels.end());
        auto v = dl::data::augment(batch.x, view1, aug_rng, batch.lengths);
        loss = model.supervised_loss(dl::constant(ctx, std::move(v)), y);
      } else {
        auto views = dl::data::make_two_views(batch, view1, view2, aug_rng);
        loss = model.contrastive_loss(dl::constant(ctx, std::move(views.view1)), dl::constant(ctx, std::move(views.view2)));
      }
      opt.zero_grad();
      loss.total.backward();
      opt.step();
      sum += loss.total.value()[0];
      sum_dc += loss.contrastive;
      sum_sd += loss.distillation;
      items += batch.x.extent(0);
      ++steps;
    }
    const double n = double(std::max<index_t>(1, steps));
    loss_curve.push_back(sum / n);
    dc_curve.push_back(sum_dc / n);
    sd_curve.push_back(sum_sd / n);
    const std::string line = meter.tick(epoch, sum / n, items);
    if (!a.quiet && (epoch == 1 || epoch == a.epochs || epoch % std::max<index_t>(1, a.epochs / 10) == 0))
      fmt::print("{}\n", line);
  }
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Frozen encoder -> evaluation on the test split.
  model.train(false);
  fs::create_directories(a.out);
  const std::string dir = a.out + "/";
  dl::io::Record tags;
  tags.set("method", "dcrls").set("variant", dl::models::variant_name(variant)).set("seed", double(a.seed))
      .set("epochs", double(a.epochs)).set("train_seconds", train_s).set("final_loss", loss_curve.back())
      .set("cpu_isa", dl::isa_name(ctx.isa()));
  // The encoder is the embedding (evaluate_splits runs it in eval mode).
  const auto e0 = std::chrono::steady_clock::now();
  auto r = dl::examples::evaluate_run(ctx, splits, model.encoder, dir, a.probe_steps, a.kmeans_restarts, a.seed, tags);
  double sup_acc = -1;
  if (variant == dl::models::DcrlsVariant::Supervised) {
    dl::NoGradGuard ng(ctx);
    auto logits = model.classify(dl::constant(ctx, splits.test.x.clone())).value();
    index_t correct = 0;
    for (index_t i = 0; i < logits.extent(0); ++i) {
      index_t best = 0;
      for (index_t k = 1; k < logits.extent(1); ++k)
        if (logits(i, k) > logits(i, best)) best = k;
      correct += best == splits.test.labels[i];
    }
    sup_acc = double(correct) / double(logits.extent(0));
    tags.set("supervised_acc", sup_acc);
    dl::io::write_json(dir + "metrics.json", r.record(tags));
  }

  const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
  dl::save_checkpoint(dir + "encoder.ckpt", model.encoder);
  dl::io::write_loss_svg(dir + "loss.svg", {{"total", loss_curve, {}}, {"L_DC", dc_curve, {}}, {"L_SD", sd_curve, {}}});
  fmt::print("trained {} epochs in {:.1f} s; evaluation {:.1f} s\n", a.epochs, train_s, eval_s);
  if (sup_acc >= 0) fmt::print("supervised classifier acc {:.3f}\n", sup_acc);
  fmt::print("linear probe acc {:.3f}   k-means RI {:.3f}  NMI {:.3f}   -> {}{{metrics.json, loss.svg, embedding.svg, "
             "test_z.npy, encoder.ckpt}}\n",
             r.probe_accuracy, r.kmeans_ri, r.kmeans_nmi, dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dl::examples::guarded_main("dcrls", [&] { return run(parse(argc, argv)); });
}
