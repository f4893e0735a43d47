#!/usr/bin/env python3
"""Kept for existing commands: the DCRLS sweep now lives in scripts/results.py (--method dcrls). This forwards every
argument, e.g.

    python3 scripts/dcrls_results.py --binary build/examples/dcrls --epochs 50 --seeds 0 1 2
"""
import os
import sys

if __name__ == "__main__":
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.py")
    os.execv(sys.executable, [sys.executable, script, "--method", "dcrls"] + sys.argv[1:])
