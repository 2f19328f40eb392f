package io.anneal.runtime.pipeline;

import ai.djl.Device;
import io.anneal.runtime.device.DeviceSelector;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.train.Stage;
import io.anneal.runtime.config.ValidatedPipeline;
import io.anneal.runtime.output.JsonlMetricsSink;
import io.anneal.runtime.output.ProgressReporters;
import com.google.inject.Inject;
import com.google.inject.name.Named;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * Runs the stages of a validated pipeline in order. Stage {@code i} (1-based) named {@code n}
 * works in {@code <run-dir>/<i>-<n>/}, writes {@code metrics.jsonl} there, and starts from the
 * model the previous stage published. One run at a time holds the run folder ({@link RunDirLock}).
 */
public final class PipelineEngine {
    private final ValidatedPipeline pipeline;
    private final ExtensionContext extensions;
    private final ProgressReporters progress;
    private final PrintStream out;

    @Inject
    public PipelineEngine(ValidatedPipeline pipeline, ExtensionContext extensions, ProgressReporters progress,
                          @Named("console") PrintStream out) {
        this.pipeline = pipeline;
        this.extensions = extensions;
        this.progress = progress;
        this.out = out;
    }

    /** The folder of stage {@code index} (0-based in the pipeline, 1-based in the name). */
    public static Path stageDirectory(Path runDir, int index, String name) {
        return runDir.resolve((index + 1) + "-" + name);
    }

    public void run(boolean resume) throws Exception {
        try (RunDirLock lock = RunDirLock.acquire(pipeline.runDir())) {
            runStages(resume);
        }
    }

    private void runStages(boolean resume) throws Exception {
        Supplier<Device> device = memoize(() -> {
            DeviceSelector.Choice choice = DeviceSelector.choose(pipeline.device());
            out.println(choice.line());
            return choice.device();
        });
        Supplier<Optional<ModelArchitecture>> model = memoize(
                () -> pipeline.model().map(m -> extensions.build(ModelArchitecture.class, m)));
        Optional<Path> previousModel = Optional.empty();
        for (ValidatedPipeline.StagePlan plan : pipeline.stages()) {
            Stage stage = extensions.build(Stage.class, plan.block());
            Path dir = stageDirectory(pipeline.runDir(), plan.index(), plan.name());
            Files.createDirectories(dir);
            out.println("== stage " + (plan.index() + 1) + "/" + pipeline.stages().size() + ": " + plan.name()
                    + " (" + stage.describe() + ") in " + dir);
            try (JsonlMetricsSink metrics = new JsonlMetricsSink(dir.resolve("metrics.jsonl"), resume, out)) {
                RunStageContext context = new RunStageContext(dir, previousModel, resume, model, pipeline.seed(), device,
                        metrics, progress, out);
                stage.run(context);
                if (context.published().isPresent()) {
                    previousModel = context.published();
                }
            }
        }
    }

    private static <T> Supplier<T> memoize(Supplier<T> supplier) {
        return new Supplier<>() {
            private T value;
            private boolean done;

            @Override
            public synchronized T get() {
                if (!done) {
                    value = supplier.get();
                    done = true;
                }
                return value;
            }
        };
    }
}
