#!/usr/bin/env bash
# scripts/gpu_check.sh -- everything we check on a GPU, in one run that ends within 8 minutes on a lent machine
# (16 cores), writing docs/results/gpu.md with the numbers it measured and the device it measured them on:
#
#   1. builds distill with DISTILL_CUDA=ON for the GPU present (CMAKE_CUDA_ARCHITECTURES=native; sm_80 and sm_90
#      when there is none, to prove the build), the GPU tests, the CUDA kernel benchmark and the example dcrls;
#   2. runs the GPU tests (test_cuda_gpu: every kernel against a double CPU reference; test_cuda_{ops,train,losses,
#      disco,mcl}_gpu: the device paths against the Cpu device);
#   3. runs bench_cuda_conv1d (forward, grad-input, grad-weight: % of the FP32 / HBM roofline);
#   4. trains DCRLS on GunPoint for 40 epochs with --device cuda and --device cpu (wall time, loss, probe accuracy)
#      and the same model in PyTorch on CUDA (benchmarks/torch_dcrls_train.py), where python3 has torch.
#
# Without a GPU it still builds (step 1), then says what it would run and exits 0 without writing results.
#
# The lent GPU machines have nvcc, CMake, ninja and PyTorch but not our Debian packages. Here (Debian), once:
#   bash scripts/gpu_check.sh --prepare     # .gpu-deps/: Eigen, Catch2, fmt, CLI11 unpacked from Debian's packages
# then carry .gpu-deps with the working tree; the script uses it when present.
#
# Options: --build DIR (default build-gpu), --out FILE (default docs/results/gpu.md), --epochs N (default 40).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=build-gpu
out=docs/results/gpu.md
epochs=40
prepare=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) prepare=1 ;;
    --build) build=$2; shift ;;
    --out) out=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    *) echo "gpu_check.sh: unknown option '$1' (see the header of scripts/gpu_check.sh)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$prepare" = 1 ]; then
  rm -rf .gpu-deps && mkdir -p .gpu-deps/debs .gpu-deps/root
  (cd .gpu-deps/debs && apt-get download libeigen3-dev catch2 libfmt-dev libfmt9 libcli11-dev)
  for f in .gpu-deps/debs/*.deb; do dpkg -x "$f" .gpu-deps/root; done
  rm -rf .gpu-deps/debs .gpu-deps/root/usr/share/doc
  echo "gpu_check.sh: .gpu-deps ready ($(du -sh .gpu-deps | cut -f1)); carry it with the working tree"
  exit 0
fi

start=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - start ))s] $*"; }
cmake_extra=()
if [ -d .gpu-deps/root/usr ]; then
  deps=$root/.gpu-deps/root/usr
  cmake_extra+=("-DCMAKE_PREFIX_PATH=$deps;$deps/lib/x86_64-linux-gnu/cmake;$deps/share")
  export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
gpu=""
if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
fi
arch=native
[ -n "$gpu" ] || arch="80;90"

stamp "build: DISTILL_CUDA=ON, architectures $arch, $(nproc) cores"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDISTILL_CUDA=ON -DDISTILL_CUDA_ARCHITECTURES="$arch" \
      -DDISTILL_CUDA_EMULATION=OFF -DCMAKE_CUDA_COMPILER="$nvcc_bin" "${cmake_extra[@]}" > "$build.configure.log" \
  || { cat "$build.configure.log"; exit 1; }
targets=(test_cuda_gpu test_cuda_ops_gpu test_cuda_train_gpu test_cuda_losses_gpu test_cuda_disco_gpu
         test_cuda_mcl_gpu bench_cuda_conv1d dcrls)
# The NCCL engine's test, where the build has it (DISTILL_CUDA=ON with NCCL and MPI found).
if cmake --build "$build" --target help 2>/dev/null | grep -q "test_nccl_gpu"; then targets+=(test_nccl_gpu); fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

if [ -z "$gpu" ]; then
  stamp "no GPU here (nvidia-smi lists none): built, nothing measured. With a GPU this script would run:"
  cat <<EOF
  ctest --test-dir $build -R '_gpu\$'                   the kernel and device-path tests on the GPU
  $build/bench_cuda_conv1d                               conv1d fwd / dgrad / wgrad, % of the roofline
  $build/examples/dcrls --dataset GunPoint --epochs $epochs --device cuda    DCRLS on the GPU
  $build/examples/dcrls --dataset GunPoint --epochs $epochs --device cpu     the same on the CPU
  python3 benchmarks/torch_dcrls_train.py --device cuda --epochs $epochs     the same model in PyTorch CUDA
and write $out with the numbers and the device.
EOF
  exit 0
fi

work=$build/gpu-check
rm -rf "$work" && mkdir -p "$work"
stamp "GPU: $gpu"
stamp "GPU tests"
ctest --test-dir "$build" -R '_gpu$' --no-tests=error --output-on-failure 2>&1 | tee "$work/ctest.log"
tests_line=$(grep -E "tests passed|tests failed" "$work/ctest.log" | tail -1)

stamp "conv1d kernel benchmark"
"$build/bench_cuda_conv1d" 2>&1 | tee "$work/bench_conv1d.log"

threads=$(( $(nproc) < 16 ? $(nproc) : 16 ))
for dev in cuda cpu; do
  stamp "dcrls GunPoint, $epochs epochs, --device $dev"
  "$build/examples/dcrls" --dataset GunPoint --epochs "$epochs" --device "$dev" --threads "$threads" \
      --out "$work/dcrls-$dev" 2>&1 | tee "$work/dcrls-$dev.log"
done
metric() { python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(m.get(sys.argv[2], ''))" "$1" "$2"; }

torch_line="PyTorch CUDA: not run (python3 has no torch with CUDA here)"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
  stamp "PyTorch CUDA peer: the same model, $epochs epochs"
  python3 benchmarks/torch_dcrls_train.py --train data/ucr/GunPoint/GunPoint_TRAIN.tsv --device cuda \
      --epochs "$epochs" --threads "$threads" 2> "$work/torch.err" | tee "$work/torch.json"
  torch_line=$(python3 -c "import json; m=json.load(open('$work/torch.json')); print(f\"| PyTorch ({m['peer']}) | cuda | {m['wall_s']:.2f} (first step {m['first_step_s']:.2f}) | {m['final_loss']:.4f} | -- |\")")
fi

stamp "writing $out"
{
  echo "# GPU check (scripts/gpu_check.sh)"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on **$gpu** (nvidia-smi: name, memory, driver), $(nproc) CPU cores,"
  echo "nvcc $("$nvcc_bin" --version | grep -o 'release [0-9.]*' | cut -d' ' -f2), architectures $arch. One run;"
  echo "every number below was printed by the programs named, on that machine."
  echo
  echo "## GPU tests"
  echo
  echo "\`ctest -R '_gpu\$'\`: $tests_line"
  echo
  echo "## conv1d kernels (bench_cuda_conv1d)"
  echo
  echo '```'
  cat "$work/bench_conv1d.log"
  echo '```'
  echo
  echo "## DCRLS on GunPoint, $epochs epochs (examples/dcrls, batch min(64, 50) = 50, one step per epoch)"
  echo
  echo "| program | device | training wall s | final loss | linear probe acc |"
  echo "|---|---|---|---|---|"
  for dev in cuda cpu; do
    m=$work/dcrls-$dev/metrics.json
    echo "| distill dcrls | $(metric "$m" device) | $(metric "$m" train_seconds) | $(metric "$m" final_loss) | $(metric "$m" probe_acc) |"
  done
  echo "$torch_line"
  echo
  echo "The PyTorch peer trains the same model with the same loss and optimizer for the same number of steps; its"
  echo "augmentations and initial weights are its own, so its loss is comparable in size, not in digits."
} > "$out"
cat "$out"
stamp "done"
