package io.anneal.runtime.train;

import ai.djl.ndarray.types.DataType;
import io.anneal.api.config.ConfigView;


/**
 * How a stage computes. DJL 0.36.0 cannot cast to bfloat16 (DESIGN.md, "GPU facts"), so mixed
 * precision is float16 compute with float32 master weights and a dynamic loss scale, or float32
 * with TF32 matmuls.
 */
enum Precision {
    /** Plain float32: exact, and bit-reproducible on a CPU. */
    FLOAT32(DataType.FLOAT32, false),
    /** float16 compute, float32 master weights, dynamic loss scale (as torch.amp.GradScaler). */
    FLOAT16(DataType.FLOAT16, true),
    /**
     * float32 parameters with TF32 matmuls; libtorch reads {@code TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1}
     * from the environment at start-up, so the stage can only check it, not set it.
     */
    TF32(DataType.FLOAT32, false);

    static final String TF32_ENVIRONMENT = "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE";

    private final DataType computeType;
    private final boolean scalesLoss;

    Precision(DataType computeType, boolean scalesLoss) {
        this.computeType = computeType;
        this.scalesLoss = scalesLoss;
    }

    DataType computeType() {
        return computeType;
    }

    /** True when the loss is multiplied by a dynamic loss scale before the backward pass. */
    boolean scalesLoss() {
        return scalesLoss;
    }

    String configName() {
        return ConfigView.configName(this);
    }

    static Precision parse(ConfigView config, String key) {
        if (config.getString(key).trim().equalsIgnoreCase("bfloat16")) {
            throw config.invalid(key, "one of float32, float16, tf32 (bfloat16 is not available through DJL 0.36.0)");
        }
        return config.getEnum(key, Precision.class);
    }
}
