// distill/core/isa_regions.hpp -- what the per-level kernel bodies need: the intrinsics headers, the target-region
// pragmas and DISTILL_ISA_CALL (the switch from a runtime Isa to the per-level namespace). Only kernel headers (cpu/)
// and what hand-writes intrinsics include it; core/isa.hpp (the levels, their detection and the process default)
// stays free of <immintrin.h>, which costs every translation unit ~90 MB of compiler memory.
#pragma once

#include "distill/core/isa.hpp"

// ---------------------------------------------------------------------------------------------------------
// Target regions. A kernel family's per-level body is included once per level by core/isa_foreach.inl: the
// portable copy outside any region, the avx2 and avx512 copies between DISTILL_ISA_BEGIN_<LEVEL> and DISTILL_ISA_END.
// ---------------------------------------------------------------------------------------------------------
#if defined(__x86_64__) || defined(__i386__)
#define DISTILL_ISA_X86 1
#include <immintrin.h>  // GCC's and clang's immintrin.h declare every level's intrinsics, whatever -march says
#else
#define DISTILL_ISA_X86 0
#endif

#if !DISTILL_ISA_X86
#define DISTILL_ISA_BEGIN_AVX2
#define DISTILL_ISA_BEGIN_AVX512
#define DISTILL_ISA_END
#elif defined(__clang__)
#define DISTILL_ISA_BEGIN_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define DISTILL_ISA_BEGIN_AVX512                                                                            \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,avx512f,avx512vl,avx512bw,avx512dq\"))), " \
          "apply_to = function)")
#define DISTILL_ISA_END _Pragma("clang attribute pop")
#elif defined(__GNUC__)
#define DISTILL_ISA_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define DISTILL_ISA_BEGIN_AVX512 \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,avx512f,avx512vl,avx512bw,avx512dq\")")
#define DISTILL_ISA_END _Pragma("GCC pop_options")
#else
#error "distill's CPU kernels need GCC or clang (target regions for the runtime ISA dispatch)"
#endif

/// `return NS::isa_<level>::CALL;` for the level `isa` (the per-level namespaces that the kernel headers make).
#if DISTILL_ISA_X86
#define DISTILL_ISA_CALL(isa, NS, ...)                                   \
  switch (isa) {                                                         \
    case ::distill::Isa::avx512: return NS::isa_avx512::__VA_ARGS__; \
    case ::distill::Isa::avx2: return NS::isa_avx2::__VA_ARGS__;     \
    default: return NS::isa_portable::__VA_ARGS__;                       \
  }
#else
#define DISTILL_ISA_CALL(isa, NS, ...) \
  do {                                 \
    (void)(isa);                       \
    return NS::isa_portable::__VA_ARGS__; \
  } while (0)
#endif
