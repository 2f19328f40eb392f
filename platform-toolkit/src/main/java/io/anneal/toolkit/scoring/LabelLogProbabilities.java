package io.anneal.toolkit.scoring;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.Experimental;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelInput;
import io.anneal.toolkit.autograd.DifferentiableCasts;
import java.util.Optional;

/**
 * Each label's log-probability under a model for one packed micro-batch, for objectives: the
 * model's fused path ({@link CausalLanguageModel#labelLogProbabilities}, no logits materialised) when
 * it has one, else float32 log-softmax of {@link CausalLanguageModel#forward} gathered at the labels.
 *
 * @since API 1.2
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.train before API 1.2 split it off)")
public final class LabelLogProbabilities {
    private LabelLogProbabilities() {
    }

    /**
     * @param logProbabilities [rows, length] float32, log p(label), 0 where the label is -100
     * @param correct          [rows, length] float32, 1 where the label is the arg-max, 0 elsewhere (detached)
     * @param meanLogits       [rows, length] float32, each position's logits averaged over the
     *                         vocabulary (detached; TRL's {@code logits/chosen} is their mean over the
     *                         response tokens), or null where the model's fused path does not
     *                         return them
     * @param entropy          [rows, length] float32, the entropy of the predicted distribution at every
     *                         position (detached), in nats, when asked for; empty otherwise, and when the
     *                         model's fused head computed no logits (TRL leaves {@code entropy} out then
     *                         too: "liger doesn't return logits")
     */
    public record Scored(NDArray logProbabilities, NDArray correct, NDArray meanLogits, Optional<NDArray> entropy) {
        /** Scores of a fused head that returns no mean logits (and no entropy: it computes no logits). */
        public Scored(NDArray logProbabilities, NDArray correct) {
            this(logProbabilities, correct, null, Optional.empty());
        }
    }

    /**
     * The batch's arrays on {@code manager}'s device. Document ids are left out when every row holds
     * one document: there are no boundaries to respect, and the model need not read them back to
     * find that out (a capturable pass reads nothing back).
     */
    public static ModelInput input(NDManager manager, PackedBatch batch) {
        Shape shape = new Shape(batch.rows(), batch.length());
        return new ModelInput(manager.create(batch.inputIds(), shape), manager.create(batch.positionIds(), shape),
                oneDocumentPerRow(batch) ? null : manager.create(batch.documentIds(), shape));
    }

    /** True when no row of {@code batch} holds a document boundary. */
    public static boolean oneDocumentPerRow(PackedBatch batch) {
        int[] documents = batch.documentIds();
        for (int r = 0; r < batch.rows(); r++) {
            int first = r * batch.length();
            for (int t = first + 1; t < first + batch.length(); t++) {
                if (documents[t] != documents[first]) {
                    return false;
                }
            }
        }
        return true;
    }

    /** [rows, length] int64 labels, -100 where unsupervised. */
    public static NDArray labels(NDManager manager, PackedBatch batch) {
        return manager.create(batch.labels(), new Shape(batch.rows(), batch.length())).toType(DataType.INT64, false);
    }

    /** Scores every label of {@code batch}; arrays are attached to {@code manager}. No entropy. */
    public static Scored of(NDManager manager, CausalLanguageModel model, PackedBatch batch, boolean training) {
        return of(manager, model, batch, training, false);
    }

    /**
     * Scores every label of {@code batch}, and with {@code withEntropy} each position's entropy where
     * the model computes logits (it costs one row's [length, vocab] temporary at a time).
     */
    public static Scored of(NDManager manager, CausalLanguageModel model, PackedBatch batch, boolean training, boolean withEntropy) {
        return of(manager, model, input(manager, batch), labels(manager, batch), training, withEntropy);
    }

    /**
     * The same scores of a batch already on the device ({@link #input}, {@link #labels}; a captured
     * step's static arrays); arrays are attached to {@code manager}.
     */
    public static Scored of(NDManager manager, CausalLanguageModel model, ModelInput input, NDArray labels,
            boolean training, boolean withEntropy) {
        Optional<NDList> fused = model.labelLogProbabilities(manager, input, labels, training);
        if (fused.isPresent()) {
            NDList scores = fused.get();
            return new Scored(scores.get(0), scores.get(1).stopGradient(),
                    scores.size() > 2 ? scores.get(2).stopGradient() : null, Optional.empty());
        }
        return fromLogits(model.forward(manager, input, training), labels, withEntropy);
    }

    /**
     * From logits [rows, length, vocab] (float32 or float16) and labels [rows, length] int64: float32
     * log-softmax gathered at each label, masked where the label is -100.
     */
    public static Scored fromLogits(NDArray logits, NDArray labels) {
        return fromLogits(logits, labels, false);
    }

    /** As {@link #fromLogits(NDArray, NDArray)}, with each position's entropy when {@code withEntropy}. */
    public static Scored fromLogits(NDArray logits, NDArray labels, boolean withEntropy) {
        // not toType: DJL's cast detaches from the autograd graph (see DifferentiableCasts)
        NDArray logits32 = DifferentiableCasts.toFloat32(logits);
        NDArray supervised = labels.neq(PackedBatch.IGNORE);
        // -100 is no valid index: gather at 0 there and mask the result away
        NDArray safeLabels = labels.mul(supervised.toType(DataType.INT64, false));
        NDArray logSoftmax = logits32.logSoftmax(-1);
        NDArray picked = logSoftmax.gather(safeLabels.expandDims(-1), -1).squeeze(-1);
        NDArray mask = supervised.toType(DataType.FLOAT32, false);
        NDArray hits = logits32.argMax(-1).eq(safeLabels).toType(DataType.FLOAT32, false).mul(mask);
        return new Scored(picked.mul(mask), hits.stopGradient(), logits32.stopGradient().mean(new int[] {-1}),
                withEntropy ? Optional.of(entropy(logSoftmax)) : Optional.empty());
    }

    /**
     * H = -sum_v p_v log p_v per position from log-probabilities [rows, length, vocab] (TRL's
     * entropy_from_logits, which computes the same from logits), detached. One row at a time, so the
     * only full-vocabulary temporary is one row's p * log p ([length, vocab], freed at once) beside
     * the log-softmax the loss already holds.
     */
    public static NDArray entropy(NDArray logProbabilities) {
        NDArray detached = logProbabilities.stopGradient();
        long rows = detached.getShape().get(0);
        NDList perRow = new NDList();
        for (long r = 0; r < rows; r++) {
            try (NDArray row = detached.get(r); NDArray pLogP = row.exp().muli(row)) {
                perRow.add(pLogP.sum(new int[] {-1}).neg());
            }
        }
        return ai.djl.ndarray.NDArrays.stack(perRow);
    }
}
