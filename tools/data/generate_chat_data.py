#!/usr/bin/env python3
"""Generates the bundled chat data of examples/data/ (standard library only, no downloads).

Every task family is procedural and learnable by a tiny model: the answer is a deterministic
function of the prompt. Output is byte-for-byte reproducible (fixed seed, gzip mtime 0).

    python3 tools/data/generate_chat_data.py [--out examples/data] [--seed 20250101]

Writes:
  arithmetic.jsonl            plain JSONL, single-turn addition/subtraction/multiplication
  units.jsonl                 plain JSONL, unit conversion
  facts.jsonl                 plain JSONL, a fixed table of invented facts
  dialog.jsonl                multi-turn dialogs with a system prompt
  words/words-0000N.jsonl.gz  a gzip-sharded folder: reverse and sort word lists
  preferences-messages.jsonl  preference records {"chosen": messages, "rejected": messages}
  preferences-prompt.jsonl    preference records {"prompt": messages, "chosen": messages, "rejected": messages}
  preferences-format.jsonl    format preferences (prompt form): follow the prompt's answer-format instruction
  eval/preferences-format.jsonl  their held-out split (messages form)
  eval/<family>.jsonl         a held-out split: prompts that never occur in the training files
"""
import argparse
import gzip
import json
import os
import random

WORDS = ("apple river stone cloud green orange tiger piano silver candle window forest "
         "yellow rocket garden pencil marble coffee dragon winter summer violet copper "
         "lemon castle bridge planet rabbit mirror shadow button").split()

UNITS = [  # (from, to, factor)
    ("km", "m", 1000), ("m", "cm", 100), ("kg", "g", 1000), ("h", "min", 60),
    ("min", "s", 60), ("l", "ml", 1000), ("cm", "mm", 10), ("day", "h", 24),
]

# A fixed table of invented facts: learnable only by memorisation, never by world knowledge.
COUNTRIES = ["Veloria", "Quandis", "Morvath", "Tessaly", "Brunomar", "Ostrava Nova", "Kelphen",
             "Darune", "Sillmark", "Ythria", "Corvane", "Pellucid", "Arnhold", "Zembria"]
CAPITALS = ["Lumen", "Tarsk", "Edra", "Volo", "Quill", "Neroth", "Saba", "Imber", "Castor",
            "Fenwick", "Ollo", "Marrow", "Dune", "Prism"]
COLOURS = ["blue", "red", "green", "gold", "white", "black", "purple"]


def msg(role, content):
    return {"role": role, "content": content}


def arithmetic(rng):
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(0, 99), rng.randint(0, 99)
    r = {"+": a + b, "-": a - b, "*": a * b}[op]
    q = f"What is {a} {op} {b}?"
    return q, [msg("user", q), msg("assistant", f"{a} {op} {b} = {r}")]


def units(rng):
    src, dst, f = rng.choice(UNITS)
    x = rng.randint(1, 500)
    q = f"Convert {x} {src} to {dst}."
    return q, [msg("user", q), msg("assistant", f"{x} {src} = {x * f} {dst}")]


def facts(rng):
    i = rng.randrange(len(COUNTRIES))
    kind = rng.choice(["capital", "colour", "founded"])
    c = COUNTRIES[i]
    if kind == "capital":
        q, a = f"What is the capital of {c}?", f"The capital of {c} is {CAPITALS[i]}."
    elif kind == "colour":
        q, a = f"What colour is the flag of {c}?", f"The flag of {c} is {COLOURS[i % len(COLOURS)]}."
    else:
        q, a = f"When was {c} founded?", f"{c} was founded in {1200 + 37 * i}."
    return q, [msg("user", q), msg("assistant", a)]


def words(rng):
    ws = rng.sample(WORDS, rng.randint(3, 7))
    if rng.random() < 0.5:
        q = "Reverse the words: " + " ".join(ws)
        a = " ".join(reversed(ws))
    else:
        q = "Sort the words: " + " ".join(ws)
        a = " ".join(sorted(ws))
    return q, [msg("user", q), msg("assistant", a)]


def dialog(rng):
    system = rng.choice(["You are a careful calculator. Answer with the equation.",
                         "You are a terse assistant that does arithmetic."])
    a, b, c = rng.randint(1, 99), rng.randint(1, 99), rng.randint(1, 99)
    q = f"Add {a} and {b}."
    return q, [msg("system", system),
               msg("user", q), msg("assistant", f"{a} + {b} = {a + b}"),
               msg("user", f"Now multiply that by {c}."), msg("assistant", f"{a + b} * {c} = {(a + b) * c}"),
               msg("user", "And subtract 7?"), msg("assistant", f"{(a + b) * c} - 7 = {(a + b) * c - 7}")]


def preference(rng):
    q, m = arithmetic(rng)
    good = m[1]["content"]
    left, right = good.rsplit("= ", 1)
    bad = f"{left}= {int(right) + rng.choice([-10, -1, 1, 2, 10])}"
    return q, m[:1], [msg("assistant", good)], [msg("assistant", bad)]


def format_preference(rng):
    """A preference on the answer's form, both answers correct: with an instruction ("Answer with the
    number only.", "Answer in capitals.") the answer that follows it is chosen; without one, the
    full form the SFT data uses. Learnable from the prompt alone, so it carries to held-out prompts,
    unlike preference(), whose rejected answers are arithmetic slips a small model cannot check."""
    instructed = rng.random() < 0.5
    if rng.random() < 0.5:
        q, m = units(rng)
        full = m[1]["content"]
        short = full.split(" = ", 1)[1].split(" ", 1)[0]
        instruction = " Answer with the number only."
    else:
        q, m = words(rng)
        full = m[1]["content"]
        short = full.upper()
        instruction = ". Answer in capitals."
    if instructed:
        q += instruction
        chosen, rejected = short, full
    else:
        chosen, rejected = full, short
    return q, [msg("user", q)], [msg("assistant", chosen)], [msg("assistant", rejected)]


def draw(rng, fn, n, seen, held_out):
    """n records of one family whose prompts are unique and (for training) not in held_out."""
    out = []
    while len(out) < n:
        q, m = fn(rng)
        if q in seen or q in held_out:
            continue
        seen.add(q)
        out.append(m)
    return out


def draw_pairs(rng, fn, n):
    """n preference pairs (prompt, chosen, rejected) of one family with unique prompts."""
    pairs, seen = [], set()
    while len(pairs) < n:
        q, prompt, chosen, rejected = fn(rng)
        if q not in seen:
            seen.add(q)
            pairs.append((prompt, chosen, rejected))
    return pairs


def write_jsonl(path, records, gz=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    if gz:
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as g:
            g.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="examples/data")
    ap.add_argument("--seed", type=int, default=20250101)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    families = {"arithmetic": (arithmetic, 1500), "units": (units, 600), "facts": (facts, 42),
                "dialog": (dialog, 300), "words": (words, 1200)}
    eval_sizes = {"arithmetic": 100, "units": 50, "facts": 0, "dialog": 20, "words": 80}
    for name, (fn, n) in families.items():
        held = set()
        # Held-out prompts are drawn first, so training never contains them.
        evals = draw(rng, fn, eval_sizes[name], held, set())
        train = draw(rng, fn, n, set(), held)
        if evals:
            write_jsonl(os.path.join(args.out, "eval", name + ".jsonl"), [{"messages": m} for m in evals])
        if name == "words":
            shards = 3
            for s in range(shards):
                write_jsonl(os.path.join(args.out, "words", f"words-{s:05d}.jsonl.gz"),
                            [{"messages": m} for m in train[s::shards]], gz=True)
        else:
            # facts: the table has 42 distinct questions, all of them in training (memorisation).
            write_jsonl(os.path.join(args.out, name + ".jsonl"), [{"messages": m} for m in train])
    prefs = draw_pairs(rng, preference, 300)
    write_jsonl(os.path.join(args.out, "preferences-messages.jsonl"),
                [{"chosen": p + c, "rejected": p + r} for p, c, r in prefs[:150]])
    write_jsonl(os.path.join(args.out, "preferences-prompt.jsonl"),
                [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in prefs[150:]])
    # drawn last, so the files above stay byte-identical to the generator without this family
    formats = draw_pairs(rng, format_preference, 750)
    write_jsonl(os.path.join(args.out, "eval", "preferences-format.jsonl"),
                [{"chosen": p + c, "rejected": p + r} for p, c, r in formats[:150]])
    write_jsonl(os.path.join(args.out, "preferences-format.jsonl"),
                [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in formats[150:]])

if __name__ == "__main__":
    main()
