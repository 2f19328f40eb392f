package io.anneal.mup;

import io.anneal.api.model.MupMultipliers;

/**
 * The Falcon-H1 multiplier set (transformers' FalconH1Config fields) after the width rule of
 * {@link WidthScaling}, with the learning-rate factor of hidden matrices that the rule needs.
 *
 * @param hiddenLrFactor learning-rate factor of hidden weight matrices (1 when no width scaling)
 */
public record FalconH1Multipliers(double embedding, double lmHead, double attentionIn, double attentionOut, double key,
        double ssmIn, double ssmOut, double[] ssmMultipliers, double[] mlpMultipliers, double hiddenLrFactor)
        implements MupMultipliers {

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
