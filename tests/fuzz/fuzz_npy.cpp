// libFuzzer target for the .npy reader (distill/io/npy.hpp: parse_npy_header, parse_npy).
//
// Built with clang++ -fsanitize=fuzzer,address,undefined by tests/fuzz/run_fuzz.sh npy (or the CMake target
// fuzz_npy when clang++ is available), and with a plain main() (replay_main.cpp) as the CTest test
// fuzz_npy_replay, which runs the seed corpus tests/fuzz/corpus_npy.
//
// The reader may reject an input only with distill::Error. An accepted array must hold exactly the elements its
// shape announces, all taken from the bytes present after the header, and write_npy must write it back to a
// header that parses to the same shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "distill/io/npy.hpp"

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}

template <class T, std::size_t R>
void try_read(std::string_view bytes) {
  try {
    const auto t = distill::io::parse_npy<T, R>(bytes, "fuzz.npy");
    const auto info = distill::io::parse_npy_header(bytes, "fuzz.npy");
    require(info.shape.size() == R);
    std::size_t n = 1;
    for (std::size_t i = 0; i < R; ++i) {
      require(t.extent(i) == info.shape[i]);
      n *= static_cast<std::size_t>(info.shape[i]);
    }
    require(static_cast<std::size_t>(t.numel()) == n);
    require(info.data_offset + n * sizeof(T) <= bytes.size());
    if (n) require(std::memcmp(t.data(), bytes.data() + info.data_offset, n * sizeof(T)) == 0);
    const std::string back = distill::io::npy_header<T>(info.shape);
    require(distill::io::parse_npy_header(back).shape == info.shape);
  } catch (const distill::Error&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto info = distill::io::parse_npy_header(bytes, "fuzz.npy");
    require(info.data_offset <= size);
    for (auto e : info.shape) require(e >= 0);
  } catch (const distill::Error&) {
  }
  try_read<float, 2>(bytes);
  try_read<float, 0>(bytes);
  try_read<double, 1>(bytes);
  try_read<std::int64_t, 1>(bytes);
  try_read<std::int32_t, 2>(bytes);
  try_read<std::uint8_t, 3>(bytes);
  return 0;
}
