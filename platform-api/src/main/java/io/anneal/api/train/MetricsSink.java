package io.anneal.api.train;

import io.anneal.api.Stable;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;

/**
 * Where a stage writes its metrics, one record per step. Names follow TRL ({@code loss},
 * {@code learning_rate}, {@code grad_norm}, {@code num_tokens}, {@code mean_token_accuracy}; for
 * DPO {@code rewards/chosen}, {@code rewards/margins}, ...), so dashboards built for TRL carry over.
 *
 * <p>Since API 1.2 also an extension point: {@code pipeline.metrics = [jsonl, tensorboard]} (or
 * blocks, {@code { type = tensorboard, ... }}) selects sinks by type name, built by their
 * {@link io.anneal.api.extension.ExtensionFactory} once per stage. The runtime then calls
 * {@link #open} once, {@link #restartAt} on a resume, {@link #log} for every logged step and
 * {@link #close} when the stage ends. {@code metrics.jsonl} is always written, listed or not.
 */
@Stable(since = "1.0")
public interface MetricsSink extends AutoCloseable {

    void log(long step, Map<String, ?> metrics);

    /**
     * A resumed stage continues from {@code step}: records of later steps, written before the
     * interruption and about to be written again, are dropped, so each step is recorded once. A stage
     * that resumes from nothing calls it with 0. Since API 1.2; the default keeps everything.
     */
    default void restartAt(long step) {
    }

    /**
     * Before anything is logged, for a sink built from {@code pipeline.metrics}: the stage's folder
     * (the sink writes there or below), whether the run resumes (keep what earlier runs wrote), and
     * the console for warnings. Since API 1.2; the default does nothing.
     */
    default void open(Path stageDirectory, boolean resume, PrintStream console) {
    }

    /** Flushes and releases what the sink holds; called once when the stage ends. Since API 1.2. */
    @Override
    default void close() {
    }
}
