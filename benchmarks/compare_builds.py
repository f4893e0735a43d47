#!/usr/bin/env python3
"""Times the same benchmark binary built in different ways against each other, interleaved in one run.

    python3 benchmarks/compare_builds.py --ref NAME=PATH --other NAME=PATH[@ISA] ... [--cases a,b] [--reps 20]
        [--settle-ms 120] [--primed 1] [--json out.json]

The first binary (--ref) is the reference (e.g. built with -march=native); every --other binary (e.g. built the
README way, without -march) is timed in the same rounds, the order rotating every rep. `@ISA` runs that binary
with DISTILL_ISA=ISA (e.g. @portable, to time the portable kernels of the same build). Each binary answers which
instruction-set level its kernels ran at. ratio = reference median / other median (1.0: as fast as the
reference; 0.85: 15 % slower).
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Ours  # noqa: E402


def spawn(spec, threads):
    name, _, rest = spec.partition("=")
    path, _, isa = rest.partition("@")
    saved = os.environ.get("DISTILL_ISA")
    if isa:
        os.environ["DISTILL_ISA"] = isa
    try:
        ours = Ours(path, threads)
    finally:
        if isa:
            if saved is None:
                del os.environ["DISTILL_ISA"]
            else:
                os.environ["DISTILL_ISA"] = saved
    return name, ours


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True)
    ap.add_argument("--other", action="append", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cases", default="")
    ap.add_argument("--settle-ms", type=float, default=0.0)
    ap.add_argument("--primed", type=int, default=0)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    sides = [spawn(args.ref, args.threads)] + [spawn(o, args.threads) for o in args.other]
    names = [n for n in sides[0][1].cases if all(n in s.cases for _, s in sides)]
    if args.cases:
        names = [n for n in names if n in args.cases.split(",")]
    isas = {name: s.isa() for name, s in sides}
    print(f"{args.threads} threads, {args.reps} interleaved reps, settle {args.settle_ms} ms, primed {args.primed}; "
          + ", ".join(f"{n}: cpu kernels {isas[n]}" for n, _ in sides))
    hdr = f"{'case':<34} " + " ".join(f"{n + ' min':>14} {n + ' med':>14}" for n, _ in sides) + " " + \
        " ".join(f"{'ratio ' + n:>14}" for n, _ in sides[1:])
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for case in names:
        for _, s in sides:
            s.run(case, args.warmup)
        times = [[] for _ in sides]
        for r in range(args.reps):
            k = len(sides)
            for j in range(k):
                who = (j + r) % k
                if args.settle_ms > 0:
                    time.sleep(args.settle_ms / 1e3)
                if args.primed:
                    sides[who][1].run(case, args.primed)
                times[who] += sides[who][1].run(case, 1)
        meds = [statistics.median(t) for t in times]
        row = dict(case=case)
        for (n, _), t, m in zip(sides, times, meds):
            row[f"{n}_min_ms"] = min(t)
            row[f"{n}_median_ms"] = m
        for i in range(1, len(sides)):
            n = sides[i][0]
            row[f"ratio_{n}"] = meds[0] / meds[i]
            row[f"ratio_{n}_min"] = min(times[0]) / min(times[i])
        rows.append(row)
        print(f"{case:<34} " + " ".join(f"{min(t):14.3f} {m:14.3f}" for t, m in zip(times, meds)) + " " +
              " ".join(f"{meds[0] / m:14.3f}" for m in meds[1:]))
        sys.stdout.flush()
    for _, s in sides:
        s.close()
    print(f"ratio = {sides[0][0]} median / other median (1.0: as fast; below 1: slower than {sides[0][0]})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=args.threads, reps=args.reps, settle_ms=args.settle_ms, primed=args.primed,
                           isa=isas, results=rows), f, indent=1)


if __name__ == "__main__":
    main()
