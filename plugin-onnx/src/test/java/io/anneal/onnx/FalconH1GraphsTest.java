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
        FalconH1Graphs.Tensors tensors = new FalconH1Graphs.Tensors() {
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
}
