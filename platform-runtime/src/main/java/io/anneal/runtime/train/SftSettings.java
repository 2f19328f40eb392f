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
 * @param batchTokens       the requested tokens per optimizer step (1M in seed 000); with a batch in pairs,
 *                          batch-pairs x sequence-length (one pair per row)
 * @param batchPairs        preference pairs per optimizer step ({@code batch-pairs}, 256 in seed 000's DPO
 *                          table), or 0 where the batch is counted in tokens ({@code batch-tokens})
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
record SftSettings(String configPath, int sequenceLength, int microBatchRows, long batchTokens, int batchPairs,
                   OptionalLong tokenBudget,
                   double maxGradNorm, Precision precision, LossScaleSettings lossScale, long evalEvery, long evalTokens,
                   long checkpointEvery, int keepLast, int logEverySteps, OnCheckpointFailure onCheckpointFailure,
                   boolean cudaGraphs) {

    /** {@code on-checkpoint-failure}: stop the run (exit 1), or log the failure and train on. */
    enum OnCheckpointFailure { STOP, CONTINUE }

    /** {@code cuda-graphs}: replay steps as CUDA graphs where the model and optimizer allow it, or never. */
    enum CudaGraphs { AUTO, OFF }

    /** The key of a batch counted in preference pairs. */
    static final String BATCH_PAIRS = "batch-pairs";

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

    /** The log line that says how the requested batch was rounded (or, in pairs, how it is laid out). */
    String batchDescription() {
        long actual = stepTokens();
        if (batchPairs > 0) {
            return String.format(Locale.ROOT, "batch: %d pairs per step, one pair per row: %d micro-batches of %d x %d tokens = "
                    + "%,d tokens per step", batchPairs, microBatchesPerStep(), microBatchRows, sequenceLength, actual);
        }
        String rounding = actual == batchTokens ? "exactly" : String.format(Locale.ROOT,
                "rounded to the nearest whole micro-batch, %+.2f%% of the requested %s",
                100.0 * (actual - batchTokens) / batchTokens, TokenCount.format(batchTokens));
        return String.format(Locale.ROOT, "batch: %d micro-batches of %d x %d tokens = %,d tokens per step (%s)",
                microBatchesPerStep(), microBatchRows, sequenceLength, actual, rounding);
    }

    static SftSettings parse(ConfigView config) {
        return parse(config, false);
    }

    /**
     * @param inPairs whether the stage's batch is counted in preference pairs ({@code batch-pairs}, the
     *                stage's objective takes pairs) rather than in tokens ({@code batch-tokens})
     */
    static SftSettings parse(ConfigView config, boolean inPairs) {
        List<ConfigProblem> problems = new ArrayList<>();
        int sequenceLength = positiveInt(config, "sequence-length", problems);
        int microBatchRows = positiveInt(config, "micro-batch-rows", problems);
        int batchPairs = 0;
        long batchTokens;
        if (inPairs) {
            batchPairs = batchPairs(config, microBatchRows, problems);
            batchTokens = (long) Math.max(batchPairs, 0) * Math.max(sequenceLength, 0);
        } else if (config.has(BATCH_PAIRS)) {
            problems.addAll(config.invalid(BATCH_PAIRS, "no batch-pairs: this stage's objective trains on token rows, so its "
                    + "batch is batch-tokens").problems());
            batchTokens = config.getTokens("batch-tokens").tokens();
        } else {
            batchTokens = config.getTokens("batch-tokens").tokens();
        }
        if (inPairs) {
            // batch-pairs was checked: its tokens follow from it
        } else if (batchTokens <= 0) {
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
        CudaGraphs cudaGraphs = CudaGraphs.AUTO; // stages built on these settings without the key (dpo) keep auto
        try {
            cudaGraphs = config.has("cuda-graphs") ? config.getEnum("cuda-graphs", CudaGraphs.class) : CudaGraphs.AUTO;
        } catch (ConfigException e) {
            problems.addAll(e.problems());
        }
        if (!problems.isEmpty()) {
            throw new ConfigException(problems);
        }
        return new SftSettings(config.path(), sequenceLength, microBatchRows, batchTokens, batchPairs, budget, maxGradNorm, precision,
                new LossScaleSettings(initial, growthInterval, backoff, growth, maxSkips), evalEvery, evalTokens,
                checkpointEvery, keepLast, logEvery, onCheckpointFailure, cudaGraphs == CudaGraphs.AUTO);
    }

    /**
     * {@code batch-pairs}: preference pairs per optimizer step (seed 000's DPO "batch size 256" is in
     * pairs, as open-instruct counts it: per-device batch x accumulation x devices). A preference data
     * source puts one pair per row ({@link io.anneal.api.data.PreferenceRows}), so a micro-batch holds
     * micro-batch-rows pairs and a step is batch-pairs / micro-batch-rows micro-batches: the count must
     * divide, or the step would not hold the pairs asked for.
     */
    private static int batchPairs(ConfigView config, int microBatchRows, List<ConfigProblem> problems) {
        if (config.has("batch-tokens")) {
            problems.addAll(config.invalid("batch-tokens", "no batch-tokens: this stage's objective trains on preference pairs, "
                    + "so its batch is counted in pairs with batch-pairs (one pair per row)").problems());
        }
        if (!config.has(BATCH_PAIRS)) {
            problems.addAll(config.invalid(BATCH_PAIRS, "the preference pairs per optimizer step, such as 256 (seed 000)",
                    "no value").problems());
            return 0;
        }
        int pairs;
        try {
            pairs = config.getInt(BATCH_PAIRS);
        } catch (ConfigException e) {
            problems.addAll(e.problems());
            return 0;
        }
        if (pairs <= 0) {
            problems.addAll(config.invalid(BATCH_PAIRS, "a positive number of preference pairs per step, such as 256 (seed 000)",
                    Integer.toString(pairs)).problems());
        } else if (microBatchRows > 0 && pairs % microBatchRows != 0) {
            int below = pairs / microBatchRows * microBatchRows;
            int above = below + microBatchRows;
            problems.addAll(config.invalid(BATCH_PAIRS, "a multiple of micro-batch-rows (" + microBatchRows + "): a row holds one "
                    + "pair, so a micro-batch holds " + microBatchRows + " pairs and a step whole micro-batches (nearest: "
                    + (below > 0 ? below + " or " : "") + above + ")", Integer.toString(pairs)).problems());
        }
        return pairs;
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
