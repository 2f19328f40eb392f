package io.anneal.runtime.train;

import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.ConfigView;
import io.anneal.api.data.TrainingData;
import io.anneal.api.optim.OptimizerFactory;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.api.train.Objective;
import io.anneal.api.train.Stage;
import io.anneal.api.units.TokenCount;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * {@code stages = [ { type = sft, schedule {...}, optimizer {...}, data {...}, eval-data {...}, ... } ]}:
 * builds the schedule, optimizer and data through their extension points and checks that the stage
 * can work (a batch holds a micro-batch, the budget is positive and finite) before anything runs.
 */
public final class SftStageFactory implements ExtensionFactory<Stage> {
    static final String SCHEDULE = "schedule";
    static final String OPTIMIZER = "optimizer";
    static final String DATA = "data";
    static final String EVAL_DATA = "eval-data";
    static final String INIT_FROM = "init-from";

    @Override
    public Class<Stage> extensionPoint() {
        return Stage.class;
    }

    @Override
    public String type() {
        return "sft";
    }

    @Override
    public String description() {
        return "supervised fine-tuning: token-budget batches, loss over supervised tokens, float16 or float32, exact resume";
    }

    @Override
    public Map<String, Class<?>> nestedExtensions() {
        Map<String, Class<?>> nested = new LinkedHashMap<>();
        nested.put(SCHEDULE, LrSchedule.class);
        nested.put(OPTIMIZER, OptimizerFactory.class);
        nested.put(DATA, TrainingData.class);
        nested.put(EVAL_DATA, TrainingData.class);
        return nested;
    }

    @Override
    public Stage create(ConfigView config, ExtensionContext context) {
        return create(config, context, new SftObjective());
    }

    /**
     * The training loop over the block of any stage that carries the sft stage's keys (a plugin's
     * dpo stage, through {@link ExtensionContext#trainingStage}), with {@code objective} as its loss.
     */
    public static Stage create(ConfigView config, ExtensionContext context, Objective objective) {
        // Each part is checked even when another fails, so validate reports every problem at once.
        List<ConfigProblem> problems = new ArrayList<>();
        SftSettings settings = collect(problems, () -> SftSettings.parse(config, objective.needsPreferencePairs()));
        LrSchedule schedule = collect(problems, () -> context.build(LrSchedule.class, config.getConfig(SCHEDULE)));
        Long budget = settings == null || schedule == null ? null : collect(problems, () -> budget(config, settings, schedule));
        OptimizerFactory optimizer = collect(problems, () -> context.build(OptimizerFactory.class, config.getConfig(OPTIMIZER)));
        TrainingData data = collect(problems, () -> context.build(TrainingData.class, config.getConfig(DATA)));
        Optional<TrainingData> evalData = config.has(EVAL_DATA)
                ? Optional.ofNullable(collect(problems, () -> context.build(TrainingData.class, config.getConfig(EVAL_DATA))))
                : Optional.empty();
        if (data != null && objective.needsPreferencePairs() != data.preferencePairs()) {
            problems.addAll(config.invalid(DATA, "data that fits the stage's objective " + objective.describe() + ": "
                    + (objective.needsPreferencePairs() ? "preference pairs" : "supervised chat rows"),
                    data.describe() + ", which yields " + (data.preferencePairs() ? "preference pairs" : "supervised chat rows")
                    + " (stage " + config.path() + stageName(config) + ")").problems());
        }
        if (settings != null && settings.evalEvery() > 0 && !config.has(EVAL_DATA)) {
            problems.addAll(config.invalid("eval-every", "0 (no evaluation) unless an eval-data block is given",
                    TokenCount.format(settings.evalEvery())).problems());
        }
        Optional<Path> initFrom = Optional.empty();
        if (!config.getString(INIT_FROM).isBlank()) {
            Path folder = context.resolvePath(config, INIT_FROM);
            if (Files.isDirectory(folder)) {
                initFrom = Optional.of(folder);
            } else {
                problems.addAll(config.invalid(INIT_FROM, "a Hugging Face checkpoint folder (config.json, model.safetensors)",
                        folder + ", which is not a folder").problems());
            }
        }
        if (!problems.isEmpty()) {
            throw new ConfigException(problems);
        }
        return new SftStage(settings, schedule, budget, optimizer, data, evalData, initFrom, objective,
                config.has("type") ? config.getString("type") : "sft");
    }

    /** ", 'NAME'": the stage's name, else its type, as the stage folder is named; empty when neither is set. */
    private static String stageName(ConfigView config) {
        return config.has("name") ? ", '" + config.getString("name") + "'" : config.has("type") ? ", '" + config.getString("type") + "'" : "";
    }

    private static long budget(ConfigView config, SftSettings settings, LrSchedule schedule) {
        if (settings.tokenBudget().isPresent()) {
            return settings.tokenBudget().getAsLong();
        }
        long budget = schedule.stopTokens();
        if (budget == Long.MAX_VALUE) {
            throw config.invalid("token-budget", "a token count such as 3G: the schedule " + schedule.describe()
                    + " is open-ended, so it cannot say where training stops", SftSettings.BUDGET_FROM_SCHEDULE);
        }
        if (budget <= 0) {
            throw config.invalid("token-budget", "a positive token budget; the schedule " + schedule.describe()
                    + " stops at 0 tokens", SftSettings.BUDGET_FROM_SCHEDULE);
        }
        return budget;
    }

    /** The value, or null with its problems recorded. */
    private static <T> T collect(List<ConfigProblem> problems, java.util.function.Supplier<T> part) {
        try {
            return part.get();
        } catch (ConfigException e) {
            problems.addAll(e.problems());
            return null;
        }
    }
}
