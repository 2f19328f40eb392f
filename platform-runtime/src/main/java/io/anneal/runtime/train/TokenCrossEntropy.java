package io.anneal.runtime.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.train.DifferentiableCasts;

/**
 * Token-level cross-entropy over logits, in float32 whatever the compute type: log_softmax over
 * the vocabulary, then the log-probability of each label gathered. Positions labelled
 * {@link PackedBatch#IGNORE} (-100, the Hugging Face convention) contribute nothing.
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
        // not toType: DJL's cast detaches from the autograd graph (see DifferentiableCasts)
        NDArray logits32 = DifferentiableCasts.toFloat32(logits);
        NDArray supervised = labels.neq(PackedBatch.IGNORE);
        // -100 is no valid index: gather at 0 there and mask the result away
        NDArray safeLabels = labels.mul(supervised.toType(DataType.INT64, false));
        NDArray logProbabilities = logits32.logSoftmax(-1);
        NDArray picked = logProbabilities.gather(safeLabels.expandDims(-1), -1).squeeze(-1);
        NDArray mask = supervised.toType(DataType.FLOAT32, false);
        NDArray nll = picked.mul(mask).sum().neg();
        NDArray hits = logits32.argMax(-1).eq(safeLabels).toType(DataType.FLOAT32, false).mul(mask).sum();
        return new Sums(nll, hits.stopGradient());
    }
}
