"""Emulates Anneal's SSD kernels on the CPU in float64 numpy, lane by lane with their index
arithmetic, where no GPU is at hand; what it cannot see (WMMA itself, atomics, the half types'
rounding) tools/gpu/test_kernels.py checks on the GPU.
- ssd_diagonal_forward_kernel and ssd_diagonal_backward_kernel: the warps' strip pairs, the lanes' 8
  values of a 16 x 16 tile, the padded shared rows, WMMA's row- and column-major tile loads, the dcum
  shuffles and the warp's suffix scan; against y = M X, dX = M^T dY, dS = sum over heads of dM * L and
  dlogd by central differences of sum(dY * M(logd) X), on chunks of 16 to 128, with and without documents.
- ssd_decays_forward_kernel and ssd_decays_backward_kernel: a block per (b, c), a warp per head, each
  lane a run of tokens, the shuffles' prefix and suffix scans; against ssd_forward's composed CPU path,
  and the backward against central differences.
    python3 tools/gpu/emulate_ssd_kernels.py     (numpy; about 8 s)"""

import numpy as np

TILE, TROW, SROW, PAD, WARPS = 16, 24, 20, 8, 4

def load(mem, off, ld, major):
    m = np.empty((TILE, TILE))
    for a in range(TILE):
        for k in range(TILE):
            m[a, k] = mem[off + a * ld + k] if major == "row" else mem[off + k * ld + a]
    return m

def store(mem, off, ld, frag):
    for a in range(TILE):
        for k in range(TILE):
            mem[off + a * ld + k] = frag[a, k]

def valid(doc, i, j):
    return j <= i and (doc is None or doc[i] == doc[j])

def pairs(strips, warp):
    for pair in range(warp, (strips + 1) // 2, WARPS):
        for half in range(2):
            s = pair if half == 0 else strips - 1 - pair
            if half == 1 and s == pair:
                break
            yield s

def forward(S, cum, doc, X):
    q, p = X.shape
    ldx = p + PAD
    x_s = np.zeros(q * ldx)
    for i in range(q):
        x_s[i * ldx:i * ldx + p] = X[i]
    y = np.full((q, p), np.nan)
    strips, cols = q // TILE, p // TILE
    for warp in range(WARPS):
        tile = np.zeros(TILE * TROW); stage = np.zeros(TILE * SROW)
        for rs in pairs(strips, warp):
            acc = [np.zeros((TILE, TILE)) for _ in range(cols)]
            for kt in range(rs + 1):
                for lane in range(32):
                    r, c0 = lane // 2, (lane % 2) * 8
                    i, j0 = rs * TILE + r, kt * TILE + c0
                    for m in range(8):
                        tile[r * TROW + c0 + m] = S[i, j0 + m] * np.exp(cum[i] - cum[j0 + m]) if valid(doc, i, j0 + m) else 0.0
                a = load(tile, 0, TROW, "row")
                for ct in range(cols):
                    acc[ct] += a @ load(x_s, kt * TILE * ldx + ct * TILE, ldx, "row")
            for ct in range(cols):
                store(stage, 0, SROW, acc[ct])
                for lane in range(32):
                    r, c0 = lane // 2, (lane % 2) * 8
                    for m in range(8):
                        y[rs * TILE + r, ct * TILE + c0 + m] = stage[r * SROW + c0 + m]
    return y

def backward(S, cum, doc, X, dY, dS):
    q, p = X.shape
    ldx = p + PAD
    x_s = np.zeros(q * ldx); dy_s = np.zeros(q * ldx)
    for i in range(q):
        x_s[i * ldx:i * ldx + p] = X[i]; dy_s[i * ldx:i * ldx + p] = dY[i]
    dcum = np.zeros(q); dX = np.full((q, p), np.nan)
    strips, cols = q // TILE, p // TILE
    for warp in range(WARPS):
        tile = np.zeros(TILE * TROW); stage = np.zeros(TILE * SROW)
        for cs in pairs(strips, warp):
            acc_dx = [np.zeros((TILE, TILE)) for _ in range(cols)]
            column = np.zeros((32, 8))   # each lane's share of its columns' dseg sums, over the strip
            for rs in range(cs, strips):
                v = np.zeros((32, 8)); l = np.zeros((32, 8))
                for lane in range(32):
                    r, c0 = lane // 2, (lane % 2) * 8
                    i, j0 = rs * TILE + r, cs * TILE + c0
                    for m in range(8):
                        l[lane, m] = np.exp(cum[i] - cum[j0 + m]) if valid(doc, i, j0 + m) else 0.0
                        v[lane, m] = S[i, j0 + m] * l[lane, m]
                        tile[r * TROW + c0 + m] = v[lane, m]
                acc_dm = np.zeros((TILE, TILE))
                for kk in range(cols):
                    acc_dm += load(dy_s, rs * TILE * ldx + kk * TILE, ldx, "row") @ load(x_s, cs * TILE * ldx + kk * TILE, ldx, "col")
                mt = load(tile, 0, TROW, "col")
                for ct in range(cols):
                    acc_dx[ct] += mt @ load(dy_s, rs * TILE * ldx + ct * TILE, ldx, "row")
                store(stage, 0, SROW, acc_dm)
                seg = np.zeros((32, 8)); rows = np.zeros(32)
                for lane in range(32):
                    r, c0 = lane // 2, (lane % 2) * 8
                    i, j0 = rs * TILE + r, cs * TILE + c0
                    for m in range(8):
                        dm = stage[r * SROW + c0 + m]
                        seg[lane, m] = dm * v[lane, m]
                        if rs > cs or c0 <= r:
                            dS[i, j0 + m] += dm * l[lane, m]
                    rows[lane] = seg[lane].sum()
                    column[lane] += seg[lane]
                for lane in range(32):   # shfl_xor 1, then the even lanes add their row
                    if lane % 2 == 0:
                        dcum[rs * TILE + lane // 2] += rows[lane] + rows[lane ^ 1]
            colsum = np.zeros((32, 8))   # once a strip: xor-reduction over lane bits 1..4, lanes 0 and 1 hold the sums
            for lane in range(32):
                colsum[lane] = column[[k for k in range(32) if k % 2 == lane % 2]].sum(0)
            for lane in range(2):
                for m in range(8):
                    dcum[cs * TILE + lane * 8 + m] -= colsum[lane, m]
            for ct in range(cols):
                store(stage, 0, SROW, acc_dx[ct])
                for lane in range(32):
                    r, c0 = lane // 2, (lane % 2) * 8
                    for m in range(8):
                        dX[cs * TILE + r, ct * TILE + c0 + m] = stage[r * SROW + c0 + m]
    run = (q + 31) // 32
    totals = np.array([dcum[min(q, ln * run):min(q, min(q, ln * run) + run)].sum() for ln in range(32)])
    suffix = totals.copy()
    o = 1
    while o < 32:
        suffix = np.array([suffix[ln] + (suffix[ln + o] if ln + o < 32 else 0.0) for ln in range(32)])
        o <<= 1
    dlogd = np.full(q, np.nan)
    for ln in range(32):
        t0 = min(q, ln * run); t1 = min(q, t0 + run)
        acc = suffix[ln] - totals[ln]
        for t in range(t1 - 1, t0 - 1, -1):
            acc += dcum[t]; dlogd[t] = acc
    return dX, dlogd

def mixing(S, logd, doc):
    q = len(logd); cum = np.cumsum(logd)
    M = np.zeros((q, q))
    for i in range(q):
        for j in range(q):
            if valid(doc, i, j):
                M[i, j] = S[i, j] * np.exp(cum[i] - cum[j])
    return M, cum



def prefix_exclusive(totals):
    inc = totals.copy(); o = 1
    while o < 32:
        inc = np.array([inc[l] + (inc[l - o] if l >= o else 0.0) for l in range(32)]); o <<= 1
    return inc - totals

def suffix_exclusive(totals):
    inc = totals.copy(); o = 1
    while o < 32:
        inc = np.array([inc[l] + (inc[l + o] if l + o < 32 else 0.0) for l in range(32)]); o <<= 1
    return inc - totals

def runs(q):
    run = (q + 31) // 32
    return [(min(q, l * run), min(q, min(q, l * run) + run)) for l in range(32)]

def docs_of(seq, b, c, q):
    return None if seq is None else seq[b, c * q:(c + 1) * q]

def kernel_forward(dt, a, seq, q):
    B, T, H = dt.shape; C = -(-T // q)
    logd = np.zeros((B, C, H, q)); cum = np.zeros((B, C, H, q)); fs = np.zeros((B, C, H, q))
    te_tok = np.zeros((B, C, q, H)); last = np.zeros((B, C, H)); keep = np.zeros((B, C))
    for b in range(B):
        for c in range(C):
            doc = docs_of(seq, b, c, q)
            last_doc = doc[q - 1] if doc is not None else 0
            prev = (last_doc if c == 0 else seq[b, c * q - 1]) if doc is not None else 0
            v = np.array([[dt[b, c * q + t, hh] * a[hh] if c * q + t < T else 0.0 for hh in range(H)] for t in range(q)])
            for hh in range(H):
                totals = np.array([v[t0:t1, hh].sum() for t0, t1 in runs(q)])
                pre = prefix_exclusive(totals)
                lst = pre[31] + totals[31]
                for l, (t0, t1) in enumerate(runs(q)):
                    acc = pre[l]
                    for t in range(t0, t1):
                        acc += v[t, hh]
                        logd[b, c, hh, t] = v[t, hh]; cum[b, c, hh, t] = acc
                        fs[b, c, hh, t] = np.exp(acc) if doc is None or doc[t] == prev else 0.0
                        te_tok[b, c, t, hh] = np.exp(lst - acc) if doc is None or doc[t] == last_doc else 0.0
                last[b, c, hh] = lst
            keep[b, c] = (1.0 if last_doc == prev else 0.0) if doc is not None else 0.0  # written only with documents
    return logd, cum, te_tok, fs, last, keep

def kernel_backward(dt, a, seq, q, cum, g_logd, g_te_tok, g_fs, g_last):
    B, T, H = dt.shape; C = -(-T // q)
    ddt = np.full((B, T, H), np.nan); da = np.zeros(H)
    for b in range(B):
        for c in range(C):
            doc = docs_of(seq, b, c, q)
            last_doc = doc[q - 1] if doc is not None else 0
            prev = (last_doc if c == 0 else seq[b, c * q - 1]) if doc is not None else 0
            gv = np.array([[g_te_tok[b, c, t, hh] for hh in range(H)] for t in range(q)])
            dts = np.array([[dt[b, c * q + t, hh] if c * q + t < T else 0.0 for hh in range(H)] for t in range(q)])
            for hh in range(H):
                lst = cum[b, c, hh, q - 1]; tes = 0.0
                for t0, t1 in runs(q):
                    for t in range(t0, t1):
                        te = np.exp(lst - cum[b, c, hh, t]) if doc is None or doc[t] == last_doc else 0.0
                        f = np.exp(cum[b, c, hh, t]) if doc is None or doc[t] == prev else 0.0
                        gte = gv[t, hh] * te; tes += gte
                        gv[t, hh] = g_fs[b, c, hh, t] * f - gte
                gv[q - 1, hh] += tes + g_last[b, c, hh]
                totals = np.array([gv[t0:t1, hh].sum() for t0, t1 in runs(q)])
                suf = suffix_exclusive(totals); dad = 0.0
                for l, (t0, t1) in enumerate(runs(q)):
                    acc = suf[l]
                    for t in range(t1 - 1, t0 - 1, -1):
                        acc += gv[t, hh]; dl = acc + g_logd[b, c, hh, t]
                        gv[t, hh] = dl; dad += dl * dts[t, hh]
                da[hh] += dad
            for t in range(q):
                if c * q + t < T:
                    ddt[b, c * q + t] = gv[t] * a
    return ddt, da

def composed(dt, a, seq, q):
    """ssd_forward's CPU path (anneal_ops.cpp), in numpy."""
    B, T, H = dt.shape; C = -(-T // q); pad = C * q - T
    logd = np.concatenate([dt * a, np.zeros((B, pad, H))], 1)
    lh = logd.reshape(B, C, q, H).transpose(0, 1, 3, 2)
    cum = np.cumsum(lh, -1); last = cum[..., q - 1:q]
    te = np.exp(last - cum); fs = np.exp(cum); keep = np.zeros((B, C))
    if seq is not None:
        sc = seq.reshape(B, C, q); ld = sc[..., q - 1]
        prev = np.concatenate([ld[:, :1], ld[:, :C - 1]], 1)
        te = te * (sc == ld[..., None])[:, :, None, :]
        fs = fs * (sc == prev[..., None])[:, :, None, :]
        keep = (ld == prev).astype(float)
    return lh, cum, te.transpose(0, 1, 3, 2), fs, last[..., 0], keep


def check_diagonal():
    rng = np.random.default_rng(0)
    worst = 0.0
    for q, p, heads, packed in [(32, 16, 3, False), (48, 16, 2, True), (64, 32, 2, True), (128, 64, 2, True), (16, 128, 1, False)]:
        S = rng.normal(size=(q, q)) * 0.3
        doc = np.sort(rng.integers(0, 3, size=q)) if packed else None
        dS_kernel = np.zeros((q, q)); dS_ref = np.zeros((q, q))
        for h in range(heads):
            logd = -rng.uniform(0.01, 0.3, size=q)
            X = rng.normal(size=(q, p)); dY = rng.normal(size=(q, p))
            M, cum = mixing(S, logd, doc)
            y = forward(S, cum, doc, X)
            dX, dlogd = backward(S, cum, doc, X, dY, dS_kernel)
            L = np.where(M != 0, M / np.where(S != 0, S, 1), 0)
            dM = dY @ X.T
            dS_ref += dM * L
            eps = 1e-6
            fd = np.empty(q)
            for t in range(q):
                e = np.zeros(q); e[t] = eps
                fd[t] = ((dY * (mixing(S, logd + e, doc)[0] @ X)).sum() - (dY * (mixing(S, logd - e, doc)[0] @ X)).sum()) / (2 * eps)
            errs = {"y": np.abs(y - M @ X).max(), "dX": np.abs(dX - M.T @ dY).max(),
                    "dlogd": np.abs(dlogd - fd).max() / max(1e-12, np.abs(fd).max())}
            worst = max(worst, *errs.values())
            print(f"q={q} p={p} head {h} packed={packed}: " + " ".join(f"{k}={v:.1e}" for k, v in errs.items()))
        e = np.abs(dS_kernel - dS_ref).max()
        worst = max(worst, e)
        print(f"q={q} p={p} dS over {heads} heads: {e:.1e}")
    print("worst", worst)
    return worst


def check_decays():
    rng = np.random.default_rng(1)
    worst = 0.0
    for B, T, H, q, packed in [(2, 150, 4, 32, True), (1, 128, 3, 64, False), (2, 100, 2, 48, True), (1, 256, 32, 128, True)]:
        dt = rng.uniform(0.05, 0.6, size=(B, T, H)); a = -rng.uniform(0.3, 1.5, size=H)
        seq = None
        if packed:
            lens = [40, 7, 70, 33]
            ids = np.concatenate([np.full(n, k) for k, n in enumerate(lens * 10)])[:T]
            seq0 = np.stack([ids] * B)
            C = -(-T // q); pad = C * q - T
            seq = np.concatenate([seq0, np.repeat(seq0[:, -1:], pad, 1)], 1)
        out = kernel_forward(dt, a, seq, q); ref = composed(dt, a, seq, q)
        fwd = max(np.abs(o - r).max() for o, r in zip(out, ref))
        gl, gte, gfs, glast = (rng.normal(size=out[i].shape) for i in (0, 2, 3, 4))
        ddt, da = kernel_backward(dt, a, seq, q, out[1], gl, gte, gfs, glast)
        def f(dt_, a_):
            o = composed(dt_, a_, seq, q)
            return (o[0] * gl).sum() + (o[2] * gte).sum() + (o[3] * gfs).sum() + (o[4] * glast).sum()
        eps = 1e-6
        fd_dt = np.zeros_like(dt)
        for idx in np.ndindex(*dt.shape):
            e = np.zeros_like(dt); e[idx] = eps
            fd_dt[idx] = (f(dt + e, a) - f(dt - e, a)) / (2 * eps)
        fd_a = np.array([(f(dt, a + np.eye(H)[k] * eps) - f(dt, a - np.eye(H)[k] * eps)) / (2 * eps) for k in range(H)])
        e_dt = np.abs(ddt - fd_dt).max() / np.abs(fd_dt).max(); e_a = np.abs(da - fd_a).max() / np.abs(fd_a).max()
        worst = max(worst, fwd, e_dt, e_a)
        print(f"B={B} T={T} H={H} q={q} packed={packed}: forward {fwd:.1e}, ddt {e_dt:.1e}, dA {e_a:.1e}")
    print("worst", worst)
    return worst


if __name__ == "__main__":
    worst = max(check_diagonal(), check_decays())
    print(f"worst of both: {worst:.1e}")
    assert worst < 1e-6, "an emulated kernel disagrees with its reference"
