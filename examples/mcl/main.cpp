// examples/mcl -- MCL and L-MCL (mutual contrastive learning in a cohort) on a UCR dataset, end to end:
// load -> a cohort of ResNet1D networks (1 = independent training, 2, or 4 with a shared stem) -> CE per network +
// the MCL terms (or L-MCL: exits, aggregator, logit KD, meta-learned pair weights) -> test accuracy of every
// network and of the ensemble of summed logits -> metrics.json / metrics.csv, loss.svg, test logits .npy,
// cohort checkpoint.
//
//   ./build/examples/mcl --dataset GunPoint --cohort 2 --epochs 40 --out runs/mcl
//   ./build/examples/mcl --dataset Beef --data-root /path/to/UCRArchive_2018 --cohort 2 --layerwise
//   ./build/examples/mcl --dataset GunPoint --cohort 2 --device cuda --out runs/mcl-gpu   # MCL on a GPU
//   ./build/examples/mcl --help
#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <omp.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/device.hpp"
#include "common/example.hpp"
#include "distill/data/augment.hpp"
#include "distill/data/dataset.hpp"
#include "distill/data/staging.hpp"
#include "distill/data/ucr.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/io/npy.hpp"
#include "distill/io/progress.hpp"
#include "distill/io/report.hpp"
#include "distill/io/svg.hpp"
#include "distill/io/train_state.hpp"
#include "distill/eval/evaluate.hpp"
#include "distill/models/mcl.hpp"
#include "distill/models/moco_mcl.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/schedule.hpp"
#include "distill/optim/sgd.hpp"

namespace dl = distill;
using dl::index_t;

namespace {

struct Args {
  dl::examples::RunOptions run;  // --out, --resume, --checkpoint-every/-unit, --quiet
  std::string dataset = "GunPoint";
  std::string data_root;
  std::string device = "cpu";
  std::string optim = "adam";
  std::string sampler = "random";
  int cohort = 2;
  std::vector<int> widths;  // per network; default: --width for all
  int width = 32;
  bool layerwise = false, logit_distill = false, augment = true, self_supervised = false;
  index_t epochs = 40;
  index_t batch = 64;
  std::uint64_t seed = 0;
  int threads = 2;
  double lr = -1, weight_decay = -1;
  dl::losses::MclWeights w{};
  bool tau_set = false;
  int meta_freq = 50;
  double meta_lr = 0.1;
  index_t queue = 0;
  double momentum = 0.99;
};

Args parse(int argc, char** argv) {
  using dl::examples::integer_in;
  using dl::examples::real_in;
  Args a;
  CLI::App app{"MCL / L-MCL (mutual contrastive learning of a cohort of ResNet1D networks) on a UCR dataset.\n"
               "Writes to --out: metrics.json, metrics.csv, loss.svg, test_logits_net<i>.npy, test_y.npy, cohort.ckpt\n"
               "(--self-supervised: metrics.json, net<i>_ embeddings .npy, embedding.svg).\n"
               "Exit codes: 0 done, 1 error, 2 bad command line, 3 training diverged.",
               "mcl"};
  app.option_defaults()->always_capture_default();
  app.add_option("--dataset", a.dataset,
                 "bundled UCR name (data/ucr), an archive name under --data-root (or DISTILL_UCR_DIR), or a directory "
                 "with <Name>_TRAIN.tsv / _TEST.tsv");
  app.add_option("--data-root", a.data_root, "UCR archive root searched first for a bare --dataset name");
  app.add_option("--cohort", a.cohort,
                 "1 (independent training: CE only, the baseline), 2 or 4 (4: stem + first block shared, later "
                 "blocks branch four ways)")
      ->check(CLI::IsMember({1, 2, 4}));
  app.add_option("--width", a.width, "ResNet1D width of every network")->check(CLI::IsMember({16, 32, 64}));
  app.add_option("--widths", a.widths, "per-network widths, comma-separated (heterogeneous cohort; not with --cohort 4)")
      ->delimiter(',')
      ->check(CLI::IsMember({16, 32, 64}));
  app.add_flag("--layerwise", a.layerwise, "L-MCL: 3 exits per network, aggregator, logit KD, meta-learned pair weights");
  app.add_flag("--logit-distill", a.logit_distill, "MCL: add KL_T(logits_a || mean of the cohort's logits) per network");
  app.add_option("--tau", a.w.tau, "contrastive temperature (0.1 with --layerwise unless given)")
      ->check(dl::examples::temperature())
      ->each([&a](const std::string&) { a.tau_set = true; });
  app.add_option("--temperature", a.w.temperature, "KL temperature T of the soft terms and the logit KD")
      ->check(dl::examples::temperature());
  app.add_option("--alpha", a.w.alpha, "weight of VCL")->check(real_in(0, 1e6));
  app.add_option("--beta", a.w.beta, "weight of ICL")->check(real_in(0, 1e6));
  app.add_option("--gamma", a.w.gamma, "weight of soft VCL")->check(real_in(0, 1e6));
  app.add_option("--lambda", a.w.lambda, "weight of soft ICL")->check(real_in(0, 1e6));
  app.add_option("--meta-freq", a.meta_freq, "L-MCL: meta step every N iterations")->check(integer_in<int>(1, 1'000'000));
  app.add_option("--meta-lr", a.meta_lr, "L-MCL: virtual-step rate and the weight network's SGD rate")
      ->check(real_in(0, 10, true));
  app.add_option("--epochs", a.epochs, "training epochs")->check(integer_in<index_t>(1, 1'000'000));
  app.add_option("--batch", a.batch, "batch size, used as min(B, N_train)")->check(integer_in<index_t>(2, 1'000'000));
  app.add_option("--sampler", a.sampler,
                 "random (anchors without a positive are skipped) or balanced (m-per-class batches, m = B / #classes)")
      ->check(CLI::IsMember({"random", "balanced"}));
  app.add_option("--optim", a.optim, "adam (lr 1e-3, wd 1e-4) or sgd (Nesterov 0.9, lr 0.1, wd 5e-4); cosine lr")
      ->check(CLI::IsMember({"adam", "sgd"}));
  app.add_option("--lr", a.lr, "learning rate (-1: the optimizer's default)")->check(real_in(-1, 10));
  app.add_option("--weight-decay", a.weight_decay, "weight decay (-1: the optimizer's default)")->check(real_in(-1, 10));
  app.add_flag("--no-augment", [&a](std::int64_t) { a.augment = false; }, "no jitter + scaling of the training batches");
  app.add_option("--seed", a.seed, "seed of weights, augmentations, batching and evaluation")
      ->check(integer_in<std::uint64_t>(0, std::numeric_limits<std::uint64_t>::max()));
  app.add_option("--threads", a.threads, "CPU threads (more than the machine's cores: clamped, with a warning)")
      ->check(integer_in<int>(1, 4096));
  dl::examples::add_device_option(app, a.device);
  dl::examples::add_run_options(app, a.run, "runs/mcl", "dataset, cohort or setting");
  app.add_flag("--self-supervised", a.self_supervised,
               "MoCo + MCL (no labels): a momentum encoder and a queue per network, two views (jitter + scaling / "
               "permutation + jitter); evaluation: linear probe per network");
  app.add_option("--queue", a.queue, "MoCo queue size (0: min(1024, N_train rounded to batches))")
      ->check(integer_in<index_t>(0, 1'000'000));
  app.add_option("--momentum", a.momentum, "MoCo key-encoder EMA")->check(real_in(0, 1));
  dl::examples::parse_or_exit(app, argc, argv);
  dl::examples::finish_run_options(a.run, "runs/mcl");
  a.threads = dl::examples::clamp_threads("mcl", a.threads);
  DISTILL_CHECK(!a.self_supervised || (a.cohort == 2 && !a.layerwise && !a.logit_distill),
                "--self-supervised runs MoCo + MCL with --cohort 2 (no --layerwise / --logit-distill)");
  if (a.widths.empty()) a.widths.assign(static_cast<std::size_t>(a.cohort), a.width);
  DISTILL_CHECK(static_cast<int>(a.widths.size()) == a.cohort, "--widths lists ", a.widths.size(),
                " widths for --cohort ", a.cohort);
  if (a.cohort == 4)
    for (int w : a.widths)
      DISTILL_CHECK(w == a.widths[0], "--cohort 4 shares the stem, so every width must be equal (--widths)");
  DISTILL_CHECK(!a.layerwise || a.cohort >= 2, "--layerwise needs --cohort 2 or 4");
  if (a.layerwise && !a.tau_set) a.w.tau = 0.1;
  if (a.lr < 0) a.lr = a.optim == "adam" ? 1e-3 : 0.1;
  if (a.weight_decay < 0) a.weight_decay = a.optim == "adam" ? 1e-4 : 5e-4;
  return a;
}

template <class Cohort, class D>
void add_network(Cohort& c, dl::Context<D>& ctx, int width, index_t classes) {
  switch (width) {
    case 16: c.template add_network<16>(ctx, classes); break;
    case 32: c.template add_network<32>(ctx, classes); break;
    default: c.template add_network<64>(ctx, classes); break;
  }
}

/// MoCo + MCL (no labels), then a linear probe on every network's frozen final feature.
int run_self_supervised(const Args& a, dl::Context<dl::Cpu>& ctx, const dl::data::UcrSplits& splits) {
  namespace fs = std::filesystem;
  const auto& train = splits.train;
  dl::models::MclConfig cfg;
  dl::models::Cohort<float> query{cfg}, key{cfg};
  for (int w : a.widths) {
    add_network(query, ctx, w, train.num_classes);
    add_network(key, ctx, w, train.num_classes);
  }
  const index_t B = std::min(a.batch, train.size());
  const index_t K = a.queue > 0 ? a.queue : std::min<index_t>(1024, std::max<index_t>(B, train.size() / B * B));
  dl::models::MocoMcl<float> moco{query, key,
                                   {.queue = K, .tau = a.w.tau, .temperature = a.w.temperature, .momentum = a.momentum},
                                   ctx.make_rng(3)};
  // Only the query networks' blocks and Embed heads receive gradients (the classifiers stay unused).
  dl::examples::ChosenOptimizer<float, dl::Cpu> opt(a.optim, query.trainable(), a.lr, a.weight_decay);
  const dl::optim::Cosine schedule{a.lr, a.epochs};
  dl::data::DataLoader loader(train, {.batch_size = B, .shuffle = true, .drop_last = true}, ctx.make_rng(1));
  dl::CounterRng aug_rng = ctx.make_rng(2);
  const auto v1 = dl::data::AugmentConfig::dcrls_view1();
  const auto v2 = dl::data::AugmentConfig::dcrls_view2();
  std::vector<double> loss_curve, vcl_curve, icl_curve, soft_curve;
  dl::examples::LoopPosition pos;
  double sum = 0, sv = 0, si = 0, ss = 0;

  // The training state: both cohorts (query and momentum keys), every queue, the optimizer, streams and position.
  dl::io::TrainState state(a.run.out);
  using Match = dl::io::TrainState::Match;
  state.config("program", "mcl").config("method", "moco_mcl").config("dataset", train.name)
      .config("train_file", dl::io::file_fingerprint(dl::data::resolve_ucr(a.dataset, a.data_root).train_path()))
      .config("cohort", a.cohort).config("widths", fmt::format("{}", fmt::join(a.widths, ",")))
      .config("epochs", a.epochs).config("batch", a.batch).config("seed", a.seed).config("optim", a.optim)
      .config("lr", a.lr).config("weight_decay", a.weight_decay).config("tau", a.w.tau)
      .config("temperature", a.w.temperature).config("queue", K).config("momentum", a.momentum)
      .config("threads", a.threads, Match::Warn);
  state.add_part("query", [&query](dl::io::Checkpoint& ck) { query.put(ck, "query"); },
                 [&query](const dl::io::Checkpoint& ck) { query.load(ck, "query"); })
      .add_part("key", [&key](dl::io::Checkpoint& ck) { key.put(ck, "key"); },
                [&key](const dl::io::Checkpoint& ck) { key.load(ck, "key"); })
      .add_rng("rng.init", ctx.rng()).add_rng("rng.aug", aug_rng)
      .add_value("epoch.loss", sum)
      .add_value("epoch.vcl", sv).add_value("epoch.icl", si).add_value("epoch.soft", ss)
      .add_series("curve.loss", loss_curve).add_series("curve.vcl", vcl_curve).add_series("curve.icl", icl_curve)
      .add_series("curve.soft", soft_curve);
  for (std::size_t m = 0; m < query.size(); ++m) state.add_queue(fmt::format("queue{}", m), moco.queue(m));
  opt.register_in(state);
  dl::examples::register_loop(state, loader, pos);
  if (!a.run.resume.empty()) {
    state.restore();
    for (const auto& w : state.warnings()) fmt::print(stderr, "mcl: warning: {}\n", w);
    fmt::print("mcl: resumed from {} at epoch {}, step {}\n", state.file().string(), pos.epoch + 1,
               pos.step + 1);
  }
  dl::io::ProgressMeter meter(a.epochs, "mcl-moco");
  const auto t0 = std::chrono::steady_clock::now();
  query.train(true);
  key.train(true);
  auto train_step = [&](dl::data::Batch& batch, const dl::optim::TrainPosition& at, std::int64_t global) {
    if (batch.x.extent(0) < 2) return false;
    auto views = dl::data::make_two_views(batch, v1, v2, aug_rng);
    if (global == a.run.inject_nan_at) views.view1.data()[0] = std::numeric_limits<float>::quiet_NaN();
    auto l = moco.loss(dl::constant(ctx, std::move(views.view1)), dl::constant(ctx, std::move(views.view2)));
    const double total = dl::optim::checked_step(*opt, l.total, at);
    moco.update();
    sum += total;
    sv += l.vcl;
    si += l.icl;
    ss += l.soft_vcl + l.soft_icl;
    return true;
  };
  auto close_epoch = [&](double n) {
    const double mean = sum / n;
    loss_curve.push_back(mean);
    vcl_curve.push_back(sv / n);
    icl_curve.push_back(si / n);
    soft_curve.push_back(ss / n);
    sum = sv = si = ss = 0;
    return mean;
  };
  dl::examples::run_epochs(loader, a.epochs, pos, a.run, &state, meter,
                           [&](std::int64_t epoch) { dl::optim::apply(*opt, schedule, epoch); }, train_step,
                           close_epoch);
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fs::create_directories(a.run.out);
  const std::string dir = a.run.out + "/";
  query.train(false);
  dl::io::Record rec;
  rec.set("method", "moco_mcl").set("cpu_isa", dl::isa_name(ctx.isa())).set("device", dl::examples::describe_device(ctx))
      .set("device_kind", "cpu").set("dataset", train.name).set("cohort", a.cohort).set("seed", double(a.seed))
      .set("epochs", double(a.epochs)).set("widths", fmt::format("{}", fmt::join(a.widths, ",")))
      .set("queue", double(K)).set("momentum", a.momentum).set("tau", a.w.tau).set("temperature", a.w.temperature)
      .set("train_seconds", train_s).set("final_loss", loss_curve.back());
  dl::eval::EvalOptions eo;
  eo.seed = a.seed;
  double mean = 0;
  for (std::size_t m = 0; m < query.size(); ++m) {
    auto embed = [&](const dl::Tensor<float, 3, dl::Cpu>& x) {
      return query.forward(dl::constant(ctx, x.clone()), false)[m].final().feature;
    };
    const auto r = dl::eval::evaluate_splits(ctx, splits, embed, eo,
                                             {.metrics_json = "", .metrics_csv = "",
                                              .embeddings_prefix = dir + fmt::format("net{}_", m),
                                              .embedding_svg = m == 0 ? dir + "embedding.svg" : ""});
    rec.set(fmt::format("probe_acc_net{}", m), r.probe_accuracy)
        .set(fmt::format("kmeans_nmi_net{}", m), r.kmeans_nmi);
    mean += r.probe_accuracy / double(query.size());
  }
  rec.set("probe_acc_mean", mean);
  dl::io::write_json(dir + "metrics.json", {rec});
  dl::io::write_csv(dir + "metrics.csv", {rec});
  {
    dl::io::Checkpoint ck;
    query.put(ck);
    ck.save(dir + "cohort.ckpt");
  }
  dl::io::write_loss_svg(dir + "loss.svg", {{"total", loss_curve, {}}, {"VCL (InfoNCE)", vcl_curve, {}},
                                            {"ICL", icl_curve, {}}, {"soft VCL + ICL", soft_curve, {}}});
  fmt::print("trained {} epochs in {:.1f} s; linear probe acc: net0 {:.3f} net1 {:.3f} mean {:.3f} -> {}\n", a.epochs,
             train_s, rec.number("probe_acc_net0"), rec.number("probe_acc_net1"), mean, dir);
  return 0;
}

/// The run on device D. The self-supervised mode and L-MCL need the column ops of ops/columns.hpp (concat1,
/// mix_columns, sigmoid_cosine), which have no CUDA kernels yet: on the Cuda device only independent training and
/// MCL run, and the others are refused before any data is read.
template <class D>
int run(const Args& a) {
  namespace fs = std::filesystem;
  constexpr bool on_cuda = !std::is_same_v<D, dl::Cpu>;
  DISTILL_CHECK(!(on_cuda && (a.self_supervised || a.layerwise)), "--device ", a.device, ": ",
                a.self_supervised ? "--self-supervised" : "--layerwise (L-MCL)",
                " runs on the Cpu device only (its column ops, ops/columns.hpp, have no CUDA kernels yet); "
                "independent training and MCL run on both devices");
  // OpenMP's default team size follows --threads: Eigen's small GEMMs called outside distill's own parallel
  // regions (cpu::gemm's single-panel path) would otherwise start omp_get_max_threads() threads.
  omp_set_num_threads(a.threads);
  dl::examples::prepare_output_dir("--out", a.run.out);  // before any work: a bad --out fails now, not after training
  for (const char* stale : {"metrics.json", "metrics.csv"})  // never left from an earlier or failed run
    std::filesystem::remove(std::filesystem::path(a.run.out) / stale);
  dl::examples::RunContexts<D> contexts(a.threads, a.seed, a.device);  // no GPU / device N absent: fails here
  auto& ctx = contexts.device;
  dl::data::UcrOptions uo;
  uo.root = a.data_root;
  const auto splits = dl::data::load_ucr(a.dataset, uo);  // TEST length and labels checked against TRAIN
  const auto& train = splits.train;
  dl::data::require_trainable(train, "mcl");
  const bool mutual = a.cohort >= 2;
  const std::string method = a.self_supervised ? "moco_mcl" : !mutual ? "independent" : a.layerwise ? "lmcl" : "mcl";
  const std::string device = dl::examples::describe_device(ctx);
  fmt::print("mcl: {} ({} train / {} test series, length {}, {} classes), {} x{} (widths {}), {} epochs, {} threads, "
             "device {}\n",
             train.name, train.size(), splits.test.size(), train.length(), train.num_classes, method, a.cohort,
             fmt::format("{}", a.widths[0]) + (a.widths.size() > 1 ? fmt::format("..{}", a.widths.back()) : ""),
             a.epochs, a.threads, device);
  if constexpr (!on_cuda) {
    if (a.self_supervised) return run_self_supervised(a, ctx, splits);
  }

  dl::models::MclConfig cfg;
  cfg.weights = a.w;
  cfg.layerwise = a.layerwise;
  cfg.shared_stem = a.cohort == 4;
  cfg.logit_distill = a.logit_distill;
  cfg.kd_temperature = a.w.temperature;
  dl::models::Cohort<float, D> cohort{cfg};
  for (int w : a.widths) add_network(cohort, ctx, w, train.num_classes);

  // The optimizer of theta (networks, heads, aggregators).
  dl::examples::ChosenOptimizer<float, D> opt(a.optim, cohort.trainable(), a.lr, a.weight_decay);
  // The weight network's own optimizer (L-MCL): SGD Nesterov, as in the reference.
  std::unique_ptr<dl::optim::SGD<float, D>> meta_opt;
  if (a.layerwise)
    meta_opt = std::make_unique<dl::optim::SGD<float, D>>(
        cohort.weight_params(), dl::optim::SgdOptions{.lr = a.meta_lr, .momentum = 0.9, .weight_decay = 5e-4,
                                                      .nesterov = true});
  const dl::optim::Cosine schedule{a.lr, a.epochs};

  const index_t B = std::min(a.batch, train.size());
  dl::data::LoaderOptions lo{.batch_size = B, .shuffle = true, .drop_last = true};
  if (a.sampler == "balanced") lo.m_per_class = std::max<index_t>(1, B / train.num_classes);
  if (lo.m_per_class > 0) lo.batch_size = lo.m_per_class * std::min<index_t>(train.num_classes, B / lo.m_per_class);
  dl::data::DataLoader loader(train, lo, ctx.make_rng(1));
  dl::CounterRng aug_rng = ctx.make_rng(2);
  const auto view = dl::data::AugmentConfig::dcrls_view1();
  dl::data::BatchStager<D> stage(ctx);

  std::vector<double> loss_curve, ce_curve, mcl_curve, kd_curve;
  const auto pair_names = a.layerwise ? cohort.pair_names() : std::vector<std::string>{};
  std::vector<double> pair_sum(pair_names.size(), 0.0);  // after the last epoch: its mean pair weights
  double meta_vnorm = 0;
  std::int64_t meta_steps = 0, iteration = 0;
  dl::examples::LoopPosition pos;
  double sum = 0, sum_ce = 0, sum_mcl = 0, sum_kd = 0;

  // The training state: everything the loop depends on, for --checkpoint-every and --resume.
  dl::io::TrainState state(a.run.out);
  using Match = dl::io::TrainState::Match;
  state.config("program", "mcl").config("method", method).config("dataset", train.name)
      .config("train_file", dl::io::file_fingerprint(dl::data::resolve_ucr(a.dataset, a.data_root).train_path()))
      .config("cohort", a.cohort).config("widths", fmt::format("{}", fmt::join(a.widths, ",")))
      .config("logit_distill", a.logit_distill).config("augment", a.augment).config("epochs", a.epochs)
      .config("batch", a.batch).config("sampler", a.sampler).config("seed", a.seed).config("optim", a.optim)
      .config("lr", a.lr).config("weight_decay", a.weight_decay).config("tau", a.w.tau)
      .config("temperature", a.w.temperature).config("alpha", a.w.alpha).config("beta", a.w.beta)
      .config("gamma", a.w.gamma).config("lambda", a.w.lambda).config("meta_freq", a.meta_freq)
      .config("meta_lr", a.meta_lr).config("threads", a.threads, Match::Warn).config("device", a.device, Match::Warn);
  state.add_part("cohort", [&cohort](dl::io::Checkpoint& ck) { cohort.put(ck, "cohort"); },
                 [&cohort](const dl::io::Checkpoint& ck) { cohort.load(ck, "cohort"); })
      .add_rng("rng.init", ctx.rng()).add_rng("rng.aug", aug_rng)
      .add_value("iteration", iteration).add_value("meta.steps", meta_steps).add_value("meta.v_norm", meta_vnorm)
      .add_value("epoch.loss", sum)
      .add_value("epoch.ce", sum_ce).add_value("epoch.mcl", sum_mcl).add_value("epoch.kd", sum_kd)
      .add_series("epoch.pair_sum", pair_sum).add_series("curve.loss", loss_curve).add_series("curve.ce", ce_curve)
      .add_series("curve.mcl", mcl_curve).add_series("curve.kd", kd_curve);
  opt.register_in(state);
  if (meta_opt) state.add_optimizer("meta_sgd", *meta_opt);
  dl::examples::register_loop(state, loader, pos);
  if (!a.run.resume.empty()) {
    state.restore();
    for (const auto& w : state.warnings()) fmt::print(stderr, "mcl: warning: {}\n", w);
    fmt::print("mcl: resumed from {} at epoch {}, step {}\n", state.file().string(), pos.epoch + 1,
               pos.step + 1);
  }
  dl::io::ProgressMeter meter(a.epochs, "mcl");
  const auto t0 = std::chrono::steady_clock::now();
  cohort.train(true);
  auto train_step = [&](dl::data::Batch& batch, const dl::optim::TrainPosition& at, std::int64_t global) {
    if (batch.x.extent(0) < 2) return false;  // BN needs two series
    std::vector<int> y(batch.labels.begin(), batch.labels.end());
    auto xs = a.augment ? dl::data::augment(batch.x, view, aug_rng, batch.lengths) : batch.x.clone();
    if (global == a.run.inject_nan_at) xs.data()[0] = std::numeric_limits<float>::quiet_NaN();
    auto x = dl::constant(ctx, stage(std::move(xs)));
    auto loss = cohort.loss(x, y);
    dl::optim::require_finite(loss.ce, "CE", at);
    const double total = dl::optim::checked_step(*opt, loss.total, at);
    ++iteration;
    if constexpr (!on_cuda) {  // L-MCL: Cpu only (refused above on Cuda)
      if (a.layerwise && iteration % a.meta_freq == 0) {
        const auto r = cohort.meta_step(x, y, a.meta_lr);
        meta_opt->step();
        dl::optim::require_finite_values(meta_opt->params(), at);
        meta_vnorm = r.v_norm;
        ++meta_steps;
      }
    }
    sum += total;
    sum_ce += loss.ce;
    sum_mcl += a.w.alpha * loss.vcl + a.w.beta * loss.icl + a.w.gamma * loss.soft_vcl + a.w.lambda * loss.soft_icl;
    sum_kd += loss.kd;
    for (std::size_t p = 0; p < pair_sum.size(); ++p) pair_sum[p] += loss.pair_weights[p];
    return true;
  };
  auto close_epoch = [&](double n) {
    const double mean = sum / n;
    loss_curve.push_back(mean);
    ce_curve.push_back(sum_ce / n);
    mcl_curve.push_back(sum_mcl / n);
    kd_curve.push_back(sum_kd / n);
    if (pos.epoch + 1 < a.epochs) std::fill(pair_sum.begin(), pair_sum.end(), 0.0);
    else for (double& w : pair_sum) w /= n;  // the last epoch's mean pair weights (reported below)
    sum = sum_ce = sum_mcl = sum_kd = 0;
    return mean;
  };
  dl::examples::run_epochs(loader, a.epochs, pos, a.run, &state, meter,
                           [&](std::int64_t epoch) { dl::optim::apply(*opt, schedule, epoch); }, train_step,
                           close_epoch);
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Test accuracy of every network and of the ensemble.
  fs::create_directories(a.run.out);
  const std::string dir = a.run.out + "/";
  const auto acc = cohort.accuracy(ctx, splits.test.x, splits.test.labels);
  const auto logits = cohort.predict(ctx, splits.test.x);
  dl::io::Record rec;
  rec.set("method", method).set("cpu_isa", dl::isa_name(contexts.host().isa())).set("device", device)
      .set("device_kind", dl::examples::device_kind(ctx)).set("dataset", train.name).set("cohort", a.cohort).set("seed", double(a.seed))
      .set("epochs", double(a.epochs)).set("widths", fmt::format("{}", fmt::join(a.widths, ",")))
      .set("optim", a.optim).set("lr", a.lr).set("tau", a.w.tau).set("temperature", a.w.temperature)
      .set("alpha", a.w.alpha).set("beta", a.w.beta).set("gamma", a.w.gamma).set("lambda", a.w.lambda)
      .set("batch", double(B)).set("train_seconds", train_s).set("final_loss", loss_curve.back())
      .set("final_ce", ce_curve.back()).set("final_mcl", mcl_curve.back()).set("final_kd", kd_curve.back());
  for (std::size_t m = 0; m < acc.network.size(); ++m) rec.set(fmt::format("acc_net{}", m), acc.network[m]);
  rec.set("acc_mean", acc.mean()).set("acc_ensemble", acc.ensemble);
  if (a.layerwise) {
    rec.set("meta_freq", double(a.meta_freq)).set("meta_lr", a.meta_lr).set("meta_steps", double(meta_steps))
        .set("meta_last_v_norm", meta_vnorm)
        .set("meta_gradient", "finite-difference approximation (one virtual SGD step, DARTS-style Hessian-vector "
                              "product) of the reference's unrolled second-order gradient");
    for (std::size_t p = 0; p < pair_names.size(); ++p) rec.set("w_" + pair_names[p], pair_sum[p]);
  }
  dl::io::write_json(dir + "metrics.json", {rec});
  dl::io::write_csv(dir + "metrics.csv", {rec});
  for (std::size_t m = 0; m < logits.size(); ++m)
    dl::io::write_npy(dir + fmt::format("test_logits_net{}.npy", m), logits[m].data(),
                      {logits[m].extent(0), logits[m].extent(1)});
  dl::io::write_npy(dir + "test_y.npy", splits.test.labels.data(), {index_t(splits.test.labels.size())});
  {
    dl::io::Checkpoint ck;
    cohort.put(ck);
    ck.save(dir + "cohort.ckpt");
  }
  std::vector<dl::io::CurveSeries> curves{{"total", loss_curve, {}}, {"CE", ce_curve, {}}};
  if (mutual) curves.push_back({a.layerwise ? "L_MCL (weighted)" : "MCL terms", mcl_curve, {}});
  if (a.layerwise || a.logit_distill) curves.push_back({"logit KD", kd_curve, {}});
  dl::io::write_loss_svg(dir + "loss.svg", curves);

  fmt::print("trained {} epochs in {:.1f} s{}\n", a.epochs, train_s,
             a.layerwise ? fmt::format(" ({} meta steps, finite-difference approximation)", meta_steps) : "");
  std::string nets;
  for (std::size_t m = 0; m < acc.network.size(); ++m) nets += fmt::format(" net{} {:.3f}", m, acc.network[m]);
  fmt::print("test accuracy:{}   mean {:.3f}   ensemble {:.3f}   -> {}{{metrics.json, loss.svg, cohort.ckpt}}\n", nets,
             acc.mean(), acc.ensemble, dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dl::examples::ranks_main("mcl", argc, argv, [&](const dl::dist::World& world) {
    dl::examples::require_single_rank(world, "mcl");
    const Args a = parse(argc, argv);
    return dl::examples::with_device(a.device, [&]<class D>() { return run<D>(a); });
  });
}
