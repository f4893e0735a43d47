// libFuzzer target for the UCR TSV parser (distill/data/ucr.hpp).
//
// Built with clang++ -fsanitize=fuzzer,address,undefined by tests/fuzz/run_fuzz.sh (or the CMake target
// fuzz_ucr when clang++ is available), and with a plain main() (replay_main.cpp) as the CTest test
// fuzz_ucr_replay, which runs the seed corpus under the regular and the sanitizer builds.
//
// The parser may reject an input only with distill::Error. For accepted input the invariants below must hold:
// table sizes agree, lengths are in [1, cols], and after label mapping, NaN filling and z-normalisation every
// value is finite. The first half of the input also plays the training file for the second half (label map
// from train, test labels absent from train rejected).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "distill/data/ucr.hpp"

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}

void check_table(const distill::data::UcrTable& t) {
  require(t.rows >= 1 && t.cols >= 1);
  require(static_cast<distill::index_t>(t.labels.size()) == t.rows);
  require(static_cast<distill::index_t>(t.lengths.size()) == t.rows);
  require(static_cast<distill::index_t>(t.values.size()) == t.rows * t.cols);
  for (auto l : t.lengths) require(l >= 1 && l <= t.cols);
  for (double y : t.labels) require(std::isfinite(y));
}

void check_dataset(const distill::data::Dataset& d, const distill::data::UcrTable& t) {
  d.validate();
  require(d.size() == t.rows && d.length() == t.cols && d.channels() == 1);
  for (distill::index_t i = 0; i < d.size(); ++i)
    for (distill::index_t j = 0; j < d.length(); ++j) {
      const float v = d.x(i, 0, j);
      require(std::isfinite(v));
      if (j >= d.lengths[static_cast<std::size_t>(i)]) require(v == 0.0f);
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace distill::data;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const UcrTable t = parse_ucr(text, "fuzz");
    check_table(t);
    const auto classes = ucr_classes(t);
    check_dataset(make_ucr_dataset(t, classes, needs_z_normalization(t)), t);
    check_dataset(make_ucr_dataset(t, classes, true), t);
  } catch (const distill::Error&) {
  }
  // Split at a line boundary near the middle: train = first part, test = second part.
  const std::size_t cut = text.find('\n', text.size() / 2);
  if (cut != std::string_view::npos) {
    try {
      const UcrTable tr = parse_ucr(text.substr(0, cut + 1), "fuzz_train");
      const UcrTable te = parse_ucr(text.substr(cut + 1), "fuzz_test");
      check_dataset(make_ucr_dataset(te, ucr_classes(tr), needs_z_normalization(tr)), te);
    } catch (const distill::Error&) {
    }
  }
  return 0;
}
