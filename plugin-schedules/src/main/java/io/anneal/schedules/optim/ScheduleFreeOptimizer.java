package io.anneal.schedules.optim;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDScope;
import io.anneal.api.optim.NamedParameter;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * Schedule-free optimisation (Defazio et al. 2024, "The Road Less Scheduled", Algorithm 1, and
 * the update of the authors' reference implementation, facebookresearch/schedule_free). Three
 * sequences: z (the base optimizer's iterate), x (a weighted average of z, evaluated and
 * checkpointed) and y = (1 - beta) z + beta x, where gradients are taken. The model holds y while
 * training; only y and z are stored, x is recovered by interpolation when needed:
 * <pre>
 *   sched  = min(1, (k+1) / warmup)                 k = steps taken before this one
 *   lr_k   = lr * sched * c_k                        c_k = sqrt(1 - beta2^(k+1)) for Adam, 1 for SGD
 *   lr_max = max(lr_max, lr_k)
 *   w_k    = (k+1)^r * lr_max^weight_lr_power;  c_{k+1} = w_k / sum_{i<=k} w_i
 *   d      = base direction (Adam: g / (sqrt(v) + eps); SGD: g) + weight_decay * y
 *   y      <- (1 - c_{k+1}) y + c_{k+1} z  +  lr_k (beta (1 - c_{k+1}) - 1) d
 *   z      <- z - lr_k d
 * </pre>
 * The evaluation point is x = y + (1 - 1/beta)(z - y); training resumes from y = x + (1 - beta)(z - x).
 * The learning rate of a step comes from the schedule (use a constant one: the method replaces
 * the schedule; its own warmup is {@code warmup-steps}).
 */
abstract class ScheduleFreeOptimizer extends FlatOptimizer {
    protected final ScheduleFreeSettings settings;
    private final NDArray z;
    private double lrMax = -1;
    private double weightSum;
    private boolean trainingWeights = true;

    ScheduleFreeOptimizer(String type, ScheduleFreeSettings settings, List<NamedParameter> parameters) {
        super(type, parameters);
        this.settings = settings;
        this.z = flat.copyOfWeights();
    }

    /** The factor of the step's learning rate besides warmup (Adam's sqrt(1 - beta2^t)). */
    protected abstract double learningRateCorrection(long step);

    /** The base optimizer's direction from the (clipped) gradients; may reuse {@code grads}. */
    protected abstract NDArray direction(NDArray grads);

    @Override
    protected void beforeStep() {
        if (!trainingWeights) {
            throw new IllegalStateException("schedule-free optimizer stepped while the model holds the evaluation "
                    + "weights; call useTrainingWeights() after evaluating or checkpointing");
        }
    }

    @Override
    protected final void update(NDArray grads, double learningRate, long step) {
        long k = step - 1;
        double warmup = settings.warmupSteps() > 0 && k < settings.warmupSteps()
                ? (k + 1) / (double) settings.warmupSteps() : 1.0;
        double lr = learningRate * warmup * learningRateCorrection(step);
        lrMax = Math.max(lr, lrMax);
        double weight = Math.pow(k + 1, settings.r()) * Math.pow(lrMax, settings.weightLrPower());
        weightSum += weight;
        double averagingCoefficient = weightSum == 0 ? 0 : weight / weightSum;
        NDArray y = flat.weights;
        NDArray d = direction(grads);
        if (settings.weightDecay() != 0) {
            d.addi(y.mul(scalar(settings.weightDecay()))); // decay evaluated at y, as the reference does
        }
        d = scaledByLrFactor(d);
        y.addi(z.sub(y).muli(scalar(averagingCoefficient)));
        y.addi(d.mul(scalar(lr * (settings.beta() * (1 - averagingCoefficient) - 1))));
        z.subi(d.muli(scalar(lr)));
    }

    @Override
    public void useEvaluationWeights() {
        if (trainingWeights) {
            interpolateTowardsZ(1 - 1 / settings.beta());
            trainingWeights = false;
        }
    }

    @Override
    public void useTrainingWeights() {
        if (!trainingWeights) {
            interpolateTowardsZ(1 - settings.beta());
            trainingWeights = true;
        }
    }

    private void interpolateTowardsZ(double weight) {
        try (NDScope scope = new NDScope()) {
            scope.suppressNotUsedWarning();
            flat.weights.addi(z.sub(flat.weights).muli(scalar(weight)));
        }
        flat.writeBack();
    }

    /** Whether the model holds y (training) rather than x (evaluation). */
    boolean holdsTrainingWeights() {
        return trainingWeights;
    }

    @Override
    protected Map<String, NDArray> stateBuffers() {
        return buffers("z", z);
    }

    @Override
    protected Map<String, String> stateScalars() {
        return Map.of("lr-max", Double.toString(lrMax), "weight-sum", Double.toString(weightSum),
                "training-weights", Boolean.toString(trainingWeights));
    }

    @Override
    protected void restoreScalars(Properties p, Path file) {
        lrMax = Double.parseDouble(required(p, file, "lr-max"));
        weightSum = Double.parseDouble(required(p, file, "weight-sum"));
        trainingWeights = Boolean.parseBoolean(required(p, file, "training-weights"));
    }

    /** Schedule-free AdamW: Adam's second moment, no first moment (the averaging replaces it). */
    static final class AdamW extends ScheduleFreeOptimizer {
        private final NDArray secondMoment;

        AdamW(ScheduleFreeSettings settings, List<NamedParameter> parameters) {
            super("schedule-free-adamw", settings, parameters);
            secondMoment = flat.zeros();
        }

        @Override
        protected double learningRateCorrection(long step) {
            return Math.sqrt(1 - Math.pow(settings.beta2(), step));
        }

        @Override
        protected NDArray direction(NDArray grads) {
            double beta2 = settings.beta2();
            secondMoment.muli(scalar(beta2)).addi(grads.square().muli(scalar(1 - beta2)));
            return grads.divi(secondMoment.sqrt().addi(settings.eps()));
        }

        @Override
        protected Map<String, NDArray> stateBuffers() {
            Map<String, NDArray> m = new java.util.LinkedHashMap<>(super.stateBuffers());
            m.put("exp_avg_sq", secondMoment);
            return m;
        }
    }

    /** Schedule-free SGD with momentum {@code beta}. */
    static final class Sgd extends ScheduleFreeOptimizer {
        Sgd(ScheduleFreeSettings settings, List<NamedParameter> parameters) {
            super("schedule-free-sgd", settings, parameters);
        }

        @Override
        protected double learningRateCorrection(long step) {
            return 1.0;
        }

        @Override
        protected NDArray direction(NDArray grads) {
            return grads;
        }
    }
}
