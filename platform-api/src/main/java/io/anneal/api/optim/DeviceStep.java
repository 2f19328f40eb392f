package io.anneal.api.optim;

import ai.djl.ndarray.NDArray;
import io.anneal.api.Experimental;

/**
 * An optimizer step that runs on the device from start to end, for CUDA-graph capture
 * ({@link io.anneal.api.model.StepGraphs}): the gradient norm, the finite check and the skip
 * decision, unscaling and clipping, the update and the step count all happen on the device, as
 * PyTorch's {@code _amp_foreach_non_finite_check_and_unscale_} and fused AdamW with
 * {@code found_inf} do. Nothing is read back inside it.
 *
 * @since API 1.2
 */
@Experimental(since = "1.2", note = "the shape of a host-free training step through DJL")
public interface DeviceStep extends AutoCloseable {
    /** Index in {@link #inputs()}: the learning rate. */
    int LEARNING_RATE = 0;
    /** Index in {@link #inputs()}: what the gradients are divided by (the loss scale). */
    int GRADIENT_DIVISOR = 1;
    /** Index in {@link #inputs()}: the global L2 norm to clip to after unscaling; 0 or less turns clipping off. */
    int MAX_GRAD_NORM = 2;

    /** Index in {@link #outcome()}: the global gradient norm after unscaling (inf or NaN when non-finite). */
    int GRAD_NORM = 0;
    /** Index in {@link #outcome()}: 1 when the step was skipped for non-finite gradients, else 0. */
    int SKIPPED = 1;

    /** float32 [3] on the device, written by the caller before each step (indices above). */
    NDArray inputs();

    /**
     * Enqueues one step on the accumulated gradients without reading anything back; gradients are
     * left as they are. The same call is what a graph captures.
     */
    void enqueue();

    /** float32 [2] on the device, written by {@link #enqueue()} (indices above). */
    NDArray outcome();

    /**
     * The host learns the outcome (read from {@link #outcome()}): keeps the optimizer's host-side
     * step count equal to the device's.
     */
    void completed(boolean skipped);

    @Override
    void close();
}
