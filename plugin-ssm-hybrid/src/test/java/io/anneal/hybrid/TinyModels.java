package io.anneal.hybrid;

import io.anneal.hybrid.model.FalconH1Config;
import java.util.HashMap;
import java.util.Map;

/** Tiny Falcon-H1 configurations for CPU tests. */
public final class TinyModels {
    private TinyModels() {
    }

    /** A tiny config; {@code overrides} are config.json fields. */
    public static FalconH1Config config(Map<String, Object> overrides) {
        Map<String, Object> json = new HashMap<>();
        json.put("vocab_size", 97);
        json.put("hidden_size", 32);
        json.put("intermediate_size", 48);
        json.put("num_hidden_layers", 2);
        json.put("num_attention_heads", 4);
        json.put("num_key_value_heads", 2);
        json.put("mamba_d_ssm", 32);
        json.put("mamba_n_heads", 4);
        json.put("mamba_n_groups", 2);
        json.put("mamba_d_state", 8);
        json.put("mamba_d_conv", 4);
        json.put("mamba_chunk_size", 8);
        json.put("rope_theta", 10000.0);
        json.putAll(overrides);
        return FalconH1Config.fromConfigJson(json, "test config");
    }
}
