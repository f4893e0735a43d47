// distill/core/isa.hpp -- instruction-set levels of the CPU kernels, chosen at run time.
//
// The kernels that matter (conv1d's implicit-GEMM micro-kernels, the fused losses' tile products and
// exponentials) are compiled several times in every translation unit that uses them, once per level, whatever
// -march the consumer passed:
//
//   Isa::portable   plain C++ loops (what the consumer's flags make of them)
//   Isa::avx2       AVX2 + FMA intrinsics                     (x86-64-v3: Haswell, Zen 1 and later)
//   Isa::avx512     the AVX2 + FMA kernels compiled for AVX-512F/VL/BW/DQ (x86-64-v4: Skylake-SP, Zen 4):
//                   32 vector registers and EVEX encodings; the algorithms are the 256-bit ones
//
// A level's code lives in a region opened by DISTILL_ISA_BEGIN_<level> (GCC's `#pragma GCC target`, clang's
// `#pragma clang attribute`), so it may use that level's intrinsics while the rest of the translation unit stays
// at the consumer's baseline (docs/architecture.md, "CPU instruction-set levels"). Inside such a region the
// macro DISTILL_ISA_LEVEL (0, 1, 2) says which level is being compiled (C++ front ends do not update __AVX2__
// inside a target region, so the kernels test DISTILL_ISA_LEVEL, never __AVX2__).
//
// Which level runs: a Context<Cpu> picks the best level the CPU supports when it is constructed, unless the
// environment variable DISTILL_ISA (portable | avx2 | avx512 | best) asks for another one; a level the CPU lacks is
// refused with a sentence. `ctx.set_isa(level)` changes it for one context (tests compare the levels this way);
// `ctx.isa()` and `cpu::isa_name()` report it.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "distill/core/error.hpp"

namespace distill {

enum class Isa : int { portable = 0, avx2 = 1, avx512 = 2 };

inline constexpr Isa kAllIsas[] = {Isa::portable, Isa::avx2, Isa::avx512};

constexpr const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    default: return "portable";
  }
}

/// Whether this CPU (and its operating system) can run code of level `isa`.
inline bool isa_supported(Isa isa) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  switch (isa) {
    case Isa::portable: return true;
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return isa == Isa::portable;
#endif
}

/// The best level this CPU supports.
inline Isa best_isa() noexcept {
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::portable;
}

/// Every level this CPU supports, lowest first (tests run and compare them all).
inline std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas)
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

/// The level named `name` ("portable", "avx2", "avx512", or "best"), refused with a sentence naming `source`
/// when the name is unknown or the CPU cannot run it.
inline Isa parse_isa(std::string_view name, std::string_view source = "DISTILL_ISA") {
  if (name == "best" || name.empty()) return best_isa();
  for (Isa isa : kAllIsas) {
    if (name != isa_name(isa)) continue;
    DISTILL_CHECK(isa_supported(isa), source, "=", name, ": this CPU cannot run the ", name,
                  " kernels (the best level it supports is ", isa_name(best_isa()),
                  "); choose portable, avx2 or avx512 up to that level");
    return isa;
  }
  DISTILL_FAIL(source, "=", name, " is not an instruction-set level; choose portable, avx2, avx512 or best");
}

/// The level a new context starts with: $DISTILL_ISA when set (checked), else the best level of this CPU.
inline Isa default_isa() {
  const char* env = std::getenv("DISTILL_ISA");
  return env ? parse_isa(env) : best_isa();
}

namespace cpu {
using ::distill::best_isa;
using ::distill::default_isa;
using ::distill::Isa;
using ::distill::isa_name;
using ::distill::isa_supported;
using ::distill::kAllIsas;
using ::distill::parse_isa;
using ::distill::supported_isas;
}  // namespace cpu

}  // namespace distill
