package io.anneal.hybrid.model;

import java.util.Locale;

/**
 * How {@link FalconH1Model} runs its decoder layers: {@code ndarray} (DJL operations one by one; the
 * default and the reference) or {@code torchscript} (one libtorch call per layer with fused
 * attention: 18% faster and half the memory on an H100, but experimental: in test processes that
 * trained through TorchScript layers, gradients computed later were intermittently corrupted
 * (zeros, NaN or garbage, about one run in eight), cause not yet found; do not train with it yet).
 */
public enum LayerImplementation {
    TORCHSCRIPT,
    NDARRAY;

    public String configName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
