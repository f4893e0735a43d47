#!/usr/bin/env bash
# Builds a fuzz target with clang's libFuzzer (+ ASan + UBSan) and runs it for a bounded time on a copy of its
# seed corpus (the committed corpus is never modified). Exits non-zero on a crash, a sanitizer report or a
# broken invariant; the crashing input is left in the work directory as crash-*.
# Usage: tests/fuzz/run_fuzz.sh [seconds=60] [work-dir=build-fuzz] [target=ucr|npy|checkpoint] [libFuzzer args...]
#   e.g. tests/fuzz/run_fuzz.sh 3600 build-fuzz checkpoint -runs=1000000 -jobs=1
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
work=${2:-$root/build-fuzz}
target=${3:-ucr}
shift $(( $# < 3 ? $# : 3 ))
cxx=${CLANGXX:-clang++}
case "$target" in
  ucr) corpus="$root/tests/fuzz/corpus"; extra=(-dict="$root/tests/fuzz/ucr.dict" -max_len=2048) ;;
  npy) corpus="$root/tests/fuzz/corpus_npy"; extra=(-dict="$root/tests/fuzz/npy.dict" -max_len=1024) ;;
  checkpoint) corpus="$root/tests/fuzz/corpus_checkpoint"; extra=(-max_len=4096) ;;
  *) echo "run_fuzz.sh: unknown target '$target' (ucr, npy or checkpoint)" >&2; exit 2 ;;
esac
mkdir -p "$work/corpus_$target"
"$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$root/include" -isystem /usr/include/eigen3 "$root/tests/fuzz/fuzz_$target.cpp" -o "$work/fuzz_$target"
cp "$corpus"/* "$work/corpus_$target/"
cd "$work"
"./fuzz_$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 "${extra[@]}" -print_final_stats=1 "$@" \
  "corpus_$target"
