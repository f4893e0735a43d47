#!/usr/bin/python3
"""Interleaved benchmark driver: distill (a bench_* binary in --serve mode) against a PyTorch peer.

    python3 benchmarks/harness.py --binary build/benchmarks/bench_conv1d --peer benchmarks/torch_conv1d.py \
        [--threads 2] [--reps 20] [--warmup 3] [--json out.json] [--cases a,b]

The peer module defines `CASES = {name: make}` where `make(threads)` returns a zero-argument callable doing the
same unit of work as the C++ case of the same name. For every case, the driver alternates one rep of ours and one
of the peer (order flipped every rep) so both see the same machine load, then prints min and median of each, the
ratio peer/ours (> 1 means distill is faster), GFLOP/s and GB/s, and their share of the machine's ceilings measured
by our binary in the same run (FP32 FMA throughput, copy bandwidth; the SGEMM rate goes to the JSON). Run it with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` (see scripts/bench.sh) so torch's OpenBLAS
picks its best kernel; never set that in tests.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time


def load_peer(path):
    spec = importlib.util.spec_from_file_location("peer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Ours:
    def __init__(self, binary, threads):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.p = subprocess.Popen([binary, "--serve", "--threads", str(threads)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        listing = subprocess.run([binary, "--list", "--threads", str(threads)], capture_output=True, text=True,
                                 env=env, check=True).stdout
        self.cases = {c["name"]: c for c in (json.loads(l) for l in listing.splitlines() if l.strip())}

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline().split()
        if not out or out[0] == "error":
            raise RuntimeError(f"benchmark binary answered {out!r} to {line!r}")
        return out

    def run(self, name, reps=1):
        return [float(x) for x in self.ask(f"run {name} {reps}")[1:]]

    def peaks(self):
        """(SGEMM GFLOP/s, FP32 FMA GFLOP/s, copy GB/s) measured by the binary; older binaries answer only the first."""
        out = self.ask("peak")
        vals = dict(zip(out[0::2], (float(x) for x in out[1::2])))
        return vals["gflops"], vals.get("fma", 0.0), vals.get("gbs", 0.0)

    def isa(self):
        """The instruction-set level the binary's kernels run at ("?" for binaries that predate the query)."""
        try:
            return self.ask("isa")[1]
        except RuntimeError:
            return "?"

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cases", default="")
    ap.add_argument("--settle-ms", type=float, default=0.0,
                    help="pause before every timed rep (after the other side ran), so that the other side's idle "
                         "worker threads stop spinning (OpenBLAS spins up to 2^28 cycles after a call, libgomp "
                         "briefly); with --primed, the pause is followed by the untimed rep")
    ap.add_argument("--primed", type=int, default=0,
                    help="untimed reps of the same side right before every timed rep (wakes its threads and warms "
                         "its caches after the pause)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    peer = load_peer(args.peer)
    ours = Ours(args.binary, args.threads)
    names = [n for n in ours.cases if n in peer.CASES]
    if args.cases:
        names = [n for n in names if n in args.cases.split(",")]
    missing = [n for n in ours.cases if n not in peer.CASES]

    peak, fma, bw = ours.peaks()
    isa = ours.isa()
    cfg = torch.__config__.show()
    blas = "MKL" if "USE_MKL=ON" in cfg or "Intel(R) oneAPI Math Kernel" in cfg else (
        "OpenBLAS" if "OpenBLAS" in cfg or "BLAS_INFO=open" in cfg else "other BLAS")
    torch_isa = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "?"
    print(f"torch {torch.__version__} ({blas}, {torch_isa}), distill cpu kernels {isa}, {args.threads} threads, "
          f"{args.reps} interleaved reps; measured ceilings: "
          f"FP32 FMA {fma:.1f} GFLOP/s, SGEMM {peak:.1f} GFLOP/s (distill's CPU GEMM), copy {bw:.1f} GB/s")
    hdr = f"{'case':<34} {'ours min':>9} {'ours med':>9} {'torch min':>9} {'torch med':>9} {'ratio':>6} " \
          f"{'GFLOP/s':>8} {'%fma':>5} {'GB/s':>6} {'%bw':>4}"
    print(hdr)
    print("-" * len(hdr))
    results = []
    for name in names:
        fn = peer.CASES[name](args.threads)
        ours.run(name, args.warmup)
        for _ in range(args.warmup):
            fn()
        t_ours, t_peer = [], []
        for r in range(args.reps):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for who in order:
                if args.settle_ms > 0:
                    time.sleep(args.settle_ms / 1e3)
                if who == 0:
                    if args.primed:
                        ours.run(name, args.primed)
                    t_ours += ours.run(name, 1)
                else:
                    for _ in range(args.primed):
                        fn()
                    t0 = time.perf_counter()
                    fn()
                    t_peer.append((time.perf_counter() - t0) * 1e3)
        c = ours.cases[name]
        om, pm = statistics.median(t_ours), statistics.median(t_peer)
        gflops = c["flops"] / (om * 1e6) if c["flops"] else 0.0
        gbs = c["bytes"] / (om * 1e6) if c["bytes"] else 0.0
        row = dict(case=name, ours_min_ms=min(t_ours), ours_median_ms=om, torch_min_ms=min(t_peer),
                   torch_median_ms=pm, ratio_torch_over_ours=pm / om, gflops=gflops,
                   pct_sgemm_peak=100 * gflops / peak if peak else 0, pct_fma_peak=100 * gflops / fma if fma else 0,
                   gbs=gbs, pct_copy_bw=100 * gbs / bw if bw else 0, extra_bytes=c["extra_bytes"])
        results.append(row)
        print(f"{name:<34} {row['ours_min_ms']:9.3f} {om:9.3f} {row['torch_min_ms']:9.3f} {pm:9.3f} "
              f"{row['ratio_torch_over_ours']:6.2f} {gflops:8.2f} {row['pct_fma_peak']:5.1f} {gbs:6.2f} "
              f"{row['pct_copy_bw']:4.0f}")
        sys.stdout.flush()
    ours.close()
    if missing:
        print(f"(cases without a torch peer, not timed here: {', '.join(missing)})")
    print("ratio = torch median / distill median (> 1: distill faster); GFLOP/s and GB/s from our median; "
          "%fma = of the FP32 FMA ceiling, %bw = of the copy bandwidth")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=args.threads, reps=args.reps, torch=torch.__version__, torch_blas=blas,
                           torch_isa=torch_isa, distill_isa=isa, sgemm_peak_gflops=peak,
                           fma_peak_gflops=fma, copy_bandwidth_gbs=bw,
                           results=results), f, indent=1)


if __name__ == "__main__":
    main()
