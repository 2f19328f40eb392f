package io.anneal.hybrid.model;

import io.anneal.api.InputException;
import io.anneal.api.config.ConfigView;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The architecture fields of a Falcon-H1 {@code config.json} (transformers' {@code FalconH1Config}),
 * without the muP multipliers, which come from a {@link io.anneal.api.model.MupMultipliers}.
 *
 * <p>In HOCON the keys are the {@code config.json} names with {@code -} for {@code _}
 * ({@code hidden_size} is {@code hidden-size}); defaults describe a tiny model (reference.conf).
 * Defaults for fields missing from a checkpoint's {@code config.json} are transformers'
 * {@code FalconH1Config} defaults.
 */
public record FalconH1Config(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int numKeyValueHeads,
        int headDim,
        double rmsNormEps,
        double ropeTheta,
        int maxPositionEmbeddings,
        int mambaDSsm,
        int mambaNHeads,
        int mambaDHead,
        int mambaNGroups,
        int mambaDState,
        int mambaDConv,
        int mambaChunkSize,
        boolean mambaConvBias,
        boolean mambaProjBias,
        boolean mambaRmsNorm,
        boolean mambaNormBeforeGate,
        double timeStepMin,
        double timeStepMax,
        double timeStepLimitLow,
        double timeStepLimitHigh,
        boolean projectorsBias,
        boolean attentionBias,
        boolean mlpBias,
        boolean tieWordEmbeddings,
        double initializerRange,
        int padTokenId,
        int bosTokenId,
        int eosTokenId) {

    /** Channels of the depthwise conv: x, B and C ({@code intermediate + 2 * groups * state}). */
    public int convDim() {
        return mambaDSsm + 2 * mambaNGroups * mambaDState;
    }

    /** Whether dt is clamped to time_step_limit (transformers clamps unless the limit is (0, inf)). */
    public boolean clipsTimeStep() {
        return timeStepLimitLow > 0 || timeStepLimitHigh != Double.POSITIVE_INFINITY;
    }

    /** The upper time_step_limit as a finite float32 bound (inf becomes float32's largest value). */
    public double timeStepLimitHighFinite() {
        return Math.min(timeStepLimitHigh, Float.MAX_VALUE);
    }

    /** Width of the fused in-projection: z, xBC and dt. */
    public int inProjSize() {
        return mambaDSsm + convDim() + mambaNHeads;
    }

    /** Checks the relations transformers' config enforces; {@code where} names the source for messages. */
    public FalconH1Config validate(String where) {
        List<String> problems = new ArrayList<>();
        positive(problems, "vocab_size", vocabSize);
        positive(problems, "hidden_size", hiddenSize);
        positive(problems, "intermediate_size", intermediateSize);
        positive(problems, "num_hidden_layers", numHiddenLayers);
        positive(problems, "num_attention_heads", numAttentionHeads);
        positive(problems, "num_key_value_heads", numKeyValueHeads);
        positive(problems, "head_dim", headDim);
        positive(problems, "mamba_n_heads", mambaNHeads);
        positive(problems, "mamba_n_groups", mambaNGroups);
        positive(problems, "mamba_d_state", mambaDState);
        positive(problems, "mamba_d_conv", mambaDConv);
        positive(problems, "mamba_chunk_size", mambaChunkSize);
        if (numKeyValueHeads > 0 && numAttentionHeads % numKeyValueHeads != 0) {
            problems.add("num_attention_heads (" + numAttentionHeads + ") must be a multiple of num_key_value_heads ("
                    + numKeyValueHeads + ")");
        }
        if (headDim % 2 != 0) {
            problems.add("head_dim (" + headDim + ") must be even for rotary embeddings");
        }
        if (mambaNHeads > 0 && mambaDHead * mambaNHeads != mambaDSsm) {
            problems.add("mamba_d_head * mamba_n_heads (" + mambaDHead + " * " + mambaNHeads + ") must equal mamba_d_ssm ("
                    + mambaDSsm + ")");
        }
        if (mambaNGroups > 0 && mambaNHeads % mambaNGroups != 0) {
            problems.add("mamba_n_heads (" + mambaNHeads + ") must be a multiple of mamba_n_groups (" + mambaNGroups + ")");
        }
        if (mambaRmsNorm && mambaNGroups > 0 && mambaDSsm % mambaNGroups != 0) {
            problems.add("mamba_d_ssm (" + mambaDSsm + ") must be a multiple of mamba_n_groups for the gated norm");
        }
        oversized().ifPresent(o -> problems.add(o[0] + " too large: " + o[1]));
        if (!problems.isEmpty()) {
            throw new InputException(where + ": invalid Falcon-H1 configuration: " + String.join("; ", problems));
        }
        return this;
    }

    /**
     * The first weight matrix with more elements than one Java array holds (2^31 - 1), as {key, detail}:
     * the key is the larger of its two sizes (a config.json name), the detail says which tensor.
     */
    Optional<String[]> oversized() {
        long qDim = (long) numAttentionHeads * headDim;
        long inProj = (long) mambaDSsm + 2L * mambaNGroups * mambaDState + mambaNHeads;
        Object[][] matrices = {
            {"model.embed_tokens.weight", "vocab_size", (long) vocabSize},
            {"self_attn.q_proj.weight", "num_attention_heads", qDim},
            {"mamba.in_proj.weight", "mamba_d_ssm", inProj},
            {"mamba.out_proj.weight", "mamba_d_ssm", (long) mambaDSsm},
            {"feed_forward.up_proj.weight", "intermediate_size", (long) intermediateSize},
        };
        for (Object[] m : matrices) {
            long rows = (long) m[2];
            if (rows * hiddenSize > Integer.MAX_VALUE) {
                String key = rows > hiddenSize ? (String) m[1] : "hidden_size";
                return Optional.of(new String[] {key, m[0] + " would hold " + rows + " x " + hiddenSize
                        + " elements, more than one array holds (2147483647)"});
            }
        }
        return Optional.empty();
    }

    private static void positive(List<String> problems, String name, int value) {
        if (value <= 0) {
            problems.add(name + " must be > 0, found " + value);
        }
    }

    /** Reads a checkpoint's {@code config.json} (already parsed); missing fields take transformers' defaults. */
    public static FalconH1Config fromConfigJson(Map<String, Object> json, String file) {
        Fields f = new Fields(json, file);
        return fromFields(f).validate(file);
    }

    /**
     * Reads the HOCON {@code model} block (keys are config.json names with dashes; {@code type} and
     * the nested {@code mup} block are not architecture fields).
     */
    public static FalconH1Config fromHocon(ConfigView block) {
        Map<String, Object> values = new LinkedHashMap<>();
        Map<String, Object> unwrapped = block.unwrapped();
        for (String key : block.keys()) {
            if (!key.equals("type") && !key.equals("mup")) {
                values.put(key.replace('-', '_'), unwrapped.get(key));
            }
        }
        FalconH1Config config = fromFields(new Fields(values, "config path " + block.path()));
        Optional<String[]> oversized = config.oversized();
        if (oversized.isPresent()) {
            String key = oversized.get()[0].replace('_', '-');
            key = block.has(key) ? key : "hidden-size";
            throw block.invalid(key, "a size whose weight matrices fit in one array each", block.getString(key) + ", so "
                    + oversized.get()[1]);
        }
        try {
            return config.validate("config path " + block.path() + " (" + block.origin("") + ")");
        } catch (InputException e) {
            throw block.invalid("hidden-size", "a consistent Falcon-H1 configuration", e.getMessage());
        }
    }

    private static FalconH1Config fromFields(Fields f) {
        int hidden = f.integer("hidden_size", 4096);
        int heads = f.integer("num_attention_heads", 32);
        Object kv = f.raw("num_key_value_heads");
        int kvHeads = kv == null ? (f.has("num_key_value_heads") ? heads : 8) : f.integer("num_key_value_heads", 8);
        Object dSsmRaw = f.raw("mamba_d_ssm");
        int expand = f.integer("mamba_expand", 2);
        int dSsm = dSsmRaw == null && f.has("mamba_d_ssm") ? expand * hidden : f.integer("mamba_d_ssm", 1024);
        int mambaHeads = f.integer("mamba_n_heads", 128);
        Object dHeadRaw = f.raw("mamba_d_head");
        // "auto" (transformers) or 0 (HOCON): mamba_d_ssm / mamba_n_heads.
        int dHead = dHeadRaw == null || "auto".equals(dHeadRaw) ? 0 : f.integer("mamba_d_head", 0);
        if (dHead == 0) {
            dHead = dSsm / Math.max(1, mambaHeads);
        }
        // Absent (transformers) or 0 (HOCON): hidden_size / num_attention_heads.
        int headDim = f.integer("head_dim", 0);
        if (headDim == 0) {
            headDim = hidden / Math.max(1, heads);
        }
        double ropeTheta = f.decimal("rope_theta", 1e11);
        if (f.raw("rope_parameters") instanceof Map<?, ?> rope && rope.get("rope_theta") instanceof Number n) {
            ropeTheta = n.doubleValue();
        }
        double[] limit = f.pair("time_step_limit", 0.0, Double.POSITIVE_INFINITY);
        if (limit[1] >= 1e38) {
            limit[1] = Double.POSITIVE_INFINITY; // HOCON has no infinity: 1e38 stands for "no upper limit"
        }
        return new FalconH1Config(
                f.integer("vocab_size", 128000), hidden, f.integer("intermediate_size", 14336),
                f.integer("num_hidden_layers", 32), heads, kvHeads, headDim,
                f.decimal("rms_norm_eps", 1e-5), ropeTheta, f.integer("max_position_embeddings", 8192),
                dSsm, mambaHeads, dHead, f.integer("mamba_n_groups", 1), f.integer("mamba_d_state", 256),
                f.integer("mamba_d_conv", 4), f.integer("mamba_chunk_size", 256),
                f.bool("mamba_conv_bias", true), f.bool("mamba_proj_bias", false), f.bool("mamba_rms_norm", false),
                f.bool("mamba_norm_before_gate", true), f.decimal("time_step_min", 0.001), f.decimal("time_step_max", 0.1),
                limit[0], limit[1], f.bool("projectors_bias", false), f.bool("attention_bias", false),
                f.bool("mlp_bias", false), f.bool("tie_word_embeddings", false), f.decimal("initializer_range", 0.02),
                f.integer("pad_token_id", 0), f.integer("bos_token_id", 1), f.integer("eos_token_id", 2));
    }

    /** The architecture fields in {@code config.json} form (the caller adds the muP multipliers). */
    public Map<String, Object> toConfigJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("architectures", List.of("FalconH1ForCausalLM"));
        m.put("model_type", "falcon_h1");
        m.put("vocab_size", vocabSize);
        m.put("hidden_size", hiddenSize);
        m.put("intermediate_size", intermediateSize);
        m.put("num_hidden_layers", numHiddenLayers);
        m.put("num_attention_heads", numAttentionHeads);
        m.put("num_key_value_heads", numKeyValueHeads);
        m.put("head_dim", headDim);
        m.put("hidden_act", "silu");
        m.put("rms_norm_eps", rmsNormEps);
        m.put("rope_theta", ropeTheta);
        // ordered: Map.of iterates in an order salted per JVM, which made config.json (and so a checkpoint's
        // bytes) differ between a run and its resume (found by the fault-injection suite)
        Map<String, Object> rope = new LinkedHashMap<>();
        rope.put("rope_type", "default");
        rope.put("rope_theta", ropeTheta);
        m.put("rope_parameters", rope);
        m.put("max_position_embeddings", maxPositionEmbeddings);
        m.put("mamba_d_ssm", mambaDSsm);
        m.put("mamba_n_heads", mambaNHeads);
        m.put("mamba_d_head", mambaDHead);
        m.put("mamba_n_groups", mambaNGroups);
        m.put("mamba_d_state", mambaDState);
        m.put("mamba_d_conv", mambaDConv);
        m.put("mamba_expand", 2);
        m.put("mamba_chunk_size", mambaChunkSize);
        m.put("mamba_conv_bias", mambaConvBias);
        m.put("mamba_proj_bias", mambaProjBias);
        m.put("mamba_rms_norm", mambaRmsNorm);
        m.put("mamba_norm_before_gate", mambaNormBeforeGate);
        m.put("time_step_min", timeStepMin);
        m.put("time_step_max", timeStepMax);
        m.put("time_step_limit", List.of(timeStepLimitLow, timeStepLimitHigh));
        m.put("projectors_bias", projectorsBias);
        m.put("attention_bias", attentionBias);
        m.put("mlp_bias", mlpBias);
        m.put("tie_word_embeddings", tieWordEmbeddings);
        m.put("initializer_range", initializerRange);
        m.put("pad_token_id", padTokenId);
        m.put("bos_token_id", bosTokenId);
        m.put("eos_token_id", eosTokenId);
        m.put("attention_dropout", 0.0);
        m.put("use_cache", true);
        m.put("torch_dtype", "float32");
        return m;
    }

    /** Typed access to a JSON-like map with messages naming the source. */
    private record Fields(Map<String, Object> values, String source) {
        boolean has(String key) {
            return values.containsKey(key);
        }

        Object raw(String key) {
            return values.get(key);
        }

        int integer(String key, int fallback) {
            Object v = values.get(key);
            if (v == null) {
                return fallback;
            }
            if (v instanceof List<?> list && !list.isEmpty() && list.get(0) instanceof Number n) {
                return n.intValue(); // eos_token_id may be a list; the first id is the one we keep
            }
            if (v instanceof Number n && n.doubleValue() == Math.rint(n.doubleValue())) {
                return n.intValue();
            }
            throw new InputException(source + ": field '" + key + "' must be an integer, found " + v);
        }

        double decimal(String key, double fallback) {
            Object v = values.get(key);
            if (v == null) {
                return fallback;
            }
            if (v instanceof Number n) {
                return n.doubleValue();
            }
            throw new InputException(source + ": field '" + key + "' must be a number, found " + v);
        }

        boolean bool(String key, boolean fallback) {
            Object v = values.get(key);
            if (v == null) {
                return fallback;
            }
            if (v instanceof Boolean b) {
                return b;
            }
            throw new InputException(source + ": field '" + key + "' must be true or false, found " + v);
        }

        double[] pair(String key, double low, double high) {
            Object v = values.get(key);
            if (v == null) {
                return new double[] {low, high};
            }
            if (v instanceof List<?> list && list.size() == 2) {
                Double a = number(list.get(0));
                Double b = number(list.get(1));
                if (a != null && b != null) {
                    return new double[] {a, b};
                }
            }
            throw new InputException(source + ": field '" + key + "' must be a pair [min, max], found " + v);
        }

        /**
         * A JSON number, or a non-finite one as transformers 5 writes it ({@code {"__float__": "Infinity"}})
         * or as a string; null otherwise.
         */
        private static Double number(Object v) {
            if (v instanceof Number n) {
                return n.doubleValue();
            }
            Object text = v instanceof Map<?, ?> m ? m.get("__float__") : v;
            if (text instanceof String s) {
                return switch (s) {
                    case "Infinity", "inf" -> Double.POSITIVE_INFINITY;
                    case "-Infinity", "-inf" -> Double.NEGATIVE_INFINITY;
                    default -> null;
                };
            }
            return null;
        }
    }
}
