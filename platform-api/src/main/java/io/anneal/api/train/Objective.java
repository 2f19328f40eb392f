package io.anneal.api.train;

import ai.djl.ndarray.NDManager;
import io.anneal.api.Experimental;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.model.CausalLanguageModel;
import java.util.List;

/**
 * The extension point for training objectives ({@code objective { type = sft | dpo | ... }} in a
 * training stage). The runtime's trainer owns everything else (batching, accumulation, precision and
 * loss scale, clipping, optimizer and schedule, evaluation, checkpoints, exact resume, metrics); an
 * objective only turns the model and one micro-batch into summed losses and metrics.
 *
 * <p>Loss normalisation by construction (DESIGN.md): before any forward pass the trainer adds
 * {@link #denominator} over every micro-batch of the optimizer batch (supervised tokens for SFT,
 * preference pairs for DPO), and divides each micro-batch's {@link ObjectiveSums#loss()} and every
 * metric sum by that total; accumulating micro-batches thus equals one big batch.
 *
 * <p>Lifecycle: {@link #open} once before the first step (after the policy is built), then
 * {@link #restoreState} on resume, {@link #forward} per micro-batch, {@link #saveState} at each
 * checkpoint, {@link #close} at the end.
 *
 * @since API 1.2
 */
@Experimental(since = "1.2")
public interface Objective extends AutoCloseable {

    /** Called once before training: a reference model, a cache, whatever the objective needs. */
    default void open(ObjectiveSetup setup) {
    }

    /** The units of the batch loss's denominator this micro-batch holds; counted before any forward pass. */
    long denominator(PackedBatch batch);

    /**
     * Forward of one micro-batch: the loss SUM (a scalar float32 with its autograd graph) and the
     * metric sums (scalars, detached). Every array is attached to {@code manager}, which the trainer
     * closes after the backward pass.
     *
     * @param training true during a training step, false at evaluation (no backward follows)
     */
    ObjectiveSums forward(NDManager manager, CausalLanguageModel model, PackedBatch batch, boolean training);

    /**
     * The names of the metrics {@link #forward} sums, in the order they are logged (TRL's names:
     * {@code mean_token_accuracy}; {@code rewards/chosen}, ...). Each is logged as sum / denominator.
     */
    List<String> metricNames();

    /** The metrics also logged at evaluation, as {@code eval_<name>} beside {@code eval_loss}. */
    default List<String> evaluationMetrics() {
        return metricNames();
    }

    /** State kept with each checkpoint (a cache position, a running statistic); empty for none. */
    default byte[] saveState() {
        return new byte[0];
    }

    /** Continues from a state returned by {@link #saveState()} of an objective built from the same config. */
    default void restoreState(byte[] state) {
    }

    /**
     * True when the objective scores preference pairs ({@link io.anneal.api.data.PreferenceRows}) and
     * needs data whose {@link io.anneal.api.data.TrainingData#preferencePairs()} is true; false when it
     * needs supervised chat rows. A mismatch is a configuration error naming the stage.
     */
    default boolean needsPreferencePairs() {
        return false;
    }

    default String describe() {
        return getClass().getSimpleName();
    }

    @Override
    default void close() {
    }
}
