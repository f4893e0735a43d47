// distill/models/dcrls.hpp -- DCRLS: deep contrastive representation learning with self-distillation.
//
// Reconstruction [R] of Xiao et al. (IEEE TETCI 2024); the paper's full text is not public. docs/dcrls.md keeps the
// confidence labels and names the papers each part comes from ("Sources of the reconstruction"). Encoder ResNet1D(W) shared by two augmented views; one projection
// head per residual block (Linear C_b -> C_b, ReLU, Linear -> 128; the losses L2-normalise inside);
//   L_DC = sum_b NT-Xent_tau(z_b^1, z_b^2)                     (tau = 0.2)
//   L_SD = sum_{b<K} KL_T(S_b || stopgrad(S_K)), S_b = Z_b Z_b^T / tau over the 2B stacked rows, diagonal excluded
//   L    = L_DC + lambda_SD * L_SD                              (T = 3, lambda_SD = 1)
// The ablation ladder is a runtime switch: LastBlock (plain SimCLR on block K), AllBlocks, AllBlocksSD (DCRLS),
// and a Supervised baseline (same encoder + linear classifier + cross-entropy).
#pragma once

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

#include "distill/dist/gather.hpp"
#include "distill/losses/contrastive.hpp"
#include "distill/losses/distillation.hpp"
#include "distill/models/resnet1d.hpp"
#include "distill/nn/heads.hpp"
#include "distill/ops/linear.hpp"
#include "distill/ops/cross_entropy.hpp"
#include "distill/ops/shape_ops.hpp"

namespace distill::models {

enum class DcrlsVariant { LastBlock, AllBlocks, AllBlocksSD, Supervised };

inline const char* variant_name(DcrlsVariant v) {
  switch (v) {
    case DcrlsVariant::LastBlock: return "last";
    case DcrlsVariant::AllBlocks: return "all";
    case DcrlsVariant::AllBlocksSD: return "sd";
    case DcrlsVariant::Supervised: return "supervised";
  }
  return "?";
}

inline DcrlsVariant parse_variant(const std::string& s) {
  if (s == "last" || s == "i") return DcrlsVariant::LastBlock;
  if (s == "all" || s == "ii") return DcrlsVariant::AllBlocks;
  if (s == "sd" || s == "dcrls" || s == "iii") return DcrlsVariant::AllBlocksSD;
  if (s == "supervised" || s == "sup") return DcrlsVariant::Supervised;
  DISTILL_FAIL("unknown DCRLS variant '", s, "': expected last, all, sd or supervised");
}

struct DcrlsConfig {
  DcrlsVariant variant = DcrlsVariant::AllBlocksSD;
  double tau = 0.2;          // NT-Xent and similarity temperature
  double temperature = 3.0;  // self-distillation T
  double lambda_sd = 1.0;    // weight of L_SD
};

/// The parts of one step's loss (for logging).
template <class T, class D>
struct DcrlsLoss {
  Var<T, 0, D> total;
  double contrastive = 0;    // L_DC (or the cross-entropy of the supervised baseline)
  double distillation = 0;   // L_SD
};

template <index_t W = 64, class T = float, class D = Cpu>
class Dcrls {
public:
  static constexpr index_t proj_dim = 128;
  using Encoder = ResNet1D<W, 1, T, D>;
  using Head1 = nn::MLPHead<W, W, proj_dim, T, D>;
  using Head2 = nn::MLPHead<2 * W, 2 * W, proj_dim, T, D>;

  /// `num_classes` sizes the supervised baseline's classifier (unused by the self-supervised variants).
  Dcrls(Context<D>& ctx, DcrlsConfig cfg, index_t num_classes = 2)
      : cfg_(cfg), encoder(ctx), head1(ctx), head2(ctx), head3(ctx) {
    DISTILL_CHECK(num_classes >= 1, "Dcrls: num_classes must be >= 1, got ", num_classes);
    // Classifier [K, 2W] + bias, PyTorch Linear initialisation.
    // Drawn on the host (the same values on every device), then placed on D.
    Tensor<T, 2, Cpu> w({num_classes, 2 * W});
    Tensor<T, 1, Cpu> b({num_classes});
    const double bound = 1.0 / std::sqrt(double(2 * W));
    nn::init::uniform(w, bound, ctx.rng());
    nn::init::uniform(b, bound, ctx.rng());
    cls_w = nn::detail::make_parameter(ctx, std::move(w));
    cls_b = nn::detail::make_parameter(ctx, std::move(b));
  }

  const DcrlsConfig& config() const noexcept { return cfg_; }

  /// Parameters the optimiser updates for this variant (heads for the self-supervised ones, the classifier for
  /// the supervised baseline).
  ParamList<T, D> trainable() {
    if (cfg_.variant == DcrlsVariant::Supervised) return params(encoder, cls_w, cls_b);
    return params(encoder, head1, head2, head3);
  }

  /// One self-supervised loss on two views [B, 1, L] of the same series.
  DcrlsLoss<T, D> contrastive_loss(const Var<T, 3, D>& x1, const Var<T, 3, D>& x2) {
    DISTILL_CHECK(cfg_.variant != DcrlsVariant::Supervised, "Dcrls: the supervised baseline has no contrastive loss");
    check_shape_pair(x1, x2);
    // Both views in one encoder pass: the batch is [x1; x2] (BN sees 2B series, as two passes through a
    // shared-weight encoder would in PyTorch's SimCLR code when the views are concatenated).
    const index_t B = x1.extent(0);
    auto f = encoder.forward_blocks(concat0(x1, x2));
    std::array<Var<T, 2, D>, 3> z{head1(f.pooled[0]), head2(f.pooled[1]), head3(f.pooled[2])};
    // On data-parallel ranks the losses see the global batch: every rank's rows of each view, gathered
    // (dist/gather.hpp; the same tensors as z on a single process).
    const bool global = x1.ctx().world_size() > 1;
    DcrlsLoss<T, D> out;
    const bool sd_on = cfg_.variant == DcrlsVariant::AllBlocksSD && cfg_.lambda_sd != 0;
    const int first = cfg_.variant == DcrlsVariant::LastBlock ? 2 : 0;
    for (int b = first; b < 3; ++b) {
      auto [z1, z2] = split0(z[b], B);
      if (global) {
        z1 = dist::all_gather_rows(z1);
        z2 = dist::all_gather_rows(z2);
        if (sd_on) z[b] = concat0(z1, z2);
      }
      auto l = losses::nt_xent(z1, z2, cfg_.tau);
      out.total = out.total.defined() ? add(out.total, l) : l;
    }
    out.contrastive = item(out.total);
    if (sd_on) {
      auto teacher = z[2].detach();
      Var<T, 0, D> sd;
      for (int b = 0; b < 2; ++b) {
        auto l = losses::soft_contrastive_kl(z[b], z[b], teacher, teacher, cfg_.tau, cfg_.temperature,
                                             losses::Diagonal::exclude);
        sd = sd.defined() ? add(sd, l) : l;
      }
      out.distillation = item(sd);
      out.total = add(out.total, scale(sd, T(cfg_.lambda_sd)));
    }
    return out;
  }

  /// Supervised baseline: cross-entropy of the linear classifier on the deepest GAP vector.
  DcrlsLoss<T, D> supervised_loss(const Var<T, 3, D>& x, std::span<const int> labels) {
    auto logits = classify(x);
    DcrlsLoss<T, D> out;
    out.total = cross_entropy(logits, labels);
    out.contrastive = item(out.total);
    return out;
  }

  /// Logits [B, K] of the supervised classifier.
  Var<T, 2, D> classify(const Var<T, 3, D>& x) { return linear(encoder(x), cls_w, cls_b); }

  /// The downstream representation g_K [B, 2W] (call under NoGradGuard, encoder in eval mode).
  Var<T, 2, D> embed(const Var<T, 3, D>& x) { return encoder(x); }

  void train(bool on = true) {
    encoder.train(on);
    head1.train(on);
    head2.train(on);
    head3.train(on);
  }
  bool is_training() const noexcept { return encoder.is_training(); }

  /// Every parameter ("encoder.*", "head1.*" .. "head3.*", "cls_w", "cls_b") and buffer (the encoder's and
  /// heads' batch-norm statistics): the whole model is one module for checkpoints and training state.
  template <class F>
  void for_each_parameter(F&& f) { visit<true>(*this, f, [](auto& m, auto& g) { m.for_each_parameter(g); }); }
  template <class F>
  void for_each_parameter(F&& f) const { visit<true>(*this, f, [](auto& m, auto& g) { m.for_each_parameter(g); }); }
  template <class F>
  void for_each_buffer(F&& f) { visit<false>(*this, f, [](auto& m, auto& g) { m.for_each_buffer(g); }); }
  template <class F>
  void for_each_buffer(F&& f) const { visit<false>(*this, f, [](auto& m, auto& g) { m.for_each_buffer(g); }); }

private:
  template <bool Classifier, class Self, class F, class Each>
  static void visit(Self& self, F& f, Each each) {
    auto child = [&](std::string_view prefix, auto& m) {
      auto g = [&](std::string_view name, auto& x) {
        std::string full(prefix);
        full += '.';
        full += name;
        f(std::string_view(full), x);
      };
      each(m, g);
    };
    child("encoder", self.encoder);
    child("head1", self.head1);
    child("head2", self.head2);
    child("head3", self.head3);
    if constexpr (Classifier) {
      f(std::string_view("cls_w"), self.cls_w);
      f(std::string_view("cls_b"), self.cls_b);
    }
  }

  static void check_shape_pair(const Var<T, 3, D>& x1, const Var<T, 3, D>& x2) {
    DISTILL_CHECK(x1.shape() == x2.shape(), "Dcrls: the two views have shapes ", to_string(x1.shape()), " and ",
                  to_string(x2.shape()));
  }

  DcrlsConfig cfg_;

public:
  Encoder encoder;
  Head1 head1;
  Head2 head2;
  Head2 head3;
  Var<T, 2, D> cls_w;
  Var<T, 1, D> cls_b;
};

}  // namespace distill::models
