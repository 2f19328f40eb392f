package io.anneal.hybrid.model;

import java.util.Locale;

/**
 * How {@link FalconH1Model} runs its decoder layers: {@code torchscript} (one libtorch call per
 * layer, fused attention; the default) or {@code ndarray} (DJL operations one by one: the reference
 * implementation the TorchScript layer is tested against, and the one that can report every
 * intermediate activation).
 */
public enum LayerImplementation {
    TORCHSCRIPT,
    NDARRAY;

    public String configName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
