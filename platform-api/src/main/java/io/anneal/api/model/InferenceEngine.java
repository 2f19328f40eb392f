package io.anneal.api.model;

import io.anneal.api.Experimental;
import java.io.PrintStream;
import java.nio.file.Path;

/**
 * The extension point for engines that run a trained model outside DJL ({@code --engine onnx} of
 * {@code anneal logits}): built by type name through
 * {@link io.anneal.api.extension.ExtensionContext#build(Class, String, java.util.Map, String)}, so
 * the command that scores never names the engine's plugin.
 */
@Experimental(since = "1.2", note = "the first engine (onnx) shapes it; batching and devices may grow")
public interface InferenceEngine {

    /**
     * Opens the model of {@code directory}: a Hugging Face checkpoint folder, or a folder the engine
     * exported itself. One line per decision (execution provider, export) goes to {@code log}.
     *
     * @throws io.anneal.api.InputException for a folder the engine cannot use, naming the file
     */
    ScoringModel open(Path directory, PrintStream log);

    /** A model opened by an {@link InferenceEngine}. */
    @Experimental(since = "1.2")
    interface ScoringModel extends AutoCloseable {

        int vocabSize();

        /**
         * float32 logits of {@code ids} (rows of equal length, one document each), every muP
         * multiplier applied, in row-major [batch, sequence, vocab] order.
         */
        float[] logits(long[][] ids);

        @Override
        void close();
    }
}
