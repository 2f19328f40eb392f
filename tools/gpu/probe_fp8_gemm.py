#!/usr/bin/env python3
"""How much of a training step's matmul time float8 GEMMs could take off, before building them.

Issue 12's step at 8 x 2048 spends about 39.6 ms of 82 in bfloat16 GEMMs at ~640 TFLOP/s, near what
cuBLAS reaches on this machine; Hopper's float8 tensor cores run at twice the bfloat16 rate. This
probe times every GEMM of one Falcon-H1 layer of the 291M benchmark model (and its LM head), each
in its three roles of a training step:

  forward   y  = x W^T      [M, K] x [K, N]
  dgrad     dx = dy W       [M, N] x [N, K]
  wgrad     dW = dy^T x     [N, M] x [M, K]

in bfloat16 (torch.mm, the path the fused layer takes) against torch._scaled_mm in float8:
e4m3 forward, e5m2 gradients with e4m3 weights or activations (the hybrid format of
Micikevicius et al. 2022, "FP8 Formats for Deep Learning", section 4), with one scale per tensor,
and e4m3 with one scale per row (rowwise; cuBLAS takes e4m3 only there). _scaled_mm wants its first
operand row-major and its second column-major, so the probe also times the casts a float8 step adds:
each operand's amax, scale and cast, and the transposed copies that dgrad and wgrad read.

Nothing here trains: the figures bound what a float8 linear operator could gain at this size.
  python3 tools/gpu/probe_fp8_gemm.py [--rows 8] [--seq 2048] [--out probe.json]
"""
import argparse
import json
import statistics

import torch

import bench_model  # tools/gpu, beside this script: the dimensions of the model bench-train runs

E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2


def layer_gemms(hidden, intermediate, d_ssm, groups, state, m_heads, heads, kv_heads, head_dim):
    """(name, K, N) of each linear layer of one decoder layer, as FalconH1FusedLayer.torchscript runs them."""
    in_proj = 2 * d_ssm + 2 * groups * state + m_heads
    qkv = (heads + 2 * kv_heads) * head_dim
    return [
        ("in_proj + qkv (linear_pair)", hidden, in_proj + qkv),
        ("o_proj", heads * head_dim, hidden),
        ("mamba out_proj", d_ssm, hidden),
        ("gate + up (linear_pair)", hidden, 2 * intermediate),
        ("down_proj", intermediate, hidden),
    ]


def timed(fn, warmup, iters):
    """Median milliseconds of fn over iters CUDA-event-timed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def to_fp8(t, dtype):
    """Tensorwise scaling: amax / scale / cast, as a float8 linear layer would do each step."""
    amax = t.abs().amax().float().clamp(min=1e-12)
    scale = torch.finfo(dtype).max / amax
    return (t.float() * scale).to(dtype), scale.reciprocal()


def to_fp8_rowwise(t):
    amax = t.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12)
    scale = torch.finfo(E4M3).max / amax
    return (t.float() * scale).to(E4M3), scale.reciprocal()


def roles(m, k, n):
    """(role, rows, inner, cols, first operand's float8 type, second's) of a linear layer's three GEMMs."""
    return [("forward", m, k, n, E4M3, E4M3),
            ("dgrad", m, n, k, E5M2, E4M3),
            ("wgrad", n, m, k, E5M2, E4M3)]


def probe(m, k, n, warmup, iters, fast_accum):
    results = []
    for role, rows, inner, cols, a_type, b_type in roles(m, k, n):
        a = torch.randn(rows, inner, device="cuda", dtype=torch.bfloat16)
        b_rows = torch.randn(cols, inner, device="cuda", dtype=torch.bfloat16)  # b^T row-major = b column-major
        b = b_rows.t()
        flops = 2.0 * rows * inner * cols
        bf16 = timed(lambda: torch.mm(a, b), warmup, iters)
        a8, sa = to_fp8(a, a_type)
        b8r, sb = to_fp8(b_rows, b_type)
        b8 = b8r.t()
        tensorwise = timed(lambda: torch._scaled_mm(a8, b8, sa, sb, out_dtype=torch.bfloat16,
                                                    use_fast_accum=fast_accum and role == "forward"),
                           warmup, iters)
        a8r, sar = to_fp8_rowwise(a)
        b8rr, sbr = to_fp8_rowwise(b_rows)
        rowwise = timed(lambda: torch._scaled_mm(a8r, b8rr.t(), sar, sbr.t(), out_dtype=torch.bfloat16,
                                                 use_fast_accum=fast_accum and role == "forward"),
                        warmup, iters)
        # what each float8 GEMM's operands cost to make from bfloat16 with plain torch (an upper
        # bound: a fused kernel does the amax, cast and transposed copy in one or two passes)
        cast = timed(lambda: (to_fp8(a, a_type), to_fp8(b_rows, b_type)), warmup, iters)
        bytes_moved = 2 * (a.numel() + b_rows.numel()) + (a.numel() + b_rows.numel())
        # the step's own wgrad: bfloat16 operands summed into the float32 master's .grad (the C operand)
        into_float32 = None
        if role == "wgrad":
            grad = torch.zeros(rows, cols, device="cuda")
            try:
                into_float32 = timed(lambda: torch.addmm(grad, a, b, out_dtype=torch.float32), warmup, iters)
            except (TypeError, RuntimeError) as e:
                print(f"  (no float32-output addmm in this torch: {e})")
        results.append({"bf16_into_float32_ms": into_float32,"role": role, "m": rows, "k": inner, "n": cols,
                        "bf16_ms": bf16, "bf16_tflops": flops / bf16 / 1e9,
                        "fp8_tensorwise_ms": tensorwise, "fp8_tensorwise_tflops": flops / tensorwise / 1e9,
                        "fp8_rowwise_ms": rowwise, "fp8_rowwise_tflops": flops / rowwise / 1e9,
                        "torch_cast_ms": cast, "cast_bytes_min": bytes_moved})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--conf", default=str(bench_model.CONF), help="the pipeline whose model block gives the shapes")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--no-fast-accum", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("probe_fp8_gemm.py: needs a CUDA GPU (float8 tensor cores: sm_89 or newer)")
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) < (8, 9):
        raise SystemExit(f"probe_fp8_gemm.py: {torch.cuda.get_device_name()} is sm_{major}{minor}; float8 GEMMs need sm_89+")
    m = args.rows * args.seq
    model = bench_model.dimensions(args.conf)
    layers, hidden, vocab = model["num-hidden-layers"], model["hidden-size"], model["vocab-size"]
    gemms = layer_gemms(hidden, model["intermediate-size"], model["mamba-d-ssm"], model["mamba-n-groups"],
                        model["mamba-d-state"], model["mamba-n-heads"], model["num-attention-heads"],
                        model["num-key-value-heads"], model["head-dim"])
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "tokens": m,
              "layers": layers, "conf": args.conf, "fast_accum_forward": not args.no_fast_accum, "gemms": []}
    totals = {"bf16_ms": 0.0, "fp8_tensorwise_ms": 0.0, "fp8_rowwise_ms": 0.0, "torch_cast_ms": 0.0}
    print(f"{report['device']}, torch {torch.__version__}, {m} tokens a step, {layers} layers")
    print(f"{'GEMM':30} {'role':8} {'M x K x N':>20} {'bf16 ms':>8} {'TF/s':>5} {'fp8 t ms':>8} {'TF/s':>5}"
          f" {'fp8 r ms':>8} {'TF/s':>5} {'cast ms':>7}")
    shapes = [(name, m, k, n, layers) for name, k, n in gemms]
    shapes.append(("LM head", m, hidden, vocab, 1))   # a training step makes all its logits at once
    for name, rows, k, n, count in shapes:
        for r in probe(rows, k, n, args.warmup, args.iters, not args.no_fast_accum):
            r["gemm"] = name
            r["per_step"] = count
            report["gemms"].append(r)
            for key in totals:
                totals[key] += r[key] * count
            print(f"{name:30} {r['role']:8} {r['m']:>6} x {r['k']:>5} x {r['n']:>5} {r['bf16_ms']:8.3f}"
                  f" {r['bf16_tflops']:5.0f} {r['fp8_tensorwise_ms']:8.3f} {r['fp8_tensorwise_tflops']:5.0f}"
                  f" {r['fp8_rowwise_ms']:8.3f} {r['fp8_rowwise_tflops']:5.0f} {r['torch_cast_ms']:7.3f}")
    report["per_step_ms"] = totals
    wgrad = [(r["bf16_ms"], r["bf16_into_float32_ms"], r["per_step"]) for r in report["gemms"]
             if r["role"] == "wgrad" and r["bf16_into_float32_ms"] is not None]
    if wgrad:
        report["wgrad_bf16_ms"] = sum(b * n for b, _, n in wgrad)
        report["wgrad_into_float32_ms"] = sum(f * n for _, f, n in wgrad)
        print(f"wgrad GEMMs a step: {report['wgrad_bf16_ms']:.2f} ms into bfloat16, "
              f"{report['wgrad_into_float32_ms']:.2f} ms summed into float32 .grad (the step's way)")
    print("a step's GEMMs (every layer and the head): bf16 {bf16_ms:.1f} ms, fp8 tensorwise "
          "{fp8_tensorwise_ms:.1f} ms, fp8 rowwise {fp8_rowwise_ms:.1f} ms; torch's casts for them "
          "{torch_cast_ms:.1f} ms".format(**totals))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
