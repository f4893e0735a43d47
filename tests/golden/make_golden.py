#!/usr/bin/python3
"""Regenerates every committed golden file with Debian's python3-torch / python3-sklearn.

Each area has its own generator tests/golden/gen_<area>.py exposing main(outdir). The tests only read the
committed files: torch is needed to regenerate them, never to run the tests.
Usage: python3 tests/golden/make_golden.py
"""
import glob
import importlib.util
import os

here = os.path.dirname(os.path.abspath(__file__))
for path in sorted(glob.glob(os.path.join(here, "gen_*.py"))):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print(f"{os.path.basename(path)}:")
    mod.main(here)
