package io.anneal.api.data;

import io.anneal.api.Stable;
import java.util.Map;

/**
 * The extension point for a stage's data ({@code data { type = mix, sources = [...], ... }}): a
 * configured pipeline of sources, tokenizer, chat template, mixer and packer.
 */
@Stable(since = "1.0")
public interface TrainingData {

    /** Opens the training stream with rows of {@code sequenceLength} tokens. */
    TokenBatchStream open(int sequenceLength);

    /** The vocabulary size of the tokenizer, which the model's must cover. */
    int vocabularySize();

    /**
     * True when the batches hold preference pairs laid out as {@link PreferenceRows} says (a DPO
     * data source), false for supervised chat rows. Since API 1.2.
     */
    default boolean preferencePairs() {
        return false;
    }

    /**
     * The files a model folder needs to be used with this data, by file name (for a Hugging Face
     * folder: tokenizer.json, tokenizer_config.json with the chat template training rendered, ...).
     * A training stage writes them into every model folder it saves. Since API 1.2.
     */
    default Map<String, byte[]> modelFolderFiles() {
        return Map.of();
    }

    default String describe() {
        return getClass().getSimpleName();
    }
}
