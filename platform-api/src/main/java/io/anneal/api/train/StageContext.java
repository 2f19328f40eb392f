package io.anneal.api.train;

import ai.djl.Device;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.Stable;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Optional;

/** What the pipeline engine gives a running stage. */
@Stable(since = "1.0")
public interface StageContext {

    /** The stage's own folder under the run folder: checkpoints, metrics, artefacts. */
    Path stageDirectory();

    /** The final model of the previous stage, or empty for the first stage. */
    Optional<Path> inputModel();

    /** Declares this stage's final model folder, which the next stage starts from. */
    void publishModel(Path directory);

    /** True when the run was started with {@code --resume}: continue from the newest complete checkpoint. */
    boolean resume();

    /**
     * The checkpoint folder named by {@code --resume PATH} when it is one of this stage's: continue
     * from it rather than from the newest. Empty otherwise. Since API 1.2; the default is empty.
     */
    default Optional<Path> resumeCheckpoint() {
        return Optional.empty();
    }

    /**
     * True once the user asked the run to stop (the first SIGINT or SIGTERM). A stage checks it
     * between steps, never inside one: it then saves what a {@code --resume} needs and returns
     * without publishing a model; the engine ends the run with exit code 130 or 143. Since API
     * 1.2; the default never stops.
     */
    default boolean stopRequested() {
        return false;
    }

    /**
     * The pipeline's model architecture, built from its top-level {@code model} block.
     *
     * @throws io.anneal.api.InputException when the pipeline has no {@code model} block
     */
    ModelArchitecture modelArchitecture();

    /** The pipeline's seed ({@code pipeline.seed}); stages derive their own random streams from it. */
    long seed();

    /** The device to train on (the GPU when there is one and the config allows it). */
    Device device();

    MetricsSink metrics();

    /** Opens a progress reporter for {@code total} units of {@code unit} (e.g. tokens). */
    ProgressReporter progress(String label, long total, String unit);

    /** Human-readable output (the console). */
    PrintStream out();
}
