#!/usr/bin/env bash
# Extracts README.md's C++ usage block (the first ```cpp fence) verbatim, builds it against an installed distill
# package (the README way: Release, no -march, warnings as errors) and runs it in a scratch directory.
# Usage: scripts/readme_snippet.sh INSTALL_PREFIX [BUILD_DIR] [header-only|compiled]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(realpath "$1")
out=${2:-build-ci/readme}
mode=${3:-header-only}
rm -rf "$out" && mkdir -p "$out/run"
out=$(realpath "$out")
awk '/^```cpp$/ {on = 1; next} on && /^```$/ {exit} on {print}' README.md > "$out/readme_usage.cpp"
[ -s "$out/readme_usage.cpp" ] || { echo "readme_snippet: no \`\`\`cpp block in README.md" >&2; exit 1; }
echo "readme_snippet: $(wc -l < "$out/readme_usage.cpp") lines extracted from README.md ($mode)"
cmake -S tests/readme -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_COMPILE_WARNING_AS_ERROR=ON -DREADME_SNIPPET="$out/readme_usage.cpp" -DREADME_MODE="$mode" >/dev/null
cmake --build "$out"
# No DISTILL_UCR_DIR / DISTILL_DATA_DIR: load_ucr("GunPoint") must find the installed data by itself.
(cd "$out/run" && env -u DISTILL_UCR_DIR -u DISTILL_DATA_DIR "../readme_usage")
ls -l "$out/run"
