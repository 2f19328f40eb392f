package io.anneal.mup;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.anneal.api.model.ModelInput;
import io.anneal.api.model.ObservableModel;
import io.anneal.api.optim.NamedParameter;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.toolkit.autograd.DifferentiableCasts;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.IntFunction;

/**
 * The muP coordinate check (Yang et al. 2022, "Tensor Programs V", section 7 and figure 5): train a
 * few steps at several widths from the same data and record the mean |activation| of every site
 * (embedding output, each layer output, logits) at each step. Under muP the curves over width are
 * flat; in the standard parametrisation they grow with width.
 *
 * <p>Training is plain Adam (betas 0.9, 0.999, eps 1e-8, no weight decay, as in the paper's
 * coordinate checks) on next-token cross-entropy of random tokens, with each parameter's learning
 * rate multiplied by its muP factor ({@link NamedParameter#lrFactor()}).
 */
public final class CoordinateCheck {

    /** Mean |activation| per site (in forward order) per step, for one width. */
    public record WidthResult(int width, List<String> sites, double[][] scales, double[] losses) {
    }

    private final int steps;
    private final int batch;
    private final int sequence;
    private final double learningRate;
    private final long seed;

    public CoordinateCheck(int steps, int batch, int sequence, double learningRate, long seed) {
        this.steps = steps;
        this.batch = batch;
        this.sequence = sequence;
        this.learningRate = learningRate;
        this.seed = seed;
    }

    public List<WidthResult> run(int[] widths, IntFunction<ObservableModel> modelAtWidth) {
        List<WidthResult> results = new ArrayList<>();
        for (int width : widths) {
            try (ObservableModel model = modelAtWidth.apply(width)) {
                results.add(train(width, model));
            }
        }
        return results;
    }

    private WidthResult train(int width, ObservableModel model) {
        Random random = new Random(seed); // the same tokens at every width
        long[] ids = new long[batch * (sequence + 1)];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = random.nextInt(model.vocabSize());
        }
        List<NamedParameter> parameters = model.parameters();
        List<String> sites = new ArrayList<>();
        double[][] scales = new double[steps][];
        double[] losses = new double[steps];
        try (NDManager state = NDManager.newBaseManager(parameters.get(0).parameter().getArray().getDevice())) {
            NDArray[] first = new NDArray[parameters.size()];
            NDArray[] second = new NDArray[parameters.size()];
            for (int i = 0; i < first.length; i++) {
                NDArray w = parameters.get(i).parameter().getArray();
                first[i] = state.zeros(w.getShape(), DataType.FLOAT32);
                second[i] = state.zeros(w.getShape(), DataType.FLOAT32);
            }
            for (int step = 0; step < steps; step++) {
                Map<String, Double> observed = new LinkedHashMap<>();
                try (NDManager pass = state.newSubManager()) {
                    try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
                        NDArray all = pass.create(ids, new Shape(batch, sequence + 1));
                        NDArray logits = model.forward(pass, ModelInput.unpacked(all.get(":, 0:" + sequence)), true,
                                (site, x) -> observed.put(site, (double) x.stopGradient()
                                        .toType(DataType.FLOAT32, false).abs().mean().getFloat()));
                        NDArray logp = DifferentiableCasts.toFloat32(logits).logSoftmax(-1);
                        NDArray loss = logp.gather(all.get(":, 1:").expandDims(-1), 2).mean().neg();
                        collector.backward(loss);
                        losses[step] = loss.getFloat();
                    }
                    adamStep(parameters, first, second, step + 1, pass);
                }
                if (step == 0) {
                    sites.addAll(observed.keySet());
                }
                scales[step] = observed.values().stream().mapToDouble(Double::doubleValue).toArray();
            }
        }
        return new WidthResult(width, sites, scales, losses);
    }

    private void adamStep(List<NamedParameter> parameters, NDArray[] first, NDArray[] second, int t, NDManager pass) {
        double beta1 = 0.9;
        double beta2 = 0.999;
        double correction1 = 1 - Math.pow(beta1, t);
        double correction2 = 1 - Math.pow(beta2, t);
        NDIndex all = new NDIndex("...");
        for (int i = 0; i < parameters.size(); i++) {
            NamedParameter p = parameters.get(i);
            NDArray w = p.parameter().getArray();
            NDArray g = w.getGradient();
            g.attach(pass);
            NDArray grad = g.toType(DataType.FLOAT32, false);
            first[i].muli(DeviceScalars.of(pass, beta1)).addi(grad.mul(DeviceScalars.of(pass, 1 - beta1)));
            second[i].muli(DeviceScalars.of(pass, beta2)).addi(grad.square().muli(DeviceScalars.of(pass, 1 - beta2)));
            NDArray update = first[i].div(DeviceScalars.of(pass, correction1))
                    .div(second[i].div(DeviceScalars.of(pass, correction2)).sqrt().add(1e-8))
                    .mul(DeviceScalars.of(pass, learningRate * p.lrFactor()));
            update.attach(pass);
            NDArray updated = w.sub(update);
            updated.attach(pass);
            w.set(all, updated);
            g.set(all, 0f); // DJL's collector does not zero gradients
        }
    }

    /**
     * How far a site's scale drifts across widths after the last step: the largest over smallest
     * mean |activation| among the widths (1 is perfectly flat).
     */
    public static double drift(List<WidthResult> results, int site) {
        double max = 0;
        double min = Double.POSITIVE_INFINITY;
        for (WidthResult r : results) {
            double v = r.scales()[r.scales().length - 1][site];
            max = Math.max(max, v);
            min = Math.min(min, v);
        }
        return max / min;
    }
}
