"""PyTorch peer for bench_losses (forward + backward, float32, the eager expressions the methods' code uses).

  ntxent_<M>   F.normalize(cat) -> z z^T / tau -> diagonal masked -> F.cross_entropy, 2N = M, D = 128, tau 0.2
  kl_<B>x<K>   F.kl_div(F.log_softmax(s/T), F.softmax(t/T), 'batchmean') * T^2, teacher detached, T = 4
Both the fused and the naive distill cases map to the same torch case.

`python3 benchmarks/torch_losses.py --memory [--threads 2]` runs every case in a fresh process and prints the
peak resident-set growth of one forward + backward (torch's CPU allocator returns large blocks to the OS, so
the peak RSS is the honest measure of its extra memory).
"""
import resource
import subprocess
import sys

import torch
import torch.nn.functional as F


def _ntxent(M, D=128, tau=0.2):
    def make(threads):
        torch.set_num_threads(threads)
        g = torch.Generator().manual_seed(7)
        n = M // 2
        x1 = (torch.rand(n, D, generator=g) * 4 - 2).requires_grad_(True)
        x2 = (torch.rand(n, D, generator=g) * 4 - 2).requires_grad_(True)
        target = torch.cat([torch.arange(n, M), torch.arange(0, n)])
        mask = torch.eye(M, dtype=torch.bool)

        def run():
            z = F.normalize(torch.cat([x1, x2]), dim=1)
            s = (z @ z.T) / tau
            s = s.masked_fill(mask, float("-inf"))
            loss = F.cross_entropy(s, target)
            x1.grad = None
            x2.grad = None
            loss.backward()
        return run
    return make


def _kl(B, K, T=4.0):
    def make(threads):
        torch.set_num_threads(threads)
        g = torch.Generator().manual_seed(7)
        s = (torch.rand(B, K, generator=g) * 4 - 2).requires_grad_(True)
        t = torch.rand(B, K, generator=g) * 4 - 2

        def run():
            loss = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T
            s.grad = None
            loss.backward()
        return run
    return make


CASES = {}
for _m in (512, 2048, 8192):
    for _kind in ("fused", "naive"):
        CASES[f"ntxent_{_kind}_{_m}"] = _ntxent(_m)
for _b, _k in ((1024, 1024), (512, 4096)):
    for _kind in ("fused", "naive"):
        CASES[f"kl_{_kind}_{_b}x{_k}"] = _kl(_b, _k)


def _peak_rss_growth(name, threads):
    # ru_maxrss is a high-water mark, so the first run is the one measured (inputs already allocated; torch's
    # thread pool and lazy initialisation are included, a few MiB).
    run = CASES[name](threads)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024


if __name__ == "__main__":
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
    if "--one" in sys.argv:
        print(_peak_rss_growth(sys.argv[sys.argv.index("--one") + 1], threads))
    elif "--memory" in sys.argv:
        for name in CASES:
            if "_naive_" in name:
                continue
            out = subprocess.run([sys.executable, __file__, "--one", name, "--threads", str(threads)],
                                 capture_output=True, text=True, check=True).stdout.split()[-1]
            print(f"{name.replace('_fused', ''):<22} peak RSS growth {int(out) / 2**20:9.1f} MiB")
