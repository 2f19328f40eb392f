package io.anneal.dpo;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelInput;
import io.anneal.api.optim.NamedParameter;
import io.anneal.api.train.ObjectiveSetup;
import io.anneal.api.train.ObjectiveSums;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Issue 13 item 9: the DPO objective's metrics under TRL's names, from a packed micro-batch of
 * fixed logits, against numpy's values (tools/dpo/dpo_metrics_fixture.py, written from TRL's
 * definitions): loss, rewards/*, logps/* and logits/*, for dpo, dpo_norm, ipo and simpo.
 */
class DpoMetricsFixtureTest {

    /** A model whose logits are given: one parameter, the [rows, length, vocab] logits of the fixture batch. */
    static final class FixedLogitsModel implements CausalLanguageModel {
        final NDManager manager = NDManager.newBaseManager();
        final int vocab;
        private final List<NamedParameter> parameters;

        FixedLogitsModel(float[] logits, int rows, int length, int vocab) {
            this.vocab = vocab;
            NDArray array = manager.create(logits, new Shape(rows, length, vocab));
            parameters = List.of(new NamedParameter("logits", Parameter.builder().setName("logits")
                    .setType(Parameter.Type.WEIGHT).optArray(array).build()));
        }

        @Override
        public NDArray forward(NDManager scope, ModelInput input, boolean training) {
            return parameters.get(0).parameter().getArray().duplicate();
        }

        @Override
        public List<NamedParameter> parameters() {
            return parameters;
        }

        @Override
        public int vocabSize() {
            return vocab;
        }

        @Override
        public long parameterCount() {
            return parameters.get(0).parameter().getArray().size();
        }

        @Override
        public void save(Path directory) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void close() {
            manager.close();
        }
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    static float[] floats(JsonNode array) {
        float[] out = new float[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) array.get(i).asDouble();
        }
        return out;
    }

    @Test
    void metricsMatchNumpyFromTrlsDefinitions() throws Exception {
        JsonNode root;
        try (InputStream in = getClass().getResourceAsStream("dpo-metrics-fixture.json")) {
            root = new ObjectMapper().readTree(in);
        }
        int rows = root.get("rows").asInt();
        int length = root.get("length").asInt();
        int vocab = root.get("vocab").asInt();
        PackedBatch batch = new PackedBatch(rows, length, ints(root.get("input_ids")), ints(root.get("labels")),
                ints(root.get("position_ids")), ints(root.get("document_ids")));
        float[] referenceLogits = floats(root.get("reference_logits"));
        for (JsonNode c : root.get("cases")) {
            String type = c.get("type").asText();
            PreferenceLoss loss = new PreferenceLoss(PreferenceLoss.Type.of(type), c.get("beta").asDouble(), 0,
                    c.has("gamma") ? c.get("gamma").asDouble() : 0, 0);
            JsonNode expected = c.get("expected");
            try (FixedLogitsModel policy = new FixedLogitsModel(floats(root.get("policy_logits")), rows, length, vocab);
                 DpoObjective objective = new DpoObjective(loss);
                 NDManager micro = policy.manager.newSubManager()) {
                objective.open(new ObjectiveSetup() {
                    @Override
                    public CausalLanguageModel loadInitialModel() {
                        return new FixedLogitsModel(referenceLogits, rows, length, vocab);
                    }

                    @Override
                    public Path stageDirectory() {
                        return Path.of(".");
                    }

                    @Override
                    public String configPath() {
                        return "stages[1].objective";
                    }

                    @Override
                    public PrintStream out() {
                        return new PrintStream(java.io.OutputStream.nullOutputStream());
                    }
                });
                ObjectiveSums sums = objective.forward(micro, policy, batch, false);
                long pairs = objective.denominator(batch);
                assertEquals(expected.get("pairs").asLong(), pairs);
                // the trainer logs each sum over the batch's pairs (TrainStep.BatchLoss)
                assertEquals(expected.get("loss").asDouble(), sums.loss().getFloat() / pairs, 1e-5, type + " loss");
                assertEquals(DpoObjective.METRICS, List.copyOf(sums.metrics().keySet()));
                for (String name : DpoObjective.METRICS) {
                    assertEquals(expected.get(name).asDouble(), sums.metrics().get(name).getFloat() / pairs, 1e-5, type + " " + name);
                }
            }
        }
    }
}
