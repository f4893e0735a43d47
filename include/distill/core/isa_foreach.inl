// distill/core/isa_foreach.inl -- includes a kernel body once per instruction-set level (no include guard, so
// not a .hpp: the header self-containment test compiles every .hpp twice on its own).
//
//   #define DISTILL_ISA_BODY "distill/cpu/conv1d_isa.inl"
//   #include "distill/core/isa_foreach.inl"
//
// compiles the body in namespace isa_portable (DISTILL_ISA_LEVEL 0, no target region), and on x86 in isa_avx2
// (level 1) and isa_avx512 (level 2), each inside its target region (core/isa.hpp). With DISTILL_ISA_NO_PORTABLE
// defined the portable copy is left out (a family whose portable level lives elsewhere). The body opens its own
// namespace with DISTILL_ISA_NS; DISTILL_ISA_BODY and DISTILL_ISA_NO_PORTABLE are undefined afterwards.
#include "distill/core/isa_regions.hpp"

#ifndef DISTILL_ISA_BODY
#error "define DISTILL_ISA_BODY (the body file to include per level) before including distill/core/isa_foreach.inl"
#endif

#ifndef DISTILL_ISA_NO_PORTABLE
#define DISTILL_ISA_LEVEL 0
#define DISTILL_ISA_NS isa_portable
#include DISTILL_ISA_BODY
#undef DISTILL_ISA_NS
#undef DISTILL_ISA_LEVEL
#endif

#if DISTILL_ISA_X86
DISTILL_ISA_BEGIN_AVX2
#define DISTILL_ISA_LEVEL 1
#define DISTILL_ISA_NS isa_avx2
#include DISTILL_ISA_BODY
#undef DISTILL_ISA_NS
#undef DISTILL_ISA_LEVEL
DISTILL_ISA_END

DISTILL_ISA_BEGIN_AVX512
#define DISTILL_ISA_LEVEL 2
#define DISTILL_ISA_NS isa_avx512
#include DISTILL_ISA_BODY
#undef DISTILL_ISA_NS
#undef DISTILL_ISA_LEVEL
DISTILL_ISA_END
#endif

#undef DISTILL_ISA_BODY
#undef DISTILL_ISA_NO_PORTABLE
