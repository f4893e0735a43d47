// distill/models/moco_mcl.hpp -- self-supervised MCL: MoCo + mutual contrastive learning over a cohort (Yang, An,
// Cai, Xu, AAAI 2022; docs/mcl.md). Cpu device.
//
// snippet: fragment; includes: distill/optim/adam.hpp; given: Context<Cpu> ctx; models::MclConfig cfg;
// Var<float, 3> x1, x2;
//   models::Cohort<> query{cfg}, key{cfg};            // the same add_network<W>() calls on both
//   for (auto* c : {&query, &key}) { c->add_network<16>(ctx, 2);  c->add_network<16>(ctx, 2); }
//   optim::Adam<float> opt{query.network_params()};
//   models::MocoMcl<> moco{query, key, {.queue = 1024}, ctx.make_rng(3)};
//   auto l = moco.loss(x1, x2);  opt.zero_grad();  l.total.backward();  opt.step();  moco.update();
//
// Network a has a query encoder (the `query` cohort's network a: blocks + Embed head), a momentum key encoder (the
// `key` cohort's network a, theta_k = m theta_k + (1 - m) theta_q after every step, its own BN statistics) and a
// queue Q_a of past keys. With q_a the query embedding of view 1 and k_a the key embedding of view 2:
//   VCL_a      = InfoNCE(q_a; k_a, Q_a)                       (moco_info_nce)
//   ICL_a->b   = InfoNCE(q_a; k_b, Q_b), both directions, every pair a < b
//   soft VCL   = sum_{a != b} KL_T(l(q_a; k_a, Q_a) || sg l(q_b; k_b, Q_b))   over the 1 + K logit rows
//   soft ICL   = sum_{a < b} KL_T(l(q_a; k_b, Q_b) || sg l(q_b; k_a, Q_a)) + the reverse
//   L          = VCL + soft VCL + ICL + soft ICL             (all weights 1, as in the paper's MoCo version)
// where l(q; k, Q) = [n(q).n(k), n(q).Q_1, ..., n(q).Q_K] / tau. update() enqueues n(k_a) into Q_a and moves the
// key encoders.
#pragma once

#include <vector>

#include "distill/losses/queue.hpp"
#include "distill/models/mcl.hpp"
#include "distill/ops/normalize.hpp"
#include "distill/optim/ema.hpp"

namespace distill::models {

struct MocoMclConfig {
  index_t queue = 1024;      // keys per queue
  double tau = 0.07;         // InfoNCE temperature
  double temperature = 3.0;  // KL temperature of the soft terms
  double momentum = 0.99;    // key-encoder EMA
};

template <class T = float>
class MocoMcl {
public:
  MocoMcl(Cohort<T, Cpu>& query, Cohort<T, Cpu>& key, MocoMclConfig cfg, CounterRng rng)
      : query_(query), key_(key), cfg_(cfg) {
    DISTILL_CHECK(query.size() >= 2 && key.size() == query.size(), "MocoMcl: the query cohort has ", query.size(),
                  " networks and the key cohort ", key.size(), " (need >= 2, equal)");
    DISTILL_CHECK(!query.config().layerwise && !query.config().shared_stem,
                  "MocoMcl: the cohorts must be plain (no layerwise exits, no shared stem)");
    DISTILL_CHECK(cfg.queue >= 1, "MocoMcl: queue size must be >= 1, got ", cfg.queue);
    auto qp = query_.network_params();
    auto kp = key_.network_params();
    optim::copy_parameters(kp, qp, false);
    kp.set_requires_grad(false);
    for (std::size_t a = 0; a < query.size(); ++a) queues_.push_back(losses::Queue<T>::random(cfg.queue, 128, rng));
  }

  /// The loss of one batch of two views [B, 1, L] (view 1: queries, view 2: keys).
  CohortLoss<T, Cpu> loss(const Var<T, 3, Cpu>& x1, const Var<T, 3, Cpu>& x2) {
    const std::size_t M = query_.size();
    auto qo = query_.forward(x1, true);
    std::vector<NetOutput<T, Cpu>> ko;
    {
      NoGradGuard ng(x2.ctx());
      ko = key_.forward(x2, true);
    }
    std::vector<Var<T, 2, Cpu>> q, k;
    for (std::size_t a = 0; a < M; ++a) {
      q.push_back(qo[a].final().embed);
      k.push_back(ko[a].final().embed);
    }
    keys_.clear();
    for (auto& kk : k) keys_.push_back(kk.value());
    losses::MclTerms<T, Cpu> t;
    auto logits = [&](std::size_t a, std::size_t b) { return moco_logits(q[a], k[b], queues_[b]); };
    for (std::size_t a = 0; a < M; ++a) {
      losses::detail::accumulate(t.vcl, losses::moco_info_nce(q[a], k[a], queues_[a], cfg_.tau));
      for (std::size_t b = 0; b < M; ++b)
        if (b != a)
          losses::detail::accumulate(t.soft_vcl, losses::kd_kl(logits(a, a), logits(b, b), cfg_.temperature));
      for (std::size_t b = a + 1; b < M; ++b) {
        losses::detail::accumulate(t.icl, add(losses::moco_info_nce(q[a], k[b], queues_[b], cfg_.tau),
                                              losses::moco_info_nce(q[b], k[a], queues_[a], cfg_.tau)));
        auto lab = logits(a, b), lba = logits(b, a);
        losses::detail::accumulate(t.soft_icl, add(losses::kd_kl(lab, lba, cfg_.temperature),
                                                   losses::kd_kl(lba, lab, cfg_.temperature)));
      }
    }
    CohortLoss<T, Cpu> r;
    r.total = add(add(t.vcl, t.soft_vcl), add(t.icl, t.soft_icl));
    r.vcl = item(t.vcl);
    r.icl = item(t.icl);
    r.soft_vcl = item(t.soft_vcl);
    r.soft_icl = item(t.soft_icl);
    return r;
  }

  /// After the optimizer step: enqueue the last batch's keys and move the key encoders towards the queries.
  void update() {
    for (std::size_t a = 0; a < keys_.size(); ++a) queues_[a].enqueue(keys_[a]);
    keys_.clear();
    auto qp = query_.network_params();
    auto kp = key_.network_params();
    optim::ema_update(kp, qp, cfg_.momentum, optim::BufferMode::Keep);
  }

  const losses::Queue<T>& queue(std::size_t a) const { return queues_.at(a); }
  losses::Queue<T>& queue(std::size_t a) { return queues_.at(a); }  // e.g. for a training state (io::TrainState)

private:
  /// [n(q).n(k), n(q) Q^T] / tau: the InfoNCE logit rows [B, 1 + K] (the queue holds unit rows).
  Var<T, 2, Cpu> moco_logits(const Var<T, 2, Cpu>& q, const Var<T, 2, Cpu>& k, const losses::Queue<T>& Q) {
    auto& ctx = q.ctx();
    auto qn = l2_normalize(q);
    auto kn = l2_normalize(k.detach());
    Tensor<T, 2, Cpu> ones_row(Shape<2>{1, q.extent(1)});
    ones_row.fill(T(1));
    auto ones = constant(ctx, std::move(ones_row));
    auto pos = linear(mul(qn, kn), ones);  // [B, 1]: row-wise dot products
    auto neg = matmul_nt(qn, constant(ctx, Q.contents().clone()));
    return scale(concat1(pos, neg), static_cast<T>(1.0 / cfg_.tau));
  }

  Cohort<T, Cpu>& query_;
  Cohort<T, Cpu>& key_;
  MocoMclConfig cfg_;
  std::vector<losses::Queue<T>> queues_;
  std::vector<Tensor<T, 2, Cpu>> keys_;
};

}  // namespace distill::models
