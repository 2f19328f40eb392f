package io.anneal.hybrid.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Parameter;
import io.anneal.api.model.MupMultipliers;
import io.anneal.toolkit.torchscript.TorchScriptModule;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The decoder layers of {@link FalconH1Model} run as one TorchScript call each
 * ({@code FalconH1Layer.torchscript}, compiled by {@link TorchScriptModule}): libtorch's interpreter
 * runs the ~150 operations of a layer without a JNI round trip per operation, and attention goes
 * through {@code scaled_dot_product_attention} (flash for unpacked rows, memory-efficient with a
 * document mask for packed ones). The float32 master weights go in as they are, as the
 * {@code Dict[str, Tensor]} argument {@code w}, and are cast inside, so autograd reaches them
 * without {@link io.anneal.toolkit.autograd.DifferentiableCasts}.
 *
 * <p>The fused variant ({@code FalconH1FusedLayer.torchscript}) runs the Mamba-2 mixer on Anneal's
 * own libtorch operators ({@link FusedKernels}) in bfloat16, takes per-token document ids instead of
 * the precomputed masks, and offers {@link #head}: the final norm, the LM head and the label
 * log-likelihoods without [tokens, vocab] float32 logits.
 */
final class TorchScriptLayers implements AutoCloseable {
    private static final String SOURCE = "FalconH1Layer.torchscript";
    private static final String FUSED_SOURCE = "FalconH1FusedLayer.torchscript";
    /**
     * Tokens per chunk of the fused LM head when no gradient is wanted (evaluation, DPO's frozen
     * reference): [4096, vocab] logits at most at a time. A training step's head makes all its
     * logits at once and keeps their gradient direction for the backward (anneal_ops.cpp).
     */
    private static final int HEAD_CHUNK = 4096;

    private final TorchScriptModule module;
    /** Per layer: the parameters under "model.layers.i.", by their key relative to the layer. */
    private final List<Map<String, Parameter>> layerWeights = new ArrayList<>();
    private final NDArray mupVector;
    private final boolean fused;
    private final FusedLayerOptions options;

    /** {@code options}: how the fused layers run (ignored on the reference layers). */
    TorchScriptLayers(FalconH1Config config, MupMultipliers mup, DataType compute, NDManager manager,
            Map<String, Parameter> parameters, NDArray mupVector, boolean fused, FusedLayerOptions options) {
        this(config, mup, compute, manager, parameters, mupVector, fused, options, null);
    }

    /**
     * {@code source}: the layer class's TorchScript in place of the resource (null: the resource);
     * FusedLayerWiringTest runs the fused layer's calls on CPU versions of its operators this way.
     */
    TorchScriptLayers(FalconH1Config config, MupMultipliers mup, DataType compute, NDManager manager,
            Map<String, Parameter> parameters, NDArray mupVector, boolean fused, FusedLayerOptions options,
            String source) {
        this.mupVector = mupVector;
        this.fused = fused;
        this.options = options;
        for (int layer = 0; layer < config.numHiddenLayers(); layer++) {
            String prefix = "model.layers." + layer + ".";
            Map<String, Parameter> weights = new LinkedHashMap<>();
            for (Map.Entry<String, Parameter> e : parameters.entrySet()) {
                if (e.getKey().startsWith(prefix)) {
                    weights.put(e.getKey().substring(prefix.length()), e.getValue());
                }
            }
            layerWeights.add(weights);
        }
        Map<String, Object> attributes = fused ? fusedAttributes(config, mup, compute, options)
                : attributes(config, mup, compute);
        module = source != null ? TorchScriptModule.compile("FalconH1Layer", source, attributes, manager.getDevice())
                : TorchScriptModule.compile("FalconH1Layer",
                        TorchScriptLayers.class.getResourceAsStream(fused ? FUSED_SOURCE : SOURCE), attributes,
                        manager.getDevice());
    }

    /** The fused layer's attributes ({@code FalconH1FusedLayer.torchscript}), in its declarations' order. */
    static Map<String, Object> fusedAttributes(FalconH1Config config, MupMultipliers mup, DataType compute,
            FusedLayerOptions options) {
        Map<String, Object> attributes = attributes(config, mup, compute);
        attributes.put("ssd_chunk", config.mambaChunkSize());
        attributes.put("ssd_recompute", options.ssdRecompute());
        attributes.put("branch_streams", options.branchStream().torchScriptValue());
        attributes.put("keep_casts", options.keepWeightCasts());
        attributes.put("lm_head", mup.lmHead());
        attributes.put("head_chunk", HEAD_CHUNK);
        return attributes;
    }

    /** The configuration as the module attributes the TorchScript class declares, in its order. */
    static Map<String, Object> attributes(FalconH1Config c, MupMultipliers mup, DataType compute) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("training", true);
        a.put("half", compute == DataType.FLOAT16);
        a.put("heads", c.numAttentionHeads());
        a.put("kv_heads", c.numKeyValueHeads());
        a.put("head_dim", c.headDim());
        a.put("d_ssm", c.mambaDSsm());
        a.put("conv_dim", c.convDim());
        a.put("m_heads", c.mambaNHeads());
        a.put("m_head_dim", c.mambaDHead());
        a.put("groups", c.mambaNGroups());
        a.put("state", c.mambaDState());
        a.put("conv_kernel", c.mambaDConv());
        a.put("eps", c.rmsNormEps());
        a.put("attention_in", mup.attentionIn());
        a.put("attention_out", mup.attentionOut());
        a.put("key_multiplier", mup.key());
        a.put("ssm_in", mup.ssmIn());
        a.put("ssm_out", mup.ssmOut());
        a.put("mlp_gate", mup.mlpMultipliers()[0]);
        a.put("mlp_down", mup.mlpMultipliers()[1]);
        a.put("mamba_rms_norm", c.mambaRmsNorm());
        a.put("norm_before_gate", c.mambaNormBeforeGate());
        a.put("dt_low", c.timeStepLimitLow());
        a.put("dt_high", c.timeStepLimitHighFinite());
        a.put("clip_dt", c.clipsTimeStep());
        return a;
    }

    /** Layer {@code layer} on the float32 residual stream {@code hidden}; the result lives in hidden's manager. */
    NDArray apply(int layer, NDArray hidden, SequenceLayout layout, boolean training) {
        Map<String, Parameter> weights = layerWeights.get(layer);
        List<NDArray> inputs = new ArrayList<>(weights.size() + 16);
        List<String> names = new ArrayList<>(weights.size() + 16);
        add(inputs, names, hidden, null);
        for (Map.Entry<String, Parameter> e : weights.entrySet()) {
            add(inputs, names, e.getValue().getArray(), "w." + e.getKey());
        }
        if (mupVector != null) {
            add(inputs, names, mupVector, "w.mup_vector");
        }
        add(inputs, names, layout.cos, null);
        add(inputs, names, layout.sin, null);
        if (fused) {
            if (layout.packed) {
                add(inputs, names, layout.attentionAllowed(), null);
                add(inputs, names, layout.documentIds(), null);
            }
            return module.call(layout.packed ? "packed" : "forward", inputs, names, training).singletonOrThrow();
        }
        if (layout.packed) {
            add(inputs, names, layout.attentionAllowed(), null);
            add(inputs, names, layout.convMaskStack, null);
        }
        add(inputs, names, layout.strictLower, null);
        add(inputs, names, layout.intraMask, null);
        if (layout.packed) {
            add(inputs, names, layout.toChunkEndMask, null);
            add(inputs, names, layout.fromChunkStartMask, null);
            add(inputs, names, layout.interChunkMask, null);
        }
        add(inputs, names, layout.interStrictLower, null);
        add(inputs, names, layout.interLower, null);
        return module.call(layout.packed ? "packed" : "forward", inputs, names, training).singletonOrThrow();
    }

    boolean fused() {
        return fused;
    }

    FusedLayerOptions options() {
        return options;
    }

    /**
     * The fused head on the float32 residual stream {@code hidden}: (log_prob, correct), each
     * [batch * sequence] float32, 0 where the label is -100.
     */
    NDList head(NDArray hidden, NDArray finalNorm, NDArray headWeight, NDArray labels, boolean training) {
        return module.call("head", List.of(hidden, finalNorm, headWeight, labels), java.util.Arrays.asList(null, null,
                null, null), training);
    }

    private static void add(List<NDArray> inputs, List<String> names, NDArray array, String name) {
        inputs.add(array);
        names.add(name);
    }

    @Override
    public void close() {
        module.close();
    }
}
