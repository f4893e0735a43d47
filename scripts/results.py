#!/usr/bin/env python3
"""One results runner for the method examples: trains every variant over datasets x seeds with the method's example
binary and writes docs/results/<method>.md (mean +- std per dataset and variant). Plain python3 (no torch needed).

    python3 scripts/results.py --method dcrls --binary build/examples/dcrls --epochs 50 --seeds 0 1 2
    python3 scripts/results.py --method disco --binary build/examples/disco --epochs 30 --seeds 0 1 2 \
        --data-root /path/to/UCRArchive_2018 --jobs 2 --threads 1

--method dcrls: the DCRLS ablation ladder (last, all, sd) + the supervised baseline (docs/results/dcrls.md).
--method disco: teacher, student, disco, disco-wide; the teachers are trained first (phase 1) and cached under
    <out>/teachers, the three student variants then reuse them (phase 2). The report adds the gap closure
    (DisCo - student) / (teacher - student) per dataset.
Runs already finished (metrics.json present) are reused, so an interrupted sweep resumes. --jobs runs that many
example processes at once (each with --threads threads). --data-root is passed to the binary (an archive root
searched first for a bare dataset name; the bundled data/ucr sets need none).
"""
import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time

DEV_SETS = ["Coffee", "ECG200", "ECGFiveDays", "GunPoint", "TwoLeadECG", "SonyAIBORobotSurface1", "MoteStrain"]
DISCO_EXTRA = ["Herring", "Wine", "Lightning7"]

DCRLS_VARIANTS = ["last", "all", "sd", "supervised"]
DCRLS_LABEL = {"last": "(i) last block", "all": "(ii) all blocks", "sd": "(iii) all + SD (DCRLS)",
               "supervised": "supervised"}
# Reference columns (external numbers): supervised ResNet1D test accuracy (Fawaz et al., "Deep learning for time
# series classification: a review", DMKD 2019, mean of 5 runs) and k-means / USSL / DTCR RI / NMI (Ma et al.,
# "Learning representations for time series clustering", NeurIPS 2019).
DCRLS_REFERENCE = {
    "Coffee": (1.000, (0.7460, 0.5246), (1.0000, 1.0000), (0.9286, 0.6277)),
    "ECG200": (0.874, (0.6315, 0.1403), (0.7285, 0.3776), (0.6648, 0.3691)),
    "ECGFiveDays": (0.966, (0.4783, 0.0002), (0.8340, 0.6502), (0.9638, 0.8056)),
    "GunPoint": (0.991, (0.4971, 0.0126), (0.7257, 0.4878), (0.6398, 0.4200)),
    "TwoLeadECG": (1.000, (0.5476, 0.0000), (0.8628, 0.5471), (0.7114, 0.4614)),
    "SonyAIBORobotSurface1": (0.961, (0.7721, 0.6112), (0.8105, 0.5597), (0.8769, 0.6634)),
    "MoteStrain": (0.924, (0.4947, 0.0551), (0.8105, 0.5310), (0.7686, 0.4094)),
}

DISCO_VARIANTS = ["teacher", "student", "disco", "disco-wide"]
DISCO_LABEL = {"teacher": "teacher ResNet1D(128)", "student": "student ResNet1D(16), MoCo-v2 alone",
               "disco": "DisCo (head 64)", "disco-wide": "DisCo-wide (head 512)"}


def ms(vals, fmt="{:.3f}"):
    if not vals:
        return "n/a"
    m = statistics.mean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{fmt.format(m)} ± {fmt.format(s)}"


def mean(vals):
    return statistics.mean(vals) if vals else float("nan")


class Runner:
    def __init__(self, args):
        self.args = args
        self.rows = {}
        self.ran = 0

    def run_one(self, ds, variant, seed, extra):
        out = os.path.join(self.args.out, ds, variant, f"seed{seed}")
        mfile = os.path.join(out, "metrics.json")
        if not os.path.exists(mfile):
            cmd = [self.args.binary, "--dataset", ds, "--variant", variant, "--seed", str(seed), "--epochs",
                   str(self.args.epochs), "--threads", str(self.args.threads), "--out", out, "--quiet"] + extra
            if self.args.data_root:
                cmd += ["--data-root", self.args.data_root]
            t0 = time.time()
            res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr}")
            self.ran += 1
            print(f"{ds:<24} {variant:<11} seed {seed}: {time.time() - t0:6.1f} s", flush=True)
        with open(mfile) as f:
            return (ds, variant), json.load(f)

    def run_all(self, jobs):
        """jobs: (ds, variant, seed, extra args); run with --jobs processes at once."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            futures = [pool.submit(self.run_one, *j) for j in jobs]
            for fu in futures:
                key, rec = fu.result()
                self.rows.setdefault(key, []).append(rec)


def write(md, lines):
    os.makedirs(os.path.dirname(md) or ".", exist_ok=True)
    with open(md, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {md}")


def dcrls(args):
    r = Runner(args)
    t_start = time.time()
    r.run_all([(ds, v, s, []) for ds in args.datasets for v in args.variants for s in args.seeds])
    rows, elapsed = r.rows, time.time() - t_start
    lines = ["# DCRLS on UCR: ablation ladder, measured\n"]
    lines.append(f"Produced by `python3 scripts/results.py --method dcrls --epochs {args.epochs} --seeds "
                 f"{' '.join(map(str, args.seeds))}` with `examples/dcrls` ({args.threads} threads, Cpu device). "
                 f"Sweep wall time in this run: {elapsed / 60:.1f} min (reused runs not counted).\n")
    lines.append(f"Setup: ResNet1D(64) encoder, per-block heads (C_b -> C_b -> 128), NT-Xent tau 0.2, "
                 f"self-distillation KL_3 block 3 -> blocks 1-2, lambda 1, Adam 1e-3 / wd 1e-4, batch min(64, N), "
                 f"**{args.epochs} epochs** (the paper-scale protocol uses 300: these are short runs), views: "
                 f"jitter+scaling / permutation+jitter (docs/dcrls.md). Evaluation on the test split: linear probe "
                 f"(softmax regression, Adam, 500 steps) on the frozen block-3 GAP vector, k-means (k = #classes, 10 "
                 f"restarts) RI and NMI. Mean ± std over {len(args.seeds)} seeds. The supervised row is the same "
                 f"encoder + linear classifier trained with cross-entropy (its acc column is the classifier's test "
                 f"accuracy; RI/NMI are k-means on its embedding).\n")
    lines.append("The design is a reconstruction [R] (docs/dcrls.md): DCRLS's own numbers are unknown, so only the "
                 "ordering of the ladder and the external reference columns can be compared.\n")
    lines.append("| dataset | variant | probe acc | k-means RI | k-means NMI | final loss | train s |")
    lines.append("|---|---|---|---|---|---|---|")
    for ds in args.datasets:
        for v in args.variants:
            rs = rows.get((ds, v), [])
            acc_key = "supervised_acc" if v == "supervised" else "probe_acc"
            lines.append(f"| {ds} | {DCRLS_LABEL[v]} | {ms([x[acc_key] for x in rs])} | "
                         f"{ms([x['kmeans_ri'] for x in rs])} | {ms([x['kmeans_nmi'] for x in rs])} | "
                         f"{ms([x['final_loss'] for x in rs])} | "
                         f"{mean([x['train_seconds'] for x in rs]):.1f} |")
    lines.append("\n## Reference columns (external numbers)\n")
    lines.append("| dataset | sup. ResNet1D acc | k-means RI / NMI | USSL RI / NMI | DTCR RI / NMI |")
    lines.append("|---|---|---|---|---|")
    for ds in args.datasets:
        if ds in DCRLS_REFERENCE:
            a, km, us, dt = DCRLS_REFERENCE[ds]
            lines.append(f"| {ds} | {a:.3f} | {km[0]:.4f} / {km[1]:.4f} | {us[0]:.4f} / {us[1]:.4f} | "
                         f"{dt[0]:.4f} / {dt[1]:.4f} |")
    lines.append("\n## Ladder ordering (mean probe accuracy per dataset)\n")
    lines.append("| dataset | (i) last | (ii) all | (iii) DCRLS | best |")
    lines.append("|---|---|---|---|---|")
    wins = {"last": 0, "all": 0, "sd": 0}
    for ds in args.datasets:
        means = {v: mean([x["probe_acc"] for x in rows.get((ds, v), [])])
                 for v in ["last", "all", "sd"] if rows.get((ds, v))}
        if len(means) == 3:
            best = max(means, key=means.get)
            wins[best] += 1
            lines.append(f"| {ds} | {means['last']:.3f} | {means['all']:.3f} | {means['sd']:.3f} | "
                         f"{DCRLS_LABEL[best]} |")
    lines.append(f"\nBest variant count over {len(args.datasets)} datasets: (i) {wins['last']}, (ii) {wins['all']}, "
                 f"(iii) {wins['sd']} (ties go to the first listed).\n")
    write(args.md, lines)


def closure(d, s, t):
    """(d - s) / (t - s), or None when the teacher is not ahead of the student."""
    gap = t - s
    if gap <= 1e-9:
        return None
    return (d - s) / gap


def disco(args):
    r = Runner(args)
    teachers = os.path.join(args.out, "teachers")
    common = ["--teacher-epochs", str(args.teacher_epochs), "--teacher-cache", teachers]
    t_start = time.time()
    if "teacher" in args.variants:  # phase 1: the teachers (cached for phase 2)
        r.run_all([(ds, "teacher", s, ["--epochs", str(args.teacher_epochs)] + common)
                   for ds in args.datasets for s in args.seeds])
    r.run_all([(ds, v, s, common) for ds in args.datasets for v in args.variants if v != "teacher"
               for s in args.seeds])
    rows, elapsed = r.rows, time.time() - t_start

    def vals(ds, v, key):
        return [x[key] for x in rows.get((ds, v), []) if x.get(key) is not None]

    any_rec = next(iter(rows.values()))[0]
    lines = ["# DisCo on UCR: teacher, student, DisCo, DisCo-wide, measured\n"]
    root = " --data-root <UCR 2018 archive root>" if args.data_root else ""
    lines.append(f"Produced by `python3 scripts/results.py --method disco --epochs {args.epochs} --teacher-epochs "
                 f"{args.teacher_epochs} --seeds {' '.join(map(str, args.seeds))} --jobs {args.jobs} --threads "
                 f"{args.threads}{root}` with `examples/disco` (Cpu device, {args.jobs} runs at once with "
                 f"{args.threads} thread each, on a 2-core machine shared with other work). Sweep wall time in this "
                 f"run: {elapsed / 60:.1f} min ({r.ran} runs executed, the others reused).\n")
    lines.append(f"Setup (docs/disco.md): teacher ResNet1D(128) + head 256 -> 128, pre-trained with MoCo-v2 for "
                 f"**{args.teacher_epochs} epochs** on the training split, then frozen (BN running statistics). "
                 f"Students ResNet1D(16) + head 64 -> 128 (DisCo-wide: 512 -> 128), **{args.epochs} epochs**. "
                 f"All: Adam 1e-3 / wd 1e-4, batch min(64, N_train), tau 0.2, key-encoder momentum 0.99, queue "
                 f"K = min(1024, floor(N/B) B) and in-batch SimCLR negatives when N_train < 64 (so only ECG200, "
                 f"Herring and Lightning7 use a queue here), distillation weight 32/B on the summed term, views: two "
                 f"draws of crop 80 % + scaling + jitter. Evaluation on the test split of the frozen encoder's GAP "
                 f"vector (the head is dropped): linear probe (softmax regression, Adam, 500 steps), 1-NN "
                 f"(Euclidean), k-means (k = #classes, 10 restarts) RI and NMI. Mean ± std over "
                 f"{len(args.seeds)} seeds. These are short runs at a tiny scale: the *pattern* is what can be "
                 f"compared with the paper, not the numbers.\n")
    lines.append("Data: the 7 development sets bundled in `data/ucr` and Herring, Wine and Lightning7 from the UCR "
                 "2018 archive (Dau et al., \"The UCR time series archive\", IEEE/CAA JAS 2019).\n")
    # Model sizes (the same for every dataset: parameters; FLOPs per series depend on the length).
    lines.append("## Model sizes\n")
    lines.append("| model | encoder parameters (deployed) | with the pre-training head | forward FLOPs per series, "
                 "per time step |")
    lines.append("|---|---|---|---|")
    for v in args.variants:
        recs = [x for (ds, vv), xs in rows.items() if vv == v for x in xs]
        if recs:
            x = recs[0]
            lines.append(f"| {DISCO_LABEL[v]} | {x['params']:,} | {x['params_with_head']:,} | "
                         f"{x['flops_per_series'] / x['length']:,.0f} |")
    lines.append("")
    lines.append("## Results per dataset\n")
    lines.append("| dataset (N_train / N_test / L) | model | probe acc | 1-NN acc | k-means RI | k-means NMI | "
                 "params | train s |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for ds in args.datasets:
        first = True
        for v in args.variants:
            rs = rows.get((ds, v), [])
            if not rs:
                continue
            head = f"{ds} ({rs[0]['n_train']} / {rs[0]['n_test']} / {rs[0]['length']})" if first else ""
            first = False
            lines.append(f"| {head} | {v} | {ms(vals(ds, v, 'probe_acc'))} | {ms(vals(ds, v, 'knn_acc'))} | "
                         f"{ms(vals(ds, v, 'kmeans_ri'))} | {ms(vals(ds, v, 'kmeans_nmi'))} | {rs[0]['params']:,} | "
                         f"{mean(vals(ds, v, 'train_seconds')):.1f} |")
    # Gap closure on the mean accuracies.
    lines.append("\n## Gap closure: (DisCo - student) / (teacher - student)\n")
    lines.append("On the mean over seeds. 1 = the student reaches the teacher, 0 = no gain over the student alone, "
                 "< 0 = worse than the student alone; n/a where the teacher is not ahead of the student.\n")
    lines.append("| dataset | metric | teacher | student | DisCo | DisCo-wide | closure DisCo | closure DisCo-wide |")
    lines.append("|---|---|---|---|---|---|---|---|")
    summary = {m: {"disco": [], "disco-wide": [], "d_gt_s": 0, "w_gt_d": 0, "w_gt_s": 0, "n": 0}
               for m in ("probe_acc", "knn_acc")}
    for ds in args.datasets:
        for m in ("probe_acc", "knn_acc"):
            means = {v: mean(vals(ds, v, m)) for v in DISCO_VARIANTS if rows.get((ds, v))}
            if len(means) < 4:
                continue
            t, s, d, w = means["teacher"], means["student"], means["disco"], means["disco-wide"]
            cd, cw = closure(d, s, t), closure(w, s, t)
            sm = summary[m]
            sm["n"] += 1
            sm["d_gt_s"] += d > s
            sm["w_gt_s"] += w > s
            sm["w_gt_d"] += w > d
            if cd is not None:
                sm["disco"].append(cd)
            if cw is not None:
                sm["disco-wide"].append(cw)
            f = (lambda c: "n/a" if c is None else f"{c:+.2f}")
            lines.append(f"| {ds} | {'probe' if m == 'probe_acc' else '1-NN'} | {t:.3f} | {s:.3f} | {d:.3f} | "
                         f"{w:.3f} | {f(cd)} | {f(cw)} |")
    lines.append("\n## Summary (computed)\n")
    for m, sm in summary.items():
        if not sm["n"]:
            continue
        name = "linear probe" if m == "probe_acc" else "1-NN"
        med = (lambda xs: f"{statistics.median(xs):+.2f}" if xs else "n/a")
        lines.append(f"- {name}: DisCo beats the student alone on {sm['d_gt_s']} of {sm['n']} datasets, DisCo-wide "
                     f"on {sm['w_gt_s']}; DisCo-wide beats DisCo on {sm['w_gt_d']}. Median gap closure: DisCo "
                     f"{med(sm['disco'])}, DisCo-wide {med(sm['disco-wide'])} (over the {len(sm['disco'])} datasets "
                     f"where the teacher is ahead).")
    if args.reading and os.path.exists(args.reading):
        lines.append("\n## Reading\n")
        with open(args.reading) as f:
            lines.append(f.read().rstrip() + "\n")
    write(args.md, lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["dcrls", "disco"], default="dcrls")
    ap.add_argument("--binary", default=None, help="example binary (default build/examples/<method>)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (dcrls 50, disco 30)")
    ap.add_argument("--teacher-epochs", type=int, default=None, help="disco: teacher pre-training epochs "
                    "(default --epochs)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--datasets", nargs="+", default=None)
    ap.add_argument("--variants", nargs="+", default=None)
    ap.add_argument("--threads", type=int, default=2, help="threads per run")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once")
    ap.add_argument("--data-root", default=None, help="UCR archive root passed to the binary")
    ap.add_argument("--out", default=None, help="run directory (default runs/results[-<method>])")
    ap.add_argument("--md", default=None, help="report (default docs/results/<method>.md)")
    ap.add_argument("--reading", default=None, help="disco: a Markdown file appended as the 'Reading' section")
    args = ap.parse_args()
    m = args.method
    args.binary = args.binary or f"build/examples/{m}"
    args.epochs = args.epochs or (50 if m == "dcrls" else 30)
    args.teacher_epochs = args.teacher_epochs or args.epochs
    args.datasets = args.datasets or (DEV_SETS if m == "dcrls" else DEV_SETS + DISCO_EXTRA)
    args.variants = args.variants or (DCRLS_VARIANTS if m == "dcrls" else DISCO_VARIANTS)
    args.out = args.out or ("runs/results" if m == "dcrls" else "runs/results-disco")
    args.md = args.md or f"docs/results/{m}.md"
    known = DCRLS_VARIANTS if m == "dcrls" else DISCO_VARIANTS
    bad = [v for v in args.variants if v not in known]
    if bad:
        sys.exit(f"results.py: unknown {m} variant(s) {bad}; expected {known}")
    if not os.path.exists(args.binary):
        sys.exit(f"results.py: no binary at {args.binary} (build the '{m}' target or pass --binary)")
    (dcrls if m == "dcrls" else disco)(args)


if __name__ == "__main__":
    main()
