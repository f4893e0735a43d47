#!/usr/bin/env python3
"""`--device cuda` trains like `--device cpu` (CTest <example>_device_parity; docs/cuda.md).

Runs an example binary twice with the same options, once per device, into <work>/cpu and <work>/cuda, then:
  * both exit 0; the cuda run's header line and metrics.json name the device (in the emulation build:
    device_kind "cuda-emulated" and "emulated on the CPU" in the header);
  * the loss metrics (final_loss, and any other *_loss key both runs wrote) agree within --loss-rel;
  * every float tensor of the listed checkpoints agrees within --param-rel * max|tensor| + --param-abs (defaults:
    2e-5 and 1e-6, test_cuda_disco's tolerances for SGD steps; run the examples with --optim sgd: Adam moves an
    element whose gradient is only rounding noise by about lr per step, in a direction that differs between the
    devices). --noise-bound B --noise-fraction F accept up to a fraction F of all elements beyond that, each
    within B (off by default);
  * the evaluation arrays (--arrays: test embeddings test_z.npy, or a cohort's test logits) agree within
    --embed-rel (default 1e-5) of their largest value.

Usage: device_parity.py --binary build/examples/dcrls --compare build/tests/compare_outputs --work DIR
                        [--checkpoints encoder.ckpt] [--device cuda] -- <run options>
"""
import argparse
import json
import os
import shutil
import subprocess
import sys


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--compare", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--checkpoints", default="encoder.ckpt")
    ap.add_argument("--arrays", default="test_z.npy")
    ap.add_argument("--loss-rel", type=float, default=1e-5)
    ap.add_argument("--param-rel", type=float, default=2e-5)
    ap.add_argument("--param-abs", type=float, default=1e-6)
    ap.add_argument("--noise-bound", type=float, default=0.0)
    ap.add_argument("--noise-fraction", type=float, default=0.0)
    ap.add_argument("--embed-rel", type=float, default=1e-5)
    ap.add_argument("opts", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    opts = [o for o in args.opts if o != "--"]
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    outs = {}
    for dev in ("cpu", args.device):
        out = os.path.join(args.work, dev.replace(":", "_"))
        cmd = [args.binary] + opts + ["--device", dev, "--out", out]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(f"$ {' '.join(cmd)}  (exit {r.returncode})")
        print("\n".join("  " + line for line in r.stdout.splitlines()[:3]))
        if r.returncode != 0:
            print(r.stdout)
            if dev != "cpu" and "no usable CUDA device" in r.stdout:
                print(f"SKIP: no GPU for --device {dev} in this (nvcc) build")
                sys.exit(77)
            fail(f"--device {dev} exited {r.returncode}")
        with open(os.path.join(out, "metrics.json")) as f:
            m = json.load(f)
        outs[dev] = (out, r.stdout, m[0] if isinstance(m, list) else m)

    cpu_dir, _, cpu_m = outs["cpu"]
    dev_dir, dev_log, dev_m = outs[args.device]
    prog = os.path.basename(args.binary) + ": "
    header = next((ln for ln in dev_log.splitlines() if ln.startswith(prog) and ", device " in ln), "")
    kind = dev_m.get("device_kind")
    if kind not in ("cuda", "cuda-emulated"):
        fail(f"metrics.json of the {args.device} run has device_kind {kind!r}")
    if "device " not in header or (kind == "cuda-emulated" and "emulated" not in header):
        fail(f"the header line does not name the device: {header!r}")
    if cpu_m.get("device_kind") != "cpu":
        fail(f"metrics.json of the cpu run has device_kind {cpu_m.get('device_kind')!r}")
    print(f"device: {dev_m.get('device')} ({kind})")

    losses = [k for k in cpu_m if k.endswith("_loss") and k in dev_m and isinstance(cpu_m[k], (int, float))]
    if "final_loss" not in losses:
        fail("metrics.json has no final_loss")
    for k in losses:
        a, b = float(cpu_m[k]), float(dev_m[k])
        ok = abs(a - b) <= args.loss_rel * max(abs(a), 1e-30)
        print(f"{k}: cpu {a:.9g}  {args.device} {b:.9g}  relative difference {abs(a - b) / max(abs(a), 1e-30):.2e}"
              f" (allowed {args.loss_rel:g}) {'ok' if ok else 'DIFFERS'}")
        if not ok:
            fail(f"{k} differs between the devices")

    failed = False
    for name in [c for c in args.checkpoints.split(",") if c]:
        r = subprocess.run([args.compare, os.path.join(cpu_dir, name), os.path.join(dev_dir, name), "--rel",
                            str(args.param_rel), "--abs", str(args.param_abs), "--noise",
                            str(args.noise_bound), str(args.noise_fraction)])
        failed |= r.returncode != 0
    for name in [c for c in args.arrays.split(",") if c]:
        r = subprocess.run([args.compare, os.path.join(cpu_dir, name), os.path.join(dev_dir, name), "--rel",
                            str(args.embed_rel), "--abs", "0"])
        failed |= r.returncode != 0
    if failed:
        fail("the devices' outputs differ beyond the tolerances")
    print("PASS: the cuda run matches the cpu run")


if __name__ == "__main__":
    main()
