#!/usr/bin/env python3
"""Writes the Parquet test fixtures of plugin-datamix (pyarrow; `pip install pyarrow`).

The same records as JSONL fixtures written beside them, so a test can check that Parquet and JSONL
give the identical token stream. Deterministic: the records come from the bundled examples/data.

    python3 tools/data/make_parquet_fixtures.py [--out plugin-datamix/src/test/resources/parquet]

Writes:
  chat.jsonl                          80 chat records (dialogs with system prompts, single turns, words)
  chat-snappy.parquet                 the same, snappy, dictionary-encoded, row groups of 16 rows
  chat-zstd.parquet                   the same, zstd, pages of ~256 bytes (several per column chunk)
  chat-none.parquet                   the same, uncompressed
  chat-gzip-v2-delta.parquet          the same, gzip, data page v2, DELTA_BYTE_ARRAY / DELTA_LENGTH_BYTE_ARRAY
  chat-plain-required.parquet         the same, snappy, PLAIN, non-nullable fields, one row group
  preferences-messages.jsonl/.parquet {chosen, rejected} as lists of messages (shared turns = prompt)
  preferences-prompt.jsonl/.parquet   {prompt, chosen, rejected} as lists of messages
  preferences-text.jsonl/.parquet     {prompt, chosen, rejected} as strings
  bad-rows.parquet                    good rows and rows with null messages / element / role / content,
                                      an unknown role and an empty list (row group 1 of 2 holds them)
  bad-missing-column.parquet          a "conversation" column instead of "messages"
  bad-role-type.parquet               role as int32
  not-parquet.parquet                 a text file with a .parquet name
"""
import argparse
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)


def read_jsonl(path, n):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()][:n]


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="plugin-datamix/src/test/resources/parquet")
    ap.add_argument("--examples", default="examples/data")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)
    ex = lambda name: os.path.join(args.examples, name)

    chat = (read_jsonl(ex("dialog.jsonl"), 30) + read_jsonl(ex("arithmetic.jsonl"), 30)
            + read_jsonl(ex("words/words-00000.jsonl.gz"), 20))
    chat = [{"messages": r["messages"]} for r in chat]
    chat[3]["messages"][1]["content"] = "caf\u00e9 \u00fcber \u65e5\u672c \U0001f600 and an empty turn follows"
    chat[4]["messages"].insert(1, {"role": "user", "content": ""})
    write_jsonl(out("chat.jsonl"), chat)
    table = pa.Table.from_pylist(chat, schema=pa.schema([("messages", MESSAGES)]))
    for codec in ("snappy", "zstd", "none"):
        # zstd: pages of ~256 bytes, so a column chunk holds several data pages after its dictionary page
        small_pages = dict(data_page_size=256, write_batch_size=8) if codec == "zstd" else {}
        pq.write_table(table, out(f"chat-{codec}.parquet"), compression=codec, row_group_size=16, **small_pages)
    pq.write_table(table, out("chat-gzip-v2-delta.parquet"), compression="gzip", row_group_size=32,
                   data_page_version="2.0", use_dictionary=False,
                   column_encoding={"messages.list.element.role": "DELTA_BYTE_ARRAY",
                                    "messages.list.element.content": "DELTA_LENGTH_BYTE_ARRAY"})
    required = pa.schema([pa.field("messages", pa.list_(pa.field("element", pa.struct(
        [pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string(), nullable=False)]),
        nullable=False)), nullable=False)])
    pq.write_table(pa.Table.from_pylist(chat, schema=required), out("chat-plain-required.parquet"),
                   compression="snappy", use_dictionary=False)

    pm = read_jsonl(ex("preferences-messages.jsonl"), 40)
    write_jsonl(out("preferences-messages.jsonl"), pm)
    pq.write_table(pa.Table.from_pylist(pm, schema=pa.schema([("chosen", MESSAGES), ("rejected", MESSAGES)])),
                   out("preferences-messages.parquet"), row_group_size=16)
    pp = read_jsonl(ex("preferences-prompt.jsonl"), 40)
    write_jsonl(out("preferences-prompt.jsonl"), pp)
    pq.write_table(pa.Table.from_pylist(pp, schema=pa.schema(
        [("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)])), out("preferences-prompt.parquet"),
        compression="zstd")
    pt = [{"prompt": r["prompt"][0]["content"], "chosen": r["chosen"][0]["content"],
           "rejected": r["rejected"][0]["content"]} for r in pp[:20]]
    write_jsonl(out("preferences-text.jsonl"), pt)
    pq.write_table(pa.Table.from_pylist(pt, schema=pa.schema(
        [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())])), out("preferences-text.parquet"))

    good = chat[0]["messages"]
    bad = [{"messages": good}, {"messages": good}, {"messages": good},          # row group 0: rows 0-2
           {"messages": None},                                                  # row group 1, row 0
           {"messages": [good[0], None]},                                       # row 1: element 1 null
           {"messages": [{"role": None, "content": "x"}]},                      # row 2: role null
           {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]},  # row 3
           {"messages": [{"role": "tool", "content": "x"}]},                    # row 4: unknown role
           {"messages": []},                                                    # row 5: empty list
           {"messages": good}]                                                  # row 6: good
    # two row groups: 3 good rows, then the 7 rows above
    with pq.ParquetWriter(out("bad-rows.parquet"), pa.schema([("messages", MESSAGES)])) as w:
        w.write_table(pa.Table.from_pylist(bad[:3], schema=pa.schema([("messages", MESSAGES)])))
        w.write_table(pa.Table.from_pylist(bad[3:], schema=pa.schema([("messages", MESSAGES)])))
    pq.write_table(pa.Table.from_pylist([{"conversation": good}], schema=pa.schema([("conversation", MESSAGES)])),
                   out("bad-missing-column.parquet"))
    pq.write_table(pa.Table.from_pylist([{"messages": [{"role": 1, "content": "x"}]}], schema=pa.schema(
        [("messages", pa.list_(pa.struct([("role", pa.int32()), ("content", pa.string())])))])),
        out("bad-role-type.parquet"))
    with open(out("not-parquet.parquet"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"messages": good}) + "\n")


if __name__ == "__main__":
    main()
