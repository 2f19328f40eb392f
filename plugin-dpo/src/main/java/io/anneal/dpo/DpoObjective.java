package io.anneal.dpo;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.PreferenceRows;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.train.DeviceScalars;
import io.anneal.api.train.LabelLogProbabilities;
import io.anneal.api.train.Objective;
import io.anneal.api.train.ObjectiveSetup;
import io.anneal.api.train.ObjectiveSums;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code objective { type = dpo | dpo_norm | ipo | hinge | robust | simpo, beta = ..., ... }}: a
 * preference loss ({@link PreferenceLoss}) over the pairs of a micro-batch laid out as
 * {@link PreferenceRows} says, both answers scored by ONE forward pass of the policy.
 *
 * <p>The reference model is a frozen copy of the policy's initial weights
 * ({@link ObjectiveSetup#loadInitialModel()}), run once per micro-batch; its log-probs are read to
 * the host, so no gradient reaches it. The policy's per-token log-probs come from the model's fused
 * path when it has one ({@link LabelLogProbabilities}); summed per answer on the host (float64), they
 * give each pair's loss and its derivatives d loss / d (summed log-probs) in closed form. The loss
 * handed to the trainer is {@code sum_t c_t log p_t - stop_gradient(same) + L}: its value is the
 * micro-batch's loss sum L and its gradient that of L, with {@code c_t} the derivative for the pair
 * and answer of token t. The batch loss is the mean over pairs (the denominator is the pair count).
 */
final class DpoObjective implements Objective {
    static final List<String> METRICS = List.of("rewards/chosen", "rewards/rejected", "rewards/accuracies",
            "rewards/margins", "logps/chosen", "logps/rejected");

    private final PreferenceLoss loss;
    private CausalLanguageModel reference;

    DpoObjective(PreferenceLoss loss) {
        this.loss = loss;
    }

    @Override
    public void open(ObjectiveSetup setup) {
        if (loss.type().needsReference && reference == null) {
            reference = setup.loadInitialModel();
            setup.out().println("dpo: " + loss.describe() + "; reference model: a frozen copy of the policy's initial weights");
        } else {
            setup.out().println("dpo: " + loss.describe() + "; no reference model (reference-free)");
        }
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
        NDArray policy = LabelLogProbabilities.of(manager, model, batch, training).logProbabilities();
        double[][] policySums = sums(policy.stopGradient().toFloatArray(), layout);
        double[][] referenceSums = new double[2][pairs];
        if (reference != null) {
            try (NDManager scratch = manager.newSubManager()) {
                NDArray ref = LabelLogProbabilities.of(scratch, reference, batch, false).logProbabilities();
                referenceSums = sums(ref.stopGradient().toFloatArray(), layout);
            }
        }
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
            metrics.put(METRICS.get(m), DeviceScalars.of(manager, metricSums[m]));
        }
        return new ObjectiveSums(lossArray, metrics);
    }

    /** Per pair, the summed log-probs of the chosen [0] and rejected [1] answer, in float64. */
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
        return loss.describe();
    }

    @Override
    public void close() {
        if (reference != null) {
            reference.close();
            reference = null;
        }
    }
}
