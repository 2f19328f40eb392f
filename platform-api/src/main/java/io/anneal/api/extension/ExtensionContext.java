package io.anneal.api.extension;

import io.anneal.api.Stable;
import io.anneal.api.config.ConfigView;
import java.nio.file.Path;
import java.util.Map;

/**
 * What a factory may use while it builds: other extensions (a stage builds its schedule and its
 * model through here, never by naming another plugin's classes) and the place the pipeline file
 * lives, against which relative paths resolve.
 */
@Stable(since = "1.0")
public interface ExtensionContext {

    /** Builds the extension that {@code block}'s {@code type} selects for {@code point}. */
    <T> T build(Class<T> point, ConfigView block);

    /**
     * Builds an extension from settings made in code (for example, muP multipliers read from a
     * checkpoint's {@code config.json}), validated against the type's defaults like a HOCON block.
     */
    <T> T build(Class<T> point, String type, Map<String, ?> settings, String origin);

    /**
     * The runtime's training loop as a stage, for a plugin's training stage (DPO): batching,
     * accumulation, precision and loss scale, clipping, optimizer and schedule, evaluation,
     * checkpoints, exact resume and metrics, all as the {@code sft} stage does them, with
     * {@code objective} as the loss. {@code block} is the plugin stage's block: it carries the sft
     * stage's keys (its {@code reference.conf} repeats them with its own defaults) and the nested
     * {@code schedule}, {@code optimizer}, {@code data} and optional {@code eval-data} blocks. Since API 1.2.
     *
     * @throws UnsupportedOperationException where no trainer is available (a test context)
     */
    default io.anneal.api.train.Stage trainingStage(ConfigView block, io.anneal.api.train.Objective objective) {
        throw new UnsupportedOperationException("this context offers no training loop");
    }

    /**
     * {@code pipeline.threads}: the CPU threads the pipeline may use, for work a plugin spreads over
     * threads of its own (rendering and tokenising data); 0 when the pipeline leaves it to each
     * library's default. Since API 1.2.
     */
    default int threads() {
        return 0;
    }

    /** Resolves a path written in configuration against the folder of the file that wrote it. */
    Path resolvePath(ConfigView block, String key);
}
