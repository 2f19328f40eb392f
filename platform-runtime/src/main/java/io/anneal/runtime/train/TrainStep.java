package io.anneal.runtime.train;

import ai.djl.Device;
import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.anneal.api.InputException;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelInput;
import io.anneal.api.optim.GradientLists;
import io.anneal.api.optim.NamedParameter;
import io.anneal.api.optim.ParameterOptimizer;
import io.anneal.api.optim.StepRequest;
import io.anneal.api.optim.StepResult;
import io.anneal.api.train.DeviceScalars;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * One optimizer step over the micro-batches of one batch: forward and backward of each micro-batch
 * in its own {@link NDManager} (closed after its backward pass, so GPU memory does not grow), under
 * ONE {@link GradientCollector} (DJL allows one at a time, and it does not zero gradients), then the
 * optimizer step, then the gradients zeroed here.
 *
 * <p>Loss normalisation by construction (DESIGN.md): the supervised tokens of the whole batch are
 * counted from the drawn {@link PackedBatch}es before any backward pass, and each micro-batch's
 * summed loss is divided by that count, so accumulation equals one big batch exactly.
 */
public final class TrainStep implements AutoCloseable {
    private final CausalLanguageModel model;
    private final ParameterOptimizer optimizer;
    private final NDManager manager;
    private final String microBatchSetting;

    /**
     * @param microBatchSetting the micro-batch setting to name in an out-of-memory message, e.g. {@code stages[0].micro-batch-rows (now 8)}
     */
    public TrainStep(CausalLanguageModel model, ParameterOptimizer optimizer, Device device, String microBatchSetting) {
        this.model = model;
        this.optimizer = optimizer;
        this.manager = NDManager.newBaseManager(device);
        this.microBatchSetting = microBatchSetting;
    }

    /** What the micro-batches of one step summed to (host values, read once per step). */
    public record BatchLoss(double negativeLogLikelihood, long supervisedTokens, long correctTokens, long tokens) {
        /** The batch's normalised loss: summed loss over the batch's supervised tokens (TRL's {@code loss}). */
        public double loss() {
            return supervisedTokens == 0 ? 0.0 : negativeLogLikelihood / supervisedTokens;
        }

        public double tokenAccuracy() {
            return supervisedTokens == 0 ? 0.0 : (double) correctTokens / supervisedTokens;
        }
    }

    /** The supervised tokens of a whole batch: the denominator of every micro-batch's loss. */
    public static long supervisedTokens(List<PackedBatch> batches) {
        long n = 0;
        for (PackedBatch b : batches) {
            n += b.supervisedTokens();
        }
        return n;
    }

    /**
     * Forward and backward of every micro-batch; gradients (times {@code lossScale}) accumulate on
     * the parameters. Nothing is updated.
     */
    public BatchLoss accumulateGradients(List<PackedBatch> batches, double lossScale) {
        long supervised = supervisedTokens(batches);
        // an all-unsupervised batch has no loss; dividing by 1 keeps the zero gradient finite
        double factor = lossScale / Math.max(1, supervised);
        long tokens = 0;
        try (NDManager stepManager = manager.newSubManager();
             GradientCollector collector = manager.getEngine().newGradientCollector()) {
            NDArray nllSum = stepManager.zeros(new Shape(), DataType.FLOAT32);
            NDArray correctSum = stepManager.zeros(new Shape(), DataType.FLOAT32);
            for (PackedBatch batch : batches) {
                tokens += batch.tokens();
                try (NDManager micro = manager.newSubManager()) {
                    TokenCrossEntropy.Sums sums = forwardSums(micro, batch, true);
                    collector.backward(sums.negativeLogLikelihood().mul(DeviceScalars.of(micro, factor)));
                    nllSum.addi(sums.negativeLogLikelihood().stopGradient());
                    correctSum.addi(sums.correct());
                }
            }
            return new BatchLoss(nllSum.getFloat(), supervised, Math.round(correctSum.getFloat()), tokens);
        } catch (EngineException e) {
            throw outOfMemoryOr(e);
        }
    }

    /** The loss of the batches without gradients (evaluation). */
    public BatchLoss evaluate(List<PackedBatch> batches) {
        double nll = 0;
        long correct = 0;
        long tokens = 0;
        try {
            for (PackedBatch batch : batches) {
                tokens += batch.tokens();
                try (NDManager micro = manager.newSubManager()) {
                    TokenCrossEntropy.Sums sums = forwardSums(micro, batch, false);
                    nll += sums.negativeLogLikelihood().getFloat();
                    correct += Math.round(sums.correct().getFloat());
                }
            }
        } catch (EngineException e) {
            throw outOfMemoryOr(e);
        }
        return new BatchLoss(nll, supervisedTokens(batches), correct, tokens);
    }

    /** The optimizer step on the accumulated gradients, then the gradients zeroed for the next step. */
    public StepResult applyGradients(double learningRate, double lossScale, double maxGradNorm) {
        try {
            return optimizer.step(new StepRequest(learningRate, lossScale, maxGradNorm));
        } catch (EngineException e) {
            throw outOfMemoryOr(e);
        } finally {
            zeroGradients();
        }
    }

    /**
     * Sets every gradient to 0 in one libtorch call ({@link GradientLists#zero}); DJL's own
     * {@code zeroGradients()} subtracts the gradient from itself, which keeps the NaN and inf of a
     * skipped float16 step.
     */
    public void zeroGradients() {
        List<NDArray> arrays = new ArrayList<>();
        for (NamedParameter p : model.parameters()) {
            arrays.add(p.parameter().getArray());
        }
        if (!arrays.isEmpty()) {
            GradientLists.zero(arrays);
        }
    }

    /** Forward of one micro-batch and its loss sums; every array lives in {@code micro}. */
    private TokenCrossEntropy.Sums forwardSums(NDManager micro, PackedBatch batch, boolean training) {
        Shape shape = new Shape(batch.rows(), batch.length());
        ModelInput input = new ModelInput(micro.create(batch.inputIds(), shape), micro.create(batch.positionIds(), shape),
                micro.create(batch.documentIds(), shape));
        NDArray labels = micro.create(batch.labels(), shape).toType(DataType.INT64, false);
        Optional<NDList> scored = model.labelLogProbabilities(micro, input, labels, training);
        if (scored.isPresent()) { // a fused LM head and cross-entropy: no logits materialised
            return TokenCrossEntropy.ofLogProbabilities(scored.get().get(0), scored.get().get(1));
        }
        return TokenCrossEntropy.of(model.forward(micro, input, training), labels);
    }

    /** A GPU out-of-memory error becomes a message that says which setting to lower. */
    private RuntimeException outOfMemoryOr(EngineException e) {
        String message = String.valueOf(e.getMessage());
        if (message.toLowerCase(Locale.ROOT).contains("out of memory")) {
            return new InputException("the device ran out of memory during a training step; lower "
                    + microBatchSetting + ", the rows of one micro-batch (or the sequence length). Engine said: "
                    + firstLine(message), e);
        }
        return e;
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    @Override
    public void close() {
        manager.close();
    }
}
