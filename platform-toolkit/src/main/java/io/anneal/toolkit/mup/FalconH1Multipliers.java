package io.anneal.toolkit.mup;

import io.anneal.api.Experimental;
import io.anneal.api.InputException;
import io.anneal.api.config.ConfigView;
import io.anneal.api.model.MupMultipliers;
import java.util.List;
import java.util.Map;

/**
 * The Falcon-H1 multiplier set (transformers' FalconH1Config fields), with the learning-rate factor of
 * hidden matrices that a width rule needs. One record for the two plugins that need it, which may
 * not depend on each other: the hybrid plugin reads it from a checkpoint's {@code config.json} or
 * its model block (a Falcon-H1 model needs no other plugin to run), and plugin mup scales it with
 * width. Missing {@code config.json} fields take FalconH1Config's defaults (all 1).
 *
 * @param hiddenLrFactor learning-rate factor of hidden weight matrices (1 when no width scaling)
 */
@Experimental(since = "1.2", note = "toolkit, not the contract; one copy of what plugins hybrid and mup each had")
public record FalconH1Multipliers(double embedding, double lmHead, double attentionIn, double attentionOut, double key,
        double ssmIn, double ssmOut, double[] ssmMultipliers, double[] mlpMultipliers, double hiddenLrFactor)
        implements MupMultipliers {

    /** The scalar fields, in FalconH1Config's order. */
    private static final List<String> SCALARS = List.of("embedding_multiplier", "lm_head_multiplier",
            "attention_in_multiplier", "attention_out_multiplier", "key_multiplier", "ssm_in_multiplier", "ssm_out_multiplier");
    private static final String SSM = "ssm_multipliers";
    private static final String MLP = "mlp_multipliers";

    public FalconH1Multipliers {
        ssmMultipliers = ssmMultipliers.clone();
        mlpMultipliers = mlpMultipliers.clone();
    }

    @Override
    public double[] ssmMultipliers() {
        return ssmMultipliers.clone();
    }

    @Override
    public double[] mlpMultipliers() {
        return mlpMultipliers.clone();
    }

    /**
     * Hidden weight matrices (every {@code *_proj.weight}: their fan-in grows with width) take
     * {@link #hiddenLrFactor}; the embedding, the LM head (fan-in grows, but muP scales its
     * multiplier instead), and vectors (norms, biases, A_log, dt_bias, D, the depthwise conv whose
     * fan-in is the kernel) keep factor 1 (Tensor Programs V, Table 3).
     */
    @Override
    public double lrFactor(String parameterName) {
        boolean hiddenMatrix = parameterName.endsWith("_proj.weight") && !parameterName.startsWith("lm_head");
        return hiddenMatrix ? hiddenLrFactor : 1.0;
    }

    /** The multipliers of a parsed config.json, no width scaling; {@code origin} (the file) names it in errors. */
    public static FalconH1Multipliers fromConfigJson(Map<String, Object> json, String origin) {
        double[] s = new double[SCALARS.size()];
        for (int i = 0; i < s.length; i++) {
            Object v = json.get(SCALARS.get(i));
            if (v == null) {
                s[i] = 1.0;
            } else if (v instanceof Number n && n.doubleValue() > 0 && Double.isFinite(n.doubleValue())) {
                s[i] = n.doubleValue();
            } else {
                throw new InputException(origin + ": " + SCALARS.get(i) + ": expected a finite multiplier > 0, found " + v);
            }
        }
        return new FalconH1Multipliers(s[0], s[1], s[2], s[3], s[4], s[5], s[6],
                vector(json.get(SSM), 5, SSM + " (z, x, B, C, dt)", origin), vector(json.get(MLP), 2, MLP + " (gate, down)", origin),
                1.0);
    }

    /**
     * The multipliers of a HOCON block with the config.json names, {@code -} for {@code _}
     * ({@code embedding-multiplier}, ..., {@code ssm-multipliers}, {@code mlp-multipliers}), no width
     * scaling; each must be set (the block's defaults) and is checked in FalconH1Config's order.
     */
    public static FalconH1Multipliers fromHocon(ConfigView block) {
        double[] s = new double[SCALARS.size()];
        for (int i = 0; i < s.length; i++) {
            String key = hoconKey(SCALARS.get(i));
            s[i] = block.getDouble(key);
            if (!(s[i] > 0) || Double.isInfinite(s[i])) {
                throw block.invalid(key, "a finite multiplier > 0");
            }
        }
        return new FalconH1Multipliers(s[0], s[1], s[2], s[3], s[4], s[5], s[6],
                hoconVector(block, hoconKey(SSM), 5, "z, x, B, C, dt"), hoconVector(block, hoconKey(MLP), 2, "gate, down"), 1.0);
    }

    /** {@code embedding_multiplier} -> {@code embedding-multiplier}. */
    private static String hoconKey(String configJsonField) {
        return configJsonField.replace('_', '-');
    }

    private static double[] vector(Object value, int size, String what, String origin) {
        double[] out = new double[size];
        java.util.Arrays.fill(out, 1.0);
        if (value == null) {
            return out;
        }
        if (!(value instanceof List<?> list) || list.size() != size) {
            throw new InputException(origin + ": " + what + ": expected " + size + " multipliers, found " + value);
        }
        for (int i = 0; i < size; i++) {
            if (!(list.get(i) instanceof Number n) || !(n.doubleValue() > 0) || Double.isInfinite(n.doubleValue())) {
                throw new InputException(origin + ": " + what + ": expected finite multipliers > 0, found " + value);
            }
            out[i] = ((Number) list.get(i)).doubleValue();
        }
        return out;
    }

    private static double[] hoconVector(ConfigView block, String key, int size, String names) {
        List<Double> values = block.getDoubleList(key);
        if (values.size() != size) {
            throw block.invalid(key, size + " multipliers (" + names + ")");
        }
        double[] out = new double[size];
        for (int i = 0; i < size; i++) {
            out[i] = values.get(i);
            if (!(out[i] > 0) || Double.isInfinite(out[i])) {
                throw block.invalid(key, "finite multipliers > 0 (" + names + ")");
            }
        }
        return out;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof FalconH1Multipliers m && asConfigJson().equals(m.asConfigJson())
                && hiddenLrFactor == m.hiddenLrFactor;
    }

    @Override
    public int hashCode() {
        return asConfigJson().hashCode();
    }

    @Override
    public String toString() {
        return "FalconH1Multipliers" + asConfigJson() + ", hidden LR factor " + hiddenLrFactor;
    }
}
