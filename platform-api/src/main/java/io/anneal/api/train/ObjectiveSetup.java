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

    /** The stage's folder, for caches. */
    Path stageDirectory();

    /** The config path of the objective block, e.g. {@code stages[1].objective}, for messages. */
    String configPath();

    /** Human-readable output (the console). */
    PrintStream out();
}
