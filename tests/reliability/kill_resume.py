#!/usr/bin/env python3
"""SIGKILL / resume test for an example binary (CTest: {dcrls,disco,mcl}_kill_resume; docs/reliability.md).

1. Runs a short training uninterrupted into <work>/ref.
2. Runs the same training into <work>/killed and SIGKILLs it several times at random moments (seeded), one kill
   timed to land while a checkpoint is being written (the temporary .state.ckpt.tmp-* exists); after each kill
   the run continues with --resume (or starts again when the kill came before the first checkpoint).
3. Requires the final weights (state.ckpt and the networks' checkpoint: encoder.ckpt, cohort.ckpt, ...),
   embeddings (*.npy) and metrics (metrics.json without
   its wall-clock *_seconds entries) to be bitwise identical to the uninterrupted run.

Also `--diverge`: a NaN injected at a given step must stop the run with exit code 3, an error naming epoch, step
and the bad value, no metrics, the last good state kept, and a --resume that then completes.

And `--flush`: with stdout a pipe (block-buffered by default), the first progress line must arrive while the
run is still going.

Usage: kill_resume.py --binary build/examples/dcrls --work DIR [--kills 4] [--seed 1] [--diverge] -- <run options>
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run_to_end(cmd, log):
    with open(log, "ab") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode


def has_state(d):
    return os.path.exists(os.path.join(d, "state.ckpt")) or os.path.exists(os.path.join(d, "state.prev.ckpt"))


def temporaries(d):
    try:
        return {n for n in os.listdir(d) if n.startswith(".state.ckpt.tmp-")}
    except FileNotFoundError:
        return set()


def killed_run(binary, opts, out, kills, rng, log):
    """Runs to completion through `kills` SIGKILLs; returns (kills done, kills during a checkpoint write)."""
    done = during_write = 0
    write_kill_at = rng.randrange(kills)  # which kill waits for a checkpoint write
    while True:
        resume = has_state(out)
        cmd = [binary] + opts + (["--resume", out] if resume else ["--out", out])
        if done >= kills:
            rc = run_to_end(cmd, log)
            if rc != 0:
                fail(f"final {'resumed ' if resume else ''}run exited {rc} (see {log})")
            return done, during_write
        stale = temporaries(out)  # left by an earlier kill; removed when the run resumes
        with open(log, "ab") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        t_start = time.monotonic()
        hit_write = False
        if done == write_kill_at:
            # Poll for the temporary of a checkpoint write and kill inside it.
            while p.poll() is None and time.monotonic() - t_start < 60:
                if temporaries(out) - stale:
                    hit_write = True
                    break
                time.sleep(0.0005)
        else:
            delay = rng.uniform(0.8, 3.0)
            while p.poll() is None and time.monotonic() - t_start < delay:
                time.sleep(0.01)
        if p.poll() is not None:  # finished before the kill
            if p.returncode != 0:
                fail(f"run exited {p.returncode} before it could be killed (see {log})")
            return done, during_write
        p.send_signal(signal.SIGKILL)
        p.wait()
        done += 1
        during_write += hit_write
        print(f"kill {done}: after {time.monotonic() - t_start:.2f} s"
              f"{' during a checkpoint write' if hit_write else ''}; state saved: {has_state(out)}")


def compare(ref, got):
    files = sorted(f for f in os.listdir(ref) if f.endswith((".npy", ".ckpt")) and not f.startswith(".")
                   and f != "state.prev.ckpt")  # which state preceded the last one depends on where the kills fell
    if "state.ckpt" not in files or not any(f.endswith(".ckpt") and f != "state.ckpt" for f in files):
        fail(f"reference run wrote {files} (expected state.ckpt and the trained networks' checkpoint)")
    for f in files:
        a = open(os.path.join(ref, f), "rb").read()
        b_path = os.path.join(got, f)
        if not os.path.exists(b_path):
            fail(f"{f} missing after the killed and resumed run")
        if a != open(b_path, "rb").read():
            fail(f"{f} differs between the uninterrupted and the killed/resumed run")

    def metrics(d):
        m = json.load(open(os.path.join(d, "metrics.json")))
        return {k: v for k, v in m.items() if not k.endswith("_seconds")}

    if metrics(ref) != metrics(got):
        fail(f"metrics differ:\n{metrics(ref)}\n{metrics(got)}")
    return files + ["metrics.json"]


def diverge(args, opts):
    out = os.path.join(args.work, "diverged")
    log = os.path.join(args.work, "diverged.log")
    cmd = [args.binary] + opts + ["--out", out, "--checkpoint-every", "1", "--checkpoint-unit", "step"]
    p = subprocess.run(cmd + ["--inject-nan-at-step", str(args.nan_step)], capture_output=True, text=True)
    if p.returncode != 3:
        fail(f"a NaN at step {args.nan_step} gave exit code {p.returncode}, expected 3:\n{p.stdout}{p.stderr}")
    if "training diverged at epoch" not in p.stderr or "is NaN" not in p.stderr:
        fail(f"no divergence message naming epoch, step and value:\n{p.stderr}")
    if os.path.exists(os.path.join(out, "metrics.json")):
        fail("a diverged run left metrics.json")
    if not os.path.exists(os.path.join(out, "state.ckpt")):
        fail("a diverged run did not keep its last good state.ckpt")
    print(p.stderr.strip())
    other = subprocess.run([args.binary] + [o if o != "sd" else "all" for o in opts] + ["--variant", "all", "--resume", out],
                           capture_output=True, text=True)
    if other.returncode != 1 or "cannot resume: this run has variant = all" not in other.stderr:
        fail(f"resuming with another --variant was not refused by name:\n{other.stderr}")
    print(other.stderr.strip())
    rc = run_to_end([args.binary] + opts + ["--resume", out], log)
    if rc != 0:
        fail(f"resuming after the divergence exited {rc} (see {log})")
    print("divergence: exit 3, message, no metrics, last good state kept and resumable")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("DISTILL_KILL_SEED", "1")))
    ap.add_argument("--diverge", action="store_true")
    ap.add_argument("--nan-step", type=int, default=3)
    ap.add_argument("--flush", action="store_true")
    ap.add_argument("opts", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    opts = [o for o in args.opts if o != "--"]
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    if args.diverge:
        diverge(args, opts)
        return
    if args.flush:
        p = subprocess.Popen([args.binary] + opts + ["--out", os.path.join(args.work, "flush")], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        first = p.stdout.readline().decode()
        running = p.poll() is None
        p.kill()
        p.wait()
        if not first or not running:
            fail(f"the first progress line arrived only when the run ended ({first!r})")
        print(f"PASS: first line arrived through a pipe while the run was going: {first.strip()}")
        return
    t0 = time.monotonic()
    ref = os.path.join(args.work, "ref")
    rc = run_to_end([args.binary] + opts + ["--out", ref], os.path.join(args.work, "ref.log"))
    if rc != 0:
        fail(f"uninterrupted run exited {rc}")
    t_ref = time.monotonic() - t0
    rng = random.Random(args.seed)
    got = os.path.join(args.work, "killed")
    kills, during_write = killed_run(args.binary, opts, got, args.kills, rng, os.path.join(args.work, "killed.log"))
    if kills < 2:
        fail(f"only {kills} kill(s) landed before the run finished; lengthen the run")
    if during_write < 1:
        fail("no kill landed during a checkpoint write")
    n = compare(ref, got)
    print(f"PASS: {kills} SIGKILLs ({during_write} during a checkpoint write), resumed each time; "
          f"{', '.join(n)} bitwise identical to the uninterrupted run ({t_ref:.1f} s), seed {args.seed}")


if __name__ == "__main__":
    main()
