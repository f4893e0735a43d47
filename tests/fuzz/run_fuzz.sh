#!/usr/bin/env bash
# Builds the UCR parser fuzz target with clang's libFuzzer (+ ASan + UBSan) and runs it for a bounded time
# on a copy of the seed corpus (tests/fuzz/corpus is never modified). Exits non-zero on a crash, a sanitizer
# report or a broken invariant; the crashing input is left in the work directory as crash-*.
# Usage: tests/fuzz/run_fuzz.sh [seconds=60] [work-dir=build-fuzz]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
work=${2:-$root/build-fuzz}
cxx=${CLANGXX:-clang++}
mkdir -p "$work/corpus"
"$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$root/include" "$root/tests/fuzz/fuzz_ucr.cpp" -o "$work/fuzz_ucr"
cp "$root"/tests/fuzz/corpus/* "$work/corpus/"
cd "$work"
./fuzz_ucr -max_total_time="$secs" -max_len=2048 -timeout=10 -rss_limit_mb=2048 \
  -dict="$root/tests/fuzz/ucr.dict" -print_final_stats=1 corpus
