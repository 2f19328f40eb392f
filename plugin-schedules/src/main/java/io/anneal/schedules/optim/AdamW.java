package io.anneal.schedules.optim;

import ai.djl.ndarray.NDArray;
import io.anneal.api.optim.NamedParameter;
import java.util.List;
import java.util.Map;

/**
 * AdamW with PyTorch's {@code torch.optim.AdamW} semantics (Loshchilov and Hutter 2019,
 * "Decoupled Weight Decay Regularization", Algorithm 2, as written in the torch documentation):
 * <pre>
 *   p   <- p - lr * wd * p                      (decoupled decay, before the moment update)
 *   m   <- beta1 * m + (1 - beta1) * g
 *   v   <- beta2 * v + (1 - beta2) * g^2
 *   p   <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * </pre>
 * eps is added after the square root of the bias-corrected second moment, as torch does. A
 * parameter's {@code lrFactor} multiplies lr for that parameter (decay included, as a torch
 * parameter group with its own lr would).
 */
final class AdamW extends FlatOptimizer {
    private final AdamWSettings settings;
    private final NDArray firstMoment;
    private final NDArray secondMoment;

    AdamW(AdamWSettings settings, List<NamedParameter> parameters) {
        super("adamw", parameters);
        this.settings = settings;
        this.firstMoment = flat.zeros();
        this.secondMoment = flat.zeros();
    }

    @Override
    protected void update(NDArray grads, double learningRate, long step) {
        double beta1 = settings.beta1();
        double beta2 = settings.beta2();
        NDArray weights = flat.weights;
        if (settings.weightDecay() != 0) {
            // p <- p - lr*factor*wd*p
            weights.subi(scaledByLrFactor(weights.mul(scalar(learningRate * settings.weightDecay()))));
        }
        firstMoment.muli(scalar(beta1)).addi(grads.mul(scalar(1 - beta1)));
        secondMoment.muli(scalar(beta2)).addi(grads.square().muli(scalar(1 - beta2)));
        double biasCorrection1 = 1 - Math.pow(beta1, step);
        double biasCorrection2 = 1 - Math.pow(beta2, step);
        NDArray denominator = secondMoment.sqrt().divi(scalar(Math.sqrt(biasCorrection2))).addi(settings.eps());
        NDArray update = firstMoment.div(denominator).muli(scalar(learningRate / biasCorrection1));
        weights.subi(scaledByLrFactor(update));
    }

    @Override
    protected Map<String, NDArray> stateBuffers() {
        return buffers("exp_avg", firstMoment, "exp_avg_sq", secondMoment);
    }
}
