#!/usr/bin/env python3
"""Compares the logits `anneal logits` wrote on the GPU for a Falcon-H1 fixture with the fixture's
own, computed by transformers in float32 on the CPU (tools/fixtures/, logits.f32): one JSON line
with max|anneal - transformers| / max|transformers|, whether it is within --bound, and which
layers ran (the `kernels:` line of the command's log: fused operators or the reference path).

    compare_logits.py ANNEAL.f32 FIXTURE_DIR [--log ANNEAL.log] [--bound 1e-4]

Exit status 1 when the bound is exceeded. Only numpy: it runs wherever the distribution runs.
"""
import argparse
import json
import os
import sys

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("anneal")
    p.add_argument("fixture")
    p.add_argument("--log")
    p.add_argument("--bound", type=float, default=1e-4)
    a = p.parse_args()
    reference = np.fromfile(os.path.join(a.fixture, "logits.f32"), dtype="<f4")
    ours = np.fromfile(a.anneal, dtype="<f4") if os.path.exists(a.anneal) else np.zeros(0, dtype="<f4")
    kernels = ""
    if a.log and os.path.exists(a.log):
        with open(a.log) as f:
            kernels = next((line.strip() for line in f if line.startswith("kernels:")), "")
    row = {"fixture": os.path.basename(os.path.normpath(a.fixture)), "kernels": kernels}
    if ours.size != reference.size:
        row.update({"error": f"{ours.size} logits written, the fixture has {reference.size}", "within_bound": False})
    else:
        relative = float(np.abs(ours - reference).max() / np.abs(reference).max())
        row.update({"relative_error": relative, "bound": a.bound, "within_bound": relative <= a.bound})
    print(json.dumps(row))
    sys.exit(0 if row["within_bound"] else 1)


if __name__ == "__main__":
    main()
