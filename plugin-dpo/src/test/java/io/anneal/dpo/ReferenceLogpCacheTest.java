package io.anneal.dpo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.SourceProgress;
import io.anneal.api.data.TokenBatchStream;
import io.anneal.api.model.CausalLanguageModel;
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
        // the format: magic line, 32-byte reference hash, int64 count, 8 x (16-byte key, 2 float64)
        Path file = cacheFiles().get(0);
        assertEquals("anneal reference log-probs 1\n".length() + 32 + 8 + 8 * (16 + 16), Files.size(file));
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
        assertEquals("anneal reference log-probs 1\n".length() + 32 + 8 + 4 * 32, Files.size(first));
        console.reset();
        // another reference: the old file goes, everything is computed again
        try (DpoObjective objective = new DpoObjective(loss, DpoObjective.ReferenceMode.CACHED)) {
            objective.open(setup(2, training, List.of()));
        }
        assertTrue(console().contains("deleted " + first + ": reference log-probs of another reference model"), console());
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
}
