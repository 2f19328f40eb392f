package io.anneal.dpo;

import java.util.Locale;

/**
 * The preference losses of one pair, in float64 on the host, from the SUMMED log-probs of the
 * response tokens (policy and reference, chosen and rejected) and the response lengths: the loss,
 * its derivatives with respect to the policy's two sums (the trainer's backward pass goes through
 * them, see {@link DpoObjective}), the rewards and the log-probs as the loss uses them.
 *
 * <p>With {@code z = beta * logits} and {@code logits = (pi_c - pi_r) - (ref_c - ref_r)}:
 * <ul>
 * <li>{@code dpo}: {@code -(1-eps) log sigmoid(z) - eps log sigmoid(-z)}, Rafailov et al. 2023
 *     (arXiv:2305.18290) eq. 7; {@code eps = label-smoothing} is conservative DPO (Mitchell 2023,
 *     "A note on DPO with noisy preferences", eq. 3); TRL's {@code loss_type="sigmoid"}.</li>
 * <li>{@code dpo_norm}: open-instruct's {@code dpo_norm}, the same loss with every log-prob averaged
 *     over its response tokens, policy and reference alike; rewards are beta times the averaged
 *     log-ratios (the loss of the Falcon-H1 DPO stage, seed 000, beta = 5).</li>
 * <li>{@code robust}: {@code ((1-eps)(-log sigmoid(z)) + eps log sigmoid(-z)) / (1 - 2 eps)},
 *     Chowdhury et al. 2024 (arXiv:2403.00409) eq. 7; TRL's {@code "robust"}.</li>
 * <li>{@code hinge}: {@code max(0, 1 - z)}, RSO, Liu et al. 2023 (arXiv:2309.06657); TRL's {@code "hinge"}.</li>
 * <li>{@code ipo}: {@code (logits - 1/(2 beta))^2} over log-probs averaged over the tokens, Azar et
 *     al. 2023 (arXiv:2310.12036) eq. 17; TRL's {@code "ipo"} averages them too.</li>
 * <li>{@code simpo}: reference-free, {@code z = beta (avg pi_c - avg pi_r) - gamma}, the loss of
 *     {@code dpo} with {@code eps}; rewards are beta times the averaged policy log-probs. Meng et al.
 *     2024 (arXiv:2405.14734) eq. 6; TRL's CPOTrainer {@code loss_type="simpo"}.</li>
 * </ul>
 * An SFT term {@code sft-weight * (-mean log-prob of the chosen response tokens)} can be added to
 * any of them (TRL's {@code rpo_alpha}, averaged per pair here so the batch loss stays a mean over pairs).
 */
final class PreferenceLoss {

    /** The loss types, by their HOCON names. */
    enum Type {
        DPO("dpo", false, true), DPO_NORM("dpo_norm", true, true), ROBUST("robust", false, true),
        HINGE("hinge", false, true), IPO("ipo", true, true), SIMPO("simpo", true, false);

        final String configName;
        final boolean averaged;
        final boolean needsReference;

        Type(String configName, boolean averaged, boolean needsReference) {
            this.configName = configName;
            this.averaged = averaged;
            this.needsReference = needsReference;
        }

        static Type of(String name) {
            for (Type t : values()) {
                if (t.configName.equals(name)) {
                    return t;
                }
            }
            throw new IllegalArgumentException("unknown preference loss '" + name + "'");
        }
    }

    /**
     * One pair's values.
     *
     * @param loss              the pair's loss (the SFT term included)
     * @param gradChosen        d loss / d (summed policy log-probs of the chosen response)
     * @param gradRejected      d loss / d (summed policy log-probs of the rejected response)
     * @param chosenReward      TRL's {@code rewards/chosen} of the pair
     * @param rejectedReward    TRL's {@code rewards/rejected} of the pair
     * @param chosenLogp        the policy's chosen log-prob as the loss uses it (summed, or averaged)
     * @param rejectedLogp      the same for the rejected response
     */
    record PairValues(double loss, double gradChosen, double gradRejected, double chosenReward, double rejectedReward,
                      double chosenLogp, double rejectedLogp) {
    }

    private final Type type;
    private final double beta;
    private final double labelSmoothing;
    private final double gamma;
    private final double sftWeight;

    PreferenceLoss(Type type, double beta, double labelSmoothing, double gamma, double sftWeight) {
        this.type = type;
        this.beta = beta;
        this.labelSmoothing = labelSmoothing;
        this.gamma = gamma;
        this.sftWeight = sftWeight;
    }

    Type type() {
        return type;
    }

    String describe() {
        return String.format(Locale.ROOT, "%s(beta %s%s%s%s)", type.configName, beta,
                labelSmoothing != 0 ? ", label-smoothing " + labelSmoothing : "",
                type == Type.SIMPO ? ", gamma " + gamma : "", sftWeight != 0 ? ", sft-weight " + sftWeight : "");
    }

    /**
     * @param policyChosen      summed policy log-probs of the chosen response tokens
     * @param policyRejected    summed policy log-probs of the rejected response tokens
     * @param referenceChosen   summed reference log-probs of the chosen response (ignored by simpo)
     * @param referenceRejected summed reference log-probs of the rejected response (ignored by simpo)
     * @param chosenTokens      response tokens of the chosen answer (at least 1)
     * @param rejectedTokens    response tokens of the rejected answer (at least 1)
     */
    PairValues pair(double policyChosen, double policyRejected, double referenceChosen, double referenceRejected,
                    int chosenTokens, int rejectedTokens) {
        // x = the log-probs as the loss uses them; dx/dsum = 1/length when averaged
        double scaleChosen = type.averaged ? 1.0 / chosenTokens : 1.0;
        double scaleRejected = type.averaged ? 1.0 / rejectedTokens : 1.0;
        double pc = policyChosen * scaleChosen;
        double pr = policyRejected * scaleRejected;
        double rc = referenceChosen * scaleChosen;
        double rr = referenceRejected * scaleRejected;
        double loss;
        double dLossDLogits; // d loss / d (pc - pr): the logits move with pc and against pr
        double chosenReward;
        double rejectedReward;
        if (type == Type.SIMPO) {
            double z = beta * (pc - pr) - gamma;
            loss = smoothedSigmoidLoss(z);
            dLossDLogits = beta * smoothedSigmoidSlope(z);
            chosenReward = beta * pc;
            rejectedReward = beta * pr;
        } else {
            double logits = (pc - pr) - (rc - rr);
            double z = beta * logits;
            switch (type) {
                case DPO, DPO_NORM -> {
                    loss = smoothedSigmoidLoss(z);
                    dLossDLogits = beta * smoothedSigmoidSlope(z);
                }
                case ROBUST -> {
                    double eps = labelSmoothing;
                    loss = ((1 - eps) * softplus(-z) - eps * softplus(z)) / (1 - 2 * eps);
                    dLossDLogits = beta * (-(1 - eps) * sigmoid(-z) - eps * sigmoid(z)) / (1 - 2 * eps);
                }
                case HINGE -> {
                    loss = Math.max(0.0, 1.0 - z);
                    dLossDLogits = z < 1.0 ? -beta : 0.0;
                }
                case IPO -> {
                    double d = logits - 1.0 / (2.0 * beta);
                    loss = d * d;
                    dLossDLogits = 2.0 * d;
                }
                default -> throw new IllegalStateException(type.toString());
            }
            chosenReward = beta * (pc - rc);
            rejectedReward = beta * (pr - rr);
        }
        double gradChosen = dLossDLogits * scaleChosen;
        double gradRejected = -dLossDLogits * scaleRejected;
        if (sftWeight != 0) {
            loss += sftWeight * (-policyChosen / chosenTokens);
            gradChosen += -sftWeight / chosenTokens;
        }
        return new PairValues(loss, gradChosen, gradRejected, chosenReward, rejectedReward, pc, pr);
    }

    /** -(1-eps) log sigmoid(z) - eps log sigmoid(-z) = (1-eps) softplus(-z) + eps softplus(z). */
    private double smoothedSigmoidLoss(double z) {
        return (1 - labelSmoothing) * softplus(-z) + labelSmoothing * softplus(z);
    }

    /** Its derivative in z. */
    private double smoothedSigmoidSlope(double z) {
        return -(1 - labelSmoothing) * sigmoid(-z) + labelSmoothing * sigmoid(z);
    }

    /** log(1 + e^x) without overflow. */
    static double softplus(double x) {
        return Math.max(x, 0.0) + Math.log1p(Math.exp(-Math.abs(x)));
    }

    static double sigmoid(double x) {
        if (x >= 0) {
            return 1.0 / (1.0 + Math.exp(-x));
        }
        double e = Math.exp(x);
        return e / (1.0 + e);
    }
}
