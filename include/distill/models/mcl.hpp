// distill/models/mcl.hpp -- MCL and L-MCL: a cohort of networks trained together (Yang, An, Cai, Xu, "Mutual
// Contrastive Learning for Visual Representation Learning", AAAI 2022; Yang et al., "Online Knowledge Distillation
// via Mutual Contrastive Learning for Visual Recognition", TPAMI 2023). docs/mcl.md has the maths and choices.
//
// snippet: fragment; includes: distill/optim/adam.hpp; given: Context<Cpu> ctx; index_t num_classes = 3;
// Var<float, 3> x; std::vector<int> labels; Tensor<float, 3> test_x; std::vector<index_t> test_labels;
//   models::Cohort<> cohort{{.layerwise = false}};
//   cohort.add_network<32>(ctx, num_classes);  cohort.add_network<16>(ctx, num_classes);  // MCL x2 (widths may differ)
//   optim::Adam<float> opt{cohort.trainable(), {.lr = 1e-3}};
//   auto loss = cohort.loss(x, labels);  opt.zero_grad();  loss.total.backward();  opt.step();  // CE + MCL terms
//   auto acc = cohort.accuracy(ctx, test_x, test_labels);                  // per network and the ensemble
//
// Each network is a ResNet1D(W) (blocks W, 2W, 2W; kernels 8/5/3; GAP) with a linear classifier and an Embed head
// (Linear(2W, 128) -> ReLU -> Linear(128, 128); the losses L2-normalise). With shared_stem (a cohort of four in
// the papers) the first block is owned by network 0 and run once; every network branches after it, so the stem's
// gradient is the sum of all branches' gradients.
// L-MCL (layerwise): two more exits per network, from fresh copies of the later blocks (block-1 output -> copies of
// blocks 2 and 3; block-2 output -> a copy of block 3), each with GAP, classifier and Embed head; an aggregator
// Linear(3*2W, 2W) -> ReLU -> Linear(2W, 3) -> softmax giving attention over the three exits' logits; a weight
// network (Linear(2W, 128) per exit) whose cosine-sigmoid scores weight every cross-network exit pair; and the
// meta step (optim/meta.hpp: a finite-difference approximation of the unrolled bilevel gradient).
#pragma once

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "distill/io/checkpoint.hpp"
#include "distill/losses/mcl.hpp"
#include "distill/nn/nn.hpp"
#include "distill/ops/columns.hpp"
#include "distill/ops/linear.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/ops/pool.hpp"
#include "distill/ops/shape_ops.hpp"
#include "distill/ops/softmax.hpp"
#include "distill/optim/meta.hpp"

namespace distill::models {

struct MclConfig {
  losses::MclWeights weights{};  // tau, T, alpha, gamma, beta, lambda
  bool layerwise = false;        // L-MCL (exits, aggregator, weight network)
  bool shared_stem = false;      // networks 1.. branch after network 0's first block (same width required)
  bool logit_distill = false;    // MCL: + KL_T(logits_a || sg mean_b logits_b) for every network a
  double kd_temperature = 3.0;   // T of the logit distillation (MCL option, L-MCL's logit KD)
};

/// One exit of a network: GAP feature [B, 2W], logits [B, K], Embed output [B, 128] (undefined if not asked).
template <class T, class D>
struct Exit {
  Var<T, 2, D> feature, logits, embed;
};

/// A network's exits: one for MCL, three for L-MCL (block-1 branch, block-2 branch, the network's own output).
template <class T, class D>
struct NetOutput {
  std::vector<Exit<T, D>> exits;
  const Exit<T, D>& final() const { return exits.back(); }
};

/// The type-erased face of one cohort network (widths differ between networks, so the cohort stores pointers).
template <class T, class D>
class CohortMember {
public:
  virtual ~CohortMember() = default;
  virtual index_t width() const = 0;
  virtual bool owns_stem() const = 0;
  virtual int num_exits() const = 0;
  /// The first block's output [B, W, L].
  virtual Var<T, 3, D> stem(const Var<T, 3, D>& x) = 0;
  /// Everything after the first block.
  virtual NetOutput<T, D> forward(const Var<T, 3, D>& h1, bool with_embed) = 0;
  /// L-MCL: attention-weighted sum of the exits' logits [B, K].
  virtual Var<T, 2, D> aggregate(const NetOutput<T, D>& out) = 0;
  /// L-MCL: the weight network's projection of exit k's feature, [B, 128].
  virtual Var<T, 2, D> weight_projection(int exit, const Var<T, 2, D>& feature) = 0;
  /// theta: blocks (with the stem when owned), classifiers, Embed heads.
  virtual ParamList<T, D> params() = 0;
  virtual ParamList<T, D> aggregator_params() = 0;
  /// phi: the weight network.
  virtual ParamList<T, D> weight_params() = 0;
  virtual void set_training(bool on) = 0;
  virtual void put(io::Checkpoint& ck, const std::string& prefix) const = 0;
  virtual void load(const io::Checkpoint& ck, const std::string& prefix) = 0;
};

namespace mcl_detail {
/// A linear classifier [K, C] + bias, PyTorch Linear initialisation.
template <class T, class D>
struct Classifier {
  Var<T, 2, D> w;
  Var<T, 1, D> b;
  Classifier(Context<D>& ctx, index_t classes, index_t in) {
    Tensor<T, 2, Cpu> hw(Shape<2>{classes, in});
    Tensor<T, 1, Cpu> hb(Shape<1>{classes});
    const double bound = 1.0 / std::sqrt(double(in));
    nn::init::uniform(hw, bound, ctx.rng());
    nn::init::uniform(hb, bound, ctx.rng());
    w = nn::detail::make_parameter(ctx, std::move(hw));
    b = nn::detail::make_parameter(ctx, std::move(hb));
  }
  Var<T, 2, D> operator()(const Var<T, 2, D>& f) const { return linear(f, w, b); }
};
}  // namespace mcl_detail

/// ResNet1D(W) with a classifier and an Embed head, optionally without its own first block (shared stem) and
/// optionally with L-MCL's two auxiliary exits, aggregator and weight network.
template <index_t W, class T = float, class D = Cpu>
class MclNet final : public CohortMember<T, D>, public nn::Module<MclNet<W, T, D>> {
public:
  static constexpr index_t feature_dim = 2 * W;
  static constexpr index_t embed_dim = 128;
  using Block1 = nn::ResNetBlock1D<1, W, T, D>;
  using Block2 = nn::ResNetBlock1D<W, 2 * W, T, D>;
  using Block3 = nn::ResNetBlock1D<2 * W, 2 * W, T, D>;
  using Embed = nn::MLPHead<2 * W, embed_dim, embed_dim, T, D>;
  using Proj = nn::Linear<2 * W, embed_dim, nn::LinearConfig{}, T, D>;
  using Agg1 = nn::Linear<3 * 2 * W, 2 * W, nn::LinearConfig{}, T, D>;
  using Agg2 = nn::Linear<2 * W, 3, nn::LinearConfig{}, T, D>;
  using value_type = T;
  using device_type = D;
  // The exits' classifiers hold a weight (rank 2) and a bias (rank 1) directly.
  static constexpr unsigned parameter_ranks =
      nn::parameter_ranks_union<Block1, Block2, Block3, Embed, Proj, Agg1, Agg2>() | nn::ranks(1, 2);
  static constexpr unsigned buffer_ranks = nn::buffer_ranks_union<Block1, Block2, Block3, Embed, Proj, Agg1, Agg2>();

  static constexpr nn::name_string type_name() { return nn::name("MclNet<", W, ">"); }

  MclNet(Context<D>& ctx, index_t num_classes, bool own_stem, bool layerwise) {
    DISTILL_CHECK(num_classes >= 2, "MclNet: num_classes must be >= 2, got ", num_classes);
    if (own_stem) b1_.emplace(ctx);
    b2_.emplace(ctx);
    b3_.emplace(ctx);
    const int exits = layerwise ? 3 : 1;
    for (int k = 0; k < exits; ++k) {
      cls_.emplace_back(ctx, num_classes, 2 * W);
      embed_.emplace_back(ctx);
    }
    if (layerwise) {
      aux1_b2_.emplace(ctx);
      aux1_b3_.emplace(ctx);
      aux2_b3_.emplace(ctx);
      agg1_.emplace(ctx);
      agg2_.emplace(ctx);
      for (int k = 0; k < 3; ++k) proj_.emplace_back(ctx);
    }
  }

  index_t width() const override { return W; }
  bool owns_stem() const override { return b1_.has_value(); }
  int num_exits() const override { return static_cast<int>(cls_.size()); }

  Var<T, 3, D> stem(const Var<T, 3, D>& x) override {
    DISTILL_CHECK(b1_.has_value(), type_name().c_str(), ": this network shares another network's stem");
    DISTILL_CHECK(x.extent(1) == 1, type_name().c_str(), ": input ", to_string(x.shape()),
                  " must be univariate [B, 1, L]");
    return b1_->forward(x);
  }

  NetOutput<T, D> forward(const Var<T, 3, D>& h1, bool with_embed) override {
    DISTILL_CHECK(h1.extent(1) == W, type_name().c_str(), ": stem output ", to_string(h1.shape()), " has ",
                  h1.extent(1), " channels, expected ", W, " (a shared stem needs equal widths)");
    auto h2 = b2_->forward(h1);
    auto h3 = b3_->forward(h2);
    std::vector<Var<T, 2, D>> feats;
    if (num_exits() == 3) {
      feats.push_back(global_avg_pool(aux1_b3_->forward(aux1_b2_->forward(h1))));
      feats.push_back(global_avg_pool(aux2_b3_->forward(h2)));
    }
    feats.push_back(global_avg_pool(h3));
    NetOutput<T, D> out;
    for (std::size_t k = 0; k < feats.size(); ++k) {
      Exit<T, D> e;
      e.feature = feats[k];
      e.logits = cls_[k](feats[k]);
      if (with_embed) e.embed = embed_[k](feats[k]);
      out.exits.push_back(std::move(e));
    }
    return out;
  }

  Var<T, 2, D> aggregate(const NetOutput<T, D>& out) override {
    DISTILL_CHECK(num_exits() == 3 && out.exits.size() == 3, type_name().c_str(),
                  ": aggregate() needs the three exits of L-MCL (build the cohort with layerwise = true)");
    DISTILL_CHECK(has_column_ops<D>, "L-MCL's aggregator runs on the Cpu device only (ops/columns.hpp)");
    const auto& e = out.exits;
    auto att = softmax(agg2_->forward(relu(agg1_->forward(concat1(e[0].feature, e[1].feature, e[2].feature)))));
    return mix_columns(att, e[0].logits, e[1].logits, e[2].logits);
  }

  Var<T, 2, D> weight_projection(int exit, const Var<T, 2, D>& feature) override {
    DISTILL_CHECK(exit >= 0 && exit < static_cast<int>(proj_.size()), type_name().c_str(),
                  ": no weight-network projection for exit ", exit);
    return proj_[static_cast<std::size_t>(exit)].forward(feature);
  }

  ParamList<T, D> params() override {
    ParamList<T, D> p;
    if (b1_) p.add_module(*b1_);
    p.add_module(*b2_);
    p.add_module(*b3_);
    if (aux1_b2_) {
      p.add_module(*aux1_b2_);
      p.add_module(*aux1_b3_);
      p.add_module(*aux2_b3_);
    }
    for (std::size_t k = 0; k < cls_.size(); ++k) {
      p.add(cls_[k].w);
      p.add(cls_[k].b);
      p.add_module(embed_[k]);
    }
    return p;
  }
  ParamList<T, D> aggregator_params() override {
    ParamList<T, D> p;
    if (agg1_) {
      p.add_module(*agg1_);
      p.add_module(*agg2_);
    }
    return p;
  }
  ParamList<T, D> weight_params() override {
    ParamList<T, D> p;
    for (auto& m : proj_) p.add_module(m);
    return p;
  }

  void set_training(bool on) override {
    this->training_ = on;
    auto f = [on](auto& m) { m.train(on); };
    if (b1_) f(*b1_);
    f(*b2_);
    f(*b3_);
    if (aux1_b2_) {
      f(*aux1_b2_);
      f(*aux1_b3_);
      f(*aux2_b3_);
    }
  }

  void put(io::Checkpoint& ck, const std::string& prefix) const override { ck.put_module(*this, prefix); }
  void load(const io::Checkpoint& ck, const std::string& prefix) override { ck.load_module(*this, prefix); }

  /// Names: block1 (when owned), block2, block3, aux1.block2, aux1.block3, aux2.block3, exit<k>.cls.{weight,bias},
  /// exit<k>.embed.*, aggregator.{0,2}.*, weightnet.<k>.*.
  template <class Self, class F>
  static void visit_parameters(Self& s, F&& f) {
    visit_blocks(s, [&](std::string_view n, auto& m) {
      m.for_each_parameter([&](std::string_view p, auto& v) { f(nn::detail::join(n, p), v); });
    });
    for (std::size_t k = 0; k < s.cls_.size(); ++k) {
      const std::string e = "exit" + std::to_string(k);
      f(e + ".cls.weight", s.cls_[k].w);
      f(e + ".cls.bias", s.cls_[k].b);
      s.embed_[k].for_each_parameter([&](std::string_view p, auto& v) { f(nn::detail::join(e + ".embed", p), v); });
    }
    if (s.agg1_) {
      s.agg1_->for_each_parameter([&](std::string_view p, auto& v) { f(nn::detail::join("aggregator.0", p), v); });
      s.agg2_->for_each_parameter([&](std::string_view p, auto& v) { f(nn::detail::join("aggregator.2", p), v); });
    }
    for (std::size_t k = 0; k < s.proj_.size(); ++k)
      s.proj_[k].for_each_parameter(
          [&](std::string_view p, auto& v) { f(nn::detail::join("weightnet." + std::to_string(k), p), v); });
  }
  template <class Self, class F>
  static void visit_buffers(Self& s, F&& f) {
    visit_blocks(s, [&](std::string_view n, auto& m) {
      m.for_each_buffer([&](std::string_view p, auto& t) { f(nn::detail::join(n, p), t); });
    });
  }

private:
  template <class Self, class F>
  static void visit_blocks(Self& s, F&& f) {
    if (s.b1_) f("block1", *s.b1_);
    f("block2", *s.b2_);
    f("block3", *s.b3_);
    if (s.aux1_b2_) {
      f("aux1.block2", *s.aux1_b2_);
      f("aux1.block3", *s.aux1_b3_);
      f("aux2.block3", *s.aux2_b3_);
    }
  }

  std::optional<Block1> b1_;
  std::optional<Block2> b2_, aux1_b2_;
  std::optional<Block3> b3_, aux1_b3_, aux2_b3_;
  std::vector<mcl_detail::Classifier<T, D>> cls_;
  std::vector<Embed> embed_;
  std::optional<Agg1> agg1_;
  std::optional<Agg2> agg2_;
  std::vector<Proj> proj_;
};

/// One step's loss and its parts (for logging). pair_weights: L-MCL's mean weight of every cross-network exit
/// pair, indexed by Cohort::pair_index.
template <class T, class D>
struct CohortLoss {
  Var<T, 0, D> total;
  double ce = 0, vcl = 0, icl = 0, soft_vcl = 0, soft_icl = 0, kd = 0;
  std::vector<double> pair_weights;
};

/// Test accuracy of every network (its final exit) and of the ensemble of summed logits.
struct CohortAccuracy {
  std::vector<double> network;
  double ensemble = 0;
  double mean() const {
    double s = 0;
    for (double a : network) s += a;
    return network.empty() ? 0 : s / double(network.size());
  }
};

template <class T = float, class D = Cpu>
class Cohort {
public:
  explicit Cohort(MclConfig cfg = {}) : cfg_(cfg) {}

  /// Appends a ResNet1D(W) network. With shared_stem, networks after the first use the first one's block 1 and
  /// must have its width.
  template <index_t W>
  MclNet<W, T, D>& add_network(Context<D>& ctx, index_t num_classes) {
    const bool own = !cfg_.shared_stem || nets_.empty();
    DISTILL_CHECK(own || nets_.front()->width() == W, "Cohort: a shared stem needs equal widths (network 0 has W = ",
                  nets_.front()->width(), ", the new one W = ", W, ")");
    auto p = std::make_unique<MclNet<W, T, D>>(ctx, num_classes, own, cfg_.layerwise);
    auto& ref = *p;
    nets_.push_back(std::move(p));
    return ref;
  }

  const MclConfig& config() const noexcept { return cfg_; }
  std::size_t size() const noexcept { return nets_.size(); }
  CohortMember<T, D>& operator[](std::size_t i) { return *nets_.at(i); }
  int num_exits() const { return cfg_.layerwise ? 3 : 1; }

  /// Every network's exits (shared stem: block 1 runs once).
  std::vector<NetOutput<T, D>> forward(const Var<T, 3, D>& x, bool with_embed = true) {
    DISTILL_CHECK(!nets_.empty(), "Cohort: no networks (call add_network<W>() first)");
    std::vector<NetOutput<T, D>> out;
    Var<T, 3, D> shared;
    if (cfg_.shared_stem) shared = nets_.front()->stem(x);
    for (auto& n : nets_) out.push_back(n->forward(cfg_.shared_stem ? shared : n->stem(x), with_embed));
    return out;
  }

  /// theta (networks, classifiers, Embed heads) plus, for L-MCL, the aggregators: what the main optimizer updates.
  ParamList<T, D> trainable() {
    ParamList<T, D> p = network_params();
    for (auto& n : nets_) p.append(n->aggregator_params());
    return p;
  }
  ParamList<T, D> network_params() {
    ParamList<T, D> p;
    for (auto& n : nets_) p.append(n->params());
    return p;
  }
  /// phi: the weight networks (L-MCL's meta step updates them).
  ParamList<T, D> weight_params() {
    ParamList<T, D> p;
    for (auto& n : nets_) p.append(n->weight_params());
    return p;
  }

  void train(bool on = true) {
    for (auto& n : nets_) n->set_training(on);
  }

  /// The training loss of one batch: independent CE (one network), MCL or L-MCL.
  CohortLoss<T, D> loss(const Var<T, 3, D>& x, std::span<const int> labels) {
    DISTILL_CHECK(index_t(labels.size()) == x.extent(0), "Cohort::loss: ", labels.size(), " labels for a batch of ",
                  x.extent(0));
    DISTILL_CHECK(!cfg_.layerwise || has_column_ops<D>,
                  "Cohort: L-MCL runs on the Cpu device only (ops/columns.hpp); MCL runs on both");
    return cfg_.layerwise ? layerwise_loss(x, labels) : mcl_loss(x, labels);
  }

  /// Index of the exit pair (network i exit k, network j exit z), i < j, in CohortLoss::pair_weights.
  std::size_t pair_index(std::size_t i, int k, std::size_t j, int z) const {
    const std::size_t E = static_cast<std::size_t>(num_exits());
    std::size_t idx = 0;
    for (std::size_t a = 0; a < nets_.size(); ++a)
      for (std::size_t b = a + 1; b < nets_.size(); ++b) {
        if (a == i && b == j) return idx + static_cast<std::size_t>(k) * E + static_cast<std::size_t>(z);
        idx += E * E;
      }
    DISTILL_FAIL("Cohort::pair_index: no pair (", i, ", ", j, ") with i < j in a cohort of ", nets_.size());
  }
  /// "net<i>.exit<k>-net<j>.exit<z>" for every pair, in pair_index order.
  std::vector<std::string> pair_names() const {
    std::vector<std::string> out;
    for (std::size_t a = 0; a < nets_.size(); ++a)
      for (std::size_t b = a + 1; b < nets_.size(); ++b)
        for (int k = 0; k < num_exits(); ++k)
          for (int z = 0; z < num_exits(); ++z)
            out.push_back("net" + std::to_string(a) + ".exit" + std::to_string(k) + "-net" + std::to_string(b) +
                          ".exit" + std::to_string(z));
    return out;
  }

  /// L-MCL's weighted contrastive objective L_MCL(theta, phi) on the batch. phi_grad: the weights carry a
  /// gradient to the weight network (and, through the exit features, to theta); otherwise they are constants.
  /// theta_grad = false runs the networks under NoGradGuard (only phi's gradient is wanted).
  /// teacher: exits whose embeddings stand in for the stop-gradient teacher similarities (the meta step passes
  /// the unperturbed parameters' exits); by default the batch's own.
  Var<T, 0, D> layerwise_contrast(const Var<T, 3, D>& x, std::span<const int> labels, bool phi_grad,
                                  bool theta_grad = true, const std::vector<NetOutput<T, D>>* teacher = nullptr) {
    std::vector<NetOutput<T, D>> out;
    if (theta_grad) {
      out = forward(x, true);
    } else {
      NoGradGuard ng(x.ctx());
      out = forward(x, true);
    }
    return contrast_of(out, labels, phi_grad, nullptr, teacher);
  }

  /// L-MCL's outer objective: cross-entropy on every exit of every network.
  Var<T, 0, D> exit_cross_entropy(const Var<T, 3, D>& x, std::span<const int> labels) {
    Var<T, 0, D> ce;
    for (auto& o : forward(x, false))
      for (auto& e : o.exits) losses::detail::accumulate(ce, cross_entropy(e.logits, labels));
    return ce;
  }

  /// L-MCL's meta step on a batch: the finite-difference hyper-gradient of the exit CE after one virtual plain-SGD
  /// step (rate lr) on L_MCL, written into the weight networks' gradients; the networks are restored bitwise.
  /// An approximation of the reference's unrolled second-order gradient (docs/mcl.md). Follow with phi's optimizer.
  /// The soft terms' teachers are stop-gradient, so the virtual step follows a pseudo-gradient; the perturbed
  /// passes therefore keep the teacher similarities at the unperturbed parameters (then the finite difference
  /// approximates d/dphi of that pseudo-gradient, as the unrolled reference differentiates it).
  optim::HypergradResult meta_step(const Var<T, 3, D>& x, std::span<const int> labels, double lr,
                                   double eps_scale = 0.01) {
    DISTILL_CHECK(cfg_.layerwise && nets_.size() >= 2, "Cohort::meta_step needs an L-MCL cohort of >= 2 networks");
    std::vector<NetOutput<T, D>> teacher;
    {
      NoGradGuard ng(x.ctx());
      teacher = forward(x, true);
    }
    return optim::fd_hypergradient(
        network_params(), weight_params(), [&] { return layerwise_contrast(x, labels, true, true); },
        [&] { return layerwise_contrast(x, labels, true, false, &teacher); },
        [&] { return exit_cross_entropy(x, labels); }, {.lr = lr, .eps_scale = eps_scale});
  }

  /// Final-exit logits of every network on the host series x (eval mode, no graph), in chunks of `chunk` series; on
  /// the Cuda device each chunk is uploaded and its logits copied back.
  std::vector<Tensor<T, 2, Cpu>> predict(Context<D>& ctx, const Tensor<T, 3, Cpu>& x, index_t chunk = 256) {
    NoGradGuard ng(ctx);
    train(false);
    std::vector<Tensor<T, 2, Cpu>> logits;
    const index_t N = x.extent(0);
    for (index_t s = 0; s < N; s += chunk) {
      const index_t n = std::min(chunk, N - s);
      auto out = forward(constant(ctx, to_device(ctx, x.slice0(s, n))), false);
      if (logits.empty())
        for (auto& o : out) logits.emplace_back(Shape<2>{N, o.final().logits.extent(1)});
      for (std::size_t m = 0; m < out.size(); ++m) {
        const Tensor<T, 2, Cpu> v = to_host(ctx, out[m].final().logits.value());  // one copy per chunk on Cuda
        std::memcpy(logits[m].data() + s * v.extent(1), v.data(), sizeof(T) * static_cast<std::size_t>(v.numel()));
      }
    }
    train(true);
    return logits;
  }

  /// Accuracy of each network and of the ensemble (summed logits) on (x, labels).
  CohortAccuracy accuracy(Context<D>& ctx, const Tensor<T, 3, Cpu>& x, std::span<const index_t> labels) {
    const auto logits = predict(ctx, x);
    CohortAccuracy acc;
    const index_t N = x.extent(0), K = logits.front().extent(1);
    auto argmax_hits = [&](auto&& row) {
      index_t hits = 0;
      for (index_t i = 0; i < N; ++i) {
        index_t best = 0;
        for (index_t k = 1; k < K; ++k)
          if (row(i, k) > row(i, best)) best = k;
        hits += best == labels[static_cast<std::size_t>(i)];
      }
      return double(hits) / double(N);
    };
    for (const auto& l : logits) acc.network.push_back(argmax_hits([&](index_t i, index_t k) { return l(i, k); }));
    acc.ensemble = argmax_hits([&](index_t i, index_t k) {
      double s = 0;
      for (const auto& l : logits) s += double(l(i, k));
      return s;
    });
    return acc;
  }

  /// Every network's parameters and buffers under "net<i>." (under "<prefix>.net<i>." with a prefix).
  void put(io::Checkpoint& ck, const std::string& prefix = {}) const {
    for (std::size_t i = 0; i < nets_.size(); ++i) nets_[i]->put(ck, net_name(prefix, i));
  }
  void load(const io::Checkpoint& ck, const std::string& prefix = {}) {
    for (std::size_t i = 0; i < nets_.size(); ++i) nets_[i]->load(ck, net_name(prefix, i));
  }

private:
  static std::string net_name(const std::string& prefix, std::size_t i) {
    return (prefix.empty() ? std::string() : prefix + ".") + "net" + std::to_string(i);
  }
  CohortLoss<T, D> mcl_loss(const Var<T, 3, D>& x, std::span<const int> labels) {
    const std::size_t M = nets_.size();
    auto out = forward(x, M >= 2);
    CohortLoss<T, D> r;
    Var<T, 0, D> ce;
    for (auto& o : out) losses::detail::accumulate(ce, cross_entropy(o.final().logits, labels));
    r.ce = item(ce);
    r.total = ce;
    if (M >= 2) {
      std::vector<Var<T, 2, D>> v;
      for (auto& o : out) v.push_back(o.final().embed);
      auto t = losses::mcl_terms<T, D>(v, labels, cfg_.weights);
      record(r, t);
      if (t.total.defined()) r.total = add(r.total, t.total);  // undefined when every weight is 0
      if (cfg_.logit_distill) {
        Var<T, 2, D> mean = out[0].final().logits.detach();
        for (std::size_t a = 1; a < M; ++a) mean = add(mean, out[a].final().logits.detach());
        mean = scale(mean, static_cast<T>(1.0 / double(M)));
        Var<T, 0, D> kd;
        for (auto& o : out) losses::detail::accumulate(kd, losses::kd_kl(o.final().logits, mean, cfg_.kd_temperature));
        r.kd = item(kd);
        r.total = add(r.total, kd);
      }
    }
    return r;
  }

  CohortLoss<T, D> layerwise_loss(const Var<T, 3, D>& x, std::span<const int> labels) {
    const std::size_t M = nets_.size();
    auto out = forward(x, M >= 2);
    CohortLoss<T, D> r;
    Var<T, 0, D> ce;
    std::vector<Var<T, 2, D>> agg;
    for (std::size_t i = 0; i < M; ++i) {
      for (auto& e : out[i].exits) losses::detail::accumulate(ce, cross_entropy(e.logits, labels));
      agg.push_back(nets_[i]->aggregate(out[i]));
      losses::detail::accumulate(ce, cross_entropy(agg.back(), labels));
    }
    r.ce = item(ce);
    r.total = ce;
    if (M < 2) return r;
    Var<T, 0, D> kd;
    for (std::size_t i = 0; i < M; ++i)
      for (std::size_t j = 0; j < M; ++j)
        if (i != j) losses::detail::accumulate(kd, losses::kd_kl(out[i].final().logits, agg[j], cfg_.kd_temperature));
    r.kd = item(kd);
    r.total = add(r.total, kd);
    auto contrast = contrast_of(out, labels, false, &r);
    if (contrast.defined()) r.total = add(r.total, contrast);
    return r;
  }

  /// sum over network pairs i < j and exits k, z of 2 * pair_contrast(E_ik, E_jz, w_ik,jz): the ordered pairs
  /// (i, j) and (j, i) give the same value (the pair contrast and the weight are symmetric), so each unordered pair
  /// is computed once and doubled.
  Var<T, 0, D> contrast_of(const std::vector<NetOutput<T, D>>& out, std::span<const int> labels, bool phi_grad,
                           CohortLoss<T, D>* parts, const std::vector<NetOutput<T, D>>* teacher = nullptr) {
    const std::size_t M = nets_.size();
    const int E = num_exits();
    auto& ctx = out.front().final().logits.ctx();
    // Weight-network projections of every exit's feature.
    std::vector<std::vector<Var<T, 2, D>>> proj(M);
    {
      std::optional<NoGradGuard> ng;
      if (!phi_grad) ng.emplace(ctx);
      for (std::size_t i = 0; i < M; ++i)
        for (int k = 0; k < E; ++k)
          proj[i].push_back(nets_[i]->weight_projection(k, phi_grad ? out[i].exits[k].feature
                                                                    : out[i].exits[k].feature.detach()));
    }
    losses::MclTerms<T, D> sum;
    Var<T, 0, D> total;
    if (parts) parts->pair_weights.clear();
    for (std::size_t i = 0; i < M; ++i)
      for (std::size_t j = i + 1; j < M; ++j)
        for (int k = 0; k < E; ++k)
          for (int z = 0; z < E; ++z) {
            Var<T, 1, D> w;
            if (phi_grad) {
              w = sigmoid_cosine(proj[i][k], proj[j][z]);
            } else {
              NoGradGuard ng(ctx);
              w = sigmoid_cosine(proj[i][k], proj[j][z]);
            }
            if (parts) {
              double s = 0;
              const Tensor<T, 1, Cpu> wh = to_host(ctx, w.value());
              for (index_t b = 0; b < wh.extent(0); ++b) s += double(wh[b]);
              parts->pair_weights.push_back(s / double(w.extent(0)));
            }
            auto t = teacher ? losses::pair_contrast(out[i].exits[k].embed, out[j].exits[z].embed, labels, w,
                                                     cfg_.weights, (*teacher)[i].exits[k].embed,
                                                     (*teacher)[j].exits[z].embed)
                             : losses::pair_contrast(out[i].exits[k].embed, out[j].exits[z].embed, labels, w,
                                                     cfg_.weights);
            if (t.total.defined()) losses::detail::accumulate(total, scale(t.total, T(2)));
            if (parts) {
              losses::detail::accumulate(sum.vcl, t.vcl);
              losses::detail::accumulate(sum.icl, t.icl);
              losses::detail::accumulate(sum.soft_vcl, t.soft_vcl);
              losses::detail::accumulate(sum.soft_icl, t.soft_icl);
            }
          }
    if (parts) {
      parts->vcl = 2 * item(sum.vcl);
      parts->icl = 2 * item(sum.icl);
      parts->soft_vcl = 2 * item(sum.soft_vcl);
      parts->soft_icl = 2 * item(sum.soft_icl);
    }
    return total;
  }

  static void record(CohortLoss<T, D>& r, const losses::MclTerms<T, D>& t) {
    r.vcl = item(t.vcl);
    r.icl = item(t.icl);
    r.soft_vcl = item(t.soft_vcl);
    r.soft_icl = item(t.soft_icl);
  }

  MclConfig cfg_;
  std::vector<std::unique_ptr<CohortMember<T, D>>> nets_;
};

}  // namespace distill::models
