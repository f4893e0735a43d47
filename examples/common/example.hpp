// examples/common/example.hpp -- the conventions the example programs share besides their command lines
// (common/cli.hpp): the guarded main (exit codes, line-buffered progress) and the standard evaluation outputs of a
// run directory.
#pragma once

#include <fmt/core.h>

#include <cstdlib>
#include <exception>
#include <string>

#include "common/cli.hpp"
#include "distill/core/error.hpp"
#include "distill/optim/divergence.hpp"
#include "distill/data/ucr.hpp"
#include "distill/eval/evaluate.hpp"

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

}  // namespace distill::examples
