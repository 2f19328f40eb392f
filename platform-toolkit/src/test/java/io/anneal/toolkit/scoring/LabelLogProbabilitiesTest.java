package io.anneal.toolkit.scoring;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelInput;
import io.anneal.api.optim.NamedParameter;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Scores from logits against hand-computed values, and a fused head's optional mean logits passed through. */
class LabelLogProbabilitiesTest {

    @Test
    void fromLogitsGivesLogSoftmaxAtTheLabelsAndTheMeanLogitOfEveryPosition() {
        try (NDManager manager = NDManager.newBaseManager()) {
            // one row, two positions, vocabulary of 3; the second label is unsupervised
            NDArray logits = manager.create(new float[] {1, 2, 3, 0, 0, 6}, new Shape(1, 2, 3));
            NDArray labels = manager.create(new long[] {2, -100}, new Shape(1, 2));
            LabelLogProbabilities.Scored scored = LabelLogProbabilities.fromLogits(logits, labels);
            double logSumExp = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
            assertArrayEquals(new float[] {(float) (3 - logSumExp), 0f}, scored.logProbabilities().toFloatArray(), 1e-6f);
            assertArrayEquals(new float[] {1f, 0f}, scored.correct().toFloatArray());
            assertArrayEquals(new float[] {2f, 2f}, scored.meanLogits().toFloatArray(), 1e-6f);
        }
    }

    @Test
    void aFusedHeadsThirdArrayIsTheMeanLogitsAndTwoArraysLeaveThemOut() {
        try (NDManager manager = NDManager.newBaseManager()) {
            NDArray ids = manager.create(new long[] {5, 6}, new Shape(1, 2));
            ModelInput input = new ModelInput(ids, manager.create(new long[] {0, 1}, new Shape(1, 2)), null);
            NDArray labels = manager.create(new long[] {6, 7}, new Shape(1, 2));
            NDArray logProbabilities = manager.create(new float[] {-0.5f, -1.5f}, new Shape(1, 2));
            NDArray correct = manager.create(new float[] {1f, 0f}, new Shape(1, 2));
            NDArray meanLogits = manager.create(new float[] {0.25f, -0.75f}, new Shape(1, 2));

            LabelLogProbabilities.Scored withMeans = LabelLogProbabilities.of(manager,
                    new FusedHeadModel(new NDList(logProbabilities, correct, meanLogits)), input, labels, false, false);
            assertArrayEquals(new float[] {-0.5f, -1.5f}, withMeans.logProbabilities().toFloatArray());
            assertArrayEquals(new float[] {0.25f, -0.75f}, withMeans.meanLogits().toFloatArray());

            LabelLogProbabilities.Scored withoutMeans = LabelLogProbabilities.of(manager,
                    new FusedHeadModel(new NDList(logProbabilities, correct)), input, labels, false, false);
            assertNull(withoutMeans.meanLogits());
        }
    }

    /** A model whose fused head returns fixed scores; its logits path must not be taken. */
    private record FusedHeadModel(NDList scores) implements CausalLanguageModel {
        @Override
        public NDArray forward(NDManager manager, ModelInput input, boolean training) {
            throw new AssertionError("a model with a fused head is scored without its logits");
        }

        @Override
        public Optional<NDList> labelLogProbabilities(NDManager manager, ModelInput input, NDArray labels,
                boolean training) {
            return Optional.of(scores);
        }

        @Override
        public List<NamedParameter> parameters() {
            return List.of();
        }

        @Override
        public int vocabSize() {
            return 8;
        }

        @Override
        public long parameterCount() {
            return 0;
        }

        @Override
        public void save(Path directory) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void close() {
        }
    }
}
