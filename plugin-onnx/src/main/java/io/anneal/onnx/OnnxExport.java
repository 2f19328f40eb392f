package io.anneal.onnx;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import io.anneal.api.InputException;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.optim.NamedParameter;
import io.anneal.onnx.graph.OnnxGraph;
import io.anneal.onnx.graph.WeightFile;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;

/** Writes an {@link ExportedFolder} from a Hugging Face checkpoint folder. */
final class OnnxExport {
    /** Tokenizer and generation files copied beside the graphs, so the folder alone can chat. */
    static final String[] TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
        "special_tokens_map.json", "generation_config.json", "config.json"};

    private OnnxExport() {
    }

    /**
     * Loads {@code checkpoint} through the {@code falcon-h1} model architecture (whichever plugin
     * offers it: the checkpoint reader, config defaults and muP multipliers are its own) and
     * writes the graphs into {@code out}, which is created or whose export files are replaced.
     */
    static ExportedFolder export(ExtensionContext extensions, Path checkpoint, Path out, PrintStream log) throws IOException {
        if (!Files.isDirectory(checkpoint)) {
            throw new InputException(checkpoint + ": checkpoint folder not found");
        }
        ModelArchitecture architecture = extensions.build(ModelArchitecture.class, "falcon-h1",
                Map.of("layers", "ndarray", "kernels", "reference"), "anneal export onnx");
        try (CausalLanguageModel model = architecture.load(checkpoint, ModelOptions.cpu())) {
            return write(model, checkpoint, out, log);
        }
    }

    static ExportedFolder write(CausalLanguageModel model, Path checkpoint, Path out, PrintStream log) throws IOException {
        Map<String, Object> config = model.configJson();
        FalconH1Spec.of(config, checkpoint.resolve("config.json").toString()); // another architecture: refused before any work
        Map<String, NDArray> arrays = new LinkedHashMap<>();
        for (NamedParameter p : model.parameters()) {
            arrays.put(p.name(), p.parameter().getArray());
        }
        FalconH1Graphs.Tensors tensors = new FalconH1Graphs.Tensors() {
            @Override
            public float[] values(String name) {
                NDArray a = arrays.get(name);
                if (a == null) {
                    throw new InputException(checkpoint + ": tensor '" + name + "' is missing");
                }
                return a.toType(DataType.FLOAT32, false).toFloatArray();
            }

            @Override
            public long[] shape(String name) {
                NDArray a = arrays.get(name);
                return a == null ? null : a.getShape().getShape();
            }
        };
        return writeFolder(config, tensors, checkpoint, out, log);
    }

    /** The folder for a model given as config.json fields and tensors; {@code checkpoint}'s tokenizer files are copied. */
    static ExportedFolder writeFolder(Map<String, Object> config, FalconH1Graphs.Tensors tensors, Path checkpoint, Path out,
            PrintStream log) throws IOException {
        FalconH1Spec spec = FalconH1Spec.of(config, checkpoint.resolve("config.json").toString());
        Files.createDirectories(out);
        Path tmp = Files.createTempDirectory(out, ".export");
        try {
            FalconH1Graphs graphs;
            try (WeightFile weights = new WeightFile(tmp.resolve(ExportedFolder.WEIGHTS))) {
                graphs = FalconH1Graphs.prepare(spec, tensors, weights);
            }
            String version = String.valueOf(OnnxExport.class.getModule().getDescriptor() == null ? "dev"
                    : OnnxExport.class.getModule().getDescriptor().rawVersion().orElse("dev"));
            Map<String, String> metadata = Map.of("source", checkpoint.toAbsolutePath().toString());
            Files.write(tmp.resolve(ExportedFolder.PREFILL), graphs.prefill(version, metadata));
            Files.write(tmp.resolve(ExportedFolder.DECODE), graphs.decode(version, metadata));
            Map<String, Object> manifest = new LinkedHashMap<>();
            manifest.put("format", "anneal-onnx/1");
            manifest.put("opset", OnnxGraph.OPSET);
            manifest.put("ir_version", OnnxGraph.IR_VERSION);
            manifest.put("graphs", Map.of("prefill", ExportedFolder.PREFILL, "decode", ExportedFolder.DECODE,
                    "weights", ExportedFolder.WEIGHTS));
            manifest.put("packed_rows", false);
            manifest.put("config", config);
            ExportedFolder.JSON.writeValue(tmp.resolve(ExportedFolder.MANIFEST).toFile(), manifest);
            for (String name : TOKENIZER_FILES) {
                Path from = checkpoint.resolve(name);
                if (Files.isRegularFile(from)) {
                    Files.copy(from, tmp.resolve(name), StandardCopyOption.REPLACE_EXISTING);
                }
            }
            try (Stream<Path> files = Files.list(tmp)) {
                for (Path f : (Iterable<Path>) files::iterator) {
                    Files.move(f, out.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
                }
            }
        } finally {
            deleteTree(tmp);
        }
        long bytes = Files.size(out.resolve(ExportedFolder.WEIGHTS));
        log.println("wrote " + out + ": " + ExportedFolder.PREFILL + ", " + ExportedFolder.DECODE + " (opset "
                + OnnxGraph.OPSET + "), " + ExportedFolder.WEIGHTS + " (" + bytes + " bytes, " + spec.layers() + " layers)");
        return ExportedFolder.read(out);
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) walk.sorted(Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(p);
            }
        }
    }
}
