// distill/cpu/eigen_core.hpp -- the one place the library includes Eigen/Core.
//
// GCC 12 reports false errors inside its own avx512fintrin.h whenever Eigen's AVX-512 packet code is inlined into
// a translation unit compiled for AVX-512 (-march=x86-64-v4, or -march=native on such a CPU):
//   -Wmaybe-uninitialized / -Wuninitialized: the `__m512 __Y = __Y;` idiom of _mm512_undefined_ps (GCC bug 105593,
//     fixed in GCC 13), reached through Eigen's GEMM packing transposes and its packet exp/min/max;
//   -Warray-bounds: a 64-byte packet load/store "partly outside" a buffer whose size GCC knows to be smaller (a
//     6-element row), in the packet loop of an Eigen assignment that never runs for so short a row.
// GCC honours a diagnostic pragma at any location of the inlining chain, and Eigen's headers are on that chain, so
// silencing these warnings around Eigen's headers -- and only for the affected compilers and targets -- keeps -Werror
// meaningful for our own code. Every library header includes Eigen through this file (a consumer that includes
// Eigen itself first, under -Werror with AVX-512 flags, needs the same two lines).
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13 && defined(__AVX512F__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
