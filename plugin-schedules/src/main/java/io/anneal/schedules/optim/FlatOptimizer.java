package io.anneal.schedules.optim;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDScope;
import io.anneal.api.InputException;
import io.anneal.api.optim.NamedParameter;
import io.anneal.api.optim.ParameterOptimizer;
import io.anneal.api.optim.StepRequest;
import io.anneal.api.optim.StepResult;
import io.anneal.toolkit.autograd.DeviceScalars;
import java.io.IOException;
import java.io.Reader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * The step every optimizer of this plugin shares: the global gradient norm (skip on inf/NaN),
 * unscaling and clipping to a global L2 norm as PyTorch's {@code clip_grad_norm_} does, the
 * subclass's update of its flat buffers, the weights written back where the model does not share
 * them. Subclasses name their state buffers and scalars; save and load handle them uniformly.
 */
abstract class FlatOptimizer implements ParameterOptimizer {
    /** PyTorch's clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1. */
    static final double CLIP_EPSILON = 1e-6;

    protected final FlatParameters flat;
    private final String type;
    private long steps;

    FlatOptimizer(String type, List<NamedParameter> parameters) {
        this.type = type;
        this.flat = new FlatParameters(parameters);
    }

    @Override
    public final StepResult step(StepRequest request) {
        if (!(request.gradientDivisor() > 0) || !(request.learningRate() >= 0)) {
            throw new IllegalArgumentException("step needs a positive gradient divisor and a non-negative learning rate, got "
                    + request);
        }
        beforeStep();
        // One reduction gives both the norm TRL logs and the finiteness check: an inf or NaN
        // element makes the norm inf or NaN (the dynamic loss scale then halves and retries).
        double norm = flat.gradientNorm(request.gradientDivisor());
        if (!Double.isFinite(norm)) {
            return new StepResult(norm, true);
        }
        double multiplier = 1 / request.gradientDivisor();
        if (request.maxGradNorm() > 0) {
            double coefficient = request.maxGradNorm() / (norm + CLIP_EPSILON);
            if (coefficient < 1) {
                multiplier *= coefficient;
            }
        }
        steps++;
        try (NDScope scope = new NDScope()) {
            scope.suppressNotUsedWarning();
            update(multiplier, request.learningRate(), steps);
        }
        flat.writeBack();
        return new StepResult(norm, false);
    }

    /**
     * Updates the weights and the state from the gradients times {@code gradientMultiplier} (the
     * unscaling and the clipping in one factor). By default the gradients are gathered into one
     * flat buffer for {@link #update(NDArray, double, long)}; an optimizer with a fused kernel
     * works on the parameters' own gradients instead.
     */
    protected void update(double gradientMultiplier, double learningRate, long step) {
        NDArray grads = flat.gatherGradients();
        grads.muli(scalar(gradientMultiplier));
        update(grads, learningRate, step);
    }

    /** Counts a step taken on the device ({@link io.anneal.api.optim.DeviceStep#completed}). */
    protected final void countStep() {
        steps++;
    }

    /** A hook for optimizers that must be in a mode to step (schedule-free: training weights). */
    protected void beforeStep() {
    }

    /**
     * Updates the master weights {@code flat.weights} and the state from the clipped gradients.
     *
     * @param step the 1-based index of this step (PyTorch's {@code state['step']} after increment)
     */
    protected abstract void update(NDArray grads, double learningRate, long step);

    /**
     * {@code value} as an operand on the weights' device, closed with the step's scope (see
     * {@link DeviceScalars} for why not a Java number).
     */
    protected final NDArray scalar(double value) {
        return DeviceScalars.of(flat.weights.getManager(), value);
    }

    /** Multiplies by the per-element learning-rate factors (muP groups), when there are any. */
    protected final NDArray scaledByLrFactor(NDArray perElement) {
        return flat.lrFactors == null ? perElement : perElement.muli(flat.lrFactors);
    }

    /** The state buffers by file name, in a fixed order. */
    protected abstract Map<String, NDArray> stateBuffers();

    /** Scalars of the state besides the step count (schedule-free weighting sums). */
    protected Map<String, String> stateScalars() {
        return Map.of();
    }

    protected void restoreScalars(Properties properties, Path file) {
    }

    @Override
    public final long steps() {
        return steps;
    }

    @Override
    public void save(Path directory) throws IOException {
        Files.createDirectories(directory);
        for (Map.Entry<String, NDArray> e : allBuffers().entrySet()) {
            flat.save(e.getValue(), directory, e.getKey());
        }
        Properties p = new Properties();
        p.setProperty("type", type);
        p.setProperty("steps", Long.toString(steps));
        p.setProperty("elements", Long.toString(flat.elements()));
        p.setProperty("parameters", Integer.toString(flat.parameterCount()));
        p.setProperty("first-parameter", flat.names().get(0));
        p.setProperty("last-parameter", flat.names().get(flat.parameterCount() - 1));
        stateScalars().forEach(p::setProperty);
        // Written last: a directory with the properties file has complete buffers.
        try (Writer w = Files.newBufferedWriter(directory.resolve(STATE_FILE), StandardCharsets.UTF_8)) {
            p.store(w, "Anneal optimizer state (" + type + ")");
        }
    }

    static final String STATE_FILE = "optimizer.properties";

    @Override
    public void load(Path directory) throws IOException {
        Path file = directory.resolve(STATE_FILE);
        if (!Files.isRegularFile(file)) {
            throw new InputException(file + ": optimizer state is missing (expected the file written by save)");
        }
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            p.load(r);
        }
        expect(p, file, "type", type);
        expect(p, file, "elements", Long.toString(flat.elements()));
        expect(p, file, "parameters", Integer.toString(flat.parameterCount()));
        expect(p, file, "first-parameter", flat.names().get(0));
        expect(p, file, "last-parameter", flat.names().get(flat.parameterCount() - 1));
        for (Map.Entry<String, NDArray> e : allBuffers().entrySet()) {
            flat.load(e.getValue(), directory, e.getKey());
        }
        steps = Long.parseLong(required(p, file, "steps"));
        restoreScalars(p, file);
        if (flat.hasReducedPrecision()) {
            flat.writeBack();
        }
    }

    /** The subclass's buffers, plus the float32 master weights when the model's copy is float16 (lossy). */
    private Map<String, NDArray> allBuffers() {
        Map<String, NDArray> all = new LinkedHashMap<>(stateBuffers());
        if (flat.hasReducedPrecision()) {
            all.put("master_weights", flat.weights);
        }
        return all;
    }

    static String required(Properties p, Path file, String key) {
        String value = p.getProperty(key);
        if (value == null) {
            throw new InputException(file + ": expected key '" + key + "', found none");
        }
        return value;
    }

    private static void expect(Properties p, Path file, String key, String expected) {
        String found = required(p, file, key);
        if (!found.equals(expected)) {
            throw new InputException(file + ": " + key + ": expected " + expected
                    + " (the optimizer bound to this model), found " + found);
        }
    }

    static Map<String, NDArray> buffers(Object... nameThenArray) {
        Map<String, NDArray> m = new LinkedHashMap<>();
        for (int i = 0; i < nameThenArray.length; i += 2) {
            m.put((String) nameThenArray[i], (NDArray) nameThenArray[i + 1]);
        }
        return m;
    }

    @Override
    public void close() {
        flat.close();
    }
}
