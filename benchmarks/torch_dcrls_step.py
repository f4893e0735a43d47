"""PyTorch peer for bench_dcrls_step: one DCRLS training step (two views through a shared ResNet1D(64), a
projection head per block, per-block NT-Xent (tau 0.2) + self-distillation KL_3 from block 3 into blocks 1-2,
Adam lr 1e-3 wd 1e-4). The same model and step as examples/dcrls (see docs/dcrls.md)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.c1, self.b1 = nn.Conv1d(cin, cout, 8, padding="same"), nn.BatchNorm1d(cout)
        self.c2, self.b2 = nn.Conv1d(cout, cout, 5, padding="same"), nn.BatchNorm1d(cout)
        self.c3, self.b3 = nn.Conv1d(cout, cout, 3, padding="same"), nn.BatchNorm1d(cout)
        self.sc = nn.Conv1d(cin, cout, 1) if cin != cout else None
        self.sb = nn.BatchNorm1d(cout)

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x)))
        h = F.relu(self.b2(self.c2(h)))
        h = self.b3(self.c3(h))
        s = self.sb(self.sc(x) if self.sc is not None else x)
        return F.relu(h + s)


class Encoder(nn.Module):
    def __init__(self, w=64):
        super().__init__()
        self.blocks = nn.ModuleList([Block(1, w), Block(w, 2 * w), Block(2 * w, 2 * w)])

    def forward(self, x):
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x.mean(dim=2))
        return feats


class Head(nn.Module):
    def __init__(self, c, d=128):
        super().__init__()
        self.l1, self.l2 = nn.Linear(c, c), nn.Linear(c, d)

    def forward(self, g):
        return self.l2(F.relu(self.l1(g)))  # the losses normalise (cosine similarity)


def sim_logits(z, tau):
    z = F.normalize(z, dim=1)
    s = z @ z.t() / tau
    return s.masked_fill(torch.eye(z.shape[0], dtype=torch.bool, device=z.device), float("-inf"))


def nt_xent(z1, z2, tau):
    z = torch.cat([z1, z2])
    n = z1.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim_logits(z, tau), target)


def soft_kl(zs, zt, tau, T):
    ls, lt = sim_logits(zs, tau) / T, sim_logits(zt.detach(), tau) / T
    n = ls.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=zs.device)
    ls, lt = ls[off].view(n, n - 1), lt[off].view(n, n - 1)
    return F.kl_div(F.log_softmax(ls, 1), F.softmax(lt, 1), reduction="batchmean") * T * T


def make_step(B, L, w=64, tau=0.2, T=3.0, lam=1.0):
    def make(threads):
        torch.manual_seed(0)
        enc = Encoder(w)
        heads = nn.ModuleList([Head(w), Head(2 * w), Head(2 * w)])
        opt = torch.optim.Adam(list(enc.parameters()) + list(heads.parameters()), lr=1e-3, weight_decay=1e-4)
        x1, x2 = torch.randn(B, 1, L), torch.randn(B, 1, L)

        def step():
            f = enc(torch.cat([x1, x2]))  # both views in one pass, as examples/dcrls does
            zs = [h(g) for h, g in zip(heads, f)]
            loss = sum(nt_xent(z[:B], z[B:], tau) for z in zs)
            loss = loss + lam * sum(soft_kl(zs[b], zs[-1], tau, T) for b in range(len(zs) - 1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        return step
    return make


CASES = {"dcrls_step_B16_L256": make_step(16, 256), "dcrls_step_B64_L128": make_step(64, 128)}

if __name__ == "__main__":
    import time
    torch.set_num_threads(2)
    for name, mk in CASES.items():
        f = mk(2)
        f()
        t = []
        for _ in range(5):
            t0 = time.perf_counter(); f(); t.append((time.perf_counter() - t0) * 1e3)
        print(name, f"min {min(t):.1f} ms")
