package io.anneal.runtime.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelInput;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.toolkit.scoring.LabelLogProbabilities;
import io.anneal.api.train.Objective;
import io.anneal.api.train.ObjectiveSums;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code objective { type = sft }}: token cross-entropy summed over the supervised tokens (labels
 * -100 ignored), divided by the batch's supervised tokens by the trainer; the metric
 * {@code mean_token_accuracy}. The default objective of a training stage.
 */
public final class SftObjective implements Objective {
    static final String TYPE = "sft";
    static final String ACCURACY = "mean_token_accuracy";
    /** TRL's SFTTrainer metric: the mean entropy (nats) of the predicted next-token distribution. */
    static final String ENTROPY = "entropy";
    /** The positions the entropy sum covers (not logged: the denominator of {@link #ENTROPY}). */
    static final String ENTROPY_POSITIONS = "entropy/positions";

    /** The factory of the core plugin (no keys besides {@code type}). */
    public static ExtensionFactory<Objective> factory() {
        return new ExtensionFactory<>() {
            @Override
            public Class<Objective> extensionPoint() {
                return Objective.class;
            }

            @Override
            public String type() {
                return TYPE;
            }

            @Override
            public String description() {
                return "supervised fine-tuning: token cross-entropy over the supervised tokens of the batch";
            }

            @Override
            public String defaultsPath() {
                return "";
            }

            @Override
            public Objective create(io.anneal.api.config.ConfigView config, io.anneal.api.extension.ExtensionContext context) {
                return new SftObjective();
            }
        };
    }

    @Override
    public long denominator(PackedBatch batch) {
        return batch.supervisedTokens();
    }

    @Override
    public ObjectiveSums forward(NDManager micro, CausalLanguageModel model, PackedBatch batch, boolean training) {
        return forward(micro, model, LabelLogProbabilities.input(micro, batch), LabelLogProbabilities.labels(micro, batch),
                training);
    }

    /** The same sums from a batch already on the device (a captured step's static arrays). */
    ObjectiveSums forward(NDManager micro, CausalLanguageModel model, ModelInput input, NDArray labels, boolean training) {
        // the model's fused LM head and cross-entropy when it has one (no logits materialised), else log-softmax
        // entropy on training forwards only: evaluation logs eval_loss alone (evaluationMetrics), so it would be computed for nothing
        LabelLogProbabilities.Scored scored = LabelLogProbabilities.of(micro, model, input, labels, training, training);
        TokenCrossEntropy.Sums sums = TokenCrossEntropy.of(scored);
        Map<String, NDArray> metrics = new LinkedHashMap<>();
        metrics.put(ACCURACY, sums.correct());
        // TRL's entropy is the mean over every position of the rows (attention_mask, or all positions when
        // packed without padding), not over the supervised ones: the sum and the positions it covers go to
        // the trainer, which logs their ratio (SftStage); with a fused head (no logits) both are 0 and
        // entropy is left out of the row
        // device fills, not copies of Java numbers: a CUDA graph can capture them (GraphedStep)
        metrics.put(ENTROPY, scored.entropy().map(NDArray::sum).orElseGet(() -> micro.zeros(new ai.djl.ndarray.types.Shape())));
        metrics.put(ENTROPY_POSITIONS, DeviceScalars.of(micro, scored.entropy().isPresent() ? labels.getShape().size() : 0));
        return new ObjectiveSums(sums.negativeLogLikelihood(), metrics);
    }

    @Override
    public List<String> metricNames() {
        return List.of(ACCURACY, ENTROPY, ENTROPY_POSITIONS);
    }

    @Override
    public List<String> evaluationMetrics() {
        return List.of(); // eval_loss only, as before objectives existed
    }

    @Override
    public String describe() {
        return TYPE;
    }
}
