package io.anneal.api.train;

import io.anneal.api.Experimental;
import io.anneal.api.model.CausalLanguageModel;
import java.io.PrintStream;
import java.nio.file.Path;

/**
 * What the trainer gives an {@link Objective} before the first step.
 *
 * @since API 1.2
 */
@Experimental(since = "1.2")
public interface ObjectiveSetup {

    /**
     * A new, separate copy of the policy's INITIAL weights (the stage's {@code init-from}, the previous
     * stage's model, or the seeded random initialisation), whatever checkpoint the run resumes from: a
     * frozen reference model for DPO. The caller closes it.
     */
    CausalLanguageModel loadInitialModel();

    /**
     * The folder the initial weights of {@link #loadInitialModel()} load from ({@code init-from} or the
     * previous stage's model), for engines that read a model from disk; empty for a random
     * initialisation. Since API 1.2.
     */
    default java.util.Optional<Path> initialModelFolder() {
        return java.util.Optional.empty();
    }

    /** The stage's folder, for caches. */
    Path stageDirectory();

    /** The config path of the objective block, e.g. {@code stages[1].objective}, for messages. */
    String configPath();

    /** Human-readable output (the console). */
    PrintStream out();

    /**
     * A fresh stream of the stage's training data from its start, the batches the trainer will
     * read in the same order (for an objective that computes per-pair values once, such as DPO's
     * reference log-probs). The caller closes it; empty where the trainer offers none.
     */
    default java.util.Optional<io.anneal.api.data.TokenBatchStream> openTrainingData() {
        return java.util.Optional.empty();
    }

    /** A fresh stream of the stage's held-out data ({@code eval-data}) from its start, when it has one. */
    default java.util.Optional<io.anneal.api.data.TokenBatchStream> openEvaluationData() {
        return java.util.Optional.empty();
    }

    /** Rows of each micro-batch {@link Objective#forward} sees. */
    default int microBatchRows() {
        return 1;
    }

    /** Micro-batches each evaluation scores, from the start of the held-out stream (0: no evaluation). */
    default long evaluationMicroBatches() {
        return 0;
    }
}
