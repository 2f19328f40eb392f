package io.anneal.api.train;

import io.anneal.api.Experimental;
import io.anneal.api.data.PackedBatch;
import java.io.PrintStream;
import java.nio.file.Path;

/**
 * The extension point for engines that score token sequences outside the training engine: per
 * position, the log-probability of its label. Built by type through
 * {@link io.anneal.api.extension.ExtensionContext#build(Class, io.anneal.api.config.ConfigView)}
 * (e.g. a DPO objective's {@code reference-scorer { type = onnx }}), so the plugin that asks for
 * the scores never names the plugin that computes them. A DPO objective fills its reference
 * log-prob cache from one.
 *
 * @since API 1.2
 */
@Experimental(since = "1.2", note = "the first scorer (onnx) shapes it")
public interface SequenceScorer {

    /**
     * Opens the model of {@code directory}: a Hugging Face checkpoint folder, or a folder of the
     * engine's own format. One line per decision (execution provider, export) goes to {@code log}.
     *
     * @throws io.anneal.api.InputException for a folder the scorer cannot use, naming the file
     */
    Session open(Path directory, PrintStream log);

    /** A model opened by a {@link SequenceScorer}. */
    @Experimental(since = "1.2")
    interface Session extends AutoCloseable {

        /**
         * What computes the scores, e.g. {@code onnx-runtime 1.29.0 cpu}: values cached from one
         * engine are kept apart from another's by it.
         */
        String engine();

        /** SHA-256 (32 bytes) of the model the engine runs, as the engine reads it (its files). */
        byte[] modelHash();

        /**
         * float32 log p(label) at every position of {@code batch}, row-major [rows, length], 0 where
         * the label is {@link PackedBatch#IGNORE}. Each document of a packed row (a run of one
         * document id) is scored as if it were alone, so a packed row scores as its documents one
         * by one; an engine whose model cannot keep documents apart runs them one by one.
         *
         * @throws IllegalArgumentException for a batch the engine cannot score, saying why
         */
        float[] labelLogProbabilities(PackedBatch batch);

        @Override
        void close();
    }
}
