#!/usr/bin/env bash
# Builds the benchmarks and runs one against PyTorch, interleaved:  scripts/bench.sh conv1d [harness args...]
# (e.g. --reps 25 --json out.json; --settle-ms 120 --primed 1 times each side warm on a quiet machine, see
# docs/results/losses.md)
#
# The peer is the torch users install: PyPI's torch 2.x (MKL + oneDNN) in a virtual environment outside the
# repository. Its interpreter comes from $DISTILL_TORCH_PYTHON, else ../venv-torch/bin/python beside the checkout
# when present, else Debian's python3 with python3-torch (history: torch 1.13 with OpenBLAS). Make the
# environment once with:  python3 -m venv ../venv-torch && ../venv-torch/bin/pip install torch numpy
# The harness prints the torch version, its BLAS and ISA, and the level distill's kernels ran at.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for this command only, so an OpenBLAS torch uses its best kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
py=${DISTILL_TORCH_PYTHON:-}
# (not realpath: resolving the venv's python symlink would leave the venv)
if [ -z "$py" ] && [ -x ../venv-torch/bin/python ]; then py=$(cd ../venv-torch/bin && pwd)/python; fi
if [ -z "$py" ]; then
  bash scripts/deps.sh python3-torch libopenblas0-pthread
  py=/usr/bin/python3
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target "bench_$name"
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" benchmarks/harness.py \
  --binary "build/benchmarks/bench_$name" --peer "benchmarks/torch_$name.py" "$@"
