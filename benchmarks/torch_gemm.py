"""PyTorch peer for bench_gemm: torch.mm on float32 square matrices."""
import torch


def _mm(n):
    def make(threads):
        a = torch.full((n, n), 0.5)
        b = torch.full((n, n), 0.25)
        c = torch.empty(n, n)
        return lambda: torch.mm(a, b, out=c)
    return make


CASES = {f"sgemm_{n}": _mm(n) for n in (256, 512, 1024)}
