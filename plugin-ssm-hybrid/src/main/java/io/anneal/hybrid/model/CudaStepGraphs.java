package io.anneal.hybrid.model;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.model.StepGraphs;
import io.anneal.toolkit.torchscript.TorchScriptModule;
import java.util.Arrays;
import java.util.Map;
import java.util.Optional;

/**
 * {@link StepGraphs} through the graph operators of Anneal's library ({@code graph_*} in
 * anneal_ops.cpp, loaded by {@link FusedKernels}), called from the JVM through
 * GraphControl.torchscript. The returned tensors are CPU tensors made after the operator ran:
 * reading them does not wait for the GPU.
 */
final class CudaStepGraphs implements StepGraphs {
    private final TorchScriptModule control;
    /** A tensor on the model's device: it tells each operator which device it works on. */
    private final NDArray anchor;
    private final NDManager hostManager;

    CudaStepGraphs(NDManager modelManager) {
        Device device = modelManager.getDevice();
        this.control = TorchScriptModule.compile("GraphControl",
                CudaStepGraphs.class.getResourceAsStream("GraphControl.torchscript"), Map.of("training", false), device);
        this.anchor = modelManager.zeros(new Shape(1), DataType.FLOAT32);
        this.hostManager = modelManager.newSubManager(Device.cpu());
    }

    @Override
    public void useCaptureStream() {
        call("side_stream", anchor);
    }

    @Override
    public int beginCapture() {
        return call("begin", anchor);
    }

    @Override
    public void endCapture() {
        call("end", anchor);
    }

    @Override
    public void replay(int graph) {
        try (NDArray id = hostManager.create(new long[] {graph})) {
            call("replay", anchor, id);
        }
    }

    @Override
    public void release(int graph) {
        try (NDArray id = hostManager.create(new long[] {graph})) {
            call("release", anchor, id);
        }
    }

    @Override
    public void copy(NDArray destination, NDArray source) {
        checkSameShape(destination, source);
        call("copy", destination, source);
    }

    /** Through pinned memory and a non-blocking copy (GraphControl.upload): queued, not waited for. */
    @Override
    public void upload(NDArray destination, NDArray source) {
        checkSameShape(destination, source);
        call("upload", destination, source);
    }

    /** A copy into pinned memory and an event after it ({@code host_read_begin}); values() waits for that event. */
    @Override
    public HostRead read(NDArray source) {
        int read = call("read_begin", source);
        return () -> {
            try (NDArray id = hostManager.create(new long[] {read});
                 NDList result = invoke("read_end", anchor, id)) {
                return result.singletonOrThrow().toFloatArray();
            }
        };
    }

    /** The allocator's figures through {@code memory_stats} (anneal_ops.cpp). */
    @Override
    public Optional<DeviceMemory> memory(boolean resetPeaks) {
        try (NDArray reset = hostManager.create(new long[] {resetPeaks ? 1 : 0});
             NDList result = invoke("memory", anchor, reset)) {
            long[] v = result.singletonOrThrow().toLongArray();
            return Optional.of(new DeviceMemory(v[0], v[1], v[2], v[3], v[4]));
        }
    }

    private static void checkSameShape(NDArray destination, NDArray source) {
        if (!destination.getShape().equals(source.getShape()) || destination.getDataType() != source.getDataType()) {
            throw new IllegalArgumentException("copy into a graph's array: expected " + destination.getShape() + " "
                    + destination.getDataType() + ", found " + source.getShape() + " " + source.getDataType());
        }
    }

    /** One method of GraphControl on {@code inputs}, unnamed; the caller closes the result. */
    private NDList invoke(String method, NDArray... inputs) {
        return control.call(method, Arrays.asList(inputs), Arrays.asList(new String[inputs.length]), false);
    }

    /** A method whose result is one number (an id). */
    private int call(String method, NDArray... inputs) {
        try (NDList result = invoke(method, inputs)) {
            return (int) result.singletonOrThrow().toLongArray()[0];
        }
    }
}
