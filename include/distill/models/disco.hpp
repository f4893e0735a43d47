// distill/models/disco.hpp -- DisCo (Gao et al., ECCV 2022) at UCR scale: a frozen self-supervised teacher distilled
// into a lightweight MoCo-v2 student through the final embedding. docs/disco.md has the method and its sources.
//
//   DiscoNet<W, H>     ResNet1D(W) encoder + MLP head Linear(2W, H) -> ReLU -> Linear(H, 128) (the losses normalise)
//   DiscoTeacherNet    DiscoNet<128, 256>  (ResNet1D(128), head hidden 2W as MoCo-v2's teachers)
//   DiscoStudentNet    DiscoNet<16, 64>    (ResNet1D(16): about 1/64 of the teacher's convolution FLOPs)
//   DiscoWideNet       DiscoNet<16, 512>   (the enlarged head: DisCo's "distilling bottleneck" fix)
//   DiscoLearner<Net>  one self-supervised learner: the query net, its nn::MomentumEncoder (when a queue is used) and
//                      an optional nn::FrozenTeacher; loss(x1, x2) gives MoCo-v2 (or in-batch SimCLR) + distillation.
//
// The variants are a runtime switch (DiscoVariant): Teacher (pre-train the teacher with MoCo-v2), Student (the student
// alone), Disco (student + distillation), DiscoWide (the same with the 512-wide head). Each variant's net is a type, so
// a program picks the learner type from the variant at run time (examples/disco).
#pragma once

#include <algorithm>
#include <optional>
#include <string>

#include "distill/dist/gather.hpp"
#include "distill/losses/disco.hpp"
#include "distill/models/resnet1d.hpp"
#include "distill/nn/frozen.hpp"
#include "distill/nn/heads.hpp"
#include "distill/nn/momentum.hpp"

namespace distill::models {

enum class DiscoVariant { Teacher, Student, Disco, DiscoWide };

inline const char* variant_name(DiscoVariant v) {
  switch (v) {
    case DiscoVariant::Teacher: return "teacher";
    case DiscoVariant::Student: return "student";
    case DiscoVariant::Disco: return "disco";
    case DiscoVariant::DiscoWide: return "disco-wide";
  }
  return "?";
}

inline DiscoVariant parse_disco_variant(const std::string& s) {
  if (s == "teacher") return DiscoVariant::Teacher;
  if (s == "student" || s == "moco") return DiscoVariant::Student;
  if (s == "disco") return DiscoVariant::Disco;
  if (s == "disco-wide" || s == "wide") return DiscoVariant::DiscoWide;
  DISTILL_FAIL("unknown DisCo variant '", s, "': expected teacher, student, disco or disco-wide");
}

/// Whether the variant distills from a teacher.
inline bool uses_teacher(DiscoVariant v) { return v == DiscoVariant::Disco || v == DiscoVariant::DiscoWide; }

/// Encoder + projection head. forward() gives the raw 128-d projection (the losses L2-normalise); embed() the GAP
/// representation [B, 2W] used downstream (the head is dropped after pre-training).
template <index_t W, index_t Hidden, class T = float, class D = Cpu>
class DiscoNet : public nn::Module<DiscoNet<W, Hidden, T, D>> {
public:
  using value_type = T;
  using device_type = D;
  static constexpr index_t width = W;
  static constexpr index_t hidden = Hidden;
  static constexpr index_t proj_dim = 128;
  static constexpr index_t embed_dim = 2 * W;
  using Encoder = ResNet1D<W, 1, T, D>;
  using Head = nn::MLPHead<2 * W, Hidden, proj_dim, T, D>;
  static constexpr unsigned parameter_ranks = nn::parameter_ranks_union<Encoder, Head>();
  static constexpr unsigned buffer_ranks = nn::buffer_ranks_union<Encoder, Head>();

  static constexpr nn::name_string type_name() { return nn::name("DiscoNet<", W, ", ", Hidden, ">"); }

  explicit DiscoNet(Context<D>& ctx) : encoder(ctx), head(ctx) {}

  Var<T, 2, D> forward(const Var<T, 3, D>& x) { return head(encoder(x)); }
  Var<T, 2, D> embed(const Var<T, 3, D>& x) { return encoder(x); }

  /// Forward FLOPs per series of length L: the deployed encoder alone, and with the head (pre-training only).
  static constexpr double encoder_flops(index_t L) { return Encoder::flops_per_series(L); }
  static constexpr double head_flops() { return 2.0 * double(2 * W * Hidden + Hidden * proj_dim); }

  void train(bool on = true) {
    this->training_ = on;
    encoder.train(on);
    head.train(on);
  }

  template <class Self, class F>
  static void visit_parameters(Self& self, F&& f) {
    self.encoder.for_each_parameter([&](std::string_view n, auto& v) { f(nn::detail::join("encoder", n), v); });
    self.head.for_each_parameter([&](std::string_view n, auto& v) { f(nn::detail::join("head", n), v); });
  }
  template <class Self, class F>
  static void visit_buffers(Self& self, F&& f) {
    self.encoder.for_each_buffer([&](std::string_view n, auto& t) { f(nn::detail::join("encoder", n), t); });
  }

  Encoder encoder;
  Head head;
};

template <class T = float, class D = Cpu>
using DiscoTeacherNet = DiscoNet<128, 256, T, D>;
template <class T = float, class D = Cpu>
using DiscoStudentNet = DiscoNet<16, 64, T, D>;
template <class T = float, class D = Cpu>
using DiscoWideNet = DiscoNet<16, 512, T, D>;

struct DiscoConfig {
  double tau = 0.2;            // InfoNCE / NT-Xent temperature
  double momentum = 0.99;      // key-encoder EMA
  index_t queue_size = 0;      // MoCo queue K; 0: in-batch (SimCLR) negatives, no key encoder
  double balance = 0;          // distillation weight; 0: 32 / B per batch
  index_t shuffle_groups = 1;  // shuffle-BN sub-batches of the key encoder (1: off)
};

/// The UCR-scale rule: K = min(1024, floor(N / B) * B) keys, or in-batch negatives when N < 64 (MoCo needs K >> B).
inline index_t disco_queue_size(index_t n_train, index_t batch) {
  DISTILL_CHECK(n_train >= 1 && batch >= 1, "disco_queue_size: n_train and batch must be >= 1, got ", n_train,
                " and ", batch);
  if (n_train < 64) return 0;
  return std::min<index_t>(1024, (n_train / batch) * batch);
}

/// The parts of one step's loss.
template <class T, class D>
using DiscoLoss = losses::DiscoLossParts<T, D>;

/// One self-supervised learner: MoCo-v2 on `Net` (or SimCLR when cfg.queue_size == 0), distilled from `teacher` if
/// one is given (it must outlive the learner). Call loss(x1, x2) once per step, then backward and the optimizer on
/// trainable(): loss() first moves the key encoder towards the query net (MoCo's order) and enqueues its keys.
template <class Net, class TeacherNet = DiscoTeacherNet<typename Net::value_type, typename Net::device_type>>
class DiscoLearner {
public:
  using T = typename Net::value_type;
  using D = typename Net::device_type;
  using Teacher = nn::FrozenTeacher<TeacherNet>;

  DiscoLearner(Context<D>& ctx, DiscoConfig cfg, Teacher* teacher = nullptr)
      : cfg_(cfg), teacher_(teacher), net(ctx) {
    DISTILL_CHECK(cfg.queue_size >= 0, "DiscoLearner: queue_size must be >= 0, got ", cfg.queue_size);
    if (cfg.queue_size > 0)
      key.emplace(ctx, net,
                  nn::MomentumOptions{.momentum = cfg.momentum, .queue_size = cfg.queue_size,
                                      .key_dim = Net::proj_dim, .shuffle_groups = cfg.shuffle_groups});
  }

  const DiscoConfig& config() const noexcept { return cfg_; }
  bool in_batch() const noexcept { return !key.has_value(); }
  bool distills() const noexcept { return teacher_ != nullptr; }

  /// What the optimizer updates: the query net only (never the key encoder or the teacher).
  ParamList<T, D> trainable() { return params(net); }

  /// The loss of one step on two augmented views [B, 1, L] of the same batch.
  DiscoLoss<T, D> loss(const Var<T, 3, D>& x1, const Var<T, 3, D>& x2) {
    DISTILL_CHECK(x1.shape() == x2.shape(), "DiscoLearner: the two views have shapes ", to_string(x1.shape()),
                  " and ", to_string(x2.shape()));
    DISTILL_CHECK(x1.extent(0) >= 2, "DiscoLearner: a contrastive batch needs >= 2 series, got ",
                  to_string(x1.shape()));
    const losses::DiscoLossOptions lo{.tau = cfg_.tau, .balance = cfg_.balance};
    // On data-parallel ranks the loss sees the global batch: every rank's rows of each output, gathered
    // (dist/gather.hpp), and the queue takes every rank's keys in rank order (the same queue on every rank).
    const bool global = x1.ctx().world_size() > 1;
    auto rows = [global](const Var<T, 2, D>& v) { return global && v.defined() ? dist::all_gather_rows(v) : v; };
    Var<T, 2, D> q1 = rows(net(x1)), q2, k, t1, t2;
    if (in_batch() || distills()) q2 = rows(net(x2));
    if (distills()) {
      t1 = rows((*teacher_)(x1));
      t2 = rows((*teacher_)(x2));
    }
    if (in_batch()) return losses::disco_loss(q1, q2, k, Tensor<T, 2, D>{}, t1, t2, lo);
    key->update(net);
    k = rows(key->keys(x2));
    auto out = losses::disco_loss(q1, q2, k, key->queue(), t1, t2, lo);
    key->enqueue(k);  // the loss holds its own copy of the negatives
    return out;
  }

  /// The downstream representation [B, 2W] (call under NoGradGuard with train(false)).
  Var<T, 2, D> embed(const Var<T, 3, D>& x) { return net.embed(x); }

  void train(bool on = true) { net.train(on); }

private:
  DiscoConfig cfg_;
  Teacher* teacher_;

public:
  Net net;
  std::optional<nn::MomentumEncoder<Net>> key;
};

}  // namespace distill::models
