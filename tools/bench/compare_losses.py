#!/usr/bin/env python3
"""Compares the loss curves of runs of one pipeline: a candidate (the fused operators) against a
reference run, beside the reference path's own run-to-run spread (a second reference run with
another seed). Reads each run's metrics.jsonl (TRL names: step, loss) and writes a JSON summary:
per pair the mean and largest absolute loss difference over all steps and over the last 50, and
whether the candidate lies within the reference's spread (its mean difference over the last 50
steps no larger than the two reference runs' difference). It also counts the rows whose bookkeeping
differs between candidate and reference (same data and schedule, so step, learning_rate, num_tokens
and every epoch field must match to the bit): a trainer that books a step's numbers to another step
(the graphed path takes each step's numbers one step late) shows up there.

    compare_losses.py --candidate F.jsonl --reference R.jsonl --reference-other R2.jsonl --out summary.json
"""
import argparse
import json


def losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                row = json.loads(line)
                if "loss" in row and "step" in row:
                    out[int(row["step"])] = float(row["loss"])
    return out


def rows(path):
    with open(path) as f:
        return {int(r["step"]): r for r in (json.loads(line) for line in f if line.strip()) if "step" in r}


def bookkeeping_differences(a, b):
    """Rows of a and b (by step) whose step-level fields differ, and the fields compared."""
    fields = {"learning_rate", "num_tokens", "skipped_steps"}
    for r in list(a.values()) + list(b.values()):
        fields |= {k for k in r if k == "epoch" or k.startswith("epoch/")}
    steps = set(a) | set(b)
    differing = [s for s in sorted(steps) if any(a.get(s, {}).get(k) != b.get(s, {}).get(k) for k in fields)]
    return {"rows": len(steps), "differing_rows": len(differing), "first_differing_steps": differing[:5],
            "fields": sorted(fields)}


def difference(a, b, last=50):
    steps = sorted(set(a) & set(b))
    diffs = [abs(a[s] - b[s]) for s in steps]
    tail = diffs[-last:]
    return {"steps": len(steps), "mean_abs": sum(diffs) / len(diffs), "max_abs": max(diffs),
            f"mean_abs_last_{last}": sum(tail) / len(tail)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--candidate", required=True)
    p.add_argument("--reference", required=True)
    p.add_argument("--reference-other", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    cand, ref, other = losses(a.candidate), losses(a.reference), losses(a.reference_other)
    last = max(ref)
    summary = {
        "candidate_vs_reference": difference(cand, ref),
        "reference_vs_other_seed": difference(ref, other),
        "final_loss": {"candidate": cand.get(last), "reference": ref.get(last), "reference_other_seed": other.get(last)},
        "first_loss": {"candidate": cand.get(1), "reference": ref.get(1)},
    }
    summary["within_reference_spread"] = (summary["candidate_vs_reference"]["mean_abs_last_50"]
                                          <= summary["reference_vs_other_seed"]["mean_abs_last_50"])
    summary["bookkeeping_vs_reference"] = bookkeeping_differences(rows(a.candidate), rows(a.reference))
    with open(a.out, "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
