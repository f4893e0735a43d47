// examples/common/example.hpp -- the conventions the example programs share: option parsing (--help, a clear error
// naming the option at fault), the guarded main, and the standard evaluation outputs of a run directory.
//
//   for (examples::Options o(argc, argv, usage); o.next();) {
//     if (o.is("--dataset")) a.dataset = o.value();
//     else if (o.is("--epochs")) a.epochs = o.integer();
//     else o.unknown();
//   }
#pragma once

#include <fmt/core.h>

#include <cstdlib>
#include <exception>
#include <string>

#include "distill/core/error.hpp"
#include "distill/data/ucr.hpp"
#include "distill/eval/evaluate.hpp"

namespace distill::examples {

class Options {
public:
  /// `usage()` prints the help text (for --help / -h, after which the program exits 0).
  Options(int argc, char** argv, void (*usage)()) : argc_(argc), argv_(argv), usage_(usage) {}

  /// Advances to the next option; false at the end.
  bool next() {
    if (++i_ >= argc_) return false;
    name_ = argv_[i_];
    if (name_ == "--help" || name_ == "-h") {
      usage_();
      std::exit(0);
    }
    return true;
  }
  bool is(const char* option) const { return name_ == option; }
  const std::string& name() const noexcept { return name_; }

  /// The option's value (the next argument).
  std::string value() {
    if (i_ + 1 >= argc_) DISTILL_FAIL("option ", name_, " needs a value (see --help)");
    return argv_[++i_];
  }
  long long integer() { return convert<long long>([](const std::string& v) { return std::stoll(v); }); }
  unsigned long long unsigned_integer() {
    return convert<unsigned long long>([](const std::string& v) { return std::stoull(v); });
  }
  double number() { return convert<double>([](const std::string& v) { return std::stod(v); }); }

  [[noreturn]] void unknown() const { DISTILL_FAIL("unknown option '", name_, "' (see --help)"); }

private:
  template <class R, class F>
  R convert(F&& f) {
    const std::string v = value();
    try {
      return f(v);
    } catch (const std::exception&) {
      DISTILL_FAIL("option ", name_, ": '", v, "' is not a number");
    }
  }

  int argc_;
  char** argv_;
  void (*usage_)();
  int i_ = 0;
  std::string name_;
};

/// Runs the program body; an exception becomes "<program>: <message>" on stderr and exit status 1.
template <class F>
int guarded_main(const char* program, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", program, e.what());
    return 1;
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
