package io.anneal.onnx;

import io.anneal.onnx.graph.OnnxGraph;
import io.anneal.onnx.graph.OnnxGraph.Attr;
import io.anneal.onnx.graph.WeightFile;
import java.io.IOException;
import java.util.Map;

/**
 * Falcon-H1 as two ONNX graphs, the same arithmetic as the hybrid plugin's reference layers
 * (FalconH1Layer.torchscript, transformers' modeling_falcon_h1.py):
 * <ul>
 * <li>{@code prefill}: input_ids [batch, sequence] -> logits and every layer's caches: the keys
 * and values after RoPE, the last {@code d_conv - 1} inputs of the causal conv, and the SSM state
 * after the last token (the chunked SSD scan of Mamba-2, Dao and Gu 2024, section 6);</li>
 * <li>{@code decode}: one token per row and the caches -> its logits and the caches one token
 * longer (attention over the cache; the conv as one window; the SSM recurrence
 * h = exp(dt A) h + dt x B^T, y = h C + D x).</li>
 * </ul>
 * The muP multipliers are folded into the weights where the product is linear (attention in/out,
 * key, SSM in/out and the per-slice ssm_multipliers, the MLP gate and down, and the embedding and
 * LM head of an untied model); a tied model keeps the embedding and LM-head multipliers as ops,
 * since one table serves both.
 */
final class FalconH1Graphs {
    static final String INPUT_IDS = "input_ids";
    static final String LOGITS = "logits";

    /** Cache names of layer {@code l}: {@code past.l.key} in, {@code present.l.key} out; key, value, conv, ssm. */
    static String past(int layer, String kind) {
        return "past." + layer + "." + kind;
    }

    static String present(int layer, String kind) {
        return "present." + layer + "." + kind;
    }

    static final String[] CACHE_KINDS = {"key", "value", "conv", "ssm"};

    private final FalconH1Spec s;
    private final WeightFile weights;

    private FalconH1Graphs(FalconH1Spec spec, WeightFile weights) {
        this.s = spec;
        this.weights = weights;
    }

    /** Source of the checkpoint's float32 tensors by checkpoint name. */
    interface Tensors {
        float[] values(String name);

        long[] shape(String name);
    }

    /** Writes the folded weights into {@code weights}; then {@link #prefill} and {@link #decode} refer to them. */
    static FalconH1Graphs prepare(FalconH1Spec s, Tensors t, WeightFile w) throws IOException {
        float[] embed = t.values("model.embed_tokens.weight");
        if (s.tied()) {
            w.add("embed", new long[] {s.vocab(), s.hidden()}, embed);
        } else {
            w.add("embed", new long[] {s.vocab(), s.hidden()}, scaled(embed, s.embedding()));
            w.add("lm_head", new long[] {s.vocab(), s.hidden()}, scaled(t.values("lm_head.weight"), s.lmHead()));
        }
        w.add("final_norm", new long[] {s.hidden()}, t.values("model.final_layernorm.weight"));
        for (int l = 0; l < s.layers(); l++) {
            String p = "model.layers." + l + ".";
            String o = "l" + l + ".";
            w.add(o + "input_norm", new long[] {s.hidden()}, t.values(p + "input_layernorm.weight"));
            w.add(o + "ff_norm", new long[] {s.hidden()}, t.values(p + "pre_ff_layernorm.weight"));
            // attention: x * attention_in feeds q, k, v (weights only); k also * key_multiplier (weight and bias)
            linear(w, t, p + "self_attn.q_proj", o + "q", s.attentionIn(), 1.0);
            linear(w, t, p + "self_attn.k_proj", o + "k", s.attentionIn() * s.key(), s.key());
            linear(w, t, p + "self_attn.v_proj", o + "v", s.attentionIn(), 1.0);
            linear(w, t, p + "self_attn.o_proj", o + "o", s.attentionOut(), s.attentionOut());
            // Mamba in_proj: x * ssm_in on the input; each output row * its slice's ssm_multiplier (z, x, B, C, dt)
            float[] rowScale = mupVector(s);
            float[] in = t.values(p + "mamba.in_proj.weight");
            int cols = s.hidden();
            float[] folded = new float[in.length];
            for (int r = 0; r < s.inProj(); r++) {
                for (int c = 0; c < cols; c++) {
                    folded[r * cols + c] = (float) (in[r * cols + c] * s.ssmIn() * rowScale[r]);
                }
            }
            w.add(o + "in_proj.weight", t.shape(p + "mamba.in_proj.weight"), folded);
            if (has(t, p + "mamba.in_proj.bias")) {
                float[] b = t.values(p + "mamba.in_proj.bias");
                float[] fb = new float[b.length];
                for (int r = 0; r < b.length; r++) {
                    fb[r] = (float) (b[r] * rowScale[r]);
                }
                w.add(o + "in_proj.bias", new long[] {b.length}, fb);
            }
            w.add(o + "conv.weight", t.shape(p + "mamba.conv1d.weight"), t.values(p + "mamba.conv1d.weight"));
            if (has(t, p + "mamba.conv1d.bias")) {
                w.add(o + "conv.bias", new long[] {s.convDim()}, t.values(p + "mamba.conv1d.bias"));
            }
            w.add(o + "dt_bias", new long[] {s.mHeads()}, t.values(p + "mamba.dt_bias"));
            float[] aLog = t.values(p + "mamba.A_log");
            float[] a = new float[aLog.length];
            for (int h = 0; h < a.length; h++) {
                a[h] = -(float) Math.exp(aLog[h]); // A = -exp(A_log)
            }
            w.add(o + "A", new long[] {s.mHeads()}, a);
            w.add(o + "D", new long[] {s.mHeads(), 1}, t.values(p + "mamba.D"));
            if (s.mambaRmsNorm()) {
                w.add(o + "gate_norm", new long[] {s.groups(), s.dSsm() / s.groups()}, t.values(p + "mamba.norm.weight"));
            }
            linear(w, t, p + "mamba.out_proj", o + "out_proj", s.ssmOut(), s.ssmOut());
            linear(w, t, p + "feed_forward.gate_proj", o + "gate", s.mlpMultipliers()[0], s.mlpMultipliers()[0]);
            linear(w, t, p + "feed_forward.up_proj", o + "up", 1.0, 1.0);
            linear(w, t, p + "feed_forward.down_proj", o + "down", s.mlpMultipliers()[1], s.mlpMultipliers()[1]);
        }
        return new FalconH1Graphs(s, w);
    }

    private static boolean has(Tensors t, String name) {
        return t.shape(name) != null;
    }

    private static void linear(WeightFile w, Tensors t, String from, String to, double weightScale, double biasScale)
            throws IOException {
        w.add(to + ".weight", t.shape(from + ".weight"), scaled(t.values(from + ".weight"), weightScale));
        if (has(t, from + ".bias")) {
            w.add(to + ".bias", t.shape(from + ".bias"), scaled(t.values(from + ".bias"), biasScale));
        }
    }

    private static float[] scaled(float[] v, double factor) {
        if (factor == 1.0) {
            return v;
        }
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) (v[i] * factor);
        }
        return out;
    }

    /** transformers' compute_mup_vector: the in_proj slices z, x, B, C, dt times ssm_multipliers. */
    private static float[] mupVector(FalconH1Spec s) {
        int gn = s.groups() * s.state();
        int[] sizes = {s.dSsm(), s.dSsm(), gn, gn, s.mHeads()};
        float[] v = new float[s.inProj()];
        int at = 0;
        for (int k = 0; k < 5; k++) {
            for (int i = 0; i < sizes[k]; i++) {
                v[at++] = (float) s.ssmMultipliers()[k];
            }
        }
        return v;
    }

    // ------------------------------------------------------------------ graphs

    /** The prefill graph: input_ids [batch, sequence] -> logits and the caches of every layer. */
    byte[] prefill(String producer, Map<String, String> metadata) {
        OnnxGraph g = new OnnxGraph("falcon_h1_prefill", weights);
        String ids = g.input(INPUT_IDS, OnnxGraph.INT64, "batch", "sequence");
        Builder b = new Builder(g, ids);
        String seq = g.op("Slice", new String[] {b.idsShape, g.int64s(1), g.int64s(2), g.int64s(0)});
        // RoPE angles for positions 0..T-1
        String positions = g.op("Cast", new String[] {g.op("Range", new String[] {g.int64Scalar(0),
                g.op("Squeeze", seq, g.int64s(0)), g.int64Scalar(1)})}, Attr.i("to", OnnxGraph.FLOAT));
        b.rope(positions);
        // causal mask [T, T]: 0 where j <= i, -1e9 above the diagonal (exp underflows to exactly 0)
        String ones = g.op("Expand", g.scalar(1f), g.op("Concat", new String[] {seq, seq}, Attr.i("axis", 0)));
        String lower = g.op("Trilu", new String[] {ones}, Attr.i("upper", 0));
        b.causalMask = g.op("Mul", g.op("Sub", lower, g.scalar(1f)), g.scalar(1e9f));
        b.seq = seq;
        String hidden = b.embed(ids);
        for (int l = 0; l < s.layers(); l++) {
            hidden = b.layer(l, hidden, false);
        }
        g.output(LOGITS, b.head(hidden), OnnxGraph.FLOAT, "batch", "sequence", (long) s.vocab());
        return g.toModelBytes(producer, metadata);
    }

    /** The decode graph: input_ids [batch, 1] and the caches -> logits [batch, 1, vocab] and the caches one longer. */
    byte[] decode(String producer, Map<String, String> metadata) {
        OnnxGraph g = new OnnxGraph("falcon_h1_decode", weights);
        String ids = g.input(INPUT_IDS, OnnxGraph.INT64, "batch", 1L);
        Builder b = new Builder(g, ids);
        for (int l = 0; l < s.layers(); l++) {
            b.pastKey[l] = g.input(past(l, "key"), OnnxGraph.FLOAT, "batch", (long) s.kvHeads(), "past", (long) s.headDim());
            b.pastValue[l] = g.input(past(l, "value"), OnnxGraph.FLOAT, "batch", (long) s.kvHeads(), "past",
                    (long) s.headDim());
            b.pastConv[l] = g.input(past(l, "conv"), OnnxGraph.FLOAT, "batch", (long) s.convDim(),
                    (long) (s.convKernel() - 1));
            b.pastSsm[l] = g.input(past(l, "ssm"), OnnxGraph.FLOAT, "batch", (long) s.mHeads(), (long) s.mHeadDim(),
                    (long) s.state());
        }
        // the new token's position is the cache length
        String pastLength = g.op("Slice", new String[] {g.op("Shape", b.pastKey[0]), g.int64s(2), g.int64s(3), g.int64s(0)});
        b.rope(g.op("Cast", new String[] {pastLength}, Attr.i("to", OnnxGraph.FLOAT)));
        String hidden = b.embed(ids);
        for (int l = 0; l < s.layers(); l++) {
            hidden = b.layer(l, hidden, true);
        }
        g.output(LOGITS, b.head(hidden), OnnxGraph.FLOAT, "batch", 1L, (long) s.vocab());
        return g.toModelBytes(producer, metadata);
    }

    /** Emits the nodes of one graph. */
    private final class Builder {
        final OnnxGraph g;
        final String idsShape;
        final String[] pastKey = new String[s.layers()];
        final String[] pastValue = new String[s.layers()];
        final String[] pastConv = new String[s.layers()];
        final String[] pastSsm = new String[s.layers()];
        String cos;
        String sin;
        String causalMask;
        String seq;

        Builder(OnnxGraph g, String ids) {
            this.g = g;
            this.idsShape = g.op("Shape", ids);
        }

        String ints(long... v) {
            return g.int64s(v);
        }

        String reshape(String x, long... shape) {
            return g.op("Reshape", x, ints(shape));
        }

        String transpose(String x, long... perm) {
            return g.op("Transpose", new String[] {x}, Attr.ints("perm", perm));
        }

        String silu(String x) {
            return g.op("Mul", x, g.op("Sigmoid", x));
        }

        String[] split(String x, long axis, long... sizes) {
            return g.ops("Split", sizes.length, new String[] {x, ints(sizes)}, Attr.i("axis", axis));
        }

        /** x [batch, seq, in] @ W^T + b with W [out, in] as stored: Gemm(transB = 1) over [batch * seq, in]. */
        String linear(String x, String name, long in, long out) {
            String flat = reshape(x, -1, in);
            String[] inputs = weights.has(name + ".bias")
                    ? new String[] {flat, g.weight(name + ".weight"), g.weight(name + ".bias")}
                    : new String[] {flat, g.weight(name + ".weight")};
            String y = g.op("Gemm", inputs, Attr.i("transB", 1));
            return g.op("Reshape", y, g.op("Concat", new String[] {idsShape, ints(out)}, Attr.i("axis", 0)));
        }

        /** FalconH1RMSNorm: x * (mean(x^2) + eps)^-1/2 * weight, over the last axis. */
        String rmsNorm(String x, String weight) {
            String mean = g.op("ReduceMean", new String[] {g.op("Mul", x, x)}, Attr.ints("axes", -1), Attr.i("keepdims", 1));
            String inv = g.op("Pow", g.op("Add", mean, g.scalar((float) s.eps())), g.scalar(-0.5f));
            return g.op("Mul", g.op("Mul", x, inv), weight);
        }

        /** cos and sin [positions, head_dim] of transformers' default RoPE: inv_freq = theta^(-2i/d). */
        void rope(String positions) {
            int half = s.headDim() / 2;
            float[] invFreq = new float[half];
            for (int i = 0; i < half; i++) {
                invFreq[i] = (float) (1.0 / Math.pow(s.ropeTheta(), (2.0 * i) / s.headDim()));
            }
            String pos = g.op("Unsqueeze", g.op("Reshape", positions, ints(-1)), ints(1));
            String freqs = g.op("Mul", pos, g.floats(new long[] {1, half}, invFreq));
            String emb = g.op("Concat", new String[] {freqs, freqs}, Attr.i("axis", 1));
            cos = g.op("Cos", emb);
            sin = g.op("Sin", emb);
        }

        String applyRope(String x) {
            String[] halves = split(x, 3, s.headDim() / 2, s.headDim() / 2);
            String rotated = g.op("Concat", new String[] {g.op("Neg", halves[1]), halves[0]}, Attr.i("axis", 3));
            return g.op("Add", g.op("Mul", x, cos), g.op("Mul", rotated, sin));
        }

        String embed(String ids) {
            String h = g.op("Gather", new String[] {g.weight("embed"), ids}, Attr.i("axis", 0));
            return s.tied() && s.embedding() != 1.0 ? g.op("Mul", h, g.scalar((float) s.embedding())) : h;
        }

        String head(String hidden) {
            String normed = rmsNorm(hidden, g.weight("final_norm"));
            String flat = reshape(normed, -1, s.hidden());
            String logits = s.tied()
                    ? g.op("Gemm", new String[] {flat, g.weight("embed")}, Attr.i("transB", 1), Attr.f("alpha", (float) s.lmHead()))
                    : g.op("Gemm", new String[] {flat, g.weight("lm_head")}, Attr.i("transB", 1));
            return g.op("Reshape", logits, g.op("Concat", new String[] {idsShape, ints(s.vocab())}, Attr.i("axis", 0)));
        }

        String layer(int l, String hidden, boolean decode) {
            String o = "l" + l + ".";
            String normed = rmsNorm(hidden, g.weight(o + "input_norm"));
            String mamba = mamba(l, o, normed, decode);
            String attention = attention(l, o, normed, decode);
            hidden = g.op("Add", g.op("Add", hidden, mamba), attention);
            String x = rmsNorm(hidden, g.weight(o + "ff_norm"));
            String gate = linear(x, o + "gate", s.hidden(), s.intermediate());
            String up = linear(x, o + "up", s.hidden(), s.intermediate());
            String ff = linear(g.op("Mul", up, silu(gate)), o + "down", s.intermediate(), s.hidden());
            return g.op("Add", hidden, ff);
        }

        String attention(int l, String o, String x, boolean decode) {
            long nh = s.heads();
            long kv = s.kvHeads();
            long d = s.headDim();
            String q = transpose(reshape(linear(x, o + "q", s.hidden(), nh * d), 0, 0, nh, d), 0, 2, 1, 3);
            String k = transpose(reshape(linear(x, o + "k", s.hidden(), kv * d), 0, 0, kv, d), 0, 2, 1, 3);
            String v = transpose(reshape(linear(x, o + "v", s.hidden(), kv * d), 0, 0, kv, d), 0, 2, 1, 3);
            q = applyRope(q);
            k = applyRope(k);
            if (decode) {
                k = g.op("Concat", new String[] {pastKey[l], k}, Attr.i("axis", 2));
                v = g.op("Concat", new String[] {pastValue[l], v}, Attr.i("axis", 2));
            }
            cacheOut(l, "key", k, decode, "batch", kv, decode ? "total" : "sequence", d);
            cacheOut(l, "value", v, decode, "batch", kv, decode ? "total" : "sequence", d);
            // grouped-query attention without copying keys: q [B, kv, rep, T, d] against k [B, kv, 1, S, d]
            long rep = nh / kv;
            String q5 = reshape(q, 0, kv, rep, -1, d);
            String k5 = g.op("Unsqueeze", k, ints(2));
            String v5 = g.op("Unsqueeze", v, ints(2));
            String scores = g.op("Mul", g.op("MatMul", q5, transpose(k5, 0, 1, 2, 4, 3)),
                    g.scalar((float) (1.0 / Math.sqrt(d)))); // softmax(q k^T / sqrt(d)) (Vaswani et al. 2017)
            if (!decode) {
                scores = g.op("Add", scores, causalMask);
            }
            String probs = g.op("Softmax", new String[] {scores}, Attr.i("axis", -1));
            String out = reshape(g.op("MatMul", probs, v5), 0, nh, -1, d);
            out = reshape(transpose(out, 0, 2, 1, 3), 0, 0, nh * d);
            return linear(out, o + "o", nh * d, s.hidden());
        }

        void cacheOut(int l, String kind, String value, boolean decode, Object... dims) {
            g.output(present(l, kind), value, OnnxGraph.FLOAT, dims);
        }

        String mamba(int l, String o, String x, boolean decode) {
            long dSsm = s.dSsm();
            long conv = s.convDim();
            long h = s.mHeads();
            long p = s.mHeadDim();
            long gr = s.groups();
            long n = s.state();
            long r = h / gr;
            long k = s.convKernel();
            String projected = linear(x, o + "in_proj", s.hidden(), s.inProj());
            String[] parts = split(projected, 2, dSsm, conv, h);
            String gate = parts[0];
            String xbc = transpose(parts[1], 0, 2, 1); // [B, conv, T]
            String[] convInputs;
            String window;
            if (decode) {
                window = g.op("Concat", new String[] {pastConv[l], xbc}, Attr.i("axis", 2)); // [B, conv, k]
            } else {
                window = g.op("Pad", xbc, ints(0, 0, k - 1, 0, 0, 0)); // k - 1 zeros in front: a causal conv
            }
            convInputs = weights.has(o + "conv.bias")
                    ? new String[] {window, g.weight(o + "conv.weight"), g.weight(o + "conv.bias")}
                    : new String[] {window, g.weight(o + "conv.weight")};
            String convolved = g.op("Conv", convInputs, Attr.i("group", conv), Attr.ints("kernel_shape", k));
            // the conv cache: the last k - 1 inputs (zeros in front of a short prompt)
            String convCache = g.op("Slice", new String[] {window, ints(-(k - 1)), ints(Long.MAX_VALUE), ints(2)});
            cacheOut(l, "conv", convCache, decode, "batch", conv, k - 1);
            String activated = silu(transpose(convolved, 0, 2, 1)); // [B, T, conv]
            String[] pieces = split(activated, 2, dSsm, gr * n, gr * n);
            // dt = softplus(dt + dt_bias), clamped to time_step_limit (Mamba-2)
            String dt = g.op("Softplus", g.op("Add", parts[2], g.weight(o + "dt_bias")));
            if (s.clipsDt()) {
                dt = g.op("Clip", dt, g.scalar((float) s.dtLow()), g.scalar((float) Math.min(s.dtHigh(), Float.MAX_VALUE)));
            }
            String xs = reshape(pieces[0], 0, 0, h, p);
            String y;
            if (decode) {
                y = recurrentStep(l, o, xs, dt, pieces[1], pieces[2], h, p, gr, n, r);
            } else {
                y = chunkedScan(l, o, xs, dt, reshape(pieces[1], 0, 0, gr, n), reshape(pieces[2], 0, 0, gr, n), h, p, gr,
                        n, r);
            }
            y = g.op("Add", y, g.op("Mul", xs, g.weight(o + "D"))); // + D x
            y = reshape(y, 0, 0, dSsm);
            String hidden;
            if (s.mambaRmsNorm()) {
                hidden = y;
                if (!s.normBeforeGate()) {
                    hidden = g.op("Mul", hidden, silu(gate));
                }
                String grouped = reshape(hidden, 0, 0, gr, dSsm / gr);
                hidden = reshape(rmsNorm(grouped, g.weight(o + "gate_norm")), 0, 0, dSsm);
                if (s.normBeforeGate()) {
                    hidden = g.op("Mul", hidden, silu(gate));
                }
            } else {
                hidden = g.op("Mul", y, silu(gate));
            }
            return linear(hidden, o + "out_proj", dSsm, s.hidden());
        }

        /** One token: h = exp(dt A) h + (dt x) B^T per head, y = h C. xs [B, 1, H, P]; returns y [B, 1, H, P]. */
        String recurrentStep(int l, String o, String xs, String dt, String bm, String cm, long h, long p, long gr,
                long n, long r) {
            String dtH = reshape(dt, 0, h); // [B, H]
            String decay = g.op("Exp", g.op("Mul", dtH, g.weight(o + "A")));
            String state = reshape(pastSsm[l], 0, gr, r, p, n);
            String xdt = g.op("Mul", reshape(xs, 0, h, p), g.op("Unsqueeze", dtH, ints(2)));
            String update = g.op("Mul", reshape(xdt, 0, gr, r, p, 1), reshape(bm, 0, gr, 1, 1, n));
            String next = g.op("Add", g.op("Mul", state, reshape(decay, 0, gr, r, 1, 1)), update);
            cacheOut(l, "ssm", reshape(next, 0, h, p, n), true, "batch", h, p, n);
            String y = g.op("MatMul", next, reshape(cm, 0, gr, 1, n, 1)); // [B, G, R, P, 1]
            return reshape(y, 0, 1, h, p);
        }

        /**
         * The chunked SSD scan (Dao and Gu 2024, section 6; the "SSD minimal" listing), as
         * SsdScan.java and the TorchScript layer: the sequence padded to whole chunks of Q, the
         * intra-chunk part as masked matmuls, chunk-end states, the inter-chunk recurrence as one
         * matmul with the segment-sum decay, and the states back to outputs. Returns y
         * [B, T, H, P] and emits the state after the last token as the ssm cache.
         */
        String chunkedScan(int l, String o, String x, String dt, String bm, String cm, long h, long p, long gr, long n,
                long r) {
            long q = s.chunk();
            String xdt = g.op("Mul", x, g.op("Unsqueeze", dt, ints(3)));
            String decay = g.op("Mul", dt, g.weight(o + "A"));
            // pad T up to a multiple of Q: padding has zero input and zero log-decay, so it changes no state
            String padLength = g.op("Mod", g.op("Sub", ints(q), g.op("Mod", seq, ints(q))), ints(q));
            String zero = ints(0);
            xdt = g.op("Pad", xdt, g.op("Concat", new String[] {zero, zero, zero, zero, zero, padLength, zero, zero},
                    Attr.i("axis", 0)));
            decay = g.op("Pad", decay, g.op("Concat", new String[] {zero, zero, zero, zero, padLength, zero}, Attr.i("axis", 0)));
            String padGroups = g.op("Concat", new String[] {zero, zero, zero, zero, zero, padLength, zero, zero},
                    Attr.i("axis", 0));
            bm = g.op("Pad", bm, padGroups);
            cm = g.op("Pad", cm, padGroups);
            String xs = transpose(reshape(xdt, 0, -1, q, gr, r, p), 0, 1, 3, 4, 2, 5); // [B, C, G, R, Q, P]
            String logDecay = transpose(reshape(decay, 0, -1, q, h), 0, 1, 3, 2); // [B, C, H, Q]
            String cumulative = g.op("CumSum", logDecay, g.int64Scalar(3));
            String bc = transpose(reshape(bm, 0, -1, q, gr, n), 0, 1, 3, 2, 4); // [B, C, G, Q, N]
            String cc = transpose(reshape(cm, 0, -1, q, gr, n), 0, 1, 3, 2, 4);
            // 1. intra-chunk: L[i, j] = exp(sum_{k = j+1..i} logDecay_k) for j <= i, the stable segment sum
            float[] strictLower = new float[(int) (q * q)];
            float[] lower = new float[(int) (q * q)];
            for (int i = 0; i < q; i++) {
                for (int j = 0; j < q; j++) {
                    strictLower[(int) (i * q + j)] = i > j ? 1f : 0f;
                    lower[(int) (i * q + j)] = i >= j ? 1f : 0f;
                }
            }
            String expanded = g.op("Mul", g.op("Unsqueeze", logDecay, ints(4)), g.floats(new long[] {q, q}, strictLower));
            String decayMatrix = g.op("Mul", g.op("Exp", g.op("CumSum", expanded, g.int64Scalar(3))), g.floats(new long[] {q, q}, lower));
            String scores = g.op("MatMul", cc, transpose(bc, 0, 1, 2, 4, 3)); // [B, C, G, Q, Q]
            String mixing = g.op("Mul", g.op("Unsqueeze", scores, ints(3)), reshape(decayMatrix, 0, 0, gr, r, q, q));
            String yDiag = g.op("MatMul", mixing, xs); // [B, C, G, R, Q, P]
            // 2. chunk-end states
            String last = g.op("Slice", new String[] {cumulative, ints(q - 1), ints(q), ints(3)}); // [B, C, H, 1]
            String toEnd = g.op("Exp", g.op("Sub", last, cumulative));
            String weighted = g.op("Mul", xs, reshape(toEnd, 0, 0, gr, r, q, 1));
            String states = g.op("MatMul", reshape(transpose(weighted, 0, 1, 2, 3, 5, 4), 0, 0, gr, r * p, q), bc);
            // 3. inter-chunk recurrence from a zero state, as one matmul over C + 1 chunk boundaries
            String chunkDecay = g.op("Pad", transpose(reshape(last, 0, 0, h), 0, 2, 1), ints(0, 0, 1, 0, 0, 0)); // [B, H, C+1]
            String boundaries = g.op("Slice", new String[] {g.op("Shape", chunkDecay), ints(2), ints(3), ints(0)});
            String ones = g.op("Expand", g.scalar(1f), g.op("Concat", new String[] {boundaries, boundaries}, Attr.i("axis", 0)));
            String interStrictLower = g.op("Trilu", new String[] {ones, g.int64Scalar(-1)}, Attr.i("upper", 0));
            String interLower = g.op("Trilu", new String[] {ones}, Attr.i("upper", 0));
            String segsum = g.op("CumSum", g.op("Mul", g.op("Unsqueeze", chunkDecay, ints(3)), interStrictLower), g.int64Scalar(2));
            String interDecay = g.op("Mul", g.op("Exp", segsum), interLower); // [B, H, C+1, C+1]
            String flat = transpose(reshape(states, 0, 0, h, p * n), 0, 2, 1, 3); // [B, H, C, P*N]
            String withInitial = g.op("Pad", flat, ints(0, 0, 1, 0, 0, 0, 0, 0));
            String carriedAll = g.op("MatMul", interDecay, withInitial); // [B, H, C+1, P*N]: state entering each chunk, then the final
            String finalState = g.op("Slice", new String[] {carriedAll, ints(-1), ints(Long.MAX_VALUE), ints(2)});
            cacheOut(l, "ssm", reshape(finalState, 0, h, p, n), false, "batch", h, p, n);
            String carried = g.op("Slice", new String[] {carriedAll, ints(0), ints(-1), ints(2)});
            String entering = reshape(transpose(reshape(carried, 0, h, -1, p, n), 0, 2, 1, 3, 4), 0, 0, gr, r * p, n);
            // 4. states -> outputs
            String fromStart = g.op("Exp", cumulative);
            String yOff = g.op("MatMul", cc, transpose(entering, 0, 1, 2, 4, 3)); // [B, C, G, Q, R*P]
            yOff = transpose(reshape(yOff, 0, 0, gr, q, r, p), 0, 1, 2, 4, 3, 5);
            yOff = g.op("Mul", yOff, reshape(fromStart, 0, 0, gr, r, q, 1));
            String y = reshape(transpose(g.op("Add", yDiag, yOff), 0, 1, 4, 2, 3, 5), 0, -1, h, p); // [B, C*Q, H, P]
            return g.op("Slice", new String[] {y, ints(0), seq, ints(1)});
        }
    }
}
