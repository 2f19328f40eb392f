package io.anneal.onnx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The decode graph against the prefill graph on a small random Falcon-H1 (two groups, gated norm,
 * chunks of 4, so prompts span several chunks and end mid-chunk). The prefill graph itself is
 * checked against transformers' logits end to end (OnnxIT); here the caches it hands over and the
 * one-token recurrences must continue it exactly.
 */
class FalconH1GraphsTest {
    static final int VOCAB = 50;
    static final int HIDDEN = 32;
    static final int HEADS = 4;
    static final int KV_HEADS = 2;
    static final int HEAD_DIM = 8;
    static final int D_SSM = 32;
    static final int M_HEADS = 4;
    static final int GROUPS = 2;
    static final int STATE = 8;
    static final int CONV = 4;
    static final int INTERMEDIATE = 48;
    static final int LAYERS = 2;

    @TempDir
    static Path tmp;
    static OrtModel model;
    static FalconH1Graphs.Tensors tensors;

    static Map<String, Object> config() {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("model_type", "falcon_h1");
        c.put("vocab_size", VOCAB);
        c.put("hidden_size", HIDDEN);
        c.put("intermediate_size", INTERMEDIATE);
        c.put("num_hidden_layers", LAYERS);
        c.put("num_attention_heads", HEADS);
        c.put("num_key_value_heads", KV_HEADS);
        c.put("head_dim", HEAD_DIM);
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 10000.0);
        c.put("max_position_embeddings", 512);
        c.put("mamba_d_ssm", D_SSM);
        c.put("mamba_n_heads", M_HEADS);
        c.put("mamba_d_head", D_SSM / M_HEADS);
        c.put("mamba_n_groups", GROUPS);
        c.put("mamba_d_state", STATE);
        c.put("mamba_d_conv", CONV);
        c.put("mamba_chunk_size", 4);
        c.put("mamba_rms_norm", true);
        c.put("mamba_norm_before_gate", false);
        c.put("time_step_limit", List.of(0.0, Double.POSITIVE_INFINITY));
        c.put("tie_word_embeddings", false);
        c.put("eos_token_id", 2);
        c.put("embedding_multiplier", 2.0);
        c.put("lm_head_multiplier", 0.5);
        c.put("attention_in_multiplier", 0.75);
        c.put("attention_out_multiplier", 0.9);
        c.put("key_multiplier", 0.4);
        c.put("ssm_in_multiplier", 1.25);
        c.put("ssm_out_multiplier", 0.3);
        c.put("ssm_multipliers", List.of(0.35, 0.25, 0.5, 0.6, 0.7));
        c.put("mlp_multipliers", List.of(0.9, 0.6));
        return c;
    }

    static Map<String, long[]> shapes() {
        int convDim = D_SSM + 2 * GROUPS * STATE;
        Map<String, long[]> s = new LinkedHashMap<>();
        s.put("model.embed_tokens.weight", new long[] {VOCAB, HIDDEN});
        s.put("lm_head.weight", new long[] {VOCAB, HIDDEN});
        s.put("model.final_layernorm.weight", new long[] {HIDDEN});
        for (int l = 0; l < LAYERS; l++) {
            String p = "model.layers." + l + ".";
            s.put(p + "input_layernorm.weight", new long[] {HIDDEN});
            s.put(p + "pre_ff_layernorm.weight", new long[] {HIDDEN});
            s.put(p + "self_attn.q_proj.weight", new long[] {HEADS * HEAD_DIM, HIDDEN});
            s.put(p + "self_attn.k_proj.weight", new long[] {KV_HEADS * HEAD_DIM, HIDDEN});
            s.put(p + "self_attn.v_proj.weight", new long[] {KV_HEADS * HEAD_DIM, HIDDEN});
            s.put(p + "self_attn.o_proj.weight", new long[] {HIDDEN, HEADS * HEAD_DIM});
            s.put(p + "mamba.in_proj.weight", new long[] {D_SSM + convDim + M_HEADS, HIDDEN});
            s.put(p + "mamba.conv1d.weight", new long[] {convDim, 1, CONV});
            s.put(p + "mamba.conv1d.bias", new long[] {convDim});
            s.put(p + "mamba.dt_bias", new long[] {M_HEADS});
            s.put(p + "mamba.A_log", new long[] {M_HEADS});
            s.put(p + "mamba.D", new long[] {M_HEADS});
            s.put(p + "mamba.norm.weight", new long[] {D_SSM});
            s.put(p + "mamba.out_proj.weight", new long[] {HIDDEN, D_SSM});
            s.put(p + "feed_forward.gate_proj.weight", new long[] {INTERMEDIATE, HIDDEN});
            s.put(p + "feed_forward.up_proj.weight", new long[] {INTERMEDIATE, HIDDEN});
            s.put(p + "feed_forward.down_proj.weight", new long[] {HIDDEN, INTERMEDIATE});
        }
        return s;
    }

    @BeforeAll
    static void exportRandomModel() throws Exception {
        Map<String, long[]> shapes = shapes();
        Map<String, float[]> values = new HashMap<>();
        SplittableRandom random = new SplittableRandom(7);
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            long n = 1;
            for (long d : e.getValue()) {
                n *= d;
            }
            float[] v = new float[(int) n];
            String name = e.getKey();
            for (int i = 0; i < v.length; i++) {
                if (name.endsWith("norm.weight") || name.endsWith("layernorm.weight")) {
                    v[i] = (float) (1 + 0.1 * random.nextGaussian());
                } else if (name.endsWith("A_log")) {
                    v[i] = (float) Math.log(i + 1); // transformers' init: A = 1..H
                } else if (name.endsWith("dt_bias")) {
                    v[i] = (float) (-2 + random.nextGaussian());
                } else {
                    v[i] = (float) (0.3 * random.nextGaussian());
                }
            }
            values.put(name, v);
        }
        tensors = new FalconH1Graphs.Tensors() {
            @Override
            public float[] values(String name) {
                return values.get(name);
            }

            @Override
            public long[] shape(String name) {
                return shapes.get(name);
            }
        };
        PrintStream quiet = new PrintStream(PrintStream.nullOutputStream());
        ExportedFolder folder = OnnxExport.writeFolder(config(), tensors, tmp, tmp.resolve("onnx"), quiet);
        model = OrtModel.open(folder, OrtModel.Provider.CPU, 1, quiet);
    }

    static long[] tokens(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        long[] ids = new long[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(VOCAB);
        }
        return ids;
    }

    @Test
    void decodingWithTheCachesContinuesThePrefillExactly() {
        long[][] rows = {tokens(23, 1), tokens(23, 2)};
        int prompt = 9; // two whole chunks of 4 and one token into the third
        float[] whole;
        try (OrtModel.Step all = model.prefill(rows)) {
            whole = all.logits.clone();
        }
        long[][] head = {java.util.Arrays.copyOf(rows[0], prompt), java.util.Arrays.copyOf(rows[1], prompt)};
        OrtModel.Step step = model.prefill(head);
        double worst = 0;
        double scale = 0;
        for (int t = prompt; t < 23; t++) {
            OrtModel.Step next = model.decode(new long[] {rows[0][t], rows[1][t]}, step);
            step.close();
            step = next;
            for (int b = 0; b < 2; b++) {
                for (int v = 0; v < VOCAB; v++) {
                    float expected = whole[(b * 23 + t) * VOCAB + v];
                    worst = Math.max(worst, Math.abs(step.logits[b * VOCAB + v] - expected));
                    scale = Math.max(scale, Math.abs(expected));
                }
            }
        }
        step.close();
        assertTrue(scale > 0.1, "logits of a meaningful size: " + scale);
        assertTrue(worst <= 1e-5 * scale, "decode vs prefill: " + worst + " of " + scale);
    }

    @Test
    void decodingFromAnEmptyCacheIsThePrefillToo() {
        long[] ids = tokens(6, 3);
        float[] whole;
        try (OrtModel.Step all = model.prefill(new long[][] {ids})) {
            whole = all.logits.clone();
        }
        // one token through the prefill graph, the rest through decode: the conv cache starts zero-padded
        OrtModel.Step step = model.prefill(new long[][] {{ids[0]}});
        for (int t = 1; t < ids.length; t++) {
            OrtModel.Step next = model.decode(new long[] {ids[t]}, step);
            step.close();
            step = next;
            for (int v = 0; v < VOCAB; v++) {
                assertEquals(whole[t * VOCAB + v], step.logits[v], 1e-5, "position " + t);
            }
        }
        step.close();
    }

    @Test
    void greedyGenerationWithCachesEqualsRecomputingThePrefixOver64Tokens() {
        Generator generator = new Generator(model);
        long[] prompt = tokens(11, 4);
        Generator.Output cached = generator.generate(prompt, 64, Set.of(), Generator.Sampling.GREEDY, false, t -> { });
        Generator.Output recomputed = generator.generate(prompt, 64, Set.of(), Generator.Sampling.GREEDY, true, t -> { });
        assertEquals(64, cached.ids().length);
        assertEquals(Generator.Stop.MAX_NEW_TOKENS, cached.stop());
        assertArrayEquals(recomputed.ids(), cached.ids());
        assertTrue(java.util.Arrays.stream(cached.ids()).distinct().count() > 3, "a non-trivial continuation");
    }

    @Test
    void samplingIsSeededAndTopPKeepsTheNucleus() {
        Generator generator = new Generator(model);
        long[] prompt = tokens(5, 5);
        Generator.Sampling s = new Generator.Sampling(1.0, 0.9, 42);
        long[] a = generator.generate(prompt, 20, Set.of(), s, false, t -> { }).ids();
        long[] b = generator.generate(prompt, 20, Set.of(), s, false, t -> { }).ids();
        assertArrayEquals(a, b, "the same seed repeats the text");
        // hand-computed nucleus: probabilities 0.5, 0.3, 0.15, 0.05; top-p 0.7 keeps the first two only
        float[] logits = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05)};
        SplittableRandom r = new SplittableRandom(1);
        int[] counts = new int[4];
        for (int i = 0; i < 4000; i++) {
            counts[(int) Generator.pick(logits, new Generator.Sampling(1.0, 0.7, 0), r)]++;
        }
        assertEquals(0, counts[2] + counts[3]);
        assertEquals(0.5 / 0.8, counts[0] / 4000.0, 0.03); // renormalised within the nucleus
        // a stop token ends the turn and is not part of the output
        long first = generator.generate(prompt, 5, Set.of(), Generator.Sampling.GREEDY, false, t -> { }).ids()[0];
        Generator.Output stopped = generator.generate(prompt, 5, Set.of(first), Generator.Sampling.GREEDY, false, t -> { });
        assertEquals(0, stopped.ids().length);
        assertEquals(Generator.Stop.END_OF_TURN, stopped.stop());
    }

    /** One row packing two documents (12 and 14 tokens, positions from 0) and 4 tokens of padding. */
    static io.anneal.api.data.PackedBatch packedRow() {
        int length = 30;
        int[] ids = new int[length];
        int[] labels = new int[length];
        int[] positions = new int[length];
        int[] documents = new int[length];
        long[] tokens = tokens(length, 11);
        int[][] spans = {{0, 12}, {12, 26}, {26, 30}};
        for (int d = 0; d < spans.length; d++) {
            for (int i = spans[d][0]; i < spans[d][1]; i++) {
                ids[i] = (int) tokens[i];
                positions[i] = i - spans[d][0];
                documents[i] = d;
                // the answer: the second half of each document is supervised; padding is not
                boolean supervised = d < 2 && i + 1 < spans[d][1] && i >= (spans[d][0] + spans[d][1]) / 2;
                labels[i] = supervised ? (int) tokens[i + 1] : io.anneal.api.data.PackedBatch.IGNORE;
            }
        }
        return new io.anneal.api.data.PackedBatch(1, length, ids, labels, positions, documents);
    }

    /**
     * The onnx sequence scorer: the graphs take no packed rows, so each document runs alone and a
     * packed row scores exactly as its documents one by one (a row run whole would let the first
     * document's tokens into the second's); log p(label) is log-softmax of the prefill logits.
     */
    @Test
    void theSequenceScorerRunsEachDocumentOfAPackedRowAlone() {
        PrintStream quiet = new PrintStream(PrintStream.nullOutputStream());
        io.anneal.api.data.PackedBatch packed = packedRow();
        try (io.anneal.api.train.SequenceScorer.Session session = new OnnxSequenceScorer(null, OrtModel.Provider.CPU, 1,
                java.util.Optional.empty()).open(tmp.resolve("onnx"), quiet)) {
            assertEquals("onnx-runtime 1.29.0 cpu", session.engine());
            float[] scored = session.labelLogProbabilities(packed);
            int[][] spans = {{0, 12}, {12, 26}};
            for (int[] span : spans) {
                long[] doc = new long[span[1] - span[0]];
                for (int i = span[0]; i < span[1]; i++) {
                    doc[i - span[0]] = packed.inputIds()[i];
                }
                try (OrtModel.Step alone = model.prefill(new long[][] {doc})) {
                    for (int i = span[0]; i < span[1]; i++) {
                        if (packed.labels()[i] == io.anneal.api.data.PackedBatch.IGNORE) {
                            assertEquals(0f, scored[i]);
                            continue;
                        }
                        // log softmax by its definition, log(exp(z_label) / sum exp(z)), in float64
                        double denominator = 0;
                        int at = (i - span[0]) * VOCAB;
                        for (int v = 0; v < VOCAB; v++) {
                            denominator += Math.exp(alone.logits[at + v]);
                        }
                        double expected = Math.log(Math.exp(alone.logits[at + packed.labels()[i]]) / denominator);
                        assertEquals(expected, scored[i], 1e-6, "position " + i);
                    }
                }
            }
            for (int i = 26; i < 30; i++) {
                assertEquals(0f, scored[i], "padding is not scored");
            }
            // the whole row as one sequence would differ on the second document: why documents run alone
            try (OrtModel.Step whole = model.prefill(new long[][] {java.util.Arrays.stream(packed.inputIds()).asLongStream().toArray()})) {
                int i = 24;
                double wrong = OrtDocuments.logProbability(whole.logits, i * VOCAB, VOCAB, packed.labels()[i]);
                assertTrue(Math.abs(wrong - scored[i]) > 1e-3, wrong + " vs " + scored[i]);
            }
            // a document continued from an earlier row has no beginning here: refused, saying why
            int[] positions = packed.positionIds().clone();
            for (int i = 12; i < 26; i++) {
                positions[i] += 5;
            }
            io.anneal.api.data.PackedBatch continued = new io.anneal.api.data.PackedBatch(1, 30, packed.inputIds(), packed.labels(),
                    positions, packed.documentIds());
            IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> session.labelLogProbabilities(continued));
            assertTrue(e.getMessage().startsWith("row 0, document 1: it starts at position 5, not 0"), e.getMessage());
        }
    }

    /** The scorer's model hash is the exported files': a second export of the same weights gives the same hash (a resumed run finds its cache). */
    @Test
    void theSequenceScorersModelHashIsStableAcrossExports() throws Exception {
        PrintStream quiet = new PrintStream(PrintStream.nullOutputStream());
        OnnxExport.writeFolder(config(), tensors, tmp, tmp.resolve("onnx-again"), quiet);
        OnnxSequenceScorer scorer = new OnnxSequenceScorer(null, OrtModel.Provider.CPU, 1, java.util.Optional.empty());
        try (io.anneal.api.train.SequenceScorer.Session a = scorer.open(tmp.resolve("onnx"), quiet);
                io.anneal.api.train.SequenceScorer.Session b = scorer.open(tmp.resolve("onnx-again"), quiet)) {
            assertArrayEquals(a.modelHash(), b.modelHash());
            assertEquals(32, a.modelHash().length);
        }
    }
}
