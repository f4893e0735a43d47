// distill/io/progress.hpp -- a one-line training progress report (epoch, loss, items/s, ETA) through fmt.
//
// This is the only distill header that uses fmt: link fmt::fmt into a target that includes it.
//
// snippet: fragment; given: index_t epochs = 20;
//   io::ProgressMeter meter(epochs, "GunPoint");
//   for (index_t e = 1; e <= epochs; ++e) {
//     double loss = 0;  index_t n_items = 0;   // ... train one epoch ...
//     std::fputs((meter.tick(e, loss, n_items) + "\n").c_str(), stderr);
//   }
//
// Throughput is items of the last epoch over its wall time; the ETA is the mean epoch time so far times the
// epochs left. update() takes the epoch's duration explicitly (deterministic; used by tick() and the tests).
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "distill/core/error.hpp"
#include "distill/core/shape.hpp"

namespace distill::io {

/// "m:ss" below an hour, "h:mm:ss" above; "--:--" when unknown (not finite or negative).
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<long long>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

/// The progress line for given numbers.
inline std::string format_progress(const std::string& label, index_t epoch, index_t total_epochs, double loss,
                                   double items_per_second, double eta_seconds) {
  const int w = static_cast<int>(fmt::formatted_size("{}", total_epochs));
  return fmt::format("{}epoch {:>{}}/{}  loss {:.6g}  {:.1f} items/s  ETA {}", label.empty() ? "" : "[" + label + "] ",
                     epoch, w, total_epochs, loss, items_per_second, format_duration(eta_seconds));
}

class ProgressMeter {
public:
  explicit ProgressMeter(index_t total_epochs, std::string label = {})
      : total_(total_epochs), label_(std::move(label)), last_(std::chrono::steady_clock::now()) {
    DISTILL_CHECK(total_epochs >= 1, "ProgressMeter: total epochs must be >= 1, got ", total_epochs);
  }

  /// Records epoch `epoch` (1-based) that processed `items` in `seconds`; returns the line.
  std::string update(index_t epoch, double loss, index_t items, double seconds) {
    DISTILL_CHECK(epoch >= 1 && epoch <= total_, "ProgressMeter: epoch ", epoch, " outside [1, ", total_, "]");
    DISTILL_CHECK(seconds >= 0, "ProgressMeter: negative epoch time ", seconds);
    elapsed_ += seconds;
    ++done_;
    const double rate = seconds > 0 ? double(items) / seconds : 0.0;
    const double eta = elapsed_ / double(done_) * double(total_ - epoch);
    return format_progress(label_, epoch, total_, loss, rate, eta);
  }
  /// As update(), timing the epoch as the wall time since the previous tick (or construction / restart()).
  std::string tick(index_t epoch, double loss, index_t items) {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return update(epoch, loss, items, s);
  }
  /// Restarts the clock tick() measures from (e.g. after evaluation work that should not count).
  void restart() { last_ = std::chrono::steady_clock::now(); }
  double elapsed_seconds() const noexcept { return elapsed_; }

private:
  index_t total_;
  std::string label_;
  std::chrono::steady_clock::time_point last_;
  double elapsed_ = 0;
  index_t done_ = 0;
};

}  // namespace distill::io
