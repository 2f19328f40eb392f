package io.anneal.api.model;

import io.anneal.api.Stable;
import java.nio.file.Path;

/**
 * The extension point for model architectures ({@code model { type = falcon-h1, ... }}): a
 * configured architecture that creates a randomly initialised model or loads a checkpoint folder.
 */
@Stable(since = "1.0")
public interface ModelArchitecture {

    CausalLanguageModel initialize(ModelOptions options);

    /** Loads a local Hugging Face checkpoint folder; nothing is downloaded. */
    CausalLanguageModel load(Path checkpointDirectory, ModelOptions options);

    /**
     * The vocabulary size the configuration gives the model (its embedding and head rows), so that
     * {@code anneal validate} can check it covers the data's tokenizer before anything is built;
     * empty where only a checkpoint can tell. Since API 1.2.
     */
    default java.util.OptionalInt vocabularySize() {
        return java.util.OptionalInt.empty();
    }

    default String describe() {
        return getClass().getSimpleName();
    }
}
