"""The fused path's GPU work without the JVM: the same TorchScript layer source that Anneal compiles
(FalconH1FusedLayer.torchscript, in the archive form TorchScriptArchive.java writes) and the same
operator library, driven from Python at the 291M benchmark shapes. Times 12 layers + the LM head,
forward and backward (and a fused AdamW step over the float32 master weights), and lists the CUDA
kernels by total time, grouped by kind: what a training step is made of on the GPU, and the floor
a host-free step of this arithmetic reaches.

    python3 tools/gpu/profile_layers.py LIBRARY.so [--rows 8] [--shapes] [--graphed] [--out F.json]
        [--source LAYER.torchscript] [--chunk 128] [--top 80] [--sdp cudnn|flash|efficient]
        [--memory]

(--memory: the caching allocator's trace of one eager step: where its allocated peak falls, and what
is alive there by the phase that allocated it: each layer's forward and backward, the LM head's, the
optimizer.)

(--chunk: the SSD's chunk length, the model's 128 by default: the scan's result does not depend on it
(Dao & Gu 2024, section 6), its cost does. --top: how many kernels the JSON keeps, by time.)
(--graphed: the same step also captured as one CUDA graph and replayed, as Anneal's GraphedStep
replays it: the graphed step less the kernels' sum is what the launches cost between kernels, the
gaps that only fewer kernels take back.)
(--sdp: the only attention backend scaled_dot_product_attention may take, to time the others
against the one torch picks, cuDNN's on the H200; the layer's causal call with enable_gqa.)
(--source: another version of the layer, e.g. `git show HEAD:<path> > before.torchscript`, to compare
a change to the TorchScript with the committed one in one GPU call.)

(A first run measured two changes as rewrites of this source before they were made: keys and
values shared through enable_gqa instead of repeat_interleave saved 1.5 ms of a 184 ms step at
8 x 2048, the output gate in bfloat16 3.4 ms; docs/benchmarks/2026-12-02-h200-step-kernels.)
"""
import argparse
import io
import json
import os
import re
import struct
import sys
import time
import zipfile
from collections import defaultdict
from pathlib import Path

# cuBLAS without its workspace, as bin/anneal runs the JVM's step (a setting of your own is kept);
# read when torch makes its first cuBLAS handle
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":0:0")
import torch  # noqa: E402 (after the environment it reads)
import bench_model  # noqa: E402 (tools/gpu, beside this script)
import memory_trace  # noqa: E402 (tools/gpu, beside this script)
from torch.profiler import ProfilerActivity, profile

SOURCE = Path(__file__).resolve().parents[2] / (
    "plugin-ssm-hybrid/src/main/resources/io/anneal/hybrid/model/FalconH1FusedLayer.torchscript")

# the model bench-train runs (examples/bench/falcon-h1-291m.conf)
_MODEL = bench_model.dimensions()
HIDDEN, INTER, LAYERS = _MODEL["hidden-size"], _MODEL["intermediate-size"], _MODEL["num-hidden-layers"]
HEADS, KV, HEAD_DIM = _MODEL["num-attention-heads"], _MODEL["num-key-value-heads"], _MODEL["head-dim"]
D_SSM, M_HEADS, M_HEAD_DIM = _MODEL["mamba-d-ssm"], _MODEL["mamba-n-heads"], _MODEL["mamba-d-head"]
STATE, GROUPS, CONV = _MODEL["mamba-d-state"], _MODEL["mamba-n-groups"], _MODEL["mamba-d-conv"]
CHUNK, VOCAB = _MODEL["mamba-chunk-size"], _MODEL["vocab-size"]
CONV_DIM = D_SSM + 2 * GROUPS * STATE


# tokens per chunk of the LM head without gradients (TorchScriptLayers.HEAD_CHUNK); a training step's
# head makes all its logits at once, so the profiles here never take it
HEAD_CHUNK = 4096


# model.branch-stream as the layer's branch_streams attribute (FusedLayerOptions.BranchStream)
BRANCH_STREAMS = {"none": 0, "attention": 1, "mamba": 2}


def attributes(chunk=CHUNK, recompute=True, branch="none", keep_casts=False):
    # the order of the class's declarations, as TorchScriptLayers.attributes writes them
    return [("training", True), ("half", True), ("heads", HEADS), ("kv_heads", KV), ("head_dim", HEAD_DIM),
            ("d_ssm", D_SSM), ("conv_dim", CONV_DIM), ("m_heads", M_HEADS), ("m_head_dim", M_HEAD_DIM),
            ("groups", GROUPS), ("state", STATE), ("conv_kernel", CONV), ("eps", 1e-5),
            ("attention_in", 1.0), ("attention_out", 1.0), ("key_multiplier", 1.0), ("ssm_in", 1.0),
            ("ssm_out", 1.0), ("mlp_gate", 1.0), ("mlp_down", 1.0), ("mamba_rms_norm", False),
            ("norm_before_gate", True), ("dt_low", 0.0), ("dt_high", 3.4028234663852886e38),
            ("clip_dt", False), ("ssd_chunk", chunk), ("ssd_recompute", recompute),
            ("branch_streams", BRANCH_STREAMS[branch]), ("keep_casts", keep_casts), ("lm_head", 1.0),
            ("head_chunk", HEAD_CHUNK)]


def declared(source, class_name="FalconH1Layer"):
    """The attribute names the class declares (`  name : type` lines), in order."""
    body = source.split(f"class {class_name}", 1)[1]
    return re.findall(r"^  (\w+) : \w+\s*$", body.split("\n  def ", 1)[0], re.MULTILINE)


def module_pickle(class_name, attrs):
    """Pickle protocol 2 of __torch__.<class>() with its attribute dict (TorchScriptArchive.modulePickle)."""
    out = bytearray(b"\x80\x02" + f"c__torch__\n{class_name}\n".encode() + b")\x81}(")
    for key, value in attrs:
        k = key.encode()
        out += b"X" + struct.pack("<i", len(k)) + k
        if isinstance(value, bool):
            out += b"\x88" if value else b"\x89"
        elif isinstance(value, int):
            out += b"J" + struct.pack("<i", value)
        else:
            out += b"G" + struct.pack(">d", value)
    return bytes(out + b"ub.")


def compile_layer(source, chunk=CHUNK, recompute=True, branch="none", keep_casts=False):
    # only the attributes the source declares: --source may be another commit's layer, from before one
    names = declared(source)
    attrs = [(k, v) for k, v in attributes(chunk, recompute, branch, keep_casts) if k in names]
    missing = [k for k in names if k not in dict(attrs)]
    if missing:
        sys.exit(f"profile_layers.py: the layer declares attributes this script does not set: {missing}")
    if not recompute and "ssd_recompute" not in names:
        sys.exit("profile_layers.py: --keep-ssd needs a layer that declares ssd_recompute")
    if branch != "none" and "branch_streams" not in names:
        sys.exit("profile_layers.py: --branch-stream needs a layer that declares branch_streams")
    if keep_casts and "keep_casts" not in names:
        sys.exit("profile_layers.py: --keep-weight-casts needs a layer that declares keep_casts")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data.pkl", module_pickle("FalconH1Layer", attrs))
        z.writestr("archive/constants.pkl", b"\x80\x02).")
        z.writestr("archive/code/__torch__.py", source)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="cuda")


def layer_weights(g):
    def p(*shape, scale=0.02):
        return (torch.randn(*shape, device="cuda", generator=g) * scale).requires_grad_(True)
    w = {
        "input_layernorm.weight": torch.ones(HIDDEN, device="cuda", requires_grad=True),
        "pre_ff_layernorm.weight": torch.ones(HIDDEN, device="cuda", requires_grad=True),
        "feed_forward.gate_proj.weight": p(INTER, HIDDEN), "feed_forward.up_proj.weight": p(INTER, HIDDEN),
        "feed_forward.down_proj.weight": p(HIDDEN, INTER),
        "self_attn.q_proj.weight": p(HEADS * HEAD_DIM, HIDDEN), "self_attn.k_proj.weight": p(KV * HEAD_DIM, HIDDEN),
        "self_attn.v_proj.weight": p(KV * HEAD_DIM, HIDDEN), "self_attn.o_proj.weight": p(HIDDEN, HEADS * HEAD_DIM),
        "mamba.in_proj.weight": p(D_SSM + CONV_DIM + M_HEADS, HIDDEN),
        "mamba.conv1d.weight": p(CONV_DIM, 1, CONV, scale=0.3), "mamba.conv1d.bias": p(CONV_DIM),
        "mamba.dt_bias": p(M_HEADS, scale=0.5), "mamba.A_log": p(M_HEADS, scale=0.5),
        "mamba.D": torch.ones(M_HEADS, device="cuda", requires_grad=True),
        "mamba.out_proj.weight": p(HIDDEN, D_SSM),
    }
    return w


def rope(t):
    inv = 1.0 / (1e11 ** (torch.arange(0, HEAD_DIM, 2, device="cuda", dtype=torch.float32) / HEAD_DIM))
    freqs = torch.outer(torch.arange(t, device="cuda", dtype=torch.float32), inv)
    emb = torch.cat([freqs, freqs], -1)[None, None]
    return emb.cos(), emb.sin()


def kind(name):
    n = name.lower()
    if "flash" in n or "fmha" in n or "attention" in n:
        return "attention (sdpa)"
    if any(s in n for s in ("gemm", "cutlass", "sm90_xmma", "nvjet", "ampere_", "sm80_", "cublas", "splitk")):
        return "matmul (cuBLAS/CUTLASS)"
    if "anneal" in n or "row_scale" in n or "ssd" in n or "conv1d" in n or "head_" in n or "rms" in n and "anneal" in n:
        return "Anneal kernels"
    if "adam" in n or "multi_tensor" in n:
        return "optimizer"
    if "copy" in n or "cat" in n:
        return "copies / casts / cat"
    if "reduce" in n:
        return "reductions"
    if "elementwise" in n or "vectorized" in n:
        return "element-wise (ATen)"
    return "other"


COPYING = ("copy_", "_to_copy", "cat", "clone", "contiguous", "index", "repeat", "fill_", "zero_", "add_")


def annotation(event):
    """Whether a CUDA-side profiler event is a range around other work (torch.optim's
    "Optimizer.step#AdamW.step"), not a kernel: counted as one, it put the optimizer's kernels twice
    into the per-step totals (4.9 ms where its kernels took 2.6 ms)."""
    return getattr(event, "is_user_annotation", False) or event.key.startswith("Optimizer.")


# Kernels a step launches many times for little work each: in a graph every launch also costs a gap
# of about 1.7 us (86.4 ms graphed against 82.5 ms of kernels at 8 x 2048, 2,239 kernels a step).
SMALL_KERNELS = {"memsets": lambda n: n.startswith("Memset"),
                 "float32 additions": lambda n: "CUDAFunctor_add<float>" in n,
                 "fills": lambda n: "FillFunctor" in n}


def launch_sources(prof, wanted, depth=3):
    """[(the launching operator and up to depth - 1 of its callers, kernels launched, their us)] for
    the kernels whose name `wanted` accepts, most launches first."""
    counts = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        launched = [k for k in getattr(e, "kernels", []) if wanted(k.name)]
        if not launched:
            continue
        chain, parent = [], e
        while parent is not None and len(chain) < depth:
            chain.append(parent.name)
            parent = parent.cpu_parent
        counts[" < ".join(chain)][0] += len(launched)
        counts[" < ".join(chain)][1] += sum(k.duration for k in launched)
    return sorted(counts.items(), key=lambda kv: -kv[1][0])


def covered_us(spans):
    """The length of the union of [start, end) intervals: the time the device ran at least one kernel.
    Kernels of two streams that overlap (model.branch-stream, -DANNEAL_WGRAD_STREAM=1) count once, where
    the sum of kernel times counts both."""
    busy, start, end = 0.0, None, None
    for s, t in sorted(spans):
        if end is None or s > end:
            if end is not None:
                busy += end - start
            start, end = s, t
        else:
            end = max(end, t)
    return busy if end is None else busy + end - start


def device_spans(prof):
    """[(start, end)] in us of the profile's device-side events (kernels, copies, memsets), without the
    ranges that annotate other work."""
    return [(e.time_range.start, e.time_range.end) for e in prof.events()
            if e.device_type == torch.autograd.DeviceType.CUDA and not annotation(e)
            and e.time_range.end > e.time_range.start]


PHASES = []   # --memory's phase labels, in the order their markers were allocated (memory_trace.py)


def mark(label):
    PHASES.append(label)
    del_me = torch.empty(memory_trace.marker_bytes(len(PHASES) - 1), dtype=torch.uint8, device="cuda")
    del del_me


def captured(step, warmups=3, before_capture=lambda: None):
    """step captured as one CUDA graph, after `warmups` eager runs on a side stream (as
    torch.cuda.graphs' documentation asks); before_capture runs between them (e.g. to make the
    static tensors the graph will write)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmups):
            step()
    torch.cuda.current_stream().wait_stream(side)
    before_capture()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


def graphed_seconds(step, steps):
    """Seconds a step takes captured as one CUDA graph and replayed."""
    graph = captured(step)
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("library")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out")
    ap.add_argument("--source", default=str(SOURCE), help="the fused layer's TorchScript (default: the tree's)")
    ap.add_argument("--chunk", type=int, default=CHUNK, help="the SSD chunk length (default: the model's)")
    ap.add_argument("--keep-ssd", action="store_true",
                    help="the scan keeps its intermediates for backward (model.ssd-recompute = false)")
    ap.add_argument("--branch-stream", choices=list(BRANCH_STREAMS), default="none",
                    help="the mixer on a second stream beside the other (model.branch-stream)")
    ap.add_argument("--keep-weight-casts", action="store_true",
                    help="the linear layers keep their weights' casts for the backward (model.keep-weight-casts)")
    ap.add_argument("--top", type=int, default=80, help="kernels kept in the JSON, by time")
    ap.add_argument("--graphed", action="store_true",
                    help="also time the step captured as one CUDA graph (the launches' gaps: graphed less kernels)")
    ap.add_argument("--sdp", choices=["cudnn", "flash", "efficient"],
                    help="allow only this attention backend (default: torch's choice)")
    ap.add_argument("--memory", action="store_true",
                    help="record the allocator's trace of one step and report where its peak falls and what is alive there")
    ap.add_argument("--trace", metavar="FILE.json.gz",
                    help="write the profiled steps' Chrome trace (chrome://tracing, Perfetto): where kernels "
                         "of two streams overlap, as model.branch-stream and -DANNEAL_WGRAD_STREAM=1 intend")
    ap.add_argument("--shapes", action="store_true",
                    help="also list the copying operators (copy_, cat, clone, ...) by device time and input shapes")
    ap.add_argument("--allocator", metavar="SETTINGS",
                    help="the caching allocator's settings, as PYTORCH_CUDA_ALLOC_CONF takes them (bin/anneal's "
                         "default: expandable_segments:True); e.g. graph_capture_record_stream_reuse:True (torch 2.9+), "
                         "which lets a capture reuse blocks that --branch-stream marks as read on two streams")
    ap.add_argument("--cublas-workspace", metavar="CONFIG",
                    help="cuBLAS's workspace, as CUBLAS_WORKSPACE_CONFIG takes it (default :0:0, bin/anneal's); e.g. "
                         ":4096:8. Without one, cuBLASLt's float8 GEMMs get none either (torch warns that the 1 MiB "
                         "it asks for exceeds 0): this times the step both ways")
    args = ap.parse_args()
    if args.cublas_workspace:   # read when torch makes its first cuBLAS handle, after this
        if torch.cuda.is_initialized():
            sys.exit("profile_layers.py: --cublas-workspace comes too late: CUDA has started already")
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = args.cublas_workspace
    if args.allocator:   # read by the caching allocator when CUDA starts, after this (nothing here has used it yet)
        if torch.cuda.is_initialized():
            sys.exit("profile_layers.py: --allocator comes too late: CUDA has started already")
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = args.allocator
    torch.ops.load_library(args.library)
    if args.sdp:
        torch.backends.cuda.enable_cudnn_sdp(args.sdp == "cudnn")
        torch.backends.cuda.enable_flash_sdp(args.sdp == "flash")
        torch.backends.cuda.enable_mem_efficient_sdp(args.sdp == "efficient")
        torch.backends.cuda.enable_math_sdp(False)  # a backend that cannot take the call fails, not falls back
    g = torch.Generator(device="cuda").manual_seed(0)
    weights = [layer_weights(g) for _ in range(LAYERS)]
    norm = torch.ones(HIDDEN, device="cuda", requires_grad=True)
    head = (torch.randn(VOCAB, HIDDEN, device="cuda", generator=g) * 0.02).requires_grad_(True)
    params = [t for w in weights for t in w.values()] + [norm, head]
    # capturable: the step count on the device, as Anneal's DeviceStep keeps it (a CUDA graph needs it)
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=True, capturable=args.graphed)
    b, t = args.rows, args.seq
    embed = torch.randn(b, t, HIDDEN, device="cuda", generator=g, requires_grad=True)
    labels = torch.randint(0, VOCAB, (b, t), device="cuda", generator=g)
    cos, sin = rope(t)
    results = {"rows": b, "sequence_length": t, "ssd_chunk": args.chunk, "ssd_recompute": not args.keep_ssd,
               "branch_stream": args.branch_stream, "keep_weight_casts": args.keep_weight_casts,
               "allocator": args.allocator or "default", "cublas_workspace": os.environ["CUBLAS_WORKSPACE_CONFIG"],
               "sdp": args.sdp or "default", "variants": {}}
    for name in ["fused"]:
        layer = compile_layer(Path(args.source).read_text(), args.chunk, not args.keep_ssd, args.branch_stream,
                              args.keep_weight_casts)
        marking = [False]

        def step():
            h = embed
            for i, w in enumerate(weights):
                if marking[0]:
                    mark(f"forward, layer {i}")
                h = layer.forward(h, w, cos, sin)
                if marking[0]:  # runs when backward reaches this layer's output
                    h.register_hook(lambda grad, i=i: mark(f"backward, layer {i}"))
            if marking[0]:
                mark("head, forward")
            log_prob, _, _ = layer.head(h, norm, head, labels)
            if marking[0]:
                log_prob.register_hook(lambda grad: mark("head, backward"))
            (-log_prob.sum() / (b * t) * 1024.0).backward()
            if marking[0]:
                mark("optimizer")
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        if args.memory:
            torch.cuda.reset_peak_memory_stats()
            baseline = torch.cuda.memory_allocated()
            torch.cuda.memory._record_memory_history(max_entries=1_000_000, stacks="python")
            marking[0] = True
            step()
            marking[0] = False
            torch.cuda.synchronize()
            trace = torch.cuda.memory._snapshot()["device_traces"][torch.cuda.current_device()]
            torch.cuda.memory._record_memory_history(enabled=None)
            results["memory"] = memory_trace.report(trace, baseline, PHASES)
            memory_trace.print_report(results["memory"])
            results["memory"]["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
            results["memory"]["max_memory_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2 ** 20, 1)
            print(f"   (torch's own figures for that step: peak allocated {results['memory']['max_memory_allocated_mib']:,.0f} MiB,"
                  f" reserved {results['memory']['max_memory_reserved_mib']:,.0f} MiB)")
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / args.steps
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=args.shapes) as prof:
            for _ in range(2):
                step()
            torch.cuda.synchronize()
        if args.trace:
            prof.export_chrome_trace(args.trace)
        kernels = defaultdict(lambda: [0.0, 0])
        for e in prof.key_averages():
            if e.device_type == torch.autograd.DeviceType.CUDA and e.self_device_time_total > 0 and not annotation(e):
                kernels[e.key][0] += e.self_device_time_total / 2 / 1000.0  # ms per step
                kernels[e.key][1] += e.count // 2
        by_kind = defaultdict(float)
        for k, (ms, _) in kernels.items():
            by_kind[kind(k)] += ms
        total = sum(by_kind.values())
        launches = sum(calls for _, calls in kernels.values())
        top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:args.top]
        results["variants"][name] = {
            "seconds_per_step": seconds, "tokens_per_second": b * t / seconds,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2 ** 30,
            "kernel_ms_per_step": total, "launches_per_step": launches,
            "by_kind_ms": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
            "top_kernels": [{"name": k[:160], "ms": round(v[0], 3), "calls": v[1]} for k, v in top]}
        r = results["variants"][name]
        try:   # the device's busy time: below the kernels' sum where streams overlap
            r["device_busy_ms_per_step"] = covered_us(device_spans(prof)) / 2 / 1000.0
            busy = f" (the device busy {r['device_busy_ms_per_step']:.1f} ms: " \
                   f"{total - r['device_busy_ms_per_step']:.1f} ms of them overlap)"
        except Exception as e:  # noqa: BLE001 - an older profiler's events differ; say so and go on
            busy = f" (busy time not available: {type(e).__name__}: {e})"
        print(f"== {name} (SSD chunk {args.chunk}): {seconds * 1e3:.1f} ms/step, {r['tokens_per_second']:,.0f} tokens/s, "
              f"kernels {total:.1f} ms in {launches} launches{busy}, peak allocated {r['peak_allocated_gib']:.1f} GiB, "
              f"reserved {r['peak_reserved_gib']:.1f} GiB")
        for k, ms in r["by_kind_ms"].items():
            print(f"   {ms:8.2f} ms  {k}")
        for item in r["top_kernels"][:25]:
            print(f"   {item['ms']:8.3f} ms {item['calls']:5d} x {item['name'][:110]}")
        if args.shapes:
            copies = [e for e in prof.key_averages(group_by_input_shape=True)
                      if e.device_type == torch.autograd.DeviceType.CPU and e.self_device_time_total > 0
                      and any(n in e.key for n in COPYING)]
            copies.sort(key=lambda e: -e.self_device_time_total)
            r["copying_operators"] = [{"name": e.key, "shapes": str(e.input_shapes)[:200],
                                       "ms": round(e.self_device_time_total / 2 / 1000.0, 3), "calls": e.count // 2}
                                      for e in copies[:40]]
            print("   copying operators by device time (ms per step, calls, input shapes):")
            for item in r["copying_operators"]:
                print(f"   {item['ms']:8.3f} ms {item['calls']:5d} x {item['name']} {item['shapes'][:150]}")
            # where the many small kernels come from (a report only: the profile stands without it)
            try:
                r["small_kernel_sources"] = {}
                for label, wanted in SMALL_KERNELS.items():
                    sources = launch_sources(prof, wanted)[:15]
                    r["small_kernel_sources"][label] = [
                        {"launched_by": k, "per_step": n // 2, "us_per_step": round(us / 2, 1)} for k, (n, us) in sources]
                    print(f"   {label} a step, by the operator that launched them (< its callers):")
                    for item in r["small_kernel_sources"][label]:
                        print(f"   {item['per_step']:5d} x {item['us_per_step']:8.1f} us  {item['launched_by'][:150]}")
            except Exception as e:  # noqa: BLE001 - an older profiler's events differ; say so and go on
                print(f"   small kernels by launching operator: not available ({type(e).__name__}: {e})")
        if args.graphed:
            torch.cuda.reset_peak_memory_stats()
            graphed = graphed_seconds(step, args.steps)
            r["graphed_seconds_per_step"] = graphed
            r["graphed_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
            r["graphed_peak_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2 ** 20, 1)
            print(f"   graphed: peak allocated {r['graphed_peak_allocated_mib']:,.0f} MiB, reserved "
                  f"{r['graphed_peak_reserved_mib']:,.0f} MiB (the warm-up on a side stream and the capture's pool)")
            gap = graphed * 1e3 - total
            print(f"   graphed (one CUDA graph a step): {graphed * 1e3:.1f} ms/step, {b * t / graphed:,.0f} tokens/s; "
                  f"less the kernels: {gap:.1f} ms, {gap / launches * 1e3:.2f} us a launch")
        del layer
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
