// examples/common/cli.hpp -- strict command lines for the example binaries (CLI11), shared by dcrls, disco, mcl.
//
// CLI11 converts options itself, but leniently for our purposes (an unsigned option takes "-1" as 2^64 - 1, a
// real takes "nan", and "abc" for an integer is reported as out of range). The validators below run on the raw
// token first: the whole token must be a number of the option's kind, finite, inside the stated range; the
// message names the option and the value ("--epochs: 'abc' is not a whole number; expected an integer in
// [1, 1000000]"). Exit codes: 0 success, 1 a run-time error, 2 a usage error, 3 training diverged.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <system_error>
#include <thread>

#include "distill/core/error.hpp"
#include "distill/optim/divergence.hpp"

namespace distill::examples {

inline constexpr int kExitError = 1, kExitUsage = 2, kExitDiverged = 3;

/// An integer option in [lo, hi]: whole token, no sign for an unsigned type, no leftovers.
template <class I>
CLI::Validator integer_in(I lo, I hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        I v{};
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec == std::errc::result_out_of_range || (r.ec == std::errc() && r.ptr == s.data() + s.size() && (v < lo || v > hi)))
          return "'" + s + "' is out of range; expected an integer in " + range;
        if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty())
          return "'" + s + "' is not a whole number; expected an integer in " + range;
        return {};
      },
      "INT in " + range);
}

/// A real option in [lo, hi]: whole token, finite; `open_lo` excludes lo itself.
inline CLI::Validator real_in(double lo, double hi, bool open_lo = false) {
  const std::string range = std::string(open_lo ? "(" : "[") + fmt::format("{:g}, {:g}", lo, hi) + "]";
  return CLI::Validator(
      [lo, hi, open_lo, range](std::string& s) -> std::string {
        double v = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty() || !std::isfinite(v))
          return "'" + s + "' is not a finite number; expected a number in " + range;
        if (v < lo || v > hi || (open_lo && v == lo)) return "'" + s + "' is out of range; expected a number in " + range;
        return {};
      },
      "X in " + range);
}

/// A temperature: a finite number whose reciprocal is finite in float (optim::checked_temperature).
inline CLI::Validator temperature() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty() || !std::isfinite(v))
          return "'" + s + "' is not a finite number";
        try {
          distill::optim::checked_temperature("value", v);
        } catch (const distill::Error&) {
          return "'" + s + "' is not a usable temperature: it must be positive, and it and its reciprocal must be "
                 "finite in single precision (about 3e-39 to 3.4e38)";
        }
        return {};
      },
      "TEMPERATURE");
}

/// Parses the command line; on --help prints it and exits 0, on a usage error prints "<prog>: <message>" and a
/// hint, and exits kExitUsage.
inline void parse_or_exit(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(0);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "{}: {} (see --help)\n", app.get_name(), e.what());
    std::exit(kExitUsage);
  }
}

/// A thread count above the machine's cores is clamped with a warning (more threads only add overhead and
/// memory); returns the count to use.
inline int clamp_threads(const std::string& prog, int requested) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (requested <= cores) return requested;
  fmt::print(stderr, "{}: warning: --threads {} exceeds the {} cores of this machine; using {}\n", prog, requested,
             cores, cores);
  return cores;
}

/// Creates `dir` (and parents) and proves it writable by creating and removing a file in it, before any work.
inline void prepare_output_dir(const std::string& option, const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    DISTILL_FAIL(option, " '", dir.string(), "' exists and is not a directory; give a directory for the outputs");
  fs::create_directories(dir, ec);
  if (ec) DISTILL_FAIL(option, " '", dir.string(), "' cannot be created: ", ec.message());
  const fs::path probe = dir / (".write-test-" + std::to_string(::getpid()));
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  const int err = errno;
  if (!f) DISTILL_FAIL(option, " '", dir.string(), "' is not writable: ", std::strerror(err));
  const bool ok = std::fputs("ok\n", f) >= 0;
  const bool closed = std::fclose(f) == 0;
  fs::remove(probe, ec);
  if (!ok || !closed) DISTILL_FAIL(option, " '", dir.string(), "' is not writable: writing a test file failed");
}

/// The options every training example shares: where its outputs go, how often its training state is saved, resuming
/// a killed run, progress lines, and the hidden divergence test hook. add_run_options() declares them,
/// finish_run_options() settles --out after parsing.
struct RunOptions {
  std::string out;     // default: the program's, or the --resume directory
  std::string resume;  // a run directory holding state.ckpt
  std::int64_t checkpoint_every = 1;
  std::string checkpoint_unit = "epoch";
  bool quiet = false;
  std::int64_t inject_nan_at = -1;  // test hook: a NaN in the input of this global step (0-based)

  /// Whether the training state is due after the step that brought the loader to (epoch, step) of `nb` steps per
  /// epoch (epoch_end: that step closed an epoch).
  bool checkpoint_due(std::int64_t epoch, std::int64_t step, std::int64_t nb, bool epoch_end) const {
    if (checkpoint_every == 0) return false;
    if (checkpoint_unit == "step") return (epoch * nb + step) % checkpoint_every == 0;
    return epoch_end && epoch % checkpoint_every == 0;
  }
  /// Whether the progress line of 0-based `epoch` (just finished) is printed: the first, the last and every tenth.
  bool shows_progress(std::int64_t epoch, std::int64_t epochs) const {
    return !quiet && (epoch == 0 || epoch + 1 == epochs || (epoch + 1) % std::max<std::int64_t>(1, epochs / 10) == 0);
  }
};

/// Declares --out, --checkpoint-every, --checkpoint-unit, --resume, --quiet and the hidden --inject-nan-at-step.
/// `refused`: what a resume with other settings is refused for (e.g. "dataset, variant or setting").
inline void add_run_options(CLI::App& app, RunOptions& r, const std::string& default_out, const std::string& refused) {
  app.add_option("--out", r.out, "output directory (default " + default_out + "; with --resume, the resumed directory)");
  app.add_option("--checkpoint-every", r.checkpoint_every,
                 "save the training state every N epochs or steps (see --checkpoint-unit); 0: only at the end")
      ->check(integer_in<std::int64_t>(0, 1'000'000'000));
  app.add_option("--checkpoint-unit", r.checkpoint_unit, "unit of --checkpoint-every")
      ->check(CLI::IsMember({"epoch", "step"}));
  app.add_option("--resume", r.resume,
                 "continue the run whose output directory is DIR from its state.ckpt (same options; another " +
                     refused + " is refused)");
  app.add_flag("--quiet", r.quiet, "no per-epoch progress lines");
  app.add_option("--inject-nan-at-step", r.inject_nan_at,
                 "test hook: put a NaN into the input of global step N (0-based) to exercise the divergence path")
      ->check(integer_in<std::int64_t>(0, 1'000'000'000))
      ->group("");  // hidden from --help
}

/// After parsing: --out defaults to the --resume directory (else `default_out`); a resumed run continues in its
/// own directory, so a different --out is refused.
inline void finish_run_options(RunOptions& r, const std::string& default_out) {
  namespace fs = std::filesystem;
  if (r.out.empty()) r.out = r.resume.empty() ? default_out : r.resume;
  if (!r.resume.empty() && fs::weakly_canonical(r.resume) != fs::weakly_canonical(r.out))
    DISTILL_FAIL("--resume '", r.resume, "' and --out '", r.out,
                 "' differ; a resumed run continues in its own directory (leave out --out)");
}

/// Progress lines reach a redirected stdout as they are printed (line buffering instead of block buffering).
inline void line_buffer_stdout() { std::setvbuf(stdout, nullptr, _IOLBF, 1 << 12); }

}  // namespace distill::examples
