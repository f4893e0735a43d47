#!/usr/bin/python3
"""Golden values for conv1d: torch.nn.functional.conv1d forward and input/weight/bias gradients (float64).

Cases: padding='same' with k=8 (PyTorch pads 3 left, 4 right), padding='same' with k=5 and dilation 2, and
padding='valid' with k=3. For each case the file holds the inputs (x, w, b), a fixed upstream gradient gy, the
output y and the gradients gx, gw, gb of sum(y * gy). Run: python3 tests/golden/make_golden.py
"""
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

CASES = [
    # name, B, Cin, Cout, L, K, dilation, padding
    ("same_k8", 2, 3, 4, 13, 8, 1, "same"),
    ("same_k5_d2", 2, 3, 5, 11, 5, 2, "same"),
    ("valid_k3", 3, 2, 4, 9, 3, 1, "valid"),
]


def main(outdir):
    warnings.filterwarnings("ignore", message="Using padding='same'")
    g = torch.Generator().manual_seed(20261122)
    arrays = {}
    for name, B, cin, cout, L, K, dil, pad in CASES:
        x = torch.rand(B, cin, L, generator=g, dtype=torch.float64) * 2 - 1
        w = torch.rand(cout, cin, K, generator=g, dtype=torch.float64) * 2 - 1
        b = torch.rand(cout, generator=g, dtype=torch.float64) * 2 - 1
        x.requires_grad_(True)
        w.requires_grad_(True)
        b.requires_grad_(True)
        y = torch.nn.functional.conv1d(x, w, b, padding=pad, dilation=dil)
        gy = torch.rand(y.shape, generator=g, dtype=torch.float64) * 2 - 1
        y.backward(gy)
        for key, t in (("x", x), ("w", w), ("b", b), ("gy", gy), ("y", y), ("gx", x.grad), ("gw", w.grad),
                       ("gb", b.grad)):
            arrays[f"{name}.{key}"] = t.detach().numpy()
    path = os.path.join(outdir, "conv1d.txt")
    golden_io.write(path, arrays,
                    comment=f"conv1d golden values from torch {torch.__version__} (tests/golden/gen_conv1d.py)\n"
                            "cases: " + ", ".join(f"{c[0]} (B={c[1]} Cin={c[2]} Cout={c[3]} L={c[4]} K={c[5]} "
                                                  f"dilation={c[6]} padding={c[7]})" for c in CASES))
    print(f"  wrote {path}")


if __name__ == "__main__":
    main(os.path.dirname(os.path.abspath(__file__)))
