package io.anneal.runtime.train;

import ai.djl.ndarray.NDArray;
import io.anneal.api.optim.NamedParameter;
import io.anneal.api.optim.OptimizerFactory;
import io.anneal.api.optim.ParameterOptimizer;
import io.anneal.api.optim.StepRequest;
import io.anneal.api.optim.StepResult;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A test-only SGD with momentum, done on the host in float32 so its arithmetic is plain and
 * reproducible: gradients divided by the loss scale, a step with a non-finite gradient skipped
 * (nothing changes), global-norm clipping as torch.nn.utils.clip_grad_norm_ (coefficient
 * max_norm / (norm + 1e-6), capped at 1), then buf = momentum * buf + g; w -= lr * buf.
 */
final class MomentumSgd implements ParameterOptimizer {
    static final String STATE = "sgd-state.bin";
    private final List<NamedParameter> parameters;
    private final double momentum;
    private final List<float[]> buffers = new ArrayList<>();
    private long steps;
    final List<Double> gradNorms = new ArrayList<>();
    /** Calls to the weight-mode and state methods, in order, for tests of the checkpoint protocol. */
    final List<String> events;

    MomentumSgd(List<NamedParameter> parameters, double momentum) {
        this(parameters, momentum, new ArrayList<>());
    }

    MomentumSgd(List<NamedParameter> parameters, double momentum, List<String> events) {
        this.events = events;
        this.parameters = parameters;
        this.momentum = momentum;
        for (NamedParameter p : parameters) {
            buffers.add(new float[(int) p.parameter().getArray().size()]);
        }
    }

    /** A fault to inject: the update of this step (1-based) leaves a NaN in the first weight, as an overflowing update would. */
    int nanWeightsAtStep = -1;

    static OptimizerFactory factory(double momentum) {
        return factory(momentum, -1);
    }

    static OptimizerFactory factory(double momentum, int nanWeightsAtStep) {
        return parameters -> {
            MomentumSgd sgd = new MomentumSgd(parameters, momentum);
            sgd.nanWeightsAtStep = nanWeightsAtStep;
            return sgd;
        };
    }

    @Override
    public StepResult step(StepRequest request) {
        List<float[]> gradients = new ArrayList<>();
        double squares = 0;
        boolean finite = true;
        for (NamedParameter p : parameters) {
            float[] g;
            try (NDArray gradient = p.parameter().getArray().getGradient()) {
                g = gradient.toFloatArray();
            }
            for (int i = 0; i < g.length; i++) {
                g[i] = (float) (g[i] / request.gradientDivisor());
                finite &= Float.isFinite(g[i]);
                squares += (double) g[i] * g[i];
            }
            gradients.add(g);
        }
        if (!finite) {
            return new StepResult(Double.NaN, true);
        }
        double norm = Math.sqrt(squares);
        gradNorms.add(norm);
        double coefficient = request.maxGradNorm() > 0 ? Math.min(1.0, request.maxGradNorm() / (norm + 1e-6)) : 1.0;
        for (int k = 0; k < parameters.size(); k++) {
            NDArray weights = parameters.get(k).parameter().getArray();
            float[] w = weights.toFloatArray();
            float[] g = gradients.get(k);
            float[] buf = buffers.get(k);
            for (int i = 0; i < w.length; i++) {
                buf[i] = (float) (momentum * buf[i] + g[i] * coefficient);
                w[i] = (float) (w[i] - request.learningRate() * parameters.get(k).lrFactor() * buf[i]);
            }
            if (k == 0 && steps + 1 == nanWeightsAtStep) {
                w[0] = Float.NaN;
            }
            weights.set(w);
        }
        steps++;
        return new StepResult(norm, false);
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public void useEvaluationWeights() {
        events.add("useEvaluationWeights");
    }

    @Override
    public void useTrainingWeights() {
        events.add("useTrainingWeights");
    }

    @Override
    public void save(Path directory) throws IOException {
        events.add("optimizer.save");
        try (DataOutputStream out = new DataOutputStream(Files.newOutputStream(directory.resolve(STATE)))) {
            out.writeLong(steps);
            for (float[] buf : buffers) {
                for (float f : buf) {
                    out.writeFloat(f);
                }
            }
        }
    }

    @Override
    public void load(Path directory) throws IOException {
        events.add("optimizer.load");
        try (DataInputStream in = new DataInputStream(Files.newInputStream(directory.resolve(STATE)))) {
            steps = in.readLong();
            for (float[] buf : buffers) {
                for (int i = 0; i < buf.length; i++) {
                    buf[i] = in.readFloat();
                }
            }
        }
    }

    @Override
    public void close() {
    }

}
