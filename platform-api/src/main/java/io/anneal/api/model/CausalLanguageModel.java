package io.anneal.api.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import io.anneal.api.Stable;
import io.anneal.api.optim.NamedParameter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/** A decoder-only language model with trainable parameters. */
@Stable(since = "1.0")
public interface CausalLanguageModel extends AutoCloseable {

    /**
     * Logits of shape [batch, sequence, vocab] (float32, or float16 in mixed precision), every muP
     * multiplier applied, the LM-head one included. Intermediate arrays are attached to
     * {@code manager}, which the caller closes after the backward pass.
     */
    NDArray forward(NDManager manager, ModelInput input, boolean training);

    /**
     * Each label's log-probability under the model and whether it is the arg-max, as
     * (log_prob, correct), each [batch, sequence] float32 and 0 where the label is -100, optionally
     * followed by each position's logits averaged over the vocabulary (mean_logit, detached), computed
     * without materialising the logits when the model can (a fused LM head and cross-entropy);
     * empty when it cannot, and the caller takes the log-softmax of {@link #forward} itself.
     * Intermediate arrays are attached to {@code manager}. Since API 1.2.
     *
     * @param labels [batch, sequence] int64, -100 where unsupervised
     */
    default Optional<NDList> labelLogProbabilities(NDManager manager, ModelInput input, NDArray labels,
            boolean training) {
        return Optional.empty();
    }

    /**
     * CUDA graphs of training steps, when this model's {@link #forward} and
     * {@link #labelLogProbabilities} can be captured: once it has been returned, they enqueue GPU
     * work only (no host reads, no copies from Java arrays), and the caller may capture and replay
     * them. Empty by default and on a CPU. Since API 1.2.
     */
    default Optional<StepGraphs> stepGraphs() {
        return Optional.empty();
    }

    /**
     * The model's architecture and muP multipliers as Hugging Face {@code config.json} fields
     * ({@code model_type}, sizes, {@code embedding_multiplier}, ...), every default resolved, as
     * {@link #save} writes them; empty where the model cannot describe itself. Exporters read
     * shapes and multipliers here instead of parsing a checkpoint a second time. Since API 1.2.
     */
    default java.util.Map<String, Object> configJson() {
        return java.util.Map.of();
    }

    /**
     * How this model computes beyond its weights (the kernels and compute type, e.g. {@code fused
     * operators, bfloat16 inside}), for caches of its outputs: two models with the same weights but
     * different numerics give outputs that differ in rounding, and a cache keyed by the weights alone
     * would hand one's values to the other. Empty for a model that computes one way only. Since API 1.2.
     */
    default String numerics() {
        return "";
    }

    List<NamedParameter> parameters();

    int vocabSize();

    long parameterCount();

    /** Writes a Hugging Face folder ({@code config.json}, {@code model.safetensors}) that transformers loads as is. */
    void save(Path directory) throws IOException;

    @Override
    void close();
}
