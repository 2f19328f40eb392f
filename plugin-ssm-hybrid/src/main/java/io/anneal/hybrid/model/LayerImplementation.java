package io.anneal.hybrid.model;

import io.anneal.api.config.ConfigView;

/**
 * How {@link FalconH1Model} runs its decoder layers: {@code torchscript} (the default: one libtorch
 * call per layer, {@code FalconH1Layer.torchscript}, with fused attention; 18% faster and half the
 * memory of the other on an H100) or {@code ndarray} (DJL operations one by one: the reference the
 * TorchScript layers are tested against, and a fallback).
 */
public enum LayerImplementation {
    TORCHSCRIPT,
    NDARRAY;

    public String configName() {
        return ConfigView.configName(this);
    }
}
