#!/usr/bin/env python3
"""Two builds of the same benchmark, interleaved in one run: is a change faster, slower or neither?

    python3 benchmarks/ab_builds.py --a OLD_BUILD_DIR --b NEW_BUILD_DIR [--bench bench_dcrls_step ...]
                                    [--reps 20] [--settle-ms 120] [--primed 1] [--cases REGEX]

Starts <dir>/benchmarks/<bench> --serve from both build trees, warms every case up on both, then alternates single
timed reps (A, B, B, A, ...) so that both see the same machine load, sleeping --settle-ms and running --primed
untimed reps before each (as harness.py's quiesced mode: caches and clocks warm again after the sleep). Prints, per
case, the minimum and median milliseconds of each build and the ratio of medians B / A (below 1: B is faster).
For the "no slower" line of a commit message; comparisons against PyTorch are benchmarks/harness.py's job.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time


class Server:
    def __init__(self, path, threads):
        if not os.access(path, os.X_OK):
            sys.exit(f"ab_builds: {path} is missing or not executable (build the benchmarks in that tree first)")
        self.p = subprocess.Popen([path, "--serve", "--threads", str(threads)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline().split()
        if not reply or reply[0] == "error":
            sys.exit(f"ab_builds: '{line}' answered {' '.join(reply) or 'nothing'}")
        return reply

    def run(self, case, reps=1):
        return [float(t) for t in self.ask(f"run {case} {reps}")[1:]]

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        self.p.wait()


def cases_of(path, pattern):
    out = subprocess.run([path, "--list"], capture_output=True, text=True, check=True).stdout
    names = [re.search(r'"name": "([^"]+)"', l).group(1) for l in out.splitlines() if l.strip()]
    return [n for n in names if re.search(pattern, n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="build directory of the baseline")
    ap.add_argument("--b", required=True, help="build directory of the change")
    ap.add_argument("--bench", nargs="+", default=["bench_dcrls_step"])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--settle-ms", type=float, default=120)
    ap.add_argument("--primed", type=int, default=1, help="untimed reps right before each timed one")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default=".", help="regular expression over case names")
    args = ap.parse_args()
    if args.reps < 1:
        sys.exit("ab_builds: --reps must be at least 1")
    print(f"| case | A min ms | A median ms | B min ms | B median ms | B/A (medians) |")
    print("|---|---|---|---|---|---|")
    for bench in args.bench:
        pa, pb = (os.path.join(d, "benchmarks", bench) for d in (args.a, args.b))
        a, b = Server(pa, args.threads), Server(pb, args.threads)
        for case in cases_of(pa, args.cases):
            a.run(case, 2)
            b.run(case, 2)
            ta, tb = [], []
            for r in range(args.reps):
                order = (a, b) if r % 2 == 0 else (b, a)
                for s in order:
                    time.sleep(args.settle_ms / 1000)
                    if args.primed > 0:
                        s.run(case, args.primed)
                    (ta if s is a else tb).extend(s.run(case))
            ma, mb = statistics.median(ta), statistics.median(tb)
            print(f"| {bench} {case} | {min(ta):.3f} | {ma:.3f} | {min(tb):.3f} | {mb:.3f} | {mb / ma:.3f} |",
                  flush=True)
        a.close()
        b.close()


if __name__ == "__main__":
    main()
