package io.anneal.mup;

import io.anneal.toolkit.mup.FalconH1Multipliers;

/**
 * muP width rules for the Falcon-H1 multiplier set (Yang et al. 2022, "Tensor Programs V", Table 3,
 * in its formulation with forward multipliers; Falcon-H1 applies muP through such multipliers,
 * seed 000 "Difference between model sizes"). With r = base_width / width:
 *
 * <ul>
 *   <li>Input layer (embedding): multiplier unchanged; LR factor 1.</li>
 *   <li>Output layer (LM head, hidden-to-output): multiplier x r, so logits stay O(1) when the
 *       head's fan-in grows; LR factor 1.</li>
 *   <li>Hidden matrices, whose fan-in grows with width (q/k/v via attention_in, Mamba in_proj via
 *       ssm_in, the MLP gate, and o_proj / out_proj via attention_out / ssm_out): output multiplier
 *       x sqrt(r), which with Falcon-H1's width-independent init std gives the muP init variance
 *       proportional to 1/fan_in; and LR factor sqrt(r), so the effective Adam update of the
 *       multiplied weight, multiplier x LR, scales as r = 1/fan_in (Table 3, hidden weights).</li>
 *   <li>The MLP down projection: x r, i.e. sqrt(r) for its own fan-in (the intermediate size,
 *       assumed to grow with width) times sqrt(r) for the up projection, which has no multiplier of
 *       its own: down(up(x) * silu(gate)) is linear in up, so its scale moves onto down.</li>
 *   <li>Attention logits: muP uses 1/head_dim rather than 1/sqrt(head_dim) (Tensor Programs V,
 *       section 4). With a fixed head count, head_dim grows with width, so the key multiplier takes
 *       x sqrt(r) when {@code head-dim-scales} is on.</li>
 *   <li>ssm_multipliers (the z, x, B, C, dt slices) act after ssm_in and are width-independent.</li>
 * </ul>
 */
public final class WidthScaling {
    private WidthScaling() {
    }

    /**
     * The multipliers at {@code width} given the tuned ones at {@code baseWidth}; unscaled (and LR
     * factor 1) when either width is 0 or they are equal.
     */
    public static FalconH1Multipliers scale(FalconH1Multipliers base, double baseWidth, double width,
            boolean headDimScales) {
        if (baseWidth <= 0 || width <= 0 || baseWidth == width) {
            return base;
        }
        double r = baseWidth / width;
        double root = Math.sqrt(r);
        double[] mlp = base.mlpMultipliers();
        return new FalconH1Multipliers(
                base.embedding(),
                base.lmHead() * r,
                base.attentionIn() * root,
                base.attentionOut() * root,
                headDimScales ? base.key() * root : base.key(),
                base.ssmIn() * root,
                base.ssmOut() * root,
                base.ssmMultipliers(),
                new double[] {mlp[0] * root, mlp[1] * r},
                root);
    }
}
