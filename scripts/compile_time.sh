#!/usr/bin/env bash
# scripts/compile_time.sh -- what our headers cost the compiler: wall time and peak memory of every translation unit,
# one at a time (nothing else compiling), and the headers that cost the most in the README snippet.
#
#   bash scripts/compile_time.sh [--build DIR] [--only readme|examples|tests] [--mode compiled|header-only]
#                                [--full-build] [--baseline REV]
#
#   * README snippet: README.md's ```cpp usage block, compiled the way a user compiles it (g++ -O2 -std=c++20
#     -fopenmp, distill and Eigen on the include path, no -march), three times, the minimum reported; header-only
#     and in compiled mode (-DDISTILL_COMPILED: what linking distill::compiled adds), and the one-off build of the
#     compiled-mode library itself (src/compiled/*.cpp, the same flags);
#   * each example (examples/*/main.cpp) and each test TU (tests/test_*.cpp), with the exact command CMake uses in a
#     Release build of this tree in --mode (default compiled, as scripts/test.sh builds; compile_commands.json of
#     DIR, default build-ct), once each;
#   * the heaviest headers of the README snippet: clang's -ftime-trace, "Source" events (time to parse a header and
#     what it includes), the 15 largest, where clang++ is installed;
#   * --full-build: the wall time of `cmake --build` of the whole test suite from scratch at -j$(nproc) (the step
#     scripts/test.sh runs), in --mode; with --baseline REV, first the same for commit REV (a scratch worktree), so
#     before and after come from one run.
# Prints Markdown tables (docs/results/compile_time.md collects them, before and after a change, from one machine).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-ct
only=all
full=0
mode=compiled
baseline=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift ;;
    --only) only=$2; shift ;;
    --full-build) full=1 ;;
    --mode) mode=$2; shift ;;
    --baseline) baseline=$2; shift ;;
    *) echo "compile_time.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
case "$mode" in
  compiled) mode_flag=ON ;;
  header-only) mode_flag=OFF ;;
  *) echo "compile_time.sh: --mode must be compiled or header-only, not '$mode'" >&2; exit 2 ;;
esac
cxx=${CXX:-g++}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# "seconds peak_MB" of one command (its output discarded; a failure stops the script).
measure() {
  /usr/bin/time -f "%e %M" -o "$scratch/time" "$@" > "$scratch/out" 2>&1 || { cat "$scratch/out"; exit 1; }
  awk '{printf "%.2f %.0f\n", $1, $2 / 1024}' "$scratch/time"
}

echo "# compile_time.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $($cxx --version | head -1), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo

if [ "$only" = all ] || [ "$only" = readme ]; then
  awk '/^```cpp$/ {on = 1; next} on && /^```$/ {exit} on {print}' README.md > "$scratch/readme.cpp"
  flags=(-std=c++20 -O2 -fopenmp -Iinclude -isystem /usr/include/eigen3 -DDISTILL_DATA_DIR="\"$PWD/data\"")
  min_of_3() {  # min_of_3 EXTRA_FLAGS...: "seconds peak_MB" of the fastest of three compiles
    local best="" r
    for _ in 1 2 3; do
      r=$(measure "$cxx" "${flags[@]}" "$@" -c "$scratch/readme.cpp" -o "$scratch/readme.o")
      if [ -z "$best" ] || awk -v a="${r% *}" -v b="${best% *}" 'BEGIN{exit !(a < b)}'; then best=$r; fi
    done
    echo "$best"
  }
  best=$(min_of_3)
  best_c=$(min_of_3 -DDISTILL_COMPILED)
  parse=$(measure "$cxx" "${flags[@]}" -fsyntax-only "$scratch/readme.cpp")
  parse_c=$(measure "$cxx" "${flags[@]}" -DDISTILL_COMPILED -fsyntax-only "$scratch/readme.cpp")
  lib_total=0
  for src in src/compiled/*.cpp; do
    r=$(measure "$cxx" "${flags[@]}" -c "$src" -o "$scratch/lib.o")
    lib_total=$(awk -v t="$lib_total" -v s="${r% *}" 'BEGIN{print t + s}')
  done
  echo "| README snippet ($(wc -l < "$scratch/readme.cpp") lines, g++ -O2) | seconds | peak MB |"
  echo "|---|---|---|"
  echo "| header-only: compile to an object (min of 3) | ${best% *} | ${best#* } |"
  echo "| header-only: parse and instantiate only (-fsyntax-only) | ${parse% *} | ${parse#* } |"
  echo "| compiled mode: compile to an object (min of 3) | ${best_c% *} | ${best_c#* } |"
  echo "| compiled mode: parse and instantiate only (-fsyntax-only) | ${parse_c% *} | ${parse_c#* } |"
  echo "| (once) the compiled-mode library, src/compiled/*.cpp one after another | $lib_total | |"
  echo
  if command -v clang++ > /dev/null; then
    (cd "$scratch" && clang++ "${flags[@]/#-Iinclude/-I$OLDPWD/include}" -ftime-trace -ftime-trace-granularity=1000 \
        -c readme.cpp -o readme.clang.o > /dev/null 2>&1) || true
    if [ -f "$scratch/readme.clang.json" ]; then
      echo "| heaviest headers of the README snippet (clang -ftime-trace, inclusive parse ms) | ms |"
      echo "|---|---|"
      python3 - "$scratch/readme.clang.json" "$PWD/" <<'EOF'
import json, os, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
root = sys.argv[2]
best = {}
for e in events:
    if e.get("name") == "Source" and "dur" in e:
        f = os.path.normpath(e["args"]["detail"]).replace(root, "")
        best[f] = max(best.get(f, 0), e["dur"] / 1000)
for f, ms in sorted(best.items(), key=lambda kv: -kv[1])[:15]:
    print(f"| `{f}` | {ms:.0f} |")
total = [e for e in events if e.get("name") in ("Total Frontend", "Total Backend")]
for e in total:
    print(f"| ({e['name'].lower()}, whole TU) | {e['dur'] / 1000:.0f} |")
EOF
      echo
    fi
  fi
fi

if [ "$only" != readme ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDISTILL_WERROR=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
        -DDISTILL_COMPILED_MODE="$mode_flag" > /dev/null
  python3 - "$build/compile_commands.json" "$only" > "$scratch/tus" <<'EOF'
import json, sys, shlex
only = sys.argv[2]
for c in json.load(open(sys.argv[1])):
    f = c["file"]
    kind = "example" if "/examples/" in f and f.endswith("main.cpp") else \
           "test" if "/tests/test_" in f and f.endswith(".cpp") else None
    if kind is None or (only == "examples" and kind != "example") or (only == "tests" and kind != "test"):
        continue
    name = f.split("/examples/")[-1] if kind == "example" else f.split("/tests/")[-1]
    cmd = c["command"] if "command" in c else " ".join(shlex.quote(a) for a in c["arguments"])
    print(f"{kind}\t{name}\t{c['directory']}\t{cmd}")
EOF
  echo "| translation unit (Release, as CMake compiles it, $mode) | seconds | peak MB |"
  echo "|---|---|---|"
  total=0
  while IFS=$'\t' read -r kind name dir cmd; do
    r=$(cd "$dir" && measure bash -c "$cmd")
    total=$(awk -v t="$total" -v s="${r% *}" 'BEGIN{print t + s}')
    echo "| $kind \`$name\` | ${r% *} | ${r#* } |"
  done < "$scratch/tus"
  echo "| **sum (one at a time)** | $total | |"
  echo
fi

if [ "$full" = 1 ]; then
  echo "| full build of tests, examples, benchmarks (scripts/test.sh's build step, -j$(nproc)) | seconds | peak MB (largest process) |"
  echo "|---|---|---|"
  if [ -n "$baseline" ]; then
    git worktree add -q --detach "$scratch/baseline" "$baseline"
    rm -rf "$scratch/baseline-build"
    cmake -S "$scratch/baseline" -B "$scratch/baseline-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDISTILL_WERROR=ON \
          > /dev/null
    r=$(measure cmake --build "$scratch/baseline-build" -j"$(nproc)")
    echo "| baseline \`$(git rev-parse --short "$baseline")\` from scratch | ${r% *} | ${r#* } |"
    rm -rf "$scratch/baseline-build"
    git worktree remove --force "$scratch/baseline"
  fi
  rm -rf "$build-full"
  cmake -S . -B "$build-full" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDISTILL_WERROR=ON -DDISTILL_COMPILED_MODE="$mode_flag" \
        > /dev/null
  r=$(measure cmake --build "$build-full" -j"$(nproc)")
  echo "| this tree, $mode, from scratch | ${r% *} | ${r#* } |"
fi
