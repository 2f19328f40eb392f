package io.anneal.dpo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every loss type against values computed independently from the published formulas by
 * tools/dpo/preference_loss_fixtures.py (numpy, float64): the mean loss over pairs, TRL's metrics and
 * the gradient of the mean loss with respect to each pair's summed policy log-probs, to 1e-6.
 */
class PreferenceLossFixtureTest {
    private static final double TOLERANCE = 1e-6;

    @Test
    void everyLossMatchesTheIndependentFixtures() throws Exception {
        JsonNode root;
        try (InputStream in = getClass().getResourceAsStream("preference-loss-fixtures.json")) {
            root = new ObjectMapper().readTree(in);
        }
        int checked = 0;
        java.util.Set<String> types = new java.util.TreeSet<>();
        for (JsonNode c : root.get("cases")) {
            String name = c.get("name").asText();
            PreferenceLoss.Type type = PreferenceLoss.Type.of(c.get("type").asText());
            types.add(type.configName);
            PreferenceLoss loss = new PreferenceLoss(type, c.get("beta").asDouble(), c.path("label_smoothing").asDouble(0),
                    c.path("gamma").asDouble(0), c.path("sft_weight").asDouble(0));
            JsonNode pairs = c.get("pairs");
            int n = pairs.size();
            double lossSum = 0;
            double[] metrics = new double[6];
            double[] gradChosen = new double[n];
            double[] gradRejected = new double[n];
            for (int p = 0; p < n; p++) {
                JsonNode pair = pairs.get(p);
                PreferenceLoss.PairValues v = loss.pair(sum(pair.get("policy_chosen")), sum(pair.get("policy_rejected")),
                        sum(pair.get("reference_chosen")), sum(pair.get("reference_rejected")),
                        pair.get("policy_chosen").size(), pair.get("policy_rejected").size());
                lossSum += v.loss();
                metrics[0] += v.chosenReward();
                metrics[1] += v.rejectedReward();
                metrics[2] += v.chosenReward() > v.rejectedReward() ? 1 : 0;
                metrics[3] += v.chosenReward() - v.rejectedReward();
                metrics[4] += v.chosenLogp();
                metrics[5] += v.rejectedLogp();
                gradChosen[p] = v.gradChosen() / n; // of the mean over pairs
                gradRejected[p] = v.gradRejected() / n;
            }
            JsonNode expected = c.get("expected");
            assertEquals(expected.get("loss").asDouble(), lossSum / n, TOLERANCE, name + " loss");
            for (int m = 0; m < 6; m++) {
                String metric = DpoObjective.METRICS.get(m);
                assertEquals(expected.get(metric).asDouble(), metrics[m] / n, TOLERANCE, name + " " + metric);
            }
            for (int p = 0; p < n; p++) {
                assertEquals(expected.get("grad_policy_chosen").get(p).asDouble(), gradChosen[p], TOLERANCE, name + " d/d chosen " + p);
                assertEquals(expected.get("grad_policy_rejected").get(p).asDouble(), gradRejected[p], TOLERANCE, name + " d/d rejected " + p);
            }
            checked++;
        }
        assertEquals(24, checked);
        assertEquals(new java.util.TreeSet<>(List.of("dpo", "dpo_norm", "hinge", "ipo", "robust", "simpo")), types);
    }

    @Test
    void theSigmoidLossIsStableForLargeMargins() {
        PreferenceLoss loss = new PreferenceLoss(PreferenceLoss.Type.DPO, 1.0, 0, 0, 0);
        PreferenceLoss.PairValues far = loss.pair(0, -2000, 0, 0, 1, 1);
        assertEquals(0.0, far.loss(), 1e-12);
        PreferenceLoss.PairValues wrong = loss.pair(-2000, 0, 0, 0, 1, 1);
        assertEquals(2000.0, wrong.loss(), 1e-9);
        assertTrue(Double.isFinite(wrong.gradChosen()));
    }

    private static double sum(JsonNode values) {
        double s = 0;
        for (JsonNode v : values) {
            s += v.asDouble();
        }
        return s;
    }
}
