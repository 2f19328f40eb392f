package io.anneal.runtime.pipeline;

import ai.djl.Device;
import io.anneal.toolkit.device.DeviceChoice;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.train.Stage;
import io.anneal.api.InputException;
import io.anneal.runtime.config.ValidatedPipeline;
import io.anneal.runtime.train.RunFailedException;
import io.anneal.runtime.output.ProgressReporters;
import io.anneal.runtime.output.StageChart;
import io.anneal.api.cli.Charts;
import com.google.inject.Inject;
import com.google.inject.name.Named;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * Runs the stages of a validated pipeline in order. Stage {@code i} (1-based) named {@code n}
 * works in {@code <run-dir>/<i>-<n>/}, writes {@code metrics.jsonl} (and the other {@code pipeline.metrics} sinks') there, and starts from the
 * model the previous stage published. One run at a time holds the run folder ({@link RunDirLock}).
 */
public final class PipelineEngine {
    private final ValidatedPipeline pipeline;
    private final ProgressReporters progress;
    private final PrintStream out;
    private final Charts charts;
    /** Builds the metrics sinks of each stage (pipeline.metrics). */
    private final ExtensionContext extensions;

    @Inject
    public PipelineEngine(ValidatedPipeline pipeline, ExtensionContext extensions, ProgressReporters progress,
                          @Named("console") PrintStream out, Charts charts) {
        this.charts = charts;
        this.extensions = extensions;
        this.pipeline = pipeline;
        this.progress = progress;
        this.out = out;
    }

    /** The folder of stage {@code index} (0-based in the pipeline, 1-based in the name). */
    public static Path stageDirectory(Path runDir, int index, String name) {
        return runDir.resolve((index + 1) + "-" + name);
    }

    /**
     * Runs the stages (a resume refuses a pipeline changed since the run started, except in
     * {@code allowedChanges}: {@link RunConfigRecord}); with {@code checkpoint} (from {@code --resume PATH}) the stage whose
     * checkpoint it is resumes from it. A stop request (the first SIGINT or SIGTERM) ends the run
     * after the stage that saw it saved its state: a {@link RunFailedException} with exit code 130
     * or 143.
     */
    public void run(boolean resume, Optional<Path> checkpoint, List<String> allowedChanges) throws Exception {
        Optional<Integer> checkpointStage = checkpoint.isPresent() ? Optional.of(stageOf(checkpoint.get())) : Optional.empty();
        applyThreads();
        try (RunDirLock lock = RunDirLock.acquire(pipeline.runDir())) {
            RunConfigRecord.check(pipeline.runDir(), pipeline.resolved(), resume || checkpoint.isPresent(), allowedChanges);
            StopSignals.arm(out);
            try {
                runStages(resume || checkpoint.isPresent(), checkpoint, checkpointStage);
            } finally {
                StopSignals.disarm();
            }
        }
    }

    /** The index of the stage whose checkpoint folder holds {@code checkpoint}, or bad input. */
    private int stageOf(Path checkpoint) throws java.io.IOException {
        if (!Files.isDirectory(checkpoint)) {
            throw new InputException("--resume " + checkpoint + ": no such folder; expected a checkpoint folder such as "
                    + stageDirectory(pipeline.runDir(), 0, pipeline.stages().get(0).name()).resolve("checkpoints/step-000100"));
        }
        Path parent = checkpoint.toRealPath().getParent();
        List<String> expected = new ArrayList<>();
        for (ValidatedPipeline.StagePlan plan : pipeline.stages()) {
            Path root = stageDirectory(pipeline.runDir(), plan.index(), plan.name()).resolve("checkpoints");
            if (Files.isDirectory(root) && root.toRealPath().equals(parent)) {
                return plan.index();
            }
            expected.add(root.resolve("step-NNNNNN").toString());
        }
        throw new InputException("--resume " + checkpoint + ": expected a checkpoint folder of this pipeline, "
                + String.join(" or ", expected));
    }

    /**
     * libtorch's thread pools ({@code pipeline.threads}), set before the engine starts: DJL reads
     * these properties when it loads libtorch (PtEngine), and inter-op threads cannot change later.
     */
    private void applyThreads() {
        String waiting = System.getenv().getOrDefault("OMP_WAIT_POLICY", "").isBlank() ? "OpenMP's default waiting (spinning)"
                : "OMP_WAIT_POLICY=" + System.getenv("OMP_WAIT_POLICY");
        String available = Runtime.getRuntime().availableProcessors() + " CPUs available to this process";
        if (pipeline.threads() > 0) {
            System.setProperty("ai.djl.pytorch.num_threads", Integer.toString(pipeline.threads()));
            System.setProperty("ai.djl.pytorch.num_interop_threads", Integer.toString(pipeline.threads()));
            out.println("threads: " + pipeline.threads() + " (libtorch intra-op and inter-op, data rendering; pipeline.threads; " + available + "; "
                    + waiting + ")");
        } else {
            out.println("threads: libtorch's default (pipeline.threads = 0; " + available + "; " + waiting + ")");
        }
    }

    private void runStages(boolean resume, Optional<Path> checkpoint, Optional<Integer> checkpointStage) throws Exception {
        Supplier<Device> device = memoize(() -> {
            DeviceChoice choice = DeviceChoice.choose(pipeline.device(), "pipeline.device");
            out.println(choice.line());
            return choice.device();
        });
        Supplier<Optional<ModelArchitecture>> model = () -> pipeline.model().map(ValidatedPipeline.ModelPlan::architecture);
        Optional<Path> previousModel = Optional.empty();
        for (ValidatedPipeline.StagePlan plan : pipeline.stages()) {
            Stage stage = plan.stage(); // built once, by validation
            Path dir = stageDirectory(pipeline.runDir(), plan.index(), plan.name());
            Files.createDirectories(dir);
            out.println("== stage " + (plan.index() + 1) + "/" + pipeline.stages().size() + ": " + plan.name()
                    + " (" + stage.describe() + ") in " + dir);
            try (MetricsSinks metrics = MetricsSinks.open(pipeline.metrics(), extensions, dir, resume, out)) {
                Optional<Path> named = checkpointStage.filter(i -> i == plan.index()).flatMap(i -> checkpoint);
                RunStageContext context = new RunStageContext(dir, previousModel, resume, named, model, pipeline.seed(), device,
                        metrics, progress, out);
                stage.run(context);
                if (context.published().isPresent()) {
                    previousModel = context.published();
                }
            }
            Optional<String> signal = StopSignals.requested();
            if (signal.isEmpty()) {
                StageChart.draw(dir, charts, out); // a failure to draw is a warning, never a failed run
            }
            if (signal.isPresent()) {
                throw new RunFailedException("stopped by " + signal.get() + " in stage " + (plan.index() + 1) + " (" + plan.name()
                        + ")", StopSignals.exitCode(signal.get()), null);
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
