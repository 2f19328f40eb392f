"""Where a step's allocated memory peaks, from the CUDA caching allocator's trace of it
(torch.cuda.memory._record_memory_history, then torch.cuda.memory._snapshot()["device_traces"]), with
the step's phases marked in the trace itself: `profile_layers.py --memory` marks them and reports.
Torch-free, so it runs, and is tested, on any machine:

    python3 tools/gpu/memory_trace.py TRACE.json BASELINE_BYTES PHASE...   -> the report as JSON

(TRACE.json: the trace's entries, each with action, addr and size; PHASE: the marks' labels in order.)
"""
import json
import sys
from collections import defaultdict

# A phase's marker is an allocation of a size no tensor of the step has, freed at once: a prime number
# (over 1,000) of the small pool's 512-byte blocks, where the 291M model's sizes factor into 2, 3 and
# 137. A first try with 1,000 + the phase's number of blocks hit a real 512 KiB tensor at 1,024, and
# put most of each forward's blocks under a later phase (docs/benchmarks/2026-12-04-h200-silu-mul-linear).
# Marked in the trace itself, phases need no clock shared between the host and the trace.
MARKER_BLOCKS = [n for n in range(1009, 2000) if all(n % k for k in range(2, int(n ** 0.5) + 1))]


def marker_bytes(index):
    """The size of phase `index`'s marker allocation (under 1 MiB: the small pool's rounding keeps it exact)."""
    return 512 * MARKER_BLOCKS[index]


def report(trace, baseline, phases, top=25):
    """The allocated peak of the traced step (plus `baseline`, what was allocated when the recording
    began: the weights, gradients and optimizer state), the phase it falls in, and the blocks alive
    there grouped by the phase that allocated them, and the largest of them."""
    markers = {marker_bytes(i): label for i, label in enumerate(phases)}
    phase, live, current, peak, at_peak, peak_phase = "before the first mark", {}, 0, 0, {}, None
    for entry in trace:
        action, addr, size = entry["action"], entry["addr"], entry["size"]
        if action == "alloc" and size in markers:
            phase = markers[size]
            continue
        if action == "alloc":
            live[addr] = (size, phase)
            current += size
            if current > peak:
                peak, at_peak, peak_phase = current, dict(live), phase
        elif action == "free_completed" and addr in live:   # (blocks from before the recording: in baseline)
            current -= live.pop(addr)[0]
    mib = 2 ** 20
    by_phase = defaultdict(lambda: [0, 0])
    for size, allocated_in in at_peak.values():
        by_phase[allocated_in][0] += size
        by_phase[allocated_in][1] += 1
    largest = sorted(at_peak.values(), key=lambda v: -v[0])[:top]
    return {"baseline_mib": round(baseline / mib, 1), "step_peak_mib": round(peak / mib, 1),
            "peak_allocated_mib": round((baseline + peak) / mib, 1), "peak_phase": peak_phase,
            "live_at_peak_by_phase": [{"phase": k, "mib": round(v[0] / mib, 1), "blocks": v[1]}
                                      for k, v in sorted(by_phase.items(), key=lambda kv: -kv[1][0])],
            "largest_live_at_peak": [{"mib": round(size / mib, 2), "phase": ph} for size, ph in largest]}


def print_report(r):
    print(f"   memory: {r['baseline_mib']:,.0f} MiB allocated before the step, its peak "
          f"{r['peak_allocated_mib']:,.0f} MiB during '{r['peak_phase']}'; alive there, by the phase that allocated it:")
    for item in r["live_at_peak_by_phase"][:20]:
        print(f"   {item['mib']:9.1f} MiB in {item['blocks']:4d} blocks  {item['phase']}")
    print("   the largest blocks alive at the peak: " + ", ".join(
        f"{b['mib']:.1f} ({b['phase']})" for b in r["largest_live_at_peak"]))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        entries = json.load(f)
    print(json.dumps(report(entries, int(sys.argv[2]), sys.argv[3:]), indent=1))
