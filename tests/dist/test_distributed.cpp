// Data-parallel training (core/communicator.hpp, dist/): run by CTest as `mpirun -np 2 test_distributed` and as a
// single process. Every check compares the ranks' result with a single-process reference each rank computes itself
// on the whole global batch (a context with the default SingleProcess communicator), so the same assertions hold for
// any world size.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "distill/dist/data_parallel.hpp"
#include "distill/dist/gather.hpp"
#include "distill/dist/world.hpp"
#include "distill/losses/contrastive.hpp"
#include "distill/models/dcrls.hpp"
#include "distill/models/disco.hpp"
#include "distill/ops/batchnorm.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/reduce.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/sgd.hpp"
#include "distill/optim/divergence.hpp"

namespace dl = distill;
using dl::Cpu;
using dl::index_t;

namespace {

std::shared_ptr<dl::Communicator> g_world;  // set by main (the test binary's launcher)

dl::Communicator& world() { return *g_world; }
int W() { return world().size(); }
int rank() { return world().rank(); }

/// Deterministic values every rank can compute for every rank's data.
double value_at(std::uint64_t seed, std::size_t i) {
  dl::CounterRng r(seed, i + 1);
  return r.uniform(-1, 1);
}
template <class T, std::size_t R>
dl::Tensor<T, R, Cpu> filled(const dl::Shape<R>& s, std::uint64_t seed) {
  dl::Tensor<T, R, Cpu> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(value_at(seed, static_cast<std::size_t>(i)));
  return t;
}

double max_abs_diff(const double* a, const double* b, index_t n) {
  double m = 0;
  for (index_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}
double max_abs(const double* a, index_t n) {
  double m = 0;
  for (index_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i]));
  return m;
}

/// A context on the world's ranks (threads 1: two ranks share the machine's cores).
struct RankContext {
  dl::Context<Cpu> ctx{1, 7};
  explicit RankContext(bool sync_bn = false) {
    ctx.set_communicator(g_world);
    ctx.set_sync_batch_norm(sync_bn);
  }
};

}  // namespace

TEST_CASE("collectives equal their single-process reference", "[dist]") {
  const int w = W(), r = rank();
  const std::size_t n = 1000;
  auto data_of = [&](int rk, std::size_t i) { return double(rk + 1) * 0.5 + double(i % 17) * 0.25; };

  SECTION("all_reduce sum and max, f64 / f32 / i64") {
    std::vector<double> d(n);
    std::vector<float> f(n);
    std::vector<std::int64_t> k(n);
    for (std::size_t i = 0; i < n; ++i) {
      d[i] = data_of(r, i);
      f[i] = static_cast<float>(data_of(r, i));
      k[i] = static_cast<std::int64_t>(i) * (r + 1);
    }
    auto dmax = d;
    world().all_reduce(std::span<double>(d));
    world().all_reduce(std::span<float>(f));
    world().all_reduce(std::span<std::int64_t>(k));
    world().all_reduce(std::span<double>(dmax), dl::ReduceOp::max);
    for (std::size_t i = 0; i < n; ++i) {
      double sum = 0;
      std::int64_t ksum = 0;
      for (int q = 0; q < w; ++q) {
        sum += data_of(q, i);
        ksum += static_cast<std::int64_t>(i) * (q + 1);
      }
      REQUIRE(d[i] == sum);  // quarter-integers: exact in any order
      REQUIRE(f[i] == static_cast<float>(sum));
      REQUIRE(k[i] == ksum);
      REQUIRE(dmax[i] == data_of(w - 1, i));
    }
  }
  SECTION("all_gather, reduce_scatter, broadcast, barrier") {
    std::vector<double> mine(n), all(n * static_cast<std::size_t>(w));
    for (std::size_t i = 0; i < n; ++i) mine[i] = data_of(r, i);
    world().all_gather(std::span<const double>(mine), std::span<double>(all));
    for (int q = 0; q < w; ++q)
      for (std::size_t i = 0; i < n; ++i) REQUIRE(all[static_cast<std::size_t>(q) * n + i] == data_of(q, i));

    std::vector<double> send(n * static_cast<std::size_t>(w)), recv(n);
    for (std::size_t i = 0; i < send.size(); ++i) send[i] = data_of(r, i);
    world().reduce_scatter(std::span<const double>(send), std::span<double>(recv));
    for (std::size_t i = 0; i < n; ++i) {
      double sum = 0;
      for (int q = 0; q < w; ++q) sum += data_of(q, static_cast<std::size_t>(r) * n + i);
      REQUIRE(recv[i] == sum);
    }

    const int root = w - 1;
    std::vector<double> b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = data_of(r, i);
    world().broadcast(std::span<double>(b), root);
    for (std::size_t i = 0; i < n; ++i) REQUIRE(b[i] == data_of(root, i));
    world().barrier();
  }
  SECTION("mismatched sizes and roots are refused with a sentence") {
    std::vector<double> a(10), b(7);
    if (w > 1) {
      REQUIRE_THROWS_WITH(world().all_gather(std::span<const double>(a), std::span<double>(b)),
                          Catch::Contains("the whole buffer has 7 elements"));
    }
    REQUIRE_THROWS_WITH(world().broadcast(std::span<double>(a), w), Catch::Contains("is not a rank"));
  }
}

TEST_CASE("all_gather_rows: forward is the global batch, backward returns W x the gradient of own rows",
          "[dist]") {
  RankContext rc;
  auto& ctx = rc.ctx;
  const index_t n = 5, d = 3, N = n * W();
  const auto global = filled<double, 2>(dl::Shape<2>{N, d}, 11);
  const auto weights = filled<double, 2>(dl::Shape<2>{N, d}, 12);
  auto z = dl::parameter(ctx, dl::dist::shard_rows(global, world()));
  auto g = dl::dist::all_gather_rows(z);
  REQUIRE(g.extent(0) == N);
  REQUIRE(max_abs_diff(g.value().data(), global.data(), N * d) == 0);
  // Every rank: L = sum(weights * gathered), the same value everywhere.
  auto loss = dl::sum(dl::mul(g, dl::constant(ctx, weights.clone())));
  loss.backward();
  const double* wr = weights.data() + static_cast<std::size_t>(rank()) * static_cast<std::size_t>(n * d);
  for (index_t i = 0; i < n * d; ++i) REQUIRE(z.grad().data()[i] == Approx(double(W()) * wr[i]).epsilon(1e-15));
}

TEST_CASE("global NT-Xent over the ranks equals the single-process loss and gradient on the concatenated batch",
          "[dist]") {
  const index_t n = 6, d = 8, N = n * W();
  const double tau = 0.2;
  const auto Z1 = filled<double, 2>(dl::Shape<2>{N, d}, 21), Z2 = filled<double, 2>(dl::Shape<2>{N, d}, 22);

  dl::Context<Cpu> ref_ctx(1, 7);  // the single process on the whole batch
  auto r1 = dl::parameter(ref_ctx, Z1.clone()), r2 = dl::parameter(ref_ctx, Z2.clone());
  auto ref = dl::losses::nt_xent(r1, r2, tau);
  ref.backward();

  RankContext rc;
  auto z1 = dl::parameter(rc.ctx, dl::dist::shard_rows(Z1, world()));
  auto z2 = dl::parameter(rc.ctx, dl::dist::shard_rows(Z2, world()));
  auto loss = dl::losses::nt_xent(dl::dist::all_gather_rows(z1), dl::dist::all_gather_rows(z2), tau);
  loss.backward();
  REQUIRE(dl::item(loss) == Approx(dl::item(ref)).epsilon(1e-13));
  // Own rows' gradient x 1/W (the data-parallel average) is the reference gradient of those rows.
  const std::size_t off = static_cast<std::size_t>(rank()) * static_cast<std::size_t>(n * d);
  for (index_t i = 0; i < n * d; ++i) {
    REQUIRE(z1.grad().data()[i] / W() == Approx(r1.grad().data()[off + i]).margin(1e-14));
    REQUIRE(z2.grad().data()[i] / W() == Approx(r2.grad().data()[off + i]).margin(1e-14));
  }
}

TEST_CASE("synchronized batch norm equals batch norm on the global batch, forward and backward", "[dist]") {
  const index_t b = 3, C = 4, L = 5, B = b * W();
  const auto X = filled<double, 3>(dl::Shape<3>{B, C, L}, 31), G = filled<double, 3>(dl::Shape<3>{B, C, L}, 32);
  auto run = [&](dl::Context<Cpu>& ctx, const dl::Tensor<double, 3, Cpu>& x, const dl::Tensor<double, 3, Cpu>& g) {
    auto xv = dl::parameter(ctx, x.clone());
    auto gamma = dl::parameter(ctx, filled<double, 1>(dl::Shape<1>{C}, 33));
    auto beta = dl::parameter(ctx, filled<double, 1>(dl::Shape<1>{C}, 34));
    auto rm = dl::Tensor<double, 1, Cpu>::zeros(dl::Shape<1>{C});
    auto rv = dl::Tensor<double, 1, Cpu>::full(dl::Shape<1>{C}, 1.0);
    auto y = dl::batch_norm(xv, gamma, beta, rm, rv, {.training = true, .momentum = 0.1, .eps = 1e-5});
    dl::sum(dl::mul(y, dl::constant(ctx, g.clone()))).backward();
    return std::tuple{y.value().clone(), xv.grad().clone(), gamma.grad().clone(), beta.grad().clone(), rm, rv};
  };
  dl::Context<Cpu> ref_ctx(1, 7);
  auto [y0, dx0, dg0, db0, rm0, rv0] = run(ref_ctx, X, G);
  RankContext rc(/*sync_bn=*/true);
  auto [y1, dx1, dg1, db1, rm1, rv1] = run(rc.ctx, dl::dist::shard_rows(X, world()), dl::dist::shard_rows(G, world()));
  const std::size_t off = static_cast<std::size_t>(rank()) * static_cast<std::size_t>(b * C * L);
  CHECK(max_abs_diff(y1.data(), y0.data() + off, b * C * L) < 1e-13);
  CHECK(max_abs_diff(dx1.data(), dx0.data() + off, b * C * L) < 1e-13);
  CHECK(max_abs_diff(rm1.data(), rm0.data(), C) < 1e-15);
  CHECK(max_abs_diff(rv1.data(), rv0.data(), C) < 1e-14);
  // dgamma / dbeta are this rank's sums: their sum over ranks is the global one.
  world().all_reduce(std::span<double>(dg1.data(), static_cast<std::size_t>(C)));
  world().all_reduce(std::span<double>(db1.data(), static_cast<std::size_t>(C)));
  CHECK(max_abs_diff(dg1.data(), dg0.data(), C) < 1e-12);
  CHECK(max_abs_diff(db1.data(), db0.data(), C) < 1e-12);
}

namespace {
using Model = dl::models::Dcrls<8, double, Cpu>;

/// Every parameter and buffer of a model, flattened in walk order.
std::vector<double> flat(Model& m, bool grads) {
  std::vector<double> out;
  m.for_each_parameter([&](std::string_view, auto& v) {
    if (grads && !v.has_grad()) return;
    const double* p = grads ? v.grad().data() : v.value().data();
    out.insert(out.end(), p, p + v.numel());
  });
  if (!grads)
    m.for_each_buffer([&](std::string_view, auto& t) { out.insert(out.end(), t.data(), t.data() + t.numel()); });
  return out;
}

/// Relative difference of two flat vectors (max |a-b| / max |b|).
double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  return max_abs_diff(a.data(), b.data(), static_cast<index_t>(a.size())) /
         std::max(1e-300, max_abs(b.data(), static_cast<index_t>(b.size())));
}
}  // namespace

TEST_CASE("DCRLS with synchronized BN: W ranks x B/W equal 1 rank x B (loss, gradients, weights, BN statistics)",
          "[dist]") {
  const index_t B = 4 * W(), L = 32;
  const int steps = 3;
  dl::models::DcrlsConfig cfg;  // all blocks + self-distillation: NT-Xent and the KL on gathered rows

  dl::Context<Cpu> ref_ctx(1, 7);
  Model ref(ref_ctx, cfg);
  // SGD + momentum: the update is linear in the gradient, so the comparison sees rounding, not Adam's division of
  // rounding noise by itself on the parameters whose gradient is zero in exact arithmetic (conv biases before BN).
  const dl::optim::SgdOptions sgd{.lr = 1e-2, .momentum = 0.9};
  dl::optim::SGD<double, Cpu> ref_opt(ref.trainable(), sgd);

  RankContext rc(/*sync_bn=*/true);
  Model model(rc.ctx, cfg);
  dl::dist::DataParallel<double, Cpu> dp(rc.ctx, model, model.trainable());
  dl::optim::SGD<double, Cpu> opt(model.trainable(), sgd);
  REQUIRE(rel_diff(flat(model, false), flat(ref, false)) == 0);  // same seed, then rank 0's broadcast

  for (int s = 0; s < steps; ++s) {
    const auto X1 = filled<double, 3>(dl::Shape<3>{B, 1, L}, 100 + 2 * static_cast<std::uint64_t>(s));
    const auto X2 = filled<double, 3>(dl::Shape<3>{B, 1, L}, 101 + 2 * static_cast<std::uint64_t>(s));
    auto lr = ref.contrastive_loss(dl::constant(ref_ctx, X1.clone()), dl::constant(ref_ctx, X2.clone()));
    auto ld = model.contrastive_loss(dl::constant(rc.ctx, dl::dist::shard_rows(X1, world())),
                                     dl::constant(rc.ctx, dl::dist::shard_rows(X2, world())));
    INFO("step " << s << ", " << world().describe());
    // Tolerance: double precision; the paths differ only in summation order (BN statistics merged per rank, the
    // gradient sum over ranks), so 1e-10 relative is ~1e6 ulps of room and far below any real difference.
    REQUIRE(dl::item(ld.total) == Approx(dl::item(lr.total)).epsilon(1e-10));
    REQUIRE(ld.distillation == Approx(lr.distillation).epsilon(1e-10));
    const dl::optim::TrainPosition at{0, s};
    dl::optim::checked_step(ref_opt, lr.total, at);
    dl::optim::checked_step(opt, ld.total, at, dp);
    ref_opt.zero_grad();  // (checked_step zeroes before its backward; recompute the gradients for the comparison)
    CHECK(rel_diff(flat(model, false), flat(ref, false)) < 1e-10);  // weights after the update + BN statistics
  }
  // The gradients themselves, on one more batch (no update).
  const auto X1 = filled<double, 3>(dl::Shape<3>{B, 1, L}, 200), X2 = filled<double, 3>(dl::Shape<3>{B, 1, L}, 201);
  auto lr = ref.contrastive_loss(dl::constant(ref_ctx, X1.clone()), dl::constant(ref_ctx, X2.clone()));
  auto ld = model.contrastive_loss(dl::constant(rc.ctx, dl::dist::shard_rows(X1, world())),
                                   dl::constant(rc.ctx, dl::dist::shard_rows(X2, world())));
  ref_opt.zero_grad();
  opt.zero_grad();
  lr.total.backward();
  ld.total.backward();
  dp();
  CHECK(rel_diff(flat(model, true), flat(ref, true)) < 1e-10);
  if (W() > 1) CHECK(dp.bytes_reduced() > 0);
}

TEST_CASE("DCRLS with per-rank BN: the loss differs from the global batch's, the replicas stay identical", "[dist]") {
  const index_t B = 4 * W(), L = 32;
  dl::models::DcrlsConfig cfg;
  dl::Context<Cpu> ref_ctx(1, 7);
  Model ref(ref_ctx, cfg);
  RankContext rc(/*sync_bn=*/false);
  Model model(rc.ctx, cfg);
  dl::dist::DataParallel<double, Cpu> dp(rc.ctx, model, model.trainable());
  dl::optim::Adam<double, Cpu> opt(model.trainable(), {.lr = 1e-2});
  const auto X1 = filled<double, 3>(dl::Shape<3>{B, 1, L}, 300), X2 = filled<double, 3>(dl::Shape<3>{B, 1, L}, 301);
  auto lr = ref.contrastive_loss(dl::constant(ref_ctx, X1.clone()), dl::constant(ref_ctx, X2.clone()));
  auto ld = model.contrastive_loss(dl::constant(rc.ctx, dl::dist::shard_rows(X1, world())),
                                   dl::constant(rc.ctx, dl::dist::shard_rows(X2, world())));
  if (W() > 1)  // BN normalises each rank's rows with their own statistics: a different function of the batch
    CHECK(std::abs(dl::item(ld.total) - dl::item(lr.total)) > 1e-6 * std::abs(dl::item(lr.total)));
  else
    CHECK(dl::item(ld.total) == Approx(dl::item(lr.total)).epsilon(1e-12));
  dl::optim::checked_step(opt, ld.total, {0, 0}, dp);
  // Every rank holds rank 0's model (parameters: the same averaged update; BN buffers: broadcast by dp()).
  auto mine = flat(model, false), root = mine;
  world().broadcast(std::span<double>(root), 0);
  CHECK(mine == root);
}

TEST_CASE("DisCo's MoCo learner with synchronized BN: W ranks x B/W equal 1 rank x B, queue fed with every rank's "
          "keys", "[dist]") {
  using Net = dl::models::DiscoNet<4, 8, double, Cpu>;
  const index_t B = 4 * W(), L = 24, K = 2 * B;
  const dl::models::DiscoConfig cfg{.tau = 0.2, .momentum = 0.9, .queue_size = K};

  dl::Context<Cpu> ref_ctx(1, 7);
  dl::models::DiscoLearner<Net> ref(ref_ctx, cfg);
  const dl::optim::SgdOptions sgd{.lr = 1e-2, .momentum = 0.9};
  dl::optim::SGD<double, Cpu> ref_opt(ref.trainable(), sgd);

  RankContext rc(/*sync_bn=*/true);  // the key encoder's batch norm too: the whole function equals the global one
  dl::models::DiscoLearner<Net> learner(rc.ctx, cfg);
  dl::dist::DataParallel<double, Cpu> dp(rc.ctx, learner.net, learner.trainable());
  dl::optim::SGD<double, Cpu> opt(learner.trainable(), sgd);
  for (int s = 0; s < 3; ++s) {  // 3 steps of B keys: the queue of 2B wraps around
    const auto X1 = filled<double, 3>(dl::Shape<3>{B, 1, L}, 400 + 2 * static_cast<std::uint64_t>(s));
    const auto X2 = filled<double, 3>(dl::Shape<3>{B, 1, L}, 401 + 2 * static_cast<std::uint64_t>(s));
    auto lr = ref.loss(dl::constant(ref_ctx, X1.clone()), dl::constant(ref_ctx, X2.clone()));
    auto ld = learner.loss(dl::constant(rc.ctx, dl::dist::shard_rows(X1, world())),
                           dl::constant(rc.ctx, dl::dist::shard_rows(X2, world())));
    INFO("step " << s << ", " << world().describe());
    REQUIRE(dl::item(ld.total) == Approx(dl::item(lr.total)).epsilon(1e-10));
    dl::optim::checked_step(ref_opt, lr.total, {0, s});
    dl::optim::checked_step(opt, ld.total, {0, s}, dp);
    auto& qr = ref.key->queue();
    auto& qd = learner.key->queue();
    REQUIRE(qd.size() == qr.size());
    REQUIRE(qd.head() == qr.head());
    CHECK(max_abs_diff(qd.storage().data(), qr.storage().data(), qr.storage().numel()) < 1e-10);
  }
}

TEST_CASE("shard_rows refuses a global batch that does not split evenly", "[dist]") {
  if (W() == 1) return;
  dl::Tensor<double, 2, Cpu> x(dl::Shape<2>{static_cast<index_t>(2 * W() + 1), 3});
  REQUIRE_THROWS_WITH(dl::dist::shard_rows(x, world()), Catch::Contains("does not split evenly over"));
}

int main(int argc, char** argv) {
  dl::dist::World w(&argc, &argv);
  g_world = w.comm();
  Catch::Session session;
  const int rc = session.applyCommandLine(argc, argv);
  if (rc != 0) return rc;
  std::int64_t failed = session.run();
  w.comm()->all_reduce(std::span<std::int64_t>(&failed, 1));  // every rank fails if any rank failed
  g_world.reset();
  return failed != 0;
}
