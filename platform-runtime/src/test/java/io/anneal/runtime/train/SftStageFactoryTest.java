package io.anneal.runtime.train;

import io.anneal.api.config.ConfigException;
import io.anneal.api.data.TrainingData;
import io.anneal.api.optim.OptimizerFactory;
import io.anneal.api.extension.ExtensionPoints;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.api.train.Stage;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SftStageFactoryTest {

    @Test
    void declaresItsTypeDefaultsAndNestedExtensions() {
        SftStageFactory f = new SftStageFactory();
        assertEquals("anneal.stage.sft", f.defaultsPath());
        assertEquals("stage", ExtensionPoints.key(Stage.class));
        assertEquals(Map.of("schedule", LrSchedule.class, "optimizer", OptimizerFactory.class, "data", TrainingData.class,
                "eval-data", TrainingData.class), f.nestedExtensions());
    }

    @Test
    void defaultsCarryTheSeedNumbers() {
        // seed 000: 16k sequences, batches of 1 million tokens; GradScaler defaults 2^16, 2000, 0.5, 2
        SftSettings s = SftSettings.parse(MapConfigView.of("stages[0]",
                com.typesafe.config.ConfigFactory.parseResources("io/anneal/runtime/builtin/reference.conf").getConfig("anneal.stage.sft").root().unwrapped()));
        assertEquals(16384, s.sequenceLength());
        assertEquals(1_000_000, s.batchTokens());
        assertEquals(new LossScaleSettings(65536, 2000, 0.5, 2.0, 20), s.lossScale());
        assertEquals(SftSettings.OnCheckpointFailure.STOP, s.onCheckpointFailure(), "a failed checkpoint stops the run");
        assertTrue(s.tokenBudget().isEmpty(), "the budget defaults to the schedule's stop");
        // 1M / 16384 = 61.04 rows: rounded to 61 micro-batches = 999,424 tokens
        assertEquals(61, s.microBatchesPerStep());
        assertEquals(999_424, s.stepTokens());
        assertTrue(s.batchDescription().contains("61 micro-batches of 1 x 16384 tokens = 999,424 tokens per step "
                + "(rounded to the nearest whole micro-batch, -0.06% of the requested 1M)"), s.batchDescription());
    }

    @Test
    void budgetComesFromTheScheduleStop() {
        SftFixture fixture = new SftFixture().set("token-budget", "schedule");
        SftStage stage = (SftStage) fixture.stage();
        assertTrue(stage.describe().startsWith("sft(72 tokens"), stage.describe());
    }

    @Test
    void reportsEveryUnworkableSettingAtOnceWithItsPath() {
        SftFixture fixture = new SftFixture().set("batch-tokens", 5).set("token-budget", "0").set("precision", "bfloat16");
        ConfigException e = assertThrows(ConfigException.class, fixture::stage);
        assertEquals(3, e.problems().size(), e.getMessage());
        assertTrue(e.getMessage().contains("stages[0].batch-tokens: expected at least one micro-batch, micro-batch-rows x "
                + "sequence-length = 1 x 6 = 6 tokens, found 5"), e.getMessage());
        assertTrue(e.getMessage().contains("stages[0].token-budget: expected a positive token count"), e.getMessage());
        assertTrue(e.getMessage().contains("stages[0].precision: expected one of float32, float16, tf32"), e.getMessage());
        assertTrue(e.getMessage().startsWith("3 configuration problems:"), e.getMessage());
    }

    @Test
    void anOpenEndedScheduleNeedsABudget() {
        SftFixture fixture = new SftFixture().set("token-budget", "schedule");
        fixture.block.put("schedule", Map.of("type", "constant", "peak-lr", 1e-4));
        ConfigException e = assertThrows(ConfigException.class, fixture::stage);
        assertTrue(e.getMessage().contains("stages[0].token-budget: expected a token count such as 3G: the schedule"),
                e.getMessage());
    }

    @Test
    void evaluationNeedsEvalData() {
        ConfigException e = assertThrows(ConfigException.class, new SftFixture().set("eval-every", 24)::stage);
        assertTrue(e.getMessage().contains("stages[0].eval-every: expected 0 (no evaluation) unless an eval-data block is given"),
                e.getMessage());
    }

    /** cuda-graphs: auto (the default) lets a GPU step replay as CUDA graphs, off never; anything else names the key. */
    @Test
    void cudaGraphsIsAutoOrOff() {
        SftSettings defaults = SftSettings.parse(MapConfigView.of("stages[0]",
                com.typesafe.config.ConfigFactory.parseResources("io/anneal/runtime/builtin/reference.conf").getConfig("anneal.stage.sft").root().unwrapped()));
        assertTrue(defaults.cudaGraphs());
        ConfigException e = assertThrows(ConfigException.class, new SftFixture().set("cuda-graphs", "always")::stage);
        assertTrue(e.getMessage().contains("stages[0].cuda-graphs: expected one of auto, off"), e.getMessage());
    }

    @Test
    void lossScaleFactorsMustMakeSense() {
        SftFixture fixture = new SftFixture().setLossScale("backoff", 1.5).setLossScale("growth", 1.0);
        ConfigException e = assertThrows(ConfigException.class, fixture::stage);
        assertTrue(e.getMessage().contains("stages[0].loss-scale.backoff: expected a factor in (0, 1)"), e.getMessage());
        assertTrue(e.getMessage().contains("stages[0].loss-scale.growth: expected a factor above 1"), e.getMessage());
    }

    @Test
    void initFromMustBeAFolder(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        String missing = dir.resolve("no-such-model").toString();
        ConfigException e = assertThrows(ConfigException.class, new SftFixture().set("init-from", missing)::stage);
        assertTrue(e.getMessage().contains("stages[0].init-from: expected a Hugging Face checkpoint folder (config.json, "
                + "model.safetensors), found " + missing + ", which is not a folder"), e.getMessage());
    }

    /** The sft defaults as a dpo stage would see them: batch-tokens gone, batch-pairs set. */
    private static Map<String, Object> pairBlock(Object batchPairs, int microBatchRows, int sequenceLength) {
        Map<String, Object> block = new java.util.LinkedHashMap<>(com.typesafe.config.ConfigFactory.parseResources(
                "io/anneal/runtime/builtin/reference.conf").getConfig("anneal.stage.sft").root().unwrapped());
        block.remove("batch-tokens");
        block.put("batch-pairs", batchPairs);
        block.put("micro-batch-rows", microBatchRows);
        block.put("sequence-length", sequenceLength);
        return block;
    }

    /**
     * A batch in pairs, by hand: seed 000's 256 pairs, one pair per row of 4096 tokens, 4 rows per
     * micro-batch: 256 / 4 = 64 micro-batches, 256 x 4096 = 1,048,576 tokens per step.
     */
    @Test
    void aBatchInPairsIsWholeMicroBatchesOfOnePairPerRow() {
        SftSettings s = SftSettings.parse(MapConfigView.of("stages[0]", pairBlock(256, 4, 4096)), true);
        assertEquals(256, s.batchPairs());
        assertEquals(64, s.microBatchesPerStep());
        assertEquals(1_048_576, s.stepTokens());
        assertEquals(1_048_576, s.batchTokens());
        assertEquals("batch: 256 pairs per step, one pair per row: 64 micro-batches of 4 x 4096 tokens = 1,048,576 tokens per step",
                s.batchDescription());
        SftSettings one = SftSettings.parse(MapConfigView.of("stages[0]", pairBlock(3, 1, 128)), true);
        assertEquals(3, one.microBatchesPerStep());
        assertEquals(384, one.stepTokens());
        assertEquals(0, SftSettings.parse(new SftFixture().config()).batchPairs(), "sft counts its batch in tokens");
    }

    @Test
    void aBatchInPairsRefusesNonsenseNamingTheKey() {
        for (Object bad : List.of(0, -8)) {
            ConfigException e = assertThrows(ConfigException.class,
                    () -> SftSettings.parse(MapConfigView.of("stages[0]", pairBlock(bad, 4, 256)), true));
            assertTrue(e.getMessage().contains("stages[0].batch-pairs: expected a positive number of preference pairs per step, "
                    + "such as 256 (seed 000), found " + bad), e.getMessage());
        }
        ConfigException uneven = assertThrows(ConfigException.class,
                () -> SftSettings.parse(MapConfigView.of("stages[0]", pairBlock(30, 8, 256)), true));
        assertTrue(uneven.getMessage().contains("stages[0].batch-pairs: expected a multiple of micro-batch-rows (8): a row holds "
                + "one pair, so a micro-batch holds 8 pairs and a step whole micro-batches (nearest: 24 or 32), found 30"),
                uneven.getMessage());
        ConfigException small = assertThrows(ConfigException.class,
                () -> SftSettings.parse(MapConfigView.of("stages[0]", pairBlock(2, 4, 256)), true));
        assertTrue(small.getMessage().contains("(nearest: 4), found 2"), small.getMessage());
        Map<String, Object> both = pairBlock(8, 4, 256);
        both.put("batch-tokens", "1M");
        ConfigException tokens = assertThrows(ConfigException.class, () -> SftSettings.parse(MapConfigView.of("stages[0]", both), true));
        assertTrue(tokens.getMessage().contains("stages[0].batch-tokens: expected no batch-tokens: this stage's objective trains "
                + "on preference pairs, so its batch is counted in pairs with batch-pairs (one pair per row)"), tokens.getMessage());
        ConfigException pairsInSft = assertThrows(ConfigException.class, new SftFixture().set("batch-pairs", 8)::stage);
        assertTrue(pairsInSft.getMessage().contains("stages[0].batch-pairs: expected no batch-pairs: this stage's objective trains "
                + "on token rows, so its batch is batch-tokens"), pairsInSft.getMessage());
    }
}
