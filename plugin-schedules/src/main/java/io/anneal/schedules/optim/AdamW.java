package io.anneal.schedules.optim;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.optim.DeviceStep;
import io.anneal.api.optim.NamedParameter;
import io.anneal.toolkit.torchscript.TorchScriptModule;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

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
 *
 * <p>When the model's arrays are views of the flat weights (float32 parameters) the step runs in
 * PyTorch's fused AdamW kernel ({@code AdamWStep.torchscript}), one call per learning-rate factor;
 * otherwise, and as the reference the fused step is tested against, in whole-buffer operations.
 */
final class AdamW extends FlatOptimizer {
    private final AdamWSettings settings;
    private final NDArray firstMoment;
    private final NDArray secondMoment;
    /** The fused step's groups by learning-rate factor, made on first use. */
    private List<FusedGroup> fusedGroups;
    private TorchScriptModule fusedStep;

    /** Parameters sharing one learning-rate factor, with views of their moments, as the fused call's inputs. */
    private record FusedGroup(double lrFactor, List<NDArray> inputs, List<String> names) {
    }

    AdamW(AdamWSettings settings, List<NamedParameter> parameters) {
        super("adamw", parameters);
        this.settings = settings;
        this.firstMoment = flat.zeros();
        this.secondMoment = flat.zeros();
    }

    @Override
    protected void update(double gradientMultiplier, double learningRate, long step) {
        if (!flat.sharesWeights()) {
            super.update(gradientMultiplier, learningRate, step);
            return;
        }
        compileFusedStep();
        NDArray stepCount = scalar(step);
        NDArray gradScale = scalar(1 / gradientMultiplier);
        for (FusedGroup group : fusedGroups) {
            List<NDArray> inputs = new ArrayList<>(group.inputs());
            inputs.add(stepCount);
            inputs.add(scalar(learningRate * group.lrFactor()));
            inputs.add(gradScale);
            fusedStep.call("forward", inputs, unnamedAfter(group.names(), 3), false).close();
        }
    }

    private void compileFusedStep() {
        if (fusedGroups == null) {
            fusedStep = TorchScriptModule.compile("AdamWStep", AdamW.class.getResourceAsStream("AdamWStep.torchscript"),
                    Map.of("training", false, "beta1", settings.beta1(), "beta2", settings.beta2(), "eps", settings.eps(),
                            "weight_decay", settings.weightDecay()),
                    flat.weights.getDevice());
            fusedGroups = fusedGroups();
        }
    }

    private static List<String> unnamedAfter(List<String> names, int plainTensors) {
        List<String> all = new ArrayList<>(names);
        for (int i = 0; i < plainTensors; i++) {
            all.add(null);
        }
        return all;
    }

    /**
     * When the model's arrays are views of the flat weights: the fused step with the norm, the
     * finite check, clipping and the step count on the device ({@code check} and {@code update} of
     * AdamWStep.torchscript), for CUDA-graph capture (it runs on a CPU too, where it is tested).
     */
    @Override
    public Optional<DeviceStep> deviceStep() {
        if (!flat.sharesWeights()) {
            return Optional.empty();
        }
        compileFusedStep();
        return Optional.of(new OnDevice());
    }

    /** The device step's buffers: made once, at fixed addresses, so that a captured graph can replay it. */
    private final class OnDevice implements DeviceStep {
        private final NDManager manager = flat.weights.getManager().newSubManager();
        private final NDArray inputs = manager.zeros(new Shape(3), DataType.FLOAT32);
        private final NDArray outcome = manager.zeros(new Shape(2), DataType.FLOAT32);
        /** [grad_scale, found_inf], written by check, read by the fused kernel. */
        private final NDArray control = manager.zeros(new Shape(2), DataType.FLOAT32);
        /** The step count on the device, from the host's count at creation. */
        private final NDArray stepCount = manager.full(new Shape(), steps(), DataType.FLOAT32);
        private final List<NDArray> groupFactors = new ArrayList<>();

        OnDevice() {
            for (FusedGroup group : fusedGroups) {
                groupFactors.add(manager.full(new Shape(), (float) group.lrFactor(), DataType.FLOAT32));
            }
        }

        @Override
        public NDArray inputs() {
            return inputs;
        }

        @Override
        public NDArray outcome() {
            return outcome;
        }

        @Override
        public void enqueue() {
            List<NDArray> params = flat.modelArrays();
            List<NDArray> checkInputs = new ArrayList<>(params);
            checkInputs.addAll(List.of(inputs, stepCount, outcome, control));
            List<String> checkNames = new ArrayList<>();
            for (int i = 0; i < params.size(); i++) {
                checkNames.add("params[]");
            }
            fusedStep.call("check", checkInputs, unnamedAfter(checkNames, 4), false).close();
            for (int g = 0; g < fusedGroups.size(); g++) {
                FusedGroup group = fusedGroups.get(g);
                List<NDArray> updateInputs = new ArrayList<>(group.inputs());
                updateInputs.addAll(List.of(stepCount, inputs, control, groupFactors.get(g)));
                fusedStep.call("update", updateInputs, unnamedAfter(group.names(), 4), false).close();
            }
        }

        @Override
        public void completed(boolean skipped) {
            if (!skipped) {
                countStep();
            }
        }

        @Override
        public void close() {
            manager.close();
        }
    }

    private List<FusedGroup> fusedGroups() {
        List<NDArray> params = flat.modelArrays();
        List<NDArray> first = flat.views(firstMoment);
        List<NDArray> second = flat.views(secondMoment);
        Map<Double, List<Integer>> byFactor = new LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) {
            byFactor.computeIfAbsent(flat.lrFactor(i), f -> new ArrayList<>()).add(i);
        }
        List<FusedGroup> groups = new ArrayList<>();
        for (Map.Entry<Double, List<Integer>> e : byFactor.entrySet()) {
            List<NDArray> inputs = new ArrayList<>();
            List<String> names = new ArrayList<>();
            for (int i : e.getValue()) {
                inputs.add(params.get(i));
                names.add("params[]");
            }
            for (int i : e.getValue()) {
                inputs.add(first.get(i));
                names.add("exp_avg[]");
            }
            for (int i : e.getValue()) {
                inputs.add(second.get(i));
                names.add("exp_avg_sq[]");
            }
            groups.add(new FusedGroup(e.getKey(), List.copyOf(inputs), List.copyOf(names)));
        }
        return groups;
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
