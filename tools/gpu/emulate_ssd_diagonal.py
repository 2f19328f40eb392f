"""Emulates ssd_diagonal_forward_kernel and ssd_diagonal_backward_kernel (anneal_kernels.cu) on the CPU,
tile by tile and lane by lane in float64 numpy: the kernels' index arithmetic (the warps' strip pairs,
the lanes' 8 values of a 16 x 16 tile, the padded shared rows), WMMA's row- and column-major tile loads,
the dcum shuffles and the warp's suffix scan. Checks y = M X, dX = M^T dY, dS = sum over heads of
dM * L and dlogd (by central differences of sum(dY * M(logd) X)) on chunks of 16 to 128 rows, with and
without documents. It checks the kernels' logic where no GPU is at hand; what it cannot see (WMMA
itself, atomics, bfloat16 rounding) tools/gpu/test_kernels.py checks on the GPU.
    python3 tools/gpu/emulate_ssd_diagonal.py     (numpy; about 6 s)"""
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
                for lane in range(32):   # shfl_xor 1, then the even lanes add their row
                    if lane % 2 == 0:
                        dcum[rs * TILE + lane // 2] += rows[lane] + rows[lane ^ 1]
                colsum = np.zeros((32, 8))   # xor-reduction over lane bits 1..4: lanes 0 and 1 hold the sums
                for lane in range(32):
                    colsum[lane] = seg[[k for k in range(32) if k % 2 == lane % 2]].sum(0)
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
assert worst < 1e-6
