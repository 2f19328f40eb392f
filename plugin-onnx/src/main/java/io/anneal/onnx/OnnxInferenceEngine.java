package io.anneal.onnx;

import io.anneal.api.InputException;
import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.model.InferenceEngine;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The {@code onnx} {@link InferenceEngine}: ONNX Runtime over the graphs of {@link OnnxExport}. A
 * checkpoint folder is exported into a temporary folder first (removed on close); a folder that
 * {@code anneal export onnx} wrote is used as it is.
 */
final class OnnxInferenceEngine implements InferenceEngine {
    private final ExtensionContext extensions;
    private final OrtModel.Provider provider;
    private final int threads;

    OnnxInferenceEngine(ExtensionContext extensions, OrtModel.Provider provider, int threads) {
        this.extensions = extensions;
        this.provider = provider;
        this.threads = threads;
    }

    /** {@code anneal.inference-engine.onnx { provider = cpu | cuda, threads = 0 }} (reference.conf). */
    static final class Factory implements ExtensionFactory<InferenceEngine> {
        @Override
        public Class<InferenceEngine> extensionPoint() {
            return InferenceEngine.class;
        }

        @Override
        public String type() {
            return "onnx";
        }

        @Override
        public String description() {
            return "ONNX Runtime over graphs exported by anneal export onnx (CPU provider; CUDA where asked and present)";
        }

        @Override
        public InferenceEngine create(ConfigView config, ExtensionContext context) {
            return new OnnxInferenceEngine(context, provider(config.getString("provider"), "provider"),
                    config.getInt("threads"));
        }
    }

    static OrtModel.Provider provider(String value, String where) {
        return switch (value) {
            case "cpu" -> OrtModel.Provider.CPU;
            case "cuda" -> OrtModel.Provider.CUDA;
            default -> throw new InputException(where + ": expected cpu or cuda, found '" + value + "'");
        };
    }

    @Override
    public ScoringModel open(Path directory, PrintStream log) {
        Opened opened = openModel(extensions, directory, provider, threads, log);
        return new ScoringModel() {
            @Override
            public int vocabSize() {
                return opened.model().vocabSize();
            }

            @Override
            public float[] logits(long[][] ids) {
                try (OrtModel.Step step = opened.model().prefill(ids)) {
                    return step.logits;
                }
            }

            @Override
            public void close() {
                opened.close();
            }
        };
    }

    /** An opened model and the temporary export folder to remove with it (null when none). */
    record Opened(OrtModel model, Path temporary) implements AutoCloseable {
        @Override
        public void close() {
            model.close();
            if (temporary != null) {
                try {
                    OnnxExport.deleteTree(temporary);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        }
    }

    /** Opens an exported folder as it is, or exports a checkpoint folder into a temporary one first. */
    static Opened openModel(ExtensionContext extensions, Path directory, OrtModel.Provider provider, int threads,
            PrintStream log) {
        if (!Files.isDirectory(directory)) {
            throw new InputException(directory + ": folder not found (expected a Falcon-H1 checkpoint folder or a folder"
                    + " written by anneal export onnx)");
        }
        if (OrtModel.isExportedFolder(directory)) {
            return new Opened(OrtModel.open(ExportedFolder.read(directory), provider, threads, log), null);
        }
        Path temporary;
        try {
            temporary = Files.createTempDirectory("anneal-onnx");
            ExportedFolder folder;
            try {
                folder = OnnxExport.export(extensions, directory, temporary, new PrintStream(PrintStream.nullOutputStream()));
            } catch (RuntimeException | IOException e) {
                OnnxExport.deleteTree(temporary);
                throw e;
            }
            log.println("onnx: exported " + directory + " for this run (anneal export onnx writes it once)");
            return new Opened(OrtModel.open(folder, provider, threads, log), temporary);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
