#!/usr/bin/env python3
"""Reads an Anneal stage's TensorBoard event files with TensorBoard's own reader and prints JSON.

    python3 tools/tensorboard/read_events.py runs/tiny-sft/1-sft/tensorboard \
        [--check runs/tiny-sft/1-sft/metrics.jsonl]

Prints {"tags": {tag: [[step, value], ...]}, "files": N} from
tensorboard.backend.event_processing.event_accumulator.EventAccumulator (the class behind
`tensorboard --logdir`, purge_orphaned_data on, so a resumed run's SessionLog START drops the
replayed steps of the earlier file). With --check, every numeric value of every row of the
metrics.jsonl must appear under its name at its step as the float32 TensorBoard stores, and every
step TensorBoard shows must be a row of the file: exit 1 otherwise, naming the first difference.
Needs the `tensorboard` package (pip install tensorboard); nothing else.
"""
import argparse
import json
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator


def float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the stage's tensorboard folder (or one event file)")
    parser.add_argument("--check", help="metrics.jsonl of the same stage to compare with")
    args = parser.parse_args()
    acc = event_accumulator.EventAccumulator(args.folder, size_guidance={event_accumulator.SCALARS: 0},
                                             purge_orphaned_data=True)
    acc.Reload()
    tags = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    files = len([f for f in os.listdir(args.folder) if "tfevents" in f]) if os.path.isdir(args.folder) else 1
    print(json.dumps({"files": files, "tags": tags}, sort_keys=True))
    if args.check:
        with open(args.check, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        problems = []
        shown = {tag: dict((s, v) for s, v in series) for tag, series in tags.items()}
        for row in rows:
            for name, value in row.items():
                if name == "step" or isinstance(value, (str, bool)) or value is None:
                    continue
                got = shown.get(name, {}).get(row["step"])
                if got is None or got != float32(value):
                    problems.append(f"{name} at step {row['step']}: metrics.jsonl {value}, TensorBoard {got}")
        steps = {row["step"] for row in rows}
        for tag, series in shown.items():
            extra = sorted(set(series) - steps)
            if extra:
                problems.append(f"{tag}: TensorBoard shows steps {extra} that metrics.jsonl does not hold")
        if problems:
            print(f"{len(problems)} differences; first: {problems[0]}", file=sys.stderr)
            sys.exit(1)
        print(f"ok: {len(rows)} steps, every value of {args.check} read back by TensorBoard's EventAccumulator",
              file=sys.stderr)


if __name__ == "__main__":
    main()
