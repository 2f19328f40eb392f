#!/usr/bin/env python3
"""Time transformers' FalconH1ForCausalLM on the benchmark model, the PyTorch side of Anneal's
GPU benchmarks (issue 4 item 6, issue 6 item 5), in the same run as the Java side.

Two paths of the same model:
  torch path: transformers without mamba_ssm / causal_conv1d (its reference PyTorch mixer)
  fast path:  with the peer kernels (source .gpu/peer/setup.sh first: PYTHONPATH gets them)
The script reports which path transformers actually took.

Measures, for --batch x --seq tokens per step:
  fwd_bwd:  forward + backward (the hybrid issue's figure)
  step:     forward + backward + fused AdamW step (the trainer issue's figure)
in float16 autocast with a GradScaler (DJL cannot use bfloat16, so this is the like-for-like
precision), plus the float16 8192^3 matmul rate measured in the same process, and peak memory
(torch.cuda.max_memory_allocated). Writes one JSON object to --out.
"""
import argparse
import json
import time

import torch


def benchmark_config():
    from transformers import FalconH1Config
    # The benchmark model of issue 4: hidden 1024, 12 layers, vocab 32768, intermediate 3072,
    # 16 heads / 4 KV heads (head_dim 64), Mamba2 d_ssm 2048 in 32 heads of 64, d_state 128,
    # 1 group, chunk 128, untied head.
    return FalconH1Config(vocab_size=32768, hidden_size=1024, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=16, num_key_value_heads=4, head_dim=64, mamba_d_ssm=2048,
                          mamba_n_heads=32, mamba_d_head=64, mamba_d_state=128, mamba_n_groups=1,
                          mamba_chunk_size=128, mamba_d_conv=4, tie_word_embeddings=False,
                          max_position_embeddings=8192)


def matmul_tflops(n=8192, iters=20):
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * iters / (time.perf_counter() - t) / 1e12


def kernels_importable():
    """transformers takes its fast path when both kernel packages import (it logs a fallback otherwise)."""
    try:
        import causal_conv1d  # noqa: F401
        import mamba_ssm.ops.triton.ssd_combined  # noqa: F401
        return True
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--label", default="transformers")
    ap.add_argument("--weights", choices=["float32", "bfloat16"], default="float32",
                    help="bfloat16 weights for the fast path, whose Triton SSD backward needs matching dtypes")
    ap.add_argument("--autocast", choices=["float16", "bfloat16"], default="float16",
                    help="bfloat16 for the fast path: its Triton backward rejects float16 with float32 weights")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from transformers import FalconH1ForCausalLM

    torch.manual_seed(0)
    config = benchmark_config()
    config._attn_implementation = "sdpa"
    model = FalconH1ForCausalLM(config).cuda().float().train()
    if args.weights == "bfloat16":
        model = model.to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    fast = kernels_importable()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0, fused=True)
    amp_dtype = torch.float16 if args.autocast == "float16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=args.autocast == "float16")
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device="cuda")
    result = {"label": args.label, "fast_path": fast, "parameters": params, "batch": args.batch, "seq": args.seq,
              "precision": args.weights + " weights, " + args.autocast + " autocast" + (" + GradScaler" if args.autocast == "float16" else ""), "transformers_path": "fast (mamba_ssm + causal_conv1d)" if fast else "torch"}

    def fwd_bwd():
        with torch.autocast("cuda", dtype=amp_dtype):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        scaler.scale(loss).backward()
        return loss

    def step():
        loss = fwd_bwd()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss

    try:
        for name, fn in (("fwd_bwd", fwd_bwd), ("step", step)):
            for _ in range(args.warmup):
                fn()
                opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            for _ in range(args.steps):
                fn()
                if name == "fwd_bwd":
                    opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            dt = (time.perf_counter() - t) / args.steps
            tps = args.batch * args.seq / dt
            result[name] = {"seconds_per_step": dt, "tokens_per_second": tps,
                            "model_tflops": 6 * params * tps / 1e12,
                            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
                            # what nvidia-smi shows (Anneal's bench-train figure): the allocator's
                            # reserved pool plus the CUDA context, the whole device's use
                            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2 ** 30,
                            "device_used_gib": (lambda free_total: (free_total[1] - free_total[0]) / 2 ** 30)(
                                torch.cuda.mem_get_info())}
    except torch.OutOfMemoryError as e:
        result["error"] = "out of memory: " + str(e).splitlines()[0]
    del model, opt
    torch.cuda.empty_cache()
    result["fp16_matmul_tflops"] = matmul_tflops()
    for name in ("fwd_bwd", "step"):
        if name in result:
            result[name]["fraction_of_fp16_matmul"] = result[name]["model_tflops"] / result["fp16_matmul_tflops"]
    print(json.dumps(result, indent=2))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
