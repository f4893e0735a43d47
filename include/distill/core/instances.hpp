// distill/core/instances.hpp -- compiled mode: the float and double instantiations of the heavy function templates,
// built once into the distill_compiled library instead of in every translation unit that includes them.
//
// Each header of heavy kernels lists its entry points once, as a macro LIST(PREFIX, T) of explicit instantiations
// (cpu/conv1d.hpp's DISTILL_CPU_CONV1D_INSTANCES, ...), and ends with DISTILL_EXTERN_INSTANCES(LIST). Header-only
// (the default) that expands to nothing. With DISTILL_COMPILED defined -- linking the CMake target
// distill::compiled defines it -- it declares the float and double instantiations `extern template`: the compiler
// neither instantiates nor optimises their bodies (nor the ISA variants and helpers they call) in that translation
// unit, and the linker takes them from the library, whose sources (src/compiled/*.cpp) define them with
// DISTILL_DEFINE_INSTANCES(LIST). Other element types are instantiated implicitly as usual.
#pragma once

#if defined(DISTILL_COMPILED)
#define DISTILL_EXTERN_INSTANCES(LIST) LIST(extern template, float) LIST(extern template, double)
#else
#define DISTILL_EXTERN_INSTANCES(LIST)
#endif

#define DISTILL_DEFINE_INSTANCES(LIST) LIST(template, float) LIST(template, double)
