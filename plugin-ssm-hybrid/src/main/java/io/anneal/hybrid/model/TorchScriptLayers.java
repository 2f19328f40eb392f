package io.anneal.hybrid.model;

import ai.djl.Model;
import ai.djl.MalformedModelException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import io.anneal.api.model.MupMultipliers;
import io.anneal.hybrid.torchscript.TorchScriptArchive;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The decoder layers of {@link FalconH1Model} run as one TorchScript call each
 * ({@code FalconH1Layer.torchscript}): libtorch's interpreter runs the ~150 operations of a layer
 * without a JNI round trip per operation, attention goes through
 * {@code scaled_dot_product_attention} (flash for unpacked rows, memory-efficient with a document
 * mask for packed ones), and libtorch's graph executor fuses element-wise chains. The float32 master
 * weights go in as they are and are cast inside, so autograd reaches them without
 * {@link io.anneal.api.train.DifferentiableCasts}.
 *
 * <p>DJL passes arrays named {@code w.<key>} as one {@code Dict[str, Tensor]} argument {@code w}
 * (its {@code IValueUtils}), and an array named {@code module_method:packed} selects the method.
 */
final class TorchScriptLayers implements AutoCloseable {
    private static final String SOURCE = "FalconH1Layer.torchscript";
    /**
     * DJL's switch for libtorch's graph executor optimisations (profiling, fusion, symbolic autodiff),
     * which it applies before every TorchScript call. Off unless the user set it: the symbolic
     * gradient of {@code linear} in a differentiable graph does not cast a float32 gradient back to a
     * float16 input (an add promoting float16 to float32 feeds it), so float16 backward fails there.
     * Plain interpretation runs each operation with eager autograd, which handles type promotion.
     */
    private static final String GRAPH_OPTIMIZER = "ai.djl.pytorch.graph_optimizer";

    private final Model module;
    private final Block block;
    /** Per layer: the parameters under "model.layers.i.", by their key relative to the layer. */
    private final List<Map<String, Parameter>> layerWeights = new ArrayList<>();
    private final NDArray mupVector;
    private final NDArray packedMethod;

    TorchScriptLayers(FalconH1Config config, MupMultipliers mup, DataType compute, NDManager manager,
            Map<String, Parameter> parameters, NDArray mupVector) {
        this.mupVector = mupVector;
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
        if (System.getProperty(GRAPH_OPTIMIZER) == null) {
            System.setProperty(GRAPH_OPTIMIZER, "false");
        }
        byte[] archive = TorchScriptArchive.write("FalconH1Layer", source(), attributes(config, mup, compute));
        module = Model.newInstance("falcon-h1-layer", manager.getDevice(), "PyTorch");
        try {
            module.load(new ByteArrayInputStream(archive));
        } catch (IOException | MalformedModelException e) {
            module.close();
            throw new IllegalStateException("libtorch refused the Falcon-H1 TorchScript layer: " + e.getMessage(), e);
        }
        block = module.getBlock();
        packedMethod = manager.zeros(new Shape(1));
        packedMethod.setName("module_method:packed");
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
        a.put("dt_high", Math.min(c.timeStepLimitHigh(), Float.MAX_VALUE));
        a.put("clip_dt", c.timeStepLimitLow() > 0 || c.timeStepLimitHigh() != Double.POSITIVE_INFINITY);
        return a;
    }

    private static String source() {
        try (InputStream in = TorchScriptLayers.class.getResourceAsStream(SOURCE)) {
            if (in == null) {
                throw new IllegalStateException(SOURCE + " is missing from the ssm-hybrid plugin jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Layer {@code layer} on the float32 residual stream {@code hidden}; the result lives in hidden's manager. */
    NDArray apply(int layer, NDArray hidden, SequenceLayout layout, boolean training) {
        Map<String, Parameter> weights = layerWeights.get(layer);
        NDList inputs = new NDList(weights.size() + 16);
        inputs.add(hidden);
        List<NDArray> named = new ArrayList<>(weights.size());
        List<String> names = new ArrayList<>(weights.size());
        for (Map.Entry<String, Parameter> e : weights.entrySet()) {
            NDArray w = e.getValue().getArray();
            named.add(w);
            names.add(w.getName());
            w.setName("w." + e.getKey());
            inputs.add(w);
        }
        String mupName = null;
        if (mupVector != null) {
            mupName = mupVector.getName();
            mupVector.setName("w.mup_vector");
            inputs.add(mupVector);
        }
        inputs.add(layout.cos);
        inputs.add(layout.sin);
        if (layout.packed) {
            inputs.add(packedMethod);
            inputs.add(layout.attentionAllowed());
            inputs.add(layout.convMaskStack);
        }
        inputs.add(layout.strictLower);
        inputs.add(layout.intraMask);
        if (layout.packed) {
            inputs.add(layout.toChunkEndMask);
            inputs.add(layout.fromChunkStartMask);
            inputs.add(layout.interChunkMask);
        }
        inputs.add(layout.interStrictLower);
        inputs.add(layout.interLower);
        try {
            return block.forward(new ParameterStore(hidden.getManager(), false), inputs, training).singletonOrThrow();
        } finally {
            for (int i = 0; i < named.size(); i++) {
                named.get(i).setName(names.get(i));
            }
            if (mupVector != null) {
                mupVector.setName(mupName);
            }
        }
    }

    @Override
    public void close() {
        module.close();
    }
}
