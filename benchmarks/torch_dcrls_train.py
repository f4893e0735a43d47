"""PyTorch peer of `examples/dcrls` for the GPU check (scripts/gpu_check.sh): the same model, loss and optimizer
as benchmarks/torch_dcrls_step.py, trained on a UCR training split for --epochs epochs on --device, with batches of
min(64, N) series (drop_last, as examples/dcrls) and two jitter + scaling views made on the device. Prints one JSON
line: device, epochs, steps, wall seconds (data upload, augmentation and training; the first step, which pays for
CUDA's lazy initialisation, reported apart), final epoch loss.

It times the same work, not the same numbers: augmentations and initial weights are torch's own."""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_dcrls_step import Encoder, Head, nt_xent, soft_kl  # noqa: E402


def load_train(path):
    rows = np.loadtxt(path, delimiter="\t", dtype=np.float32, ndmin=2)
    x = rows[:, 1:]
    x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-8)
    return torch.from_numpy(x).unsqueeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True, help="<Name>_TRAIN.tsv")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tau", type=float, default=0.2)
    ap.add_argument("--temperature", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    x = load_train(args.train).to(dev)
    n, B = x.shape[0], min(args.batch, x.shape[0])
    enc = Encoder(64).to(dev)
    heads = torch.nn.ModuleList([Head(64), Head(128), Head(128)]).to(dev)
    opt = torch.optim.Adam(list(enc.parameters()) + list(heads.parameters()), lr=1e-3, weight_decay=1e-4)

    def view(b):
        return b * (1 + 0.1 * torch.randn(b.shape[0], 1, 1, device=dev)) + 0.03 * torch.randn_like(b)

    steps, first_step_s, loss_epoch = 0, None, float("nan")
    for _ in range(args.epochs):
        perm = torch.randperm(n, device=dev)
        total = 0.0
        for s in range(n // B):
            ts = time.perf_counter()
            b = x[perm[s * B:(s + 1) * B]]
            f = enc(torch.cat([view(b), view(b)]))
            zs = [h(g) for h, g in zip(heads, f)]
            loss = sum(nt_xent(z[:B], z[B:], args.tau) for z in zs)
            loss = loss + sum(soft_kl(zs[k], zs[-1], args.tau, args.temperature) for k in range(2))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())  # one read per step, as examples/dcrls does
            steps += 1
            if first_step_s is None:
                first_step_s = time.perf_counter() - ts
        loss_epoch = total / max(1, n // B)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(json.dumps({"peer": f"torch {torch.__version__}", "device": name, "epochs": args.epochs, "steps": steps,
                      "batch": B, "wall_s": round(wall, 3), "first_step_s": round(first_step_s or 0, 3),
                      "final_loss": loss_epoch}))


if __name__ == "__main__":
    main()
