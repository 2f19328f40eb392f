#!/usr/bin/env python3
"""The benchmark model's dimensions, read from the config that `anneal bench-train` runs
(examples/bench/falcon-h1-291m.conf), for the GPU tools that time its layers outside the JVM
(profile_layers.py, probe_fp8_gemm.py). Importing this module has no side effects: it needs no torch
and sets no environment (profile_layers.py sets cuBLAS's workspace before torch starts, which a tool
that imports it for the dimensions alone would inherit).

    python3 tools/gpu/bench_model.py [CONF]     # prints the dimensions as JSON

Reads the `model { ... }` block's `key = value` lines (HOCON's simple form, the one the bundled
configs use); a key the block leaves out takes FalconH1Config's default (transformers' FalconH1Config)
where the fused layers' tools need it.
"""
import json
import re
import sys
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "examples" / "bench" / "falcon-h1-291m.conf"

# FalconH1Config's defaults for the keys the tools read and a config may leave out
DEFAULTS = {"mamba-n-groups": 1, "mamba-d-conv": 4, "mamba-chunk-size": 256}
REQUIRED = ("vocab-size", "hidden-size", "intermediate-size", "num-hidden-layers", "num-attention-heads",
            "num-key-value-heads", "head-dim", "mamba-d-ssm", "mamba-n-heads", "mamba-d-head", "mamba-d-state")


def model_block(path):
    """The model block's settings of the config at path, as {key: int or float or str}."""
    text = Path(path).read_text(encoding="utf-8")
    start = re.search(r"^\s*model\s*\{", text, re.MULTILINE)
    if not start:
        raise SystemExit(f"bench_model.py: {path} has no model {{ ... }} block")
    settings, depth = {}, 1
    for number, line in enumerate(text[start.end():].splitlines(), start=text[:start.end()].count("\n") + 1):
        line = line.split("#", 1)[0].strip()
        depth += line.count("{") - line.count("}")
        if depth <= 0:
            return settings
        setting = re.fullmatch(r"([A-Za-z0-9-]+)\s*[=:]\s*(\S+)", line)
        if setting and depth == 1:
            key, value = setting.groups()
            for kind in (int, float):
                try:
                    value = kind(value)
                    break
                except ValueError:
                    pass
            settings[key] = value
    raise SystemExit(f"bench_model.py: {path}: the model block opened on line {number} is not closed")


def dimensions(path=CONF):
    """The dimensions the layer tools use, by FalconH1Config's names (bench-train's model)."""
    model = {**DEFAULTS, **model_block(path)}
    missing = [key for key in REQUIRED if key not in model]
    if missing:
        raise SystemExit(f"bench_model.py: {path}: model.{', model.'.join(missing)} not set")
    return {key: model[key] for key in REQUIRED + tuple(DEFAULTS)}


if __name__ == "__main__":
    print(json.dumps(dimensions(sys.argv[1] if len(sys.argv) > 1 else CONF), indent=2))
