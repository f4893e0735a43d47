#!/usr/bin/env bash
# The main demo: builds examples/dcrls and trains DCRLS on the bundled GunPoint set (2 threads), then prints the
# linear-probe accuracy and k-means RI / NMI. Installs what it needs. Usage: scripts/demo.sh [extra dcrls options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target dcrls
exec ./build/examples/dcrls --dataset GunPoint --epochs 60 --threads 2 --out runs/demo "$@"
