package io.anneal.api.model;

import ai.djl.ndarray.NDArray;
import io.anneal.api.Experimental;
import java.util.Optional;

/**
 * CUDA graphs of whole training steps, offered by a model whose forward pass can be captured
 * ({@link CausalLanguageModel#stepGraphs()}): the trainer records one step's GPU work (forward,
 * autograd backward, optimizer) once and replays it, so the host no longer launches each of the
 * step's thousands of kernels (issue 12, "no host in the loop").
 *
 * <p>The rules of capture (CUDA's, and PyTorch's {@code torch.cuda.graph}): between
 * {@link #beginCapture()} and {@link #endCapture()} nothing may copy between the host and the
 * device or read a value back, and no number may come from Java except as a constant; a replay
 * reads its inputs from the same device arrays the capture read, so new inputs are written into
 * them with {@link #copy} or {@link #upload} first. Results come back through {@link #read}, which
 * lets the host queue the next step before it waits for this one's numbers.
 *
 * @since API 1.2
 */
@Experimental(since = "1.2", note = "the shape of a host-free training step through DJL")
public interface StepGraphs {

    /**
     * Moves the calling thread's GPU work onto the stream graphs are captured on (a graph cannot
     * be captured on the default stream); call it before the warm-up steps, so that warm-up,
     * capture and replays share one stream.
     */
    void useCaptureStream();

    /** Starts recording the calling thread's GPU work into a new graph; returns its id. */
    int beginCapture();

    /** Ends the recording begun last. */
    void endCapture();

    /** Enqueues graph {@code graph} once, asynchronously. */
    void replay(int graph);

    /** Frees graph {@code graph} and its memory pool (drop the arrays the capture made first). */
    void release(int graph);

    /** Writes {@code source} into {@code destination} in place, on the device (same shape and type). */
    void copy(NDArray destination, NDArray source);

    /**
     * Writes the host array {@code source} into the device array {@code destination} (same shape
     * and type) without waiting for the work already queued on the device: the copy is queued
     * behind it. This default copies through a blocking transfer, which waits.
     *
     * @since API 1.2 (default methods, added within 1.2: plugins built against 1.2 keep working)
     */
    default void upload(NDArray destination, NDArray source) {
        try (NDArray onDevice = source.toDevice(destination.getDevice(), true)) {
            copy(destination, onDevice);
        }
    }

    /**
     * Starts reading the float32 device array {@code source} back to the host: the copy is queued
     * behind the work already on the device, and {@link HostRead#values()} waits for that copy
     * alone, not for what is queued after it. This default reads at once, waiting for everything
     * queued.
     *
     * @since API 1.2 (default methods, added within 1.2: plugins built against 1.2 keep working)
     */
    default HostRead read(NDArray source) {
        float[] values = source.toFloatArray();
        return () -> values;
    }

    /**
     * The device's memory as the GPU's caching allocator counts it, which DJL does not expose:
     * what a benchmark compares with PyTorch's {@code torch.cuda.max_memory_allocated} and
     * {@code max_memory_reserved}. With {@code resetPeaks} the peaks start again from the current
     * figures once read ({@code torch.cuda.reset_peak_memory_stats}). Empty where the
     * implementation cannot read them, as this default.
     *
     * @since API 1.2 (default methods, added within 1.2: plugins built against 1.2 keep working)
     */
    default Optional<DeviceMemory> memory(boolean resetPeaks) {
        return Optional.empty();
    }

    /**
     * Bytes on one device: what live arrays hold ({@code allocated}), what the allocator holds
     * from the driver for them, its cache and the graphs' private pools ({@code reserved}), each
     * with its peak since the last reset, and the device's whole use ({@code deviceUsed}: every
     * process, the CUDA context included, as nvidia-smi shows it). A replayed graph uses its pool
     * without allocating, so for graphed steps {@code reserved} is the figure that counts.
     */
    record DeviceMemory(long allocated, long peakAllocated, long reserved, long peakReserved, long deviceUsed) {
    }

    /** A read of {@link #read} in flight. */
    @FunctionalInterface
    interface HostRead {
        /** The values, once the copy has landed (waits for it; call once). */
        float[] values();
    }
}
