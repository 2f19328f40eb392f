package io.anneal.hybrid;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.anneal.api.model.ModelInput;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.optim.NamedParameter;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.hybrid.model.FalconH1Checkpoints;
import io.anneal.hybrid.model.FalconH1Model;
import io.anneal.hybrid.model.LayerImplementation;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The TorchScript decoder layer against the NDArray one (the implementation that matches
 * transformers, TransformersParityTest): same weights, same batch, logits and the gradient of every
 * parameter. Non-default muP multipliers, the gated norm, 2 SSM groups, a conv bias, a sequence
 * that is not a multiple of the chunk, and rows packed with documents that straddle chunks.
 */
class TorchScriptLayersTest {
    private static final int ROWS = 2;
    private static final int LENGTH = 37;

    @ParameterizedTest(name = "{0}, packed={1}")
    @CsvSource({"FLOAT32, false, 1e-5", "FLOAT32, true, 1e-5", "FLOAT16, false, 2e-2", "FLOAT16, true, 2e-2"})
    void sameLogitsAsTheNdarrayLayers(DataType compute, boolean packed, double tolerance) {
        compare(compute, packed, tolerance, false);
    }

    @ParameterizedTest(name = "{0}, packed={1}")
    @CsvSource({"FLOAT32, false, 1e-5", "FLOAT32, true, 1e-5", "FLOAT16, false, 2e-2", "FLOAT16, true, 2e-2"})
    void sameGradientsAsTheNdarrayLayers(DataType compute, boolean packed, double tolerance) {
        compare(compute, packed, tolerance, true);
    }

    private static void compare(DataType compute, boolean packed, double tolerance, boolean gradients) {
        // float32 takes weights 10x the default (larger activations, a sharper comparison); float16
        // keeps the default 0.02, at which float16 activations stay in range. The reference is the
        // DJL-operation path in float32 (the one TransformersParityTest holds to transformers).
        var config = TinyModels.config(Map.of("mamba_rms_norm", true, "mamba_n_groups", 2, "initializer_range",
                compute == DataType.FLOAT32 ? 0.2 : 0.02));
        var multipliers = new TestMultipliers(2, 0.5, 0.75, 1.5, 0.5, 1.25, 0.8, new double[] {0.5, 1.5, 0.7, 1.3, 0.9},
                new double[] {1.2, 0.8});
        try (FalconH1Model model = FalconH1Checkpoints.initialize(config, multipliers, new ModelOptions(Device.cpu(), compute, 13))
                        .useLayers(LayerImplementation.TORCHSCRIPT);
                FalconH1Model reference = FalconH1Checkpoints.initialize(config, multipliers,
                        new ModelOptions(Device.cpu(), DataType.FLOAT32, 13)).useLayers(LayerImplementation.NDARRAY);
                NDManager manager = NDManager.newBaseManager()) {
            // the two paths give outputs that differ in rounding: caches of their outputs tell them apart by this
            assertEquals("TorchScript layers, " + (compute == DataType.FLOAT16 ? "float16" : "float32"), model.numerics());
            assertEquals("DJL operations, float32", reference.numerics());
            ModelInput input = input(manager, model.vocabSize(), packed);
            Map<String, float[]> scripted = new LinkedHashMap<>();
            float[] scriptedLogits = logitsAndGradients(model, manager, input, gradients ? scripted : null);
            Map<String, float[]> expected = new LinkedHashMap<>();
            float[] referenceLogits = logitsAndGradients(reference, manager, input, gradients ? expected : null);

            double logitError = TransformersParityTest.maxRelativeError(scriptedLogits, referenceLogits);
            assertTrue(logitError < tolerance, "logits: max relative error " + logitError);
            for (Map.Entry<String, float[]> e : expected.entrySet()) {
                double error = TransformersParityTest.maxRelativeError(scripted.get(e.getKey()), e.getValue());
                assertTrue(error < tolerance * 10, e.getKey() + " gradient: max relative error " + error);
            }
        }
    }

    /** Two rows; packed: documents of 11, 2, 15, 9 and 20, 17 tokens with their own positions. */
    private static ModelInput input(NDManager manager, int vocab, boolean packed) {
        Random random = new Random(5);
        long[] ids = new long[ROWS * LENGTH];
        long[] positions = new long[ids.length];
        long[] documents = new long[ids.length];
        int[][] lengths = {{11, 2, 15, 9}, {20, 17}};
        for (int row = 0; row < ROWS; row++) {
            int at = row * LENGTH;
            int document = 0;
            for (int n : lengths[row]) {
                for (int i = 0; i < n; i++, at++) {
                    ids[at] = 1 + random.nextInt(vocab - 1);
                    positions[at] = i;
                    documents[at] = document;
                }
                document++;
            }
        }
        Shape shape = new Shape(ROWS, LENGTH);
        NDArray idArray = manager.create(ids, shape);
        return packed ? new ModelInput(idArray, manager.create(positions, shape), manager.create(documents, shape))
                : ModelInput.unpacked(idArray);
    }

    private static float[] logitsAndGradients(FalconH1Model model, NDManager manager, ModelInput input,
            Map<String, float[]> gradients) {
        for (NamedParameter p : model.parameters()) {
            p.parameter().getArray().getGradient().set(new ai.djl.ndarray.index.NDIndex("..."), 0f); // not subi: inf - inf = NaN
        }
        float[] logits;
        float scale;
        try (NDManager pass = manager.newSubManager();
                GradientCollector collector = Engine.getInstance().newGradientCollector()) {
            NDArray out = model.forward(pass, input, gradients != null);
            logits = out.toType(DataType.FLOAT32, false).toFloatArray();
            // float16 gradients need a loss scale, as in training (DynamicLossScale): unscaled, the
            // small gradients of this loss underflow float16 and the comparison measures only noise
            scale = out.getDataType() == DataType.FLOAT16 ? 4096f : 1f;
            if (gradients == null) {
                return logits;
            }
            collector.backward(FalconH1ModelLoss.meanSquare(out).mul(DeviceScalars.of(pass, scale)));
        }
        float unscale = 1f / scale;
        for (NamedParameter p : model.parameters()) {
            float[] g = p.parameter().getArray().getGradient().toFloatArray();
            for (int i = 0; i < g.length; i++) {
                g[i] *= unscale;
            }
            double norm = 0;
            for (float v : g) {
                norm += Math.abs(v);
            }
            assertTrue(norm > 0 && Double.isFinite(norm), p.name() + " has no usable gradient under " + model.layers()
                    + " (sum of magnitudes " + norm + ")");
            gradients.put(p.name(), g);
        }
        return logits;
    }
}
