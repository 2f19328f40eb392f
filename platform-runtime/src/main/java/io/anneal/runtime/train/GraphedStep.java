package io.anneal.runtime.train;

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
 * clip, fused AdamW that leaves everything untouched on a non-finite step, the step count) and the
 * zeroing of the gradients. Accumulation over micro-batches is one replay per micro-batch.
 *
 * <p>Per step the host copies each micro-batch's arrays to the device first, then enqueues the
 * replays with device-to-device copies into the graphs' static inputs between them, and reads one
 * small array at the end: the loss and metric sums, the gradient norm and the skip flag. That read
 * is the step's only synchronisation; inside the step nothing waits for the host.
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
    private final List<String> metricNames;
    private final Map<Key, MicroGraph> microGraphs = new HashMap<>();
    private DeviceStep deviceStep;
    private int optimizerGraph = -1;
    /** The loss factor (loss scale / the batch's denominator) every micro-batch graph reads. */
    private NDArray factor;

    /** What a micro-batch graph is captured for. */
    private record Key(int rows, int length, boolean packed) {
        static Key of(PackedBatch batch, ModelInput input) {
            return new Key(batch.rows(), batch.length(), input.documentIds() != null);
        }
    }

    /** One captured forward and backward: its static inputs, its id, its output sums [loss, metrics...]. */
    private record MicroGraph(NDManager arrays, ModelInput input, NDArray labels, NDArray sums, int id) {
    }

    /** One micro-batch's arrays on the device, before they are copied into a graph's static ones. */
    private record Staged(Key key, ModelInput input, NDArray labels) {
    }

    GraphedStep(CausalLanguageModel model, SftObjective objective, StepGraphs graphs, ParameterOptimizer optimizer,
            NDManager manager) {
        this.model = model;
        this.objective = objective;
        this.graphs = graphs;
        this.optimizer = optimizer;
        this.manager = manager;
        this.metricNames = objective.metricNames();
    }

    /**
     * One whole optimizer step on {@code batches} (their denominator {@code denominator} > 0),
     * replayed; the caller checks a non-finite loss (the device has already skipped the update).
     */
    TrainStep.Outcome step(List<PackedBatch> batches, long denominator, double learningRate, double lossScale,
            double maxGradNorm) {
        if (factor == null) {
            factor = manager.zeros(new Shape(), DataType.FLOAT32);
            // made here, after the warm-up steps and any resume, not at construction: the device step
            // count starts from the optimizer's host count at this moment
            deviceStep = optimizer.deviceStep().orElseThrow();
        }
        long tokens = 0;
        try (NDManager stepManager = manager.newSubManager()) {
            // every host-to-device copy first: each waits for the stream, which is idle now
            List<Staged> staged = new ArrayList<>(batches.size());
            for (PackedBatch batch : batches) {
                tokens += batch.tokens();
                ModelInput input = LabelLogProbabilities.input(stepManager, batch);
                staged.add(new Staged(Key.of(batch, input), input, LabelLogProbabilities.labels(stepManager, batch)));
            }
            NDArray stepFactor = DeviceScalars.of(stepManager, lossScale / denominator);
            NDArray optimizerInputs = stepManager.create(new float[] {(float) learningRate, (float) lossScale,
                    (float) maxGradNorm});
            NDArray sums = stepManager.zeros(new Shape(1 + metricNames.size()), DataType.FLOAT32);

            graphs.copy(factor, stepFactor);
            for (Staged micro : staged) {
                MicroGraph graph = microGraphs.get(micro.key());
                if (graph == null && microGraphs.size() < MAX_SHAPES) {
                    graph = capture(micro);
                    microGraphs.put(micro.key(), graph);
                }
                if (graph == null) {
                    sums.addi(forwardBackward(stepManager, micro.input(), micro.labels()));
                    continue;
                }
                copyInput(graph, micro);
                graphs.replay(graph.id());
                sums.addi(graph.sums());
            }
            graphs.copy(deviceStep.inputs(), optimizerInputs);
            if (optimizerGraph < 0) {
                optimizerGraph = captureOptimizer();
            }
            graphs.replay(optimizerGraph);

            // the step's one read: [loss, metrics..., grad norm, skipped]
            float[] values = NDArrays.concat(new NDList(sums, deviceStep.outcome())).toFloatArray();
            boolean skipped = values[values.length - 1] != 0f;
            deviceStep.completed(skipped);
            Map<String, Double> metrics = new LinkedHashMap<>();
            for (int i = 0; i < metricNames.size(); i++) {
                metrics.put(metricNames.get(i), (double) values[1 + i]);
            }
            return new TrainStep.Outcome(new TrainStep.BatchLoss(values[0], denominator, metrics, tokens),
                    new StepResult(values[values.length - 2], skipped));
        }
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
        ModelInput input = new ModelInput(staticCopy(arrays, first.input().inputIds()),
                staticCopy(arrays, first.input().positionIds()), staticCopy(arrays, first.input().documentIds()));
        NDArray labels = staticCopy(arrays, first.labels());
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

    private int captureOptimizer() {
        List<NDArray> parameters = new ArrayList<>();
        for (NamedParameter p : model.parameters()) {
            parameters.add(p.parameter().getArray());
        }
        int id = graphs.beginCapture();
        try {
            deviceStep.enqueue();
            GradientLists.zero(parameters);
        } finally {
            graphs.endCapture();
        }
        return id;
    }

    /** A device array of {@code source}'s shape and type holding its values (null stays null). */
    private NDArray staticCopy(NDManager arrays, NDArray source) {
        if (source == null) {
            return null;
        }
        NDArray copy = arrays.zeros(source.getShape(), source.getDataType());
        graphs.copy(copy, source);
        return copy;
    }

    private void copyInput(MicroGraph graph, Staged micro) {
        graphs.copy(graph.input().inputIds(), micro.input().inputIds());
        graphs.copy(graph.input().positionIds(), micro.input().positionIds());
        if (graph.input().documentIds() != null) {
            graphs.copy(graph.input().documentIds(), micro.input().documentIds());
        }
        graphs.copy(graph.labels(), micro.labels());
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
    }
}
