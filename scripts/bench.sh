#!/usr/bin/env bash
# Builds the benchmarks and runs one against PyTorch, interleaved:  scripts/bench.sh conv1d [harness args...]
# (e.g. --reps 25 --json out.json; --settle-ms 120 --primed 1 times each side warm on a quiet machine, see
# docs/results/losses.md)
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for this command only, so torch's OpenBLAS uses its best kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
bash scripts/deps.sh python3-torch libopenblas0-pthread
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target "bench_$name"
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 benchmarks/harness.py \
  --binary "build/benchmarks/bench_$name" --peer "benchmarks/torch_$name.py" "$@"
