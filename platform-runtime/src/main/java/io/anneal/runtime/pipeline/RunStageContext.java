package io.anneal.runtime.pipeline;

import ai.djl.Device;
import io.anneal.api.InputException;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.train.MetricsSink;
import io.anneal.api.train.ProgressReporter;
import io.anneal.api.train.StageContext;
import io.anneal.runtime.output.ProgressReporters;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Optional;
import java.util.function.Supplier;

/** The {@link StageContext} the engine gives one stage. Device and model are built on first use. */
final class RunStageContext implements StageContext {
    private final Path stageDirectory;
    private final Optional<Path> inputModel;
    private final boolean resume;
    private final Optional<Path> resumeCheckpoint;
    private final Supplier<Optional<ModelArchitecture>> model;
    private final long seed;
    private final Supplier<Device> device;
    private final MetricsSink metrics;
    private final ProgressReporters progress;
    private final PrintStream out;
    private Path published;

    RunStageContext(Path stageDirectory, Optional<Path> inputModel, boolean resume, Optional<Path> resumeCheckpoint,
                    Supplier<Optional<ModelArchitecture>> model, long seed, Supplier<Device> device,
                    MetricsSink metrics, ProgressReporters progress, PrintStream out) {
        this.stageDirectory = stageDirectory;
        this.inputModel = inputModel;
        this.resume = resume;
        this.resumeCheckpoint = resumeCheckpoint;
        this.model = model;
        this.seed = seed;
        this.device = device;
        this.metrics = metrics;
        this.progress = progress;
        this.out = out;
    }

    Optional<Path> published() {
        return Optional.ofNullable(published);
    }

    @Override
    public Path stageDirectory() {
        return stageDirectory;
    }

    @Override
    public Optional<Path> inputModel() {
        return inputModel;
    }

    @Override
    public void publishModel(Path directory) {
        this.published = directory;
    }

    @Override
    public boolean resume() {
        return resume;
    }

    @Override
    public Optional<Path> resumeCheckpoint() {
        return resumeCheckpoint;
    }

    @Override
    public boolean stopRequested() {
        return StopSignals.requested().isPresent();
    }

    @Override
    public ModelArchitecture modelArchitecture() {
        return model.get().orElseThrow(() -> new InputException(
                "this pipeline has no model { type = ... } block, and the stage in " + stageDirectory + " needs one"));
    }

    @Override
    public long seed() {
        return seed;
    }

    @Override
    public Device device() {
        return device.get();
    }

    @Override
    public MetricsSink metrics() {
        return metrics;
    }

    @Override
    public ProgressReporter progress(String label, long total, String unit) {
        return progress.open(label, total, unit);
    }

    @Override
    public PrintStream out() {
        return out;
    }
}
