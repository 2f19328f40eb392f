package io.anneal.dpo;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.training.GradientCollector;
import ai.djl.engine.Engine;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.PreferenceRows;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.train.ObjectiveSetup;
import io.anneal.api.train.ObjectiveSums;
import org.junit.jupiter.api.Test;

import java.io.PrintStream;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The objective on a real (bigram) model: pairs decoded from a packed row, the loss value equal to
 * the host loss over host-computed log-probs, the gradient equal to finite differences of that loss,
 * and a reference that is the initial policy (so every reward starts at 0).
 */
class DpoObjectiveTest {
    static final int VOCAB = 7;
    static final int I = PackedBatch.IGNORE;

    /**
     * One row of 16: pair 0 (chosen doc 0 = [1 2 3 4], rejected doc 1 = [1 2 5]), pair 1 (chosen doc 2
     * = [6 3 2], rejected doc 3 = [6 3 0 4]), padding doc 4. The prompt is the first token of each
     * document; every later token is a supervised label.
     */
    static PackedBatch batch() {
        int[] ids = {1, 2, 3, 4, 1, 2, 5, 6, 3, 2, 6, 3, 0, 4, 0, 0};
        int[] labels = {2, 3, 4, I, 2, 5, I, 3, 2, I, 3, 0, 4, I, I, I};
        // the prompt's own next token is not a response token: unsupervise label 0 of each doc but doc 0/1's second
        labels[0] = I;
        labels[4] = I;
        labels[7] = I;
        labels[10] = I;
        int[] positions = {0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1};
        int[] documents = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4};
        return new PackedBatch(1, 16, ids, labels, positions, documents);
    }

    @Test
    void layoutDecodesPairsFromDocumentIds() {
        PreferenceRows.Layout layout = PreferenceRows.of(batch());
        assertEquals(2, layout.pairs());
        assertEquals(2, layout.chosenTokens()[0]); // labels 3 (pos 1) and 4 (pos 2)
        assertEquals(1, layout.rejectedTokens()[0]);
        assertEquals(1, layout.chosenTokens()[1]);
        assertEquals(2, layout.rejectedTokens()[1]);
        int[] ids = {1, 2, 3, 4};
        int[] oneSided = {I, 3, 4, I};
        assertThrows(IllegalArgumentException.class,
                () -> PreferenceRows.of(new PackedBatch(1, 4, ids, oneSided, new int[4], new int[4])));
    }

    @Test
    void lossIsTheHostLossAndItsGradientMatchesFiniteDifferences() {
        for (PreferenceLoss.Type type : PreferenceLoss.Type.values()) {
            PreferenceLoss loss = new PreferenceLoss(type, type == PreferenceLoss.Type.DPO_NORM ? 5.0 : 0.5,
                    type == PreferenceLoss.Type.ROBUST ? 0.1 : 0.0, type == PreferenceLoss.Type.SIMPO ? 0.3 : 0.0, 0.2);
            check(loss);
        }
    }

    private void check(PreferenceLoss loss) {
        PackedBatch batch = batch();
        try (BigramModel policy = new BigramModel(VOCAB, 1); DpoObjective objective = new DpoObjective(loss)) {
            objective.open(setup(VOCAB, 1));
            // move the policy away from the reference so the rewards are not all zero
            policy.table().subi(policy.manager.randomNormal(0f, 0.5f, policy.table().getShape(), policy.table().getDataType()));
            NDArray gradient;
            double value;
            try (NDManager micro = policy.manager.newSubManager();
                 GradientCollector collector = Engine.getInstance().newGradientCollector()) {
                ObjectiveSums sums = objective.forward(micro, policy, batch, true);
                value = sums.loss().getFloat();
                collector.backward(sums.loss());
                gradient = policy.table().getGradient().duplicate();
                assertEquals(hostLoss(loss, policy, batch), value, 1e-4, loss.describe() + " value");
                float accuracy = sums.metrics().get("rewards/accuracies").getFloat();
                assertTrue(accuracy >= 0 && accuracy <= 2, "accuracy sum over 2 pairs");
            }
            float[] g = gradient.toFloatArray();
            float[] table = policy.table().toFloatArray();
            double h = 1e-3;
            for (int k : new int[] {1 * VOCAB + 2, 2 * VOCAB + 3, 2 * VOCAB + 5, 3 * VOCAB + 2, 3 * VOCAB + 0, 0 * VOCAB + 4, 6 * VOCAB + 3}) {
                float original = table[k];
                table[k] = (float) (original + h);
                policy.table().set(table);
                double up = hostLoss(loss, policy, batch);
                table[k] = (float) (original - h);
                policy.table().set(table);
                double down = hostLoss(loss, policy, batch);
                table[k] = original;
                policy.table().set(table);
                assertEquals((up - down) / (2 * h), g[k], 2e-3, loss.describe() + " gradient at " + k);
            }
            policy.table().getGradient().subi(policy.table().getGradient());
        }
    }

    /** The loss sum of the batch from host log-probs of the policy and of the initial (reference) weights. */
    private static double hostLoss(PreferenceLoss loss, BigramModel policy, PackedBatch batch) {
        try (BigramModel reference = new BigramModel(VOCAB, 1)) {
            PreferenceRows.Layout layout = PreferenceRows.of(batch);
            double[][] p = new double[2][layout.pairs()];
            double[][] r = new double[2][layout.pairs()];
            for (int i = 0; i < batch.labels().length; i++) {
                int pair = layout.pairOfToken()[i];
                if (pair < 0) {
                    continue;
                }
                int side = layout.chosenToken()[i] ? 0 : 1;
                p[side][pair] += policy.hostLogProbability(batch.inputIds()[i], batch.labels()[i]);
                r[side][pair] += reference.hostLogProbability(batch.inputIds()[i], batch.labels()[i]);
            }
            double total = 0;
            for (int k = 0; k < layout.pairs(); k++) {
                total += loss.pair(p[0][k], p[1][k], r[0][k], r[1][k], layout.chosenTokens()[k], layout.rejectedTokens()[k]).loss();
            }
            return total;
        }
    }

    @Test
    void rewardsStartAtZeroWhenThePolicyIsTheReference() {
        try (BigramModel policy = new BigramModel(VOCAB, 1);
             DpoObjective objective = new DpoObjective(new PreferenceLoss(PreferenceLoss.Type.DPO, 0.1, 0, 0, 0));
             NDManager micro = policy.manager.newSubManager()) {
            objective.open(setup(VOCAB, 1));
            ObjectiveSums sums = objective.forward(micro, policy, batch(), false);
            assertEquals(0.0, sums.metrics().get("rewards/chosen").getFloat(), 1e-6);
            assertEquals(0.0, sums.metrics().get("rewards/margins").getFloat(), 1e-6);
            assertEquals(2 * Math.log(2), sums.loss().getFloat(), 1e-5, "two pairs at -log sigmoid(0)");
            assertEquals(2, objective.denominator(batch()));
        }
    }

    static ObjectiveSetup setup(int vocab, long seed) {
        return new ObjectiveSetup() {
            @Override
            public CausalLanguageModel loadInitialModel() {
                return new BigramModel(vocab, seed);
            }

            @Override
            public Path stageDirectory() {
                return Path.of(".");
            }

            @Override
            public String configPath() {
                return "stages[0].objective";
            }

            @Override
            public PrintStream out() {
                return new PrintStream(java.io.OutputStream.nullOutputStream());
            }
        };
    }
}
