package io.anneal.hybrid.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv1d;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.core.Linear;
import ai.djl.ndarray.types.SparseFormat;
import io.anneal.api.InputException;
import io.anneal.api.model.ObservableModel;
import java.util.function.BiConsumer;
import io.anneal.api.model.ModelInput;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.model.MupMultipliers;
import io.anneal.api.model.StepGraphs;
import io.anneal.api.optim.NamedParameter;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.toolkit.autograd.DifferentiableCasts;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Falcon-H1 (transformers' {@code FalconH1ForCausalLM}) in DJL NDArray operations. Each decoder layer
 * feeds one RMS-normalised input to grouped-query attention with RoPE and to a Mamba2 mixer in
 * parallel, adds both to the residual, then a SwiGLU MLP; a final norm and a tied or untied LM head.
 * Every muP multiplier is applied where transformers applies it (modeling_falcon_h1.py).
 *
 * <p>Parameters are float32 master weights named as in the Hugging Face checkpoint. With
 * {@link ModelOptions#computeType()} FLOAT16, matrices are cast to float16 for the matmuls, while
 * A_log, dt_bias, D, the norms, the SSD scan and the residual stream stay float32 (DESIGN.md, "GPU
 * facts"); the logits come out float16.
 */
public final class FalconH1Model implements ObservableModel {
    private final FalconH1Config config;
    private final MupMultipliers mup;
    private final ModelOptions options;
    private final NDManager manager;
    private final Map<String, Parameter> parameters;
    private final DataType compute;
    /** Per-channel multipliers over the in_proj output slices [z, x, B, C, dt] (transformers' compute_mup_vector). */
    private final NDArray mupVector;
    /** The constants of the forward pass (multipliers, eps), made once on the model's device. */
    private final DeviceScalars scalars;
    /** The caller's per-pass manager: arrays derived from parameters are attached to it, never to the model's. */
    private NDManager scope;
    /** RoPE's inverse frequencies [1, 1, headDim/2], made on first use. */
    private NDArray inverseFrequencies;
    /** The CUDA graphs of the fused path, made on first use. */
    private CudaStepGraphs stepGraphs;
    /** The compiled TorchScript layer, or null when the layers run as DJL operations. */
    private TorchScriptLayers torchScript;
    /** How {@link #save} writes the weights (the model block's save-dtype and save-max-shard-size). */
    private SaveFormat saveFormat = SaveFormat.DEFAULT;

    FalconH1Model(FalconH1Config config, MupMultipliers mup, ModelOptions options, NDManager manager,
            Map<String, Parameter> parameters) {
        this.config = config;
        this.mup = mup;
        this.options = options;
        this.manager = manager;
        this.parameters = parameters;
        this.scalars = new DeviceScalars(manager);
        this.compute = options.computeType() == DataType.FLOAT16 ? DataType.FLOAT16 : DataType.FLOAT32;
        double[] m = mup.ssmMultipliers();
        if (m.length != 5) {
            throw new InputException("ssm_multipliers must have 5 values (z, x, B, C, dt), found " + m.length);
        }
        if (mup.mlpMultipliers().length != 2) {
            throw new InputException("mlp_multipliers must have 2 values (gate, down), found " + mup.mlpMultipliers().length);
        }
        boolean allOne = true;
        for (double v : m) {
            allOne &= v == 1.0;
        }
        if (allOne) {
            mupVector = null;
        } else {
            int dSsm = config.mambaDSsm();
            int gn = config.mambaNGroups() * config.mambaDState();
            int[] sizes = {dSsm, dSsm, gn, gn, config.mambaNHeads()};
            float[] vector = new float[config.inProjSize()];
            int at = 0;
            for (int s = 0; s < 5; s++) {
                for (int i = 0; i < sizes[s]; i++) {
                    vector[at++] = (float) m[s];
                }
            }
            mupVector = manager.create(vector);
        }
        useLayers(LayerImplementation.TORCHSCRIPT);
    }

    /** Selects how the decoder layers run (TorchScript by default; see {@link LayerImplementation}). */
    public FalconH1Model useLayers(LayerImplementation implementation) {
        return useLayers(implementation, false, FusedLayerOptions.DEFAULT);
    }

    /**
     * Selects how the decoder layers run; {@code fused} (TorchScript only) puts the Mamba-2 mixer and
     * the LM head on the fused operators, which {@link FusedKernels#select} must have loaded.
     * {@code options} (fused only): how the fused layers run (model.ssd-recompute, model.branch-stream).
     */
    public FalconH1Model useLayers(LayerImplementation implementation, boolean fused, FusedLayerOptions options) {
        boolean wantFused = fused && implementation == LayerImplementation.TORCHSCRIPT;
        FusedLayerOptions wanted = wantFused ? options : FusedLayerOptions.DEFAULT;
        if (torchScript != null && implementation == LayerImplementation.TORCHSCRIPT && torchScript.fused() == wantFused
                && torchScript.options().equals(wanted)) {
            return this;
        }
        if (torchScript != null) {
            torchScript.close();
            torchScript = null;
        }
        if (implementation == LayerImplementation.TORCHSCRIPT) {
            torchScript = new TorchScriptLayers(config, mup, compute, manager, parameters, mupVector, wantFused,
                    wanted);
        }
        return this;
    }

    /** Whether the fused operators run this model's Mamba-2 mixers and LM head. */
    public boolean fused() {
        return torchScript != null && torchScript.fused();
    }

    /** The kernels and compute type: fused operators or reference layers (TorchScript or DJL operations). */
    @Override
    public String numerics() {
        if (fused()) {
            return "fused operators, " + (compute == DataType.FLOAT32 ? "float32" : "bfloat16") + " inside";
        }
        return (torchScript != null ? "TorchScript layers, " : "DJL operations, ") + (compute == DataType.FLOAT16 ? "float16" : "float32");
    }

    /** RoPE's inverse frequencies on the model's device, made once for every pass (a capturable pass copies nothing from Java). */
    private NDArray inverseFrequencies() {
        if (inverseFrequencies == null) {
            inverseFrequencies = SequenceLayout.inverseFrequencies(manager, config.headDim(), config.ropeTheta());
        }
        return inverseFrequencies;
    }

    /**
     * On the fused path on a GPU: the passes enqueue device work only (the layout is built on the
     * device, the layers and the head are TorchScript and Anneal's operators), so a step can be
     * captured as a CUDA graph; the graphs are driven by the operators' library.
     */
    @Override
    public Optional<StepGraphs> stepGraphs() {
        if (!fused() || !manager.getDevice().isGpu()) {
            return Optional.empty();
        }
        inverseFrequencies();
        if (stepGraphs == null) {
            stepGraphs = new CudaStepGraphs(manager);
        }
        return Optional.of(stepGraphs);
    }

    public LayerImplementation layers() {
        return torchScript == null ? LayerImplementation.NDARRAY : LayerImplementation.TORCHSCRIPT;
    }

    public FalconH1Config config() {
        return config;
    }

    public MupMultipliers multipliers() {
        return mup;
    }

    /** The parameter array under its checkpoint name. */
    public NDArray array(String name) {
        Parameter p = parameters.get(name);
        if (p == null) {
            throw new IllegalArgumentException("no parameter " + name);
        }
        return p.getArray();
    }

    Map<String, Parameter> parameterMap() {
        return parameters;
    }

    @Override
    public NDArray forward(NDManager scope, ModelInput input, boolean training) {
        return forward(scope, input, training, null);
    }

    @Override
    public NDArray forward(NDManager passManager, ModelInput input, boolean training,
            BiConsumer<String, NDArray> activations) {
        NDArray hidden = finalHidden(passManager, input, training, activations);
        hidden = rmsNorm(hidden, "model.final_layernorm.weight");
        NDArray head = weight(config.tieWordEmbeddings() ? "model.embed_tokens.weight" : "lm_head.weight");
        NDArray logits = scale(Linear.linear(hidden, head).singletonOrThrow(), mup.lmHead());
        record(activations, "logits", logits);
        return logits;
    }

    /**
     * On the fused path: the final norm, the LM head and each label's log-likelihood in one
     * operator, in token chunks, so that no [tokens, vocab] float32 logits exist.
     */
    @Override
    public Optional<NDList> labelLogProbabilities(NDManager passManager, ModelInput input, NDArray labels,
            boolean training) {
        if (!fused()) {
            return Optional.empty();
        }
        NDArray hidden = finalHidden(passManager, input, training, null);
        NDArray head = array(config.tieWordEmbeddings() ? "model.embed_tokens.weight" : "lm_head.weight");
        NDList out = torchScript.head(hidden, array("model.final_layernorm.weight"), head, labels, training);
        Shape shape = labels.getShape();
        return Optional.of(new NDList(out.get(0).reshape(shape), out.get(1).reshape(shape), out.get(2).reshape(shape)));
    }

    /** The residual stream after the last decoder layer (before the final norm). */
    private NDArray finalHidden(NDManager passManager, ModelInput input, boolean training,
            BiConsumer<String, NDArray> activations) {
        this.scope = passManager;
        NDArray ids = input.inputIds();
        if (ids.getShape().dimension() != 2) {
            throw new InputException("inputIds must be [batch, sequence], found shape " + ids.getShape());
        }
        int batch = (int) ids.getShape().get(0);
        int length = (int) ids.getShape().get(1);
        checkSameShape("positionIds", input.positionIds(), ids);
        checkSameShape("documentIds", input.documentIds(), ids);
        SequenceLayout layout = fused()
                ? SequenceLayout.onDevice(passManager, input.positionIds(), input.documentIds(), batch, length,
                        config.mambaChunkSize(), inverseFrequencies())
                : new SequenceLayout(passManager, input.positionIds(), input.documentIds(), batch, length,
                        config.mambaChunkSize(), config.mambaDConv(), inverseFrequencies());

        NDArray tokens = ids.toType(DataType.INT64, false);
        // The lookup reads the float32 master table: the residual stream stays float32 (as under
        // torch autocast), and float16 sublayer outputs are promoted when added to it.
        NDArray embedding = array("model.embed_tokens.weight");
        NDArray hidden = own(Embedding.embedding(tokens, embedding, SparseFormat.DENSE).singletonOrThrow());
        hidden = scale(hidden, mup.embedding());
        record(activations, "embedding", hidden);
        for (int layer = 0; layer < config.numHiddenLayers(); layer++) {
            if (torchScript != null) {
                hidden = torchScript.apply(layer, hidden, layout, training);
                record(activations, "layer." + layer, hidden);
                continue;
            }
            String prefix = "model.layers." + layer + ".";
            NDArray normed = rmsNorm(hidden, prefix + "input_layernorm.weight");
            NDArray mamba = scale(mamba(prefix + "mamba.", normed, layout), mup.ssmOut());
            NDArray attention = scale(attention(prefix + "self_attn.", scale(normed, mup.attentionIn()), layout),
                    mup.attentionOut());
            hidden = hidden.add(mamba).add(attention);
            NDArray ff = mlp(prefix + "feed_forward.", rmsNorm(hidden, prefix + "pre_ff_layernorm.weight"));
            hidden = hidden.add(ff);
            record(activations, "layer." + layer, hidden);
        }
        return hidden;
    }

    private static void checkSameShape(String name, NDArray array, NDArray ids) {
        if (array != null && !array.getShape().equals(ids.getShape())) {
            throw new InputException(name + " must have the shape of inputIds " + ids.getShape() + ", found "
                    + array.getShape());
        }
    }

    private static void record(BiConsumer<String, NDArray> observer, String site, NDArray x) {
        if (observer != null) {
            observer.accept(site, x);
        }
    }

    /** A matrix in the compute type (a cast of the float32 master weight under float16). */
    private NDArray weight(String name) {
        NDArray w = array(name);
        return compute == DataType.FLOAT32 ? w : own(cast(w, compute));
    }

    /**
     * A cast autograd records (DJL's toType detaches: see {@link DifferentiableCasts}); the same
     * array when the type already matches.
     */
    static NDArray cast(NDArray x, DataType type) {
        if (x.getDataType() == type) {
            return x;
        }
        return type == DataType.FLOAT16 ? DifferentiableCasts.toFloat16(x) : DifferentiableCasts.toFloat32(x);
    }

    /** Moves an array made from a parameter to the pass's manager, which the caller closes after backward. */
    private NDArray own(NDArray x) {
        x.attach(scope);
        return x;
    }

    private NDArray optionalWeight(String name, boolean present) {
        return present ? weight(name) : null;
    }

    private NDArray scale(NDArray x, double factor) {
        return factor == 1.0 ? x : x.mul(scalars.get(factor));
    }

    private static NDArray silu(NDArray x) {
        return x.mul(Activation.sigmoid(x));
    }

    private NDArray linear(NDArray x, String prefix, boolean bias) {
        NDArray w = weight(prefix + ".weight");
        NDArray b = optionalWeight(prefix + ".bias", bias);
        return (b == null ? Linear.linear(x, w) : Linear.linear(x, w, b)).singletonOrThrow();
    }

    /** FalconH1RMSNorm: normalise in float32, multiply by the (float32) weight, back to the compute type. */
    private NDArray rmsNorm(NDArray x, String weightName) {
        NDArray xf = cast(x, DataType.FLOAT32);
        NDArray normalised = xf.mul(inverseRms(xf));
        return cast(normalised.mul(array(weightName)), compute);
    }

    /** 1 / sqrt(mean(x^2) + eps) over the last axis, for the RMS norms. */
    private NDArray inverseRms(NDArray x) {
        return x.square().mean(new int[] {-1}, true).add(scalars.get(config.rmsNormEps())).pow(scalars.get(-0.5));
    }

    private NDArray mlp(String prefix, NDArray x) {
        double[] m = mup.mlpMultipliers();
        NDArray gate = scale(linear(x, prefix + "gate_proj", config.mlpBias()), m[0]);
        NDArray up = linear(x, prefix + "up_proj", config.mlpBias());
        return scale(linear(up.mul(silu(gate)), prefix + "down_proj", config.mlpBias()), m[1]);
    }

    private NDArray attention(String prefix, NDArray x, SequenceLayout layout) {
        int b = layout.batch;
        int t = layout.length;
        int heads = config.numAttentionHeads();
        int kvHeads = config.numKeyValueHeads();
        int d = config.headDim();
        boolean bias = config.attentionBias();
        NDArray q = linear(x, prefix + "q_proj", bias).reshape(b, t, heads, d).transpose(0, 2, 1, 3);
        NDArray k = scale(linear(x, prefix + "k_proj", bias).reshape(b, t, kvHeads, d).transpose(0, 2, 1, 3), mup.key());
        NDArray v = linear(x, prefix + "v_proj", bias).reshape(b, t, kvHeads, d).transpose(0, 2, 1, 3);
        q = rope(q, layout);
        k = rope(k, layout);
        if (kvHeads != heads) {
            int rep = heads / kvHeads;
            k = k.expandDims(2).broadcast(b, kvHeads, rep, t, d).reshape(b, heads, t, d);
            v = v.expandDims(2).broadcast(b, kvHeads, rep, t, d).reshape(b, heads, t, d);
        }
        NDArray scores = q.matMul(k.transpose(0, 1, 3, 2)).mul(scalars.get(Math.pow(d, -0.5)));
        // Float32: softmax in float32 as transformers' eager attention does. Float16: the mask is added
        // in float16 and PyTorch's softmax accumulates in float32 internally, which saves two casts
        // and half the memory traffic of the largest tensors of the step ([B, H, T, T] per layer).
        NDArray probabilities = compute == DataType.FLOAT16
                ? scores.add(layout.attentionMaskHalf()).softmax(-1)
                : scores.add(layout.attentionMask()).softmax(-1);
        NDArray out = probabilities.matMul(v).transpose(0, 2, 1, 3).reshape(b, t, (long) heads * d);
        return linear(out, prefix + "o_proj", bias);
    }

    /** q * cos + rotate_half(q) * sin, with rotate_half(x) = [-x2, x1]. */
    private NDArray rope(NDArray x, SequenceLayout layout) {
        long half = x.getShape().get(3) / 2;
        NDList halves = x.split(new long[] {half}, 3);
        NDArray rotated = halves.get(1).neg().concat(halves.get(0), 3);
        NDArray cos = layout.cos.toType(x.getDataType(), false);
        NDArray sin = layout.sin.toType(x.getDataType(), false);
        return x.mul(cos).add(rotated.mul(sin));
    }

    private NDArray mamba(String prefix, NDArray x, SequenceLayout layout) {
        int b = layout.batch;
        int t = layout.length;
        int dSsm = config.mambaDSsm();
        int convDim = config.convDim();
        int heads = config.mambaNHeads();
        int groups = config.mambaNGroups();
        int state = config.mambaDState();
        NDArray projected = linear(scale(x, mup.ssmIn()), prefix + "in_proj", config.mambaProjBias());
        if (mupVector != null) {
            projected = projected.mul(compute == DataType.FLOAT32 ? mupVector : own(mupVector.toType(compute, false)) /* a constant: no gradient needed */);
        }
        NDList parts = projected.split(new long[] {dSsm, dSsm + convDim}, 2);
        NDArray gate = parts.get(0);
        NDArray xBC = silu(conv(prefix, parts.get(1), layout));
        NDArray dt = cast(parts.get(2), DataType.FLOAT32);
        NDList xbc = xBC.split(new long[] {dSsm, dSsm + (long) groups * state}, 2);
        NDArray xs = cast(xbc.get(0), DataType.FLOAT32).reshape(b, t, heads, config.mambaDHead());
        NDArray bMat = cast(xbc.get(1), DataType.FLOAT32).reshape(b, t, groups, state);
        NDArray cMat = cast(xbc.get(2), DataType.FLOAT32).reshape(b, t, groups, state);
        // dt = softplus(dt + dt_bias), clamped to time_step_limit (Mamba-2, Dao & Gu 2024).
        dt = Activation.softPlus(dt.add(array(prefix + "dt_bias")));
        if (config.clipsTimeStep()) {
            dt = dt.clip(config.timeStepLimitLow(), config.timeStepLimitHighFinite());
        }
        NDArray a = own(array(prefix + "A_log").exp()).neg();
        NDArray y = SsdScan.scan(xs, dt, a, bMat, cMat, layout);
        y = y.add(xs.mul(own(array(prefix + "D").reshape(heads, 1)))).reshape(b, t, dSsm);
        NDArray gated;
        if (config.mambaRmsNorm()) {
            gated = gatedRmsNorm(y, cast(gate, DataType.FLOAT32), array(prefix + "norm.weight"));
        } else {
            gated = y.mul(silu(cast(gate, DataType.FLOAT32)));
        }
        return linear(cast(gated, compute), prefix + "out_proj", config.projectorsBias());
    }

    /** FalconH1RMSNormGated: per-group RMS norm over n_groups slices, gate applied before or after (float32). */
    private NDArray gatedRmsNorm(NDArray y, NDArray gate, NDArray weight) {
        Shape shape = y.getShape();
        int groups = config.mambaNGroups();
        long dim = shape.get(2);
        NDArray h = y;
        if (!config.mambaNormBeforeGate()) {
            h = h.mul(silu(gate));
        }
        NDArray grouped = h.reshape(shape.get(0), shape.get(1), groups, dim / groups);
        NDArray normed = grouped.mul(inverseRms(grouped));
        h = normed.mul(own(weight.reshape(groups, dim / groups))).reshape(shape);
        if (config.mambaNormBeforeGate()) {
            h = h.mul(silu(gate));
        }
        return h;
    }

    /**
     * Causal depthwise conv1d of kernel d_conv over xBC. Unpacked rows use one conv1d call (left
     * padding K-1, keep the first T outputs, as transformers). Packed rows sum K shifted copies, each
     * masked so that a token never sees a previous document's tokens.
     */
    private NDArray conv(String prefix, NDArray xBC, SequenceLayout layout) {
        NDArray w = weight(prefix + "conv1d.weight");
        NDArray bias = config.mambaConvBias() ? weight(prefix + "conv1d.bias") : null;
        int k = config.mambaDConv();
        int t = layout.length;
        int channels = config.convDim();
        if (!layout.packed) {
            NDArray in = xBC.transpose(0, 2, 1);
            NDArray out = Conv1d.conv1d(in, w, bias, new Shape(1), new Shape(k - 1), new Shape(1), channels)
                    .singletonOrThrow();
            return out.get(":, :, 0:" + t).transpose(0, 2, 1);
        }
        NDArray taps = compute == DataType.FLOAT32 ? own(w.reshape(channels, k)) : w.reshape(channels, k); // tap k-1 multiplies x_t, tap k-1-s multiplies x_{t-s}
        NDArray out = xBC.mul(taps.get(":, " + (k - 1)));
        for (int s = 1; s < k && s < t; s++) {
            NDArray shifted = xBC.get(":, 0:" + (t - s) + ", :");
            NDArray zeros = xBC.zerosLike().get(":, 0:" + s + ", :");
            shifted = zeros.concat(shifted, 1).mul(layout.convMasks[s].toType(xBC.getDataType(), false));
            out = out.add(shifted.mul(taps.get(":, " + (k - 1 - s))));
        }
        return bias == null ? out : out.add(bias);
    }

    /** config.json fields: the architecture and the multipliers (as {@link FalconH1Checkpoints#save} writes them). */
    @Override
    public Map<String, Object> configJson() {
        Map<String, Object> json = new java.util.LinkedHashMap<>(config.toConfigJson());
        json.putAll(mup.asConfigJson());
        return json;
    }

    @Override
    public List<NamedParameter> parameters() {
        List<NamedParameter> list = new ArrayList<>();
        for (Map.Entry<String, Parameter> e : parameters.entrySet()) {
            list.add(new NamedParameter(e.getKey(), e.getValue(), mup.lrFactor(e.getKey())));
        }
        return list;
    }

    @Override
    public int vocabSize() {
        return config.vocabSize();
    }

    @Override
    public long parameterCount() {
        long n = 0;
        for (Parameter p : parameters.values()) {
            n += p.getArray().size();
        }
        return n;
    }

    /** Sets how {@link #save} writes the weights. */
    public FalconH1Model saveAs(SaveFormat format) {
        this.saveFormat = format;
        return this;
    }

    @Override
    public void save(Path directory) throws IOException {
        FalconH1Checkpoints.save(this, directory, saveFormat);
    }

    /** Names and shapes of every tensor of this configuration, in checkpoint order. */
    public static Map<String, Shape> tensorShapes(FalconH1Config c) {
        Map<String, Shape> s = new LinkedHashMap<>();
        int h = c.hiddenSize();
        s.put("model.embed_tokens.weight", new Shape(c.vocabSize(), h));
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String p = "model.layers." + i + ".";
            s.put(p + "input_layernorm.weight", new Shape(h));
            s.put(p + "pre_ff_layernorm.weight", new Shape(h));
            int qDim = c.numAttentionHeads() * c.headDim();
            int kvDim = c.numKeyValueHeads() * c.headDim();
            s.put(p + "self_attn.q_proj.weight", new Shape(qDim, h));
            s.put(p + "self_attn.k_proj.weight", new Shape(kvDim, h));
            s.put(p + "self_attn.v_proj.weight", new Shape(kvDim, h));
            s.put(p + "self_attn.o_proj.weight", new Shape(h, qDim));
            if (c.attentionBias()) {
                s.put(p + "self_attn.q_proj.bias", new Shape(qDim));
                s.put(p + "self_attn.k_proj.bias", new Shape(kvDim));
                s.put(p + "self_attn.v_proj.bias", new Shape(kvDim));
                s.put(p + "self_attn.o_proj.bias", new Shape(h));
            }
            s.put(p + "mamba.in_proj.weight", new Shape(c.inProjSize(), h));
            if (c.mambaProjBias()) {
                s.put(p + "mamba.in_proj.bias", new Shape(c.inProjSize()));
            }
            s.put(p + "mamba.conv1d.weight", new Shape(c.convDim(), 1, c.mambaDConv()));
            if (c.mambaConvBias()) {
                s.put(p + "mamba.conv1d.bias", new Shape(c.convDim()));
            }
            s.put(p + "mamba.dt_bias", new Shape(c.mambaNHeads()));
            s.put(p + "mamba.A_log", new Shape(c.mambaNHeads()));
            s.put(p + "mamba.D", new Shape(c.mambaNHeads()));
            if (c.mambaRmsNorm()) {
                s.put(p + "mamba.norm.weight", new Shape(c.mambaDSsm()));
            }
            s.put(p + "mamba.out_proj.weight", new Shape(h, c.mambaDSsm()));
            if (c.projectorsBias()) {
                s.put(p + "mamba.out_proj.bias", new Shape(h));
            }
            s.put(p + "feed_forward.gate_proj.weight", new Shape(c.intermediateSize(), h));
            s.put(p + "feed_forward.up_proj.weight", new Shape(c.intermediateSize(), h));
            s.put(p + "feed_forward.down_proj.weight", new Shape(h, c.intermediateSize()));
            if (c.mlpBias()) {
                s.put(p + "feed_forward.gate_proj.bias", new Shape(c.intermediateSize()));
                s.put(p + "feed_forward.up_proj.bias", new Shape(c.intermediateSize()));
                s.put(p + "feed_forward.down_proj.bias", new Shape(h));
            }
        }
        s.put("model.final_layernorm.weight", new Shape(h));
        if (!c.tieWordEmbeddings()) {
            s.put("lm_head.weight", new Shape(c.vocabSize(), h));
        }
        return s;
    }

    @Override
    public void close() {
        if (torchScript != null) {
            torchScript.close();
        }
        manager.close();
    }

    ModelOptions options() {
        return options;
    }
}
