"""PyTorch peer for bench_disco_step: one DisCo student step (MoCo mode). The frozen teacher ResNet1D(128) + head
256 -> 128 in eval mode under no_grad on both views; the student ResNet1D(16) + head 64 -> 128 on both views; the
momentum update (m 0.99) and the key encoder on view 2; MoCo InfoNCE (tau 0.2) against a queue of 256 unit keys +
(32/B) x the summed MSE between the normalised student and teacher embeddings of both views; backward; Adam (lr 1e-3,
wd 1e-4); enqueue. The same model and step as examples/disco (see docs/disco.md)."""
import copy
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_dcrls_step import Block  # noqa: E402  the same ResNet1D block as the DCRLS peer


class Net(nn.Module):
    """ResNet1D(w) + MLP head 2w -> hidden -> 128 (raw projection; the losses normalise)."""

    def __init__(self, w, hidden):
        super().__init__()
        self.blocks = nn.Sequential(Block(1, w), Block(w, 2 * w), Block(2 * w, 2 * w))
        self.head = nn.Sequential(nn.Linear(2 * w, hidden), nn.ReLU(), nn.Linear(hidden, 128))

    def forward(self, x):
        return self.head(self.blocks(x).mean(dim=2))


def make_step(B, L, K=256, tau=0.2, m=0.99):
    def make(threads):
        torch.manual_seed(0)
        teacher = Net(128, 256).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        student = Net(16, 64)
        key = copy.deepcopy(student)
        for p in key.parameters():
            p.requires_grad_(False)
        queue = F.normalize(torch.randn(K, 128), dim=1)
        opt = torch.optim.Adam(student.parameters(), lr=1e-3, weight_decay=1e-4)
        x1, x2 = torch.randn(B, 1, L), torch.randn(B, 1, L)
        state = {"queue": queue, "ptr": 0}

        def step():
            q1 = F.normalize(student(x1), dim=1)
            q2 = F.normalize(student(x2), dim=1)
            with torch.no_grad():
                t1 = F.normalize(teacher(x1), dim=1)
                t2 = F.normalize(teacher(x2), dim=1)
                for pk, pq in zip(key.parameters(), student.parameters()):
                    pk.mul_(m).add_(pq.detach(), alpha=1 - m)
                k = F.normalize(key(x2), dim=1)
            logits = torch.cat([(q1 * k).sum(1, keepdim=True), q1 @ state["queue"].t()], dim=1) / tau
            con = F.cross_entropy(logits, torch.zeros(B, dtype=torch.long))
            dis = F.mse_loss(q1, t1, reduction="sum") + F.mse_loss(q2, t2, reduction="sum")
            loss = con + (32.0 / B) * dis
            opt.zero_grad()
            loss.backward()
            opt.step()
            p = state["ptr"]
            state["queue"][p:p + B] = k
            state["ptr"] = (p + B) % K
            return loss
        return step
    return make


CASES = {"disco_step_B16_L128": make_step(16, 128), "disco_step_B32_L64": make_step(32, 64)}
