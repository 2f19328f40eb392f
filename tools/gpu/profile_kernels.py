"""Profiles one fused operator's forward + backward at the 291M benchmark shapes with torch.profiler
and prints the CUDA kernels by total time: where each operator spends its time.

    python3 tools/gpu/profile_kernels.py LIBRARY.so [ssd|head|all] [--rows 8] [--chunks 64,128,256]

With --chunks, it also times the SSD scan's forward + backward at each chunk length: the scan's
result does not depend on the chunk length (Dao & Gu 2024, section 6: chunking only regroups the
same sums), so the operator may use whichever is fastest.
"""
import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from test_kernels import ssd_benchmark_inputs

parser = argparse.ArgumentParser()
parser.add_argument("library")
parser.add_argument("which", nargs="?", default="all")
parser.add_argument("--rows", type=int, default=8)
parser.add_argument("--chunks", default="")
args = parser.parse_args()
torch.ops.load_library(args.library)
x, dt, a, bm, cm = ssd_benchmark_inputs(args.rows)
b, t, bf = args.rows, 2048, torch.bfloat16
hid = torch.randn(b * t, 1024, device="cuda", dtype=bf, requires_grad=True)
head = (torch.randn(32768, 1024, device="cuda") * 0.02).to(bf).requires_grad_(True)
labels = torch.randint(0, 32768, (b * t,), device="cuda")
work = {
    "ssd": lambda: torch.ops.anneal.ssd_scan(x, dt, a, bm, cm, None, 128).sum().backward(),
    "head": lambda: torch.ops.anneal.lm_head_cross_entropy(hid, head, labels, 1.0, 4096)[0].sum().backward(),
}
for name, fn in work.items():
    if args.which not in ("all", name):
        continue
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
    print(f"== {name}: 5 x forward + backward")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=90))

if args.chunks:
    reference = None
    for chunk in [int(c) for c in args.chunks.split(",")]:
        run = lambda: torch.ops.anneal.ssd_scan(x, dt, a, bm, cm, None, chunk)
        for _ in range(3):
            run().sum().backward()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(10):
            run().sum().backward()
        end.record()
        torch.cuda.synchronize()
        y = run().detach().float()
        reference = y if reference is None else reference
        error = ((y - reference).abs().max() / reference.abs().max()).item()
        print(f"ssd_scan chunk {chunk}: {start.elapsed_time(end) / 10:.2f} ms forward + backward, "
              f"max rel. difference to the first chunk length {error:.2e}, "
              f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
