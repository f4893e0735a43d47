"""PyTorch peer for bench_conv1d: torch.nn.functional.conv1d(padding='same') at the issue's three shapes.

<shape>.fwd   forward only, under torch.no_grad()
<shape>.train forward, then backward of a fixed upstream gradient into x, w and b (grads reset each rep)
"""
import warnings

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", message="Using padding='same'")

SHAPES = [(16, 64, 128, 512, 8), (32, 1, 64, 256, 8), (32, 128, 128, 256, 3)]


def _name(B, cin, cout, L, K):
    return f"conv_b{B}_{cin}to{cout}_l{L}_k{K}"


def _tensors(B, cin, cout, L, K):
    g = torch.Generator().manual_seed(B * 7 + K)
    x = (torch.rand(B, cin, L, generator=g) * 2 - 1).requires_grad_(True)
    w = ((torch.rand(cout, cin, K, generator=g) * 2 - 1) * 0.1).requires_grad_(True)
    b = (torch.rand(cout, generator=g) * 2 - 1).requires_grad_(True)
    gy = torch.rand(B, cout, L, generator=g) * 2 - 1
    return x, w, b, gy


def _fwd(shape):
    def make(threads):
        x, w, b, _ = _tensors(*shape)

        def run():
            with torch.no_grad():
                F.conv1d(x, w, b, padding="same")
        return run
    return make


def _train(shape):
    def make(threads):
        x, w, b, gy = _tensors(*shape)

        def run():
            x.grad = None
            w.grad = None
            b.grad = None
            y = F.conv1d(x, w, b, padding="same")
            y.backward(gy)
        return run
    return make


CASES = {}
for _s in SHAPES:
    CASES[_name(*_s) + ".fwd"] = _fwd(_s)
    CASES[_name(*_s) + ".train"] = _train(_s)
