// examples/disco -- DisCo (distilled contrastive learning, Gao et al. ECCV 2022) on a UCR dataset, end to end:
// teacher ResNet1D(128) pre-trained with MoCo-v2 -> frozen -> student ResNet1D(16) trained with MoCo-v2 + the
// embedding distillation term -> frozen student encoder -> linear probe, 1-NN, k-means RI / NMI -> metrics.json,
// loss.svg, embedding.svg, test embeddings .npy, checkpoints. The pieces are library types (docs/disco.md):
// nn::MomentumEncoder, nn::FrozenTeacher, losses::disco_loss, models::DiscoLearner.
//
//   ./build/examples/disco --dataset GunPoint --variant teacher --epochs 40 --out runs/gp-teacher
//   ./build/examples/disco --dataset GunPoint --variant disco --epochs 40 --out runs/gp-disco   # reuses the cache
//   ./build/examples/disco --help
#include <fmt/core.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
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
#include "distill/models/disco.hpp"
#include "distill/optim/adam.hpp"

namespace dl = distill;
namespace fs = std::filesystem;
using dl::index_t;
using dl::models::DiscoVariant;

namespace {

using TeacherNet = dl::models::DiscoTeacherNet<float, dl::Cpu>;
using StudentNet = dl::models::DiscoStudentNet<float, dl::Cpu>;
using WideNet = dl::models::DiscoWideNet<float, dl::Cpu>;
using Teacher = dl::nn::FrozenTeacher<TeacherNet>;

struct Args {
  std::string dataset = "GunPoint";
  std::string data_root;
  std::string out = "runs/disco";
  std::string variant = "disco";
  std::string device = "cpu";
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
  bool quiet = false;
};

void usage() {
  fmt::print(
      "disco: DisCo (a frozen MoCo-v2 teacher distilled into a lightweight student) on a UCR dataset, then "
      "evaluation.\n\n"
      "usage: disco [options]\n"
      "  --dataset NAME|DIR   bundled UCR name (data/ucr) or a directory with <Name>_TRAIN.tsv / _TEST.tsv\n"
      "                       (default GunPoint)\n"
      "  --data-root DIR      UCR archive root searched first for a bare name (<DIR>/<Name>/<Name>_TRAIN.tsv);\n"
      "                       DISTILL_UCR_DIR works too\n"
      "  --variant V          teacher     pre-train the teacher ResNet1D(128) (head 256 -> 128) with MoCo-v2\n"
      "                       student     the student ResNet1D(16) (head 64 -> 128) with MoCo-v2 alone\n"
      "                       disco       the student + distillation from the frozen teacher (default)\n"
      "                       disco-wide  the same with the enlarged head (hidden 512)\n"
      "  --teacher PATH       teacher checkpoint (net.ckpt of a teacher run); default: the cached teacher of this\n"
      "                       dataset and seed, trained first when missing\n"
      "  --teacher-cache DIR  where teachers are cached (default runs/disco-teachers)\n"
      "  --teacher-epochs N   epochs of a teacher trained here (default: --epochs)\n"
      "  --teacher-bn M       teacher BN in the student runs: running (inference statistics; default) or batch\n"
      "  --epochs N           training epochs (default 40)\n"
      "  --batch B            batch size, used as min(B, N_train) (default 64)\n"
      "  --seed S             seed of weights, augmentations, batching and evaluation (default 0)\n"
      "  --threads T          CPU threads (default 2)\n"
      "  --device cpu         device (only cpu in this build; the Cuda device is exercised by test_cuda_disco)\n"
      "  --lr X --weight-decay X   Adam (default 1e-3, 1e-4)\n"
      "  --tau X              InfoNCE / NT-Xent temperature (default 0.2)\n"
      "  --momentum X         key-encoder EMA momentum (default 0.99)\n"
      "  --queue K            MoCo queue size (default min(1024, floor(N/B) B); 0 below N_train = 64, which uses\n"
      "                       in-batch SimCLR negatives instead)\n"
      "  --balance X          weight of the summed distillation term (default 32 / B)\n"
      "  --shuffle-groups G   shuffle-BN sub-batches of the key encoder (default 1: off)\n"
      "  --probe-steps N      linear-probe Adam steps (default 500)\n"
      "  --out DIR            output directory (default runs/disco): metrics.json, metrics.csv, loss.svg,\n"
      "                       embedding.svg, train/test _z.npy / _y.npy, net.ckpt (encoder + head), encoder.ckpt\n"
      "  --quiet              no per-epoch progress lines\n");
}

Args parse(int argc, char** argv) {
  Args a;
  for (dl::examples::Options o(argc, argv, usage); o.next();) {
    if (o.is("--dataset")) a.dataset = o.value();
    else if (o.is("--data-root")) a.data_root = o.value();
    else if (o.is("--out")) a.out = o.value();
    else if (o.is("--variant")) a.variant = o.value();
    else if (o.is("--device")) a.device = o.value();
    else if (o.is("--teacher")) a.teacher = o.value();
    else if (o.is("--teacher-cache")) a.teacher_cache = o.value();
    else if (o.is("--teacher-epochs")) a.teacher_epochs = o.integer();
    else if (o.is("--teacher-bn")) a.teacher_bn = o.value();
    else if (o.is("--epochs")) a.epochs = o.integer();
    else if (o.is("--batch")) a.batch = o.integer();
    else if (o.is("--seed")) a.seed = o.unsigned_integer();
    else if (o.is("--threads")) a.threads = static_cast<int>(o.integer());
    else if (o.is("--lr")) a.lr = o.number();
    else if (o.is("--weight-decay")) a.weight_decay = o.number();
    else if (o.is("--tau")) a.tau = o.number();
    else if (o.is("--momentum")) a.momentum = o.number();
    else if (o.is("--queue")) a.queue = o.integer();
    else if (o.is("--balance")) a.balance = o.number();
    else if (o.is("--shuffle-groups")) a.shuffle_groups = o.integer();
    else if (o.is("--probe-steps")) a.probe_steps = static_cast<int>(o.integer());
    else if (o.is("--quiet")) a.quiet = true;
    else o.unknown();
  }
  DISTILL_CHECK(a.device == "cpu", "--device ", a.device,
                ": this example is built for the Cpu device; the Cuda device path is tested by test_cuda_disco");
  DISTILL_CHECK(a.epochs >= 1 && a.batch >= 2, "--epochs must be >= 1 and --batch >= 2");
  DISTILL_CHECK(a.threads >= 1, "--threads must be >= 1, got ", a.threads);
  DISTILL_CHECK(a.queue >= -1, "--queue must be >= 0, got ", a.queue);
  DISTILL_CHECK(a.balance >= 0, "--balance must be >= 0, got ", a.balance);
  DISTILL_CHECK(a.shuffle_groups >= 1, "--shuffle-groups must be >= 1, got ", a.shuffle_groups);
  if (a.teacher_epochs < 0) a.teacher_epochs = a.epochs;
  DISTILL_CHECK(a.teacher_epochs >= 1, "--teacher-epochs must be >= 1");
  dl::models::parse_disco_variant(a.variant);    // fail early on a typo
  dl::nn::parse_teacher_bn(a.teacher_bn);
  if (!a.teacher.empty())
    DISTILL_CHECK(fs::exists(a.teacher), "--teacher ", a.teacher, ": no such checkpoint file");
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

/// Trains one learner (any variant) on the training split for `epochs`.
template <class Learner>
Curves train(dl::Context<dl::Cpu>& ctx, Learner& learner, const dl::data::Dataset& train_set, index_t batch,
             index_t epochs, const Args& a, const std::string& label) {
  dl::optim::Adam opt{learner.trainable(), {.lr = a.lr, .weight_decay = a.weight_decay}};
  dl::data::DataLoader loader(train_set, {.batch_size = batch, .shuffle = true, .drop_last = true}, ctx.make_rng(1));
  dl::CounterRng aug_rng = ctx.make_rng(2);
  const auto view = dl::data::AugmentConfig::moco_view();
  Curves c;
  dl::io::ProgressMeter meter(epochs, label);
  const auto t0 = std::chrono::steady_clock::now();
  learner.train(true);
  for (index_t epoch = 1; epoch <= epochs; ++epoch) {
    double sum = 0, sum_con = 0, sum_dis = 0;
    index_t items = 0, steps = 0;
    for (const auto& b : loader.epoch(epoch - 1)) {
      if (b.x.extent(0) < 2) continue;  // a contrastive batch needs a negative; BN needs two series
      auto views = dl::data::make_two_views(b, view, view, aug_rng);
      auto loss = learner.loss(dl::constant(ctx, std::move(views.view1)), dl::constant(ctx, std::move(views.view2)));
      opt.zero_grad();
      loss.total.backward();
      opt.step();
      sum += loss.total.value()[0];
      sum_con += loss.contrastive;
      sum_dis += loss.balance * loss.distillation;
      items += b.x.extent(0);
      ++steps;
    }
    const double n = double(std::max<index_t>(1, steps));
    c.total.push_back(sum / n);
    c.con.push_back(sum_con / n);
    c.dis.push_back(sum_dis / n);
    const std::string line = meter.tick(epoch, sum / n, items);
    if (!a.quiet && (epoch == 1 || epoch == epochs || epoch % std::max<index_t>(1, epochs / 10) == 0))
      fmt::print("{}\n", line);
  }
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return c;
}

/// The cached teacher of this dataset, seed and epoch count.
fs::path cached_teacher_path(const Args& a, const std::string& dataset) {
  return fs::path(a.teacher_cache) / (dataset + "-seed" + std::to_string(a.seed) + "-e" +
                                      std::to_string(a.teacher_epochs) + ".ckpt");
}

/// The teacher checkpoint of a student run: --teacher, else the cache, else one pre-trained here with MoCo-v2 and
/// cached. It gets its own context seeded like a teacher run's, so it is the same network a `--variant teacher` run
/// with the same seed and epochs produces.
fs::path teacher_for(const Args& a, const dl::data::Dataset& train_set, index_t batch) {
  if (!a.teacher.empty()) return a.teacher;
  const fs::path cached = cached_teacher_path(a, train_set.name);
  if (fs::exists(cached)) {
    fmt::print("disco: reusing the cached teacher {}\n", cached.string());
    return cached;
  }
  fmt::print("disco: no teacher given and none cached at {}: training one ({} epochs)\n", cached.string(),
             a.teacher_epochs);
  dl::Context<dl::Cpu> tctx(a.threads, a.seed);
  dl::models::DiscoLearner<TeacherNet> learner(tctx, learner_config(a, train_set.size(), batch));
  train(tctx, learner, train_set, batch, a.teacher_epochs, a, "teacher " + train_set.name);
  fs::create_directories(cached.parent_path().empty() ? fs::path(".") : cached.parent_path());
  dl::save_checkpoint(cached, learner.net);
  return cached;
}

template <class Net>
int run_variant(const Args& a, const dl::data::UcrSplits& splits, DiscoVariant variant) {
  const auto& train_set = splits.train;
  const index_t batch = std::min(a.batch, train_set.size());
  const index_t L = train_set.length();
  const bool distill = dl::models::uses_teacher(variant);
  const auto bn = dl::nn::parse_teacher_bn(a.teacher_bn);

  // The teacher first (it has its own context), so a student run's draws do not depend on whether it was cached.
  std::unique_ptr<Teacher> teacher;
  fs::path teacher_path;
  dl::Context<dl::Cpu> ctx(a.threads, a.seed);
  if (distill) {
    teacher_path = teacher_for(a, train_set, batch);
    teacher = std::make_unique<Teacher>(ctx, teacher_path, bn);
  }
  const auto cfg = learner_config(a, train_set.size(), batch);
  dl::models::DiscoLearner<Net, TeacherNet> learner(ctx, cfg, teacher.get());
  fmt::print("disco: {} ({} train / {} test series, length {}, {} classes), variant {}, {} epochs, batch {}, {}, "
             "{} threads, cpu kernels {}\n",
             train_set.name, train_set.size(), splits.test.size(), L, train_set.num_classes,
             dl::models::variant_name(variant), a.epochs, batch,
             learner.in_batch() ? std::string("in-batch SimCLR negatives (N < 64)")
                                : fmt::format("MoCo queue K = {}", cfg.queue_size),
             a.threads, dl::isa_name(ctx.isa()));
  const Curves c = train(ctx, learner, train_set, batch, a.epochs, a, train_set.name);

  learner.train(false);
  fs::create_directories(a.out);
  const std::string dir = a.out + "/";
  dl::io::Record tags;
  tags.set("method", "disco").set("variant", dl::models::variant_name(variant)).set("seed", double(a.seed))
      .set("cpu_isa", dl::isa_name(ctx.isa()))
      .set("epochs", double(a.epochs)).set("batch", batch).set("queue", cfg.queue_size)
      .set("in_batch_negatives", learner.in_batch()).set("train_seconds", c.seconds)
      .set("final_loss", c.total.back()).set("final_con", c.con.back()).set("final_dis", c.dis.back())
      .set("params", dl::nn::num_parameters(learner.net.encoder))
      .set("params_with_head", dl::nn::num_parameters(learner.net))
      .set("flops_per_series", Net::encoder_flops(L));
  if (distill) {
    tags.set("teacher", teacher_path.string()).set("teacher_bn", dl::nn::teacher_bn_name(bn))
        .set("teacher_params", dl::nn::num_parameters(teacher->module().encoder))
        .set("teacher_flops_per_series", TeacherNet::encoder_flops(L))
        .set("balance", cfg.balance > 0 ? cfg.balance : dl::losses::disco_balance(batch));
  }
  auto embed = [&](const dl::Tensor<float, 3, dl::Cpu>& x) { return learner.embed(dl::constant(ctx, x.clone())); };
  const auto e0 = std::chrono::steady_clock::now();
  auto r = dl::examples::evaluate_run(ctx, splits, embed, dir, a.probe_steps, a.kmeans_restarts, a.seed, tags);
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

int run(const Args& a) {
  dl::data::UcrOptions uo;
  uo.root = a.data_root;
  const auto splits = dl::data::load_ucr(a.dataset, uo);
  switch (dl::models::parse_disco_variant(a.variant)) {
    case DiscoVariant::Teacher: return run_variant<TeacherNet>(a, splits, DiscoVariant::Teacher);
    case DiscoVariant::Student: return run_variant<StudentNet>(a, splits, DiscoVariant::Student);
    case DiscoVariant::Disco: return run_variant<StudentNet>(a, splits, DiscoVariant::Disco);
    case DiscoVariant::DiscoWide: return run_variant<WideNet>(a, splits, DiscoVariant::DiscoWide);
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  return dl::examples::guarded_main("disco", [&] { return run(parse(argc, argv)); });
}
