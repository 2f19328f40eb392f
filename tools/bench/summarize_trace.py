#!/usr/bin/env python3
"""Summarises a Chrome trace written by libtorch's profiler (anneal bench-train --profile): per
operator name, the number of calls and the summed duration, CPU-side and CUDA-side, largest first.
The CPU total against the CUDA total says whether the step waits on the host (launch and JNI
overhead) or on the device (kernels)."""
import collections
import json
import sys


def main(path):
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    groups = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0.0]))
    spans = collections.defaultdict(lambda: [float("inf"), 0.0])
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        cat = str(e.get("cat", "cpu")).lower()
        kind = "cuda" if ("cuda" in cat or "kernel" in cat or "gpu" in cat) else "cpu"
        g = groups[kind][e.get("name", "?")]
        g[0] += 1
        g[1] += float(e["dur"])
        spans[kind][0] = min(spans[kind][0], float(e["ts"]))
        spans[kind][1] = max(spans[kind][1], float(e["ts"]) + float(e["dur"]))
    for kind in ("cpu", "cuda"):
        ops = groups.get(kind, {})
        calls = sum(v[0] for v in ops.values())
        span = (spans[kind][1] - spans[kind][0]) / 1e3 if ops else 0
        print(f"== {kind}: {calls} events over {span:.1f} ms (2 steps); top 30 by summed duration")
        for name, (n, dur) in sorted(ops.items(), key=lambda kv: -kv[1][1])[:30]:
            print(f"{dur / 1e3:10.2f} ms {n:7d} x  {name[:100]}")


if __name__ == "__main__":
    main(sys.argv[1])
