// examples/disco -- DisCo (distilled contrastive learning, Gao et al. ECCV 2022) on a UCR dataset, end to end:
// teacher ResNet1D(128) pre-trained with MoCo-v2 -> frozen -> student ResNet1D(16) trained with MoCo-v2 + the
// embedding distillation term -> frozen student encoder -> linear probe, 1-NN, k-means RI / NMI -> metrics.json,
// loss.svg, embedding.svg, test embeddings .npy, checkpoints. The pieces are library types (docs/disco.md):
// nn::MomentumEncoder, nn::FrozenTeacher, losses::disco_loss, models::DiscoLearner.
//
//   ./build/examples/disco --dataset GunPoint --variant teacher --epochs 40 --out runs/gp-teacher
//   ./build/examples/disco --dataset GunPoint --variant disco --epochs 40 --out runs/gp-disco   # reuses the cache
//   ./build/examples/disco --dataset GunPoint --variant disco --device cuda --out runs/gp-disco-gpu   # on a GPU
//   mpirun -np 2 ./build/examples/disco --dataset GunPoint --variant disco --threads 1 --out runs/gp-disco-2ranks
//                                                    # data-parallel ranks (docs/distributed.md)
//   ./build/examples/disco --help
#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/cli.hpp"
#include "common/device.hpp"
#include "common/example.hpp"
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
#include "distill/models/disco.hpp"

namespace dl = distill;
namespace fs = std::filesystem;
using dl::index_t;
using dl::models::DiscoVariant;

namespace {

template <class D>
using TeacherNet = dl::models::DiscoTeacherNet<float, D>;
template <class D>
using StudentNet = dl::models::DiscoStudentNet<float, D>;
template <class D>
using WideNet = dl::models::DiscoWideNet<float, D>;
template <class D>
using Teacher = dl::nn::FrozenTeacher<TeacherNet<D>>;

struct Args {
  dl::examples::RunOptions run;  // --out, --resume, --checkpoint-every/-unit, --quiet
  std::string dataset = "GunPoint";
  std::string data_root;
  std::string variant = "disco";
  std::string device = "cpu";
  std::string optim = "adam";
  std::string teacher;                              // checkpoint of a TeacherNet (empty: cache)
  std::string teacher_cache = "runs/disco-teachers";
  std::string teacher_bn = "running";
  index_t epochs = 40;
  index_t teacher_epochs = -1;                      // -1: --epochs
  index_t batch = 64;
  std::uint64_t seed = 0;
  int threads = 2;
  double lr = 1e-3, weight_decay = 1e-4;
  double tau = 0.2, momentum = 0.99, balance = 0;
  index_t queue = -1;                               // -1: min(1024, floor(N/B) B), 0 below N = 64
  index_t shuffle_groups = 1;
  int probe_steps = 500;
  int kmeans_restarts = 10;
  bool sync_bn = false;
};

Args parse(int argc, char** argv) {
  using dl::examples::integer_in;
  using dl::examples::real_in;
  Args a;
  CLI::App app{"DisCo (a frozen MoCo-v2 teacher distilled into a lightweight student) on a UCR dataset, then "
               "evaluation.\nWrites to --out: metrics.json, metrics.csv, loss.svg, embedding.svg, test_z.npy, "
               "test_y.npy, train_z.npy,\ntrain_y.npy, net.ckpt (encoder + head), encoder.ckpt.\n"
               "Exit codes: 0 done, 1 error, 2 bad command line, 3 training diverged.",
               "disco"};
  app.option_defaults()->always_capture_default();
  app.add_option("--dataset", a.dataset, "bundled UCR name (data/ucr) or a directory with <Name>_TRAIN.tsv / _TEST.tsv");
  app.add_option("--data-root", a.data_root,
                 "UCR archive root searched first for a bare name (<DIR>/<Name>/<Name>_TRAIN.tsv); DISTILL_UCR_DIR "
                 "works too");
  app.add_option("--variant", a.variant,
                 "teacher: pre-train the teacher ResNet1D(128) (head 256 -> 128) with MoCo-v2; student: the student "
                 "ResNet1D(16) (head 64 -> 128) with MoCo-v2 alone; disco: the student + distillation from the "
                 "frozen teacher; disco-wide: the same with the enlarged head (hidden 512)")
      ->check(CLI::IsMember({"teacher", "student", "disco", "disco-wide"}));
  app.add_option("--teacher", a.teacher,
                 "teacher checkpoint (net.ckpt of a teacher run); default: the cached teacher of this dataset and "
                 "seed, trained first when missing")
      ->check(CLI::ExistingFile);
  app.add_option("--teacher-cache", a.teacher_cache, "where teachers are cached");
  app.add_option("--teacher-epochs", a.teacher_epochs, "epochs of a teacher trained here (-1: --epochs)")
      ->check(integer_in<index_t>(-1, 1'000'000));
  app.add_option("--teacher-bn", a.teacher_bn,
                 "teacher BN in the student runs: running (inference statistics) or batch")
      ->check(CLI::IsMember({"running", "batch"}));
  app.add_option("--epochs", a.epochs, "training epochs")->check(integer_in<index_t>(1, 1'000'000));
  app.add_option("--batch", a.batch, "batch size, used as min(B, N_train)")->check(integer_in<index_t>(2, 1'000'000));
  app.add_option("--seed", a.seed, "seed of weights, augmentations, batching and evaluation")
      ->check(integer_in<std::uint64_t>(0, std::numeric_limits<std::uint64_t>::max()));
  app.add_option("--threads", a.threads, "CPU threads (more than the machine's cores: clamped, with a warning)")
      ->check(integer_in<int>(1, 4096));
  dl::examples::add_device_option(app, a.device);
  app.add_option("--optim", a.optim, "adam, or sgd (Nesterov momentum 0.9), with --lr and --weight-decay")
      ->check(CLI::IsMember({"adam", "sgd"}));
  app.add_option("--lr", a.lr, "learning rate")->check(real_in(0, 10, true));
  app.add_option("--weight-decay", a.weight_decay, "L2 weight decay")->check(real_in(0, 10));
  app.add_option("--tau", a.tau, "InfoNCE / NT-Xent temperature")->check(dl::examples::temperature());
  app.add_option("--momentum", a.momentum, "key-encoder EMA momentum")->check(real_in(0, 1));
  app.add_option("--queue", a.queue,
                 "MoCo queue size (-1: min(1024, floor(N/B) B), and 0 below N_train = 64, which uses in-batch SimCLR "
                 "negatives instead)")
      ->check(integer_in<index_t>(-1, 1'000'000));
  app.add_option("--balance", a.balance, "weight of the summed distillation term (0: 32 / B)")->check(real_in(0, 1e6));
  app.add_option("--shuffle-groups", a.shuffle_groups, "shuffle-BN sub-batches of the key encoder (1: off)")
      ->check(integer_in<index_t>(1, 1024));
  app.add_option("--probe-steps", a.probe_steps, "linear-probe Adam steps")->check(integer_in<int>(1, 10'000'000));
  app.add_flag("--sync-bn", a.sync_bn,
               "data-parallel ranks (mpirun): batch norm with the statistics of the global batch (Cpu device)");
  dl::examples::add_run_options(app, a.run, "runs/disco", "dataset, variant, teacher or setting");
  dl::examples::parse_or_exit(app, argc, argv);
  dl::examples::finish_run_options(a.run, "runs/disco");
  a.threads = dl::examples::clamp_threads("disco", a.threads);
  if (a.teacher_epochs < 0) a.teacher_epochs = a.epochs;
  DISTILL_CHECK(a.teacher_epochs >= 1, "--teacher-epochs must be >= 1 (or -1 for --epochs), got ", a.teacher_epochs);
  dl::models::parse_disco_variant(a.variant);    // fail early on a typo
  dl::nn::parse_teacher_bn(a.teacher_bn);
  return a;
}

struct Curves {
  std::vector<double> total, con, dis;
  double seconds = 0;
};

dl::models::DiscoConfig learner_config(const Args& a, index_t n_train, index_t batch) {
  return {.tau = a.tau, .momentum = a.momentum,
          .queue_size = a.queue >= 0 ? a.queue : dl::models::disco_queue_size(n_train, batch),
          .balance = a.balance, .shuffle_groups = a.shuffle_groups};
}

/// Trains one learner (any variant) on the training split for `epochs`. With `state` (a student or teacher run's
/// own directory), everything the loop depends on is registered there, restored when --resume was given, and
/// saved per --checkpoint-every and at the end; without it (a cached teacher trained on the way), nothing is saved.
template <class D, class Learner>
Curves train(dl::Context<D>& ctx, Learner& learner, const dl::data::Dataset& train_set, index_t batch,
             index_t epochs, const Args& a, const std::string& label, dl::io::TrainState* state = nullptr) {
  dl::examples::ChosenOptimizer<float, D> opt(a.optim, learner.trainable(), a.lr, a.weight_decay);
  dl::Communicator& comm = ctx.comm();  // data-parallel ranks: each trains on its rows of the global batch
  dl::data::DataLoader loader(train_set, {.batch_size = batch, .shuffle = true, .drop_last = true}, ctx.make_rng(1));
  dl::CounterRng aug_rng = ctx.make_rng(2);
  const auto view = dl::data::AugmentConfig::moco_view();
  dl::data::BatchStager<D> stage(ctx);
  Curves c;
  dl::examples::LoopPosition pos;
  double sum = 0, sum_con = 0, sum_dis = 0;
  if (state) {
    dl::examples::register_loop(*state, loader, pos);
    state->add_module("net", learner.net);
    opt.register_in(*state);
    state->add_rng("rng.init", ctx.rng())
        .add_rng("rng.aug", aug_rng).add_value("epoch.loss", sum).add_value("epoch.l_con", sum_con)
        .add_value("epoch.l_dis", sum_dis).add_series("curve.loss", c.total).add_series("curve.l_con", c.con)
        .add_series("curve.l_dis", c.dis);
    if (learner.key) {
      state->add_module("key", learner.key->module()).add_rng("rng.key", learner.key->rng());
      state->add_queue("queue", learner.key->queue());
    }
    if (!a.run.resume.empty()) {
      state->restore();
      for (const auto& w : state->warnings()) fmt::print(stderr, "disco: warning: {}\n", w);
      fmt::print("disco: resumed from {} at epoch {}, step {}\n", state->file().string(), pos.epoch + 1,
                 pos.step + 1);
    }
  }
  dl::dist::DataParallel<float, D> dp(ctx, learner.net, learner.trainable());  // rank 0's net; averaged gradients
  dl::io::ProgressMeter meter(epochs, label);
  const auto t0 = std::chrono::steady_clock::now();
  learner.train(true);
  auto train_step = [&](dl::data::Batch& b, const dl::optim::TrainPosition& at, std::int64_t global) {
    if (b.x.extent(0) < 2) return false;  // a contrastive batch needs a negative; BN needs two series
    auto views = dl::data::make_two_views(b, view, view, aug_rng);
    if (global == a.run.inject_nan_at) views.view1.data()[0] = std::numeric_limits<float>::quiet_NaN();
    auto loss = learner.loss(dl::constant(ctx, stage(dl::dist::shard_rows(views.view1, comm))),
                             dl::constant(ctx, stage(dl::dist::shard_rows(views.view2, comm))));
    dl::optim::require_finite(loss.contrastive, "L_con", at);
    dl::optim::require_finite(loss.distillation, "L_dis", at);
    const double total = dl::optim::checked_step(*opt, loss.total, at, dp);
    sum += total;
    sum_con += loss.contrastive;
    sum_dis += loss.balance * loss.distillation;
    return true;
  };
  auto close_epoch = [&](double n) {
    const double mean = sum / n;
    c.total.push_back(mean);
    c.con.push_back(sum_con / n);
    c.dis.push_back(sum_dis / n);
    sum = sum_con = sum_dis = 0;
    return mean;
  };
  // Rank 0 writes the training state (every rank holds the same one); all ranks read it on --resume.
  dl::examples::run_epochs(loader, epochs, pos, a.run, comm.rank() == 0 ? state : nullptr, meter, [](std::int64_t) {},
                           train_step, close_epoch);
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return c;
}

/// The cached teacher of this dataset, seed and epoch count; one trained with SGD ("-sgd") or on the Cuda device
/// ("-cuda", its weights differ from the Cpu one's by float rounding) is a separate entry.
fs::path cached_teacher_path(const Args& a, const std::string& dataset) {
  const bool cuda = dl::examples::parse_device(a.device).value().cuda;
  return fs::path(a.teacher_cache) / (dataset + "-seed" + std::to_string(a.seed) + "-e" +
                                      std::to_string(a.teacher_epochs) + (a.optim == "sgd" ? "-sgd" : "") +
                                      (cuda ? "-cuda" : "") + ".ckpt");
}

/// The teacher checkpoint of a student run: --teacher, else the cache, else one pre-trained here with MoCo-v2 and
/// cached. It gets its own context seeded like a teacher run's, so it is the same network a `--variant teacher` run
/// with the same seed and epochs produces (on the run's device).
template <class D>
fs::path teacher_for(const Args& a, const dl::data::Dataset& train_set, index_t batch, const dl::dist::World& world) {
  if (!a.teacher.empty()) return a.teacher;
  const fs::path cached = cached_teacher_path(a, train_set.name);
  if (fs::exists(cached)) {
    fmt::print("disco: reusing the cached teacher {}\n", cached.string());
    return cached;
  }
  fmt::print("disco: no teacher given and none cached at {}: training one ({} epochs)\n", cached.string(),
             a.teacher_epochs);
  dl::examples::RunContexts<D> tctx(a.threads, a.seed, a.device);
  dl::examples::join_ranks(tctx.device, world, a.sync_bn, "disco");
  dl::models::DiscoLearner<TeacherNet<D>> learner(tctx.device, learner_config(a, train_set.size(), batch));
  train(tctx.device, learner, train_set, batch, a.teacher_epochs, a, "teacher " + train_set.name);
  if (world.is_root()) {
    fs::create_directories(cached.parent_path().empty() ? fs::path(".") : cached.parent_path());
    dl::save_checkpoint(cached, learner.net);
  }
  world.comm()->barrier();  // the other ranks read the file rank 0 just wrote
  return cached;
}

template <class D, class Net>
int run_variant(const Args& a, const dl::data::UcrSplits& splits, DiscoVariant variant, const dl::dist::World& world) {
  const auto& train_set = splits.train;
  const index_t batch = dl::examples::global_batch(a.batch, train_set.size(), *world.comm());
  const index_t L = train_set.length();
  const bool distill = dl::models::uses_teacher(variant);
  const auto bn = dl::nn::parse_teacher_bn(a.teacher_bn);

  // The teacher first (it has its own context), so a student run's draws do not depend on whether it was cached.
  std::unique_ptr<Teacher<D>> teacher;
  fs::path teacher_path;
  dl::examples::RunContexts<D> contexts(a.threads, a.seed, a.device);  // no GPU / device N absent: fails here
  auto& ctx = contexts.device;
  const std::string ranks = dl::examples::join_ranks(ctx, world, a.sync_bn, "disco");
  if (distill) {
    teacher_path = teacher_for<D>(a, train_set, batch, world);
    teacher = std::make_unique<Teacher<D>>(ctx, teacher_path, bn);
  }
  const auto cfg = learner_config(a, train_set.size(), batch);
  dl::models::DiscoLearner<Net, TeacherNet<D>> learner(ctx, cfg, teacher.get());
  const std::string device = dl::examples::describe_device(ctx);
  fmt::print("disco: {} ({} train / {} test series, length {}, {} classes), variant {}, {} epochs, batch {}, {}, "
             "{} threads, device {}{}\n",
             train_set.name, train_set.size(), splits.test.size(), L, train_set.num_classes,
             dl::models::variant_name(variant), a.epochs, batch,
             learner.in_batch() ? std::string("in-batch SimCLR negatives (N < 64)")
                                : fmt::format("MoCo queue K = {}", cfg.queue_size),
             a.threads, device, ranks);
  // The training state of this run: everything train() needs to continue after a kill (--resume).
  dl::io::TrainState state(a.run.out);
  using Match = dl::io::TrainState::Match;
  state.config("program", "disco").config("variant", dl::models::variant_name(variant))
      .config("dataset", train_set.name)
      .config("train_file", dl::io::file_fingerprint(dl::data::resolve_ucr(a.dataset, a.data_root).train_path()))
      .config("epochs", a.epochs).config("batch", batch).config("seed", a.seed).config("optim", a.optim).config("lr", a.lr)
      .config("weight_decay", a.weight_decay).config("tau", a.tau).config("momentum", a.momentum)
      .config("queue", cfg.queue_size).config("balance", a.balance).config("shuffle_groups", a.shuffle_groups)
      .config("teacher", distill ? dl::io::file_fingerprint(teacher_path) : std::string("none"))
      .config("teacher_bn", a.teacher_bn).config("threads", a.threads, Match::Warn)
      .config("device", a.device, Match::Warn).config("ranks", world.size(), Match::Warn)
      .config("sync_bn", a.sync_bn ? 1 : 0, Match::Warn);
  const Curves c = train(ctx, learner, train_set, batch, a.epochs, a, train_set.name, &state);
  if (!world.is_root()) return 0;  // rank 0 evaluates and writes the outputs

  learner.train(false);
  const std::string dir = a.run.out + "/";
  dl::io::Record tags;
  tags.set("method", "disco").set("variant", dl::models::variant_name(variant)).set("seed", double(a.seed))
      .set("optim", a.optim)
      .set("cpu_isa", dl::isa_name(contexts.host().isa())).set("device", device)
      .set("device_kind", dl::examples::device_kind(ctx)).set("ranks", double(world.size()))
      .set("epochs", double(a.epochs)).set("batch", batch).set("queue", cfg.queue_size)
      .set("in_batch_negatives", learner.in_batch()).set("train_seconds", c.seconds)
      .set("final_loss", c.total.back()).set("final_con", c.con.back()).set("final_dis", c.dis.back())
      .set("params", dl::nn::num_parameters(learner.net.encoder))
      .set("params_with_head", dl::nn::num_parameters(learner.net))
      .set("flops_per_series", Net::encoder_flops(L));
  if (distill) {
    tags.set("teacher", teacher_path.string()).set("teacher_bn", dl::nn::teacher_bn_name(bn))
        .set("teacher_params", dl::nn::num_parameters(teacher->module().encoder))
        .set("teacher_flops_per_series", TeacherNet<D>::encoder_flops(L))
        .set("balance", cfg.balance > 0 ? cfg.balance : dl::losses::disco_balance(batch));
  }
  auto embed = dl::eval::on_device(ctx, [&](const dl::Var<float, 3, D>& x) { return learner.embed(x); }, learner.net);
  const auto e0 = std::chrono::steady_clock::now();
  auto r = dl::examples::evaluate_run(contexts.host(), splits, embed, dir, a.probe_steps, a.kmeans_restarts, a.seed,
                                      tags);
  const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
  dl::save_checkpoint(dir + "net.ckpt", learner.net);
  dl::save_checkpoint(dir + "encoder.ckpt", learner.net.encoder);
  if (variant == DiscoVariant::Teacher) {  // also the cache entry the student runs look for
    const fs::path cached = cached_teacher_path(a, train_set.name);
    fs::create_directories(cached.parent_path().empty() ? fs::path(".") : cached.parent_path());
    dl::save_checkpoint(cached, learner.net);
  }
  std::vector<dl::io::CurveSeries> series{{"total", c.total, {}}, {"L_con", c.con, {}}};
  if (distill) series.push_back({"balance x L_dis", c.dis, {}});
  dl::io::write_loss_svg(dir + "loss.svg", series);
  fmt::print("trained {} epochs in {:.1f} s; evaluation {:.1f} s; encoder {} parameters, {:.3g} FLOPs per series\n",
             a.epochs, c.seconds, eval_s, dl::nn::num_parameters(learner.net.encoder), Net::encoder_flops(L));
  fmt::print("linear probe acc {:.3f}   1-NN acc {:.3f}   k-means RI {:.3f}  NMI {:.3f}   -> {}{{metrics.json, "
             "loss.svg, embedding.svg, test_z.npy, net.ckpt}}\n",
             r.probe_accuracy, r.knn_accuracy, r.kmeans_ri, r.kmeans_nmi, dir);
  return 0;
}

template <class D>
int run(const Args& a, const dl::dist::World& world) {
  if (world.is_root()) {
    dl::examples::prepare_output_dir("--out", a.run.out);  // before any work: a bad --out fails now, not after training
    for (const char* stale : {"metrics.json", "metrics.csv"})  // never left from an earlier or failed run
      std::filesystem::remove(std::filesystem::path(a.run.out) / stale);
  }
  dl::data::UcrOptions uo;
  uo.root = a.data_root;
  const auto splits = dl::data::load_ucr(a.dataset, uo);  // TEST length and labels checked against TRAIN
  dl::data::require_trainable(splits.train, "disco");
  switch (dl::models::parse_disco_variant(a.variant)) {
    case DiscoVariant::Teacher: return run_variant<D, TeacherNet<D>>(a, splits, DiscoVariant::Teacher, world);
    case DiscoVariant::Student: return run_variant<D, StudentNet<D>>(a, splits, DiscoVariant::Student, world);
    case DiscoVariant::Disco: return run_variant<D, StudentNet<D>>(a, splits, DiscoVariant::Disco, world);
    case DiscoVariant::DiscoWide: return run_variant<D, WideNet<D>>(a, splits, DiscoVariant::DiscoWide, world);
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  return dl::examples::ranks_main("disco", argc, argv, [&](const dl::dist::World& world) {
    const Args a = parse(argc, argv);
    return dl::examples::with_device(a.device, [&]<class D>() { return run<D>(a, world); });
  });
}
