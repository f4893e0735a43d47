// examples/mcl -- MCL and L-MCL (mutual contrastive learning in a cohort) on a UCR dataset, end to end:
// load -> a cohort of ResNet1D networks (1 = independent training, 2, or 4 with a shared stem) -> CE per network +
// the MCL terms (or L-MCL: exits, aggregator, logit KD, meta-learned pair weights) -> test accuracy of every
// network and of the ensemble of summed logits -> metrics.json / metrics.csv, loss.svg, test logits .npy,
// cohort checkpoint.
//
//   ./build/examples/mcl --dataset GunPoint --cohort 2 --epochs 40 --out runs/mcl
//   ./build/examples/mcl --dataset Beef --data-root /path/to/UCRArchive_2018 --cohort 2 --layerwise
//   ./build/examples/mcl --help
#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "distill/data/augment.hpp"
#include "distill/data/dataset.hpp"
#include "distill/data/ucr.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/io/npy.hpp"
#include "distill/io/progress.hpp"
#include "distill/io/report.hpp"
#include "distill/io/svg.hpp"
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
  std::string dataset = "GunPoint";
  std::string data_root;
  std::string out = "runs/mcl";
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
  bool quiet = false;
  index_t queue = 0;
  double momentum = 0.99;
};

void usage() {
  fmt::print(
      "mcl: MCL / L-MCL (mutual contrastive learning of a cohort of ResNet1D networks) on a UCR dataset.\n\n"
      "usage: mcl [options]\n"
      "  --dataset NAME|DIR   bundled UCR name (data/ucr), an archive name under --data-root (or DISTILL_UCR_DIR),\n"
      "                       or a directory with <Name>_TRAIN.tsv / _TEST.tsv (default GunPoint)\n"
      "  --data-root DIR      UCR archive root searched first for a bare --dataset name\n"
      "  --cohort M           1 (independent training: CE only, the baseline), 2 or 4 (4: stem + first block\n"
      "                       shared, later blocks branch four ways) (default 2)\n"
      "  --width W            ResNet1D width of every network: 16, 32 or 64 (default 32)\n"
      "  --widths A,B[,..]    per-network widths (heterogeneous cohort; not with --cohort 4)\n"
      "  --layerwise          L-MCL: 3 exits per network, aggregator, logit KD, meta-learned pair weights\n"
      "  --logit-distill      MCL: add KL_T(logits_a || mean of the cohort's logits) for every network\n"
      "  --tau X              contrastive temperature (default 0.07; 0.1 with --layerwise)\n"
      "  --temperature X      KL temperature T of the soft terms and the logit KD (default 3)\n"
      "  --alpha X --beta X --gamma X --lambda X   weights of VCL, ICL, soft VCL, soft ICL (0.1, 0.1, 1, 1)\n"
      "  --meta-freq N        L-MCL: meta step every N iterations (default 50)\n"
      "  --meta-lr X          L-MCL: virtual-step rate and the weight network's SGD rate (default 0.1)\n"
      "  --epochs N           training epochs (default 40)\n"
      "  --batch B            batch size, used as min(B, N_train) (default 64)\n"
      "  --sampler S          random (anchors without a positive are skipped) or balanced (m-per-class batches,\n"
      "                       m = B / #classes) (default random)\n"
      "  --optim O            adam (lr 1e-3, wd 1e-4; default) or sgd (Nesterov 0.9, lr 0.1, wd 5e-4); cosine lr\n"
      "  --lr X --weight-decay X\n"
      "  --no-augment         no jitter + scaling of the training batches\n"
      "  --seed S --threads T --device cpu\n"
      "  --out DIR            output directory (default runs/mcl): metrics.json, metrics.csv, loss.svg,\n"
      "                       test_logits_net<i>.npy, test_y.npy, cohort.ckpt\n"
      "  --quiet              no per-epoch progress lines\n"
      "  --self-supervised    MoCo + MCL (no labels): a momentum encoder and a queue per network, two views\n"
      "                       (jitter + scaling / permutation + jitter); evaluation: linear probe per network\n"
      "  --queue K --momentum M   MoCo queue size (default min(1024, N_train rounded to batches)) and key EMA (0.99)\n");
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) out.push_back(std::stoi(tok));
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) DISTILL_FAIL("option ", argv[i], " needs a value (see --help)");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string o = argv[i];
    if (o == "--help" || o == "-h") {
      usage();
      std::exit(0);
    } else if (o == "--dataset") a.dataset = need(i);
    else if (o == "--data-root") a.data_root = need(i);
    else if (o == "--out") a.out = need(i);
    else if (o == "--device") a.device = need(i);
    else if (o == "--optim") a.optim = need(i);
    else if (o == "--sampler") a.sampler = need(i);
    else if (o == "--cohort") a.cohort = std::stoi(need(i));
    else if (o == "--width") a.width = std::stoi(need(i));
    else if (o == "--widths") a.widths = parse_list(need(i));
    else if (o == "--layerwise") a.layerwise = true;
    else if (o == "--logit-distill") a.logit_distill = true;
    else if (o == "--self-supervised") a.self_supervised = true;
    else if (o == "--no-augment") a.augment = false;
    else if (o == "--tau") a.w.tau = std::stod(need(i)), a.tau_set = true;
    else if (o == "--temperature") a.w.temperature = std::stod(need(i));
    else if (o == "--alpha") a.w.alpha = std::stod(need(i));
    else if (o == "--beta") a.w.beta = std::stod(need(i));
    else if (o == "--gamma") a.w.gamma = std::stod(need(i));
    else if (o == "--lambda") a.w.lambda = std::stod(need(i));
    else if (o == "--meta-freq") a.meta_freq = std::stoi(need(i));
    else if (o == "--meta-lr") a.meta_lr = std::stod(need(i));
    else if (o == "--epochs") a.epochs = std::stoll(need(i));
    else if (o == "--batch") a.batch = std::stoll(need(i));
    else if (o == "--seed") a.seed = std::stoull(need(i));
    else if (o == "--threads") a.threads = std::stoi(need(i));
    else if (o == "--lr") a.lr = std::stod(need(i));
    else if (o == "--weight-decay") a.weight_decay = std::stod(need(i));
    else if (o == "--quiet") a.quiet = true;
    else if (o == "--queue") a.queue = std::stoll(need(i));
    else if (o == "--momentum") a.momentum = std::stod(need(i));
    else DISTILL_FAIL("unknown option '", o, "' (see --help)");
  }
  DISTILL_CHECK(!a.self_supervised || (a.cohort == 2 && !a.layerwise && !a.logit_distill),
                "--self-supervised runs MoCo + MCL with --cohort 2 (no --layerwise / --logit-distill)");
  DISTILL_CHECK(a.momentum >= 0 && a.momentum <= 1, "--momentum ", a.momentum, ": expected a value in [0, 1]");
  DISTILL_CHECK(a.device == "cpu", "--device ", a.device,
                ": this example is built for the Cpu device; the Cuda device path is tested by test_cuda_mcl");
  DISTILL_CHECK(a.cohort == 1 || a.cohort == 2 || a.cohort == 4, "--cohort ", a.cohort, ": expected 1, 2 or 4");
  if (a.widths.empty()) a.widths.assign(static_cast<std::size_t>(a.cohort), a.width);
  DISTILL_CHECK(static_cast<int>(a.widths.size()) == a.cohort, "--widths lists ", a.widths.size(),
                " widths for --cohort ", a.cohort);
  for (int w : a.widths) DISTILL_CHECK(w == 16 || w == 32 || w == 64, "--width/--widths: ", w, " (expected 16, 32 or 64)");
  if (a.cohort == 4)
    for (int w : a.widths)
      DISTILL_CHECK(w == a.widths[0], "--cohort 4 shares the stem, so every width must be equal (--widths)");
  DISTILL_CHECK(!a.layerwise || a.cohort >= 2, "--layerwise needs --cohort 2 or 4");
  DISTILL_CHECK(a.optim == "adam" || a.optim == "sgd", "--optim ", a.optim, ": expected adam or sgd");
  DISTILL_CHECK(a.sampler == "random" || a.sampler == "balanced", "--sampler ", a.sampler,
                ": expected random or balanced");
  DISTILL_CHECK(a.epochs >= 1 && a.batch >= 2, "--epochs must be >= 1 and --batch >= 2");
  DISTILL_CHECK(a.meta_freq >= 1 && a.meta_lr > 0, "--meta-freq must be >= 1 and --meta-lr > 0");
  if (a.layerwise && !a.tau_set) a.w.tau = 0.1;
  if (a.lr < 0) a.lr = a.optim == "adam" ? 1e-3 : 0.1;
  if (a.weight_decay < 0) a.weight_decay = a.optim == "adam" ? 1e-4 : 5e-4;
  return a;
}

template <class Cohort>
void add_network(Cohort& c, dl::Context<dl::Cpu>& ctx, int width, index_t classes) {
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
  std::unique_ptr<dl::optim::Optimizer<float>> opt;
  if (a.optim == "adam")
    opt = std::make_unique<dl::optim::Adam<float>>(query.trainable(),
                                                   dl::optim::AdamOptions{.lr = a.lr, .weight_decay = a.weight_decay});
  else
    opt = std::make_unique<dl::optim::SGD<float>>(
        query.trainable(),
        dl::optim::SgdOptions{.lr = a.lr, .momentum = 0.9, .weight_decay = a.weight_decay, .nesterov = true});
  const dl::optim::Cosine schedule{a.lr, a.epochs};
  dl::data::DataLoader loader(train, {.batch_size = B, .shuffle = true, .drop_last = true}, ctx.make_rng(1));
  dl::CounterRng aug_rng = ctx.make_rng(2);
  const auto v1 = dl::data::AugmentConfig::dcrls_view1();
  const auto v2 = dl::data::AugmentConfig::dcrls_view2();
  std::vector<double> loss_curve, vcl_curve, icl_curve, soft_curve;
  dl::io::ProgressMeter meter(a.epochs, "mcl-moco");
  const auto t0 = std::chrono::steady_clock::now();
  query.train(true);
  key.train(true);
  for (index_t epoch = 1; epoch <= a.epochs; ++epoch) {
    dl::optim::apply(*opt, schedule, epoch - 1);
    double sum = 0, sv = 0, si = 0, ss = 0;
    index_t items = 0, steps = 0;
    for (const auto& batch : loader.epoch(epoch - 1)) {
      if (batch.x.extent(0) < 2) continue;
      auto views = dl::data::make_two_views(batch, v1, v2, aug_rng);
      auto l = moco.loss(dl::constant(ctx, std::move(views.view1)), dl::constant(ctx, std::move(views.view2)));
      opt->zero_grad();
      l.total.backward();
      opt->step();
      moco.update();
      sum += l.total.value()[0];
      sv += l.vcl;
      si += l.icl;
      ss += l.soft_vcl + l.soft_icl;
      items += batch.x.extent(0);
      ++steps;
    }
    const double n = double(std::max<index_t>(1, steps));
    loss_curve.push_back(sum / n);
    vcl_curve.push_back(sv / n);
    icl_curve.push_back(si / n);
    soft_curve.push_back(ss / n);
    const std::string line = meter.tick(epoch, sum / n, items);
    if (!a.quiet && (epoch == 1 || epoch == a.epochs || epoch % std::max<index_t>(1, a.epochs / 10) == 0))
      fmt::print("{}\n", line);
  }
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fs::create_directories(a.out);
  const std::string dir = a.out + "/";
  query.train(false);
  dl::io::Record rec;
  rec.set("method", "moco_mcl").set("cpu_isa", dl::isa_name(ctx.isa())).set("dataset", train.name).set("cohort", a.cohort).set("seed", double(a.seed))
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

int run(const Args& a) {
  namespace fs = std::filesystem;
  // OpenMP's default team size follows --threads: Eigen's small GEMMs called outside distill's own parallel
  // regions (cpu::gemm's single-panel path) would otherwise start omp_get_max_threads() threads.
  omp_set_num_threads(a.threads);
  dl::Context<dl::Cpu> ctx(a.threads, a.seed);
  dl::data::UcrOptions uo;
  uo.root = a.data_root;
  const auto splits = dl::data::load_ucr(a.dataset, uo);
  const auto& train = splits.train;
  const bool mutual = a.cohort >= 2;
  const std::string method = a.self_supervised ? "moco_mcl" : !mutual ? "independent" : a.layerwise ? "lmcl" : "mcl";
  fmt::print("mcl: {} ({} train / {} test series, length {}, {} classes), {} x{} (widths {}), {} epochs, {} threads, "
             "cpu kernels {}\n",
             train.name, train.size(), splits.test.size(), train.length(), train.num_classes, method, a.cohort,
             fmt::format("{}", a.widths[0]) + (a.widths.size() > 1 ? fmt::format("..{}", a.widths.back()) : ""),
             a.epochs, a.threads, dl::isa_name(ctx.isa()));
  if (a.self_supervised) return run_self_supervised(a, ctx, splits);

  dl::models::MclConfig cfg;
  cfg.weights = a.w;
  cfg.layerwise = a.layerwise;
  cfg.shared_stem = a.cohort == 4;
  cfg.logit_distill = a.logit_distill;
  cfg.kd_temperature = a.w.temperature;
  dl::models::Cohort<float> cohort{cfg};
  for (int w : a.widths) add_network(cohort, ctx, w, train.num_classes);

  std::unique_ptr<dl::optim::Optimizer<float>> opt;
  if (a.optim == "adam")
    opt = std::make_unique<dl::optim::Adam<float>>(cohort.trainable(),
                                                   dl::optim::AdamOptions{.lr = a.lr, .weight_decay = a.weight_decay});
  else
    opt = std::make_unique<dl::optim::SGD<float>>(
        cohort.trainable(),
        dl::optim::SgdOptions{.lr = a.lr, .momentum = 0.9, .weight_decay = a.weight_decay, .nesterov = true});
  // The weight network's own optimizer (L-MCL): SGD Nesterov, as in the reference.
  std::unique_ptr<dl::optim::SGD<float>> meta_opt;
  if (a.layerwise)
    meta_opt = std::make_unique<dl::optim::SGD<float>>(
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

  std::vector<double> loss_curve, ce_curve, mcl_curve, kd_curve;
  const auto pair_names = a.layerwise ? cohort.pair_names() : std::vector<std::string>{};
  std::vector<double> pair_sum(pair_names.size(), 0.0);
  double meta_vnorm = 0;
  index_t meta_steps = 0, iteration = 0;
  dl::io::ProgressMeter meter(a.epochs, "mcl");
  const auto t0 = std::chrono::steady_clock::now();
  cohort.train(true);
  for (index_t epoch = 1; epoch <= a.epochs; ++epoch) {
    dl::optim::apply(*opt, schedule, epoch - 1);
    double sum = 0, sum_ce = 0, sum_mcl = 0, sum_kd = 0;
    index_t items = 0, steps = 0;
    std::fill(pair_sum.begin(), pair_sum.end(), 0.0);
    for (const auto& batch : loader.epoch(epoch - 1)) {
      if (batch.x.extent(0) < 2) continue;  // BN needs two series
      std::vector<int> y(batch.labels.begin(), batch.labels.end());
      auto xs = a.augment ? dl::data::augment(batch.x, view, aug_rng, batch.lengths) : batch.x.clone();
      auto x = dl::constant(ctx, std::move(xs));
      auto loss = cohort.loss(x, y);
      opt->zero_grad();
      loss.total.backward();
      opt->step();
      ++iteration;
      if (a.layerwise && iteration % a.meta_freq == 0) {
        const auto r = cohort.meta_step(x, y, a.meta_lr);
        meta_opt->step();
        meta_vnorm = r.v_norm;
        ++meta_steps;
      }
      sum += loss.total.value()[0];
      sum_ce += loss.ce;
      sum_mcl += a.w.alpha * loss.vcl + a.w.beta * loss.icl + a.w.gamma * loss.soft_vcl + a.w.lambda * loss.soft_icl;
      sum_kd += loss.kd;
      for (std::size_t p = 0; p < pair_sum.size(); ++p) pair_sum[p] += loss.pair_weights[p];
      items += batch.x.extent(0);
      ++steps;
    }
    const double n = double(std::max<index_t>(1, steps));
    loss_curve.push_back(sum / n);
    ce_curve.push_back(sum_ce / n);
    mcl_curve.push_back(sum_mcl / n);
    kd_curve.push_back(sum_kd / n);
    for (double& p : pair_sum) p /= n;
    const std::string line = meter.tick(epoch, sum / n, items);
    if (!a.quiet && (epoch == 1 || epoch == a.epochs || epoch % std::max<index_t>(1, a.epochs / 10) == 0))
      fmt::print("{}\n", line);
  }
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Test accuracy of every network and of the ensemble.
  fs::create_directories(a.out);
  const std::string dir = a.out + "/";
  const auto acc = cohort.accuracy(ctx, splits.test.x, splits.test.labels);
  const auto logits = cohort.predict(ctx, splits.test.x);
  dl::io::Record rec;
  rec.set("method", method).set("cpu_isa", dl::isa_name(ctx.isa())).set("dataset", train.name).set("cohort", a.cohort).set("seed", double(a.seed))
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
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    fmt::print(stderr, "mcl: {}\n", e.what());
    return 1;
  }
}
