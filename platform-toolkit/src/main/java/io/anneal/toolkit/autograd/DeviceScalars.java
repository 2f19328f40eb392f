package io.anneal.toolkit.autograd;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.Experimental;
import java.util.HashMap;
import java.util.Map;

/**
 * Scalar operands for code that autograd records: 0-dimensional float32 arrays whose memory
 * libtorch owns, made on the manager's device.
 *
 * <p>Why not DJL's {@code x.mul(2f)}: DJL 0.36.0 wraps the number in a CPU tensor over a Java
 * direct buffer ({@code torch::from_blob}, no copy) and closes it when the call returns, while
 * autograd keeps that tensor for the backward pass ({@code MulBackward0} saves its other operand;
 * so do {@code div}, {@code pow}, {@code maximum}, {@code minimum}). Once the garbage collector
 * frees the buffer, backward reads whatever the memory holds next: zero, NaN or 1e31 gradients, at
 * random, on CPU only (on a GPU the number is copied to the device). A test showed it in 200 of
 * 200 backward passes with a collection between forward and backward. {@code NDManager.full}
 * allocates through libtorch instead, and on a GPU it fills on the device rather than copying a
 * host scalar each call. An architecture rule forbids the number overloads in Anneal's code.
 *
 * <p>A 0-dimensional operand does not promote: a float16 array times a float32 scalar stays
 * float16, as with a Java number.
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.train before API 1.2 split it off); a workaround for DJL's number operands; goes away when DJL copies them")
public final class DeviceScalars {
    private final NDManager manager;
    private final Map<Double, NDArray> cache = new HashMap<>();

    /** Scalars cached for the life of {@code manager}: create one per model, not per step. */
    public DeviceScalars(NDManager manager) {
        this.manager = manager;
    }

    /** The scalar {@code value}, made once and kept in this object's manager. Not thread-safe. */
    public NDArray get(double value) {
        NDArray scalar = cache.get(value);
        if (scalar == null || scalar.isReleased()) {
            scalar = of(manager, value);
            cache.put(value, scalar);
        }
        return scalar;
    }

    /** A new scalar {@code value} in {@code manager}, for a value that changes from call to call. */
    public static NDArray of(NDManager manager, double value) {
        return manager.full(new Shape(), (float) value, DataType.FLOAT32);
    }
}
