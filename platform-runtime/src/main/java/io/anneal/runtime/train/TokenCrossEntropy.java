package io.anneal.runtime.train;

import ai.djl.ndarray.NDArray;
import io.anneal.toolkit.scoring.LabelLogProbabilities;

/**
 * Token-level cross-entropy over logits, in float32 whatever the compute type: log_softmax over
 * the vocabulary, then the log-probability of each label gathered. Positions labelled
 * {@link io.anneal.api.data.PackedBatch#IGNORE} (-100, the Hugging Face convention) contribute nothing.
 *
 * <p>It returns the SUM over supervised positions, not a mean: the caller divides by the
 * supervised tokens of the whole optimizer batch, so that accumulating micro-batches gives the
 * gradient of one big batch (the normalisation bug fixed in transformers PR #34191).
 */
final class TokenCrossEntropy {
    private TokenCrossEntropy() {
    }

    /**
     * Sums for one micro-batch; every array is attached to the logits' manager.
     *
     * @param negativeLogLikelihood scalar float32: sum of -log p(label) over supervised positions
     * @param correct               scalar float32: supervised positions whose arg-max logit is the label
     */
    record Sums(NDArray negativeLogLikelihood, NDArray correct) {
    }

    /**
     * Sums from a model's own per-label log-probabilities
     * ({@link io.anneal.api.model.CausalLanguageModel#labelLogProbabilities}), 0 where unsupervised.
     */
    static Sums ofLogProbabilities(NDArray logProbabilities, NDArray correct) {
        return new Sums(logProbabilities.sum().neg(), correct.sum().stopGradient());
    }

    /**
     * @param logits [batch, sequence, vocab], float32 or float16
     * @param labels [batch, sequence], int64, with -100 where unsupervised
     */
    static Sums of(NDArray logits, NDArray labels) {
        return of(LabelLogProbabilities.fromLogits(logits, labels));
    }

    /** The sums of per-label scores, from the logits or from a model's fused head alike. */
    static Sums of(LabelLogProbabilities.Scored scored) {
        return ofLogProbabilities(scored.logProbabilities(), scored.correct());
    }
}
