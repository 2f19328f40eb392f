package io.anneal.runtime.train;

import ai.djl.Device;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.train.MetricsSink;
import io.anneal.api.train.ProgressReporter;
import io.anneal.api.train.StageContext;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** A test {@link StageContext}: CPU, metrics kept in a list, console captured, an optional crash at a step. */
final class TestStageContext implements StageContext {
    final Path stageDirectory;
    final ModelArchitecture architecture;
    final boolean resume;
    final List<Map<String, Object>> metrics = new ArrayList<>();
    final ByteArrayOutputStream console = new ByteArrayOutputStream();
    final PrintStream out = new PrintStream(console, true, StandardCharsets.UTF_8);
    Path published;
    long crashAtStep = -1;
    /** A stop request (as from SIGINT) arrives while this step runs; -1: never. */
    long stopDuringStep = -1;
    Path resumeCheckpoint;

    TestStageContext(Path stageDirectory, ModelArchitecture architecture, boolean resume) {
        this.stageDirectory = stageDirectory;
        this.architecture = architecture;
        this.resume = resume;
    }

    String console() {
        return console.toString(StandardCharsets.UTF_8);
    }

    /** The per-step records (those with a loss), in order. */
    List<Map<String, Object>> steps() {
        return metrics.stream().filter(m -> m.containsKey("loss")).toList();
    }

    @Override
    public Path stageDirectory() {
        return stageDirectory;
    }

    @Override
    public Optional<Path> inputModel() {
        return Optional.empty();
    }

    @Override
    public void publishModel(Path directory) {
        published = directory;
    }

    @Override
    public boolean stopRequested() {
        return stopDuringStep == 0 || stopDuringStep > 0
                && steps().stream().anyMatch(m -> ((Number) m.get("step")).longValue() >= stopDuringStep);
    }

    @Override
    public Optional<Path> resumeCheckpoint() {
        return Optional.ofNullable(resumeCheckpoint);
    }

    @Override
    public boolean resume() {
        return resume;
    }

    @Override
    public ModelArchitecture modelArchitecture() {
        return architecture;
    }

    @Override
    public long seed() {
        return 7;
    }

    @Override
    public Device device() {
        return Device.cpu();
    }

    @Override
    public MetricsSink metrics() {
        return (step, values) -> {
            if (step == crashAtStep) {
                throw new IllegalStateException("simulated crash at step " + step);
            }
            Map<String, Object> record = new LinkedHashMap<>();
            record.put("step", step);
            record.putAll(values);
            metrics.add(record);
        };
    }

    @Override
    public ProgressReporter progress(String label, long total, String unit) {
        return new ProgressReporter() {
            @Override
            public void update(long done, String status) {
            }

            @Override
            public void close() {
            }
        };
    }

    @Override
    public PrintStream out() {
        return out;
    }
}
