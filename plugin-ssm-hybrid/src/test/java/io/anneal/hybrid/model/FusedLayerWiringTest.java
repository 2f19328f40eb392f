package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import io.anneal.api.model.MupMultipliers;
import io.anneal.hybrid.TinyModels;
import io.anneal.hybrid.model.FusedLayerOptions.BranchStream;
import io.anneal.toolkit.mup.FalconH1Multipliers;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The fused layer's wiring on the CPU: FalconH1FusedLayer.torchscript with each of its GPU operator
 * calls {@code ops.anneal.NAME(...)} made on a CPU reference implementation of NAME
 * (FusedOpsOnCpu.torchscript: the operator's documented meaning in float32, the recurrence form of
 * the SSD scan) computes the reference layer (FalconH1Layer.torchscript): the output and the
 * gradients of every weight and of the input, for the same float32 weights and input. What this
 * guards is the fused layer's own arithmetic around its operators: which argument goes where, the muP
 * multipliers folded into the linear layers (input multipliers, output ones with and without a bias,
 * the in_proj's mup_vector as its column multipliers), the in_proj's column pieces, both forms of the
 * Mamba output gate, and the mixers' paths through the branch-stream switches. The operators
 * themselves are held to their meaning on a GPU (tools/gpu/test_kernels.py); a wrong CPU
 * implementation here would show as a difference, as the reference layer is written independently.
 * Both layers run through TorchScriptLayers.apply, as the model calls them, the fused one compiled
 * from the rewritten source. Not covered here: bfloat16, the GPU scan's chunking and its
 * ssd_recompute switch (the CPU scan reads neither), the streams themselves, and the head.
 */
class FusedLayerWiringTest {
    private static final int ROWS = 2;
    /** 4 whole SSD chunks of 8 and 5 tokens more. */
    private static final int LENGTH = 37;
    /**
     * Packed rows' document lengths: documents straddle chunk boundaries (tokens 8, 16, 24, 32), the
     * second row's second one starts on one (16), and documents of 1 and 2 tokens are shorter than
     * the conv kernel (4).
     */
    private static final int[][] DOCUMENTS = {{11, 2, 15, 9}, {16, 1, 3, 17}};
    /**
     * Both sides compute in float32 from the same values, in different orders: the reference the
     * chunked scan with segment sums and masks, the CPU operators the token-by-token recurrence,
     * the muP multipliers on the activations rather than in the weights. Their outputs differ in the
     * last bits of float32 (measured 4e-7 to 6e-7 relative to the largest output).
     */
    private static final double OUTPUT_BOUND = 1e-5;
    /**
     * Each gradient's largest difference relative to its own largest entry. Gradients pass through
     * the whole backward (the scan's decays and their exponentials, the norms' rsqrt, attention's
     * softmax) and through sums whose terms cancel, so their float32 rounding differences are larger
     * than the output's, and a weight whose gradient is small everywhere (a bias, A_log) sees them
     * relative to a small maximum (measured at most 2.4e-6, dt_bias's). 1e-4 leaves a wide margin for
     * that and for another CPU's summation order, yet a wiring error (a multiplier, an argument, a
     * missing document reset) moves the output or some gradient by percents (the miswired cases below).
     */
    private static final double GRADIENT_BOUND = 1e-4;

    /** The configurations: each form of the Mamba output (gated_rms_norm both ways, silu_mul_linear), with and without biases. */
    enum Variant {
        /** Falcon-H1's gated RMSNorm, normalised before the gate; no biases but the conv's. */
        NORM_BEFORE_GATE(Map.of("mamba_rms_norm", true, "mamba_norm_before_gate", true)),
        /**
         * Gated RMSNorm with the gate first, and every bias (attention, in_proj, out_proj, MLP): the
         * linear layers' output multipliers then stay a pass of their own (TorchScript's unfolded()).
         */
        GATE_BEFORE_NORM_EVERY_BIAS(Map.of("mamba_rms_norm", true, "mamba_norm_before_gate", false, "attention_bias", true,
                "mamba_proj_bias", true, "projectors_bias", true, "mlp_bias", true)),
        /** No Mamba norm: out_proj on silu(gate) y (silu_mul_linear); a conv without bias. */
        OUTPUT_GATE_NO_CONV_BIAS(Map.of("mamba_rms_norm", false, "mamba_conv_bias", false));

        private final Map<String, Object> overrides;

        Variant(Map<String, Object> overrides) {
            this.overrides = overrides;
        }

        /** TinyModels' (GQA: 4 heads, 2 key-value heads; 2 SSM groups; SSD chunks of 8), one layer. */
        FalconH1Config config() {
            Map<String, Object> json = new HashMap<>(overrides);
            json.put("num_hidden_layers", 1);
            return TinyModels.config(json);
        }
    }

    /** Every multiplier other than 1, and each different from the others (a multiplier in another's place shows). */
    static MupMultipliers multipliers() {
        Map<String, Object> json = new HashMap<>();
        json.put("embedding_multiplier", 2.0);
        json.put("lm_head_multiplier", 0.5);
        json.put("attention_in_multiplier", 0.75);
        json.put("attention_out_multiplier", 1.5);
        json.put("key_multiplier", 0.6);
        json.put("ssm_in_multiplier", 1.25);
        json.put("ssm_out_multiplier", 0.8);
        json.put("ssm_multipliers", List.of(0.5, 1.5, 0.7, 1.3, 0.9));
        json.put("mlp_multipliers", List.of(1.2, 0.85));
        return FalconH1Multipliers.fromConfigJson(json, "test multipliers");
    }

    static Stream<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Variant variant : Variant.values()) {
            for (BranchStream branch : BranchStream.values()) {
                for (boolean packed : new boolean[] {false, true}) {
                    cases.add(Arguments.of(variant, branch, packed));
                }
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}, branch stream {1}, packed={2}")
    @MethodSource("cases")
    void theFusedLayerOnCpuOperatorsComputesTheReferenceLayer(Variant variant, BranchStream branch, boolean packed)
            throws Exception {
        Comparison c = compare(variant, branch, packed, fusedSource(layerSource()));
        System.out.println("FusedLayerWiringTest " + variant + ", branch stream " + branch + ", packed=" + packed + ": " + c);
        assertTrue(c.output < OUTPUT_BOUND, "output: max relative error " + c.output);
        for (Map.Entry<String, Double> e : c.gradients.entrySet()) {
            assertTrue(e.getValue() < GRADIENT_BOUND, e.getKey() + " gradient: max relative error " + e.getValue());
        }
    }

    static Stream<Arguments> miswired() {
        return Stream.of(
                // the in_proj's and q, k, v's input multipliers exchanged in their linear_pair
                Arguments.of("the in_proj + qkv pair's two scales swapped", "self.ssm_in, self.attention_in,",
                        "self.attention_in, self.ssm_in,", Variant.NORM_BEFORE_GATE, BranchStream.NONE, false),
                // Mamba on the branch path of branch_streams 1 without the document ids: no conv or scan resets
                Arguments.of("Mamba without seq_idx beside attention on the branch stream",
                        "mamba = self.mamba(ended[1], ended[2], ended[3], w, seq_idx)",
                        "mamba = self.mamba(ended[1], ended[2], ended[3], w, None)", Variant.GATE_BEFORE_NORM_EVERY_BIAS,
                        BranchStream.ATTENTION, true),
                // the MLP gate's multiplier, left to a pass of its own when the gate has a bias, not applied
                Arguments.of("the biased MLP gate without its multiplier",
                        "gate = self.scale(pair[0], self.unfolded(w, \"feed_forward.gate_proj\", self.mlp_gate))",
                        "gate = pair[0]", Variant.GATE_BEFORE_NORM_EVERY_BIAS, BranchStream.MAMBA, false));
    }

    /** The comparison fails where the fused layer is miswired: each edit of its source exceeds the bounds. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("miswired")
    void aMiswiredFusedLayerIsCaught(String what, String from, String to, Variant variant, BranchStream branch,
            boolean packed) throws Exception {
        String source = layerSource();
        String edited = source.replace(from, to);
        assertNotEquals(source, edited, "the line to edit is gone from the fused layer: " + from);
        Comparison c = compare(variant, branch, packed, fusedSource(edited));
        System.out.println("FusedLayerWiringTest miswired (" + what + "): " + c);
        double worstGradient = c.gradients.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
        assertTrue(c.output > OUTPUT_BOUND || worstGradient > GRADIENT_BOUND, what + " passed: " + c);
    }

    /**
     * The CPU operators take the arguments the GPU library registers: each method anneal_NAME has
     * NAME's schema (names, types, defaults, result) as FusedLayerSourceTest's stubs do, and every
     * operator the fused layer calls has one.
     */
    @Test
    void theCpuOperatorsHaveTheRegisteredSchemas() throws Exception {
        Map<String, String[]> schemas = FusedLayerSourceTest.schemas();
        Matcher defs = Pattern.compile("\\n  def anneal_(\\w+)\\(([^)]*)\\) -> ([^:]*):").matcher(cpuOperators());
        List<String> implemented = new ArrayList<>();
        while (defs.find()) {
            String name = defs.group(1);
            assertTrue(schemas.containsKey(name), "FusedOpsOnCpu.torchscript implements " + name
                    + ", which anneal_ops.cpp does not register");
            assertEquals(FusedLayerSourceTest.signature("FalconH1Layer", name, schemas.get(name)).trim(),
                    defs.group().trim().replaceAll("\\s+", " ").replace("( ", "("), "the parameters of " + name);
            implemented.add(name);
        }
        for (String name : FusedLayerSourceTest.called(layerSource(), schemas)) {
            assertTrue(implemented.contains(name), "the fused layer calls " + name + ", which FusedOpsOnCpu.torchscript lacks");
        }
    }

    private static String layerSource() throws Exception {
        return TorchScriptAttributesTest.resource("FalconH1FusedLayer.torchscript");
    }

    private static String cpuOperators() throws Exception {
        return TorchScriptAttributesTest.resource("FusedOpsOnCpu.torchscript");
    }

    /** The fused layer's class with its operator calls on the CPU operators, appended to its body. */
    private static String fusedSource(String layer) throws Exception {
        return FusedLayerSourceTest.onMethods(layer) + "\n" + cpuOperators();
    }

    /** The largest relative differences of one case: the output's and each gradient's, by input name. */
    record Comparison(double output, Map<String, Double> gradients) {
        @Override
        public String toString() {
            Map.Entry<String, Double> worst = gradients.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow();
            return String.format("output %.2e, gradients at most %.2e (%s), hidden's %.2e", output, worst.getValue(),
                    worst.getKey(), gradients.get("hidden"));
        }
    }

    /** The outputs and the gradients of one layer's pass, by input name ("hidden" and the weights' keys). */
    private record Pass(float[] output, Map<String, float[]> gradients) {
    }

    private static Comparison compare(Variant variant, BranchStream branch, boolean packed, String fusedSource) {
        FalconH1Config config = variant.config();
        MupMultipliers mup = multipliers();
        Inputs inputs = new Inputs(config, mup);
        Pass expected = layerPass(config, mup, inputs, packed, null, FusedLayerOptions.DEFAULT);
        Pass actual = layerPass(config, mup, inputs, packed, fusedSource, new FusedLayerOptions(true, branch, false));
        Map<String, Double> gradients = new LinkedHashMap<>();
        for (Map.Entry<String, float[]> e : expected.gradients.entrySet()) {
            gradients.put(e.getKey(), relativeError(actual.gradients.get(e.getKey()), e.getValue(), e.getKey()));
        }
        return new Comparison(relativeError(actual.output, expected.output, "output"), gradients);
    }

    /** max |actual - expected| / max |expected|; the expected values must not be all zero (nothing would be compared). */
    private static double relativeError(float[] actual, float[] expected, String what) {
        assertEquals(expected.length, actual.length, what + ": sizes");
        double largest = 0;
        double difference = 0;
        for (int i = 0; i < expected.length; i++) {
            largest = Math.max(largest, Math.abs(expected[i]));
            difference = Math.max(difference, Math.abs(actual[i] - expected[i]));
        }
        assertTrue(largest > 0 && Double.isFinite(difference), what + ": the reference is all zero, or a value is not finite");
        return difference / largest;
    }

    /**
     * The layer's random float32 weights (layer 0's keys, the mup_vector), input and the loss's
     * weighting of the output, the same for both layers. Weights of a size where every part of the
     * layer matters: dt softplus(dt_in + dt_bias) A about -0.1 a token, so the SSD state carries
     * across chunks; norm weights around 1, each channel its own.
     */
    private static final class Inputs {
        final Map<String, Shape> shapes = new LinkedHashMap<>();
        final Map<String, float[]> weights = new LinkedHashMap<>();
        final float[] mupVector;
        final float[] hidden;
        final float[] outputWeights;

        Inputs(FalconH1Config config, MupMultipliers mup) {
            Random random = new Random(17);
            String prefix = "model.layers.0.";
            for (Map.Entry<String, Shape> e : FalconH1Model.tensorShapes(config).entrySet()) {
                if (e.getKey().startsWith(prefix)) {
                    String key = e.getKey().substring(prefix.length());
                    shapes.put(key, e.getValue());
                    weights.put(key, values(key, Math.toIntExact(e.getValue().size()), random));
                }
            }
            // the mup_vector of FalconH1Model (ssm_multipliers over the in_proj's z, x, B, C and dt
            // outputs), each column moved a little so that one read in another's place shows
            double[] m = mup.ssmMultipliers();
            int gn = config.mambaNGroups() * config.mambaDState();
            int[] sizes = {config.mambaDSsm(), config.mambaDSsm(), gn, gn, config.mambaNHeads()};
            mupVector = new float[config.inProjSize()];
            int at = 0;
            for (int s = 0; s < sizes.length; s++) {
                for (int i = 0; i < sizes[s]; i++) {
                    mupVector[at++] = (float) (m[s] * (0.8 + 0.4 * random.nextDouble()));
                }
            }
            hidden = gaussian(random, ROWS * LENGTH * config.hiddenSize(), 1.0, 0.0);
            outputWeights = gaussian(random, hidden.length, 1.0, 0.0);
        }

        private static float[] values(String key, int n, Random random) {
            if (key.endsWith("norm.weight")) {
                return gaussian(random, n, 0.2, 1.0);
            }
            float[] v = new float[n];
            switch (key) {
                case "mamba.A_log" -> {
                    for (int i = 0; i < n; i++) {
                        v[i] = (float) Math.log(0.2 + 0.8 * random.nextDouble());
                    }
                }
                case "mamba.dt_bias" -> {
                    for (int i = 0; i < n; i++) {
                        v[i] = (float) (-3 + 2 * random.nextDouble());
                    }
                }
                case "mamba.D" -> {
                    for (int i = 0; i < n; i++) {
                        v[i] = (float) (0.5 + random.nextDouble());
                    }
                }
                case "mamba.conv1d.weight" -> v = gaussian(random, n, 0.3, 0.0);
                default -> v = gaussian(random, n, key.endsWith(".bias") ? 0.1 : 0.2, 0.0);
            }
            return v;
        }

        /** The weights as fresh leaves requiring gradients (each pass its own: DJL gradients accumulate). */
        Map<String, NDArray> weightArrays(NDManager manager) {
            Map<String, NDArray> arrays = new LinkedHashMap<>();
            weights.forEach((key, values) -> {
                NDArray array = manager.create(values, shapes.get(key));
                array.setRequiresGradient(true);
                arrays.put(key, array);
            });
            return arrays;
        }
    }

    private static float[] gaussian(Random random, int n, double std, double mean) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (mean + std * random.nextGaussian());
        }
        return v;
    }

    /** Position and document ids of the packed rows, [ROWS, LENGTH] each: positions restart with each document. */
    private static NDArray[] packedIds(NDManager manager) {
        long[] positions = new long[ROWS * LENGTH];
        long[] documents = new long[ROWS * LENGTH];
        for (int row = 0; row < ROWS; row++) {
            int at = row * LENGTH;
            int document = 0;
            for (int n : DOCUMENTS[row]) {
                for (int i = 0; i < n; i++, at++) {
                    positions[at] = i;
                    documents[at] = document;
                }
                document++;
            }
            assertEquals((row + 1) * LENGTH, at, "row " + row + "'s documents fill it");
        }
        Shape shape = new Shape(ROWS, LENGTH);
        return new NDArray[] {manager.create(positions, shape), manager.create(documents, shape)};
    }

    /**
     * One layer's pass as the model runs it, through TorchScriptLayers.apply: the reference layer
     * ({@code fusedSource} null) on the host-built SequenceLayout with its masks, the fused one on
     * {@code fusedSource} with the document ids.
     */
    private static Pass layerPass(FalconH1Config config, MupMultipliers mup, Inputs inputs, boolean packed,
            String fusedSource, FusedLayerOptions options) {
        boolean fused = fusedSource != null;
        try (NDManager manager = NDManager.newBaseManager(Device.cpu())) {
            Map<String, NDArray> weights = inputs.weightArrays(manager);
            Map<String, Parameter> parameters = new LinkedHashMap<>();
            weights.forEach((key, array) -> parameters.put("model.layers.0." + key, Parameter.builder()
                    .setName("model.layers.0." + key).setType(Parameter.Type.WEIGHT).optShape(array.getShape())
                    .optArray(array).build()));
            NDArray[] ids = packed ? packedIds(manager) : new NDArray[2];
            NDArray frequencies = SequenceLayout.inverseFrequencies(manager, config.headDim(), config.ropeTheta());
            SequenceLayout layout = fused
                    ? SequenceLayout.onDevice(manager, ids[0], ids[1], ROWS, LENGTH, config.mambaChunkSize(), frequencies)
                    : new SequenceLayout(manager, ids[0], ids[1], ROWS, LENGTH, config.mambaChunkSize(),
                            config.mambaDConv(), frequencies);
            assertEquals(packed, layout.packed);
            try (TorchScriptLayers layers = new TorchScriptLayers(config, mup, DataType.FLOAT32, manager, parameters,
                    manager.create(inputs.mupVector), fused, options, fusedSource)) {
                return pass(manager, inputs, weights, hidden -> layers.apply(0, hidden, layout, true));
            }
        }
    }

    /** out = layer(hidden); the loss sum(out * outputWeights) differentiated with respect to hidden and every weight. */
    private static Pass pass(NDManager manager, Inputs inputs, Map<String, NDArray> weights,
            Function<NDArray, NDArray> layer) {
        NDArray hidden = manager.create(inputs.hidden, new Shape(ROWS, LENGTH, inputs.hidden.length / (ROWS * LENGTH)));
        hidden.setRequiresGradient(true);
        float[] output;
        try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
            NDArray out = layer.apply(hidden);
            assertEquals(hidden.getShape(), out.getShape());
            assertEquals(DataType.FLOAT32, out.getDataType());
            output = out.toFloatArray();
            collector.backward(out.mul(manager.create(inputs.outputWeights, hidden.getShape())).sum());
        }
        Map<String, float[]> gradients = new LinkedHashMap<>();
        gradients.put("hidden", hidden.getGradient().toFloatArray());
        weights.forEach((key, array) -> gradients.put(key, array.getGradient().toFloatArray()));
        return new Pass(output, gradients);
    }
}
