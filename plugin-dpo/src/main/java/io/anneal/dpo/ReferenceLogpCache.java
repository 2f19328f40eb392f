package io.anneal.dpo;

import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.PreferenceRows;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.optim.NamedParameter;

import ai.djl.ndarray.types.DataType;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The reference model's summed response log-probs per preference pair, computed once and kept on
 * disk (issue 13 item 8: the reference need not sit in GPU memory while training; TRL's
 * {@code precompute_ref_log_probs} does the same in memory).
 *
 * <p><b>Keys.</b> A pair is keyed by its content: SHA-256 (first 16 bytes) of the token ids and
 * labels of its chosen document, then of its rejected document, as the data block tokenised and
 * masked them. That key carries the data and the tokenizer (another tokenizer or template gives
 * other ids or masks, another record other tokens). The file is keyed by what computed the values:
 * the engine (e.g. {@code djl PyTorch 2.7.1} for the training engine's model, {@code onnx-runtime
 * 1.29.0 cpu} for a {@link io.anneal.api.train.SequenceScorer}) and the SHA-256 of the model as that
 * engine reads it (for DJL its parameters: names, shapes, float32 values in order; for ONNX Runtime
 * the exported graph and weight files). Another engine or another reference finds no file of its
 * own, and the stale one is deleted: values of one engine are never read as another's.
 *
 * <p><b>File</b> {@code <stage dir>/reference-logps/<first 16 hex digits of SHA-256(engine, 0, model
 * hash)>.bin}, big-endian: the line {@code anneal reference log-probs 2\n}; the engine as Java's
 * modified UTF-8 (a 2-byte length, then the bytes); the model's 32-byte SHA-256; an int64 count;
 * then per pair its 16-byte key, the chosen and the rejected sum as float64. A file whose engine or
 * hash differs from what the run uses is not read (and is rewritten). It is written to a temporary
 * file and renamed, so a stopped run never leaves half a file; it lives in the stage folder, so
 * {@code --resume} finds it. Each write keeps only the pairs the current data produced: entries of
 * changed or removed records go.
 */
final class ReferenceLogpCache {
    static final String FOLDER = "reference-logps";
    private static final byte[] MAGIC = "anneal reference log-probs 2\n".getBytes(StandardCharsets.US_ASCII);
    private static final int KEY_BYTES = 16;

    /** A pair's content key. */
    record PairKey(byte[] bytes) {
        @Override
        public boolean equals(Object o) {
            return o instanceof PairKey k && Arrays.equals(bytes, k.bytes);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(bytes);
        }
    }

    private final Path file;
    private final String engine;
    private final byte[] referenceHash;
    private final Map<PairKey, double[]> sums = new HashMap<>();
    private boolean dirty;

    private ReferenceLogpCache(Path file, String engine, byte[] referenceHash) {
        this.file = file;
        this.engine = engine;
        this.referenceHash = referenceHash;
    }

    /** The cache of the training engine's {@code reference} model in {@code stageDirectory}. */
    static ReferenceLogpCache open(Path stageDirectory, CausalLanguageModel reference, java.io.PrintStream out) {
        return open(stageDirectory, djlEngine(reference), referenceHash(reference), out);
    }

    /**
     * {@code djl <engine> <version> (<numerics>)}: the engine the training model runs in (for PyTorch
     * the version of the libtorch it loaded, 2.11.0+cu130 on the GPU machine, not the one DJL's JNI
     * was built for) and how the model computes there ({@link CausalLanguageModel#numerics}: log-probs
     * of the fused bfloat16 path are never read by a float32 reference-path run, nor the other way).
     */
    static String djlEngine(CausalLanguageModel model) {
        ai.djl.engine.Engine engine = model.parameters().get(0).parameter().getArray().getManager().getEngine();
        String version = "PyTorch".equals(engine.getEngineName())
                ? io.anneal.toolkit.device.Libtorch.current().version() : engine.getVersion();
        String numerics = model.numerics();
        return "djl " + engine.getEngineName() + " " + version + (numerics.isEmpty() ? "" : " (" + numerics + ")");
    }

    /**
     * The cache of the values {@code engine} computes with the model of SHA-256 {@code modelHash}, in
     * {@code stageDirectory}: the entries already on disk for them; files of other engines or models
     * are deleted (they can never be valid again here).
     */
    static ReferenceLogpCache open(Path stageDirectory, String engine, byte[] modelHash, java.io.PrintStream out) {
        MessageDigest name = sha256();
        name.update(engine.getBytes(StandardCharsets.UTF_8));
        name.update((byte) 0);
        name.update(modelHash);
        Path folder = stageDirectory.resolve(FOLDER);
        ReferenceLogpCache cache = new ReferenceLogpCache(folder.resolve(HexFormat.of().formatHex(name.digest(), 0, 8) + ".bin"),
                engine, modelHash.clone());
        try {
            Files.createDirectories(folder);
            try (Stream<Path> files = Files.list(folder)) {
                for (Path other : files.filter(f -> !f.equals(cache.file)).toList()) {
                    Files.delete(other);
                    out.println("dpo: deleted " + other + ": reference log-probs of another reference model or engine");
                }
            }
            if (Files.isRegularFile(cache.file)) {
                cache.read();
            }
        } catch (IOException e) {
            throw new UncheckedIOException("dpo: the reference log-prob cache " + folder + " cannot be used: " + e.getMessage(), e);
        }
        return cache;
    }

    Path file() {
        return file;
    }

    String engine() {
        return engine;
    }

    int size() {
        return sums.size();
    }

    /** The chosen [0] and rejected [1] sums of a pair, or null. */
    double[] get(PairKey key) {
        return sums.get(key);
    }

    void put(PairKey key, double chosen, double rejected) {
        sums.put(key, new double[] {chosen, rejected});
        dirty = true;
    }

    /** Keeps only {@code used}: entries of records the data no longer has go at the next write. */
    void retainOnly(java.util.Set<PairKey> used) {
        if (sums.keySet().retainAll(used)) {
            dirty = true;
        }
    }

    /** Writes the file when something changed (atomically: a temporary file renamed over it). */
    void writeIfChanged() {
        if (!dirty) {
            return;
        }
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            try (DataOutputStream o = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp)))) {
                o.write(MAGIC);
                o.writeUTF(engine);
                o.write(referenceHash);
                o.writeLong(sums.size());
                for (Map.Entry<PairKey, double[]> e : sums.entrySet()) {
                    o.write(e.getKey().bytes());
                    o.writeDouble(e.getValue()[0]);
                    o.writeDouble(e.getValue()[1]);
                }
            }
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            dirty = false;
        } catch (IOException e) {
            throw new UncheckedIOException("dpo: cannot write the reference log-prob cache " + file + ": " + e.getMessage(), e);
        }
    }

    private void read() throws IOException {
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(Files.newInputStream(file)))) {
            byte[] magic = in.readNBytes(MAGIC.length);
            if (!Arrays.equals(magic, MAGIC)) {
                return; // another format: rebuilt and overwritten
            }
            String writtenBy = in.readUTF();
            byte[] hash = in.readNBytes(referenceHash.length);
            if (!writtenBy.equals(engine) || !Arrays.equals(hash, referenceHash)) {
                return; // another engine or model under a colliding name: rebuilt and overwritten
            }
            long count = in.readLong();
            for (long i = 0; i < count; i++) {
                byte[] key = in.readNBytes(KEY_BYTES);
                if (key.length < KEY_BYTES) {
                    throw new EOFException();
                }
                sums.put(new PairKey(key), new double[] {in.readDouble(), in.readDouble()});
            }
        } catch (EOFException e) {
            sums.clear(); // a truncated file: recompute
            dirty = true;
        }
    }

    /** SHA-256 of the reference's parameters: names, shapes and float32 values, in order. */
    static byte[] referenceHash(CausalLanguageModel reference) {
        MessageDigest digest = sha256();
        for (NamedParameter p : reference.parameters()) {
            digest.update(p.name().getBytes(StandardCharsets.UTF_8));
            digest.update(p.parameter().getArray().getShape().toString().getBytes(StandardCharsets.UTF_8));
            var values = p.parameter().getArray();
            digest.update(values.getDataType() == DataType.FLOAT32 ? values.toByteArray()
                    : values.toType(DataType.FLOAT32, false).toByteArray());
        }
        return digest.digest();
    }

    /**
     * The key of each pair of {@code batch}, in the numbering of {@link PreferenceRows#of} (row by
     * row, pair {@code k} of a row is its documents {@code 2k} and {@code 2k+1}).
     */
    static List<PairKey> keys(PackedBatch batch, PreferenceRows.Layout layout) {
        PairKey[] keys = new PairKey[layout.pairs()];
        int base = 0;
        for (int r = 0; r < batch.rows(); r++) {
            int pairsInRow = 0;
            for (int t = 0; t < batch.length(); t++) {
                int i = r * batch.length() + t;
                if (layout.pairOfToken()[i] >= 0) {
                    pairsInRow = Math.max(pairsInRow, layout.pairOfToken()[i] - base + 1);
                }
            }
            Map<Integer, MessageDigest> documents = new LinkedHashMap<>();
            for (int t = 0; t < batch.length(); t++) {
                int i = r * batch.length() + t;
                int doc = batch.documentIds()[i];
                if (doc >= 0 && doc < 2 * pairsInRow) {
                    MessageDigest d = documents.computeIfAbsent(doc, k -> sha256());
                    d.update(intBytes(batch.inputIds()[i]));
                    d.update(intBytes(batch.labels()[i]));
                }
            }
            for (int k = 0; k < pairsInRow; k++) {
                MessageDigest pair = sha256();
                pair.update(digestOf(documents, PreferenceRows.chosenDocument(k)));
                pair.update(digestOf(documents, PreferenceRows.rejectedDocument(k)));
                keys[base + k] = new PairKey(Arrays.copyOf(pair.digest(), KEY_BYTES));
            }
            base += pairsInRow;
        }
        return List.of(keys);
    }

    private static byte[] digestOf(Map<Integer, MessageDigest> documents, int doc) {
        MessageDigest d = documents.get(doc);
        return d == null ? new byte[0] : d.digest();
    }

    private static byte[] intBytes(int v) {
        return new byte[] {(byte) (v >>> 24), (byte) (v >>> 16), (byte) (v >>> 8), (byte) v};
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every Java platform", e);
        }
    }
}
