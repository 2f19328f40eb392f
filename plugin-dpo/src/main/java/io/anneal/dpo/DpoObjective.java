package io.anneal.dpo;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.PreferenceRows;
import io.anneal.api.InputException;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.train.SequenceScorer;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.toolkit.scoring.LabelLogProbabilities;
import io.anneal.api.train.Objective;
import io.anneal.api.train.ObjectiveSetup;
import io.anneal.api.train.ObjectiveSums;

import io.anneal.api.data.TokenBatchStream;

import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * {@code objective { type = dpo | dpo_norm | ipo | hinge | robust | simpo, beta = ..., reference = ... }}:
 * a preference loss ({@link PreferenceLoss}) over the pairs of a micro-batch laid out as
 * {@link PreferenceRows} says, both answers scored by ONE forward pass of the policy.
 *
 * <p>The reference model is the policy's initial weights ({@link ObjectiveSetup#loadInitialModel()}),
 * used one of two ways ({@code reference}): {@code on-the-fly} keeps a frozen copy and runs it on every
 * micro-batch; {@code cached} runs it once per pair before training, over one epoch of the training
 * data and the held-out batches, stores the summed log-probs on disk ({@link ReferenceLogpCache}) and
 * unloads it, so training holds one model. With a {@code reference-scorer} ({@link SequenceScorer},
 * e.g. ONNX Runtime from plugin onnx) the cache is filled by that engine from the reference's folder
 * instead, and no training-engine copy of the reference is loaded at all; the cache file records the
 * engine and model, so values of one engine are never read as another's. Within the first epoch the cached values are the very
 * numbers on-the-fly computes (same batches, same order); later epochs pack pairs differently, which
 * changes the reference's sums only by float32 rounding. Its log-probs are read to the host, so no
 * gradient reaches it.
 *
 * <p>The policy's per-token log-probs come from the model's fused path when it has one
 * ({@link LabelLogProbabilities}); summed per answer on the host (float64), they give each pair's
 * loss and its derivatives d loss / d (summed log-probs) in closed form. The loss handed to the
 * trainer is {@code sum_t c_t log p_t - stop_gradient(same) + L}: its value is the micro-batch's loss
 * sum L and its gradient that of L, with {@code c_t} the derivative for the pair and answer of token
 * t. The batch loss is the mean over pairs (the denominator is the pair count).
 *
 * <p>Metrics, TRL's DPOTrainer names: {@code rewards/*} and {@code logps/*} per pair as
 * {@link PreferenceLoss} defines them; {@code logits/chosen} and {@code logits/rejected} the policy's
 * logits averaged over the vocabulary and the answer's response tokens. TRL averages the logits over
 * all response tokens of its batch; here each pair's mean counts once, so the value does not depend
 * on how pairs are split into micro-batches (every metric is a mean over pairs). All are logged as
 * {@code eval_<name>} on held-out pairs too.
 */
final class DpoObjective implements Objective {
    /** The metrics that a pair's log-probs determine (also what {@code anneal dpo loss} prints). */
    static final List<String> PAIR_METRICS = List.of("rewards/chosen", "rewards/rejected", "rewards/accuracies",
            "rewards/margins", "logps/chosen", "logps/rejected");
    static final List<String> METRICS = java.util.stream.Stream.concat(PAIR_METRICS.stream(),
            java.util.stream.Stream.of("logits/chosen", "logits/rejected")).toList();

    /** {@code reference = on-the-fly | cached}. */
    enum ReferenceMode {
        ON_THE_FLY("on-the-fly"), CACHED("cached");

        final String configName;

        ReferenceMode(String configName) {
            this.configName = configName;
        }
    }

    private final PreferenceLoss loss;
    private final ReferenceMode mode;
    /** The engine that fills the cache (reference = cached only), or null: the training engine's model. */
    private final SequenceScorer scorer;
    private final String scorerType;
    private ObjectiveSetup setup;
    private CausalLanguageModel reference;
    private SequenceScorer.Session session;
    private ReferenceLogpCache cache;
    private long computedWhileTraining;

    DpoObjective(PreferenceLoss loss) {
        this(loss, ReferenceMode.ON_THE_FLY);
    }

    DpoObjective(PreferenceLoss loss, ReferenceMode mode) {
        this(loss, mode, null, null);
    }

    /** A cached reference filled by {@code scorer} (its config type {@code scorerType}); null for the training engine. */
    DpoObjective(PreferenceLoss loss, ReferenceMode mode, SequenceScorer scorer, String scorerType) {
        if (scorer != null && mode != ReferenceMode.CACHED) {
            throw new IllegalArgumentException("a reference scorer fills the cache: reference = cached");
        }
        this.loss = loss;
        this.mode = mode;
        this.scorer = scorer;
        this.scorerType = scorerType;
    }

    @Override
    public void open(ObjectiveSetup setup) {
        this.setup = setup;
        if (!loss.type().needsReference) {
            setup.out().println("dpo: " + loss.describe() + "; no reference model (reference-free)");
        } else if (mode == ReferenceMode.CACHED) {
            if (cache == null) {
                precompute(setup);
            }
        } else if (reference == null) {
            reference = setup.loadInitialModel();
            setup.out().println("dpo: " + loss.describe() + "; reference model: a frozen copy of the policy's initial weights");
        }
    }

    /**
     * Fills the cache with the reference's sums of every pair of one epoch of the training data and
     * of the held-out batches (only the pairs the file does not hold yet), then unloads the reference
     * (a reference scorer's session stays open for pairs met later, so one file holds one engine's values).
     */
    private void precompute(ObjectiveSetup setup) {
        long start = System.nanoTime();
        Set<ReferenceLogpCache.PairKey> used = new HashSet<>();
        int computed = 0;
        CausalLanguageModel frozen = null;
        try {
            ReferenceSource source;
            if (scorer != null) {
                java.nio.file.Path folder = setup.initialModelFolder().orElseThrow(() -> new InputException(setup.configPath()
                        + ".reference-scorer: the reference (the stage's initial weights) is a random initialisation, which has "
                        + "no folder for the scorer to read; give the stage init-from or put it after a stage that publishes a model"));
                session = scorer.open(folder, setup.out());
                cache = ReferenceLogpCache.open(setup.stageDirectory(), session.engine(), session.modelHash(), setup.out());
                source = this::scoredSums;
            } else {
                CausalLanguageModel model = setup.loadInitialModel();
                frozen = model;
                cache = ReferenceLogpCache.open(setup.stageDirectory(), model, setup.out());
                source = (batch, layout) -> referenceSums(model, batch, layout);
            }
            setup.out().println("dpo: reference log-probs computed by " + cache.engine()
                    + (scorer != null ? " (reference-scorer " + scorerType + ")" : " (the training engine)"));
            Optional<TokenBatchStream> training = setup.openTrainingData();
            if (training.isPresent()) {
                try (TokenBatchStream stream = training.get()) {
                    do {
                        computed += fill(source, stream.next(setup.microBatchRows()), used);
                    } while (!stream.progress().stream().allMatch(p -> p.epochs() >= 1.0));
                }
            }
            Optional<TokenBatchStream> held = setup.openEvaluationData();
            if (held.isPresent()) {
                try (TokenBatchStream stream = held.get()) {
                    for (long i = 0; i < setup.evaluationMicroBatches(); i++) {
                        computed += fill(source, stream.next(setup.microBatchRows()), used);
                    }
                }
            }
            if (training.isPresent()) {
                cache.retainOnly(used);
            }
            cache.writeIfChanged();
        } finally {
            if (frozen != null) {
                frozen.close();
            }
        }
        setup.out().println(String.format(Locale.ROOT, "dpo: %s; reference log-probs of %d pairs in %s (%d computed now, %d read "
                        + "from the cache, %.1f s); the reference model is not kept in memory while training", loss.describe(),
                used.size(), cache.file(), computed, used.size() - computed, (System.nanoTime() - start) / 1e9));
    }

    /** Per pair, the reference's chosen [0] and rejected [1] sums of a batch. */
    @FunctionalInterface
    private interface ReferenceSource {
        double[][] sums(PackedBatch batch, PreferenceRows.Layout layout);
    }

    /** Computes and caches the reference sums of the batch's pairs the cache lacks; returns how many. */
    private int fill(ReferenceSource source, PackedBatch batch, Set<ReferenceLogpCache.PairKey> used) {
        PreferenceRows.Layout layout = PreferenceRows.of(batch);
        List<ReferenceLogpCache.PairKey> keys = ReferenceLogpCache.keys(batch, layout);
        used.addAll(keys);
        if (keys.stream().allMatch(k -> cache.get(k) != null)) {
            return 0;
        }
        double[][] sums = source.sums(batch, layout);
        int added = 0;
        for (int p = 0; p < keys.size(); p++) {
            if (cache.get(keys.get(p)) == null) {
                cache.put(keys.get(p), sums[0][p], sums[1][p]);
                added++;
            }
        }
        return added;
    }

    /** The scorer's sums of the batch's pairs: its float32 label log-probs summed per answer as the policy's are. */
    private double[][] scoredSums(PackedBatch batch, PreferenceRows.Layout layout) {
        return sums(session.labelLogProbabilities(batch), layout);
    }

    /** Per pair, the reference's summed log-probs of the chosen [0] and rejected [1] answer. */
    private static double[][] referenceSums(CausalLanguageModel model, PackedBatch batch, PreferenceRows.Layout layout) {
        try (NDManager scratch = NDManager.newBaseManager(model.parameters().get(0).parameter().getArray().getDevice())) {
            NDArray ref = LabelLogProbabilities.of(scratch, model, batch, false).logProbabilities();
            return sums(ref.stopGradient().toFloatArray(), layout);
        }
    }

    /** The reference sums of the batch: from the cache, from the frozen copy, or zeros (reference-free). */
    private double[][] referenceSums(PackedBatch batch, PreferenceRows.Layout layout) {
        if (!loss.type().needsReference) {
            return new double[2][layout.pairs()];
        }
        if (cache == null) {
            if (reference == null) {
                throw new IllegalStateException("dpo: forward before open");
            }
            return referenceSums(reference, batch, layout);
        }
        List<ReferenceLogpCache.PairKey> keys = ReferenceLogpCache.keys(batch, layout);
        double[][] out = new double[2][layout.pairs()];
        boolean complete = true;
        for (int p = 0; p < keys.size() && complete; p++) {
            double[] cached = cache.get(keys.get(p));
            complete = cached != null;
            if (complete) {
                out[0][p] = cached[0];
                out[1][p] = cached[1];
            }
        }
        if (complete) {
            return out;
        }
        // a pair the precomputation did not see (data with no epoch count): computed now, by the
        // engine that filled the cache, and kept
        double[][] sums;
        if (session != null) {
            sums = scoredSums(batch, layout);
        } else {
            if (reference == null) {
                reference = setup.loadInitialModel();
                setup.out().println("dpo: a pair missing from the reference log-prob cache: the reference model is loaded for it");
            }
            sums = referenceSums(reference, batch, layout);
        }
        for (int p = 0; p < keys.size(); p++) {
            if (cache.get(keys.get(p)) == null) {
                cache.put(keys.get(p), sums[0][p], sums[1][p]);
                computedWhileTraining++;
            }
        }
        return sums;
    }

    @Override
    public boolean needsPreferencePairs() {
        return true;
    }

    @Override
    public long denominator(PackedBatch batch) {
        return PreferenceRows.of(batch).pairs();
    }

    @Override
    public ObjectiveSums forward(NDManager manager, CausalLanguageModel model, PackedBatch batch, boolean training) {
        PreferenceRows.Layout layout = PreferenceRows.of(batch);
        int pairs = layout.pairs();
        LabelLogProbabilities.Scored scored = LabelLogProbabilities.of(manager, model, batch, training);
        NDArray policy = scored.logProbabilities();
        double[][] policySums = sums(policy.stopGradient().toFloatArray(), layout);
        double[][] logitSums = scored.meanLogits() == null ? null : sums(scored.meanLogits().toFloatArray(), layout);
        double[][] referenceSums = referenceSums(batch, layout);
        double lossSum = 0;
        double[] metricSums = new double[METRICS.size()];
        double[] gradChosen = new double[pairs];
        double[] gradRejected = new double[pairs];
        for (int p = 0; p < pairs; p++) {
            PreferenceLoss.PairValues v = loss.pair(policySums[0][p], policySums[1][p], referenceSums[0][p], referenceSums[1][p],
                    layout.chosenTokens()[p], layout.rejectedTokens()[p]);
            lossSum += v.loss();
            gradChosen[p] = v.gradChosen();
            gradRejected[p] = v.gradRejected();
            metricSums[0] += v.chosenReward();
            metricSums[1] += v.rejectedReward();
            metricSums[2] += v.chosenReward() > v.rejectedReward() ? 1 : 0;
            metricSums[3] += v.chosenReward() - v.rejectedReward();
            metricSums[4] += v.chosenLogp();
            metricSums[5] += v.rejectedLogp();
            if (logitSums != null) {
                metricSums[6] += logitSums[0][p] / layout.chosenTokens()[p];
                metricSums[7] += logitSums[1][p] / layout.rejectedTokens()[p];
            }
        }
        float[] coefficients = new float[layout.pairOfToken().length];
        for (int i = 0; i < coefficients.length; i++) {
            int p = layout.pairOfToken()[i];
            if (p >= 0) {
                coefficients[i] = (float) (layout.chosenToken()[i] ? gradChosen[p] : gradRejected[p]);
            }
        }
        NDArray surrogate = policy.mul(manager.create(coefficients, new Shape(batch.rows(), batch.length()))).sum();
        NDArray lossArray = surrogate.sub(surrogate.stopGradient()).add(DeviceScalars.of(manager, lossSum));
        Map<String, NDArray> metrics = new LinkedHashMap<>();
        for (int m = 0; m < METRICS.size(); m++) {
            // the fused head materialises no logits: logits/* are then not logged rather than logged wrong
            if (m < PAIR_METRICS.size() || logitSums != null) {
                metrics.put(METRICS.get(m), DeviceScalars.of(manager, metricSums[m]));
            }
        }
        return new ObjectiveSums(lossArray, metrics);
    }

    /** Per pair, the sum of a per-token value over the chosen [0] and rejected [1] answer, in float64. */
    private static double[][] sums(float[] perToken, PreferenceRows.Layout layout) {
        double[][] out = new double[2][layout.pairs()];
        for (int i = 0; i < perToken.length; i++) {
            int p = layout.pairOfToken()[i];
            if (p >= 0) {
                out[layout.chosenToken()[i] ? 0 : 1][p] += perToken[i];
            }
        }
        return out;
    }

    @Override
    public List<String> metricNames() {
        return METRICS;
    }

    @Override
    public String describe() {
        return loss.describe() + (loss.type().needsReference && mode == ReferenceMode.CACHED ? ", cached reference" : "")
                + (scorer != null ? " scored by " + scorerType : "");
    }

    @Override
    public void close() {
        if (cache != null && computedWhileTraining > 0) {
            cache.writeIfChanged();
        }
        if (reference != null) {
            reference.close();
            reference = null;
        }
        if (session != null) {
            session.close();
            session = null;
        }
    }
}
