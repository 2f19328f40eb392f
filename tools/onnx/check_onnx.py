#!/usr/bin/env python3
"""Checks graphs written by `anneal export onnx` with ONNX's own checker.

    python3 tools/onnx/check_onnx.py EXPORT_DIR_OR_FILE.onnx [...]  > check.json

Every *.onnx file named (or inside a named folder) goes through
onnx.checker.check_model(path, full_check=True): the structure, every node against its operator
schema at the model's opset, and shape inference over the whole graph (full_check). The path is
passed, not a loaded proto, so the weights in external data (weights.onnx.data) are checked to
exist too. Prints one JSON object per file in a list; exits 1 if any file fails.
Needs the `onnx` package (the GPU machine has onnx 1.23.1; no torch needed).
"""
import json
import pathlib
import sys

import onnx


def check(path):
    report = {"file": str(path)}
    try:
        model = onnx.load(str(path), load_external_data=False)
        report["ir_version"] = model.ir_version
        report["opsets"] = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
        report["nodes"] = len(model.graph.node)
        report["ops"] = sorted({n.op_type for n in model.graph.node})
        report["domains"] = sorted({n.domain or "ai.onnx" for n in model.graph.node})
        report["inputs"] = [i.name for i in model.graph.input]
        report["outputs"] = len(model.graph.output)
        onnx.checker.check_model(str(path), full_check=True)
        report["ok"] = True
    except Exception as e:  # the checker's ValidationError, or a file that is not ONNX
        report["ok"] = False
        report["error"] = f"{type(e).__name__}: {e}"
    return report


def main(args):
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    files = []
    for a in args:
        p = pathlib.Path(a)
        files.extend(sorted(p.rglob("*.onnx")) if p.is_dir() else [p])
    reports = [check(f) for f in files]
    print(json.dumps({"onnx": onnx.__version__, "files": reports}, indent=1))
    return 0 if reports and all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
