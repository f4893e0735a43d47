"""PyTorch peer for bench_mcl_step: one MCL x2 step and one L-MCL x2 step (with and without the meta step) of two
ResNet1D(32) networks with classifiers and Embed heads (D -> 128 -> 128), B = 32, L = 128, 4 classes, SGD
(Nesterov 0.9, lr 0.1, wd 5e-4). The same model, losses and meta step as include/distill/models/mcl.hpp
(docs/mcl.md): supervised VCL / ICL with the same-index pair masked, soft VCL / ICL (KL_3, stop-gradient teachers),
L-MCL exits from copies of the later blocks, aggregator, logit KD, weight network with sigmoid(cos) pair weights,
and the finite-difference hyper-gradient (one virtual SGD step, teachers kept at the unperturbed parameters)."""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_dcrls_step import Block  # noqa: E402  (the same ResNet1D block)

TAU, TAU_L, KD_T = 0.07, 0.1, 3.0
ALPHA, BETA, GAMMA, LAMBDA = 0.1, 0.1, 1.0, 1.0


class Embed(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.l1, self.l2 = nn.Linear(d, 128), nn.Linear(128, 128)

    def forward(self, f):
        return self.l2(F.relu(self.l1(f)))  # the losses normalise


class Net(nn.Module):
    """ResNet1D(w) + classifier + Embed; layerwise: two auxiliary exits, aggregator, weight network."""

    def __init__(self, w, classes, layerwise):
        super().__init__()
        d = 2 * w
        self.b1, self.b2, self.b3 = Block(1, w), Block(w, d), Block(d, d)
        n_exits = 3 if layerwise else 1
        self.cls = nn.ModuleList([nn.Linear(d, classes) for _ in range(n_exits)])
        self.embed = nn.ModuleList([Embed(d) for _ in range(n_exits)])
        self.layerwise = layerwise
        if layerwise:
            self.a1b2, self.a1b3, self.a2b3 = Block(w, d), Block(d, d), Block(d, d)
            self.agg = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(), nn.Linear(d, 3))
            self.proj = nn.ModuleList([nn.Linear(d, 128) for _ in range(3)])

    def forward(self, x, with_embed=True):
        h1 = self.b1(x)
        h2 = self.b2(h1)
        h3 = self.b3(h2)
        feats = [h3.mean(2)]
        if self.layerwise:
            feats = [self.a1b3(self.a1b2(h1)).mean(2), self.a2b3(h2).mean(2)] + feats
        logits = [c(f) for c, f in zip(self.cls, feats)]
        embeds = [e(f) for e, f in zip(self.embed, feats)] if with_embed else None
        return feats, logits, embeds

    def aggregate(self, feats, logits):
        att = F.softmax(self.agg(torch.cat(feats, 1)), 1)
        return sum(att[:, k:k + 1] * logits[k] for k in range(3))

    def theta(self):
        return [p for n, p in self.named_parameters() if not n.startswith(("agg.", "proj."))]


def masks(y):
    eye = torch.eye(len(y), dtype=torch.bool)
    return (y[:, None] == y[None, :]) & ~eye, ~eye


def supcon_rows(a, b, y, tau, w=None):
    """Supervised-contrastive rows of n(a) n(b)^T / tau, positives same label j != i, denominator k != i."""
    pos, den = masks(y)
    s = (F.normalize(a, dim=1) @ F.normalize(b, dim=1).t() / tau).masked_fill(~den, float("-inf"))
    logp = s - torch.logsumexp(s, 1, keepdim=True)
    npos = pos.sum(1)
    l = -logp.masked_fill(~pos, 0).sum(1) / npos.clamp(min=1)
    return (l if w is None else w * l).mean()


def soft_kl(sr, sc, tr, tc, tau, w=None):
    x = F.normalize(sr, dim=1) @ F.normalize(sc, dim=1).t() / (tau * KD_T)
    with torch.no_grad():
        yv = F.normalize(tr, dim=1) @ F.normalize(tc, dim=1).t() / (tau * KD_T)
    lp = F.log_softmax(yv, 1)
    kl = (lp.exp() * (lp - F.log_softmax(x, 1))).sum(1)
    return KD_T * KD_T * (kl if w is None else w * kl).mean()


def mcl_terms(v, y):
    vcl = sum(supcon_rows(a, a, y, TAU) for a in v)
    svcl = sum(soft_kl(v[a], v[a], v[b], v[b], TAU) for a in range(len(v)) for b in range(len(v)) if a != b)
    icl = sicl = 0
    for a in range(len(v)):
        for b in range(a + 1, len(v)):
            icl = icl + supcon_rows(v[a], v[b], y, TAU) + supcon_rows(v[b], v[a], y, TAU)
            sicl = sicl + soft_kl(v[a], v[b], v[b], v[a], TAU) + soft_kl(v[b], v[a], v[a], v[b], TAU)
    return ALPHA * vcl + GAMMA * svcl + BETA * icl + LAMBDA * sicl


def pair_contrast(e1, e2, y, w, t1, t2):
    vcl = supcon_rows(e1, e1, y, TAU_L, w) + supcon_rows(e2, e2, y, TAU_L, w)
    icl = supcon_rows(e1, e2, y, TAU_L, w) + supcon_rows(e2, e1, y, TAU_L, w)
    svcl = soft_kl(e1, e1, t2, t2, TAU_L, w) + soft_kl(e2, e2, t1, t1, TAU_L, w)
    sicl = soft_kl(e1, e2, t2, t1, TAU_L, w) + soft_kl(e2, e1, t1, t2, TAU_L, w)
    return ALPHA * vcl + GAMMA * svcl + BETA * icl + LAMBDA * sicl


def contrast(nets, outs, y, phi_grad, teacher=None):
    """2 x sum over exit pairs of the weighted pair contrast (each unordered network pair once)."""
    (f0, _, e0), (f1, _, e1) = outs
    te0, te1 = (e0, e1) if teacher is None else (teacher[0][2], teacher[1][2])
    total = 0
    with torch.set_grad_enabled(phi_grad):
        p0 = [nets[0].proj[k](f0[k] if phi_grad else f0[k].detach()) for k in range(3)]
        p1 = [nets[1].proj[k](f1[k] if phi_grad else f1[k].detach()) for k in range(3)]
    for k in range(3):
        for z in range(3):
            with torch.set_grad_enabled(phi_grad):
                w = torch.sigmoid(F.cosine_similarity(p0[k], p1[z], dim=1))
            total = total + 2 * pair_contrast(e0[k], e1[z], y, w, te0[k], te1[z])
    return total


def make_step(kind, B=32, L=128, w=32, classes=4):
    def make(threads):
        torch.manual_seed(0)
        layerwise = kind != "mcl2"
        nets = nn.ModuleList([Net(w, classes, layerwise) for _ in range(2)])
        sgd = dict(lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
        main = [p for n, p in nets.named_parameters() if ".proj." not in n]
        opt = torch.optim.SGD(main, **sgd)
        phi = [p for n, p in nets.named_parameters() if ".proj." in n]
        meta_opt = torch.optim.SGD(phi, **sgd) if layerwise else None
        theta = [p for net in nets for p in net.theta()]
        x = torch.randn(B, 1, L)
        y = torch.arange(B) % classes

        def exit_ce():
            return sum(F.cross_entropy(l, y) for net in nets for l in net(x, False)[1])

        def meta_step(lr=0.1, eps_scale=0.01):
            with torch.no_grad():
                teacher = [net(x) for net in nets]
            snap = [p.detach().clone() for p in theta]
            g = torch.autograd.grad(contrast(nets, [net(x) for net in nets], y, True), theta, allow_unused=True)
            with torch.no_grad():
                for p, gp in zip(theta, g):
                    if gp is not None:
                        p -= lr * gp
            v = torch.autograd.grad(exit_ce(), theta, allow_unused=True)
            v = [torch.zeros_like(p) if vp is None else vp for p, vp in zip(theta, v)]
            eps = eps_scale / torch.sqrt(sum((vp * vp).sum() for vp in v))

            def phi_grad(sign):
                with torch.no_grad():
                    for p, s0, vp in zip(theta, snap, v):
                        p.copy_(s0 + sign * eps * vp)
                    outs = [net(x) for net in nets]
                return torch.autograd.grad(contrast(nets, outs, y, True, teacher), phi)

            gp, gm = phi_grad(1.0), phi_grad(-1.0)
            with torch.no_grad():
                for p, s0 in zip(theta, snap):
                    p.copy_(s0)
            for p, a, b in zip(phi, gp, gm):
                p.grad = -lr * (a - b) / (2 * eps)
            meta_opt.step()

        def step():
            outs = [net(x) for net in nets]
            if not layerwise:
                loss = sum(F.cross_entropy(o[1][-1], y) for o in outs) + mcl_terms([o[2][-1] for o in outs], y)
            else:
                agg = [net.aggregate(o[0], o[1]) for net, o in zip(nets, outs)]
                ce = sum(F.cross_entropy(l, y) for o in outs for l in o[1]) + sum(F.cross_entropy(a, y) for a in agg)
                kd = sum(F.kl_div(F.log_softmax(outs[i][1][-1] / KD_T, 1), F.softmax(agg[j].detach() / KD_T, 1),
                                  reduction="batchmean") * KD_T * KD_T
                         for i in range(2) for j in range(2) if i != j)
                loss = ce + kd + contrast(nets, outs, y, False)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if kind == "lmcl2_meta":
                meta_step()
            return loss
        return step
    return make


CASES = {"mcl2_step_B32_L128": make_step("mcl2"), "lmcl2_step_B32_L128": make_step("lmcl2"),
         "lmcl2_meta_step_B32_L128": make_step("lmcl2_meta")}
