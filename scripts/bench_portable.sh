#!/usr/bin/env bash
# The README-way build (no -march) against -march=native, interleaved in one run (docs/results/portable.md):
# bench_dcrls_step, bench_losses and bench_conv1d built both ways; the README-way binary runs at the best level
# the CPU supports and, a third side, at DISTILL_ISA=portable.
# Usage: scripts/bench_portable.sh [compare_builds.py args...]   (e.g. --reps 20 --settle-ms 120 --primed 1)
set -euo pipefail
cd "$(dirname "$0")/.."
for b in native readme; do
  march=native; [ $b = readme ] && march=
  cmake -S . -B build-bench-$b -G Ninja -DCMAKE_BUILD_TYPE=Release -DDISTILL_MARCH=$march \
        -DDISTILL_BUILD_TESTS=OFF -DDISTILL_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build build-bench-$b --target bench_dcrls_step bench_losses bench_conv1d
done
for bench in dcrls_step losses conv1d; do
  echo "=== bench_$bench"
  python3 benchmarks/compare_builds.py --ref native=build-bench-native/benchmarks/bench_$bench \
    --other readme=build-bench-readme/benchmarks/bench_$bench \
    --other portable=build-bench-readme/benchmarks/bench_$bench@portable "$@"
done
