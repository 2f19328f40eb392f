package io.anneal.runtime.train;

import ai.djl.Device;
import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.anneal.api.InputException;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.StepGraphs;
import io.anneal.api.optim.DeviceStep;
import io.anneal.toolkit.gradients.GradientLists;
import io.anneal.api.optim.NamedParameter;
import io.anneal.api.optim.ParameterOptimizer;
import io.anneal.api.optim.StepRequest;
import io.anneal.api.optim.StepResult;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.api.train.Objective;
import io.anneal.api.train.ObjectiveSums;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * One optimizer step over the micro-batches of one batch: forward and backward of each micro-batch
 * in its own {@link NDManager} (closed after its backward pass, so GPU memory does not grow), under
 * ONE {@link GradientCollector} (DJL allows one at a time, and it does not zero gradients), then the
 * optimizer step, then the gradients zeroed here.
 *
 * <p>The loss is the {@link Objective}'s (token cross-entropy for sft, a preference loss for dpo).
 * Loss normalisation by construction (DESIGN.md): the objective's denominator of the whole batch
 * (supervised tokens for sft, pairs for dpo) is counted from the drawn {@link PackedBatch}es before
 * any backward pass, and each micro-batch's summed loss is divided by that count, so accumulation
 * equals one big batch exactly.
 */
public final class TrainStep implements AutoCloseable {
    private final CausalLanguageModel model;
    private final ParameterOptimizer optimizer;
    private final Objective objective;
    private final NDManager manager;
    private final String microBatchSetting;
    /** The step as CUDA graphs, or null when it runs eagerly (see {@link #graphsLine()}). */
    private final GraphedStep graphed;
    private final String graphsLine;
    private int warmUpStepsLeft = GraphedStep.WARM_UP_STEPS;

    /**
     * @param microBatchSetting the micro-batch setting to name in an out-of-memory message, e.g. {@code stages[0].micro-batch-rows (now 8)}
     */
    public TrainStep(CausalLanguageModel model, ParameterOptimizer optimizer, Device device, String microBatchSetting) {
        this(model, optimizer, device, microBatchSetting, new SftObjective());
    }

    /** A step whose loss is {@code objective}'s (the caller opens and closes the objective). */
    public TrainStep(CausalLanguageModel model, ParameterOptimizer optimizer, Device device, String microBatchSetting,
                     Objective objective) {
        this(model, optimizer, device, microBatchSetting, objective, false);
    }

    /**
     * A step whose loss is {@code objective}'s; with {@code cudaGraphs}, steps replay as CUDA graphs
     * ({@link GraphedStep}) where the model, the optimizer and the objective allow it.
     */
    public TrainStep(CausalLanguageModel model, ParameterOptimizer optimizer, Device device, String microBatchSetting,
                     Objective objective, boolean cudaGraphs) {
        this.model = model;
        this.objective = objective;
        this.optimizer = optimizer;
        this.manager = NDManager.newBaseManager(device);
        this.microBatchSetting = microBatchSetting;
        String unavailable = cudaGraphs ? whyNoGraphs(model, optimizer, objective, device) : "cuda-graphs = off";
        if (unavailable == null) {
            StepGraphs graphs = model.stepGraphs().orElseThrow();
            graphs.useCaptureStream();
            this.graphed = new GraphedStep(model, (SftObjective) objective, graphs, optimizer, manager);
            this.graphsLine = "cuda graphs: on (each step replays as CUDA graphs after " + GraphedStep.WARM_UP_STEPS
                    + " warm-up steps; its numbers come back while the next step runs)";
        } else {
            this.graphed = null;
            this.graphsLine = "cuda graphs: off (" + unavailable + ")";
        }
    }

    /** Why steps cannot replay as CUDA graphs, or null when they can. */
    private static String whyNoGraphs(CausalLanguageModel model, ParameterOptimizer optimizer, Objective objective,
                                      Device device) {
        if (!device.isGpu()) {
            return "the device is " + device + ", not a GPU";
        }
        if (!(objective instanceof SftObjective)) {
            return "the " + objective.describe() + " objective runs eagerly";
        }
        if (model.stepGraphs().isEmpty()) {
            return "the model cannot be captured: Falcon-H1 on the fused operators can (model.kernels)";
        }
        Optional<DeviceStep> deviceStep = optimizer.deviceStep();
        if (deviceStep.isEmpty()) {
            return "the optimizer has no device-side step: adamw with float32 parameters has";
        }
        deviceStep.get().close();
        return null;
    }

    /** Whether steps replay as CUDA graphs (after the warm-up steps). */
    public boolean replaysAsGraphs() {
        return graphed != null;
    }

    /** One line for the log: whether steps replay as CUDA graphs, and why not. */
    public String graphsLine() {
        return graphsLine;
    }

    /**
     * The whole step's loss and the optimizer's result; for a replayed step also the device's loss
     * scale ({@code deviceScale}, null for an eager step).
     */
    public record Outcome(BatchLoss loss, StepResult result, DeviceLossScale deviceScale) {
        public Outcome(BatchLoss loss, StepResult result) {
            this(loss, result, null);
        }
    }

    /**
     * The loss scale a replayed step used and the device's state after it ({@link GraphedStep}
     * keeps it on the device while steps are in flight): what the host's {@link DynamicLossScale}
     * must equal once it has taken this outcome.
     */
    public record DeviceLossScale(double used, double after, long goodStepsInARow) {
    }

    /** A replayed step enqueued on the device; its outcome comes back without blocking the next step. */
    public interface PendingStep {
        /** Waits for this step's read back alone (the steps enqueued after it keep running); call in step order. */
        Outcome outcome();
    }

    /**
     * Whether {@link #replayStep} would replay {@code batches} as CUDA graphs now (on, warmed up,
     * with a supervised token); when not, the caller takes every pending outcome first, since the
     * eager step reads the host's loss scale.
     */
    public boolean replays(List<PackedBatch> batches) {
        return graphed != null && warmUpStepsLeft == 0 && denominator(batches) > 0;
    }

    /**
     * Forward, backward and the optimizer step of one batch enqueued as CUDA graph replays, when
     * they are on and warmed up; empty otherwise (the caller then runs {@link #accumulateGradients}
     * and {@link #applyGradients}, which count as a warm-up step). Returns before the device has run
     * the step. The device skips the update on non-finite gradients itself and updates the loss scale
     * ({@code lossScale}, whose state it takes when no step is in flight); the caller still checks the
     * loss and updates {@code lossScale} from each outcome, in order.
     */
    public Optional<PendingStep> replayStep(List<PackedBatch> batches, double learningRate, DynamicLossScale lossScale,
                                            double maxGradNorm) {
        long denominator = denominator(batches);
        if (graphed == null || denominator == 0) {
            return Optional.empty();
        }
        if (warmUpStepsLeft > 0) {
            warmUpStepsLeft--;
            return Optional.empty();
        }
        try {
            return Optional.of(graphed.step(batches, denominator, learningRate, lossScale, maxGradNorm));
        } catch (EngineException e) {
            throw outOfMemoryOr(e);
        }
    }

    /**
     * What the micro-batches of one step summed to (host values, read once per step).
     *
     * @param negativeLogLikelihood the objective's loss sum (the summed token NLL for sft)
     * @param supervisedTokens      the batch's loss denominator (supervised tokens for sft, pairs for dpo)
     * @param metricSums            the objective's metric sums, by name, in its order
     */
    public record BatchLoss(double negativeLogLikelihood, long supervisedTokens, Map<String, Double> metricSums, long tokens) {
        /** The batch's normalised loss: summed loss over the batch's denominator (TRL's {@code loss}). */
        public double loss() {
            return supervisedTokens == 0 ? 0.0 : negativeLogLikelihood / supervisedTokens;
        }

        /** A metric's sum over the batch's denominator. */
        public double metric(String name) {
            return supervisedTokens == 0 ? 0.0 : metricSums.getOrDefault(name, 0.0) / supervisedTokens;
        }

        public double tokenAccuracy() {
            return metric(SftObjective.ACCURACY);
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

    /** The objective's denominator of a whole batch (supervised tokens for sft). */
    private long denominator(List<PackedBatch> batches) {
        long n = 0;
        for (PackedBatch b : batches) {
            n += objective.denominator(b);
        }
        return n;
    }

    /**
     * Forward and backward of every micro-batch; gradients (times {@code lossScale}) accumulate on
     * the parameters. Nothing is updated.
     */
    public BatchLoss accumulateGradients(List<PackedBatch> batches, double lossScale) {
        long supervised = denominator(batches);
        // an all-unsupervised batch has no loss; dividing by 1 keeps the zero gradient finite
        double factor = lossScale / Math.max(1, supervised);
        long tokens = 0;
        try (NDManager stepManager = manager.newSubManager();
             GradientCollector collector = manager.getEngine().newGradientCollector()) {
            NDArray lossSum = stepManager.zeros(new Shape(), DataType.FLOAT32);
            Map<String, NDArray> metricSums = new LinkedHashMap<>();
            for (String name : objective.metricNames()) {
                metricSums.put(name, stepManager.zeros(new Shape(), DataType.FLOAT32));
            }
            for (PackedBatch batch : batches) {
                tokens += batch.tokens();
                try (NDManager micro = manager.newSubManager()) {
                    ObjectiveSums sums = objective.forward(micro, model, batch, true);
                    collector.backward(sums.loss().mul(DeviceScalars.of(micro, factor)));
                    lossSum.addi(sums.loss().stopGradient());
                    for (Map.Entry<String, NDArray> m : metricSums.entrySet()) {
                        m.getValue().addi(sums.metrics().get(m.getKey()));
                    }
                }
            }
            Map<String, Double> metrics = new LinkedHashMap<>();
            for (Map.Entry<String, NDArray> m : metricSums.entrySet()) {
                metrics.put(m.getKey(), (double) m.getValue().getFloat());
            }
            return new BatchLoss(lossSum.getFloat(), supervised, metrics, tokens);
        } catch (EngineException e) {
            throw outOfMemoryOr(e);
        }
    }

    /** The loss of the batches without gradients (evaluation). */
    public BatchLoss evaluate(List<PackedBatch> batches) {
        double lossSum = 0;
        Map<String, Double> metrics = new LinkedHashMap<>();
        for (String name : objective.metricNames()) {
            metrics.put(name, 0.0);
        }
        long tokens = 0;
        try {
            for (PackedBatch batch : batches) {
                tokens += batch.tokens();
                try (NDManager micro = manager.newSubManager()) {
                    ObjectiveSums sums = objective.forward(micro, model, batch, false);
                    lossSum += sums.loss().getFloat();
                    for (Map.Entry<String, Double> m : metrics.entrySet()) {
                        m.setValue(m.getValue() + sums.metrics().get(m.getKey()).getFloat());
                    }
                }
            }
        } catch (EngineException e) {
            throw outOfMemoryOr(e);
        }
        return new BatchLoss(lossSum, denominator(batches), metrics, tokens);
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
        if (graphed != null) {
            graphed.close();
        }
        manager.close();
    }
}
