package io.anneal.runtime.config;

import com.typesafe.config.Config;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * A pipeline that passed validation, with every block merged over its defaults.
 *
 * @param file     the pipeline file
 * @param name     {@code pipeline.name}
 * @param runDir   {@code pipeline.run-dir}, resolved against the file that set it
 * @param device   {@code auto}, {@code cpu} or {@code gpu}
 * @param seed     {@code pipeline.seed}
 * @param threads  {@code pipeline.threads} as a number: libtorch's intra-op and inter-op threads (0: its own default)
 * @param metrics  the {@code pipeline.metrics} sinks as blocks ({@code jsonl} is always among them)
 * @param model    the top-level {@code model} block, if any
 * @param stages   the stages in order
 * @param resolved the whole effective pipeline (for printing with origins)
 */
public record ValidatedPipeline(Path file, String name, Path runDir, String device, long seed, int threads,
                                List<HoconConfigView> metrics,
                                Optional<HoconConfigView> model, List<StagePlan> stages, Config resolved) {

    /** One stage: its position (0-based), name, type and merged block. */
    public record StagePlan(int index, String name, String type, HoconConfigView block) {
    }
}
