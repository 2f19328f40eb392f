package io.anneal.runtime.train;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelInput;
import io.anneal.api.model.StepGraphs;
import io.anneal.api.optim.DeviceStep;
import io.anneal.toolkit.gradients.GradientLists;
import io.anneal.api.optim.NamedParameter;
import io.anneal.api.optim.ParameterOptimizer;
import io.anneal.api.optim.StepResult;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.toolkit.scoring.LabelLogProbabilities;
import io.anneal.api.train.ObjectiveSums;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training step replayed as CUDA graphs (issue 12, "no host in the loop"): one graph per
 * micro-batch shape holds the forward pass, the autograd backward pass and the accumulation into the
 * gradients; one graph holds the optimizer's {@link DeviceStep} (norm, finite check, unscale and
 * clip, fused AdamW that leaves everything untouched on a non-finite step, the step count), the
 * dynamic loss scale's update and the zeroing of the gradients. Accumulation over micro-batches is
 * one replay per micro-batch.
 *
 * <p>Nothing in a step waits for the device. The host writes each micro-batch's arrays into the
 * graphs' static inputs through pinned memory ({@link StepGraphs#upload}), enqueues the replays, and
 * starts one read of a small array: the loss and metric sums, the gradient norm, the skip flag and
 * the loss scale ({@link StepGraphs#read}). {@link #step} returns at once with that read in flight,
 * so the host can draw and enqueue the next step while the device runs this one; the trainer takes
 * the outcome when it needs it ({@link TrainStep.PendingStep#outcome()}).
 *
 * <p>The loss scale lives on the device while steps are in flight: the optimizer graph updates it
 * with torch.amp.GradScaler's rule ({@code _amp_update_scale_}), so the next step's scale never
 * waits for this step's skip flag. The host's {@link DynamicLossScale} follows it one outcome later
 * and checks that both agree; whenever no step is in flight (the first replay, after an eager step)
 * the device takes the host's state.
 *
 * <p>What a graph bakes in must not change between replays: every per-step number (the loss
 * factor, the learning rate, the loss scale) is a device array written before the replay, and the
 * first captures happen after eager warm-up steps, so that libtorch's lazily made state (cuBLAS
 * handles, the optimizer's compiled modules, the model's cached constants) exists before capture.
 */
final class GraphedStep implements AutoCloseable {
    /** Eager steps before the first capture (torch.cuda.graphs' documentation asks for warm-up iterations). */
    static final int WARM_UP_STEPS = 2;
    /** Micro-batch shapes captured at most; further shapes run their forward and backward eagerly. */
    static final int MAX_SHAPES = 4;

    private final CausalLanguageModel model;
    private final SftObjective objective;
    private final StepGraphs graphs;
    private final ParameterOptimizer optimizer;
    private final NDManager manager;
    /** Where a step's host arrays are made before {@link StepGraphs#upload}. */
    private final NDManager hostManager;
    private final List<String> metricNames;
    private final Map<Key, MicroGraph> microGraphs = new HashMap<>();
    private DeviceStep deviceStep;
    private int optimizerGraph = -1;
    /** The loss factor (loss scale / the batch's denominator) every micro-batch graph reads. */
    private NDArray factor;
    /** The dynamic loss scale on the device: [scale, good steps in a row] (float32, exact to 2^24). */
    private NDArray scaleState;
    /** Steps enqueued whose outcome the host has not taken yet. */
    private int inFlight;

    /** What a micro-batch graph is captured for. */
    private record Key(int rows, int length, boolean packed) {
        static Key of(PackedBatch batch, ModelInput input) {
            return new Key(batch.rows(), batch.length(), input.documentIds() != null);
        }
    }

    /** One captured forward and backward: its static inputs, its id, its output sums [loss, metrics...]. */
    private record MicroGraph(NDManager arrays, ModelInput input, NDArray labels, NDArray sums, int id) {
    }

    /** One micro-batch's arrays on the host, before they are uploaded into a graph's static ones. */
    private record Staged(Key key, ModelInput input, NDArray labels) {
    }

    GraphedStep(CausalLanguageModel model, SftObjective objective, StepGraphs graphs, ParameterOptimizer optimizer,
            NDManager manager) {
        this.model = model;
        this.objective = objective;
        this.graphs = graphs;
        this.optimizer = optimizer;
        this.manager = manager;
        this.hostManager = manager.newSubManager(Device.cpu());
        this.metricNames = objective.metricNames();
    }

    /**
     * Enqueues one whole optimizer step on {@code batches} (their denominator {@code denominator} > 0)
     * and returns without waiting for it; the caller checks a non-finite loss in its outcome (the
     * device has already skipped the update). Outcomes must be taken in the order the steps were
     * enqueued.
     */
    TrainStep.PendingStep step(List<PackedBatch> batches, long denominator, double learningRate,
            DynamicLossScale lossScale, double maxGradNorm) {
        if (factor == null) {
            factor = manager.zeros(new Shape(), DataType.FLOAT32);
            scaleState = manager.zeros(new Shape(2), DataType.FLOAT32);
            // made here, after the warm-up steps and any resume, not at construction: the device step
            // count starts from the optimizer's host count at this moment
            deviceStep = optimizer.deviceStep().orElseThrow();
        }
        long tokens = 0;
        StepGraphs.HostRead read;
        try (NDManager stepManager = manager.newSubManager(); NDManager hostArrays = hostManager.newSubManager()) {
            List<Staged> staged = new ArrayList<>(batches.size());
            for (PackedBatch batch : batches) {
                tokens += batch.tokens();
                ModelInput input = LabelLogProbabilities.input(hostArrays, batch);
                staged.add(new Staged(Key.of(batch, input), input, LabelLogProbabilities.labels(hostArrays, batch)));
            }
            if (inFlight == 0) {
                // nothing in flight: the host's loss scale is the current one (the first replay, or
                // eager steps since the last)
                graphs.upload(scaleState, hostArrays.create(new float[] {(float) lossScale.scale(),
                        (float) lossScale.goodStepsInARow()}));
            }
            NDArray scale = scaleState.get(0);
            NDArray usedScale = scale.duplicate(); // the optimizer graph updates scaleState
            graphs.copy(factor, scale.mul(DeviceScalars.of(stepManager, 1.0 / denominator)));
            NDArray sums = stepManager.zeros(new Shape(1 + metricNames.size()), DataType.FLOAT32);

            for (Staged micro : staged) {
                MicroGraph graph = microGraphs.get(micro.key());
                if (graph == null && microGraphs.size() < MAX_SHAPES) {
                    graph = capture(micro);
                    microGraphs.put(micro.key(), graph);
                }
                if (graph == null) {
                    ModelInput input = new ModelInput(deviceCopy(stepManager, micro.input().inputIds()),
                            deviceCopy(stepManager, micro.input().positionIds()),
                            deviceCopy(stepManager, micro.input().documentIds()));
                    sums.addi(forwardBackward(stepManager, input, deviceCopy(stepManager, micro.labels())));
                    continue;
                }
                uploadInput(graph, micro);
                graphs.replay(graph.id());
                sums.addi(graph.sums());
            }
            // [learning rate, gradient divisor = the loss scale, max grad norm] (DeviceStep's indices), made on the device
            graphs.copy(deviceStep.inputs(), NDArrays.stack(new NDList(DeviceScalars.of(stepManager, learningRate), scale,
                    DeviceScalars.of(stepManager, maxGradNorm))));
            if (optimizerGraph < 0) {
                optimizerGraph = captureOptimizer(lossScale);
            }
            graphs.replay(optimizerGraph);
            // [loss, metrics..., grad norm, skipped, scale used, scale after, good steps in a row after]
            read = graphs.read(NDArrays.concat(new NDList(sums, deviceStep.outcome(), usedScale.reshape(1), scaleState)));
        }
        inFlight++;
        long stepTokens = tokens;
        return new TrainStep.PendingStep() {
            private TrainStep.Outcome outcome;

            @Override
            public TrainStep.Outcome outcome() {
                if (outcome == null) {
                    outcome = taken(read.values(), denominator, stepTokens);
                }
                return outcome;
            }
        };
    }

    private TrainStep.Outcome taken(float[] values, long denominator, long tokens) {
        inFlight--;
        int end = values.length;
        boolean skipped = values[end - 4] != 0f;
        deviceStep.completed(skipped);
        Map<String, Double> metrics = new LinkedHashMap<>();
        for (int i = 0; i < metricNames.size(); i++) {
            metrics.put(metricNames.get(i), (double) values[1 + i]);
        }
        return new TrainStep.Outcome(new TrainStep.BatchLoss(values[0], denominator, metrics, tokens),
                new StepResult(values[end - 5], skipped),
                new TrainStep.DeviceLossScale(values[end - 3], values[end - 2], (long) values[end - 1]));
    }

    /**
     * Forward and backward of one micro-batch, gradients (times the loss factor) added to the
     * parameters; returns [loss, metrics...] (detached). Enqueues device work only: it is what a
     * micro-batch graph captures.
     */
    private NDArray forwardBackward(NDManager pass, ModelInput input, NDArray labels) {
        try (GradientCollector collector = manager.getEngine().newGradientCollector()) {
            ObjectiveSums sums = objective.forward(pass, model, input, labels, true);
            collector.backward(sums.loss().mul(factor));
            NDList parts = new NDList(sums.loss().stopGradient().reshape(1));
            for (String name : metricNames) {
                parts.add(sums.metrics().get(name).reshape(1));
            }
            return NDArrays.concat(parts);
        }
    }

    private MicroGraph capture(Staged first) {
        NDManager arrays = manager.newSubManager();
        ModelInput input = new ModelInput(deviceCopy(arrays, first.input().inputIds()),
                deviceCopy(arrays, first.input().positionIds()), deviceCopy(arrays, first.input().documentIds()));
        NDArray labels = deviceCopy(arrays, first.labels());
        NDArray sums;
        int id = graphs.beginCapture();
        try (NDManager pass = arrays.newSubManager()) {
            sums = forwardBackward(pass, input, labels);
            sums.attach(arrays); // the graph writes its sums here at every replay
        } finally {
            graphs.endCapture();
        }
        return new MicroGraph(arrays, input, labels, sums, id);
    }

    private int captureOptimizer(DynamicLossScale lossScale) {
        List<NDArray> parameters = new ArrayList<>();
        for (NamedParameter p : model.parameters()) {
            parameters.add(p.parameter().getArray());
        }
        int id = graphs.beginCapture();
        try (NDManager temporaries = manager.newSubManager()) {
            deviceStep.enqueue();
            if (lossScale.enabled()) {
                graphs.copy(scaleState, updatedScale(temporaries, scaleState, deviceStep.outcome().get(DeviceStep.SKIPPED),
                        lossScale.settings()));
            }
            GradientLists.zero(parameters);
        } finally {
            graphs.endCapture();
        }
        return id;
    }

    /**
     * torch.amp.GradScaler's update ({@code _amp_update_scale_}, as {@link DynamicLossScale#update}):
     * [scale, good] after a step whose skip flag is {@code skipped} (1 or 0), in device arithmetic
     * only: a skipped step multiplies the scale by the backoff and zeroes the count; a good one counts,
     * and at the growth interval multiplies the scale by the growth factor and zeroes the count.
     */
    static NDArray updatedScale(NDManager m, NDArray state, NDArray skipped, LossScaleSettings settings) {
        NDArray good = DeviceScalars.of(m, 1).sub(skipped);
        NDArray counted = state.get(1).add(DeviceScalars.of(m, 1)).mul(good);
        NDArray grows = counted.gte(DeviceScalars.of(m, settings.growthInterval())).toType(DataType.FLOAT32, false);
        NDArray factorOfGood = grows.mul(DeviceScalars.of(m, settings.growth() - 1)).add(DeviceScalars.of(m, 1));
        NDArray scaled = state.get(0).mul(skipped.mul(DeviceScalars.of(m, settings.backoff())).add(good.mul(factorOfGood)));
        NDArray count = counted.mul(DeviceScalars.of(m, 1).sub(grows));
        return NDArrays.stack(new NDList(scaled, count));
    }

    /** A device array of {@code source}'s shape and type holding its values (null stays null). */
    private NDArray deviceCopy(NDManager arrays, NDArray source) {
        if (source == null) {
            return null;
        }
        NDArray copy = arrays.zeros(source.getShape(), source.getDataType());
        graphs.upload(copy, source);
        return copy;
    }

    private void uploadInput(MicroGraph graph, Staged micro) {
        graphs.upload(graph.input().inputIds(), micro.input().inputIds());
        graphs.upload(graph.input().positionIds(), micro.input().positionIds());
        if (graph.input().documentIds() != null) {
            graphs.upload(graph.input().documentIds(), micro.input().documentIds());
        }
        graphs.upload(graph.labels(), micro.labels());
    }

    @Override
    public void close() {
        for (MicroGraph graph : microGraphs.values()) {
            graph.arrays().close();
            graphs.release(graph.id());
        }
        microGraphs.clear();
        if (optimizerGraph >= 0) {
            graphs.release(optimizerGraph);
            optimizerGraph = -1;
        }
        if (deviceStep != null) {
            deviceStep.close();
        }
        hostManager.close();
    }
}
