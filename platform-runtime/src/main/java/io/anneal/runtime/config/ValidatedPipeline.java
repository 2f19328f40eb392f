package io.anneal.runtime.config;

import com.typesafe.config.Config;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.train.Stage;
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
 * @param model    the top-level {@code model} block, if any, with the architecture validation built from it
 * @param stages   the stages in order, each with the stage validation built from its block
 * @param resolved the whole effective pipeline (for printing with origins)
 */
public record ValidatedPipeline(Path file, String name, Path runDir, String device, long seed, int threads,
                                List<HoconConfigView> metrics,
                                Optional<ModelPlan> model, List<StagePlan> stages, Config resolved) {

    /**
     * One stage: its position (0-based), name, type, merged block, and the stage its factory built
     * during validation. The run uses that stage: each extension (and the tokenizer a data block
     * loads) is built once per command, and what validation accepted is what runs.
     */
    public record StagePlan(int index, String name, String type, HoconConfigView block, Stage stage) {
    }

    /** The top-level model block and the architecture built from it during validation. */
    public record ModelPlan(HoconConfigView block, ModelArchitecture architecture) {
    }
}
