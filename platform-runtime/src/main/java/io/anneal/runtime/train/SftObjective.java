package io.anneal.runtime.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelInput;
import io.anneal.api.train.LabelLogProbabilities;
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
        TokenCrossEntropy.Sums sums = TokenCrossEntropy.of(LabelLogProbabilities.of(micro, model, input, labels, training));
        Map<String, NDArray> metrics = new LinkedHashMap<>();
        metrics.put(ACCURACY, sums.correct());
        return new ObjectiveSums(sums.negativeLogLikelihood(), metrics);
    }

    @Override
    public List<String> metricNames() {
        return List.of(ACCURACY);
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
