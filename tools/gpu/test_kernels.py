"""Tests Anneal's fused operators (torch.ops.anneal.*) against independent references written here
from the formulas, in float64: forward values and every gradient, in float32 (tolerance 1e-5
relative to the reference's largest magnitude) and in bfloat16/float16 (tolerances below, the
rounding of 8- and 11-bit mantissas through a few reductions), with packed rows (several documents
per row) and without. Then times each operator (forward + backward) at the 291M benchmark shapes.

    python3 tools/gpu/test_kernels.py LIBRARY.so [--out results.json]

Exit status 1 when any comparison fails.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}
# The default build (build_info says "float8 forward GEMMs"; -DANNEAL_FP8_FORWARD=0 builds without) runs
# a bfloat16 linear layer's forward GEMM on e4m3 operands with one scale per row: each element of x
# and W is rounded to 3 mantissa bits (within 1/16 of itself), so the outputs of linear, linear_pair
# and silu_mul_linear are held to 8e-2 of their largest value (FP8_BOUND, whichever GEMM runs in float8);
# their gradients are bfloat16 GEMMs as before.
FP8_BOUND = 8e-2
FP8_FORWARD = False   # set by main from the library's build_info
# -DANNEAL_FP8_BACKWARD=1 (build_info: "float8 x-gradient GEMMs") runs their x-gradient GEMMs on e4m3
# operands too (the output gradient's rows and the weight's columns rounded as above), so x's
# gradient, and silu_mul_linear's gate and up gradients computed from it, take the same bound.
FP8_BACKWARD = False  # set by main likewise
# ANNEAL_NORM_FP8, the default build (build_info: "float8 rows from the norms"): rms_norm_keep and add_rms_norm also
# give their bfloat16 output's float8 rows, for linear_pair's x8 (the same bits its own quantisation makes).
NORM_ROWS = False     # set by main likewise
results = {"cases": [], "timings": []}
failures = []


def relative_error(actual, expected):
    expected = expected.double()
    scale = expected.abs().max().item()
    return (actual.double() - expected).abs().max().item() / max(scale, 1e-30)


def compare(name, dtype, pairs, bounds=None):
    """Each pair within the dtype's tolerance, or within its own bound in `bounds` (label -> bound)."""
    # a build with -DANNEAL_WGRAD_STREAM=1 sums weight gradients into .grad on a stream of its own,
    # which the layers' fences join: an operator called alone needs the join before .grad is read
    torch.ops.anneal.wgrad_join(torch.zeros(1, device="cuda"))
    tolerance = TOLERANCE[dtype]
    bounds = bounds or {}
    if dtype == torch.bfloat16 and name.startswith(("linear", "silu_mul_linear")):
        rounded = (("out", "piece") if FP8_FORWARD else ()) + (("dx", "dgate", "dup") if FP8_BACKWARD else ())
        bounds = {**{label: FP8_BOUND for label, _, _ in pairs if label.startswith(rounded)}, **bounds}
    worst = {}
    for label, actual, expected in pairs:
        worst[label] = relative_error(actual, expected)
    record(name, dtype, worst, bounds, tolerance)


def record(name, dtype, errors, bounds, tolerance=None):
    """A case's outcome: each error within its own bound in `bounds`, else within `tolerance`."""
    ok = all(v <= bounds.get(k, tolerance) for k, v in errors.items())
    entry = {"case": name, "dtype": str(dtype)}
    if tolerance is not None:
        entry["tolerance"] = tolerance
    results["cases"].append({**entry, "bounds": bounds, "errors": errors, "ok": ok})
    print(f"{'ok  ' if ok else 'FAIL'} {name:48s} {str(dtype):15s} " + " ".join(f"{k}={v:.1e}" for k, v in errors.items()))
    if not ok:
        failures.append(name + " " + str(dtype))


def documents(batch, time_steps, lengths, device):
    """Per-token document ids of packed rows: row i holds documents of the given lengths, in turn."""
    rows = []
    for b in range(batch):
        ids, doc, at = [], 0, 0
        while at < time_steps:
            n = lengths[(b + doc) % len(lengths)]
            ids += [doc] * min(n, time_steps - at)
            at += n
            doc += 1
        rows.append(ids)
    return torch.tensor(rows, device=device)


def leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


# the ScalarType codes the operators take for a result type (TorchScript's .to(6) etc.)
TYPE_CODE = {torch.float32: 6, torch.float16: 5, torch.bfloat16: 15}


def misaligned_leaf(x):
    """(buffer, view): x's values in a view 8 bytes into a leaf buffer, so its data does not start on
    a 16-byte boundary; the view's gradient is buffer.grad[2:] (a view has no .grad of its own)."""
    (buffer,) = leaves(torch.cat([torch.zeros(2, device=x.device), x.reshape(-1)]))
    return buffer, buffer[2:].view(x.shape)


# ---------------------------------------------------------------- causal conv1d + SiLU
def conv_reference(x, w, bias, seq):
    """out[t] = silu(bias + sum_k w[k] x[t-(K-1)+k]), taps outside t's document left out."""
    k = w.shape[1]
    out = bias.view(1, 1, -1).expand_as(x).clone()
    t = x.shape[1]
    for tap in range(k):
        shift = k - 1 - tap
        if shift >= t:
            continue
        shifted = torch.cat([torch.zeros_like(x[:, :shift]), x[:, :t - shift]], 1)
        if seq is not None and shift > 0:
            same = torch.cat([torch.zeros_like(seq[:, :shift], dtype=torch.bool), seq[:, shift:] == seq[:, :t - shift]], 1)
            shifted = shifted * same.unsqueeze(-1)
        out = out + shifted * w[:, tap]
    return F.silu(out)


def test_conv(dtype, packed, k=4, strided=False, c=40, pieces=None, unused=None):
    """k picks the kernel's register window: 2, 4 (widths 3 and 4) or 8 (5 to 8); with `strided` x
    is a slice of a wider tensor, as the fused layer passes a slice of the input projection. An even
    number of channels takes two channels a thread (one access for both), an odd one one a thread;
    300 channels need two blocks, the second partly filled. With `pieces` the output comes as those
    column pieces (as Mamba's x, B and C), each with a gradient of its own (an odd width takes one
    channel a thread); `unused`: that piece gets none."""
    torch.manual_seed(1)
    b, t = 2, 77
    x = torch.randn(b, t, c, device="cuda")
    w = torch.randn(c, 1, k, device="cuda") * 0.5
    bias = torch.randn(c, device="cuda")
    seq = documents(b, t, [5, 30, 1, 17], "cuda") if packed else None
    xr, wr, br = leaves(x.double(), w.double(), bias.double())
    ref = conv_reference(xr, wr.view(c, k), br, seq)
    gout = torch.randn_like(ref)
    if unused is not None:   # that piece's columns send no gradient
        start = sum(pieces[:unused])
        gout[..., start:start + pieces[unused]] = 0
    ref.backward(gout)
    wide = torch.cat([torch.randn(b, t, 8, device="cuda"), x, torch.randn(b, t, 16, device="cuda")], -1)
    wo, bo = leaves(w, bias)
    if strided:
        (wide_o,) = leaves(wide.to(dtype))
        xo = wide_o[..., 8:8 + c]
    else:
        (xo,) = leaves(x.to(dtype))
    outs = torch.ops.anneal.causal_conv1d_silu(xo, wo, bo, seq, pieces or [])
    refs, gouts = (torch.split(ref, pieces, -1), torch.split(gout, pieces, -1)) if pieces else ([ref], [gout])
    assert len(outs) == len(refs), f"causal_conv1d_silu returned {len(outs)} outputs, expected {len(refs)}"
    used = [i for i in range(len(outs)) if i != unused]
    torch.autograd.backward([outs[i] for i in used], [gouts[i].to(dtype) for i in used])
    dx = wide_o.grad[..., 8:8 + c] if strided else xo.grad
    compare(f"causal_conv1d_silu K={k} C={c}{' packed' if packed else ''}{' x a strided view' if strided else ''}"
            f"{f' pieces {pieces}' if pieces else ''}{f' piece {unused + 1} unused' if unused is not None else ''}", dtype,
            [(f"out{i + 1}", o, r) for i, (o, r) in enumerate(zip(outs, refs))]
            + [("dx", dx, xr.grad), ("dw", wo.grad, wr.grad), ("dbias", bo.grad, br.grad)])


# ---------------------------------------------------------------- gated RMSNorm
def gated_norm_reference(y, z, w, groups, eps, norm_before_gate):
    u = y if norm_before_gate else y * F.silu(z)
    shape = u.shape
    g = u.reshape(*shape[:-1], groups, shape[-1] // groups)
    normed = (g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + eps)).reshape(shape) * w
    return normed * F.silu(z) if norm_before_gate else normed


def test_gated_norm(dtype, norm_before_gate, groups):
    torch.manual_seed(2)
    y = torch.randn(3, 50, 256, device="cuda")
    z = torch.randn(3, 50, 256, device="cuda")
    w = 1 + 0.1 * torch.randn(256, device="cuda")
    yr, zr, wr = leaves(y.double(), z.double(), w.double())
    ref = gated_norm_reference(yr, zr, wr, groups, 1e-5, norm_before_gate)
    gout = torch.randn_like(ref)
    ref.backward(gout)
    yo, zo, wo = leaves(y, z.to(dtype), w)
    out = torch.ops.anneal.gated_rms_norm(yo, zo, wo, groups, 1e-5, norm_before_gate)
    out.backward(gout.to(dtype))
    compare(f"gated_rms_norm norm_before_gate={norm_before_gate} groups={groups}", dtype,
            [("out", out, ref), ("dy", yo.grad, yr.grad), ("dz", zo.grad, zr.grad), ("dw", wo.grad, wr.grad)])


# ---------------------------------------------------------------- SSD scan
def ssd_reference(x, dt, a, bm, cm, seq):
    """The recurrence itself, token by token: h_t = exp(dt_t a) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t,
    h reset to zero at every document start (Mamba-2, Dao & Gu 2024, eq. 1)."""
    b, t, h, p = x.shape
    g, n = bm.shape[2], bm.shape[3]
    r = h // g
    state = torch.zeros(b, h, p, n, dtype=x.dtype, device=x.device)
    ys = []
    for i in range(t):
        if seq is not None and i > 0:
            keep = (seq[:, i] == seq[:, i - 1]).to(x.dtype).view(b, 1, 1, 1)
            state = state * keep
        decay = torch.exp(dt[:, i] * a).view(b, h, 1, 1)
        bi = bm[:, i].repeat_interleave(r, 1)                    # [b,h,n]
        ci = cm[:, i].repeat_interleave(r, 1)
        state = state * decay + (dt[:, i].unsqueeze(-1) * x[:, i]).unsqueeze(-1) * bi.unsqueeze(2)
        ys.append(torch.einsum("bhpn,bhn->bhp", state, ci))
    return torch.stack(ys, 1)


def test_ssd(dtype, packed, t=150, chunk=32, g=2, p=8, recompute=True):
    torch.manual_seed(3)
    b, h, n = 2, 4, 16
    x = torch.randn(b, t, h, p, device="cuda")
    dt = F.softplus(torch.randn(b, t, h, device="cuda") - 1)
    a = -torch.exp(torch.randn(h, device="cuda") * 0.5)
    bm = torch.randn(b, t, g, n, device="cuda") * 0.3
    cm = torch.randn(b, t, g, n, device="cuda") * 0.3
    seq = documents(b, t, [40, 7, 70, 33], "cuda") if packed else None
    refs = leaves(x.double(), dt.double(), a.double(), bm.double(), cm.double())
    ref = ssd_reference(*refs, seq)
    gout = torch.randn_like(ref)
    ref.backward(gout)
    ops = leaves(x.to(dtype), dt, a, bm.to(dtype), cm.to(dtype))
    out = torch.ops.anneal.ssd_scan(*ops, seq, chunk, recompute)
    out.backward(gout.float())
    names = ["dx", "ddt", "dA", "dB", "dC"]
    name = (f"ssd_scan T={t} chunk={chunk} groups={g}{f' P={p}' if p != 8 else ''}{' packed' if packed else ''}"
            f"{'' if recompute else ' kept'}")
    # A's gradient, h values each summed over every token, gathers its terms with global float
    # atomics (the mixing and state-passing backwards) in no fixed order: in float32 its error moved
    # between 4.4e-6 and 1.2e-5 over seven runs at T=700 chunk=512, of builds with the same
    # arithmetic for it (every other gradient's stayed put, at most 5e-6;
    # docs/benchmarks/2026-12-03-h200-qkv-rope)
    bounds = {"dA": 3e-5} if dtype == torch.float32 else None
    compare(name, dtype, [("y", out, ref)] + [(nm, o.grad, r.grad) for nm, o, r in zip(names, ops, refs)], bounds)
    if dtype == torch.float32:
        # what float32 itself reaches on this case: the composed reference run in float32 by autograd
        composed = leaves(x, dt, a, bm, cm)
        out32 = ssd_reference(*composed, seq)
        out32.backward(gout.float())
        errors = [("y", out32, ref)] + [(nm, o.grad, r.grad) for nm, o, r in zip(names, composed, refs)]
        print("     the composed reference in float32: " +
              " ".join(f"{k}={relative_error(v, e):.1e}" for k, v, e in errors))


def test_ssd_skip(dtype, packed, t=150, chunk=32, g=2, p=64, recompute=True):
    """ssd_scan_skip: the scan plus the skip connection x D[h], returned in x's type, with x a view of
    a wider [b, t, width] tensor as the fused layer passes it (the conv output's first channels).
    recompute=False: the kept scan, differentiated by autograd through its intermediates, x's skip
    gradient through ScaleTwoLayouts' edge on whole chunks."""
    torch.manual_seed(6)
    b, h, n = 2, 4, 16
    wide = torch.randn(b, t, h * p + 24, device="cuda")
    dt = F.softplus(torch.randn(b, t, h, device="cuda") - 1)
    a = -torch.exp(torch.randn(h, device="cuda") * 0.5)
    bm = torch.randn(b, t, g, n, device="cuda") * 0.3
    cm = torch.randn(b, t, g, n, device="cuda") * 0.3
    d = torch.randn(h, device="cuda")
    seq = documents(b, t, [40, 7, 70, 33], "cuda") if packed else None
    x = wide[..., : h * p].reshape(b, t, h, p)
    refs = leaves(x.double(), dt.double(), a.double(), bm.double(), cm.double(), d.double())
    ref = ssd_reference(*refs[:5], seq) + refs[0] * refs[5].view(h, 1)
    gout = torch.randn_like(ref)
    ref.backward(gout)
    wide_op = wide.to(dtype).requires_grad_(True)
    ops = leaves(dt, a, bm.to(dtype), cm.to(dtype), d)
    out = torch.ops.anneal.ssd_scan_skip(wide_op[..., : h * p].reshape(b, t, h, p), ops[0], ops[1], ops[2], ops[3],
                                         ops[4], seq, chunk, recompute)
    if out.dtype != dtype:
        failures.append(f"ssd_scan_skip returned {out.dtype} for {dtype} input")
    out.backward(gout.to(out.dtype))
    dx = wide_op.grad[..., : h * p].reshape(b, t, h, p)
    names = ["ddt", "dA", "dB", "dC", "dD"]
    compare(f"ssd_scan_skip T={t} chunk={chunk} groups={g} P={p}{' packed' if packed else ''}"
            f"{'' if recompute else ' kept'}", dtype,
            [("y", out, ref), ("dx", dx, refs[0].grad)]
            + [(nm, o.grad, r.grad) for nm, o, r in zip(names, ops, refs[1:])])


# ---------------------------------------------------------------- LM head + cross-entropy
def test_lm_head(dtype, v=1000, master=False, frozen=False):
    """v a multiple of 8: the cross-entropy kernels' 16-byte accesses; else their scalar loop. With
    `master` the weight is a float32 leaf, as the fused layer passes it: cast inside, and its gradient
    summed into its .grad in place, over two backward passes (expected: twice the reference's); with
    `frozen` the weight wants no gradient. The incoming gradient differs per token (as DPO's does),
    which the backward applies to the forward's d log_prob / d logits row by row. The same call
    under no_grad takes the chunked path (300 tokens in chunks of 128, the last one partial) and
    must give the same values."""
    torch.manual_seed(4)
    tokens, d, scale = 300, 64, 0.7
    hidden = torch.randn(tokens, d, device="cuda")
    weight = torch.randn(v, d, device="cuda") * 0.2
    labels = torch.randint(0, v, (tokens,), device="cuda")
    labels[::7] = -100
    hr, wr = leaves(hidden.double(), weight.double())
    logits = scale * hr @ wr.t()
    valid = labels != -100
    picked = torch.log_softmax(logits, -1).gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1) * valid
    correct_ref = ((logits.argmax(-1) == labels) & valid).double()
    gout = torch.randn(tokens, device="cuda", dtype=torch.float64)
    picked.backward(gout)
    ho, wo = leaves(hidden.to(dtype), weight if master else weight.to(dtype))
    wo.requires_grad_(not frozen)
    passes = 2 if master else 1
    for _ in range(passes):
        log_prob, correct = torch.ops.anneal.lm_head_cross_entropy(ho, wo, labels, scale, 128)
        log_prob.backward(gout.float())
    with torch.no_grad():
        chunked, chunked_correct = torch.ops.anneal.lm_head_cross_entropy(ho, wo, labels, scale, 128)
    pairs = [("log_prob", log_prob, picked), ("dhidden", ho.grad, passes * hr.grad),
             ("no_grad log_prob", chunked, picked)]
    pairs += parameter_gradients(wo, wr, None, None, passes, frozen)
    if dtype == torch.float32:
        pairs += [("correct", correct, correct_ref), ("no_grad correct", chunked_correct, correct_ref)]
    compare(f"lm_head_cross_entropy chunk=128 vocab={v}{' float32 master, 2 passes' if master else ''}"
            f"{' frozen weight' if frozen else ''}", dtype, pairs)


# ---------------------------------------------------------------- linear
def parameter_gradients(wo, wr, bo, br, passes, frozen):
    """A linear layer's weight and bias gradients (bo None: no bias) against passes times the float64
    reference's; a frozen weight must have none, and a weight's gradient comes in its own type."""
    pairs = []
    if frozen:
        assert wo.grad is None, "a weight without requires_grad got a gradient"
    else:
        assert wo.grad.dtype == wo.dtype, f"the weight's gradient is {wo.grad.dtype}, not {wo.dtype}"
        pairs.append(("dw", wo.grad, passes * wr.grad))
    if bo is not None:
        pairs.append(("db", bo.grad, passes * br.grad))
    return pairs


def test_linear(dtype, bias, master=True, passes=1, frozen=False, stacked=False, scale=1.0, columns=False, keep=False):
    """linear against (scale x W^T + b) * c in float64 (the muP multipliers: `scale` an input one, or an
    output one of a layer without bias; `columns` a constant multiplier c per output, as mup_vector).
    With `master` the weight (and bias) are float32 leaves cast inside, and the weight's gradient goes
    into its .grad in place: over `passes` backward passes it must sum to passes times the
    reference's (the first pass finds no .grad and makes it). Without,
    the weight is a leaf of x's type and its gradient comes back through autograd. `frozen`: a weight
    without gradient (a DPO reference model's), only x's gradient is asked for. `stacked`: the weight
    is two float32 leaves concatenated (the fused q, k, v projection), no leaf itself: its float32
    gradient goes back through autograd to each. `keep`: the backward reads the forward's cast of the
    weight (model.keep-weight-casts), the same values."""
    torch.manual_seed(10)
    x = torch.randn(3, 50, 64, device="cuda")
    w = torch.randn(96, 64, device="cuda") * 0.1
    b = torch.randn(96, device="cuda")
    c = torch.rand(96, device="cuda") + 0.2 if columns else None
    xr, wr, br = leaves(x.to(dtype).double(), w.double(), b.double())
    ref = (scale * (xr @ wr.t()) + (br if bias else 0)) * (c.double() if columns else 1)
    gout = torch.randn_like(ref)
    (ref * gout).sum().backward()
    (xo,) = leaves(x.to(dtype))
    wo, bo = leaves(w if master else w.to(dtype), b if master else b.to(dtype))
    if frozen:
        wo.requires_grad_(False)
    if stacked:
        top, bottom = leaves(w[:40], w[40:])
    for _ in range(passes):
        weight = torch.cat([top, bottom]) if stacked else wo
        out = torch.ops.anneal.linear(xo, weight, bo if bias else None, scale, c, keep)
        (out.double() * gout).sum().backward()
    if stacked:
        wo.grad = torch.cat([top.grad, bottom.grad])
        assert top.grad.dtype == torch.float32, f"a stacked weight's gradient came back in {top.grad.dtype}"
    assert out.dtype == dtype, f"linear came back in {out.dtype}, not {dtype}"
    pairs = [("out", out, ref), ("dx", xo.grad, passes * xr.grad)]
    pairs += parameter_gradients(wo, wr, bo if bias else None, br, passes, frozen)
    kind = "stacked float32 masters" if stacked else "float32 master" if master else "weight in x's type"
    compare(f"linear {kind}{' bias' if bias else ''} {passes} pass(es){' frozen' if frozen else ''}"
            f"{f' scale {scale}' if scale != 1.0 else ''}{' columns' if columns else ''}{' casts kept' if keep else ''}",
            dtype, pairs)
    if columns:
        try:
            torch.ops.anneal.linear(xo, wo, None, scale, c.clone().requires_grad_(True))
            failures.append("linear took columns that require a gradient")
        except RuntimeError as e:
            assert "constant multiplier" in str(e), f"linear refused trainable columns without saying why: {e}"


def linear_pair_inputs(dtype, columns1, out1=96, out2=40):
    """The linear_pair tests' random inputs, drawn in one order: x [3, 50, 64], the weights [out1, 64] and
    [out2, 64], their biases, the first layer's multiplier per output (with `columns1`, else None), and
    x (rounded to dtype), the weights and the biases as float64 leaves (x, w1, b1, w2, b2)."""
    x = torch.randn(3, 50, 64, device="cuda")
    w1, w2 = torch.randn(out1, 64, device="cuda") * 0.1, torch.randn(out2, 64, device="cuda") * 0.1
    b1, b2 = torch.randn(out1, device="cuda"), torch.randn(out2, device="cuda")
    c1 = torch.rand(out1, device="cuda") + 0.2 if columns1 else None
    return x, w1, w2, b1, b2, c1, leaves(x.to(dtype).double(), w1.double(), b1.double(), w2.double(), b2.double())


def test_linear_pair(dtype, bias, only=None, passes=1, stacked_second=False, scales=(1.0, 1.0), columns1=False,
                     keep=False):
    """linear_pair(x, W1, b1, W2, b2, s1, s2, c1) against ((s1 x W1^T + b1) c1, s2 x W2^T + b2) in float64
    (the muP multipliers, as in `test_linear`; `columns1`: the first layer has c1), with float32 master
    weights whose gradients go into their .grad (summed over `passes`), x's gradient the sum of both
    layers' (the second product added into the first's by the GEMM). `only` (0 or 1): just that
    output is used, the other gets no gradient. `stacked_second`: the second weight is two float32
    leaves concatenated (the fused q, k, v projection beside Mamba's input projection). `keep`: the
    backward reads the forward's casts (model.keep-weight-casts)."""
    torch.manual_seed(13)
    x, w1, w2, b1, b2, c1, (xr, w1r, b1r, w2r, b2r) = linear_pair_inputs(dtype, columns1)
    refs = [(scales[0] * (xr @ w1r.t()) + (b1r if bias else 0)) * (c1.double() if columns1 else 1),
            scales[1] * (xr @ w2r.t()) + (b2r if bias else 0)]
    gouts = [torch.randn_like(r) for r in refs]
    used = [0, 1] if only is None else [only]
    sum((refs[k] * gouts[k]).sum() for k in used).backward()
    (xo,) = leaves(x.to(dtype))
    w1o, b1o, w2o, b2o = leaves(w1, b1, w2, b2)
    if stacked_second:
        top, bottom = leaves(w2[:24], w2[24:])
    for _ in range(passes):
        second = torch.cat([top, bottom]) if stacked_second else w2o
        outs = torch.ops.anneal.linear_pair(xo, w1o, b1o if bias else None, second, b2o if bias else None,
                                            scales[0], scales[1], c1, None, [], keep)
        sum((outs[k].double() * gouts[k]).sum() for k in used).backward()
    if stacked_second:
        w2o.grad = torch.cat([top.grad, bottom.grad])
    pairs = [("out1", outs[0], refs[0]), ("out2", outs[1], refs[1]), ("dx", xo.grad, passes * xr.grad)]
    for k, (wo, bo, wr, br) in enumerate([(w1o, b1o, w1r, b1r), (w2o, b2o, w2r, b2r)]):
        if k in used:
            assert wo.grad.dtype == torch.float32, f"weight {k + 1}'s gradient is {wo.grad.dtype}, not float32"
            pairs.append((f"dw{k + 1}", wo.grad, passes * wr.grad))
            if bias:
                pairs.append((f"db{k + 1}", bo.grad, passes * br.grad))
        else:
            assert wo.grad is None or not wo.grad.any(), f"weight {k + 1} is unused but got a gradient"
    what = "both used" if only is None else f"only output {only + 1} used"
    compare(f"linear_pair float32 masters{' bias' if bias else ''} {what} {passes} pass(es)"
            f"{' second stacked' if stacked_second else ''}{f' scales {scales}' if scales != (1.0, 1.0) else ''}"
            f"{' columns1' if columns1 else ''}{' casts kept' if keep else ''}", dtype, pairs)


def test_linear_pair_pieces(dtype, bias, columns1=False, unused=None, stacked_first=False, passes=2, keep=False,
                            pieces=(40, 50, 6), second=40):
    """linear_pair with pieces1: the first layer's output in column pieces (as Mamba's in_proj gives the
    gate, the conv's input and dt), each piece's gradient arriving apart, against the float64
    reference of the whole output split the same way (the first layer with an input multiplier 1.25
    and, with `columns1`, a multiplier per output); the second layer has `second` outputs. `unused`:
    that piece gets no gradient, so its rows of the weight's gradient must stay zero. `stacked_first`:
    the first weight is two float32 leaves concatenated, with no .grad of its own to add into: the
    pieces' gradients are put together into one. `keep`: the backward reads the forward's casts
    (model.keep-weight-casts)."""
    torch.manual_seed(14)
    pieces = list(pieces)
    x, w1, w2, b1, b2, c1, (xr, w1r, b1r, w2r, b2r) = linear_pair_inputs(dtype, columns1, sum(pieces), second)
    whole = (1.25 * (xr @ w1r.t()) + (b1r if bias else 0)) * (c1.double() if columns1 else 1)
    refs = list(torch.split(whole, pieces, -1)) + [xr @ w2r.t() + (b2r if bias else 0)]
    gouts = [torch.randn_like(r) for r in refs]
    used = [i for i in range(len(refs)) if i != unused]
    sum((refs[i] * gouts[i]).sum() for i in used).backward()
    (xo,) = leaves(x.to(dtype))
    w1o, b1o, w2o, b2o = leaves(w1, b1, w2, b2)
    if stacked_first:
        top, bottom = leaves(w1[:30], w1[30:])
    for _ in range(passes):
        first = torch.cat([top, bottom]) if stacked_first else w1o
        outs = torch.ops.anneal.linear_pair(xo, first, b1o if bias else None, w2o, b2o if bias else None,
                                            1.25, 1.0, c1, None, pieces, keep)
        assert len(outs) == len(refs), f"linear_pair with pieces returned {len(outs)} outputs, expected {len(refs)}"
        sum((outs[i].double() * gouts[i]).sum() for i in used).backward()
    if stacked_first:
        w1o.grad = torch.cat([top.grad, bottom.grad])
    pairs = [(f"piece{i + 1}", outs[i], refs[i]) for i in range(len(pieces))]
    pairs += [("out2", outs[-1], refs[-1]), ("dx", xo.grad, passes * xr.grad), ("dw1", w1o.grad, passes * w1r.grad),
              ("dw2", w2o.grad, passes * w2r.grad)]
    if bias:
        pairs += [("db1", b1o.grad, passes * b1r.grad), ("db2", b2o.grad, passes * b2r.grad)]
    if unused is not None and unused < len(pieces):
        rows = slice(sum(pieces[:unused]), sum(pieces[:unused + 1]))
        assert not w1o.grad[rows].any(), f"piece {unused + 1} got no gradient, but its weight rows did"
    compare(f"linear_pair pieces {pieces}{f' second {second}' if second != 40 else ''}{' bias' if bias else ''}{' columns1' if columns1 else ''}"
            f"{f' piece {unused + 1} unused' if unused is not None else ''}{' first stacked' if stacked_first else ''}"
            f"{' casts kept' if keep else ''}", dtype, pairs)


def test_rms_norm_keep(dtype, width=1024, rows=37):
    """rms_norm_keep(x, w) -> (the norm, x again): x's gradient is the norm's plus whatever reaches the
    second output (here 2 * kept, as add_rms_norm's x-gradient reaches it in the layer), against
    float64."""
    torch.manual_seed(14)
    eps = 1e-5
    x = torch.randn(2, rows, width, device="cuda") * 2
    w = torch.rand(width, device="cuda") + 0.5
    xr, wr = leaves(x.double(), w.double())
    ref = xr * torch.rsqrt(xr.pow(2).mean(-1, keepdim=True) + eps) * wr
    gout, gkept = torch.randn_like(ref), torch.randn_like(ref)
    ((ref * gout).sum() + (2 * xr * gkept).sum()).backward()
    xo, wo = leaves(x, w)
    out, kept, rows8 = torch.ops.anneal.rms_norm_keep(xo, wo, eps, TYPE_CODE[dtype])
    assert torch.equal(kept, xo), "rms_norm_keep's second output is not x"
    check_norm_rows(f"rms_norm_keep width={width}", dtype, out, rows8)
    ((out.double() * gout).sum() + (2 * kept.double() * gkept).sum()).backward()
    compare(f"rms_norm_keep width={width}", dtype, [("out", out, ref), ("dx", xo.grad, xr.grad), ("dw", wo.grad, wr.grad)])


def norm_rows_expected(dtype, out, on_kernel):
    """Whether this build's norms give float8 rows for `out` (build_info's "float8 rows from the norms":
    bfloat16 rows whose width is a multiple of 16, on the kernel: widths up to 4096, x aligned)."""
    return NORM_ROWS and on_kernel and dtype == torch.bfloat16 and out.size(-1) % 16 == 0 and out.size(-1) <= 4096


def check_norm_rows(name, dtype, out, rows8, on_kernel=True):
    """The norm's float8 rows [q, s] (rms_norm_keep's and add_rms_norm's third output), where the build
    makes them, against out itself: s = the row's largest magnitude / 448 (e4m3's largest finite value;
    at least float32's smallest normal), and q s within e4m3's rounding of out (3 mantissa bits: half
    an ulp, 2^-4 of the value, plus the subnormals' step 2^-9 s); none elsewhere."""
    if not norm_rows_expected(dtype, out, on_kernel):
        assert len(rows8) == 0, f"{name}: float8 rows came back, where this build or type makes none"
        return
    assert len(rows8) == 2, f"{name}: expected the norm's float8 rows [q, s], found {len(rows8)} tensors"
    q, s = rows8
    flat = out.reshape(-1, out.size(-1)).double()
    assert q.dtype == torch.float8_e4m3fn and tuple(q.shape) == tuple(flat.shape), f"{name}: q is {q.dtype} {q.shape}"
    amax = flat.abs().amax(-1, keepdim=True)
    expected_s = torch.where(amax > 0, (amax / 448).clamp_min(torch.finfo(torch.float32).tiny), torch.ones_like(amax))
    s_error = ((s.double() - expected_s).abs() / expected_s).max().item()
    back = q.double() * s.double()
    q_error = ((back - flat).abs() - (flat.abs() * 2.0 ** -4 + s.double() * 2.0 ** -9)).max().item()
    record(f"{name} float8 rows", dtype, {"scale": s_error, "q past e4m3's rounding": max(q_error, 0.0)},
           {"scale": 1e-6, "q past e4m3's rounding": 0.0})


def test_norm_rows_linear_pair(width=1024, rows=64):
    """Where the build's norms make float8 rows (ANNEAL_NORM_FP8, the default): linear_pair given them (x8, as the
    fused layer passes rms_norm_keep's third output) against linear_pair quantising the same x itself,
    which must be the same bits, both layers' outputs; and x8 of another shape refused, naming it."""
    if not NORM_ROWS:
        return
    torch.manual_seed(15)
    x = torch.randn(2, rows, width, device="cuda") * 2
    w = torch.rand(width, device="cuda") + 0.5
    w1, w2 = torch.randn(96, width, device="cuda") * 0.05, torch.randn(48, width, device="cuda") * 0.05
    out, _, rows8 = torch.ops.anneal.rms_norm_keep(x, w, 1e-5, TYPE_CODE[torch.bfloat16])
    check_norm_rows(f"rms_norm_keep width={width} for linear_pair", torch.bfloat16, out, rows8)
    if len(rows8) != 2:
        return
    mine = torch.ops.anneal.linear_pair(out, w1, None, w2, None, 1.25, 1.0, None, None, [], False, [])
    given = torch.ops.anneal.linear_pair(out, w1, None, w2, None, 1.25, 1.0, None, None, [], False, rows8)
    differences = {f"output {i + 1}": (a.float() - b.float()).abs().max().item() for i, (a, b) in enumerate(zip(mine, given))}
    try:
        torch.ops.anneal.linear_pair(out[:, 1:], w1, None, w2, None, 1.25, 1.0, None, None, [], False, rows8)
        differences["x8 of another shape refused"] = 1.0
    except RuntimeError as e:
        differences["x8 of another shape refused"] = 0.0 if "expected x8 = None, [] or x's float8 rows" in str(e) else 1.0
    record(f"linear_pair x8 from the norm width={width}", torch.bfloat16, differences,
           {label: 0.0 for label in differences})


def test_linear_tiny_rows(width=256, rows=48):
    """Float8 rows whose largest magnitude is under 448 x float32's smallest normal (about 5.3e-36): their
    scale amax / 448 is subnormal, which fast math flushes to 0, so 1 / s was inf and every zero of the
    row became NaN (0 x inf), the likely cause of stop 42's non-finite gradients with -DANNEAL_FP8_BACKWARD=1.
    The scale is now at least float32's smallest normal. linear's output (the forward's float8 GEMM) and
    x-gradient (-DANNEAL_FP8_BACKWARD's) on rows of ordinary size, rows of 2^-120 their size with zeros
    among them, and zero rows, against float64: every value finite; ordinary rows within FP8_BOUND of
    their largest value; a tiny row within it too, or flushed to zero (its scales' product is itself
    subnormal in the GEMM's epilogue)."""
    if not (FP8_FORWARD or FP8_BACKWARD):
        return
    torch.manual_seed(16)
    x, gout = torch.randn(rows, width, device="cuda"), torch.randn(rows, 128, device="cuda")
    for t in (x, gout):
        t[0::3] *= 2.0 ** -120
        t[0::3, ::4] = 0
        t[2::6] = 0
    w = torch.randn(128, width, device="cuda") * 0.05
    xo, wo = x.to(torch.bfloat16).requires_grad_(True), w.clone().requires_grad_(True)
    go = gout.to(torch.bfloat16)
    out = torch.ops.anneal.linear(xo, wo, None, 1.0, None, False)
    out.backward(go)
    out_ref = xo.detach().double() @ w.double().t()
    dx_ref = go.double() @ w.double()
    ordinary = torch.ones(rows, dtype=torch.bool, device="cuda")
    ordinary[0::3] = False
    errors = {}
    for label, actual, expected in (("out", out, out_ref), ("dx", xo.grad, dx_ref)):
        actual = actual.double()
        errors[f"{label} non-finite"] = float((~torch.isfinite(actual)).sum().item())
        scale = expected.abs().amax(-1, keepdim=True)
        row_error = ((actual - expected).abs().amax(-1, keepdim=True) / scale.clamp_min(1e-300)).squeeze(-1)
        row_error = torch.where(scale.squeeze(-1) > 0, row_error, actual.abs().amax(-1))   # zero rows: exactly 0
        errors[label] = row_error[ordinary].max().item()
        flushed = actual[~ordinary].abs().amax(-1) == 0
        errors[f"{label} tiny rows"] = torch.where(flushed, torch.zeros_like(row_error[~ordinary]),
                                                   row_error[~ordinary]).max().item()
    record("float8 rows under 448 x float32's smallest normal", torch.bfloat16, errors,
           {label: (0.0 if label.endswith("non-finite") else FP8_BOUND) for label in errors})


# ---------------------------------------------------------------- silu(gate) * up
def test_silu_mul(dtype, strided, width=96):
    """silu_mul against silu(gate) * up in float64; with `strided` the gate is a slice of a wider
    tensor, as the Mamba gate is a slice of the input projection. A width that is no multiple of 8
    takes the composed form."""
    torch.manual_seed(7)
    rows = 37
    wide = torch.randn(2, rows, width + 40, device="cuda") * 3
    up = torch.randn(2, rows, width, device="cuda")
    gr, ur = leaves(wide[..., :width].double(), up.double())
    ref = F.silu(gr) * ur
    gout = torch.randn_like(ref)
    ref.backward(gout)
    wide_op = wide.to(dtype).requires_grad_(True)
    up_op = up.to(dtype).requires_grad_(True)
    gate_op = wide_op[..., :width] if strided else wide_op[..., :width].detach().clone().requires_grad_(True)
    out = torch.ops.anneal.silu_mul(gate_op, up_op)
    out.backward(gout.to(dtype))
    dgate = wide_op.grad[..., :width] if strided else gate_op.grad
    compare(f"silu_mul width={width} {'gate a strided view' if strided else 'contiguous'}", dtype,
            [("out", out, ref), ("dgate", dgate, gr.grad), ("dup", up_op.grad, ur.grad)])


def test_silu_mul_linear(dtype, bias, strided=False, master=True, passes=2, scale=1.0, frozen=False, width=96,
                         keep=False):
    """silu_mul_linear against scale (silu(gate) * up) W^T + b in float64: the product that the backward
    writes again (not kept from the forward) must give the gradients the kept one gives. `strided`:
    the gate is a slice of a wider tensor (the Mamba gate, a piece of the input projection). `master`:
    a float32 weight leaf whose gradient goes into its .grad in place, summed over `passes`; else the
    weight in gate's type, its gradient through autograd. `frozen`: the weight takes no gradient. A
    width that is no multiple of 8 takes the composed form (silu_mul, then linear). `keep`: the backward
    reads the forward's cast of the weight (model.keep-weight-casts)."""
    torch.manual_seed(12)
    rows, outputs = 37, 40
    wide = torch.randn(2, rows, width + 40, device="cuda") * 3
    up = torch.randn(2, rows, width, device="cuda")
    w = torch.randn(outputs, width, device="cuda") * 0.1
    b = torch.randn(outputs, device="cuda")
    gr, ur, wr, br = leaves(wide[..., :width].to(dtype).double(), up.to(dtype).double(), w.double(), b.double())
    ref = scale * ((F.silu(gr) * ur) @ wr.t()) + (br if bias else 0)
    gout = torch.randn_like(ref)
    (ref * gout).sum().backward()
    wide_op = wide.to(dtype).requires_grad_(True)
    (gate_leaf, up_op) = leaves(wide[..., :width].to(dtype), up.to(dtype))
    wo, bo = leaves(w if master else w.to(dtype), b if master else b.to(dtype))
    if frozen:
        wo.requires_grad_(False)
    for _ in range(passes):
        gate_op = wide_op[..., :width] if strided else gate_leaf
        out = torch.ops.anneal.silu_mul_linear(gate_op, up_op, wo, bo if bias else None, scale, keep)
        (out.double() * gout).sum().backward()
    assert out.dtype == dtype, f"silu_mul_linear came back in {out.dtype}, not {dtype}"
    dgate = wide_op.grad[..., :width] if strided else gate_leaf.grad
    pairs = [("out", out, ref), ("dgate", dgate, passes * gr.grad), ("dup", up_op.grad, passes * ur.grad)]
    pairs += parameter_gradients(wo, wr, bo if bias else None, br, passes, frozen)
    kind = "float32 master" if master else "weight in gate's type"
    compare(f"silu_mul_linear width={width} {kind}{' bias' if bias else ''} {passes} pass(es)"
            f"{' gate a strided view' if strided else ''}{f' scale {scale}' if scale != 1.0 else ''}"
            f"{' frozen' if frozen else ''}{' casts kept' if keep else ''}", dtype, pairs)


# ---------------------------------------------------------------- the residual stream's RMSNorm
def test_residual_norm(dtype, add, width, rows=37, misaligned=False):
    """rms_norm (x float32 -> the norm in dtype) and add_rms_norm (x + a + b float32 and its norm)
    against FalconH1RMSNorm in float64: s r w, r = 1 / sqrt(mean(s^2) + eps); every gradient, the
    sum's own upstream gradient included. Widths over 4096, and an x whose data does not start on a
    16-byte boundary (`misaligned`: a view 8 bytes into its buffer), take the composed form."""
    torch.manual_seed(9)
    eps = 1e-5
    x = torch.randn(2, rows, width, device="cuda") * 2
    a = torch.randn(2, rows, width, device="cuda")
    b = torch.randn(2, rows, width, device="cuda") * 0.5
    w = torch.rand(width, device="cuda") + 0.5
    xr, ar, br, wr = leaves(x.double(), a.to(dtype).double(), b.to(dtype).double(), w.double())
    s = xr + ar + br if add else xr
    ref = s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps) * wr
    gout, gsum = torch.randn_like(ref), torch.randn_like(ref)
    ((ref * gout).sum() + ((s * gsum).sum() if add else 0)).backward()
    xo, ao, bo, wo = leaves(x, a.to(dtype), b.to(dtype), w)
    if misaligned:
        buffer, xo = misaligned_leaf(x)
    if add:
        sum_o, out, rows8 = torch.ops.anneal.add_rms_norm(xo, ao, bo, wo, eps)
        check_norm_rows(f"add_rms_norm width={width}{' x misaligned' if misaligned else ''}", dtype, out, rows8,
                        on_kernel=not misaligned)
        ((out.double() * gout).sum() + (sum_o.double() * gsum).sum()).backward()
    else:
        out = torch.ops.anneal.rms_norm(xo, wo, eps, TYPE_CODE[dtype])
        (out.double() * gout).sum().backward()
    assert out.dtype == dtype, f"the norm came back in {out.dtype}, not {dtype}"
    dx = buffer.grad[2:].view(x.shape) if misaligned else xo.grad   # a view has no .grad of its own
    pairs = [("out", out, ref), ("dx", dx, xr.grad), ("dw", wo.grad, wr.grad)]
    if add:
        pairs += [("sum", sum_o, s), ("da", ao.grad, ar.grad), ("db", bo.grad, br.grad)]
    compare(f"{'add_rms_norm' if add else 'rms_norm'} width={width}{' x misaligned' if misaligned else ''}", dtype,
            pairs)


# ---------------------------------------------------------------- the MLP branch into the residual stream
def test_residual_add(dtype, n=37 * 96, misaligned=False):
    """residual_add(x float32, a in dtype) against x + a in float64, and both gradients (a's in its own
    type). A length that is no multiple of 8, or an x 8 bytes into its buffer, takes the composed form."""
    torch.manual_seed(11)
    x = torch.randn(2, n, device="cuda") * 2
    a = torch.randn(2, n, device="cuda").to(dtype)
    xr, ar = leaves(x.double(), a.double())
    ref = xr + ar
    gout = torch.randn_like(ref)
    ref.backward(gout)
    xo, ao = leaves(x, a)
    if misaligned:
        buffer, xo = misaligned_leaf(x)
    out = torch.ops.anneal.residual_add(xo, ao)
    out.backward(gout.float())
    assert out.dtype == torch.float32, f"the sum came back in {out.dtype}, not float32"
    assert ao.grad.dtype == dtype, f"a's gradient came back in {ao.grad.dtype}, not {dtype}"
    dx = buffer.grad[2:].view(x.shape) if misaligned else xo.grad
    compare(f"residual_add n={n}{' x misaligned' if misaligned else ''}", dtype,
            [("out", out, ref), ("dx", dx, xr.grad), ("da", ao.grad, ar.grad)])


# ---------------------------------------------------------------- RoPE
def test_qkv_rope(dtype, per_row, d=32, heads=4, kv_heads=2, key_scale=1.0, unused_v=False):
    """qkv_rope against transformers' rotate_half form in float64, on the fused projection
    qkv [b, t, (heads + 2 kv_heads) d]: q and k rotated, k times the key multiplier, v as it is. With
    `per_row` the angles differ per row (positions restarting in packed rows), else one row of
    angles for all. A head dimension that is no multiple of 16 takes the composed form. The
    projection's gradient holds q's, k's and v's in their columns; with `unused_v` v gets none, so
    its columns must be zero."""
    torch.manual_seed(8)
    b, t = 3, 50
    widths = [heads * d, kv_heads * d, kv_heads * d]
    qkv = torch.randn(b, t, sum(widths), device="cuda")
    positions = torch.randint(0, 400, (b if per_row else 1, t), device="cuda").float()
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2, device="cuda").float() / d))
    emb = torch.cat([positions[..., None] * inv] * 2, -1)[:, None]        # [B, 1, t, d]
    cos, sin = emb.cos(), emb.sin()

    def rotate(x):  # x [b, t, h, d] in float64, as transformers does it on [b, h, t, d]
        xt = x.transpose(1, 2)
        rotated = torch.cat([-xt[..., d // 2:], xt[..., : d // 2]], -1)
        return (xt * cos.double() + rotated * sin.double()).transpose(1, 2)

    (qkv_r,) = leaves(qkv.double())
    q_r, k_r, v_r = torch.split(qkv_r, widths, 2)
    ref = [rotate(q_r.reshape(b, t, heads, d)), rotate(k_r.reshape(b, t, kv_heads, d)) * key_scale,
           v_r.reshape(b, t, kv_heads, d)]
    gouts = [torch.randn_like(r) for r in ref]
    used = 2 if unused_v else 3
    torch.autograd.backward(ref[:used], gouts[:used])
    (qkv_o,) = leaves(qkv.to(dtype))
    out = torch.ops.anneal.qkv_rope(qkv_o, cos, sin, heads, kv_heads, key_scale)
    for o, r in zip(out, ref):
        assert o.shape == r.shape and o.is_contiguous(), f"qkv_rope returned {o.shape}, expected {r.shape} contiguous"
    torch.autograd.backward(out[:used], [g.to(dtype) for g in gouts[:used]])
    pairs = [("q", out[0], ref[0]), ("k", out[1], ref[1]), ("v", out[2], ref[2]), ("dqkv", qkv_o.grad, qkv_r.grad)]
    if unused_v:
        assert qkv_o.grad[..., -widths[2]:].abs().max().item() == 0, "v got no gradient, but its columns are not zero"
    compare(f"qkv_rope d={d} {heads}+2x{kv_heads} heads {'angles per row' if per_row else 'one row of angles'}"
            f"{f' key x{key_scale}' if key_scale != 1.0 else ''}{' v unused' if unused_v else ''}", dtype, pairs)


def test_layer_head():
    """The fused TorchScript layer's head (FalconH1FusedLayer.torchscript, compiled as Anneal does):
    its mean_logit against the mean over the vocabulary of logits computed in full, in float64 from
    the same bfloat16-normalised hidden states."""
    from profile_layers import SOURCE, compile_layer
    layer = compile_layer(SOURCE.read_text())
    torch.manual_seed(5)
    tokens, d, v = 96, 1024, 2000
    hidden = torch.randn(1, tokens, d, device="cuda")
    norm = torch.rand(d, device="cuda") + 0.5
    head = torch.randn(v, d, device="cuda") * 0.02
    labels = torch.randint(0, v, (1, tokens), device="cuda")
    _, _, mean_logit = layer.head(hidden, norm, head, labels)
    normed = torch.rms_norm(hidden, [d], norm, 1e-5).to(torch.bfloat16).double().reshape(tokens, d)
    expected = (normed @ head.double().t()).mean(-1)   # lm_head multiplier 1.0 in profile_layers' attributes
    compare("layer.head mean_logit (TRL's logits/*)", torch.float32, [("mean_logit", mean_logit, expected)])


# The last layer's parameters whose gradients no float atomic reaches: its backward runs first, and
# every kernel between the loss and these sums in a fixed order (the norms' column sums are
# shared-memory trees, the GEMMs cuBLAS's own). Two backward kernels add with atomics: Mamba's scan
# backward (anneal_kernels.cu: dcum, dlogd, da, ddecay), so the conv's, dt's, A's and in_proj's
# gradients, the input norm's, and everything of the layers below, may change with the order its
# blocks ran in; and, in float32, the attention's memory-efficient backward, which sums dQ over key
# blocks with atomics (PyTorch documents it as nondeterministic), so q_proj's gradient may too. dK and
# dV are summed over query blocks in order: k_proj's and v_proj's stay exact. (Stop 43's H100 call saw
# only q_proj's differ, by 1.1e-4, in three two-stream cases: docs/benchmarks/2026-12-05-h100-experiments-one-by-one.)
ATOMIC_FREE_IN_LAST_LAYER = ("pre_ff_layernorm.weight", "feed_forward.", "self_attn.k_proj.", "self_attn.v_proj.",
                             "self_attn.o_proj.", "mamba.D", "mamba.out_proj.", "mamba.norm.")


# An order of float additions that flips one bfloat16 rounding moves that intermediate by 2^-8 (3.9e-3)
# of itself, and the layer below carries it into all its gradients: up to 6e-3 of the largest value
# was seen between two-stream and one-stream runs whose bit-equal gradients showed no race
# (docs/benchmarks/2026-12-05-h200-float8-default). A block read while another stream writes it moves
# values by their own size.
ORDER_SPREAD_FLOOR = 1e-2


def beside_busy_stream(run):
    """run() while another stream keeps every SM busy with kernels of its own (about 15 ms of
    element-wise passes over 256 MiB), so run's blocks are scheduled around them, in another order
    than alone, as a second stream of the step's own would schedule them."""
    noise = torch.zeros(1 << 26, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(100):
            noise.add_(1.0)
    result = run()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    return result


def test_layer_branch_streams(branch, packed):
    """The fused layer with one mixer on a second stream (model.branch-stream: anneal_ops.cpp's
    branch_* switches) against the same layer on one stream: two layers at the 291M model's widths,
    forward and backward, run eagerly and captured as one CUDA graph and replayed, on the same weights
    and inputs. The kernels are the same ones, so two things may differ only by the order in which the
    scan backward's float atomics sum, which follows the order its blocks ran in:
    - none at all in the output, and in the last layer's gradients that no atomic reaches
      (ATOMIC_FREE_IN_LAST_LAYER): these must be equal, bit for bit. A block one stream reuses while the
      other reads it, or reads before it is written, changes them; the order of additions cannot;
    - the others, within that order's own spread: the one-stream layer run again, twice alone and twice
      beside a busy stream (which reorders its blocks as the second stream does: alone, the one-stream
      runs often repeat bit for bit, and a bound from them alone failed two-stream cases whose
      differences were the atomics' own, about 1e-3 in the layer below, through the bfloat16 roundings
      they flip); the bound is 4 times that spread, and at least ORDER_SPREAD_FLOOR of the largest
      value (the spread's own runs sometimes repeat bit for bit, busy stream or not)."""
    from profile_layers import SOURCE, HIDDEN, captured, compile_layer, layer_weights, rope
    source = SOURCE.read_text()
    g = torch.Generator(device="cuda").manual_seed(11)
    weights = [layer_weights(g) for _ in range(2)]
    params = [p for w in weights for p in w.values()]
    b, t = 2, 384
    embed = torch.randn(b, t, HIDDEN, device="cuda", generator=g).requires_grad_(True)
    cos, sin = rope(t)
    seq = documents(b, t, [100, 200, 84], "cuda") if packed else None
    allowed = None
    if packed:
        causal = torch.ones(t, t, device="cuda", dtype=torch.bool).tril()
        allowed = (causal & (seq.unsqueeze(2) == seq.unsqueeze(1))).unsqueeze(1)
    weight = torch.randn(b, t, HIDDEN, device="cuda", generator=g)   # d loss / d output
    output = torch.zeros(b, t, HIDDEN, device="cuda")                # the layers' output, kept for the comparison

    def step(layer):
        h = embed
        for w in weights:
            h = layer.packed(h, w, cos, sin, allowed, seq) if packed else layer.forward(h, w, cos, sin)
        output.copy_(h.detach())
        (h * weight).sum().backward()

    def results(layer, graphed, busy=False):
        for p in params + [embed]:
            p.grad = None
        if graphed:   # warm-up, capture and replay, as profile_layers.py times it; the graph writes static .grads
            def static_grads():
                for p in params + [embed]:
                    p.grad = torch.zeros_like(p)
            graph = captured(lambda: step(layer), 2, static_grads)
            for p in params + [embed]:
                p.grad.zero_()
            run = graph.replay
        else:
            def run():
                step(layer)
        beside_busy_stream(run) if busy else run()
        torch.cuda.synchronize()
        return [p.grad.detach().clone() for p in params + [embed]] + [output.clone()]

    one = compile_layer(source)
    two = compile_layer(source, branch=branch)
    last = len(weights) - 1
    names = [f"{i}.{k}" for i, w in enumerate(weights) for k in w] + ["embed", "output"]
    exact = {f"{last}.{k}" for k in weights[last] if k.startswith(ATOMIC_FREE_IN_LAST_LAYER)} | {"output"}
    for graphed in (False, True):
        expected = results(one, graphed)
        again = [results(one, graphed, busy) for busy in (False, False, True, True)]
        branched = results(two, graphed)
        spread = {n: max(relative_error(r[i], expected[i]) for r in again) for i, n in enumerate(names)}
        bounds = {n: 0.0 if n in exact else max(4 * spread[n], ORDER_SPREAD_FLOOR) for n in names}
        label = f"layer x2, {branch} on a second stream{' packed' if packed else ''}{' graphed' if graphed else ''}"
        print(f"     one stream's own spread ({label}): " +
              " ".join(f"{n}={v:.1e}" for n, v in spread.items() if n not in exact))
        compare(label, torch.float32, [(n, a, e) for n, a, e in zip(names, branched, expected)], bounds)
    del one, two


def test_layer_branch_memory():
    """branch_begin marks its tensors as read on the branch stream (the allocator's recordStream): a
    tensor the caller's stream made, read on the branch stream after a delay and freed before that
    read, keeps its block from the caller's stream's next allocation. Without the mark the caching
    allocator hands the freed block straight back to the caller's stream, whose write (7) lands before
    the branch stream's read: 14 where 6 is expected."""
    n = 1 << 24   # 64 MiB of float32: a block of its own
    x = torch.full([n], 3.0, device="cuda")
    xs = torch.ops.anneal.branch_begin([x])
    torch.cuda._sleep(200_000_000)   # on the branch stream (current now): about 0.1 s before its read
    doubled = xs[0] * 2.0
    del x, xs
    ended = torch.ops.anneal.branch_end([doubled])
    over = torch.full([n], 7.0, device="cuda")   # on the caller's stream, which is idle
    joined = torch.ops.anneal.branch_join([ended[0], over])
    torch.cuda.synchronize()
    compare("branch stream: its input's block not reused before its read", torch.float32,
            [("read", joined[0], torch.full([n], 6.0, device="cuda"))])


# ---------------------------------------------------------------- small parameters' gradients in .grad
def test_parameter_grads():
    """The conv's weight and bias, the norms' weights and D: their backward sums each gradient straight
    into the float32 .grad (parameter_grad in anneal_ops.cpp) when the backward accumulates into every
    leaf, and hands it to autograd otherwise. Per operator, against the gradient g of a first plain
    backward: a second backward onto a .grad holding c leaves c + g; torch.autograd.grad returns g and
    leaves .grad alone; backward(inputs=[x]) fills x's .grad only."""
    torch.manual_seed(11)
    b, t, h, p, n = 2, 128, 4, 16, 16
    x = torch.randn(b, t, 40, device="cuda")
    y = torch.randn(b, t, 64, device="cuda")
    s = torch.randn(b, t, 64, device="cuda")
    dt = F.softplus(torch.randn(b, t, h, device="cuda") - 1)
    a = -torch.exp(torch.randn(h, device="cuda") * 0.5)
    bm = torch.randn(b, t, 1, n, device="cuda") * 0.3
    cm = torch.randn(b, t, 1, n, device="cuda") * 0.3
    xs = torch.randn(b, t, h, p, device="cuda")
    seq = documents(b, t, [40, 7, 70, 33], "cuda")
    cases = {   # name: (its input, its parameters, the operator on them)
        "causal_conv1d_silu": (x, [torch.randn(40, 1, 4, device="cuda"), torch.randn(40, device="cuda")],
                               lambda i, w: torch.ops.anneal.causal_conv1d_silu(i, w[0], w[1], seq, [])[0]),
        "gated_rms_norm": (y, [1 + 0.1 * torch.randn(64, device="cuda")],
                           lambda i, w: torch.ops.anneal.gated_rms_norm(i, y.bfloat16(), w[0], 2, 1e-5, False)),
        "rms_norm": (s, [torch.rand(64, device="cuda") + 0.5],
                     lambda i, w: torch.ops.anneal.rms_norm(i, w[0], 1e-5, TYPE_CODE[torch.bfloat16])),
        "add_rms_norm": (s, [torch.rand(64, device="cuda") + 0.5],
                         lambda i, w: torch.ops.anneal.add_rms_norm(i, y.bfloat16(), y.bfloat16(), w[0], 1e-5)[1]),
    }
    for recompute in (True, False):   # D's gradient from SsdScan's recomputing backward, or from the kept scan's
        cases[f"ssd_scan_skip D{'' if recompute else ' kept'}"] = (
            xs, [torch.randn(h, device="cuda")],
            lambda i, w, r=recompute: torch.ops.anneal.ssd_scan_skip(i.bfloat16(), dt, a, bm.bfloat16(), cm.bfloat16(),
                                                                     w[0], seq, 32, r))
    for name, (inp, params, op) in cases.items():
        gout = None

        def run(grads_held=None):
            nonlocal gout
            (i,) = leaves(inp)
            ws = leaves(*params)
            if grads_held is not None:
                for w, c in zip(ws, grads_held):
                    w.grad = c.clone()
            out = op(i, ws)
            if gout is None:
                gout = torch.randn_like(out)
            return i, ws, out

        _, ws, out = run()
        out.backward(gout)
        torch.cuda.synchronize()
        g = [w.grad.clone() for w in ws]
        held = [torch.randn_like(w) for w in ws]
        _, ws2, out2 = run(held)
        out2.backward(gout)
        pairs = [(f"c+g {k + 1}", w.grad, c + e) for k, (w, c, e) in enumerate(zip(ws2, held, g))]
        _, ws3, out3 = run()
        returned = torch.autograd.grad(out3, ws3, gout)
        pairs += [(f"autograd.grad {k + 1}", r, e) for k, (r, e) in enumerate(zip(returned, g))]
        untouched = all(w.grad is None for w in ws3)
        i4, ws4, out4 = run()
        out4.backward(gout, inputs=[i4])
        untouched = untouched and all(w.grad is None for w in ws4) and i4.grad is not None
        if not untouched:
            failures.append(f"parameter_grads {name}: .grad written by torch.autograd.grad or backward(inputs=...)")
        compare(f"parameter_grads {name}{'' if untouched else ' (.grad written where it must not be)'}",
                torch.float32, pairs)


# ---------------------------------------------------------------- timings at the benchmark shapes
def timed(name, fn, steps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    ms = (time.perf_counter() - start) / steps * 1e3
    peak = torch.cuda.max_memory_allocated() / 2**30
    results["timings"].append({"op": name, "ms_forward_backward": ms, "peak_gib": peak})
    print(f"time {name:60s} {ms:8.2f} ms  peak {peak:.2f} GiB")


def ssd_benchmark_inputs(rows):
    """The SSD scan's inputs at the 291M benchmark shapes (rows x 2048 tokens, 32 heads of 64,
    one group, state 128), bfloat16 as on the fused path; shared with profile_kernels.py."""
    b, t, h, p, g, n = rows, 2048, 32, 64, 1, 128
    bf = torch.bfloat16
    x = torch.randn(b, t, h, p, device="cuda", dtype=bf, requires_grad=True)
    dt = F.softplus(torch.randn(b, t, h, device="cuda") - 1).requires_grad_(True)
    a = (-torch.rand(h, device="cuda")).requires_grad_(True)
    bm = torch.randn(b, t, g, n, device="cuda", dtype=bf, requires_grad=True)
    cm = torch.randn(b, t, g, n, device="cuda", dtype=bf, requires_grad=True)
    return x, dt, a, bm, cm


def timings(rows):
    b, t, h, p, n, c = rows, 2048, 32, 64, 128, 2304
    bf = torch.bfloat16
    x, dt, a, bm, cm = ssd_benchmark_inputs(rows)
    seq = documents(b, t, [700, 900, 448], "cuda")

    def ssd(s):
        torch.ops.anneal.ssd_scan(x, dt, a, bm, cm, s, 128).sum().backward()
    timed(f"ssd_scan {b}x{t} H{h} P{p} N{n} bf16", lambda: ssd(None))
    timed(f"ssd_scan {b}x{t} H{h} P{p} N{n} bf16 packed", lambda: ssd(seq))
    d = torch.randn(h, device="cuda", requires_grad=True)

    def ssd_skip_composed():   # the fused layer before ssd_scan_skip: float32 y, then + x D, then the cast
        y = torch.ops.anneal.ssd_scan(x, dt, a, bm, cm, None, 128)
        (y + x.float() * d.view(h, 1)).to(bf).sum().backward()
    timed(f"ssd_scan + x D composed, bfloat16 out {b}x{t}", ssd_skip_composed)
    timed(f"ssd_scan_skip {b}x{t} H{h} P{p} N{n} bf16",
          lambda: torch.ops.anneal.ssd_scan_skip(x, dt, a, bm, cm, d, None, 128).sum().backward())
    timed(f"ssd_scan_skip {b}x{t} H{h} P{p} N{n} bf16 kept",
          lambda: torch.ops.anneal.ssd_scan_skip(x, dt, a, bm, cm, d, None, 128, False).sum().backward())
    xc = torch.randn(b, t, c, device="cuda", dtype=bf, requires_grad=True)
    wc = torch.randn(c, 1, 4, device="cuda", requires_grad=True)
    bc = torch.randn(c, device="cuda", requires_grad=True)
    timed(f"causal_conv1d_silu {b}x{t}x{c} bf16 packed",
          lambda: torch.ops.anneal.causal_conv1d_silu(xc, wc, bc, seq)[0].float().sum().backward())
    y = torch.randn(b, t, 2048, device="cuda", requires_grad=True)
    z = torch.randn(b, t, 2048, device="cuda", dtype=bf, requires_grad=True)
    wn = torch.ones(2048, device="cuda", requires_grad=True)
    timed(f"gated_rms_norm {b}x{t}x2048 bf16",
          lambda: torch.ops.anneal.gated_rms_norm(y, z, wn, 1, 1e-5, False).float().sum().backward())
    hid = torch.randn(b * t, 1024, device="cuda", dtype=bf, requires_grad=True)
    head = (torch.randn(32768, 1024, device="cuda") * 0.02).to(bf).requires_grad_(True)
    labels = torch.randint(0, 32768, (b * t,), device="cuda")
    timed(f"lm_head_cross_entropy {b * t}x1024 -> 32768 bf16 chunk 4096",
          lambda: torch.ops.anneal.lm_head_cross_entropy(hid, head, labels, 1.0, 4096)[0].sum().backward())

    gate_up = torch.randn(b * t, 2 * 3072, device="cuda", dtype=bf, requires_grad=True)
    timed(f"silu_mul {b * t}x3072 bf16 (gate and up views of one projection)",
          lambda: torch.ops.anneal.silu_mul(gate_up[:, :3072], gate_up[:, 3072:]).sum().backward())
    timed(f"up * silu(gate) in ATen {b * t}x3072 bf16",
          lambda: (gate_up[:, 3072:] * F.silu(gate_up[:, :3072])).sum().backward())

    residual = torch.randn(b * t, 1024, device="cuda", requires_grad=True)
    branch_a = torch.randn(b * t, 1024, device="cuda", dtype=bf, requires_grad=True)
    branch_b = torch.randn(b * t, 1024, device="cuda", dtype=bf, requires_grad=True)
    norm_w = torch.ones(1024, device="cuda", requires_grad=True)

    def fused_residual():
        total, normed, _ = torch.ops.anneal.add_rms_norm(residual, branch_a, branch_b, norm_w, 1e-5)
        (total.sum() + normed.float().sum()).backward()

    def composed_residual():   # the fused layer before add_rms_norm
        total = residual + branch_a + branch_b
        normed = torch.rms_norm(total, [1024], norm_w, 1e-5).to(bf)
        (total.sum() + normed.float().sum()).backward()
    timed(f"add_rms_norm {b * t}x1024 float32 residual, bf16 branches and norm", fused_residual)
    timed(f"x + a + b, rms_norm, cast in ATen {b * t}x1024", composed_residual)

    mlp_out = torch.randn(b * t, 1024, device="cuda", dtype=bf, requires_grad=True)
    timed(f"residual_add {b * t}x1024 float32 + bf16", lambda: torch.ops.anneal.residual_add(residual, mlp_out).sum().backward())
    timed(f"ATen float32 + bf16 {b * t}x1024", lambda: (residual + mlp_out).sum().backward())

    xl = torch.randn(b * t, 1024, device="cuda", dtype=bf, requires_grad=True)
    wl = (torch.randn(3072, 1024, device="cuda") * 0.02).requires_grad_(True)
    timed(f"linear {b * t}x1024 -> 3072, float32 master weight, gradient summed into .grad",
          lambda: torch.ops.anneal.linear(xl, wl, None).sum().backward())
    timed(f"torch.linear on the master's bf16 cast (autograd casts and accumulates)",
          lambda: F.linear(xl, wl.to(bf)).sum().backward())

    def unfused_head():
        logits = (hid @ head.t()).float()
        torch.log_softmax(logits, -1).gather(1, labels.unsqueeze(1)).sum().backward()
    timed(f"unfused head: bf16 logits, float32 log_softmax {b * t} tokens", unfused_head)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("library")
    parser.add_argument("--out")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--checks-only", action="store_true", help="skip the timings that follow the checks")
    parser.add_argument("--only", metavar="OPERATOR[,OPERATOR...]",
                        help="run only the cases of test_OPERATOR* (linear: linear, linear_pair, linear_pair_pieces; "
                             "several, comma-separated: linear,silu_mul_linear), "
                             "a check of one operator after a change to it, in seconds")
    args = parser.parse_args()
    if args.only:   # the other cases' functions do nothing: main calls each by its module-level name
        wanted = tuple("test_" + operator for operator in args.only.split(","))
        for name in [n for n in globals() if n.startswith("test_") and not n.startswith(wanted)]:
            globals()[name] = lambda *unused, **unused_named: None
    torch.ops.load_library(args.library)
    results["build_info"] = torch.ops.anneal.build_info(torch.zeros(1))
    global FP8_FORWARD, FP8_BACKWARD, NORM_ROWS
    FP8_FORWARD = "float8 forward GEMMs" in results["build_info"]
    FP8_BACKWARD = "float8 x-gradient GEMMs" in results["build_info"]
    NORM_ROWS = "float8 rows from the norms" in results["build_info"]
    results["device"] = torch.cuda.get_device_name()
    print(results["build_info"], "on", results["device"])
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for packed in (False, True):
            for k in (2, 3, 4, 6):
                test_conv(dtype, packed, k)
            test_conv(dtype, packed, strided=True)
            test_conv(dtype, packed, c=39)
            test_conv(dtype, packed, c=300, strided=True)
            # the output as Mamba's x, B and C pieces, their gradients read where they are
            test_conv(dtype, packed, strided=True, pieces=[32, 4, 4])
            test_conv(dtype, packed, c=300, strided=True, pieces=[256, 22, 22], unused=1)
            test_conv(dtype, packed, pieces=[19, 10, 11])        # odd pieces: one channel a thread
            test_ssd(dtype, packed)
            test_ssd(dtype, packed, g=1)   # one group: the state GEMMs read the token layout without a copy
        test_ssd(dtype, True, t=64, chunk=64)
        test_ssd(dtype, True, t=100, chunk=48)   # a chunk that is no multiple of 32: the composed mixing
        # the mixing backward's row groups: 16 and 32 threads a row (the model's 128, Mamba-2's 256)
        test_ssd(dtype, True, t=300, chunk=128)
        test_ssd(dtype, False, t=600, chunk=256, g=1)
        test_ssd(dtype, True, t=700, chunk=512, g=1)   # 64 lanes a row: the one-column mixing backward
        test_ssd(dtype, True, t=200, chunk=96)   # 12 lanes a row: whole rows of 12 (forward), one column (backward)
        # state passing with 2 and 1 elements a thread (P = 6, 3: the inner run is not a multiple of 4, 2)
        test_ssd(dtype, True, p=6)
        test_ssd(dtype, True, p=3)
        test_ssd_skip(dtype, packed=True)
        test_ssd_skip(dtype, packed=False, g=1, p=8)    # one lane per token-head: no shuffles
        test_ssd_skip(dtype, packed=True, t=100, chunk=48, p=16)
        # whole chunks: x dt is written in both layouts (scale_two_layouts) from the strided view
        test_ssd_skip(dtype, packed=True, t=128, chunk=32)
        test_ssd_skip(dtype, packed=False, t=256, chunk=64, g=1)
        test_ssd_skip(dtype, packed=True, t=300, chunk=128, g=1)   # the 291M model's chunk and groups
        # the first forward's intra-chunk output in one kernel (ssd_diagonal, half types): the 291M model's
        # whole chunks in the heads' layout, and the token layout's view with two groups (the other cases
        # with P and the chunk multiples of 16 take it too; P = 8, 6, 3 and chunks over 128 do not)
        test_ssd_skip(dtype, packed=True, t=256, chunk=128, g=1)
        test_ssd(dtype, True, p=32)
        test_ssd_skip(dtype, packed=True, t=128, chunk=64, g=1, p=128)   # 8 column tiles a strip
        test_ssd(dtype, True, t=40, chunk=16, p=16)                        # one strip a chunk
        # the kept scan (recompute=False): the model's shape with and without documents, the skip's edge
        # (whole chunks), a padded tail (no edge), and the plain scan
        test_ssd_skip(dtype, packed=True, t=256, chunk=128, g=1, recompute=False)
        test_ssd_skip(dtype, packed=False, t=128, chunk=32, recompute=False)
        test_ssd_skip(dtype, packed=True, recompute=False)
        test_ssd(dtype, True, t=300, chunk=128, recompute=False)
        for before in (False, True):
            test_gated_norm(dtype, before, 1)
        test_gated_norm(dtype, False, 4)
        test_lm_head(dtype)
        test_lm_head(dtype, v=1003)
        test_lm_head(dtype, master=True)
        test_lm_head(dtype, frozen=True)
        for bias in (False, True):
            test_linear(dtype, bias, passes=2)
        test_linear(dtype, bias=True, master=False)
        test_linear(dtype, bias=False, frozen=True)
        test_linear(dtype, bias=False, passes=2, stacked=True)
        for bias in (False, True):
            test_linear_pair(dtype, bias, passes=2)
        test_linear_pair(dtype, bias=True, only=0)
        test_linear_pair(dtype, bias=False, only=1)
        test_linear_pair(dtype, bias=False, passes=2, stacked_second=True)
        # muP multipliers in the GEMMs: the .grad in place (alpha), its row scaling, a non-leaf float32
        # weight and a weight in x's type (the float32 product, then scaled rows)
        test_linear(dtype, bias=True, passes=2, scale=1.25, columns=True)
        test_linear(dtype, bias=False, passes=2, scale=0.2357)
        test_linear(dtype, bias=True, master=False, scale=0.5, columns=True)
        test_linear(dtype, bias=False, passes=2, stacked=True, scale=0.75, columns=True)
        test_linear_pair(dtype, bias=True, passes=2, scales=(1.25, 0.75), columns1=True)
        # the layer's in_proj with q, k, v of a muP model (Falcon-H1's multipliers, the mup-untied fixture)
        test_linear_pair(dtype, bias=False, passes=2, stacked_second=True, scales=(1.25, 0.75), columns1=True)
        test_linear_pair(dtype, bias=False, only=0, scales=(0.8839, 1.0))
        # model.keep-weight-casts: the backward reads the forward's casts (multipliers folded in), same values
        test_linear(dtype, bias=True, passes=2, scale=1.25, columns=True, keep=True)
        test_linear_pair(dtype, bias=False, passes=2, stacked_second=True, scales=(1.25, 0.75), columns1=True, keep=True)
        test_linear_pair_pieces(dtype, bias=False, columns1=True, unused=2, keep=True)
        # the first layer's output in pieces (Mamba's in_proj: gate, conv input, dt), gradients never joined
        test_linear_pair_pieces(dtype, bias=False, columns1=True)       # the 291M model's in_proj: mup_vector
        test_linear_pair_pieces(dtype, bias=False, unused=2)            # dt without gradient
        test_linear_pair_pieces(dtype, bias=True, columns1=True, unused=1)
        test_linear_pair_pieces(dtype, bias=True, stacked_first=True)   # no .grad to add into
        # the 291M model's in_proj pieces and q, k, v at half their widths: rows of several vectors a
        # thread in the float8 x-gradient's quantisation (-DANNEAL_FP8_BACKWARD=1)
        test_linear_pair_pieces(dtype, bias=False, columns1=True, pieces=(1024, 1152, 16), second=768)
        test_rms_norm_keep(dtype)
        test_rms_norm_keep(dtype, width=4104)     # composed
        if dtype == torch.bfloat16:
            test_norm_rows_linear_pair()
            test_linear_tiny_rows()
        test_silu_mul(dtype, strided=False)
        test_silu_mul(dtype, strided=True)
        test_silu_mul(dtype, strided=True, width=100)
        # the MLP's down projection (a float32 master weight; the muP model's multiplier folded) and the
        # Mamba out_proj (the gate a piece of the input projection); a weight in the compute type with a
        # bias; a frozen weight (a DPO reference model); the composed form
        test_silu_mul_linear(dtype, bias=False)
        test_silu_mul_linear(dtype, bias=False, scale=0.5, strided=True)
        test_silu_mul_linear(dtype, bias=True, master=False, passes=1, scale=1.25)
        test_silu_mul_linear(dtype, bias=True, strided=True)
        test_silu_mul_linear(dtype, bias=False, frozen=True, passes=1)
        test_silu_mul_linear(dtype, bias=True, strided=True, width=100)
        test_silu_mul_linear(dtype, bias=False, scale=0.5, strided=True, keep=True)
        test_silu_mul_linear(dtype, bias=True, strided=True, width=100, keep=True)   # composed: linear keeps it
        test_qkv_rope(dtype, per_row=True)
        test_qkv_rope(dtype, per_row=True, d=64, heads=16, kv_heads=4)  # the 291M model's attention
        test_qkv_rope(dtype, per_row=True, d=64, key_scale=0.390625)    # Falcon-H1-0.5B's key multiplier
        test_qkv_rope(dtype, per_row=True, d=32, key_scale=0.5, unused_v=True)
        test_qkv_rope(dtype, per_row=True, d=24)                         # composed
        test_qkv_rope(dtype, per_row=True, d=24, key_scale=0.390625)     # composed
        for add in (False, True):
            for width in (1024, 96, 2056, 4104):   # one, one partial, three (of four) slots; composed
                test_residual_norm(dtype, add, width)
            test_residual_norm(dtype, add, 1024, misaligned=True)
        test_residual_add(dtype)
        test_residual_add(dtype, n=37 * 96 + 3)          # no multiple of 8: composed
        test_residual_add(dtype, misaligned=True)         # composed
        test_qkv_rope(dtype, per_row=False)
    # more chunks than a state-passing backward block sums at once (kPassSegment = 256)
    test_ssd(torch.float32, True, t=32 * 258, chunk=32)
    test_parameter_grads()
    test_layer_head()
    test_layer_branch_memory()
    for branch in ("attention", "mamba"):
        for packed in (False, True):
            test_layer_branch_streams(branch, packed)
    if not args.checks_only:
        timings(args.rows)
    results["failures"] = failures
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    print("all operators agree with their references" if not failures else f"{len(failures)} failures: {failures}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
