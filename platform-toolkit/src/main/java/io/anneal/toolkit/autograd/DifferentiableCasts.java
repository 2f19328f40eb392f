package io.anneal.toolkit.autograd;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.Experimental;

/**
 * Casts between float32 and float16 that keep the autograd graph. DJL 0.36.0's
 * {@link NDArray#toType} runs under a {@code torch::NoGradGuard} in its JNI ({@code torchTo}), so its
 * result has no {@code grad_fn}: a float16 model that casts its float32 master weights, or a loss
 * that lifts float16 logits to float32, with {@code toType} gets no gradient at all ("element 0 of
 * tensors does not require grad"). These casts go through operations autograd records instead.
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.train before API 1.2 split it off); a workaround for DJL's detaching toType; goes away when DJL's cast is differentiable")
public final class DifferentiableCasts {
    private static final NDIndex ALL = new NDIndex("...");

    private DifferentiableCasts() {
    }

    /**
     * float16 (or float32) to float32 by type promotion: a product with a float32 one of shape [1]
     * (a dimensioned tensor, so it takes part in promotion). Exact; the gradient flows back as float16.
     */
    public static NDArray toFloat32(NDArray array) {
        if (array.getDataType() == DataType.FLOAT32) {
            return array;
        }
        return array.mul(array.getManager().ones(new Shape(1), DataType.FLOAT32));
    }

    /**
     * float32 (or float16) to float16 by an indexed copy into a float16 buffer ({@code index_put_}),
     * which autograd records; the gradient flows back as float32.
     */
    public static NDArray toFloat16(NDArray array) {
        if (array.getDataType() == DataType.FLOAT16) {
            return array;
        }
        NDArray buffer = array.getManager().zeros(array.getShape(), DataType.FLOAT16);
        buffer.set(ALL, array);
        return buffer;
    }
}
