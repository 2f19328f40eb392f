package io.anneal.api.optim;

import io.anneal.api.Stable;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * An optimizer bound to a model's parameters. It reads the gradients accumulated on the
 * parameters, updates the weights and its own state, and leaves zeroing gradients to the caller.
 */
@Stable(since = "1.0")
public interface ParameterOptimizer extends AutoCloseable {

    StepResult step(StepRequest request);

    /**
     * The same step run wholly on the device ({@link DeviceStep}), when this optimizer offers one
     * for its parameters; a new object on each call, which the caller closes. Empty by default.
     * Since API 1.2.
     */
    default Optional<DeviceStep> deviceStep() {
        return Optional.empty();
    }

    /** Steps taken (skipped steps excluded). */
    long steps();

    /**
     * Puts the weights that should be evaluated and checkpointed into the parameters. For
     * schedule-free optimizers (Defazio et al. 2024) this is the averaged point x, not the point
     * y where gradients are taken; for others it does nothing.
     */
    default void useEvaluationWeights() {
    }

    /** Undoes {@link #useEvaluationWeights()} before training continues. */
    default void useTrainingWeights() {
    }

    /** Writes the optimizer state (moments, step count) into {@code directory}. */
    void save(Path directory) throws IOException;

    /** Restores state written by {@link #save(Path)} for the same parameters. */
    void load(Path directory) throws IOException;

    @Override
    void close();
}
