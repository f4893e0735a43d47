#!/usr/bin/env bash
# CUDA backend checks that need no GPU (CI runs them when nvcc is present):
#   1. every kernel header compiles on its own (host compiler, SIMT emulation);
#   2. nvcc compiles every kernel (kernels/distill_cuda.cu) for sm_80 and sm_90 with `-Xptxas -v`; fails if ptxas
#      reports spilled registers for any kernel, and prints registers/spills of the conv1d kernels;
#   3. ThreadSanitizer demonstration: tests/cuda/tsan_race_demo.cpp on the SIMT emulator must report a data race
#      (naming the racy lines) for the kernel with the missing __syncthreads and nothing for the correct kernel;
#   4. (unless --quick) the whole emulated kernel test suite (tests/test_cuda_emu.cpp) and the fused-loss tests
#      (tests/test_cuda_losses.cpp: the similarity engine's barriers) under ThreadSanitizer: no race in any kernel.
# Usage: scripts/cuda_checks.sh [--quick] [work-dir]      (NVCC=/path/to/nvcc to override)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
work=${1:-build-cuda-checks}
mkdir -p "$work"
CXX=${CXX:-g++}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
start=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - start ))s] $*"; }
fail() { echo "cuda_checks: FAILED: $*" >&2; exit 1; }

step "1. kernel headers are self-contained (host compiler, emulation)"
for h in kernels/*.cuh kernels/simt/emulator.hpp; do
  echo "#include \"$PWD/$h\"" | $CXX -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Werror \
    -DDISTILL_SIMT_EMULATION -Iinclude -Ikernels -x c++ - || fail "$h does not compile on its own"
done
echo "ok: $(ls kernels/*.cuh kernels/simt/emulator.hpp | wc -l) headers"

step "2. nvcc: sm_80 and sm_90, ptxas register/spill report"
if [ ! -x "$NVCC" ]; then
  fail "nvcc not found (set NVCC=/path/to/nvcc)"
fi
"$NVCC" --version | tail -1
# Both architectures compile in the background; each PID is waited on, so a failed compile fails the script.
declare -A nvcc_pid
for arch in 80 90; do
  rm -f "$work/distill_cuda_sm$arch.o"
  "$NVCC" -std=c++20 -O3 -arch=sm_$arch -Xptxas -v --Werror all-warnings -Iinclude -Ikernels \
    -c kernels/distill_cuda.cu -o "$work/distill_cuda_sm$arch.o" > "$work/ptxas_sm$arch.log" 2>&1 &
  nvcc_pid[$arch]=$!
done
for arch in 80 90; do
  wait "${nvcc_pid[$arch]}" || { cat "$work/ptxas_sm$arch.log"; fail "nvcc sm_$arch"; }
done
for arch in 80 90; do
  [ -s "$work/distill_cuda_sm$arch.o" ] || fail "nvcc sm_$arch produced no object"
  # One line per kernel: mangled name, registers, spill stores, spill loads.
  awk '/Compiling entry function/ { name = $7; gsub(/\047/, "", name) }
       /bytes spill stores/ { st = $5 + 0; ld = $9 + 0 }
       /Used [0-9]+ registers/ { print name, $5, st, ld }' \
    "$work/ptxas_sm$arch.log" > "$work/kernels_sm$arch.txt"
  n=$(wc -l < "$work/kernels_sm$arch.txt")
  [ "$n" -gt 0 ] || fail "no kernels found in the ptxas report for sm_$arch"
  spills=$(awk '$3 > 0 || $4 > 0' "$work/kernels_sm$arch.txt")
  echo "sm_$arch: $n kernels; conv1d kernels (registers, spill stores, spill loads):"
  grep conv1d "$work/kernels_sm$arch.txt" | while read -r name regs st ld; do
    printf "  %3s regs %3s/%-3s  %s\n" "$regs" "$st" "$ld" "$(echo "$name" | c++filt | sed 's/distill::kernels:://g' | cut -c1-110)"
  done
  if [ -n "$spills" ]; then
    echo "$spills" | while read -r name regs st ld; do echo "  SPILL: $(echo "$name" | c++filt) ($st B stores, $ld B loads)"; done
    fail "ptxas reports spilled registers for sm_$arch"
  fi
done

step "3. ThreadSanitizer catches a missing __syncthreads on the SIMT emulator"
$CXX -std=c++20 -O1 -g -fsanitize=thread -DDISTILL_SIMT_EMULATION -Iinclude -Ikernels \
  tests/cuda/tsan_race_demo.cpp -o "$work/tsan_race_demo" -pthread
set +e
TSAN_OPTIONS="exitcode=66" "$work/tsan_race_demo" bad > "$work/tsan_bad.log" 2>&1
bad_rc=$?
TSAN_OPTIONS="exitcode=66" "$work/tsan_race_demo" good > "$work/tsan_good.log" 2>&1
good_rc=$?
set -e
grep -q "WARNING: ThreadSanitizer: data race" "$work/tsan_bad.log" || { cat "$work/tsan_bad.log"; fail "no race reported for the kernel without __syncthreads"; }
grep -q "stencil_kernel<false> .*tsan_race_demo.cpp" "$work/tsan_bad.log" || { cat "$work/tsan_bad.log"; fail "the race report does not name the racy kernel's lines"; }
[ "$bad_rc" -eq 66 ] || fail "racy kernel: expected TSan exit code 66, got $bad_rc"
if grep -q "ThreadSanitizer" "$work/tsan_good.log" || [ "$good_rc" -ne 0 ]; then
  cat "$work/tsan_good.log"; fail "the correct kernel reported a race or failed (exit $good_rc)"
fi
echo "racy kernel:   $(grep -m1 SUMMARY "$work/tsan_bad.log")"
echo "correct kernel: no report ($(tail -1 "$work/tsan_good.log"))"

if [ "$quick" -eq 0 ]; then
  step "4. the emulated kernel tests and the fused-loss kernels under ThreadSanitizer"
  printf '#include "distill_cuda.cu"\n' > "$work/tsan_lib.cpp"
  flags=(-std=c++20 -O1 -g -fsanitize=thread -DDISTILL_SIMT_EMULATION -Iinclude -Ikernels -Itests)
  # test_cuda_losses also runs the Cpu losses (the reference): Eigen and OpenMP (one thread) for that part.
  loss_flags=(-isystem /usr/include/eigen3 -fopenmp)
  pids=()
  $CXX "${flags[@]}" -c "$work/tsan_lib.cpp" -o "$work/tsan_lib.o" & pids+=($!)
  $CXX "${flags[@]}" -c tests/test_cuda_emu.cpp -o "$work/tsan_test.o" & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || fail "compiling the emulated test suite with -fsanitize=thread"; done
  pids=()
  $CXX "${flags[@]}" -c tests/catch_main.cpp -o "$work/tsan_main.o" & pids+=($!)
  $CXX "${flags[@]}" "${loss_flags[@]}" -c tests/test_cuda_losses.cpp -o "$work/tsan_losses.o" & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || fail "compiling the emulated test suite with -fsanitize=thread"; done
  $CXX -fsanitize=thread "$work/tsan_lib.o" "$work/tsan_test.o" "$work/tsan_main.o" -o "$work/test_cuda_emu_tsan" -pthread
  $CXX -fsanitize=thread -fopenmp "$work/tsan_lib.o" "$work/tsan_losses.o" "$work/tsan_main.o" \
    -o "$work/test_cuda_losses_tsan" -pthread
  for t in test_cuda_emu test_cuda_losses; do
    TSAN_OPTIONS="halt_on_error=1 exitcode=66" OMP_NUM_THREADS=1 "$work/${t}_tsan" > "$work/tsan_$t.log" 2>&1 \
      || { tail -60 "$work/tsan_$t.log"; fail "$t under ThreadSanitizer"; }
    echo "$t: $(tail -2 "$work/tsan_$t.log" | head -1)"
  done
fi

step "all CUDA checks passed"
