#!/usr/bin/env python3
"""Anneal's exported ONNX graphs beside transformers on the same checkpoint and prompt, on the CPU.

    python3 tools/onnx/compare_transformers.py --checkpoint CKPT_DIR --onnx EXPORT_DIR \
        [--prompt "What is 2 + 3?"] [--max-new-tokens 64] [--threads N] > compare.json

CKPT_DIR is the Hugging Face folder (config.json, model.safetensors, tokenizer files) that
`anneal export onnx --checkpoint CKPT_DIR --out EXPORT_DIR` exported. The script
  1. renders the prompt with the tokenizer's chat template (add_generation_prompt=True);
  2. scores it with transformers' FalconH1ForCausalLM (float32, CPU) and with the exported
     prefill.onnx in ONNX Runtime (Python), and reports the largest difference relative to the
     largest transformers logit;
  3. generates greedily --max-new-tokens tokens with transformers' generate (its own cache) and
     with the exported graphs (prefill once, then decode.onnx with the caches carried), and
     reports whether the tokens agree and where they first differ;
  4. times both: prefill tokens/s (one forward over the prompt) and decode tokens/s (the new
     tokens after the first, divided by the time after the prefill), median of 3 after a warm-up.
Needs torch, transformers, onnxruntime and numpy (the GPU machine has them); runs on the CPU.
"""
import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def ort_generate(prefill, decode, ids, new_tokens, layers, kinds=("key", "value", "conv", "ssm")):
    start = time.perf_counter()
    outs = prefill.run(None, {"input_ids": np.array([ids], dtype=np.int64)})
    names = [o.name for o in prefill.get_outputs()]
    result = dict(zip(names, outs))
    prefill_s = time.perf_counter() - start
    tokens = []
    t0 = time.perf_counter()
    for step in range(new_tokens):
        nxt = int(np.argmax(result["logits"][0, -1]))
        tokens.append(nxt)
        if step == new_tokens - 1:
            break
        feed = {"input_ids": np.array([[nxt]], dtype=np.int64)}
        for l in range(layers):
            for k in kinds:
                feed[f"past.{l}.{k}"] = result[f"present.{l}.{k}"]
        outs = decode.run(None, feed)
        result = dict(zip([o.name for o in decode.get_outputs()], outs))
    decode_s = time.perf_counter() - t0
    return tokens, prefill_s, decode_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--prompt", default="What is 2 + 3?")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.checkpoint)
    ids = tok.apply_chat_template([{"role": "user", "content": a.prompt}], add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    ids = list(ids)
    model = AutoModelForCausalLM.from_pretrained(a.checkpoint, dtype=torch.float32).eval()
    layers = model.config.num_hidden_layers
    opts = ort.SessionOptions()
    if a.threads:
        opts.intra_op_num_threads = a.threads
    prefill = ort.InferenceSession(f"{a.onnx}/prefill.onnx", opts, providers=["CPUExecutionProvider"])
    decode = ort.InferenceSession(f"{a.onnx}/decode.onnx", opts, providers=["CPUExecutionProvider"])
    x = torch.tensor([ids])
    with torch.no_grad():
        ref = model(x).logits.float().numpy()
    got = prefill.run(["logits"], {"input_ids": np.array([ids], dtype=np.int64)})[0]
    rel = float(np.abs(got - ref).max() / np.abs(ref).max())

    def hf_generate():
        with torch.no_grad():
            t = time.perf_counter()
            model(x)
            p = time.perf_counter() - t
            t = time.perf_counter()
            out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=a.max_new_tokens,
                                 min_new_tokens=a.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id or 0)
            g = time.perf_counter() - t
        return out[0, len(ids):].tolist(), p, max(g - p, 1e-9)

    runs = {"transformers": [], "onnxruntime": []}
    for r in range(4):
        hf_tokens, hp, hd = hf_generate()
        ox_tokens, op, od = ort_generate(prefill, decode, ids, a.max_new_tokens, layers)
        if r:
            runs["transformers"].append((len(ids) / hp, (len(hf_tokens) - 1) / hd))
            runs["onnxruntime"].append((len(ids) / op, (len(ox_tokens) - 1) / od))
    first_diff = next((i for i, (u, v) in enumerate(zip(hf_tokens, ox_tokens)) if u != v), None)
    report = {
        "checkpoint": a.checkpoint, "prompt_tokens": len(ids), "new_tokens": a.max_new_tokens,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "onnxruntime": ort.__version__,
        "prefill_logits_max_relative_difference": rel,
        "greedy_tokens_equal": hf_tokens == ox_tokens, "first_difference_at": first_diff,
        "transformers_tokens": hf_tokens, "onnx_tokens": ox_tokens,
    }
    for engine, rs in runs.items():
        report[engine] = {"prefill_tokens_per_second": statistics.median(r[0] for r in rs),
                          "decode_tokens_per_second": statistics.median(r[1] for r in rs)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
