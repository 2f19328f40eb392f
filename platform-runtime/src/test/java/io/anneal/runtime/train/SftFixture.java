package io.anneal.runtime.train;

import com.typesafe.config.ConfigFactory;
import io.anneal.api.data.TrainingData;
import io.anneal.api.optim.OptimizerFactory;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.api.train.Stage;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Builds sft stages for tests through {@link SftStageFactory}, over the defaults of the runtime's
 * {@code reference.conf} (so the tests also check that every key the stage reads has a default).
 * The tiny setup: vocabulary 11, rows of 6 tokens, 2 micro-batches of 1 row per step (12 tokens),
 * a budget of 72 tokens = 6 steps, a checkpoint every 24 tokens = 2 steps.
 */
final class SftFixture {
    static final int VOCAB = 11;
    static final int LENGTH = 6;
    final Map<String, Object> block;
    final ListTrainingData data = new ListTrainingData(VOCAB, LENGTH, 9, 5);
    final ListTrainingData evalData = new ListTrainingData(VOCAB, LENGTH, 3, 99);
    /** The optimizer step (1-based) whose update leaves a NaN weight; -1 for none. */
    int nanWeightsAtStep = -1;

    SftFixture() {
        block = new LinkedHashMap<>(ConfigFactory.parseResources("io/anneal/runtime/builtin/reference.conf").getConfig("anneal.stage.sft").root().unwrapped());
        block.put("sequence-length", LENGTH);
        block.put("micro-batch-rows", 1);
        block.put("batch-tokens", 12);
        block.put("token-budget", "72");
        block.put("checkpoint-every", 24);
        block.put("keep-last", 2);
        block.put("max-grad-norm", 1.0);
        block.put("schedule", new LinkedHashMap<>(Map.of("type", "linear", "peak-lr", 0.5, "horizon", 72)));
        block.put("optimizer", new LinkedHashMap<>(Map.of("type", "sgd", "momentum", 0.9)));
        block.put("data", new LinkedHashMap<>(Map.of("type", "list")));
    }

    SftFixture set(String key, Object value) {
        block.put(key, value);
        return this;
    }

    @SuppressWarnings("unchecked")
    SftFixture setLossScale(String key, Object value) {
        Map<String, Object> scale = new LinkedHashMap<>((Map<String, Object>) block.get("loss-scale"));
        scale.put(key, value);
        block.put("loss-scale", scale);
        return this;
    }

    io.anneal.api.config.ConfigView config() {
        return MapConfigView.of("stages[0]", block);
    }

    TestExtensionContext extensions() {
        return new TestExtensionContext()
                .with(LrSchedule.class, c -> new LinearDecaySchedule(c.getDouble("peak-lr"),
                        c.has("horizon") ? c.getLong("horizon") : Long.MAX_VALUE))
                .with(OptimizerFactory.class, c -> MomentumSgd.factory(c.getDouble("momentum"), nanWeightsAtStep))
                .with(TrainingData.class, c -> (TrainingData) (c.path().endsWith("eval-data") ? evalData : data));
    }

    Stage stage() {
        return new SftStageFactory().create(config(), extensions());
    }
}
