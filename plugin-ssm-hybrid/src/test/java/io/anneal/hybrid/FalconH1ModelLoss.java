package io.anneal.hybrid;

import ai.djl.ndarray.NDArray;

/** A scalar of the logits that depends on all of them (for gradient tests). */
final class FalconH1ModelLoss {
    private FalconH1ModelLoss() {
    }

    static NDArray meanSquare(NDArray logits) {
        NDArray f = logits.getDataType() == ai.djl.ndarray.types.DataType.FLOAT32 ? logits
                : io.anneal.toolkit.autograd.DifferentiableCasts.toFloat32(logits);
        return f.square().mean();
    }

}
