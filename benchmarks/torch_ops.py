"""PyTorch peer for bench_ops: the same forward + backward units as the C++ cases (float32, CPU)."""
import torch
import torch.nn.functional as F


def _bn(shape):
    def make(threads):
        bn = torch.nn.BatchNorm1d(shape[1])
        x = torch.randn(*shape, requires_grad=True)
        g = torch.randn(*shape)
        return lambda: bn(x).backward(g)
    return make


def _unary(shape, fn, lo=-1.0, hi=1.0, out_shape=None):
    def make(threads):
        x = (torch.rand(*shape) * (hi - lo) + lo).requires_grad_(True)
        g = torch.randn(*(out_shape or shape))
        return lambda: fn(x).backward(g)
    return make


def _linear(threads):
    x = torch.randn(128, 128, requires_grad=True)
    w = torch.randn(128, 128, requires_grad=True)
    b = torch.randn(128, requires_grad=True)
    g = torch.randn(128, 128)
    return lambda: F.linear(x, w, b).backward(g)


def _ce_hard(K):
    def make(threads):
        x = (torch.rand(128, K) * 10 - 5).requires_grad_(True)
        y = torch.tensor([(i * 7) % K for i in range(128)])
        return lambda: F.cross_entropy(x, y).backward()
    return make


def _ce_soft(K):
    def make(threads):
        x = (torch.rand(128, K) * 10 - 5).requires_grad_(True)
        t = torch.rand(128, K) * 0.01
        return lambda: F.cross_entropy(x, t).backward()
    return make


def _mse(threads):
    a = torch.randn(128, 128, 150, requires_grad=True)
    b = torch.randn(128, 128, 150)
    return lambda: F.mse_loss(a, b).backward()


CASES = {
    "bn_train_fb_128x64x150": _bn((128, 64, 150)),
    "bn_train_fb_128x128x150": _bn((128, 128, 150)),
    "bn2d_train_fb_128x128": _bn((128, 128)),
    "gap_fb_128x128x150": _unary((128, 128, 150), lambda x: x.mean(dim=2), out_shape=(128, 128)),
    "linear_fb_128x128x128": _linear,
    "matmul_nt_fb_128x128": _unary((128, 128), lambda z: z @ z.t()),
    "l2_normalize_fb_128x128": _unary((128, 128), lambda x: F.normalize(x, dim=1)),
    "mse_fb_128x128x150": _mse,
}
for K in (128, 1000):
    CASES[f"softmax_fb_128x{K}"] = _unary((128, K), lambda x: F.softmax(x, dim=1), -5, 5)
    CASES[f"log_softmax_fb_128x{K}"] = _unary((128, K), lambda x: F.log_softmax(x, dim=1), -5, 5)
    CASES[f"ce_hard_fb_128x{K}"] = _ce_hard(K)
    CASES[f"ce_soft_fb_128x{K}"] = _ce_soft(K)
