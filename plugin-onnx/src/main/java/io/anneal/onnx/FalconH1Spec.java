package io.anneal.onnx;

import io.anneal.api.InputException;
import java.util.List;
import java.util.Map;

/**
 * The shape and muP multipliers of a Falcon-H1 model, read from the config.json fields the model
 * reports ({@link io.anneal.api.model.CausalLanguageModel#configJson()}, every default resolved by
 * the architecture plugin), and the same fields as exported beside the graphs.
 */
record FalconH1Spec(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads, int headDim,
        double eps, double ropeTheta, int maxPositions, int dSsm, int mHeads, int mHeadDim, int groups, int state,
        int convKernel, int chunk, boolean mambaRmsNorm, boolean normBeforeGate, double dtLow, double dtHigh,
        boolean tied, int eosTokenId, double embedding, double lmHead, double attentionIn, double attentionOut,
        double key, double ssmIn, double ssmOut, double[] ssmMultipliers, double[] mlpMultipliers) {

    static FalconH1Spec of(Map<String, Object> json, String where) {
        if (json.isEmpty()) {
            throw new InputException(where + ": the model does not describe its architecture (no config.json fields)");
        }
        Object type = json.get("model_type");
        if (!"falcon_h1".equals(type)) {
            throw new InputException(where + ": model_type is '" + type + "'; the ONNX export supports 'falcon_h1' only");
        }
        Fields f = new Fields(json, where);
        List<?> limit = f.list("time_step_limit");
        return new FalconH1Spec(f.i("vocab_size"), f.i("hidden_size"), f.i("intermediate_size"), f.i("num_hidden_layers"),
                f.i("num_attention_heads"), f.i("num_key_value_heads"), f.i("head_dim"), f.d("rms_norm_eps"),
                f.d("rope_theta"), f.i("max_position_embeddings"), f.i("mamba_d_ssm"), f.i("mamba_n_heads"),
                f.i("mamba_d_head"), f.i("mamba_n_groups"), f.i("mamba_d_state"), f.i("mamba_d_conv"),
                f.i("mamba_chunk_size"), f.b("mamba_rms_norm"), f.b("mamba_norm_before_gate"),
                number(limit.get(0)), number(limit.get(1)), f.b("tie_word_embeddings"), f.i("eos_token_id"),
                f.d("embedding_multiplier"), f.d("lm_head_multiplier"), f.d("attention_in_multiplier"),
                f.d("attention_out_multiplier"), f.d("key_multiplier"), f.d("ssm_in_multiplier"),
                f.d("ssm_out_multiplier"), f.doubles("ssm_multipliers", 5), f.doubles("mlp_multipliers", 2));
    }

    private static double number(Object o) {
        if (o instanceof Number n) {
            return n.doubleValue();
        }
        if (o instanceof Map<?, ?> m && m.get("__float__") != null) { // transformers writes {"__float__": "Infinity"}
            return Double.parseDouble(String.valueOf(m.get("__float__")));
        }
        return Double.parseDouble(String.valueOf(o));
    }

    int convDim() {
        return dSsm + 2 * groups * state;
    }

    int inProj() {
        return dSsm + convDim() + mHeads;
    }

    /** transformers clamps dt unless time_step_limit is (0, inf). */
    boolean clipsDt() {
        return dtLow > 0 || dtHigh != Double.POSITIVE_INFINITY;
    }

    private record Fields(Map<String, Object> json, String where) {
        Object get(String key) {
            Object v = json.get(key);
            if (v == null) {
                throw new InputException(where + ": config field '" + key + "' is missing");
            }
            return v;
        }

        int i(String key) {
            return (int) d(key);
        }

        double d(String key) {
            return number(get(key));
        }

        boolean b(String key) {
            return Boolean.parseBoolean(String.valueOf(get(key)));
        }

        List<?> list(String key) {
            if (!(get(key) instanceof List<?> l) || l.size() != 2) {
                throw new InputException(where + ": config field '" + key + "' must be a list of two numbers");
            }
            return l;
        }

        double[] doubles(String key, int n) {
            if (!(get(key) instanceof List<?> l) || l.size() != n) {
                throw new InputException(where + ": config field '" + key + "' must be a list of " + n + " numbers");
            }
            double[] out = new double[n];
            for (int k = 0; k < n; k++) {
                out[k] = number(l.get(k));
            }
            return out;
        }
    }
}
