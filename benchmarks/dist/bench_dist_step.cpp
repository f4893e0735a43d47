// bench_dist_step: the data-parallel DCRLS training step over MPI ranks (dist::DataParallel, dist/gather.hpp).
//
// Dcrls<64, float, Cpu>, variant sd, Adam (lr 1e-3, weight decay 1e-4). Every rank builds the same seeded global
// batch of two fixed random views [B, 1, L] once (no augmentation) and trains on its B/W rows (dist::shard_rows).
// One timed step is the training step of examples/dcrls: forward (the losses gather every rank's embeddings),
// backward, DataParallel gradient all-reduce, Adam, with the finiteness checks of optim::checked_step. Before each
// timed rep every rank sleeps --settle-ms, then the ranks meet at a barrier so they start together. Rank 0 prints one
// JSON line:
//   step_ms_min / _median        per rep: the max over ranks of each rank's step time; then min / median over reps
//   allreduce_ms_median          DataParallel::seconds() per step (gradient all-reduce + buffer broadcast), max over
//                                ranks, median over reps
//   loss_comm_ms_median          time in collectives outside DataParallel (embedding all-gathers, their backward
//                                reduce-scatters, row-count checks, sync-BN statistics), max over ranks
//   allreduce_bytes              gradient bytes all-reduced per step (bytes_reduced / calls); allreduce_buckets
//   gathered_rows                rows of each gathered embedding matrix (W * B/W; 0 on one rank: nothing gathered)
//   collectives                  per step, per collective, counted by a wrapper around the world's communicator:
//                                {"calls", "bytes" (per rank: buffer / contribution / kept block)}, split into
//                                "dp" (inside DataParallel) and "step" (the rest of the step)
//   param_count, encoder_flops   trainable values; conv FLOPs of this rank's step (the bench_dcrls_step formula)
//   loss_probe                   with --loss-probe-rows N: the global DCRLS loss alone (3 NT-Xent + 2 self-distillation
//                                KL, forward + backward) on random [N, 128] embeddings per view, on this rank's
//                                threads, all ranks at once: min ms over 3 reps, max over ranks (benchmarks/
//                                dist_scaling.py extrapolates the redundant global-loss compute from it)
//   isa                          the CPU kernels' instruction-set level
// Not a final measurement by itself: benchmarks/dist_scaling.py runs the 1-rank and 2-rank configurations
// interleaved and models larger worlds.
//
//   export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
//   export OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_NUM_THREADS=1    # (as root, in containers)
//   mpirun -np 2 --bind-to none build-cm/benchmarks/bench_dist_step --batch 64 --length 128 --threads 1
//   build-cm/benchmarks/bench_dist_step --help
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "distill/core/communicator.hpp"
#include "distill/core/context.hpp"
#include "distill/core/isa.hpp"
#include "distill/dist/data_parallel.hpp"
#include "distill/dist/gather.hpp"
#include "distill/dist/world.hpp"
#include "distill/losses/contrastive.hpp"
#include "distill/losses/distillation.hpp"
#include "distill/models/dcrls.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/divergence.hpp"

namespace {
using namespace distill;
using clk = std::chrono::steady_clock;

struct Args {
  std::int64_t batch = 64, length = 128, loss_probe_rows = 0;
  int threads = 1, reps = 20, warmup = 3, settle_ms = 0;
  bool sync_bn = false;
};

/// The command line (every rank parses the same one); --help or an error exits (status 0 / 2).
Args parse(int argc, char** argv) {
  Args a;
  CLI::App app{"The data-parallel DCRLS training step over MPI ranks; one JSON line on rank 0 (see the header of "
               "benchmarks/dist/bench_dist_step.cpp).",
               "bench_dist_step"};
  app.option_defaults()->always_capture_default();
  app.add_option("--batch", a.batch, "global batch, split evenly over the ranks")->check(CLI::Range(2, 1 << 20));
  app.add_option("--length", a.length, "series length")->check(CLI::Range(8, 1 << 20));
  app.add_option("--threads", a.threads, "CPU threads per rank")->check(CLI::Range(1, 4096));
  app.add_option("--reps", a.reps, "timed steps")->check(CLI::Range(1, 1'000'000));
  app.add_option("--warmup", a.warmup, "untimed steps first")->check(CLI::Range(0, 1'000'000));
  app.add_flag("--sync-bn", a.sync_bn, "batch norm with the global batch's statistics");
  app.add_option("--settle-ms", a.settle_ms, "sleep before each timed step")->check(CLI::Range(0, 600'000));
  app.add_option("--loss-probe-rows", a.loss_probe_rows, "also time the global loss alone on N rows per view (0: off)")
      ->check(CLI::Range(0, 1 << 20));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = dist::launcher_rank() == 0 ? app.exit(e) : e.get_exit_code();  // printed once
    std::exit(code == 0 ? 0 : 2);
  }
  return a;
}

/// The world's communicator with a tally of every collective: calls, bytes per rank and seconds, split by phase
/// (inside DataParallel or the rest of the step). Counting is on only while `counting` is set.
class CountingComm final : public Communicator {
public:
  enum Phase { kStep = 0, kDp = 1, kPhases };
  enum Op { kAllReduce = 0, kAllGather, kReduceScatter, kBroadcast, kBarrier, kOps };
  static constexpr std::array<const char*, kOps> kOpNames{"all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                                          "barrier"};
  struct Tally {
    std::uint64_t calls = 0, bytes = 0;
    double seconds = 0;
  };

  explicit CountingComm(std::shared_ptr<Communicator> inner) : inner_(std::move(inner)) {}

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::broadcast;
  using Communicator::reduce_scatter;

  int rank() const noexcept override { return inner_->rank(); }
  int size() const noexcept override { return inner_->size(); }
  const char* engine() const noexcept override { return inner_->engine(); }
  CommMemory memory() const noexcept override { return inner_->memory(); }

  void all_reduce(void* buf, std::size_t n, distill::CommType t, ReduceOp op) override {
    timed(kAllReduce, n, t, [&] { inner_->all_reduce(buf, n, t, op); });
  }
  void all_gather(const void* send, void* recv, std::size_t n, distill::CommType t) override {
    timed(kAllGather, n, t, [&] { inner_->all_gather(send, recv, n, t); });
  }
  void reduce_scatter(const void* send, void* recv, std::size_t n, distill::CommType t, ReduceOp op) override {
    timed(kReduceScatter, n, t, [&] { inner_->reduce_scatter(send, recv, n, t, op); });
  }
  void broadcast(void* buf, std::size_t n, distill::CommType t, int root) override {
    timed(kBroadcast, n, t, [&] { inner_->broadcast(buf, n, t, root); });
  }
  void barrier() override {
    timed(kBarrier, 0, distill::CommType::f32, [&] { inner_->barrier(); });
  }

  Communicator& inner() noexcept { return *inner_; }
  const Tally& tally(Phase p, Op o) const noexcept { return tally_[p][o]; }
  double seconds(Phase p) const noexcept {
    double s = 0;
    for (const auto& t : tally_[p]) s += t.seconds;
    return s;
  }
  void reset() noexcept { tally_ = {}; }

  bool counting = false;
  Phase phase = kStep;

private:
  template <class F>
  void timed(Op op, std::size_t n, distill::CommType t, F&& f) {
    if (!counting) return f();
    const auto t0 = clk::now();
    f();
    Tally& y = tally_[phase][op];
    y.seconds += std::chrono::duration<double>(clk::now() - t0).count();
    y.bytes += n * comm_type_size(t);
    ++y.calls;
  }

  std::shared_ptr<Communicator> inner_;
  std::array<std::array<Tally, kOps>, kPhases> tally_{};
};

double ms_since(clk::time_point t0) { return std::chrono::duration<double, std::milli>(clk::now() - t0).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double min_of(const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }

/// Elementwise max over ranks (in place), on the uncounted communicator.
void max_over_ranks(Communicator& comm, std::vector<double>& v) {
  if (!v.empty()) comm.all_reduce(std::span<double>(v), ReduceOp::max);
}

std::string json_array(const std::vector<double>& v) {
  std::string s = "[";
  char buf[32];
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.4f", i ? ", " : "", v[i]);
    s += buf;
  }
  return s + "]";
}

/// Conv FLOPs of one step (forward + grad-input + grad-weight, 2 * MACs each) for `b` rows per view (2b series).
double encoder_flops(index_t b, index_t L) {
  return 3.0 * models::Dcrls<64>::Encoder::flops_per_series(L) * double(2 * b);
}

/// The global DCRLS loss of Dcrls::contrastive_loss (variant sd) on random embeddings: per block NT-Xent on
/// [N, 128] x 2 views, self-distillation KL of blocks 1 and 2 against the detached block 3 over the 2N stacked
/// rows; forward + backward. Min ms over `reps` (after one warm-up), no communication.
double loss_probe_ms(Context<Cpu>& ctx, index_t rows, int reps) {
  constexpr index_t d = models::Dcrls<64>::proj_dim;
  const models::DcrlsConfig cfg{};
  std::array<Tensor<float, 2>, 6> z;
  CounterRng r(11);
  for (auto& t : z) {
    t = Tensor<float, 2>(Shape<2>{rows, d});
    for (auto& v : t) v = float(r.normal());
  }
  double best = 1e300;
  for (int rep = 0; rep < reps + 1; ++rep) {
    std::array<Var<float, 2, Cpu>, 6> v;
    for (std::size_t i = 0; i < z.size(); ++i) v[i] = parameter(ctx, z[i]);
    const auto t0 = clk::now();
    Var<float, 0, Cpu> total;
    std::array<Var<float, 2, Cpu>, 3> stacked;
    for (int b = 0; b < 3; ++b) {
      auto l = losses::nt_xent(v[2 * b], v[2 * b + 1], cfg.tau);
      total = total.defined() ? add(total, l) : l;
      stacked[b] = concat0(v[2 * b], v[2 * b + 1]);
    }
    const auto teacher = stacked[2].detach();
    for (int b = 0; b < 2; ++b)
      total = add(total, losses::soft_contrastive_kl(stacked[b], stacked[b], teacher, teacher, cfg.tau,
                                                     cfg.temperature, losses::Diagonal::exclude));
    total.backward();
    if (rep > 0) best = std::min(best, ms_since(t0));
  }
  return best;
}

int run(const Args& a, const dist::World& world) {
  auto counted = std::make_shared<CountingComm>(world.comm());
  Communicator& raw = counted->inner();  // barriers and result reductions: not part of the step, never counted
  const int W = raw.size();
  if (a.batch % W != 0) {
    if (world.is_root())
      std::fprintf(stderr, "bench_dist_step: --batch %lld does not split evenly over %d ranks\n",
                   static_cast<long long>(a.batch), W);
    return 2;
  }
  const index_t B = a.batch, L = a.length, b = B / W;

  Context<Cpu> ctx(a.threads, 0);
  ctx.set_communicator(counted);
  ctx.set_sync_batch_norm(a.sync_bn);

  models::Dcrls<64, float, Cpu> model(ctx, models::DcrlsConfig{});  // variant sd (AllBlocksSD), tau 0.2, T 3
  auto trainable = model.trainable();
  optim::Adam<float, Cpu> opt(trainable, {.lr = 1e-3, .weight_decay = 1e-4});
  dist::DataParallel<float, Cpu> dp(ctx, model, trainable);  // broadcasts rank 0's model

  // The same seeded global batch on every rank, two fixed views; this rank's rows of each.
  Tensor<float, 3> g1(Shape<3>{B, 1, L}), g2(Shape<3>{B, 1, L});
  CounterRng r(7);
  for (auto& v : g1) v = float(r.normal());
  for (auto& v : g2) v = float(r.normal());
  const Tensor<float, 3> x1 = dist::shard_rows(g1, raw), x2 = dist::shard_rows(g2, raw);

  model.train(true);
  optim::TrainPosition at;
  auto after_backward = [&] {
    counted->phase = CountingComm::kDp;
    dp();
    counted->phase = CountingComm::kStep;
  };
  auto step = [&] {
    auto loss = model.contrastive_loss(constant(ctx, x1), constant(ctx, x2));
    optim::checked_step(opt, loss.total, at, after_backward);
    ++at.step;
  };

  for (int i = 0; i < a.warmup; ++i) step();
  raw.barrier();
  counted->reset();
  counted->counting = true;
  const std::int64_t dp_calls0 = dp.calls();
  const std::uint64_t dp_bytes0 = dp.bytes_reduced(), dp_buckets0 = dp.buckets_reduced();
  std::vector<double> step_ms, dp_ms, comm_ms;
  for (int i = 0; i < a.reps; ++i) {
    if (a.settle_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.settle_ms));
    raw.barrier();
    const double s0 = dp.seconds(), c0 = counted->seconds(CountingComm::kStep);
    const auto t0 = clk::now();
    step();
    step_ms.push_back(ms_since(t0));
    dp_ms.push_back(1e3 * (dp.seconds() - s0));
    comm_ms.push_back(1e3 * (counted->seconds(CountingComm::kStep) - c0));
  }
  counted->counting = false;
  const std::int64_t calls = dp.calls() - dp_calls0;
  const double ar_bytes = calls ? double(dp.bytes_reduced() - dp_bytes0) / double(calls) : 0.0;
  const double ar_buckets = calls ? double(dp.buckets_reduced() - dp_buckets0) / double(calls) : 0.0;

  std::vector<double> probe{a.loss_probe_rows > 0 ? loss_probe_ms(ctx, a.loss_probe_rows, 3) : 0.0};
  max_over_ranks(raw, step_ms);
  max_over_ranks(raw, dp_ms);
  max_over_ranks(raw, comm_ms);
  max_over_ranks(raw, probe);
  if (!world.is_root()) return 0;

  std::string coll = "{";
  for (int p = 0; p < CountingComm::kPhases; ++p) {
    coll += p ? ", \"dp\": {" : "\"step\": {";
    bool first = true;
    for (int o = 0; o < CountingComm::kOps; ++o) {
      const auto& t = counted->tally(CountingComm::Phase(p), CountingComm::Op(o));
      if (t.calls == 0) continue;
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s\"%s\": {\"calls\": %.4g, \"bytes\": %.6g}", first ? "" : ", ",
                    CountingComm::kOpNames[o], double(t.calls) / a.reps, double(t.bytes) / a.reps);
      coll += buf;
      first = false;
    }
    coll += "}";
  }
  coll += "}";
  std::string loss_probe = "null";
  if (a.loss_probe_rows > 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "{\"rows_per_view\": %lld, \"ms\": %.4f}", static_cast<long long>(a.loss_probe_rows),
                  probe[0]);
    loss_probe = buf;
  }
  std::printf(
      "{\"bench\": \"dist_step\", \"model\": \"Dcrls<64,float,Cpu> sd\", \"optim\": \"adam lr 1e-3 wd 1e-4\", "
      "\"engine\": \"%s\", \"ranks\": %d, \"threads_per_rank\": %d, \"batch\": %lld, \"per_rank_batch\": %lld, "
      "\"length\": %lld, \"sync_bn\": %s, \"reps\": %d, \"warmup\": %d, \"settle_ms\": %d, "
      "\"step_ms_min\": %.4f, \"step_ms_median\": %.4f, \"allreduce_ms_median\": %.4f, "
      "\"loss_comm_ms_median\": %.4f, \"allreduce_bytes\": %.0f, \"allreduce_buckets\": %.4g, "
      "\"gathered_rows\": %lld, \"param_count\": %lld, \"encoder_flops\": %.6g, \"isa\": \"%s\", "
      "\"collectives\": %s, \"loss_probe\": %s, \"step_ms_reps\": %s, \"allreduce_ms_reps\": %s, "
      "\"loss_comm_ms_reps\": %s}\n",
      raw.engine(), W, a.threads, static_cast<long long>(B), static_cast<long long>(b), static_cast<long long>(L),
      a.sync_bn ? "true" : "false", a.reps, a.warmup, a.settle_ms, min_of(step_ms), median(step_ms), median(dp_ms),
      median(comm_ms), ar_bytes, ar_buckets, static_cast<long long>(W > 1 ? B : 0),
      static_cast<long long>(trainable.numel()), encoder_flops(b, L), isa_name(ctx.isa()), coll.c_str(),
      loss_probe.c_str(), json_array(step_ms).c_str(), json_array(dp_ms).c_str(), json_array(comm_ms).c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);  // before MPI starts: every rank parses the same command line
  std::optional<dist::World> world;
  try {
    world.emplace(&argc, &argv);
    return run(a, *world);  // 0, or 2 on every rank for a batch that does not split
  } catch (const std::exception& e) {
    const int rank = world ? world->rank() : 0;
    std::fprintf(stderr, "bench_dist_step (rank %d): error: %s\n", rank, e.what());
    if (world && world->size() > 1) world->abort(1);  // the other ranks may wait in a collective
    return 1;
  }
}
