package io.anneal.dpo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.SourceProgress;
import io.anneal.api.data.TokenBatchStream;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.train.SequenceScorer;
import io.anneal.api.train.ObjectiveSetup;
import io.anneal.api.train.ObjectiveSums;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 13 item 8: the reference log-probs computed once per pair and kept on disk give the same
 * losses and metrics as the frozen reference run on the fly; the file is reused (a resume), deleted
 * for another reference, and follows changed data.
 */
class ReferenceLogpCacheTest {
    static final int VOCAB = 7;
    @TempDir
    Path stage;
    final ByteArrayOutputStream console = new ByteArrayOutputStream();
    int referenceLoads;
    /** The folder the reference loads from, as the trainer reports it (empty: a random initialisation). */
    Optional<Path> initialFolder = Optional.of(Path.of("reference-checkpoint"));

    /** DpoObjectiveTest's row with every token id (and label) shifted by {@code shift} mod VOCAB: other pairs. */
    static PackedBatch batch(int shift) {
        PackedBatch b = DpoObjectiveTest.batch();
        int[] ids = b.inputIds().clone();
        int[] labels = b.labels().clone();
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (ids[i] + shift) % VOCAB;
            labels[i] = labels[i] == PackedBatch.IGNORE ? labels[i] : (labels[i] + shift) % VOCAB;
        }
        return new PackedBatch(1, b.length(), ids, labels, b.positionIds(), b.documentIds());
    }

    /** The batches in order, again and again; one epoch is one pass over the list. */
    static TokenBatchStream stream(List<PackedBatch> batches) {
        return new TokenBatchStream() {
            int taken;

            @Override
            public int sequenceLength() {
                return batches.get(0).length();
            }

            @Override
            public PackedBatch next(int rows) {
                return batches.get(taken++ % batches.size());
            }

            @Override
            public List<SourceProgress> progress() {
                return List.of(new SourceProgress("pairs", 0, (double) taken / batches.size()));
            }

            @Override
            public byte[] saveState() {
                return new byte[0];
            }

            @Override
            public void restoreState(byte[] state) {
            }

            @Override
            public void close() {
            }
        };
    }

    ObjectiveSetup setup(long referenceSeed, List<PackedBatch> training, List<PackedBatch> held) {
        return new ObjectiveSetup() {
            @Override
            public CausalLanguageModel loadInitialModel() {
                referenceLoads++;
                return new BigramModel(VOCAB, referenceSeed);
            }

            @Override
            public Optional<Path> initialModelFolder() {
                return initialFolder;
            }

            @Override
            public Path stageDirectory() {
                return stage;
            }

            @Override
            public String configPath() {
                return "stages[1].objective";
            }

            @Override
            public PrintStream out() {
                return new PrintStream(console, true, StandardCharsets.UTF_8);
            }

            @Override
            public Optional<TokenBatchStream> openTrainingData() {
                return Optional.of(stream(training));
            }

            @Override
            public Optional<TokenBatchStream> openEvaluationData() {
                return Optional.of(stream(held));
            }

            @Override
            public long evaluationMicroBatches() {
                return held.size();
            }
        };
    }

    /** Loss and every metric of each batch under a policy moved away from the reference. */
    static List<Map<String, Double>> scores(DpoObjective objective, List<PackedBatch> batches) {
        List<Map<String, Double>> out = new ArrayList<>();
        try (BigramModel policy = new BigramModel(VOCAB, 1)) {
            float[] table = policy.table().toFloatArray();
            for (int i = 0; i < table.length; i++) {
                table[i] -= (float) (0.5 * Math.sin(1.7 * i)); // away from the reference, the same for every objective
            }
            policy.table().set(table);
            for (PackedBatch b : batches) {
                try (NDManager micro = policy.manager.newSubManager()) {
                    ObjectiveSums sums = objective.forward(micro, policy, b, false);
                    Map<String, Double> values = new java.util.LinkedHashMap<>();
                    values.put("loss", (double) sums.loss().getFloat());
                    sums.metrics().forEach((k, v) -> values.put(k, (double) v.getFloat()));
                    out.add(values);
                }
            }
        }
        return out;
    }

    private String console() {
        return console.toString(StandardCharsets.UTF_8);
    }

    private List<Path> cacheFiles() throws Exception {
        try (Stream<Path> files = Files.list(stage.resolve(ReferenceLogpCache.FOLDER))) {
            return files.toList();
        }
    }

    @Test
    void cachedAndOnTheFlyReferencesGiveIdenticalLossesAndMetrics() throws Exception {
        List<PackedBatch> training = List.of(batch(0), batch(1), batch(2));
        List<PackedBatch> held = List.of(batch(3));
        List<PackedBatch> scored = List.of(batch(0), batch(1), batch(2), batch(3), batch(1));
        PreferenceLoss loss = new PreferenceLoss(PreferenceLoss.Type.DPO_NORM, 5.0, 0, 0, 0);
        List<Map<String, Double>> onTheFly;
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.ON_THE_FLY)) {
            objective.open(setup(1, training, held));
            onTheFly = scores(objective, scored);
        }
        List<Map<String, Double>> cached;
        referenceLoads = 0;
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED)) {
            objective.open(setup(1, training, held));
            assertEquals(1, referenceLoads, "loaded once, before training");
            cached = scores(objective, scored);
            assertEquals(1, referenceLoads, "no reference while training: every pair was cached");
        }
        assertEquals(onTheFly, cached);
        assertTrue(onTheFly.get(0).get("loss") != 2 * Math.log(2), "the policy differs from the reference: " + onTheFly);
        assertTrue(console().contains("reference log-probs of 8 pairs in " + stage.resolve("reference-logps")), console());
        assertTrue(console().contains("(8 computed now, 0 read from the cache"), console());
        // the format: magic line, the engine (modified UTF-8), 32-byte reference hash, int64 count, 8 x (16-byte key, 2 float64)
        Path file = cacheFiles().get(0);
        String engine = engineOf(file);
        assertTrue(engine.startsWith("djl PyTorch "), engine);
        assertEquals("anneal reference log-probs 2\n".length() + 2 + engine.length() + 32 + 8 + 8 * (16 + 16), Files.size(file));
    }

    @Test
    void theEngineKeyNamesTheModelsNumericsSoAnotherKernelPathFindsNoFileOfItsOwn() {
        try (BigramModel reference = new BigramModel(VOCAB, 5); BigramModel fused = new BigramModel(VOCAB, 5)) {
            fused.numerics = "fused operators, bfloat16 inside";
            String plain = ReferenceLogpCache.djlEngine(reference);
            String other = ReferenceLogpCache.djlEngine(fused);
            assertTrue(plain.startsWith("djl PyTorch ") && !plain.contains("("), plain);
            assertEquals(plain + " (fused operators, bfloat16 inside)", other);
            assertArrayEquals(ReferenceLogpCache.referenceHash(reference), ReferenceLogpCache.referenceHash(fused),
                    "the same weights: only the engine key tells the two apart");
        }
    }

    @Test
    void theCacheIsReusedDeletedForAnotherReferenceAndFollowsTheData() throws Exception {
        PreferenceLoss loss = new PreferenceLoss(PreferenceLoss.Type.DPO, 0.1, 0, 0, 0);
        List<PackedBatch> training = List.of(batch(0), batch(1));
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED)) {
            objective.open(setup(1, training, List.of()));
        }
        Path first = cacheFiles().get(0);
        assertTrue(console().contains("(4 computed now, 0 read from the cache"), console());
        console.reset();
        // a resumed run: the same reference and data, nothing computed
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED)) {
            objective.open(setup(1, training, List.of()));
        }
        assertTrue(console().contains("(0 computed now, 4 read from the cache"), console());
        console.reset();
        // changed data: one batch replaced; only its pairs are computed, the file keeps the current pairs
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED)) {
            objective.open(setup(1, List.of(batch(0), batch(4)), List.of()));
        }
        assertTrue(console().contains("(2 computed now, 2 read from the cache"), console());
        assertEquals("anneal reference log-probs 2\n".length() + 2 + engineOf(first).length() + 32 + 8 + 4 * 32, Files.size(first));
        console.reset();
        // another reference: the old file goes, everything is computed again
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED)) {
            objective.open(setup(2, training, List.of()));
        }
        assertTrue(console().contains("deleted " + first + ": reference log-probs of another reference model or engine"), console());
        assertTrue(console().contains("(4 computed now, 0 read from the cache"), console());
        assertEquals(1, cacheFiles().size());
        assertNotEquals(first, cacheFiles().get(0));
        assertFalse(Files.exists(first));
    }

    @Test
    void pairKeysFollowTheTokensAndLabelsOfBothAnswers() {
        PackedBatch b = batch(0);
        var keys = ReferenceLogpCache.keys(b, io.anneal.api.data.PreferenceRows.of(b));
        assertEquals(2, keys.size());
        assertNotEquals(keys.get(0), keys.get(1));
        assertEquals(keys, ReferenceLogpCache.keys(b, io.anneal.api.data.PreferenceRows.of(b)));
        int[] labels = b.labels().clone();
        labels[1] = PackedBatch.IGNORE; // pair 0's chosen answer supervises one token less: another pair
        PackedBatch masked = new PackedBatch(1, b.length(), b.inputIds(), labels, b.positionIds(), b.documentIds());
        var other = ReferenceLogpCache.keys(masked, io.anneal.api.data.PreferenceRows.of(masked));
        assertNotEquals(keys.get(0), other.get(0));
        assertEquals(keys.get(1), other.get(1));
    }

    /** The engine recorded in a cache file's header. */
    static String engineOf(Path file) throws Exception {
        try (java.io.DataInputStream in = new java.io.DataInputStream(Files.newInputStream(file))) {
            assertEquals("anneal reference log-probs 2\n", new String(in.readNBytes(29), StandardCharsets.US_ASCII));
            return in.readUTF();
        }
    }

    /**
     * A second engine for the reference: the bigram's log p(label | token) computed on the host in
     * float64 from the same table (not through DJL), each document on its own, handed back in float32.
     */
    static final class HostBigramScorer implements SequenceScorer {
        final List<Path> opened = new ArrayList<>();
        final long seed;

        HostBigramScorer(long seed) {
            this.seed = seed;
        }

        @Override
        public Session open(Path directory, PrintStream log) {
            opened.add(directory);
            BigramModel table = new BigramModel(VOCAB, seed);
            return new Session() {
                @Override
                public String engine() {
                    return "host-bigram 1";
                }

                @Override
                public byte[] modelHash() {
                    return ReferenceLogpCache.referenceHash(table);
                }

                @Override
                public float[] labelLogProbabilities(PackedBatch batch) {
                    float[] out = new float[batch.rows() * batch.length()];
                    for (int i = 0; i < out.length; i++) {
                        if (batch.labels()[i] != PackedBatch.IGNORE) {
                            out[i] = (float) table.hostLogProbability(batch.inputIds()[i], batch.labels()[i]);
                        }
                    }
                    return out;
                }

                @Override
                public void close() {
                    table.close();
                }
            };
        }
    }

    /**
     * Issue 17 item 3's extension point: a reference scorer fills the cache instead of the training
     * engine (no training-engine reference is loaded), the losses agree with the training engine's to
     * float32 rounding, and the file records the engine: a cache of one engine is never read as the
     * other's, even under the other's file name.
     */
    @Test
    void aReferenceScorerFillsItsOwnCacheAndAgreesWithTheTrainingEngine() throws Exception {
        List<PackedBatch> training = List.of(batch(0), batch(1), batch(2));
        List<PackedBatch> held = List.of(batch(3));
        List<PackedBatch> scored = List.of(batch(0), batch(1), batch(2), batch(3));
        PreferenceLoss loss = new PreferenceLoss(PreferenceLoss.Type.DPO_NORM, 5.0, 0, 0, 0);
        List<Map<String, Double>> byDjl;
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED)) {
            objective.open(setup(1, training, held));
            byDjl = scores(objective, scored);
        }
        Path djlFile = cacheFiles().get(0);
        byte[] djlBytes = Files.readAllBytes(djlFile);
        console.reset();
        referenceLoads = 0;
        HostBigramScorer scorer = new HostBigramScorer(1);
        List<Map<String, Double>> byScorer;
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED, scorer, "host-bigram")) {
            objective.open(setup(1, training, held));
            assertEquals(0, referenceLoads, "the training engine's reference is never loaded");
            byScorer = scores(objective, scored);
        }
        assertEquals(List.of(Path.of("reference-checkpoint")), scorer.opened, "the scorer reads the reference's folder");
        assertTrue(console().contains("dpo: reference log-probs computed by host-bigram 1 (reference-scorer host-bigram)"), console());
        assertTrue(console().contains("deleted " + djlFile + ": reference log-probs of another reference model or engine"), console());
        assertTrue(console().contains("(8 computed now, 0 read from the cache"), console());
        Path scorerFile = cacheFiles().get(0);
        assertNotEquals(djlFile, scorerFile, "the file name carries the engine");
        assertEquals("host-bigram 1", engineOf(scorerFile));
        for (int b = 0; b < scored.size(); b++) {
            for (Map.Entry<String, Double> e : byDjl.get(b).entrySet()) {
                assertEquals(e.getValue(), byScorer.get(b).get(e.getKey()), 1e-5, e.getKey() + " of batch " + b);
            }
        }
        // the scorer's values under the training engine's file name: the header says whose they are, so not read
        Files.write(djlFile, Files.readAllBytes(scorerFile));
        Files.delete(scorerFile);
        console.reset();
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED)) {
            objective.open(setup(1, training, held));
            assertEquals(byDjl, scores(objective, scored), "recomputed by the training engine, bit for bit as before");
        }
        assertTrue(console().contains("(8 computed now, 0 read from the cache"), console());
        assertEquals(List.of(djlFile), cacheFiles());
        assertEquals(java.util.Arrays.toString(djlBytes), java.util.Arrays.toString(Files.readAllBytes(djlFile)));
    }

    @Test
    void aReferenceScorerNeedsTheReferencesFolder() {
        initialFolder = Optional.empty();
        PreferenceLoss loss = new PreferenceLoss(PreferenceLoss.Type.DPO, 0.1, 0, 0, 0);
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED, new HostBigramScorer(1), "host-bigram")) {
            io.anneal.api.InputException e = org.junit.jupiter.api.Assertions.assertThrows(io.anneal.api.InputException.class,
                    () -> objective.open(setup(1, List.of(batch(0)), List.of())));
            assertEquals("stages[1].objective.reference-scorer: the reference (the stage's initial weights) is a random "
                    + "initialisation, which has no folder for the scorer to read; give the stage init-from or put it after a "
                    + "stage that publishes a model", e.getMessage());
        }
    }
}
