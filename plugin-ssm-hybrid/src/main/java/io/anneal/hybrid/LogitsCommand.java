package io.anneal.hybrid;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigException;
import io.anneal.api.model.InferenceEngine;
import io.anneal.api.model.ModelInput;
import io.anneal.api.model.ModelOptions;
import io.anneal.toolkit.device.DeviceChoice;
import io.anneal.hybrid.model.FalconH1Architecture;
import io.anneal.hybrid.model.FalconH1Checkpoints;
import io.anneal.hybrid.model.FalconH1Model;
import io.anneal.hybrid.model.FusedKernels;
import io.anneal.hybrid.model.FusedLayerOptions;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code anneal logits --checkpoint DIR --input FILE.json --output FILE.f32 [--device cpu|gpu|auto]
 * [--kernels auto|fused|reference]}:
 * float32 logits of a Falcon-H1 checkpoint for {@code {"input_ids": [[...], ...]}}, written as raw
 * little-endian float32 in [batch, sequence, vocab] order.
 */
public final class LogitsCommand implements CliCommand {
    static final String USAGE = "usage: anneal logits --checkpoint DIR --input FILE.json --output FILE.f32 [--device cpu|gpu|auto]"
            + " [--kernels auto|fused|reference] [--save DIR] [--engine djl|onnx]";

    @Override
    public String name() {
        return "logits";
    }

    @Override
    public String summary() {
        return "float32 logits of a Falcon-H1 checkpoint for token ids (raw little-endian [batch, seq, vocab])";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws IOException {
        CommandArguments a = CommandArguments.parse("anneal logits", USAGE, args, "checkpoint", "input", "output",
                "device", "kernels", "save", "engine");
        if (a.help()) {
            context.out().println(USAGE);
            context.out().println("  --checkpoint DIR  Hugging Face Falcon-H1 folder (config.json, model.safetensors)");
            context.out().println("  --input FILE      JSON {\"input_ids\": [[...], ...]}, rows of equal length");
            context.out().println("  --output FILE     raw little-endian float32 logits [batch, seq, vocab]");
            context.out().println("  --device          cpu (default), gpu, or auto (the GPU when libtorch sees one; with --engine onnx,");
            context.out().println("                    gpu and auto ask for ONNX Runtime's CUDA provider)");
            context.out().println("  --kernels         with --engine djl: auto (default: Anneal's fused operators on a GPU when they");
            context.out().println("                    are built there, else the reference layers), fused (they or exit 2), reference");
            context.out().println("  --save DIR        also write the loaded model as Anneal saves checkpoints (to check that");
            context.out().println("                    transformers loads Anneal's folders: tools/fixtures/check_anneal_checkpoint.py)");
            context.out().println("  --engine          djl (default: DJL's PyTorch engine) or onnx (ONNX Runtime, from the onnx");
            context.out().println("                    plugin; DIR may also be a folder written by anneal export onnx)");
            return 0;
        }
        a.noPositionals();
        Path wd = context.workingDirectory();
        Path checkpoint = wd.resolve(a.required("checkpoint"));
        Path input = wd.resolve(a.required("input"));
        Path output = wd.resolve(a.required("output"));
        String engine = a.choice("engine", "djl", "djl", "onnx");
        if (engine.equals("onnx")) {
            if (a.has("save")) {
                throw new InputException("anneal logits: --save belongs to --engine djl (it writes the DJL model)\n" + USAGE);
            }
            if (a.has("kernels")) {
                throw new InputException("anneal logits: --kernels belongs to --engine djl (ONNX Runtime runs its own"
                        + " kernels)\n" + USAGE);
            }
            // ONNX Runtime's execution provider: cpu, or cuda for gpu and auto (the engine says in one line
            // why CUDA is not on where it cannot be, and runs on the CPU)
            String provider = a.choice("device", "cpu", "cpu", "gpu", "auto").equals("cpu") ? "cpu" : "cuda";
            return logitsThroughEngine(context, checkpoint, input, output, provider);
        }
        DeviceChoice choice = DeviceChoice.choose(a.choice("device", "cpu", "cpu", "gpu", "auto"), "--device");
        context.out().println(choice.line());
        Device device = choice.device();
        FusedKernels.Mode mode = FusedKernels.Mode.valueOf(
                a.choice("kernels", "auto", "auto", "fused", "reference").toUpperCase(Locale.ROOT));
        long[][] ids = readInputIds(input);
        try (FalconH1Model model = FalconH1Architecture.loadCheckpoint(checkpoint,
                new ModelOptions(device, DataType.FLOAT32, 0));
                NDManager manager = NDManager.newBaseManager(device)) {
            checkVocabulary(ids, model.vocabSize(), input);
            // as model.kernels does for a pipeline (the library loads once DJL's engine has started); no
            // backward here, so the SSD scan's recomputation setting does not matter
            context.out().println(FalconH1Architecture.useTorchScriptLayers(model, mode, device, "--kernels", FusedLayerOptions.DEFAULT));
            NDArray logits = logits(model, manager, ids);
            writeFloat32(output, logits);
            context.out().println("wrote " + output + ": float32 " + logits.getShape());
            if (a.has("save")) {
                Path copy = wd.resolve(a.required("save"));
                model.save(copy);
                context.out().println("wrote " + copy + " (config.json, model.safetensors)");
            }
        }
        return 0;
    }

    /**
     * {@code --engine onnx}: the {@code onnx} {@link InferenceEngine} of whichever plugin offers it,
     * built by type name (this plugin never names the onnx plugin's classes).
     */
    private static int logitsThroughEngine(CommandContext context, Path checkpoint, Path input, Path output,
            String provider) throws IOException {
        InferenceEngine engine;
        try {
            engine = context.extensions().build(InferenceEngine.class, "onnx", Map.of("provider", provider), "--engine onnx");
        } catch (ConfigException e) {
            throw new InputException("--engine onnx: no plugin offers the onnx inference engine (" + e.getMessage().strip()
                    + "); unpack anneal-plugin-onnx-<version>.tar.gz into the Anneal folder (README, ONNX)", e);
        }
        long[][] ids = readInputIds(input);
        try (InferenceEngine.ScoringModel model = engine.open(checkpoint, context.out())) {
            checkVocabulary(ids, model.vocabSize(), input);
            float[] logits = model.logits(ids);
            writeFloat32(output, logits);
            context.out().println("wrote " + output + ": float32 (" + ids.length + ", " + ids[0].length + ", "
                    + model.vocabSize() + ") [onnx]");
        }
        return 0;
    }

    /** Logits of {@code ids} as a float32 array [batch, seq, vocab]. */
    public static NDArray logits(FalconH1Model model, NDManager manager, long[][] ids) {
        int batch = ids.length;
        int length = ids[0].length;
        long[] flat = new long[batch * length];
        for (int b = 0; b < batch; b++) {
            System.arraycopy(ids[b], 0, flat, b * length, length);
        }
        NDArray tokens = manager.create(flat, new Shape(batch, length));
        return model.forward(manager, ModelInput.unpacked(tokens), false).toType(DataType.FLOAT32, false);
    }

    /** Reads {@code {"input_ids": [[...], ...]}}: at least one row, rows of equal non-zero length. */
    public static long[][] readInputIds(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new InputException(file + ": input file not found");
        }
        Map<?, ?> json;
        try {
            json = FalconH1Checkpoints.JSON.readValue(file.toFile(), Map.class);
        } catch (IOException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
        if (!(json.get("input_ids") instanceof List<?> rows) || rows.isEmpty()) {
            throw new InputException(file + ": expected {\"input_ids\": [[...], ...]} with at least one row");
        }
        long[][] ids = new long[rows.size()][];
        for (int r = 0; r < rows.size(); r++) {
            if (!(rows.get(r) instanceof List<?> row) || row.isEmpty()) {
                throw new InputException(file + ": input_ids[" + r + "] must be a non-empty list of token ids");
            }
            ids[r] = new long[row.size()];
            for (int i = 0; i < row.size(); i++) {
                if (!(row.get(i) instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue())) {
                    throw new InputException(file + ": input_ids[" + r + "][" + i + "] must be an integer, found "
                            + row.get(i));
                }
                ids[r][i] = n.longValue();
            }
            if (ids[r].length != ids[0].length) {
                throw new InputException(file + ": input_ids rows must have equal length; row 0 has " + ids[0].length
                        + ", row " + r + " has " + ids[r].length);
            }
        }
        return ids;
    }

    private static void checkVocabulary(long[][] ids, int vocab, Path file) {
        for (int r = 0; r < ids.length; r++) {
            for (int i = 0; i < ids[r].length; i++) {
                if (ids[r][i] < 0 || ids[r][i] >= vocab) {
                    throw new InputException(file + ": input_ids[" + r + "][" + i + "] = " + ids[r][i]
                            + " is outside the vocabulary [0, " + vocab + ")");
                }
            }
        }
    }

    /** Raw little-endian float32, in the array's row-major order. */
    public static void writeFloat32(Path file, NDArray array) throws IOException {
        writeFloat32(file, array.toType(DataType.FLOAT32, false).toFloatArray());
    }

    /** Raw little-endian float32. */
    public static void writeFloat32(Path file, float[] values) throws IOException {
        ByteBuffer bytes = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asFloatBuffer().put(values);
        Path parent = file.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        try (OutputStream out = Files.newOutputStream(file)) {
            out.write(bytes.array());
        }
    }
}
