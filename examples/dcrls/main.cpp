// examples/dcrls -- DCRLS (deep contrastive learning with self-distillation) on a UCR dataset, end to end:
// load -> two augmented views -> ResNet1D(64) + per-block heads -> NT-Xent per block + KL_T self-distillation ->
// Adam -> frozen encoder -> linear probe, k-means RI / NMI -> metrics.json, loss.svg, embedding.svg, test embeddings
// .npy, encoder checkpoint. The full training state is checkpointed (--checkpoint-every) and a killed run continues
// with --resume, ending bitwise identical to an uninterrupted one (docs/reliability.md).
//
//   ./build/examples/dcrls --dataset GunPoint --epochs 40 --out runs/gunpoint
//   ./build/examples/dcrls --resume runs/gunpoint          # after a kill: continue where the state was saved
//   ./build/examples/dcrls --dataset GunPoint --device cuda --out runs/gunpoint-gpu   # the same run on a GPU
//   mpirun -np 2 ./build/examples/dcrls --dataset GunPoint --threads 1 --sync-bn --out runs/gp-2ranks
//                                                          # data-parallel ranks (docs/distributed.md)
//   ./build/examples/dcrls --help
#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "common/example.hpp"
#include "common/cli.hpp"
#include "common/device.hpp"
#include "distill/data/augment.hpp"
#include "distill/data/dataset.hpp"
#include "distill/data/staging.hpp"
#include "distill/data/ucr.hpp"
#include "distill/dist/data_parallel.hpp"
#include "distill/dist/gather.hpp"
#include "distill/eval/evaluate.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/io/npy.hpp"
#include "distill/io/progress.hpp"
#include "distill/io/report.hpp"
#include "distill/io/svg.hpp"
#include "distill/io/train_state.hpp"
#include "distill/models/dcrls.hpp"
#include "distill/optim/divergence.hpp"

namespace dl = distill;
using dl::index_t;

namespace {

struct Args {
  dl::examples::RunOptions run;  // --out, --resume, --checkpoint-every/-unit, --quiet
  std::string dataset = "GunPoint";
  std::string variant = "sd";
  std::string device = "cpu";
  std::string optim = "adam";
  std::int64_t epochs = 40;
  std::int64_t batch = 64;
  std::uint64_t seed = 0;
  int threads = 2;
  double lr = 1e-3, weight_decay = 1e-4;
  double tau = 0.2, temperature = 3.0, lambda_sd = 1.0;
  int probe_steps = 500;
  int kmeans_restarts = 10;
  bool sync_bn = false;
};

Args parse(int argc, char** argv) {
  using dl::examples::integer_in;
  using dl::examples::real_in;
  Args a;
  CLI::App app{"DCRLS contrastive pre-training with self-distillation on a UCR dataset, then evaluation.\n"
               "Writes to --out: metrics.json, metrics.csv, loss.svg, embedding.svg, test_z.npy, test_y.npy, train_z.npy,\n"
               "train_y.npy, encoder.ckpt, and the training state state.ckpt (+ state.prev.ckpt, the one before).\n"
               "Exit codes: 0 done, 1 error, 2 bad command line, 3 training diverged (last good state kept).",
               "dcrls"};
  app.option_defaults()->always_capture_default();
  app.add_option("--dataset", a.dataset,
                 "bundled UCR name (data/ucr) or a directory with <Name>_TRAIN.tsv / _TEST.tsv "
                 "(DISTILL_UCR_DIR=<archive root> resolves any archive name)");
  app.add_option("--variant", a.variant,
                 "ablation ladder: last (i, last-block NT-Xent), all (ii, NT-Xent on every block), sd (iii, DCRLS: "
                 "all blocks + self-distillation), supervised (baseline)")
      ->check(CLI::IsMember({"last", "all", "sd", "supervised", "sup"}));
  app.add_option("--epochs", a.epochs, "training epochs (the paper-scale runs use 300)")
      ->check(integer_in<std::int64_t>(1, 1'000'000));
  app.add_option("--batch", a.batch, "batch size, used as min(B, N_train)")->check(integer_in<std::int64_t>(2, 1'000'000));
  app.add_option("--seed", a.seed, "seed of weights, augmentations, batching and evaluation")
      ->check(integer_in<std::uint64_t>(0, std::numeric_limits<std::uint64_t>::max()));
  app.add_option("--threads", a.threads, "CPU threads (more than the machine's cores: clamped, with a warning)")
      ->check(integer_in<int>(1, 4096));
  dl::examples::add_device_option(app, a.device);
  app.add_option("--optim", a.optim, "adam, or sgd (Nesterov momentum 0.9), with --lr and --weight-decay")
      ->check(CLI::IsMember({"adam", "sgd"}));
  app.add_option("--lr", a.lr, "learning rate")->check(real_in(0, 10, true));
  app.add_option("--weight-decay", a.weight_decay, "L2 weight decay")->check(real_in(0, 10));
  app.add_option("--tau", a.tau, "NT-Xent temperature")->check(dl::examples::temperature());
  app.add_option("--temperature", a.temperature, "self-distillation temperature T")->check(dl::examples::temperature());
  app.add_option("--lambda", a.lambda_sd, "self-distillation weight")->check(real_in(0, 1e6));
  app.add_option("--probe-steps", a.probe_steps, "linear-probe Adam steps")->check(integer_in<int>(1, 10'000'000));
  app.add_flag("--sync-bn", a.sync_bn,
               "data-parallel ranks (mpirun): batch norm with the statistics of the global batch, not each rank's "
               "share (Cpu device)");
  dl::examples::add_run_options(app, a.run, "runs/dcrls", "dataset, model, variant or setting");
  dl::examples::parse_or_exit(app, argc, argv);
  dl::examples::finish_run_options(a.run, "runs/dcrls");
  a.threads = dl::examples::clamp_threads("dcrls", a.threads);
  return a;
}

/// The whole run on device D (Cpu or Cuda): the model, optimizer and losses live on D, batches are built on the
/// host and staged to D, evaluation runs on the host on embeddings copied back.
/// Data-parallel ranks (mpirun, docs/distributed.md): every rank builds the same global batch and augmentations
/// from the same seeds and trains on its rows; the losses gather the embeddings of all ranks, the gradients are
/// averaged (dist::DataParallel), rank 0 writes the outputs and evaluates.
template <class D>
int run(const Args& a, const dl::dist::World& world) {
  namespace fs = std::filesystem;
  const bool root = world.is_root();
  const std::string dir = a.run.out + "/";
  if (root) {
    dl::examples::prepare_output_dir("--out", a.run.out);  // before any work: a bad --out fails now, not after training
    for (const char* stale : {"metrics.json", "metrics.csv"}) fs::remove(dir + stale);  // never left from a failed run
  }

  dl::examples::RunContexts<D> contexts(a.threads, a.seed, a.device);  // no GPU / device N absent: fails here
  auto& ctx = contexts.device;
  auto& host = contexts.host();
  const std::string ranks = dl::examples::join_ranks(ctx, world, a.sync_bn, "dcrls");
  dl::Communicator& comm = ctx.comm();
  const auto variant = dl::models::parse_variant(a.variant);
  const auto splits = dl::data::load_ucr(a.dataset);  // TEST length and labels checked against TRAIN
  const auto& train = splits.train;
  dl::data::require_trainable(train, "dcrls");
  const std::string device = dl::examples::describe_device(ctx);
  const index_t global_batch = dl::examples::global_batch(a.batch, train.size(), comm);
  fmt::print("dcrls: {} ({} train / {} test series, length {}, {} classes), variant {}, {} epochs, {} threads, "
             "device {}{}\n",
             train.name, train.size(), splits.test.size(), train.length(), train.num_classes,
             dl::models::variant_name(variant), a.epochs, a.threads, device, ranks);

  dl::models::DcrlsConfig cfg{variant, a.tau, a.temperature, a.lambda_sd};
  dl::models::Dcrls<64, float, D> model(ctx, cfg, train.num_classes);
  auto trainable = model.trainable();
  dl::examples::ChosenOptimizer<float, D> opt(a.optim, trainable, a.lr, a.weight_decay);

  dl::data::DataLoader loader(train, {.batch_size = global_batch, .shuffle = true, .drop_last = true},
                              ctx.make_rng(1));
  dl::CounterRng aug_rng = ctx.make_rng(2);
  const auto view1 = dl::data::AugmentConfig::dcrls_view1();
  const auto view2 = dl::data::AugmentConfig::dcrls_view2();
  dl::data::BatchStager<D> stage(ctx);

  // Everything the rest of the run depends on: the training state.
  dl::examples::LoopPosition pos;
  double sum = 0, sum_dc = 0, sum_sd = 0;
  std::vector<double> loss_curve, dc_curve, sd_curve;
  dl::io::TrainState state(a.run.out);
  using Match = dl::io::TrainState::Match;
  const auto loc = dl::data::resolve_ucr(a.dataset);
  state.config("program", "dcrls").config("model", "Dcrls<64> ResNet1D(64) + 3 MLP heads")
      .config("dataset", train.name).config("train_file", dl::io::file_fingerprint(loc.train_path()))
      .config("variant", dl::models::variant_name(variant)).config("epochs", a.epochs).config("batch", a.batch)
      .config("seed", a.seed).config("optim", a.optim).config("lr", a.lr).config("weight_decay", a.weight_decay).config("tau", a.tau)
      .config("temperature", a.temperature).config("lambda", a.lambda_sd).config("threads", a.threads, Match::Warn)
      .config("device", a.device, Match::Warn).config("ranks", comm.size(), Match::Warn)
      .config("sync_bn", a.sync_bn ? 1 : 0, Match::Warn);
  state.add_module("model", model);
  opt.register_in(state);
  state.add_rng("rng.init", ctx.rng()).add_rng("rng.aug", aug_rng)
      .add_value("epoch.loss", sum).add_value("epoch.l_dc", sum_dc).add_value("epoch.l_sd", sum_sd)
      .add_series("curve.loss", loss_curve).add_series("curve.l_dc", dc_curve).add_series("curve.l_sd", sd_curve);
  dl::examples::register_loop(state, loader, pos);
  if (!a.run.resume.empty()) {
    state.restore();
    for (const auto& w : state.warnings()) fmt::print(stderr, "dcrls: warning: {}\n", w);
    fmt::print("dcrls: resumed from {} at epoch {}, step {}\n", state.file().string(), pos.epoch + 1, pos.step + 1);
  }
  dl::dist::DataParallel<float, D> dp(ctx, model, trainable);  // rank 0's model everywhere; averages gradients
  auto mine = [&](auto&& global) { return stage(dl::dist::shard_rows(global, comm)); };  // this rank's rows

  dl::io::ProgressMeter meter(a.epochs, "dcrls");
  const auto t0 = std::chrono::steady_clock::now();
  model.train(true);
  auto train_step = [&](dl::data::Batch& batch, const dl::optim::TrainPosition& at, std::int64_t global) {
    if (global == a.run.inject_nan_at) batch.x.data()[0] = std::numeric_limits<float>::quiet_NaN();
    if (batch.x.extent(0) < 2) return false;  // a contrastive batch needs a negative; BN needs two series
    dl::models::DcrlsLoss<float, D> loss;
    if (variant == dl::models::DcrlsVariant::Supervised) {
      const std::vector<int> all(batch.labels.begin(), batch.labels.end());
      const auto y = dl::dist::shard_rows(std::span<const int>(all), comm);
      auto v = dl::data::augment(batch.x, view1, aug_rng, batch.lengths);
      loss = model.supervised_loss(dl::constant(ctx, mine(std::move(v))), y);
    } else {
      auto views = dl::data::make_two_views(batch, view1, view2, aug_rng);
      loss = model.contrastive_loss(dl::constant(ctx, mine(std::move(views.view1))),
                                    dl::constant(ctx, mine(std::move(views.view2))));
    }
    dl::optim::require_finite(loss.contrastive, variant == dl::models::DcrlsVariant::Supervised ? "CE" : "L_DC", at);
    dl::optim::require_finite(loss.distillation, "L_SD", at);
    const double total = dl::optim::checked_step(*opt, loss.total, at, dp);
    sum += total;
    sum_dc += loss.contrastive;
    sum_sd += loss.distillation;
    return true;
  };
  auto close_epoch = [&](double n) {
    const double mean = sum / n;
    loss_curve.push_back(mean);
    dc_curve.push_back(sum_dc / n);
    sd_curve.push_back(sum_sd / n);
    sum = sum_dc = sum_sd = 0;
    return mean;
  };
  // Rank 0 writes the training state (every rank holds the same one); all ranks read it on --resume.
  dl::examples::run_epochs(loader, a.epochs, pos, a.run, root ? &state : nullptr, meter, [](std::int64_t) {},
                           train_step, close_epoch);
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!root) return 0;  // rank 0 evaluates and writes the outputs

  // Frozen encoder -> evaluation on the test split.
  model.train(false);
  dl::io::Record tags;
  tags.set("method", "dcrls").set("variant", dl::models::variant_name(variant)).set("seed", double(a.seed)).set("optim", a.optim)
      .set("epochs", double(a.epochs)).set("train_seconds", train_s).set("final_loss", loss_curve.back())
      .set("cpu_isa", dl::isa_name(host.isa())).set("device", device)
      .set("device_kind", dl::examples::device_kind(ctx)).set("ranks", double(comm.size()))
      .set("all_reduce_bytes_per_step", dp.calls() ? double(dp.bytes_reduced()) / double(dp.calls()) : 0.0);
  // The encoder is the embedding (evaluate_splits runs it in eval mode).
  const auto e0 = std::chrono::steady_clock::now();
  auto embed = dl::eval::on_device(ctx, [&](const dl::Var<float, 3, D>& x) { return model.encoder(x); }, model.encoder);
  auto r = dl::examples::evaluate_run(host, splits, embed, dir, a.probe_steps, a.kmeans_restarts, a.seed, tags);
  double sup_acc = -1;
  if (variant == dl::models::DcrlsVariant::Supervised) {
    dl::NoGradGuard ng(ctx);
    const auto logits = dl::to_host(ctx, model.classify(dl::constant(ctx, dl::to_device(ctx, splits.test.x))).value());
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
             "test_z.npy, encoder.ckpt, state.ckpt}}\n",
             r.probe_accuracy, r.kmeans_ri, r.kmeans_nmi, dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dl::examples::ranks_main("dcrls", argc, argv, [&](const dl::dist::World& world) {
    const Args a = parse(argc, argv);
    return dl::examples::with_device(a.device, [&]<class D>() { return run<D>(a, world); });
  });
}
