package io.anneal.runtime.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class TokenCrossEntropyTest {

    @Test
    void uniformLogitsGiveLogOfTheVocabularySize() {
        // hand value: softmax of equal logits over 3 classes is 1/3, so -log p = ln 3 = 1.0986122886681098
        try (NDManager m = NDManager.newBaseManager()) {
            TokenCrossEntropy.Sums s = TokenCrossEntropy.of(m.zeros(new Shape(1, 1, 3)), m.create(new long[] {1}, new Shape(1, 1)));
            assertEquals(1.0986122886681098, s.negativeLogLikelihood().getFloat(), 1e-6);
        }
    }

    @Test
    void sumsOverSupervisedPositionsOnlyAndCountsArgMaxHits() {
        float[][] logits = {{1, 2, 3}, {0, 0, 0}, {3, 1, -1}};
        long[] labels = {2, -100, 0};
        // independent expectation, written out from the definition -log(exp(l_y) / sum_j exp(l_j));
        // by hand: ln(1.50321472) + ln(1.15365092) = 0.40760596 + 0.14293163 = 0.55053759
        double expected = 0;
        for (int t = 0; t < 3; t++) {
            if (labels[t] == -100) {
                continue;
            }
            double z = 0;
            for (float l : logits[t]) {
                z += Math.exp(l);
            }
            expected += -(logits[t][(int) labels[t]] - Math.log(z));
        }
        assertEquals(0.55053759, expected, 1e-7);
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray l = m.create(new float[] {1, 2, 3, 0, 0, 0, 3, 1, -1}, new Shape(1, 3, 3));
            TokenCrossEntropy.Sums s = TokenCrossEntropy.of(l, m.create(labels, new Shape(1, 3)));
            assertEquals(expected, s.negativeLogLikelihood().getFloat(), 1e-6);
            // argmax of position 0 is class 2 (= label) and of position 2 is class 0 (= label): 2 hits
            assertEquals(2.0f, s.correct().getFloat());
        }
    }

    @Test
    void aModelsOwnLabelLogProbabilitiesGiveTheSameSums() {
        // the fused LM head hands per-token log p(label) (0 where unsupervised) and arg-max hits;
        // hand values of the case above: log p = -0.40760596, 0, -0.14293163; hits 1, 0, 1
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray logProbabilities = m.create(new float[] {-0.40760596f, 0f, -0.14293163f}, new Shape(1, 3));
            NDArray correct = m.create(new float[] {1, 0, 1}, new Shape(1, 3));
            TokenCrossEntropy.Sums s = TokenCrossEntropy.ofLogProbabilities(logProbabilities, correct);
            assertEquals(0.55053759, s.negativeLogLikelihood().getFloat(), 1e-6);
            assertEquals(2.0f, s.correct().getFloat());
        }
    }

    @Test
    void float16LogitsAreLiftedToFloat32BeforeTheSoftmax() {
        // 20 classes with logit 8 in float16: a float16 sum of exp(8) * 20 = 59618 would still fit, but the
        // loss must equal the float32 value ln 20 = 2.995732273553991 to float32 accuracy
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray l = m.full(new Shape(1, 1, 20), 8f).toType(DataType.FLOAT16, false);
            TokenCrossEntropy.Sums s = TokenCrossEntropy.of(l, m.create(new long[] {4}, new Shape(1, 1)));
            assertEquals(DataType.FLOAT32, s.negativeLogLikelihood().getDataType());
            assertEquals(2.995732273553991, s.negativeLogLikelihood().getFloat(), 1e-6);
        }
    }

    @Test
    void gradientsReachFloat16LogitsThroughTheFloat32Loss() {
        // d(-log softmax(l)_y)/dl = softmax(l) - onehot(y): for logits (0, ln 3) and label 0,
        // softmax = (1/4, 3/4), so the gradient is (-3/4, 3/4), exact in float16
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray master = m.create(new float[] {0f, (float) Math.log(3)}, new Shape(1, 1, 2));
            master.setRequiresGradient(true);
            try (ai.djl.training.GradientCollector c = m.getEngine().newGradientCollector()) {
                NDArray logits16 = io.anneal.toolkit.autograd.DifferentiableCasts.toFloat16(master);
                assertEquals(DataType.FLOAT16, logits16.getDataType());
                c.backward(TokenCrossEntropy.of(logits16, m.create(new long[] {0}, new Shape(1, 1))).negativeLogLikelihood());
            }
            float[] g = master.getGradient().toFloatArray();
            assertEquals(-0.75f, g[0], 1e-3);
            assertEquals(0.75f, g[1], 1e-3);
        }
    }

    @Test
    void entropyOfEachPositionFromTheDefinition() {
        // hand values: uniform over 4 classes, H = ln 4 = 1.3862943611198906; p = (1, 2, 3, 4) / 10
        // (logits ln 1 .. ln 4), H = -(0.1 ln 0.1 + 0.2 ln 0.2 + 0.3 ln 0.3 + 0.4 ln 0.4) = 1.2798542258336676
        try (NDManager m = NDManager.newBaseManager()) {
            float[] logits = {0, 0, 0, 0, 0, (float) Math.log(2), (float) Math.log(3), (float) Math.log(4)};
            NDArray h = io.anneal.toolkit.scoring.LabelLogProbabilities.entropy(m.create(logits, new Shape(2, 1, 4)).logSoftmax(-1));
            assertEquals(new Shape(2, 1), h.getShape());
            assertEquals(1.3862943611198906, h.getFloat(0, 0), 1e-6);
            assertEquals(1.2798542258336676, h.getFloat(1, 0), 1e-6);
        }
    }

    /**
     * TRL's SFTTrainer logs entropy as the mean over every position the rows hold (its attention_mask,
     * or all positions when packed: trl/trainer/sft_trainer.py compute_loss), not over the supervised
     * ones: a model whose logits are the rows of its head (identity embedding) gives the hand value.
     */
    @Test
    void theLoggedEntropyIsTheMeanOverEveryPositionAsTrlLogsIt() {
        float[] identity = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
        float ln2 = (float) Math.log(2);
        float ln3 = (float) Math.log(3);
        float ln4 = (float) Math.log(4);
        // the logits after token 0 and 2: uniform (H = ln 4); after token 1: ln 1 .. ln 4 (H = 1.2798542258336676)
        float[] head = {0, 0, 0, 0, 0, ln2, ln3, ln4, 0, 0, 0, 0, 5, 0, 0, 0};
        try (TinyLanguageModel model = new TinyLanguageModel(4, 4, identity, head, new TinyLanguageModel.Hooks(), DataType.FLOAT32);
             NDManager m = NDManager.newBaseManager()) {
            // one row of 3 tokens, only position 1 supervised
            io.anneal.api.data.PackedBatch batch = new io.anneal.api.data.PackedBatch(1, 3, new int[] {0, 1, 2},
                    new int[] {-100, 2, -100}, new int[] {0, 1, 2}, new int[] {0, 0, 0});
            io.anneal.api.train.ObjectiveSums sums = new SftObjective().forward(m, model, batch, true);
            double positions = sums.metrics().get(SftObjective.ENTROPY_POSITIONS).getFloat();
            assertEquals(3.0, positions);
            // (ln 4 + 1.2798542258336676 + ln 4) / 3 = 1.3508143160244829; over the supervised position alone it would be 1.2798542
            assertEquals(1.3508143160244829, sums.metrics().get(SftObjective.ENTROPY).getFloat() / positions, 1e-6);
        }
    }
}
