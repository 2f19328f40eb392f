package io.anneal.runtime.train;

import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.ModelInput;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.optim.NamedParameter;
import io.anneal.toolkit.autograd.DifferentiableCasts;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A test-only bigram language model: logits = onehot(ids) . embedding . head (embedding [V, D],
 * head [D, V]), in DJL. Hooks let a test poison the logits of one training forward (inf/NaN) or make
 * it fail as a GPU out-of-memory would.
 */
final class TinyLanguageModel implements CausalLanguageModel {
    static final String WEIGHTS = "weights.bin";
    private final NDManager manager;
    private final List<NamedParameter> parameters;
    private final int vocab;
    private final Hooks hooks;
    private final DataType computeType;
    private int trainingForwards;

    /** Faults to inject, counted in training forwards (1-based). */
    static final class Hooks {
        int poisonForward = -1;
        int poisonFrom = -1; // every training forward from the n-th on is poisoned (a diverged run)
        float poisonFactor = Float.POSITIVE_INFINITY;
        int outOfMemoryForward = -1;
        int failingSaveNumber = -1; // the n-th save (1-based) writes a file and then fails
        int failingSavesFrom = -1; // every save from the n-th on fails so (a disk that stays full)
        int saves;
    }

    TinyLanguageModel(int vocab, int width, float[] embedding, float[] head, Hooks hooks, DataType computeType) {
        this.manager = NDManager.newBaseManager();
        this.vocab = vocab;
        this.hooks = hooks;
        this.computeType = computeType;
        NDArray e = manager.create(embedding, new Shape(vocab, width));
        NDArray h = manager.create(head, new Shape(width, vocab));
        e.setRequiresGradient(true);
        h.setRequiresGradient(true);
        this.parameters = List.of(
                new NamedParameter("model.embed_tokens.weight", Parameter.builder().setName("embed").setType(Parameter.Type.WEIGHT).optArray(e).build()),
                new NamedParameter("lm_head.weight", Parameter.builder().setName("head").setType(Parameter.Type.WEIGHT).optArray(h).build()));
    }

    @Override
    public NDArray forward(NDManager scope, ModelInput input, boolean training) {
        if (training) {
            trainingForwards++;
            if (trainingForwards == hooks.outOfMemoryForward) {
                throw new EngineException("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.11 GiB total capacity)");
            }
        }
        NDArray embedding = parameters.get(0).parameter().getArray();
        NDArray head = parameters.get(1).parameter().getArray();
        NDArray oneHot = input.inputIds().toType(DataType.INT64, false).oneHot(vocab);
        if (computeType == DataType.FLOAT16) {
            // mixed precision as the real models do it: float32 master weights, float16 compute and logits
            embedding = DifferentiableCasts.toFloat16(embedding);
            head = DifferentiableCasts.toFloat16(head);
            oneHot = oneHot.toType(DataType.FLOAT16, false); // input, no gradient needed
        }
        NDArray logits = oneHot.matMul(embedding).matMul(head);
        if (training && (trainingForwards == hooks.poisonForward || (hooks.poisonFrom > 0 && trainingForwards >= hooks.poisonFrom))) {
            logits = logits.mul(DeviceScalars.of(logits.getManager(), hooks.poisonFactor));
        }
        return logits;
    }

    @Override
    public List<NamedParameter> parameters() {
        return parameters;
    }

    @Override
    public int vocabSize() {
        return vocab;
    }

    @Override
    public long parameterCount() {
        return parameters.stream().mapToLong(p -> p.parameter().getArray().size()).sum();
    }

    /**
     * The mean cross-entropy of this model over the supervised tokens of {@code batch}, computed on the
     * host in double from the weights, independently of DJL and of the code under test.
     */
    double hostLoss(io.anneal.api.data.PackedBatch batch) {
        float[] e = weights(0);
        float[] h = weights(1);
        int width = e.length / vocab;
        double nll = 0;
        long n = 0;
        for (int t = 0; t < batch.inputIds().length; t++) {
            if (batch.labels()[t] == io.anneal.api.data.PackedBatch.IGNORE) {
                continue;
            }
            double[] logits = new double[vocab];
            double z = 0;
            for (int v = 0; v < vocab; v++) {
                for (int d = 0; d < width; d++) {
                    logits[v] += e[batch.inputIds()[t] * width + d] * h[d * vocab + v];
                }
                z += Math.exp(logits[v]);
            }
            nll += Math.log(z) - logits[batch.labels()[t]];
            n++;
        }
        return nll / n;
    }

    float[] weights(int index) {
        return parameters.get(index).parameter().getArray().toFloatArray();
    }

    @Override
    public void save(Path directory) throws IOException {
        hooks.saves++;
        Files.createDirectories(directory);
        try (DataOutputStream out = new DataOutputStream(Files.newOutputStream(directory.resolve(WEIGHTS)))) {
            float[] e = weights(0);
            float[] h = weights(1);
            out.writeInt(vocab);
            out.writeInt(e.length / vocab);
            for (float f : e) {
                out.writeFloat(f);
            }
            if (hooks.saves == hooks.failingSaveNumber || (hooks.failingSavesFrom > 0 && hooks.saves >= hooks.failingSavesFrom)) {
                throw new IOException("No space left on device");
            }
            for (float f : h) {
                out.writeFloat(f);
            }
        }
    }

    @Override
    public void close() {
        manager.close();
    }

    /** The architecture: random init from the seed, or load of {@link #WEIGHTS}. */
    static final class Architecture implements ModelArchitecture {
        final int vocab;
        final int width;
        final Hooks hooks = new Hooks();
        TinyLanguageModel last;

        Architecture(int vocab, int width) {
            this.vocab = vocab;
            this.width = width;
        }

        @Override
        public CausalLanguageModel initialize(ModelOptions options) {
            SplittableRandom random = new SplittableRandom(options.seed());
            float[] e = new float[vocab * width];
            float[] h = new float[width * vocab];
            for (int i = 0; i < e.length; i++) {
                e[i] = (float) (random.nextDouble() - 0.5);
                h[i] = (float) (random.nextDouble() - 0.5);
            }
            last = new TinyLanguageModel(vocab, width, e, h, hooks, options.computeType());
            return last;
        }

        @Override
        public CausalLanguageModel load(Path directory, ModelOptions options) {
            try (DataInputStream in = new DataInputStream(Files.newInputStream(directory.resolve(WEIGHTS)))) {
                int v = in.readInt();
                int d = in.readInt();
                float[] e = new float[v * d];
                float[] h = new float[d * v];
                for (int i = 0; i < e.length; i++) {
                    e[i] = in.readFloat();
                }
                for (int i = 0; i < h.length; i++) {
                    h[i] = in.readFloat();
                }
                last = new TinyLanguageModel(v, d, e, h, hooks, options.computeType());
                return last;
            } catch (IOException ex) {
                throw new UncheckedIOException(ex);
            }
        }
    }
}
