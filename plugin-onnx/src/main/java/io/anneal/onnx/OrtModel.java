package io.anneal.onnx;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import io.anneal.api.InputException;
import java.io.PrintStream;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An exported folder ({@link OnnxExport}) opened in ONNX Runtime: the prefill and decode sessions
 * and the caches carried between them.
 */
final class OrtModel implements AutoCloseable {
    private final OrtEnvironment env;
    private final OrtSession prefill;
    private final OrtSession decode;
    private final int layers;
    private final int vocab;
    private final ExportedFolder folder;
    private Provider running = Provider.CPU;

    /** Which execution provider runs the graphs. */
    enum Provider {
        CPU, CUDA
    }

    private OrtModel(OrtEnvironment env, OrtSession prefill, OrtSession decode, ExportedFolder folder) {
        this.env = env;
        this.prefill = prefill;
        this.decode = decode;
        this.folder = folder;
        this.layers = folder.spec().layers();
        this.vocab = folder.spec().vocab();
    }

    ExportedFolder folder() {
        return folder;
    }

    /** The execution provider the graphs run on: CUDA only where it was asked for and came on. */
    Provider provider() {
        return running;
    }

    /** {@code onnx-runtime <version> <cpu|cuda>}: what computes this model's outputs. */
    String engine() {
        return "onnx-runtime " + env.getVersion() + " " + running.name().toLowerCase(java.util.Locale.ROOT);
    }

    int vocabSize() {
        return vocab;
    }

    /**
     * Opens {@code folder}'s graphs. CPU is the default everywhere; CUDA is used where it was asked
     * for and this ONNX Runtime build has it, otherwise one line says why not and the CPU runs.
     */
    static OrtModel open(ExportedFolder folder, Provider provider, int threads, PrintStream log) {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        try {
            if (threads > 0) {
                options.setIntraOpNumThreads(threads);
            }
            options.setInterOpNumThreads(1);
            ProviderChoice choice = providerLine(options, provider);
            log.println(choice.line());
            OrtSession prefill = session(env, folder.prefill(), options);
            OrtSession decode = session(env, folder.decode(), options);
            OrtModel model = new OrtModel(env, prefill, decode, folder);
            model.running = choice.running();
            model.checkInputs();
            return model;
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime: " + e.getMessage(), e);
        }
    }

    /** The provider the graphs will run on, and the line that says so (and why, when CUDA was asked for and is not on). */
    private record ProviderChoice(Provider running, String line) {
    }

    private static ProviderChoice providerLine(OrtSession.SessionOptions options, Provider provider) throws OrtException {
        String version = OrtEnvironment.getEnvironment().getVersion();
        if (provider == Provider.CPU) {
            return new ProviderChoice(Provider.CPU, "onnx: ONNX Runtime " + version + ", CPU execution provider");
        }
        if (!OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
            return new ProviderChoice(Provider.CPU, "onnx: CUDA execution provider not on: this ONNX Runtime " + version + " build has no CUDA provider"
                    + " (the plugin ships the CPU build; put onnxruntime_gpu-" + version + ".jar in plugins/onnx/ instead"
                    + " of onnxruntime-" + version + ".jar, README, ONNX); running on the CPU");
        }
        try {
            options.addCUDA(0);
            return new ProviderChoice(Provider.CUDA, "onnx: ONNX Runtime " + version
                    + ", CUDA execution provider (device 0), CPU for the rest");
        } catch (OrtException e) {
            return new ProviderChoice(Provider.CPU, "onnx: CUDA execution provider not on: " + e.getMessage().strip().replace('\n', ' ')
                    + " (CUDA and cuDNN libraries of the versions this ONNX Runtime needs must be on the library path);"
                    + " running on the CPU");
        }
    }

    private static OrtSession session(OrtEnvironment env, Path file, OrtSession.SessionOptions options) {
        try {
            return env.createSession(file.toString(), options);
        } catch (OrtException e) {
            throw new InputException(file + ": not a model ONNX Runtime can load: " + e.getMessage().strip());
        }
    }

    /** The graphs must take and give what generation passes: input_ids, and past.L.KIND for decode. */
    private void checkInputs() throws OrtException {
        expectInput(prefill, folder.prefill(), FalconH1Graphs.INPUT_IDS, 2);
        expectOutput(prefill, folder.prefill(), FalconH1Graphs.LOGITS);
        expectInput(decode, folder.decode(), FalconH1Graphs.INPUT_IDS, 2);
        expectOutput(decode, folder.decode(), FalconH1Graphs.LOGITS);
        for (int l = 0; l < layers; l++) {
            for (String kind : FalconH1Graphs.CACHE_KINDS) {
                expectOutput(prefill, folder.prefill(), FalconH1Graphs.present(l, kind));
                expectOutput(decode, folder.decode(), FalconH1Graphs.present(l, kind));
                expectInput(decode, folder.decode(), FalconH1Graphs.past(l, kind), -1);
            }
        }
    }

    private static void expectInput(OrtSession s, Path file, String name, int rank) throws OrtException {
        NodeInfo info = s.getInputInfo().get(name);
        if (info == null) {
            throw new InputException(file + ": the graph has no input '" + name + "' (inputs: " + s.getInputNames()
                    + "); expected a graph written by anneal export onnx for this config.json");
        }
        if (rank > 0 && info.getInfo() instanceof TensorInfo t && t.getShape().length != rank) {
            throw new InputException(file + ": input '" + name + "' has rank " + t.getShape().length + ", expected " + rank);
        }
    }

    private static void expectOutput(OrtSession s, Path file, String name) {
        if (!s.getOutputNames().contains(name)) {
            throw new InputException(file + ": the graph has no output '" + name + "' (outputs: " + s.getOutputNames()
                    + "); expected a graph written by anneal export onnx for this config.json");
        }
    }

    /** One step's logits [batch, tokens, vocab] and the caches it left. */
    static final class Step implements AutoCloseable {
        final float[] logits;
        final int batch;
        final int tokens;
        private final OrtSession.Result result;
        final Map<String, OnnxTensor> caches = new HashMap<>();

        Step(OrtSession.Result result, int batch, int tokens, int layers) {
            this.result = result;
            this.batch = batch;
            this.tokens = tokens;
            OnnxTensor l = (OnnxTensor) result.get(FalconH1Graphs.LOGITS).orElseThrow();
            FloatBuffer fb = l.getFloatBuffer();
            this.logits = new float[fb.remaining()];
            fb.get(logits);
            for (int layer = 0; layer < layers; layer++) {
                for (String kind : FalconH1Graphs.CACHE_KINDS) {
                    OnnxValue v = result.get(FalconH1Graphs.present(layer, kind)).orElseThrow();
                    caches.put(FalconH1Graphs.past(layer, kind), (OnnxTensor) v);
                }
            }
        }

        /** The logits of row {@code b} at the last position. */
        float[] lastLogits(int b, int vocab) {
            float[] out = new float[vocab];
            System.arraycopy(logits, ((b * tokens) + tokens - 1) * vocab, out, 0, vocab);
            return out;
        }

        @Override
        public void close() {
            result.close();
        }
    }

    /** The prefill graph over rows of equal length. */
    Step prefill(long[][] ids) {
        int batch = ids.length;
        int length = ids[0].length;
        long[] flat = new long[batch * length];
        for (int b = 0; b < batch; b++) {
            System.arraycopy(ids[b], 0, flat, b * length, length);
        }
        try (OnnxTensor input = OnnxTensor.createTensor(env, LongBuffer.wrap(flat), new long[] {batch, length})) {
            return new Step(prefill.run(Map.of(FalconH1Graphs.INPUT_IDS, input)), batch, length, layers);
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime prefill: " + e.getMessage(), e);
        }
    }

    /** The decode graph: one token per row after {@code previous}'s caches. */
    Step decode(long[] tokens, Step previous) {
        Map<String, OnnxTensor> inputs = new LinkedHashMap<>(previous.caches);
        try (OnnxTensor input = OnnxTensor.createTensor(env, LongBuffer.wrap(tokens), new long[] {tokens.length, 1})) {
            inputs.put(FalconH1Graphs.INPUT_IDS, input);
            return new Step(decode.run(inputs), tokens.length, 1, layers);
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime decode: " + e.getMessage(), e);
        }
    }

    static List<String> cacheNames(int layers) {
        List<String> names = new java.util.ArrayList<>();
        for (int l = 0; l < layers; l++) {
            for (String kind : FalconH1Graphs.CACHE_KINDS) {
                names.add(FalconH1Graphs.past(l, kind));
            }
        }
        return names;
    }

    @Override
    public void close() {
        try {
            prefill.close();
            decode.close();
        } catch (OrtException e) {
            throw new IllegalStateException(e);
        }
    }

    static boolean isExportedFolder(Path dir) {
        return Files.isRegularFile(dir.resolve(ExportedFolder.PREFILL)) || Files.isRegularFile(dir.resolve(ExportedFolder.MANIFEST));
    }
}
