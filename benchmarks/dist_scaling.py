#!/usr/bin/env python3
"""Data-parallel DCRLS step: one process with 2 threads against 2 MPI ranks with 1 thread each, then a model of
larger worlds.

    python3 benchmarks/dist_scaling.py --bench build-cm/benchmarks/bench_dist_step [--rounds 3] [--batch 64]
        [--length 128] [--reps 20] [--warmup 3] [--settle-ms 120] [--sync-bn] [--alpha-us 5]
        [--loss-probe-rows 512] [--compute-basis one-rank|two-rank] [--out dist_scaling.json]
    python3 benchmarks/dist_scaling.py --from dist_scaling.json --alpha-us 20    # re-model saved runs only

Runs, interleaved (the order alternating every round), `mpirun -np 1 bench_dist_step --threads 2` and
`mpirun -np 2 bench_dist_step --threads 1` with the same global --batch / --length, --rounds times each, under the
Open MPI environment for root in containers (OMPI_ALLOW_RUN_AS_ROOT..., no ptrace single-copy, oversubscription
allowed) and `--bind-to none` (for 2 processes or fewer Open MPI binds each rank to one core, so the 1-rank run's
2 threads would share a core). Both configurations use the same 2 cores, so they see the same machine load. Collects the
JSON lines of benchmarks/dist/bench_dist_step.cpp, writes them with the summary and the model to --out, and prints
a markdown table (step ms min / median over all reps of all rounds, samples/s, DataParallel all-reduce ms and its
share of the step, the loss's collectives, gradient bytes per step), then the scaling model (its assumptions are
printed with it).
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys

OMPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}

# (name, bandwidth in bytes/s) of the modelled networks; the per-message latency alpha is --alpha-us.
NETWORKS = [("10 Gb/s Ethernet", 10e9 / 8), ("100 Gb/s InfiniBand", 100e9 / 8), ("400 Gb/s", 400e9 / 8)]
MODEL_WORLDS = [8, 64, 512]
PROJ_DIM = 128  # Dcrls::proj_dim: the width of every gathered embedding
# Similarity passes of the global DCRLS loss per step, each 2 * (2N)^2 * PROJ_DIM FLOPs over the 2N stacked rows
# (N rows per view): 3 NT-Xent x (forward + recomputed tiles in backward + gradient product) = 9, and 2
# self-distillation KL x (student + teacher forward, both recomputed in backward, student gradient: 5 to 6) = 10. An
# estimate of the fused kernels (cpu/fused_losses.hpp recompute tiles instead of storing N x N); the exp() per entry is
# not counted. Only the reported FLOP figures use it: times come from the measured loss probe.
LOSS_SIM_PASSES = 19


def loss_flops(rows_per_view):
    m = 2 * rows_per_view
    return LOSS_SIM_PASSES * 2.0 * m * m * PROJ_DIM


def run_once(args, ranks, threads):
    env = dict(os.environ, **OMPI_ENV, OMP_NUM_THREADS=str(threads))
    cmd = [args.mpirun, "-np", str(ranks), "--bind-to", "none", args.bench, "--batch", str(args.batch),
           "--length", str(args.length), "--threads", str(threads), "--reps", str(args.reps),
           "--warmup", str(args.warmup), "--settle-ms", str(args.settle_ms)]
    if args.sync_bn:
        cmd.append("--sync-bn")
    if ranks > 1 and args.loss_probe_rows > 0:
        cmd += ["--loss-probe-rows", str(args.loss_probe_rows)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        sys.stderr.write(f"dist_scaling: {' '.join(cmd)} failed (exit {p.returncode})\n{p.stdout}{p.stderr}")
        sys.exit(1)
    rec = json.loads(lines[-1])
    rec["command"] = " ".join(cmd)
    return rec


def summarize(runs):
    """Pools the per-rep times of every round of one configuration."""
    first = runs[0]
    step = [t for r in runs for t in r["step_ms_reps"]]
    ar = [t for r in runs for t in r["allreduce_ms_reps"]]
    lc = [t for r in runs for t in r["loss_comm_ms_reps"]]
    probes = [r["loss_probe"]["ms"] for r in runs if r.get("loss_probe")]
    med = statistics.median(step)
    s = {k: first[k] for k in ("ranks", "threads_per_rank", "batch", "per_rank_batch", "length", "sync_bn",
                               "allreduce_bytes", "allreduce_buckets", "gathered_rows", "param_count",
                               "encoder_flops", "isa", "collectives")}
    s.update(rounds=len(runs), reps=len(step), step_ms_min=min(step), step_ms_median=med,
             round_medians_ms=[r["step_ms_median"] for r in runs], samples_per_s=first["batch"] / (med / 1e3),
             allreduce_ms_median=statistics.median(ar), loss_comm_ms_median=statistics.median(lc))
    if probes:
        s["loss_probe"] = {"rows_per_view": runs[0]["loss_probe"]["rows_per_view"], "ms": statistics.median(probes)}
    return s


def print_table(summaries):
    print("| config | step ms min | step ms median | samples/s | all-reduce ms (share) | loss collectives ms "
          "| all-reduce bytes/step |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in summaries:
        share = s["allreduce_ms_median"] / s["step_ms_median"] if s["step_ms_median"] else 0
        print(f"| {s['ranks']} rank(s) x {s['threads_per_rank']} thread(s), B={s['batch']} "
              f"(b={s['per_rank_batch']}/rank), L={s['length']}{', sync BN' if s['sync_bn'] else ''} "
              f"| {s['step_ms_min']:.1f} | {s['step_ms_median']:.1f} | {s['samples_per_s']:.1f} "
              f"| {s['allreduce_ms_median']:.2f} ({100 * share:.1f} %) | {s['loss_comm_ms_median']:.2f} "
              f"| {s['allreduce_bytes']:.0f} |")


def log2c(w):
    return math.ceil(math.log2(w)) if w > 1 else 0


def comm_model(W, bw, alpha, ms):
    """Seconds of communication per step at world size W from the collectives counted at 2 ranks (per step, per
    rank; weak scaling keeps every per-rank contribution the same size)."""
    if W <= 1:
        return {"grad_allreduce": 0.0, "gathers": 0.0, "other": 0.0}
    step, dp = ms["collectives"].get("step", {}), ms["collectives"].get("dp", {})
    # Gradient all-reduce (ring): 2(W-1)/W * V / BW + 2(W-1) alpha per bucket.
    V, nb = ms["allreduce_bytes"], max(1.0, ms["allreduce_buckets"])
    grad = 2 * (W - 1) / W * V / bw + 2 * (W - 1) * alpha * nb
    # Embedding all-gathers (forward) and reduce-scatters (backward), ring: (W-1) steps of one rank's block each,
    # i.e. (W-1)/W * W*m / BW + (W-1) alpha per call, m = the per-rank block (b x 128 floats for the embeddings;
    # sync-BN statistics ride in the same counts).
    gathers = 0.0
    for op in ("all_gather", "reduce_scatter"):
        c = step.get(op)
        if c:
            gathers += (W - 1) * (c["bytes"] / bw + c["calls"] * alpha)
    # Small collectives, log-depth (recursive doubling / binomial tree): the row-count checks of the gathers and
    # sync-BN reductions (step all_reduce), the batch-norm buffer broadcasts after the all-reduce (dp broadcast).
    other = 0.0
    for c in (step.get("all_reduce"), dp.get("broadcast")):
        if c:
            other += log2c(W) * (c["bytes"] / bw + c["calls"] * alpha)
    return {"grad_allreduce": grad, "gathers": gathers, "other": other}


def scaling(one, two, alpha, basis):
    """The weak-scaling model; prints it and returns it as a dict."""
    B, t1 = one["batch"], one["threads_per_rank"]
    b = two["per_rank_batch"]
    S1 = one["step_ms_median"] * t1 / 1e3  # single-thread-equivalent seconds of the whole global batch B
    probe = two.get("loss_probe")
    if probe:
        n_p, l_p = probe["rows_per_view"], probe["ms"] / 1e3

        def loss_s(n):  # single-thread seconds of the global loss on n rows per view: quadratic from the probe
            return l_p * (n / n_p) ** 2
        loss_rate = loss_flops(n_p) / l_p
    else:  # no probe: the loss at the encoder's effective rate (a weaker estimate)
        loss_rate = one["encoder_flops"] / S1

        def loss_s(n):
            return loss_flops(n) / loss_rate
    # The rest of the step (encoder, heads, Adam) per rank at batch b, without its global loss.
    measured_w2 = (two["step_ms_median"] - two["allreduce_ms_median"] - two["loss_comm_ms_median"]) / 1e3
    if basis == "one-rank":
        enc_s = max(0.0, S1 - loss_s(B)) * b / B
        basis_text = (f"the measured 1-rank step ({one['step_ms_median']:.1f} ms median on {t1} threads, B={B}) x "
                      f"{t1} threads (perfect thread scaling assumed: if the threads scale worse, the single-thread "
                      f"time is lower and the communication shares below are underestimates), minus its global "
                      f"loss, scaled linearly to b rows")
    else:
        enc_s = max(0.0, measured_w2 - loss_s(2 * b))
        basis_text = (f"the measured 2-rank step ({two['step_ms_median']:.1f} ms median, 1 thread per rank, b={b}) "
                      f"minus its measured collectives and its global loss on 2b rows per view")
    print()
    print("## Scaling model (weak scaling: a fixed per-rank batch, not a measurement)")
    print()
    print(f"Assumptions. Per-rank batch b = {b} (the 2-rank run's). Compute per step and rank (--compute-basis "
          f"{basis}) = {basis_text}: {1e3 * enc_s:.1f} ms; plus the global loss every rank recomputes on all W*b rows "
          f"per view, which grows as (W*b)^2: "
          + (f"extrapolated quadratically from the loss probe ({1e3 * l_p:.1f} ms single-thread for {n_p} rows per "
             f"view, measured with both ranks busy; about {loss_rate / 1e9:.1f} GFLOP/s at an estimated "
             f"{LOSS_SIM_PASSES} similarity passes of 2*(2N)^2*{PROJ_DIM} FLOPs)." if probe else
             f"no loss probe in the runs: its FLOPs ({LOSS_SIM_PASSES} similarity passes of 2*(2N)^2*{PROJ_DIM}) "
             f"at the encoder's effective rate, {loss_rate / 1e9:.1f} GFLOP/s (a rough estimate)."))
    print(f"Communication, no overlap with compute (DataParallel reduces after the backward), alpha = "
          f"{alpha * 1e6:.0f} us per message: gradient all-reduce (ring) 2(W-1)/W*V/BW + 2(W-1)*alpha per bucket, "
          f"V = {two['allreduce_bytes']:.0f} B in {two['allreduce_buckets']:.0f} bucket(s); the loss's "
          f"{two['collectives']['step'].get('all_gather', {}).get('calls', 0):.0f} all-gathers and "
          f"{two['collectives']['step'].get('reduce_scatter', {}).get('calls', 0):.0f} reduce-scatters per step "
          f"(3 blocks x 2 views of [b, {PROJ_DIM}] float per rank, (W-1)/W * W*b*{PROJ_DIM}*4 B each; ring, latency "
          f"(W-1)*alpha: MPI's log-depth algorithms for small messages would lower it), and the small collectives "
          f"(row-count checks, batch-norm buffer broadcasts or sync-BN statistics) at ceil(log2 W)*(alpha + m/BW). "
          f"Counts and sizes are those measured at 2 ranks.")
    print()
    print("| W | network | grad all-reduce ms | gathers ms | small ms | comm ms | encoder ms | global loss ms "
          "(GFLOP) | compute ms | comm share | samples/s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for W in MODEL_WORLDS:
        for name, bw in NETWORKS:
            c = comm_model(W, bw, alpha, two)
            comm = sum(c.values())
            loss = loss_s(W * b)
            compute = enc_s + loss
            step = comm + compute
            row = dict(W=W, network=name, bandwidth_Bps=bw, alpha_s=alpha, **{k + "_ms": 1e3 * v for k, v in c.items()},
                       comm_ms=1e3 * comm, encoder_ms=1e3 * enc_s, global_loss_ms=1e3 * loss,
                       global_loss_gflop=loss_flops(W * b) / 1e9, compute_ms=1e3 * compute,
                       comm_share=comm / step, samples_per_s=W * b / step)
            rows.append(row)
            print(f"| {W} | {name} | {row['grad_allreduce_ms']:.2f} | {row['gathers_ms']:.2f} | {row['other_ms']:.2f} "
                  f"| {row['comm_ms']:.2f} | {row['encoder_ms']:.1f} | {row['global_loss_ms']:.1f} "
                  f"({row['global_loss_gflop']:.1f}) | {row['compute_ms']:.1f} | {100 * row['comm_share']:.1f} % "
                  f"| {row['samples_per_s']:.0f} |")
    print()
    worlds = [2 ** k for k in range(1, 17)]
    crossover, crossover_sharded = {}, {}
    for name, bw in NETWORKS:
        comm = {W: sum(comm_model(W, bw, alpha, two).values()) for W in worlds}
        w = next((W for W in worlds if comm[W] > enc_s + loss_s(W * b)), None)
        # If each rank computed only its own rows' loss terms (its 2b rows against all 2Wb columns), the loss would
        # cost 1/W of the redundant one per rank (the gathers and reduce-scatters are already there).
        ws = next((W for W in worlds if comm[W] > enc_s + loss_s(W * b) / W), None)
        crossover[name], crossover_sharded[name] = w, ws
        print(f"- {name}: communication exceeds compute from W = {w}" if w else
              f"- {name}: communication stays below compute up to W = {worlds[-1]} (powers of two; the redundant "
              f"global loss grows as W^2, faster than the communication)", end="")
        print(f"; with the global loss sharded by rows (1/W of it per rank): from W = {ws}" if ws else
              f"; with the global loss sharded by rows (1/W of it per rank): not up to W = {worlds[-1]}")
    w_loss = next((W for W in worlds if loss_s(W * b) > enc_s), None)
    print(f"- the redundant global loss exceeds the rest of the step's compute from W = {w_loss} "
          f"(W*b = {w_loss * b if w_loss else '-'} rows per view)" if w_loss else
          f"- the redundant global loss stays below the rest of the step's compute up to W = {worlds[-1]}")
    # Cross-check at W = 2: what the model calls compute against the measured step less its collectives.
    measured = 1e3 * measured_w2
    modelled = 1e3 * (enc_s + loss_s(2 * b))
    print(f"- cross-check at W = 2: measured step minus collectives {measured:.1f} ms, modelled compute "
          f"{modelled:.1f} ms" + (" (the gap: the thread-scaling and batch-linearity assumptions, and 2 ranks "
                                  "sharing the machine's caches and memory bandwidth)" if basis == "one-rank" else
                                  " (equal by construction with --compute-basis two-rank)"))
    return {"per_rank_batch": b, "single_thread_equiv_step_s": S1, "encoder_s": enc_s, "alpha_s": alpha,
            "loss_sim_passes": LOSS_SIM_PASSES, "loss_rate_flops": loss_rate, "rows": rows,
            "compute_basis": basis, "comm_exceeds_compute_from_W": crossover,
            "comm_exceeds_compute_with_sharded_loss_from_W": crossover_sharded,
            "global_loss_exceeds_encoder_from_W": w_loss,
            "cross_check_w2": {"measured_ms": measured, "modelled_ms": modelled}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default="build-cm/benchmarks/bench_dist_step", help="the bench_dist_step binary")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each configuration, alternating")
    ap.add_argument("--batch", type=int, default=64, help="global batch (both configurations)")
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--reps", type=int, default=20, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--settle-ms", type=int, default=120, help="sleep before every timed step")
    ap.add_argument("--sync-bn", action="store_true")
    ap.add_argument("--loss-probe-rows", type=int, default=512,
                    help="rows per view of the global-loss probe in the 2-rank runs (0: off)")
    ap.add_argument("--alpha-us", type=float, default=5.0, help="per-message latency of the modelled networks")
    ap.add_argument("--compute-basis", choices=["one-rank", "two-rank"], default="one-rank",
                    help="per-rank compute of the model: the 1-rank step x its threads scaled to the per-rank batch "
                         "(default), or the 2-rank step less its collectives")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per mpirun")
    ap.add_argument("--out", default="dist_scaling.json")
    ap.add_argument("--from", dest="from_json", default="",
                    help="re-model the runs of an earlier --out file (other --alpha-us / --compute-basis) without "
                         "running anything; writes nothing")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            old = json.load(f)
        one, two = old["summary"]
        print(f"runs of {args.from_json} ({old['meta']['date']}):")
        print()
        print_table(old["summary"])
        scaling(one, two, args.alpha_us * 1e-6, args.compute_basis)
        return
    if args.batch % 2:
        ap.error("--batch must be even (it is split over 2 ranks)")
    if not os.path.exists(args.bench):
        ap.error(f"--bench {args.bench}: not found (cmake --build build-cm --target bench_dist_step)")

    configs = [(1, 2), (2, 1)]  # (ranks, threads per rank): the same 2 cores
    runs = {c: [] for c in configs}
    for k in range(args.rounds):
        for ranks, threads in (configs if k % 2 == 0 else configs[::-1]):
            rec = run_once(args, ranks, threads)
            rec["round"] = k
            runs[(ranks, threads)].append(rec)
            print(f"round {k + 1}/{args.rounds}: {ranks} rank(s) x {threads} thread(s): step median "
                  f"{rec['step_ms_median']:.1f} ms", file=sys.stderr)
    summaries = [summarize(runs[c]) for c in configs]
    one, two = summaries
    print(f"DCRLS data-parallel step (Dcrls<64> sd, Adam), global batch {args.batch}, length {args.length}, "
          f"{args.rounds} interleaved round(s) x {args.reps} reps, settle {args.settle_ms} ms, cpu kernels "
          f"{one['isa']}, {one['param_count']} trainable values")
    print()
    print_table(summaries)
    print()
    print(f"2 ranks vs 1 rank x 2 threads: {one['step_ms_median'] / two['step_ms_median']:.2f}x the samples/s "
          f"(medians)")
    model = scaling(one, two, args.alpha_us * 1e-6, args.compute_basis)

    rev = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    out = {"meta": {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
                    "cpus": os.cpu_count(), "git_head": rev, "args": vars(args), "ompi_env": OMPI_ENV},
           "runs": [r for c in configs for r in runs[c]], "summary": summaries, "model": model}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
