package io.anneal.hybrid.model;

import io.anneal.api.InputException;
import io.anneal.api.config.ConfigView;
import io.anneal.api.model.MupMultipliers;
import java.util.List;
import java.util.Map;

/**
 * The Falcon-H1 forward multipliers as a checkpoint's {@code config.json} (or the model block, with
 * {@code -} for {@code _}) writes them, read by the hybrid plugin itself: a Falcon-H1 model needs no
 * other plugin to run. Missing fields take transformers' FalconH1Config defaults (all 1). No width
 * scaling and a learning-rate factor of 1 for every parameter: width scaling is plugin mup's
 * {@code model.mup} block.
 */
public record ConfigJsonMultipliers(double embedding, double lmHead, double attentionIn, double attentionOut, double key,
        double ssmIn, double ssmOut, double[] ssmMultipliers, double[] mlpMultipliers) implements MupMultipliers {

    /** The scalar fields, in FalconH1Config's order. */
    static final List<String> SCALARS = List.of("embedding_multiplier", "lm_head_multiplier", "attention_in_multiplier",
            "attention_out_multiplier", "key_multiplier", "ssm_in_multiplier", "ssm_out_multiplier");
    static final String SSM = "ssm_multipliers";
    static final String MLP = "mlp_multipliers";

    public ConfigJsonMultipliers {
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

    /** The multipliers of a parsed config.json; {@code origin} (the file) names it in errors. */
    public static ConfigJsonMultipliers fromConfigJson(Map<String, Object> json, String origin) {
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
        return new ConfigJsonMultipliers(s[0], s[1], s[2], s[3], s[4], s[5], s[6],
                vector(json.get(SSM), 5, SSM + " (z, x, B, C, dt)", origin), vector(json.get(MLP), 2, MLP + " (gate, down)", origin));
    }

    /** The multipliers of a {@code model { type = falcon-h1 }} block (config.json names with {@code -} for {@code _}). */
    public static ConfigJsonMultipliers fromHocon(ConfigView block) {
        double[] s = new double[SCALARS.size()];
        for (int i = 0; i < s.length; i++) {
            String key = hoconKey(SCALARS.get(i));
            s[i] = block.getDouble(key);
            if (!(s[i] > 0) || Double.isInfinite(s[i])) {
                throw block.invalid(key, "a finite multiplier > 0");
            }
        }
        return new ConfigJsonMultipliers(s[0], s[1], s[2], s[3], s[4], s[5], s[6],
                hoconVector(block, hoconKey(SSM), 5, "z, x, B, C, dt"), hoconVector(block, hoconKey(MLP), 2, "gate, down"));
    }

    /** {@code embedding_multiplier} -> {@code embedding-multiplier}. */
    static String hoconKey(String configJsonField) {
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
        return o instanceof ConfigJsonMultipliers m && asConfigJson().equals(m.asConfigJson());
    }

    @Override
    public int hashCode() {
        return asConfigJson().hashCode();
    }

    @Override
    public String toString() {
        return "ConfigJsonMultipliers" + asConfigJson();
    }
}
