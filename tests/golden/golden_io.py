"""Writer for distill's golden files (read by tests/support/golden.hpp).

Format (text, one array per two lines):
    @<name> <rank> <d0> ... <d{rank-1}>
    <v0> <v1> ... (numel values, %.17g)
Lines starting with '#' are comments.
"""
import numpy as np


def write(path, arrays, comment=""):
    with open(path, "w") as f:
        for line in comment.splitlines():
            f.write(f"# {line}\n")
        for name, a in arrays.items():
            a = np.asarray(a, dtype=np.float64)
            f.write(f"@{name} {a.ndim} {' '.join(str(d) for d in a.shape)}\n")
            f.write(" ".join(f"{v:.17g}" for v in a.reshape(-1)) + "\n")
