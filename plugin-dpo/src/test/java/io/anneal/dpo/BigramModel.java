package io.anneal.dpo;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelInput;
import io.anneal.api.optim.NamedParameter;

import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

/** A test-only bigram model: logits[b, t] = table[ids[b, t]], one [vocab, vocab] parameter. */
final class BigramModel implements CausalLanguageModel {
    final NDManager manager = NDManager.newBaseManager();
    final int vocab;
    final float[] initial;
    private final List<NamedParameter> parameters;
    /** What {@link #numerics} says: a test sets it to stand for another kernel path over the same weights. */
    String numerics = "";

    BigramModel(int vocab, long seed) {
        this.vocab = vocab;
        SplittableRandom random = new SplittableRandom(seed);
        initial = new float[vocab * vocab];
        for (int i = 0; i < initial.length; i++) {
            initial[i] = (float) (random.nextDouble() * 2 - 1);
        }
        NDArray table = manager.create(initial, new Shape(vocab, vocab));
        table.setRequiresGradient(true);
        parameters = List.of(new NamedParameter("table", Parameter.builder().setName("table")
                .setType(Parameter.Type.WEIGHT).optArray(table).build()));
    }

    @Override
    public String numerics() {
        return numerics;
    }

    NDArray table() {
        return parameters.get(0).parameter().getArray();
    }

    /** log p(label | previous token) on the host, in float64. */
    double hostLogProbability(int token, int label) {
        float[] t = table().toFloatArray();
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < vocab; v++) {
            max = Math.max(max, t[token * vocab + v]);
        }
        double sum = 0;
        for (int v = 0; v < vocab; v++) {
            sum += Math.exp(t[token * vocab + v] - max);
        }
        return t[token * vocab + label] - max - Math.log(sum);
    }

    @Override
    public NDArray forward(NDManager scope, ModelInput input, boolean training) {
        NDArray oneHot = input.inputIds().toType(DataType.INT64, false).oneHot(vocab);
        return oneHot.matMul(table());
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
        return (long) vocab * vocab;
    }

    @Override
    public void save(Path directory) {
        throw new UnsupportedOperationException();
    }

    @Override
    public void close() {
        manager.close();
    }
}
