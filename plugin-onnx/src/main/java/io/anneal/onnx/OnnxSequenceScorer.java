package io.anneal.onnx;

import io.anneal.api.config.ConfigView;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.train.SequenceScorer;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Optional;

/**
 * The {@code onnx} {@link SequenceScorer}: label log-probabilities from ONNX Runtime over the prefill
 * graph of {@link OnnxExport} (a DPO objective's {@code reference-scorer { type = onnx }} fills its
 * reference log-prob cache with it). The model is {@code model}, a folder {@code anneal export onnx}
 * wrote from the reference checkpoint, or, when that is empty, the checkpoint it is opened on,
 * exported for the run into a temporary folder (removed on close).
 *
 * <p>The graphs take no packed rows ({@code "packed_rows": false}), so every document of a batch
 * runs alone ({@link OrtDocuments}); log p(label) is log-softmax of the float32 logits in float64,
 * handed back as float32 like the training engine's. The engine is {@code onnx-runtime <version>
 * <provider>}; the model hash is the SHA-256 of the exported {@code prefill.onnx} and
 * {@code weights.onnx.data}, the files ONNX Runtime reads for scoring.
 */
final class OnnxSequenceScorer implements SequenceScorer {
    private final ExtensionContext extensions;
    private final OrtModel.Provider provider;
    private final int threads;
    private final Optional<Path> exported;

    OnnxSequenceScorer(ExtensionContext extensions, OrtModel.Provider provider, int threads, Optional<Path> exported) {
        this.extensions = extensions;
        this.provider = provider;
        this.threads = threads;
        this.exported = exported;
    }

    /** {@code anneal.sequence-scorer.onnx { provider = cpu | cuda, threads = 0, model = "" }} (reference.conf). */
    static final class Factory implements ExtensionFactory<SequenceScorer> {
        @Override
        public Class<SequenceScorer> extensionPoint() {
            return SequenceScorer.class;
        }

        @Override
        public String type() {
            return "onnx";
        }

        @Override
        public String description() {
            return "label log-probabilities from ONNX Runtime over an exported model (each document of a packed row alone)";
        }

        @Override
        public SequenceScorer create(ConfigView config, ExtensionContext context) {
            OrtModel.Provider provider = OnnxInferenceEngine.provider(config.getString("provider"), config.path() + ".provider");
            int threads = config.getInt("threads");
            if (threads < 0) {
                throw config.invalid("threads", "0 (ONNX Runtime's default) or a positive thread count");
            }
            Optional<Path> exported = Optional.empty();
            if (!config.getString("model").isBlank()) {
                Path folder = context.resolvePath(config, "model");
                if (!Files.isRegularFile(folder.resolve(ExportedFolder.MANIFEST))) {
                    throw config.invalid("model", "a folder written by anneal export onnx (with " + ExportedFolder.MANIFEST
                            + "), or \"\" to export the reference checkpoint for the run", folder.toString());
                }
                exported = Optional.of(folder);
            }
            return new OnnxSequenceScorer(context, provider, threads, exported);
        }
    }

    @Override
    public Session open(Path directory, PrintStream log) {
        OnnxInferenceEngine.Opened opened = OnnxInferenceEngine.openModel(extensions, exported.orElse(directory), provider,
                threads, log);
        byte[] hash;
        try {
            hash = sha256(opened.model().folder().prefill(), opened.model().folder().directory().resolve(ExportedFolder.WEIGHTS));
        } catch (RuntimeException e) {
            opened.close();
            throw e;
        }
        OrtModel model = opened.model();
        return new Session() {
            @Override
            public String engine() {
                return model.engine();
            }

            @Override
            public byte[] modelHash() {
                return hash.clone();
            }

            @Override
            public float[] labelLogProbabilities(PackedBatch batch) {
                int vocab = model.vocabSize();
                float[] out = new float[batch.rows() * batch.length()];
                OrtDocuments.forEachSupervisedDocument(model, batch, true, (r, start, end, logits) -> {
                    int base = r * batch.length();
                    for (int i = start; i < end; i++) {
                        int label = batch.labels()[base + i];
                        if (label != PackedBatch.IGNORE) {
                            if (label < 0 || label >= vocab) {
                                throw new IllegalArgumentException("row " + r + ", position " + i + ": label " + label
                                        + " is outside the model's vocabulary of " + vocab);
                            }
                            out[base + i] = (float) OrtDocuments.logProbability(logits, (i - start) * vocab, vocab, label);
                        }
                    }
                });
                return out;
            }

            @Override
            public void close() {
                opened.close();
            }
        };
    }

    /** SHA-256 of the files' bytes, in order. */
    static byte[] sha256(Path... files) {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every Java platform", e);
        }
        byte[] buffer = new byte[1 << 16];
        for (Path file : files) {
            try (InputStream in = Files.newInputStream(file)) {
                for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                    digest.update(buffer, 0, n);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(file + ": cannot be read: " + e.getMessage(), e);
            }
        }
        return digest.digest();
    }
}
