package io.anneal.runtime.train;

import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.ConfigView;
import io.anneal.api.units.TokenCount;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalLong;

/**
 * The validated settings of an {@code sft} stage (defaults in the runtime's {@code reference.conf}
 * under {@code anneal.stage.sft}). Every problem is reported at once, each naming its path.
 *
 * @param configPath        the stage block's path, e.g. {@code stages[0]}
 * @param sequenceLength    tokens per row (16k in the main Falcon-H1 SFT stage, seed 000)
 * @param microBatchRows    rows per forward/backward pass
 * @param batchTokens       the requested tokens per optimizer step (1M in seed 000)
 * @param tokenBudget       where training stops; empty: the schedule's {@code stopTokens()}
 * @param maxGradNorm       global-norm clipping threshold; 0 disables clipping
 * @param evalEvery         tokens between evaluations; 0 disables evaluation
 * @param evalTokens        tokens per evaluation
 * @param checkpointEvery   tokens between checkpoints; 0 writes only the final one
 * @param keepLast          committed checkpoints kept
 * @param logEverySteps     metrics are written every this many steps
 * @param onCheckpointFailure what a failed checkpoint write does: stop the run (the default) or continue
 * @param cudaGraphs        whether steps may replay as CUDA graphs ({@code cuda-graphs = auto}) or never ({@code off})
 */
record SftSettings(String configPath, int sequenceLength, int microBatchRows, long batchTokens, OptionalLong tokenBudget,
                   double maxGradNorm, Precision precision, LossScaleSettings lossScale, long evalEvery, long evalTokens,
                   long checkpointEvery, int keepLast, int logEverySteps, OnCheckpointFailure onCheckpointFailure,
                   boolean cudaGraphs) {

    /** {@code on-checkpoint-failure}: stop the run (exit 1), or log the failure and train on. */
    enum OnCheckpointFailure { STOP, CONTINUE }

    /** {@code cuda-graphs}: replay steps as CUDA graphs where the model and optimizer allow it, or never. */
    enum CudaGraphs { AUTO, OFF }

    /** The token budget value that means "stop where the schedule stops". */
    static final String BUDGET_FROM_SCHEDULE = "schedule";

    long microBatchTokens() {
        return (long) microBatchRows * sequenceLength;
    }

    /**
     * Micro-batches per optimizer step: {@code batch-tokens} rounded to the NEAREST whole number of
     * micro-batches (halves round up), at least one; validation guarantees a batch holds at least one.
     */
    int microBatchesPerStep() {
        long micro = microBatchTokens();
        return (int) Math.max(1, (batchTokens + micro / 2) / micro);
    }

    /** Tokens one optimizer step actually consumes. */
    long stepTokens() {
        return microBatchesPerStep() * microBatchTokens();
    }

    /** The log line that says how the requested batch was rounded. */
    String batchDescription() {
        long actual = stepTokens();
        String rounding = actual == batchTokens ? "exactly" : String.format(Locale.ROOT,
                "rounded to the nearest whole micro-batch, %+.2f%% of the requested %s",
                100.0 * (actual - batchTokens) / batchTokens, TokenCount.format(batchTokens));
        return String.format(Locale.ROOT, "batch: %d micro-batches of %d x %d tokens = %,d tokens per step (%s)",
                microBatchesPerStep(), microBatchRows, sequenceLength, actual, rounding);
    }

    static SftSettings parse(ConfigView config) {
        List<ConfigProblem> problems = new ArrayList<>();
        int sequenceLength = positiveInt(config, "sequence-length", problems);
        int microBatchRows = positiveInt(config, "micro-batch-rows", problems);
        long batchTokens = config.getTokens("batch-tokens").tokens();
        if (batchTokens <= 0) {
            problems.addAll(config.invalid("batch-tokens", "a positive token count such as 1M").problems());
        } else if (sequenceLength > 0 && microBatchRows > 0 && batchTokens < (long) sequenceLength * microBatchRows) {
            problems.addAll(config.invalid("batch-tokens", "at least one micro-batch, micro-batch-rows x sequence-length = "
                    + microBatchRows + " x " + sequenceLength + " = " + (long) microBatchRows * sequenceLength + " tokens").problems());
        }
        OptionalLong budget = OptionalLong.empty();
        String budgetText = config.getString("token-budget").trim();
        if (!budgetText.equalsIgnoreCase(BUDGET_FROM_SCHEDULE)) {
            long tokens = -1;
            try {
                tokens = config.getTokens("token-budget").tokens();
            } catch (ConfigException e) {
                problems.addAll(e.problems());
            } catch (IllegalArgumentException e) {
                problems.addAll(config.invalid("token-budget", "'schedule' or a positive token count such as 3G").problems());
            }
            if (tokens == 0) {
                problems.addAll(config.invalid("token-budget", "a positive token count such as 3G (or 'schedule')").problems());
            } else if (tokens > 0) {
                budget = OptionalLong.of(tokens);
            }
        }
        double maxGradNorm = config.getDouble("max-grad-norm");
        if (!(maxGradNorm >= 0) || Double.isInfinite(maxGradNorm)) {
            problems.addAll(config.invalid("max-grad-norm", "a finite norm >= 0 (0 disables clipping)").problems());
        }
        Precision precision = null;
        try {
            precision = Precision.parse(config, "precision");
        } catch (ConfigException e) {
            problems.addAll(e.problems());
        }
        ConfigView scale = config.getConfig("loss-scale");
        double initial = scale.getDouble("initial");
        if (!(initial > 0) || Double.isInfinite(initial)) {
            problems.addAll(scale.invalid("initial", "a positive scale such as 65536 (2^16)").problems());
        }
        int growthInterval = positiveInt(scale, "growth-interval", problems);
        double backoff = scale.getDouble("backoff");
        if (!(backoff > 0 && backoff < 1)) {
            problems.addAll(scale.invalid("backoff", "a factor in (0, 1), such as 0.5").problems());
        }
        double growth = scale.getDouble("growth");
        if (!(growth > 1) || Double.isInfinite(growth)) {
            problems.addAll(scale.invalid("growth", "a factor above 1, such as 2").problems());
        }
        int maxSkips = positiveInt(scale, "max-consecutive-skips", problems);
        long evalEvery = config.getTokens("eval-every").tokens();
        long evalTokens = config.getTokens("eval-tokens").tokens();
        if (evalEvery > 0 && evalTokens == 0) {
            problems.addAll(config.invalid("eval-tokens", "a positive token count when eval-every is set").problems());
        }
        long checkpointEvery = config.getTokens("checkpoint-every").tokens();
        int keepLast = positiveInt(config, "keep-last", problems);
        int logEvery = positiveInt(config, "log-every-steps", problems);
        OnCheckpointFailure onCheckpointFailure = null;
        try {
            onCheckpointFailure = config.getEnum("on-checkpoint-failure", OnCheckpointFailure.class);
        } catch (ConfigException e) {
            problems.addAll(e.problems());
        }
        CudaGraphs cudaGraphs = CudaGraphs.AUTO;
        try {
            cudaGraphs = config.getEnum("cuda-graphs", CudaGraphs.class);
        } catch (ConfigException e) {
            problems.addAll(e.problems());
        }
        if (!problems.isEmpty()) {
            throw new ConfigException(problems);
        }
        return new SftSettings(config.path(), sequenceLength, microBatchRows, batchTokens, budget, maxGradNorm, precision,
                new LossScaleSettings(initial, growthInterval, backoff, growth, maxSkips), evalEvery, evalTokens,
                checkpointEvery, keepLast, logEvery, onCheckpointFailure, cudaGraphs == CudaGraphs.AUTO);
    }

    private static int positiveInt(ConfigView config, String key, List<ConfigProblem> problems) {
        int value = config.getInt(key);
        if (value <= 0) {
            problems.addAll(config.invalid(key, "a positive integer").problems());
        }
        return value;
    }

    /** The full config path of a key of this stage, for messages. */
    String pathOf(String key) {
        return configPath.isEmpty() ? key : configPath + "." + key;
    }
}
