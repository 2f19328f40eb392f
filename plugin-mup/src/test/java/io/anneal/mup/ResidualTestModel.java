package io.anneal.mup;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.Activation;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.core.Linear;
import io.anneal.api.model.ModelInput;
import io.anneal.api.model.MupMultipliers;
import io.anneal.api.model.ObservableModel;
import io.anneal.api.optim.NamedParameter;
import io.anneal.toolkit.autograd.DeviceScalars;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.BiConsumer;

/**
 * A small pre-norm residual language model with Falcon-H1's multiplier placement on its hidden
 * path (input x attention_in into a width x width matrix, output x attention_out), an embedding
 * multiplier and an LM-head multiplier, initialised like Falcon-H1 with a width-independent std.
 * Parameter names follow the checkpoint names so the muP LR factors apply.
 */
final class ResidualTestModel implements ObservableModel {
    private static final int VOCAB = 64;
    private final NDManager manager = NDManager.newBaseManager();
    private final Map<String, Parameter> parameters = new LinkedHashMap<>();
    private final MupMultipliers mup;
    private final int layers;

    ResidualTestModel(int width, int layers, MupMultipliers mup) {
        this.mup = mup;
        this.layers = layers;
        Random random = new Random(width);
        add("model.embed_tokens.weight", random, VOCAB, width);
        for (int i = 0; i < layers; i++) {
            add("model.layers." + i + ".self_attn.q_proj.weight", random, width, width);
            add("model.layers." + i + ".self_attn.o_proj.weight", random, width, width);
        }
        add("lm_head.weight", random, VOCAB, width);
    }

    private void add(String name, Random random, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (random.nextGaussian() * 0.02);
        }
        NDArray array = manager.create(v, new Shape(rows, cols));
        array.setRequiresGradient(true);
        parameters.put(name, Parameter.builder().setName(name).setType(Parameter.Type.WEIGHT).optArray(array).build());
    }

    private NDArray w(String name) {
        return parameters.get(name).getArray();
    }

    private static NDArray rmsNorm(NDArray x) {
        return x.mul(x.square().mean(new int[] {-1}, true).add(1e-5f).pow(DeviceScalars.of(x.getManager(), -0.5)));
    }

    @Override
    public NDArray forward(NDManager pass, ModelInput input, boolean training, BiConsumer<String, NDArray> observer) {
        NDArray h = Embedding.embedding(input.inputIds(), w("model.embed_tokens.weight"), SparseFormat.DENSE)
                .singletonOrThrow().mul(DeviceScalars.of(pass, mup.embedding()));
        h.attach(pass);
        observe(observer, "embedding", h);
        for (int i = 0; i < layers; i++) {
            String p = "model.layers." + i + ".self_attn.";
            NDArray inner = Linear.linear(rmsNorm(h).mul(DeviceScalars.of(pass, mup.attentionIn())), w(p + "q_proj.weight"))
                    .singletonOrThrow();
            NDArray out = Linear.linear(inner.mul(Activation.sigmoid(inner)), w(p + "o_proj.weight")).singletonOrThrow();
            h = h.add(out.mul(DeviceScalars.of(pass, mup.attentionOut())));
            observe(observer, "layer." + i, h);
        }
        NDArray logits = Linear.linear(rmsNorm(h), w("lm_head.weight")).singletonOrThrow().mul(DeviceScalars.of(pass, mup.lmHead()));
        observe(observer, "logits", logits);
        return logits;
    }

    private static void observe(BiConsumer<String, NDArray> observer, String site, NDArray x) {
        if (observer != null) {
            observer.accept(site, x);
        }
    }

    @Override
    public NDArray forward(NDManager pass, ModelInput input, boolean training) {
        return forward(pass, input, training, null);
    }

    @Override
    public List<NamedParameter> parameters() {
        List<NamedParameter> list = new ArrayList<>();
        parameters.forEach((name, p) -> list.add(new NamedParameter(name, p, mup.lrFactor(name))));
        return list;
    }

    @Override
    public int vocabSize() {
        return VOCAB;
    }

    @Override
    public long parameterCount() {
        return parameters.values().stream().mapToLong(p -> p.getArray().size()).sum();
    }

    @Override
    public void save(Path directory) {
        throw new UnsupportedOperationException("test model");
    }

    @Override
    public void close() {
        manager.close();
    }
}
