// examples/common/example.hpp -- the conventions the example programs share besides their command lines
// (common/cli.hpp): the guarded main (exit codes, line-buffered progress) and the standard evaluation outputs of a
// run directory.
#pragma once

#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "common/cli.hpp"
#include "distill/core/error.hpp"
#include "distill/optim/divergence.hpp"
#include "distill/data/dataset.hpp"
#include "distill/data/ucr.hpp"
#include "distill/dist/world.hpp"
#include "distill/eval/evaluate.hpp"
#include "distill/io/progress.hpp"
#include "distill/io/train_state.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/sgd.hpp"

namespace distill::examples {

/// Runs the program body with stdout line-buffered (progress lines reach a redirected stdout as printed). A
/// divergence becomes "<program>: <message>" and exit status 3 (no metrics written; the last good training state,
/// where the program keeps one, stays for --resume); any other exception "<program>: <message>" and status 1.
template <class F>
int guarded_main(const char* program, F&& body) {
  line_buffer_stdout();
  try {
    return body();
  } catch (const optim::DivergenceError& e) {
    fmt::print(stderr, "{}: {}\n{}: no metrics were written; the last good training state (if saved) is kept\n", program,
               e.what(), program);
    return kExitDiverged;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", program, e.what());
    return kExitError;
  }
}

/// guarded_main for a program that may run as data-parallel ranks (`mpirun -np N prog ...`, dist/world.hpp):
/// starts the ranks from the launcher's environment (one process without a launcher), gives body(world) the
/// world, and prints from rank 0 only (the other ranks' stdout is discarded; errors reach stderr from every rank,
/// prefixed "<program> (rank r of N)"). An error on one rank ends the whole job with its exit status (MPI_Abort):
/// the other ranks may be waiting in a collective.
template <class F>
int ranks_main(const char* program, int& argc, char**& argv, F&& body) {
  std::optional<dist::World> world;
  if (const int rc = guarded_main(program, [&] {
        world.emplace(&argc, &argv);
        return 0;
      }))
    return rc;
  std::string label = program;
  if (world->size() > 1) label += " (" + world->comm()->describe() + ")";
  if (!world->is_root() && !std::freopen("/dev/null", "w", stdout)) return kExitError;
  const int rc = guarded_main(label.c_str(), [&] { return body(*world); });
  if (rc != 0 && world->size() > 1) world->abort(rc);
  return rc;
}

/// For the programs that train on one process only: a world of more than one rank is refused with a sentence.
inline void require_single_rank(const dist::World& world, const char* program) {
  DISTILL_CHECK(world.size() == 1, program, " was launched with ", world.size(), " ranks; data-parallel training "
                "(mpirun -np N) is implemented for dcrls and disco (docs/distributed.md). Run ", program, " as one process");
}

/// Evaluates a frozen encoder on both splits (linear probe with `probe_steps` Adam steps, 1-NN, k-means with
/// `kmeans_restarts` restarts, all seeded by `seed`) and writes a run directory's standard outputs: metrics.json,
/// a row of metrics.csv, train/test _z.npy / _y.npy and embedding.svg.
template <class Embed>
eval::EvalResult evaluate_run(Context<Cpu>& ctx, const data::UcrSplits& splits, Embed&& embed, const std::string& dir,
                              int probe_steps, int kmeans_restarts, std::uint64_t seed, const io::Record& tags) {
  eval::EvalOptions eo;
  eo.probe_options.steps = probe_steps;
  eo.kmeans_restarts = kmeans_restarts;
  eo.seed = seed;
  return eval::evaluate_splits(ctx, splits, std::forward<Embed>(embed), eo,
                               {.metrics_json = dir + "metrics.json", .metrics_csv = dir + "metrics.csv",
                                .embeddings_prefix = dir, .embedding_svg = dir + "embedding.svg"},
                               tags);
}

/// The optimizer chosen by `--optim`: Adam (L2 weight decay), or SGD with Nesterov momentum 0.9. Held by its
/// concrete type, so that a training state saves its moments, and used through the common interface.
template <class T, class D>
class ChosenOptimizer {
public:
  ChosenOptimizer(const std::string& kind, const ParamList<T, D>& params, double lr, double weight_decay) {
    if (kind == "adam")
      adam_ = std::make_unique<optim::Adam<T, D>>(params, optim::AdamOptions{.lr = lr, .weight_decay = weight_decay});
    else if (kind == "sgd")
      sgd_ = std::make_unique<optim::SGD<T, D>>(
          params, optim::SgdOptions{.lr = lr, .momentum = 0.9, .weight_decay = weight_decay, .nesterov = true});
    else
      DISTILL_FAIL("--optim '", kind, "' is not an optimizer; expected adam or sgd");
  }
  optim::Optimizer<T, D>& operator*() {
    if (adam_) return *adam_;
    return *sgd_;
  }
  optim::Optimizer<T, D>* operator->() { return &**this; }
  /// Registers the optimizer's state as "<prefix>adam" or "<prefix>sgd".
  void register_in(io::TrainState& state, const std::string& prefix = {}) {
    if (adam_) state.add_optimizer(prefix + "adam", *adam_);
    if (sgd_) state.add_optimizer(prefix + "sgd", *sgd_);
  }

private:
  std::unique_ptr<optim::Adam<T, D>> adam_;
  std::unique_ptr<optim::SGD<T, D>> sgd_;
};

/// Where a resumable training loop stands: the loader position (epoch in progress, next step) and the counts of
/// the epoch so far. register_loop() puts them in a training state, so that a killed run continues mid-epoch.
struct LoopPosition {
  std::int64_t epoch = 0, step = 0, items = 0, steps = 0;
};
inline void register_loop(io::TrainState& state, const data::DataLoader& loader, LoopPosition& p) {
  state.add_loader("loader", loader, p.epoch, p.step).add_value("epoch.items", p.items).add_value("epoch.steps", p.steps);
}

/// The epoch loop every example runs, from `p` (0 / 0, or where a restored state left it) to `epochs`:
///   begin_epoch(epoch)                  at the start of every epoch (or of its resumed part): e.g. the lr schedule;
///   train_step(batch, at, global_step)  one step on the batch; returns false when it skips the batch;
///   close_epoch(n)                      the epoch's mean loss from the caller's sums over its n trained steps
///                                       (push the curves, reset the sums).
/// It closes each epoch before a checkpoint (so a saved position is (epoch + 1, 0)), prints the progress line per
/// `run`, saves `state` (if any) when run.checkpoint_due() and once at the end.
template <class Begin, class Step, class Close>
void run_epochs(const data::DataLoader& loader, std::int64_t epochs, LoopPosition& p, const RunOptions& run,
                io::TrainState* state, io::ProgressMeter& meter, Begin&& begin_epoch, Step&& train_step,
                Close&& close_epoch) {
  const std::int64_t nb = loader.num_batches();
  while (p.epoch < epochs) {
    begin_epoch(p.epoch);
    const auto plan = loader.epoch_plan(p.epoch);
    while (p.step < nb) {
      auto batch = data::gather(loader.dataset(), plan[static_cast<std::size_t>(p.step)]);
      if (train_step(batch, optim::TrainPosition{p.epoch, p.step}, p.epoch * nb + p.step)) {
        p.items += batch.x.extent(0);
        ++p.steps;
      }
      ++p.step;
      const bool epoch_end = p.step == nb;
      if (epoch_end) {
        const double mean = close_epoch(double(std::max<std::int64_t>(1, p.steps)));
        const std::string line = meter.tick(p.epoch + 1, mean, p.items);
        if (run.shows_progress(p.epoch, epochs)) fmt::print("{}\n", line);
        ++p.epoch;
        p.step = p.items = p.steps = 0;
      }
      if (state && run.checkpoint_due(p.epoch, p.step, nb, epoch_end)) state->save();
      if (epoch_end) break;
    }
  }
  if (state) state->save();  // the finished state: a --resume of a finished run only re-evaluates
}

}  // namespace distill::examples
