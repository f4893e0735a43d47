"""Golden values for tests/test_optim.cpp: torch.optim SGD / Adam / AdamW steps and LR schedulers.

Three parameters p0 [2, 3], p1 [4], p2 [3]. Each step t uses the fixed gradients grad.t<t>.p<i>; p2 never has a
gradient (skipped), and p1 has none at step 2 (skipped that step: its Adam step count and momentum stay put).
Every case runs in float64 and in float32 from the same initial values; the parameters after each step are
stored as <case>.<dtype>.t<t>.p<i>.
"""
import math
import os
import sys

import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

STEPS = 5
SHAPES = [(2, 3), (4,), (3,)]

CASES = {
    "sgd": (torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum_wd": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    "sgd_dampening": (torch.optim.SGD, dict(lr=0.1, momentum=0.8, dampening=0.3)),
    "adam": (torch.optim.Adam, dict(lr=1e-2)),
    "adam_wd": (torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    "adam_amsgrad": (torch.optim.Adam, dict(lr=2e-2, amsgrad=True, weight_decay=1e-3)),
    "adamw": (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    "adamw_amsgrad": (torch.optim.AdamW, dict(lr=3e-2, betas=(0.5, 0.9), weight_decay=0.5, amsgrad=True)),
}


def has_grad(t, i):
    return i == 0 or (i == 1 and t != 2)


def main(outdir):
    rng = np.random.default_rng(20240601)
    out = {}
    init = [rng.uniform(-1, 1, s) for s in SHAPES]
    grads = [[rng.uniform(-2, 2, s) for s in SHAPES] for _ in range(STEPS)]
    # A tiny gradient entry exercises eps; a large one the second moment.
    grads[0][0][0, 0] = 1e-7
    grads[3][0][1, 2] = 25.0
    for i, a in enumerate(init):
        out[f"init.p{i}"] = a
    for t in range(STEPS):
        for i in range(2):
            out[f"grad.t{t}.p{i}"] = grads[t][i]
    for case, (cls, kw) in CASES.items():
        for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
            ps = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in init]
            opt = cls(ps, **kw)
            for t in range(STEPS):
                for i, p in enumerate(ps):
                    p.grad = torch.tensor(grads[t][i], dtype=dtype) if has_grad(t, i) else None
                opt.step()
                for i, p in enumerate(ps):
                    out[f"{case}.{tag}.t{t}.p{i}"] = p.detach().to(torch.float64).numpy().copy()

    warnings.filterwarnings("ignore", message="The epoch parameter")

    def run_sched(make, epochs, base=0.1):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=base)
        sched = make(opt)
        lrs = []
        for _ in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return np.array(lrs)

    S = torch.optim.lr_scheduler
    out["sched.cosine"] = run_sched(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-4), 11)
    out["sched.cosine_long"] = run_sched(lambda o: S.CosineAnnealingLR(o, T_max=7, eta_min=0.0), 20)
    out["sched.step"] = run_sched(lambda o: S.StepLR(o, step_size=3, gamma=0.5), 12)
    out["sched.multistep"] = run_sched(lambda o: S.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.1), 12)
    out["sched.warmup_cosine"] = run_sched(
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.25, total_iters=4),
                                     S.CosineAnnealingLR(o, T_max=10, eta_min=1e-3)], milestones=[4]), 16)
    path = os.path.join(outdir, "optim.txt")
    golden_io.write(path, out, comment=__doc__.strip() + f"\ntorch {torch.__version__}")
    print(f"  wrote {path} ({len(out)} arrays)")


if __name__ == "__main__":
    main(os.path.dirname(os.path.abspath(__file__)))
