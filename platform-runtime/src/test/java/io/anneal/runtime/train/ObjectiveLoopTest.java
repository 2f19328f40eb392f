package io.anneal.runtime.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.anneal.api.config.ConfigException;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.toolkit.scoring.LabelLogProbabilities;
import io.anneal.api.train.Objective;
import io.anneal.api.train.ObjectiveSetup;
import io.anneal.api.train.ObjectiveSums;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An objective other than sft through the one training loop ({@link SftStageFactory#create(
 * io.anneal.api.config.ConfigView, io.anneal.api.extension.ExtensionContext, Objective)}, what
 * {@code ExtensionContext.trainingStage} offers plugins): its denominator normalises the loss and
 * the metrics, its metrics are logged under its names (and at eval), its state is checkpointed and
 * restored on resume, its reference model is the initial policy, and data that does not fit it is a
 * configuration error naming the stage.
 */
class ObjectiveLoopTest {

    /** Mean token NLL per ROW (denominator: rows), with a counter of forward passes as its state. */
    static class PerRowObjective implements Objective {
        long forwards;
        long restored = -1;
        boolean opened;
        boolean closed;

        @Override
        public void open(ObjectiveSetup setup) {
            try (CausalLanguageModel reference = setup.loadInitialModel()) {
                opened = reference.parameterCount() > 0 && setup.configPath().equals("stages[0].objective");
            }
        }

        @Override
        public long denominator(PackedBatch batch) {
            return batch.rows();
        }

        @Override
        public ObjectiveSums forward(NDManager manager, CausalLanguageModel model, PackedBatch batch, boolean training) {
            forwards++;
            LabelLogProbabilities.Scored s = LabelLogProbabilities.of(manager, model, batch, training);
            Map<String, NDArray> metrics = new LinkedHashMap<>();
            metrics.put("rows_seen", DeviceScalars.of(manager, batch.rows()));
            return new ObjectiveSums(s.logProbabilities().sum().neg(), metrics);
        }

        @Override
        public List<String> metricNames() {
            return List.of("rows_seen");
        }

        @Override
        public byte[] saveState() {
            return ByteBuffer.allocate(8).putLong(forwards).array();
        }

        @Override
        public void restoreState(byte[] state) {
            restored = ByteBuffer.wrap(state).getLong();
            forwards = restored;
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    @Test
    void aPluginObjectiveGoesThroughTheLoopWithItsDenominatorMetricsAndState(@TempDir Path dir) throws Exception {
        SftFixture fixture = new SftFixture();
        PerRowObjective objective = new PerRowObjective();
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext context = new TestStageContext(dir, architecture, false);
        context.crashAtStep = 5;
        assertThrows(IllegalStateException.class,
                () -> SftStageFactory.create(fixture.config(), fixture.extensions(), objective).run(context));
        assertTrue(objective.opened, "the objective got the initial model and its config path");
        assertTrue(objective.closed);
        List<Map<String, Object>> steps = context.steps();
        assertEquals(4, steps.size());
        for (Map<String, Object> step : steps) {
            // 2 micro-batches of 1 row: the metric sum 2 over the denominator 2 rows
            assertEquals(1.0, (double) step.get("rows_seen"), 0);
            assertTrue(!step.containsKey("mean_token_accuracy"), "the sft metric belongs to the sft objective");
            assertTrue((double) step.get("loss") > 1.0, "mean NLL per row of 6 tokens: " + step.get("loss"));
        }
        Path checkpoint = dir.resolve("checkpoints/step-000004");
        assertEquals(8, ByteBuffer.wrap(Files.readAllBytes(checkpoint.resolve(SftStage.OBJECTIVE_STATE))).getLong(),
                "4 steps x 2 micro-batches at the checkpoint");

        PerRowObjective resumedObjective = new PerRowObjective();
        TestStageContext resumed = new TestStageContext(dir, architecture, true);
        SftStageFactory.create(new SftFixture().config(), new SftFixture().extensions(), resumedObjective).run(resumed);
        assertEquals(8, resumedObjective.restored);
        assertEquals(8 + 2 * 2, resumedObjective.forwards, "steps 5 and 6 after the restored state");
    }

    @Test
    void dataThatDoesNotFitTheObjectiveIsAConfigurationErrorNamingTheStage() {
        Objective needsPairs = new PerRowObjective() {
            @Override
            public boolean needsPreferencePairs() {
                return true;
            }

            @Override
            public String describe() {
                return "dpo";
            }
        };
        SftFixture fixture = new SftFixture();
        ConfigException e = assertThrows(ConfigException.class,
                () -> SftStageFactory.create(fixture.config(), fixture.extensions(), needsPairs));
        List<String> messages = new ArrayList<>();
        e.problems().forEach(p -> messages.add(p.toString()));
        assertTrue(messages.stream().anyMatch(m -> m.contains("stages[0].data") && m.contains("objective dpo: preference pairs")
                && m.contains("supervised chat rows (stage stages[0])")), messages.toString());
    }

    /** A preference objective stand-in: each row holds {@code pairsPerRow} "pairs" (its denominator). */
    static final class PairObjective extends PerRowObjective {
        final int pairsPerRow;

        PairObjective(int pairsPerRow) {
            this.pairsPerRow = pairsPerRow;
        }

        @Override
        public boolean needsPreferencePairs() {
            return true;
        }

        @Override
        public long denominator(PackedBatch batch) {
            return (long) batch.rows() * pairsPerRow;
        }
    }

    /** The fixture with its data declared as preference pairs and the batch in pairs (batch-tokens gone). */
    static io.anneal.api.train.Stage pairStage(SftFixture fixture, Objective objective, int batchPairs) {
        fixture.block.remove("batch-tokens");
        fixture.block.put("batch-pairs", batchPairs);
        io.anneal.api.data.TrainingData pairs = new io.anneal.api.data.TrainingData() {
            @Override
            public io.anneal.api.data.TokenBatchStream open(int sequenceLength) {
                return fixture.data.open(sequenceLength);
            }

            @Override
            public int vocabularySize() {
                return fixture.data.vocabularySize();
            }

            @Override
            public boolean preferencePairs() {
                return true;
            }

            @Override
            public Map<String, byte[]> modelFolderFiles() {
                return fixture.data.modelFolderFiles();
            }
        };
        return SftStageFactory.create(fixture.config(), fixture.extensions().with(io.anneal.api.data.TrainingData.class, c -> pairs),
                objective);
    }

    /**
     * A batch in pairs, by hand: batch-pairs = 2 with one pair per row of 6 tokens and 1 row per
     * micro-batch is 2 micro-batches and 12 tokens per step, so the fixture's 72-token budget is 6
     * steps; step k has seen 2k pairs (num_pairs) and 12k tokens, and the loss is over 2 pairs.
     */
    @Test
    void aBatchInPairsIsExactlyBatchPairsPairsPerStep(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext context = new TestStageContext(dir, architecture, false);
        io.anneal.api.train.Stage stage = pairStage(new SftFixture(), new PairObjective(1), 2);
        assertTrue(stage.describe().contains("batch: 2 pairs per step, one pair per row: 2 micro-batches of 1 x 6 tokens = 12 "
                + "tokens per step"), stage.describe());
        stage.run(context);
        List<Map<String, Object>> steps = context.steps();
        assertEquals(6, steps.size());
        for (int k = 1; k <= 6; k++) {
            assertEquals(2L * k, ((Number) steps.get(k - 1).get("num_pairs")).longValue());
            assertEquals(12L * k, ((Number) steps.get(k - 1).get("num_tokens")).longValue());
            assertEquals(1.0, (double) steps.get(k - 1).get("rows_seen"), 0, "2 rows over the 2 pairs of the step");
        }
    }

    /** Data that packs more than one pair per row breaks the count: the run stops naming the data and batch-pairs. */
    @Test
    void dataPackingSeveralPairsPerRowIsRefused(@TempDir Path dir) {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        io.anneal.api.train.Stage stage = pairStage(new SftFixture(), new PairObjective(2), 2);
        io.anneal.api.InputException e = assertThrows(io.anneal.api.InputException.class,
                () -> stage.run(new TestStageContext(dir, architecture, false)));
        assertTrue(e.getMessage().startsWith("stages[0].data: the step's 2 rows held 4 preference pairs, expected "
                + "stages[0].batch-pairs = 2 (one pair per row, as io.anneal.api.data.PreferenceRows lays them out)"), e.getMessage());
    }
}
