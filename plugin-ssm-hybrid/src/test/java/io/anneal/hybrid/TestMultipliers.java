package io.anneal.hybrid;

import io.anneal.api.model.MupMultipliers;
import java.util.List;
import java.util.Map;

/** A test-only multiplier set (the hybrid plugin never depends on plugin-mup). */
record TestMultipliers(double embedding, double lmHead, double attentionIn, double attentionOut, double key,
        double ssmIn, double ssmOut, double[] ssmMultipliers, double[] mlpMultipliers) implements MupMultipliers {

    static TestMultipliers ones() {
        return new TestMultipliers(1, 1, 1, 1, 1, 1, 1, new double[] {1, 1, 1, 1, 1}, new double[] {1, 1});
    }

}
